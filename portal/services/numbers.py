"""Tracking numbers."""

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.errors import ValidationFailed
from portal.models import Account, NumberStatus, TrackingNumber

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")  # [0-9], not \d: digits 0-9 only


def normalize_e164(raw: str) -> str:
    """"+1 (415) 555-0100" → "+14155550100"; anything that isn't E.164 is refused."""
    number = re.sub(r"[\s().-]", "", raw or "")
    if not E164.match(number):
        raise ValidationFailed(
            {"number": "Enter the number in international format, like +14155550100."}
        )
    return number


def add(session: Session, account: Account, number: str, label: str = "") -> TrackingNumber:
    number = normalize_e164(number)
    taken = session.scalar(
        select(TrackingNumber.id).where(
            TrackingNumber.number == number, TrackingNumber.status == NumberStatus.ACTIVE
        )
    )
    if taken:
        raise ValidationFailed({"number": f"{number} is already in use."})
    tracking = TrackingNumber(account_id=account.id, number=number, label=label.strip())
    session.add(tracking)
    session.flush()
    return tracking


def list_for(session: Session, account: Account, status: NumberStatus) -> list[TrackingNumber]:
    return list(session.scalars(
        select(TrackingNumber)
        .where(TrackingNumber.account_id == account.id, TrackingNumber.status == status)
        .order_by(TrackingNumber.number)
    ))
