"""Account lifecycle: pause, stop, resume, close, reactivate, release and restore numbers,
cancel an agency, transfer a sub-account out, and the 60/90/14-day windows.

Every change is a conditional UPDATE that must match exactly the rows it expects, so a
double-clicked "Proceed" or two requests at once change things once; the loser gets a clear
message. Each action appends an AccountEvent (who, when, what).
"""

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from portal import rules
from portal.clock import now as clock_now
from portal.errors import DomainError, NotAllowed, NotFound, ValidationFailed
from portal.models import (
    PLANS,
    Account,
    AccountEvent,
    AccountKind,
    AccountStatus,
    BillingMode,
    Call,
    EventKind,
    Membership,
    NumberStatus,
    Role,
    SupportKind,
    SupportRequest,
    SupportStatus,
    TrackingNumber,
    User,
)
from portal.services.auth import user_for_email
from portal.services.inputs import clean_email, clean_text
from portal.transactions import begin_write, scrub_after_commit

# Which states each Status-section action starts from (the rest are refused).
PAUSE_FROM = (AccountStatus.ACTIVE, AccountStatus.CALLS_STOPPED)
STOP_FROM = (AccountStatus.ACTIVE, AccountStatus.SWAPPING_PAUSED)
RESUME_FROM = (AccountStatus.SWAPPING_PAUSED, AccountStatus.CALLS_STOPPED)
STANDALONE_PLANS = tuple(p for p in PLANS if p != "Agency")
CANCEL_REASONS = (
    "Too expensive",
    "Moving to another provider",
    "Closing the business",
    "Missing features",
    "Not using it enough",
    "Other",
)


class AccountClosed(DomainError):
    """Canceled more than 60 days ago: the data is gone, a new account is needed."""

    status = 410


# ----------------------------------------------------------------------------- windows

@dataclass(frozen=True)
class Windows:
    """What a canceled account can still do, from its stored cancelation time."""

    canceled_at: datetime
    now: datetime

    @property
    def reactivate_until(self) -> datetime:
        return self.canceled_at + rules.DATA_RETENTION

    @property
    def balance_until(self) -> datetime:
        return self.canceled_at + rules.BALANCE_RETENTION

    @property
    def can_reactivate(self) -> bool:
        return self.now <= self.reactivate_until

    @property
    def data_kept(self) -> bool:
        return self.now <= self.reactivate_until

    @property
    def can_request_refund(self) -> bool:
        return self.now <= self.balance_until


def windows(account: Account, now: datetime | None = None) -> Windows | None:
    if account.canceled_at is None:
        return None
    return Windows(account.canceled_at, now or clock_now())


def can_restore(number: TrackingNumber, now: datetime | None = None) -> bool:
    """Released 14 days ago or less (the account must also be active again)."""
    return (number.status == NumberStatus.RELEASED and number.released_at is not None
            and (now or clock_now()) - number.released_at <= rules.NUMBER_RESTORE_WINDOW)


def closed_message(account: Account) -> str:
    return (f"{account.name} was closed on {account.canceled_at:%B %-d, %Y} and its data "
            "was removed after 60 days. To use the portal again, open a new account.")


def check_open(account: Account, now: datetime | None = None) -> None:
    """Raise AccountClosed for an account canceled more than 60 days ago."""
    w = windows(account, now)
    if w is not None and not w.data_kept:
        raise AccountClosed(closed_message(account))


def is_closed_for_good(account: Account, now: datetime | None = None) -> bool:
    w = windows(account, now)
    return w is not None and not w.data_kept


# ----------------------------------------------------------------------------- records

def record(session: Session, account: Account | int, kind: EventKind, actor: User | None,
           now: datetime, /, **details) -> AccountEvent:
    """Append an event. The first five are positional-only, so a detail may be called
    `kind` (a support request's kind) or `account` without clashing with them."""
    event = AccountEvent(
        account_id=account if isinstance(account, int) else account.id,
        actor_id=actor.id if actor else None, kind=kind,
        details_json=json.dumps(details, sort_keys=True, default=str), at=now,
    )
    session.add(event)
    return event


def events(session: Session, account: Account, limit: int = 50) -> list[AccountEvent]:
    return list(session.scalars(
        select(AccountEvent).options(joinedload(AccountEvent.actor))
        .where(AccountEvent.account_id == account.id)
        .order_by(AccountEvent.at.desc(), AccountEvent.id.desc()).limit(limit)
    ))


def _set_status(session: Session, account: Account, to: AccountStatus,
                allowed_from: tuple[AccountStatus, ...], message: str, now: datetime) -> None:
    result = session.execute(
        update(Account).where(Account.id == account.id, Account.status.in_(allowed_from))
        .values(status=to, updated_at=now)
    )
    if result.rowcount != 1:
        session.refresh(account)
        raise NotAllowed(message)
    session.refresh(account)


