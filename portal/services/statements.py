"""Printable Statements: every card charge and every usage, fee and tax applied to the
balance in a date range (UTC, both ends inclusive), with the opening and closing balance
from the ledger and totals by kind. An agency's statement itemizes the usage of its
sub-accounts on agency billing.

And the recurring schedules: weekly or monthly, each period's statement sent once.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from portal.clock import now as clock_now
from portal.errors import NotFound, ValidationFailed
from portal.models import (
    LEDGER_LABELS,
    Account,
    Charge,
    ChargeStatus,
    LedgerEntry,
    LedgerKind,
    ScheduleFrequency,
    StatementSchedule,
    User,
)
from portal.services import billing
from portal.services.calls import parse_range
from portal.services.inputs import clean_email
from portal.transactions import begin_write

MAX_DAYS = 366 * 3


@dataclass
class Statement:
    account: Account
    start: date
    end: date  # inclusive
    opening_cents: int
    closing_cents: int
    entries: list  # ledger rows in the range, oldest first
    charges: list  # card charges in the range (succeeded and failed)
    totals: dict = field(default_factory=dict)  # LedgerKind -> cents
    by_sub: dict = field(default_factory=dict)  # sub-account name -> usage cents (agency)

    @property
    def empty(self) -> bool:
        return not self.entries and not self.charges

    @property
    def net_cents(self) -> int:
        return sum(self.totals.values())

    @property
    def labels(self) -> dict:
        return LEDGER_LABELS


def parse_period(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    when = parse_range(start, end)
    errors = {}
    if when.start is None:
        errors["from"] = "Choose the first day of the statement."
    if when.end is None:
        errors["to"] = "Choose the last day of the statement."
    if not errors and when.end > today:
        errors["to"] = "The statement can't end after today."
    if not errors and (when.end - when.start).days > MAX_DAYS:
        errors["to"] = "A statement covers at most 3 years."
    if errors:
        raise ValidationFailed(errors)
    return when.start, when.end


@dataclass(frozen=True)
class Preset:
    """A date range the Printable Statements dialog offers in one click."""

    label: str
    start: date
    end: date


def presets(today: date) -> list[Preset]:
    """This month (to date, the default), last month, last quarter (the last whole calendar
    quarter) and year to date."""
    month_start = today.replace(day=1)
    last_month_end = month_start - timedelta(days=1)
    quarter_start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    last_quarter_end = quarter_start - timedelta(days=1)
    last_quarter_start = date(last_quarter_end.year, last_quarter_end.month - 2, 1)
    return [
        Preset("This month", month_start, today),
        Preset("Last month", last_month_end.replace(day=1), last_month_end),
        Preset("Last quarter", last_quarter_start, last_quarter_end),
        Preset("Year to date", date(today.year, 1, 1), today),
    ]


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return (datetime.combine(start, time(), UTC),
            datetime.combine(end + timedelta(days=1), time(), UTC))


def build(session: Session, account: Account, start: date, end: date) -> Statement:
    lower, upper = _bounds(start, end)
    # Sums, not one entry's balance-after: entries posted at nearly the same moment can be
    # stamped in one order and applied in the other.
    opening = int(session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
            LedgerEntry.account_id == account.id, LedgerEntry.created_at < lower)) or 0)
    rows = list(session.execute(
        select(LedgerEntry.created_at, LedgerEntry.kind, LedgerEntry.description,
               LedgerEntry.amount_cents, LedgerEntry.balance_after_cents,
               LedgerEntry.for_account_id)
        .where(LedgerEntry.account_id == account.id, LedgerEntry.created_at >= lower,
               LedgerEntry.created_at < upper)
        .order_by(LedgerEntry.created_at, LedgerEntry.id)))
    totals: dict = defaultdict(int)
    sub_ids = set()
    for row in rows:
        totals[row.kind] += row.amount_cents
        if row.for_account_id:
            sub_ids.add(row.for_account_id)
    by_sub: dict = defaultdict(int)
    if sub_ids:
        names = {i: name for i, name in session.execute(
            select(Account.id, Account.name).where(Account.id.in_(sub_ids)))}
        for row in rows:
            if row.for_account_id and row.kind == LedgerKind.USAGE:
                by_sub[names[row.for_account_id]] += row.amount_cents
    # A card charge counts when it settled (when its money reached the balance).
    settled = func.coalesce(Charge.settled_at, Charge.created_at)
    card_charges = list(session.scalars(
        select(Charge).where(Charge.account_id == account.id, settled >= lower,
                             settled < upper, Charge.status != ChargeStatus.PENDING)
        .order_by(settled, Charge.id)))
    closing = opening + sum(row.amount_cents for row in rows)
    ordered = {kind: totals[kind] for kind in LedgerKind if kind in totals}
    return Statement(account, start, end, opening, closing, rows, card_charges, ordered,
                     dict(sorted(by_sub.items())))


# --------------------------------------------------------------- recipients and schedules

def recipient_choices(session: Session, account: Account) -> list[str]:
    return [user.email for user in billing.recipients(session, account)]


def parse_recipient(choice: str | None, other: str | None) -> str:
    return clean_email(other if (choice or "") == "other" else choice, "recipient",
                       "Choose who receives the statement, or enter an email address.")


def add_schedule(session: Session, account: Account, actor: User, frequency: str,
                 recipient: str) -> StatementSchedule:
    try:
        freq = ScheduleFrequency(frequency)
    except ValueError:
        raise ValidationFailed({"frequency": "Choose weekly or monthly."}) from None
    schedule = StatementSchedule(account_id=account.id, frequency=freq, recipient=recipient,
                                 created_by_id=actor.id)
    session.add(schedule)
    session.flush()
    return schedule


def schedules(session: Session, account: Account) -> list[StatementSchedule]:
    return list(session.scalars(select(StatementSchedule).where(
        StatementSchedule.account_id == account.id).order_by(StatementSchedule.id)))


def remove_schedule(session: Session, account: Account, schedule_id: int) -> None:
    schedule = session.scalar(select(StatementSchedule).where(
        StatementSchedule.id == schedule_id, StatementSchedule.account_id == account.id))
    if schedule is None:
        raise NotFound("No such schedule.")
    session.delete(schedule)
    session.flush()


def previous_period(frequency: ScheduleFrequency, now: datetime) -> tuple[date, date]:
    """The last whole week (Monday to Sunday) or month before `now`."""
    today = now.date()
    if frequency == ScheduleFrequency.WEEKLY:
        this_monday = today - timedelta(days=today.weekday())
        return this_monday - timedelta(days=7), this_monday - timedelta(days=1)
    first = today.replace(day=1)
    last = first - timedelta(days=1)
    return last.replace(day=1), last


def due_period(session: Session, schedule: StatementSchedule,
               now: datetime | None = None) -> tuple[date, date] | None:
    """The schedule's previous period when no run has claimed it yet (a read: claim_due
    takes it)."""
    now = now or clock_now()
    start, end = previous_period(schedule.frequency, now)
    period = datetime.combine(start, time(), UTC)
    due = session.scalar(select(StatementSchedule.id).where(
        StatementSchedule.id == schedule.id,
        (StatementSchedule.last_period_start.is_(None))
        | (StatementSchedule.last_period_start < period)))
    return (start, end) if due is not None else None


def claim_due(session: Session, schedule: StatementSchedule,
              now: datetime | None = None) -> tuple[date, date] | None:
    """Claim this schedule's previous period: a conditional update that only one run (of
    any number of concurrent ones) can win. None when that period was already sent."""
    now = now or clock_now()
    start, end = previous_period(schedule.frequency, now)
    period = datetime.combine(start, time(), UTC)
    begin_write(session)
    won = session.execute(
        update(StatementSchedule).where(
            StatementSchedule.id == schedule.id,
            (StatementSchedule.last_period_start.is_(None))
            | (StatementSchedule.last_period_start < period))
        .values(last_period_start=period)).rowcount
    return (start, end) if won == 1 else None
