"""Account lifecycle: pause, stop, resume, close, reactivate, the 60/90-day windows after a
close, the account's event log, and the purge of closed accounts' data.

Beside it: support requests (services/support.py), an agency's cancel and transfer-out
(services/agency.py), released numbers and their restore (services/numbers.py).

Every change is a conditional UPDATE that must match exactly the rows it expects, so a
double-clicked "Proceed" or two requests at once change things once; the loser gets a clear
message. Each action appends an AccountEvent (who, when, what). Closing and reactivating
email the people they affect (mail.notices.people_told), once per event per person, in the
same transaction.
"""

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, joinedload

from portal import rules
from portal.clock import now as clock_now
from portal.errors import DomainError, NotAllowed
from portal.mail import notices
from portal.models import (
    Account,
    AccountEvent,
    AccountStatus,
    Call,
    EventKind,
    NumberStatus,
    TrackingNumber,
    User,
)
from portal.services import ledger, people
from portal.transactions import scrub_after_commit

# Which states each Status-section action starts from (the rest are refused).
PAUSE_FROM = (AccountStatus.ACTIVE, AccountStatus.CALLS_STOPPED)
STOP_FROM = (AccountStatus.ACTIVE, AccountStatus.SWAPPING_PAUSED)
RESUME_FROM = (AccountStatus.SWAPPING_PAUSED, AccountStatus.CALLS_STOPPED,
               AccountStatus.BUDGET_PAUSED)  # issue 17: the agency lifts a budget pause


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
    # Issue 18 (W): every status change is recorded here, once, in its transaction: the
    # webhook event (account.paused/resumed/closed/reactivated, billing_mode.changed) too.
    from portal.services import webhooks

    webhooks.account_changed(session, account, kind, details, now)
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
    budget_paused = account.status == AccountStatus.BUDGET_PAUSED
    _set_status(session, account, AccountStatus.ACTIVE, RESUME_FROM,
                _status_refusal(account, "resume"), now)
    # A budget pause lifted stays lifted this month (budgets.paused_key) until a raised
    # budget is reached.
    record(session, account, EventKind.BUDGET_RESUMED if budget_paused else EventKind.RESUMED,
           actor, now, **({"reason": "resumed"} if budget_paused else {}))
    if budget_paused:
        ledger.pause_if_overdrawn(session, account, actor, now)


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
    AccountStatus.BUDGET_PAUSED: "its calls are paused: the month's budget was reached",
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
    released = cancel_now(session, account, actor, now)
    if released is None:
        raise NotAllowed(f"{account.name} is already canceled.")
    numbers = [n.number for n in released]
    event = record(session, account, EventKind.CLOSED, actor, now, released=numbers)
    notices.account_closed(session, account, event, actor, numbers)
    return released


# What else must stop when an account is closed, registered by other packages (the billing
# links revoke the account's pending billing requests), run in the closing transaction.
ON_CLOSE: list = []


def cancel_now(session: Session, account: Account, actor: User | None,
               now: datetime) -> list[TrackingNumber] | None:
    """Switch the account to canceled as of `now` (a conditional update: of two closes at
    once, one wins) and close it out. Returns the released numbers, or None when it was
    already canceled (it keeps its own date; the account is read again either way)."""
    result = session.execute(
        update(Account).where(Account.id == account.id,
                              Account.status != AccountStatus.CANCELED)
        .values(status=AccountStatus.CANCELED, canceled_at=now, updated_at=now))
    session.refresh(account)
    if result.rowcount != 1:
        return None
    return close_out(session, account, actor, now)


def close_out(session: Session, account: Account, actor: User | None,
              now: datetime) -> list[TrackingNumber]:
    """What follows an account's switch to canceled (here, and for an agency and its subs in
    services/agency.py): every active number released, its pending invitations revoked
    (people.revoke_for_closed), the ON_CLOSE hooks run. Returns the released numbers."""
    released = _release_all(session, account, actor, now)
    people.revoke_for_closed(session, account, now)
    for hook in ON_CLOSE:
        hook(session, account, now)
    return released


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
    event = record(session, account, EventKind.REACTIVATED, actor, now,
                   canceled_at=w.canceled_at)
    notices.account_reactivated(session, account, event, actor)


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