# ----------------------------------------------------------------------------- status

def pause_swapping(session: Session, account: Account, actor: User,
                   now: datetime | None = None) -> None:
    now = now or clock_now()
    _check_not_agency(account)
    _set_status(session, account, AccountStatus.SWAPPING_PAUSED, PAUSE_FROM,
                _status_refusal(account, "pause number swapping for"), now)
    record(session, account, EventKind.SWAPPING_PAUSED, actor, now)


def stop_calls(session: Session, account: Account, actor: User,
               now: datetime | None = None) -> None:
    now = now or clock_now()
    _check_not_agency(account)
    _set_status(session, account, AccountStatus.CALLS_STOPPED, STOP_FROM,
                _status_refusal(account, "stop incoming calls for"), now)
    record(session, account, EventKind.CALLS_STOPPED, actor, now)


def resume(session: Session, account: Account, actor: User,
           now: datetime | None = None) -> None:
    now = now or clock_now()
    _set_status(session, account, AccountStatus.ACTIVE, RESUME_FROM,
                _status_refusal(account, "resume"), now)
    record(session, account, EventKind.RESUMED, actor, now)


def status_actions(account: Account) -> set[str]:
    """What the Status section offers now: "pause", "stop", "resume" (closing is separate)."""
    if account.is_agency:
        return set()
    offers = {"pause": PAUSE_FROM, "stop": STOP_FROM, "resume": RESUME_FROM}
    return {name for name, states in offers.items() if account.status in states}


def _check_not_agency(account: Account) -> None:
    if account.is_agency:
        raise NotAllowed("An agency is paused or stopped one sub-account at a time.")


def _status_refusal(account: Account, action: str) -> str:
    if account.status == AccountStatus.CANCELED:
        return f"{account.name} is canceled: reactivate it first."
    if account.status == AccountStatus.BILLING_PAUSED:
        return (f"{account.name} is paused for billing: its balance is below zero. "
                "A payment that brings it to zero or more lifts the pause.")
    return f"Can't {action} {account.name}: {_STATE_PHRASES[account.status]}."


_STATE_PHRASES = {
    AccountStatus.ACTIVE: "it is active",
    AccountStatus.SWAPPING_PAUSED: "number swapping is already paused",
    AccountStatus.CALLS_STOPPED: "incoming calls are already stopped",
}


# ----------------------------------------------------------------------------- close

def numbers_to_release(session: Session, account: Account) -> list[TrackingNumber]:
    """The tracking numbers closing this account would release (the confirmation lists them)."""
    return list(session.scalars(
        select(TrackingNumber).where(TrackingNumber.account_id == account.id,
                                     TrackingNumber.status == NumberStatus.ACTIVE)
        .order_by(TrackingNumber.number)
    ))


def close(session: Session, account: Account, actor: User,
          now: datetime | None = None) -> list[TrackingNumber]:
    """Close a standalone account or a sub-account: canceled, every number released.

    Never touches the agency or a sibling. Returns the released numbers.
    """
    now = now or clock_now()
    if account.is_agency:
        raise NotAllowed("An agency is canceled from Parent Settings, with all its "
                         "sub-accounts.")
    result = session.execute(
        update(Account).where(Account.id == account.id,
                              Account.status != AccountStatus.CANCELED)
        .values(status=AccountStatus.CANCELED, canceled_at=now, updated_at=now)
    )
    if result.rowcount != 1:
        session.refresh(account)
        raise NotAllowed(f"{account.name} is already canceled.")
    session.refresh(account)
    released = _release_all(session, account, actor, now)
    _closed(session, account, now)
    record(session, account, EventKind.CLOSED, actor, now,
           released=[n.number for n in released])
    return released


# What else must stop when an account is closed, registered by other packages (the billing
# links revoke the account's pending billing requests), run in the closing transaction.
ON_CLOSE: list = []


def _closed(session: Session, account: Account, now: datetime) -> None:
    for hook in ON_CLOSE:
        hook(session, account, now)


def _release_all(session: Session, account: Account, actor: User | None,
                 now: datetime) -> list[TrackingNumber]:
    numbers = numbers_to_release(session, account)
    if not numbers:
        return []
    result = session.execute(
        update(TrackingNumber)
        .where(TrackingNumber.id.in_([n.id for n in numbers]),
               TrackingNumber.status == NumberStatus.ACTIVE)
        .values(status=NumberStatus.RELEASED, released_at=now)
    )
    if result.rowcount != len(numbers):  # someone else released some meanwhile
        raise NotAllowed(f"{account.name} changed while closing it; try again.")
    for number in numbers:
        session.refresh(number)
        record(session, account, EventKind.NUMBER_RELEASED, actor, now, number=number.number)
    return numbers


