"""Printable Statements: every card charge and every usage, fee and tax applied to the
balance in a date range (UTC, both ends inclusive), with the opening and closing balance
from the ledger and totals by kind. An agency's statement itemizes the usage of its
sub-accounts on agency billing.

A statement is for people (issue 17): usage is summed per day and item ("Nov 3 - Minutes:
1,284 min, $64.20"), payments, recharges, fees, taxes, refunds and adjustments keep a line
each; every posting, one a row, is the CSV beside it (`postings_csv`), so a 10,000-entry
quarter is a few pages, not 400.

And the recurring schedules: weekly or monthly, each period's statement sent once.
"""

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from portal import rules
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
from portal.services.calls import _csv_safe, csv_chunks, parse_range
from portal.services.inputs import clean_email
from portal.services.money import dollars, plain
from portal.transactions import begin_write

MAX_DAYS = 366 * 3

# The usage items as a statement names them: the column's heading and the quantity's unit.
ITEM_NAMES = {
    "minutes": ("Minutes", "min"),
    "transcriptions": ("Transcriptions", "min"),
    "enhanced_caller_id": ("Enhanced caller ID", "lookups"),
    "encrypted_recording": ("Encrypted recording", "min"),
    "numbers": ("Numbers", "numbers"),
}
_ONE = {"lookups": "lookup", "numbers": "number"}
OTHER = "other"  # a usage posting whose items can't be read from its description
ITEM_ORDER = (*ITEM_NAMES, OTHER)
_QUANTITY = re.compile(r"^(\d[\d,]*) (.+)$")
_LABEL_ITEMS = {label: name for name, labels in rules.USAGE_LABELS.items() for label in labels}


@dataclass
class UsageDay:
    """One day's usage: per item, the quantity and the cents (positive: what was spent)."""

    day: date
    items: dict = field(default_factory=dict)  # item -> [quantity, cents]
    postings: int = 0

    @property
    def cents(self) -> int:
        return sum(cents for _, cents in self.items.values())

    def line(self, item: str) -> str:
        """"Minutes: 1,284 min, $64.20" (the phone's and the screen reader's line)."""
        quantity, cents = self.items[item]
        amount = dollars(cents)
        if not quantity:
            return f"{item_name(item)[0]}: {amount}"
        return f"{item_name(item)[0]}: {quantity_text(item, quantity)}, {amount}"


def item_name(item: str) -> tuple[str, str]:
    return ITEM_NAMES.get(item, ("Other usage", ""))


def quantity_text(item: str, quantity: int) -> str:
    """"1,284 min", "1 number", "3 numbers"; "" for other usage (no quantity)."""
    if not quantity:
        return ""
    unit = item_name(item)[1]
    return f"{quantity:,} {_ONE.get(unit, unit) if quantity == 1 else unit}"


