"""Support requests (the "ticket portal"): refunds of the balance kept after a close,
restoring numbers past the 14 days, reactivating a canceled agency, anything else; staff
resolve or decline them (`flask support resolve`)."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from portal.clock import now as clock_now
from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.models import (
    Account,
    EventKind,
    NumberStatus,
    SupportKind,
    SupportRequest,
    SupportStatus,
    TrackingNumber,
    User,
)
from portal.services.inputs import clean_text
from portal.services.lifecycle import record, windows


def requests_for(session: Session, account: Account) -> list[SupportRequest]:
    return list(session.scalars(
        select(SupportRequest).options(joinedload(SupportRequest.tracking_number))
        .where(SupportRequest.account_id == account.id)
        .order_by(SupportRequest.created_at.desc(), SupportRequest.id.desc())
    ))


def request(session: Session, account: Account, actor: User, kind: str,
                    message: str = "", number_id: int | None = None,
                    now: datetime | None = None) -> SupportRequest:
    now = now or clock_now()
    try:
        kind = SupportKind(kind)
    except ValueError:
        raise ValidationFailed({"kind": "Choose what the request is about."}) from None
    message = clean_text(message, "message", "The message", 5000, multiline=True)
    number = None
    if kind == SupportKind.REFUND:
        w = windows(account, now)
        if w is None:
            raise ValidationFailed({"kind": "A refund of the available balance can be "
                                            "requested once the account is canceled."})
        if not w.can_request_refund:
            raise ValidationFailed({"kind": (
                f"The available balance was kept for 90 days after cancelation, until "
                f"{w.balance_until:%B %-d, %Y}; a refund can no longer be requested.")})
    elif kind == SupportKind.RESTORE_NUMBER:
        number = session.scalar(select(TrackingNumber).where(
            TrackingNumber.id == (number_id or 0), TrackingNumber.account_id == account.id,
            TrackingNumber.status == NumberStatus.RELEASED))
        if number is None:
            raise ValidationFailed({"number": "Choose a released number of this account."})
    elif kind == SupportKind.REACTIVATE_AGENCY:
        if not (account.is_agency and account.is_canceled):
            raise ValidationFailed({"kind": "Only a canceled agency is reactivated by "
                                            "support."})
    elif not message:
        raise ValidationFailed({"message": "Tell us what you need."})
    duplicate = session.scalar(select(SupportRequest.id).where(
        SupportRequest.account_id == account.id, SupportRequest.kind == kind,
        SupportRequest.status == SupportStatus.OPEN,
        SupportRequest.tracking_number_id.is_(None) if number is None
        else SupportRequest.tracking_number_id == number.id,
    ))
    if duplicate and kind != SupportKind.OTHER:
        raise ValidationFailed({"": f"Request #{duplicate} about this is already open."})
    ticket = SupportRequest(account_id=account.id, kind=kind, message=message,
                            tracking_number_id=number.id if number else None,
                            created_by_id=actor.id, created_at=now)
    session.add(ticket)
    session.flush()
    record(session, account, EventKind.SUPPORT_REQUESTED, actor, now, request=ticket.id,
           kind=kind.value, number=number.number if number else None)
    return ticket


def resolve(session: Session, request_id: int, status: SupportStatus,
                    resolution: str, now: datetime | None = None) -> SupportRequest:
    """Staff close a ticket (the `flask support resolve` command)."""
    ticket = session.get(SupportRequest, request_id)
    if ticket is None:
        raise NotFound(f"No support request #{request_id}.")
    if ticket.status != SupportStatus.OPEN:
        raise NotAllowed(f"Support request #{request_id} is already {ticket.status.value}.")
    resolution = clean_text(resolution, "note", "The note", multiline=True)
    ticket.status, ticket.resolution = status, resolution
    ticket.resolved_at = now or clock_now()
    return ticket