def reactivate(session: Session, account: Account, actor: User,
               now: datetime | None = None) -> None:
    """Within 60 days of closing; a canceled agency only through support."""
    now = now or clock_now()
    if account.is_agency:
        raise NotAllowed("A canceled agency can't be reactivated here: send a support "
                         "request to reactivate it.")
    if account.status != AccountStatus.CANCELED:
        raise NotAllowed(f"{account.name} is not canceled.")
    if account.is_sub:
        agency = session.get(Account, account.parent_id)
        if agency.is_canceled:
            raise NotAllowed(f"{agency.name} is canceled: the agency must be reactivated "
                             "(a support request) before its sub-accounts.")
        if not agency.is_agency:
            raise NotAllowed(f"{agency.name} left the Agency plan: it can't have sub-accounts. "
                             f"Move it back to the Agency plan to reactivate {account.name}, "
                             "or send a support request.")
    w = windows(account, now)
    if not w.can_reactivate:
        raise NotAllowed(
            f"{account.name} was canceled on {w.canceled_at:%B %-d, %Y}, more than 60 days "
            "ago: it can no longer be reactivated. Open a new account instead."
        )
    result = session.execute(
        update(Account).where(Account.id == account.id,
                              Account.status == AccountStatus.CANCELED,
                              Account.canceled_at >= now - rules.DATA_RETENTION)
        .values(status=AccountStatus.ACTIVE, canceled_at=None, updated_at=now)
    )
    if result.rowcount != 1:
        session.refresh(account)
        raise NotAllowed(f"{account.name} is not canceled.")
    session.refresh(account)
    record(session, account, EventKind.REACTIVATED, actor, now, canceled_at=w.canceled_at)


# ----------------------------------------------------------------------------- numbers

def released_numbers(session: Session, account: Account) -> list[TrackingNumber]:
    return list(session.scalars(
        select(TrackingNumber).where(TrackingNumber.account_id == account.id,
                                     TrackingNumber.status == NumberStatus.RELEASED)
        .order_by(TrackingNumber.released_at.desc(), TrackingNumber.number)
    ))


