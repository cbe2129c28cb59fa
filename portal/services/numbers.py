"""Tracking numbers: adding them, and restoring released ones (a close releases every number
of the account; one released 14 days ago or less can be restored once it is active again)."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import rules
from portal.clock import now as clock_now
from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.models import Account, EventKind, NumberStatus, TrackingNumber, User
from portal.services.lifecycle import record
from portal.services.phones import normalize_e164
from portal.transactions import begin_write


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


# ----------------------------------------------------------------------------- released

def can_restore(number: TrackingNumber, now: datetime | None = None) -> bool:
    """Released 14 days ago or less (the account must also be active again)."""
    return (number.status == NumberStatus.RELEASED and number.released_at is not None
            and (now or clock_now()) - number.released_at <= rules.NUMBER_RESTORE_WINDOW)


@dataclass(frozen=True)
class RestoreOffer:
    """What the Released Numbers page offers for one released number: the Restore button, or
    why not (`message`), with "Ask support" once the 14 days are over (the carrier may still
    restore it)."""

    number: TrackingNumber
    restorable: bool
    ask_support: bool = False
    message: str = ""


def restore_offer(account: Account, number: TrackingNumber, can_manage: bool,
                  now: datetime | None = None) -> RestoreOffer:
    """`can_manage`: the viewer is an owner or admin of the account (they alone restore)."""
    if account.is_canceled:
        return RestoreOffer(number, False, message="Reactivate the account to restore it.")
    if not can_manage:
        return RestoreOffer(number, False, message="Owners and admins can restore it.")
    if can_restore(number, now):
        return RestoreOffer(number, True)
    return RestoreOffer(number, False, ask_support=True, message=(
        f"Released more than {rules.NUMBER_RESTORE_WINDOW.days} days ago."))


def restore_offers(session: Session, account: Account, can_manage: bool,
                   now: datetime | None = None) -> list[RestoreOffer]:
    """The account's released numbers, newest first, each with what can be done about it."""
    now = now or clock_now()
    return [restore_offer(account, number, can_manage, now)
            for number in released(session, account)]


def released(session: Session, account: Account) -> list[TrackingNumber]:
    return list(session.scalars(
        select(TrackingNumber).where(TrackingNumber.account_id == account.id,
                                     TrackingNumber.status == NumberStatus.RELEASED)
        .order_by(TrackingNumber.released_at.desc(), TrackingNumber.number)
    ))


def restore(session: Session, account: Account, number_id: int, actor: User,
                   now: datetime | None = None) -> TrackingNumber:
    now = now or clock_now()
    number = session.scalar(select(TrackingNumber).where(
        TrackingNumber.id == number_id, TrackingNumber.account_id == account.id))
    if number is None:
        raise NotFound("Tracking number not found.")
    if account.is_canceled:
        raise NotAllowed(f"Reactivate {account.name} before restoring its numbers.")
    if number.status != NumberStatus.RELEASED:
        raise NotAllowed(f"{number.number} is already active on this account.")
    if not can_restore(number, now):
        raise NotAllowed(
            f"{number.number} was released on {number.released_at:%B %-d, %Y}, more than "
            "14 days ago. Send a support request to ask whether the carrier can restore it."
        )
    taken = session.scalar(select(TrackingNumber.account_id).where(
        TrackingNumber.number == number.number, TrackingNumber.status == NumberStatus.ACTIVE))
    if taken is not None:
        raise NotAllowed(f"{number.number} is in use by another account now; it can't be "
                         "restored.")
    begin_write(session)
    try:
        with session.begin_nested():
            result = session.execute(
                update(TrackingNumber)
                .where(TrackingNumber.id == number.id,
                       TrackingNumber.status == NumberStatus.RELEASED,
                       TrackingNumber.released_at >= now - rules.NUMBER_RESTORE_WINDOW)
                .values(status=NumberStatus.ACTIVE, released_at=None)
            )
    except IntegrityError:  # restored onto another account at the same moment
        raise NotAllowed(f"{number.number} is in use by another account now; it can't be "
                         "restored.") from None
    if result.rowcount != 1:
        raise NotAllowed(f"{number.number} is already active on this account.")
    session.refresh(number)
    record(session, account, EventKind.NUMBER_RESTORED, actor, now, number=number.number)
    return number


@dataclass(frozen=True)
class RestoreAll:
    """What "Restore all" did: the numbers restored, and each one it could not restore with
    the reason (the same words a single Restore gives)."""

    restored: list[TrackingNumber]
    refused: list[tuple[TrackingNumber, str]]


def restore_all_plan(session: Session, account: Account, can_manage: bool,
                     now: datetime | None = None) -> tuple[list[RestoreOffer],
                                                           list[RestoreOffer]]:
    """The confirmation's two lists: the released numbers the restore rule allows
    (restore_offer), and the others with why not."""
    offers = restore_offers(session, account, can_manage, now)
    return ([o for o in offers if o.restorable], [o for o in offers if not o.restorable])


def restore_all(session: Session, account: Account, actor: User,
                now: datetime | None = None) -> RestoreAll:
    """Restore every released number the rule allows, each through restore (its checks,
    its conditional update, its event). A number refused meanwhile (in use by another
    account now) is listed with the reason; the others are still restored."""
    now = now or clock_now()
    if account.is_canceled:
        raise NotAllowed(f"Reactivate {account.name} before restoring its numbers.")
    restored: list[TrackingNumber] = []
    refused: list[tuple[TrackingNumber, str]] = []
    for number in released(session, account):
        if not can_restore(number, now):
            refused.append((number, f"{number.number} was released more than "
                                    f"{rules.NUMBER_RESTORE_WINDOW.days} days ago: ask support."))
            continue
        try:
            restored.append(restore(session, account, number.id, actor, now))
        except NotAllowed as e:
            refused.append((number, e.message))
    if not restored and not refused:
        raise NotAllowed(f"{account.name} has no released numbers.")
    return RestoreAll(restored, refused)