def usage_items(description: str, cents: int) -> dict[str, list[int]]:
    """A usage posting's items from its description ("Usage: 100 minutes, 3 transcription
    minutes" or "Usage (Bayside Dental): ..."), each with its share of `cents` (positive).
    The shares add up to `cents` exactly: priced at today's prices when they do, else split
    in proportion (prices changed since), the cents left over to the largest item; a
    description that names no item (cut short, or written by hand) is "other usage"."""
    if description.startswith("Usage ("):
        text = description.rpartition("): ")[2]
    else:
        text = description.partition(": ")[2]
    found: dict[str, int] = {}
    for part in text.split(", "):
        match = _QUANTITY.match(part)
        item = match and _LABEL_ITEMS.get(match.group(2))
        if not item:
            continue
        found[item] = found.get(item, 0) + int(match.group(1).replace(",", ""))
    priced = {item: rules.USAGE_PRICES[item] * quantity for item, quantity in found.items()}
    total = sum(priced.values())
    if not found or total <= 0:
        return {OTHER: [0, cents]}
    if total != cents:  # another price then: split the posting's own amount
        shares = {item: cents * value // total for item, value in priced.items()}
        largest = max(priced, key=priced.get)
        shares[largest] += cents - sum(shares.values())
        priced = shares
    return {item: [found[item], priced[item]] for item in found}


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
    usage_days: list = field(default_factory=list)  # UsageDay, oldest first
    items: list = field(default_factory=list)  # the usage items of the period, in order
    lines: list = field(default_factory=list)  # every entry but usage, oldest first

    @property
    def empty(self) -> bool:
        return not self.entries and not self.charges

    def item_name(self, item: str) -> tuple[str, str]:
        return item_name(item)

    def quantity(self, item: str, quantity: int) -> str:
        return quantity_text(item, quantity)

    @property
    def usage_postings(self) -> int:
        return sum(day.postings for day in self.usage_days)

    @property
    def item_totals(self) -> dict:
        """Per item of the period, [quantity, cents] (positive) over every day."""
        out = {item: [0, 0] for item in self.items}
        for day in self.usage_days:
            for item, (quantity, cents) in day.items.items():
                out[item][0] += quantity
                out[item][1] += cents
        return out

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
    days, items, lines = summarize(rows)
    return Statement(account, start, end, opening, closing, rows, card_charges, ordered,
                     dict(sorted(by_sub.items())), days, items, lines)


def summarize(rows) -> tuple[list[UsageDay], list[str], list]:
    """The usage summed per UTC day and item, the items seen, and every other entry."""
    days: dict[date, UsageDay] = {}
    lines = []
    seen = set()
    for row in rows:
        if row.kind != LedgerKind.USAGE:
            lines.append(row)
            continue
        when = row.created_at.date()
        day = days.get(when)
        if day is None:
            day = days[when] = UsageDay(when)
        day.postings += 1
        for item, (quantity, cents) in usage_items(row.description, -row.amount_cents).items():
            seen.add(item)
            total = day.items.setdefault(item, [0, 0])
            total[0] += quantity
            total[1] += cents
    for day in days.values():
        day.items = {item: day.items[item] for item in ITEM_ORDER if item in day.items}
    return list(days.values()), [item for item in ITEM_ORDER if item in seen], lines


# --------------------------------------------------------------- the postings as CSV

CSV_HEADER = ["posted_at_utc", "kind", "description", "sub_account", "amount",
              "balance_after", "reference"]


def postings_csv(session: Session, account: Account, start: date, end: date,
                 batch: int = 2000) -> Iterator[str]:
    """Every ledger entry of the statement's period (the same bounds as `build`), one a
    row, oldest first, in chunks: amounts in dollars (-12.34), times UTC; free text
    neutralised for spreadsheets (CSV injection)."""
    lower, upper = _bounds(start, end)
    sub = aliased(Account)
    result = session.execute(
        select(LedgerEntry.created_at, LedgerEntry.kind, LedgerEntry.description, sub.name,
               LedgerEntry.amount_cents, LedgerEntry.balance_after_cents,
               LedgerEntry.cause_ref)
        .outerjoin(sub, sub.id == LedgerEntry.for_account_id)
        .where(LedgerEntry.account_id == account.id, LedgerEntry.created_at >= lower,
               LedgerEntry.created_at < upper)
        .order_by(LedgerEntry.created_at, LedgerEntry.id)
        .execution_options(yield_per=batch))
    rows = ((created.strftime("%Y-%m-%dT%H:%M:%SZ"), LEDGER_LABELS[kind],
             _csv_safe(description), _csv_safe(name or ""), plain(amount), plain(after),
             _csv_safe(ref))
            for created, kind, description, name, amount, after, ref in result)
    yield from csv_chunks(CSV_HEADER, rows, batch)


def postings_csv_bytes(session: Session, account: Account, start: date, end: date) -> bytes:
    """The whole CSV (an email's attachment), UTF-8."""
    return "".join(postings_csv(session, account, start, end)).encode()


def csv_filename(account: Account, start: date, end: date) -> str:
    return f"statement-{account.id}-{start:%Y%m%d}-{end:%Y%m%d}-postings.csv"


# --------------------------------------------------------------- recipients and schedules

def recipient_choices(session: Session, account: Account) -> list[str]:
    return [user.email for user in billing.recipients(session, account)]


def parse_recipient(choice: str | None, other: str | None) -> str:
    return clean_email(other if (choice or "") == "other" else choice, "recipient",
                       "Choose who receives the statement, or enter an email address.")


def add_schedule(session: Session, account: Account, actor: User | None, frequency: str,
                 recipient: str) -> StatementSchedule:
    try:
        freq = ScheduleFrequency(frequency)
    except ValueError:
        raise ValidationFailed({"frequency": "Choose weekly or monthly."}) from None
    schedule = StatementSchedule(account_id=account.id, frequency=freq, recipient=recipient,
                                 created_by_id=actor.id if actor else None)
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