def restore_number(session: Session, account: Account, number_id: int, actor: User,
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


# ----------------------------------------------------------------------------- agency

def active_sub_accounts(session: Session, agency: Account) -> list[Account]:
    return list(session.scalars(
        select(Account).where(Account.parent_id == agency.id,
                              Account.status != AccountStatus.CANCELED)
        .order_by(Account.name, Account.id)
    ))


def cancel_agency(session: Session, agency: Account, actor: User, reason: str,
                  comments: str = "", now: datetime | None = None) -> list[Account]:
    """Cancel the agency and every sub-account still active; release all their numbers."""
    now = now or clock_now()
    if not agency.is_agency:
        raise NotFound("Only an agency is canceled this way.")
    errors = {}
    if reason not in CANCEL_REASONS:
        errors["reason"] = "Choose why you are canceling."
    try:
        comments = clean_text(comments, "comments", "Comments", multiline=True)
    except ValidationFailed as e:
        errors.update(e.errors)
    else:
        if len(comments) > 2000:
            errors["comments"] = "Comments are at most 2,000 characters."
    if errors:
        raise ValidationFailed(errors)
    result = session.execute(
        update(Account).where(Account.id == agency.id,
                              Account.status != AccountStatus.CANCELED)
        .values(status=AccountStatus.CANCELED, canceled_at=now, updated_at=now)
    )
    if result.rowcount != 1:
        session.refresh(agency)
        raise NotAllowed(f"{agency.name} is already canceled.")
    session.refresh(agency)
    released = _release_all(session, agency, actor, now)
    _closed(session, agency, now)
    subs = active_sub_accounts(session, agency)
    canceled_subs = []
    for sub in subs:
        result = session.execute(
            update(Account).where(Account.id == sub.id, Account.status != AccountStatus.CANCELED)
            .values(status=AccountStatus.CANCELED, canceled_at=now, updated_at=now)
        )
        session.refresh(sub)
        if result.rowcount != 1:  # closed on its own meanwhile: keep its own date
            continue
        canceled_subs.append(sub)
        sub_released = _release_all(session, sub, actor, now)
        _closed(session, sub, now)
        record(session, sub, EventKind.CLOSED, actor, now, by_agency=agency.name,
               released=[n.number for n in sub_released])
    record(session, agency, EventKind.AGENCY_CANCELED, actor, now, reason=reason,
           comments=comments, sub_accounts=[s.name for s in canceled_subs],
           released=[n.number for n in released])
    return canceled_subs


@dataclass(frozen=True)
class Transferred:
    account: Account
    owner: User  # to be told (owner_mail.new_owner), with a set-password link if it needs one


def transfer_out(session: Session, sub: Account, actor: User, new_owner_email: str,
                 plan: str, now: datetime | None = None) -> Transferred:
    """Take a sub-account out of its agency: a standalone account with its numbers, calls
    and history, owned by `new_owner_email`; the agency no longer reaches it.

    The answer is the same whether or not the email has a user (it must not tell the agency
    who has one): without one, a user is made for it without a password, which its owner
    sets from the emailed link (portal/owner_mail.py)."""
    now = now or clock_now()
    if not sub.is_sub:
        raise NotFound("Only a sub-account can be transferred out of an agency.")
    agency = session.get(Account, sub.parent_id)
    errors = {}
    if sub.is_canceled:
        errors[""] = f"{sub.name} is canceled: reactivate it before transferring it."
    elif sub.billing_mode == BillingMode.AGENCY:
        errors[""] = (f"{sub.name} is paid from the agency balance and has no payment "
                      "method of its own. Remove it from agency billing (the customer adds a "
                      "card) before transferring it.")
    if plan not in STANDALONE_PLANS:
        errors["plan"] = f"Choose a plan: {', '.join(STANDALONE_PLANS)}."
    try:
        email = clean_email(new_owner_email, "email",
                            "Enter the new owner's email address, like name@example.com.")
    except ValidationFailed as e:
        errors.update(e.errors)
    if errors:
        raise ValidationFailed(errors)
    result = session.execute(
        update(Account).where(Account.id == sub.id, Account.kind == AccountKind.SUB,
                              Account.parent_id == agency.id,
                              Account.billing_mode == BillingMode.CUSTOMER,
                              Account.status != AccountStatus.CANCELED)
        .values(kind=AccountKind.STANDALONE, parent_id=None, plan=plan,
                billing_mode=BillingMode.CUSTOMER, updated_at=now)
    )
    if result.rowcount != 1:
        raise NotAllowed(f"{sub.name} is no longer a sub-account of {agency.name}.")
    session.refresh(sub)
    owner = user_for_email(session, email)
    membership = session.scalar(select(Membership).where(
        Membership.user_id == owner.id, Membership.account_id == sub.id))
    if membership is None:
        session.add(Membership(user_id=owner.id, account_id=sub.id, role=Role.OWNER))
    else:
        membership.role = Role.OWNER
    record(session, agency, EventKind.TRANSFERRED_OUT, actor, now, account=sub.name,
           account_id=sub.id, new_owner=email)
    record(session, sub, EventKind.TRANSFERRED_IN, actor, now, agency=agency.name,
           new_owner=email, plan=plan)
    return Transferred(sub, owner)


# ----------------------------------------------------------------------------- support

def support_requests(session: Session, account: Account) -> list[SupportRequest]:
    return list(session.scalars(
        select(SupportRequest).options(joinedload(SupportRequest.tracking_number))
        .where(SupportRequest.account_id == account.id)
        .order_by(SupportRequest.created_at.desc(), SupportRequest.id.desc())
    ))


def request_support(session: Session, account: Account, actor: User, kind: str,
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


def resolve_support(session: Session, request_id: int, status: SupportStatus,
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


# ----------------------------------------------------------------------------- jobs

def purge_expired(session: Session, now: datetime | None = None) -> list[int]:
    """Delete the call data of accounts canceled more than 60 days ago (once each).

    Idempotent: an account is purged once, marked with data_purged_at; safe to run from
    several instances (the mark is a conditional UPDATE).
    """
    now = now or clock_now()
    due = list(session.scalars(
        select(Account.id).where(Account.status == AccountStatus.CANCELED,
                                 Account.canceled_at < now - rules.DATA_RETENTION,
                                 Account.data_purged_at.is_(None))
    ))
    purged = []
    for account_id in due:
        marked = session.execute(
            update(Account).where(Account.id == account_id, Account.data_purged_at.is_(None),
                                  Account.status == AccountStatus.CANCELED)
            .values(data_purged_at=now)
        )
        if marked.rowcount != 1:
            continue
        deleted = session.execute(delete(Call).where(Call.account_id == account_id))
        scrub_after_commit(session)  # no copy of the calls left in SQLite's WAL file
        record(session, account_id, EventKind.DATA_PURGED, None, now, calls=deleted.rowcount)
        purged.append(account_id)
    return purged


def open_accounts_count(session: Session, account_ids: list[int],
                        now: datetime | None = None) -> int:
    """How many of these accounts are not closed for good (canceled over 60 days ago)."""
    now = now or clock_now()
    return session.scalar(select(func.count()).select_from(Account).where(
        Account.id.in_(account_ids),
        (Account.canceled_at.is_(None)) | (Account.canceled_at >= now - rules.DATA_RETENTION),
    ))
