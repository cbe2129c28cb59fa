"""Where the money goes (issue 17): spend by day and item, balance over time, upcoming
charges, and an agency's spend by sub-account, all read from the ledger.

Spend is what the ledger debited for usage, plan fees and sales tax (payments, recharges,
refunds, transfers and adjustments are not spend). A usage entry is one posting of several
items ("Usage: 1,284 minutes, 2 numbers"); its items are read back from its description
(the text `usage.describe` wrote) and priced at the list prices; what a description no
longer tells (cut at 200 characters, or prices changed since) is "Other usage", so every
day's items add up to exactly what the ledger debited.

Each picture is one grouped query over the ledger (per day, kind and usage description),
whatever the number of days, items or sub-accounts.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import case, func, literal, or_, select
from sqlalchemy.orm import Session

from portal import rules
from portal.clock import now as clock_now
from portal.models import Account, BillingMode, LedgerEntry, LedgerKind
from portal.services.fees import month_start, previous_month_start

PERIODS = (30, 90)  # the chart's choices, in days
DEFAULT_PERIOD = 30
BURN_DAYS = 30  # the burn rate is the spend of the last 30 days
SHOWN_SUB_ACCOUNTS = 12  # an agency's chart: the 12 that spent most, then the rest as one row
SPEND_KINDS = (LedgerKind.USAGE, LedgerKind.PLAN_FEE, LedgerKind.TAX)

# Items in the order the chart stacks them: usage items, then fees, tax, the rest.
ITEM_LABELS = {
    "minutes": "Minutes",
    "numbers": "Numbers",
    "transcriptions": "Transcriptions",
    "enhanced_caller_id": "Enhanced caller ID",
    "encrypted_recording": "Encrypted recording",
    "plan_fee": "Plan fees",
    "tax": "Sales tax",
    "other": "Other usage",
}
ITEMS = tuple(ITEM_LABELS)
_BY_LABEL = {label: name for name, labels in rules.USAGE_LABELS.items() for label in labels}
_PART = re.compile(r"^([0-9][0-9,]*) (.+)$")


def parse_period(raw: str | None) -> int:
    """30 or 90 days: anything else is the default (a link's parameter, not a form)."""
    try:
        days = int(raw or "")
    except ValueError:
        return DEFAULT_PERIOD
    return days if days in PERIODS else DEFAULT_PERIOD


def _posted_items(description: str) -> dict[str, int]:
    """The cents per item of one posting, as its description tells them."""
    text = description.rpartition("): ")[2] if description.startswith("Usage (") \
        else description.partition(": ")[2]
    found: dict[str, int] = {}
    for part in text.split(", "):
        match = _PART.match(part)
        name = _BY_LABEL.get(match.group(2)) if match else None
        if name is None:
            continue  # a part cut short, or not an item
        cents = int(match.group(1).replace(",", "")) * rules.USAGE_PRICES[name]
        found[name] = found.get(name, 0) + cents
    return found


def usage_items(description: str, debited: int, postings: int = 1,
                cache: dict | None = None) -> dict[str, int]:
    """The cents per item of `postings` usage entries with this description that debited
    `debited` cents (positive) together; the items add up to `debited`, the difference
    being "other". `cache`: descriptions already read (a busy account repeats them)."""
    if cache is None:
        per_posting = _posted_items(description)
    elif (per_posting := cache.get(description)) is None:
        per_posting = cache[description] = _posted_items(description)
    found = {name: cents * postings for name, cents in per_posting.items()}
    told = sum(found.values())
    if told > debited:  # priced otherwise than today: tell no item wrong
        return {"other": debited}
    if debited - told:
        found["other"] = debited - told
    return found


def _day(session: Session, column):
    """The UTC calendar day of a timestamp, as text "YYYY-MM-DD", on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


@dataclass
class Day:
    day: date
    items: dict[str, int] = field(default_factory=dict)  # cents spent per item
    net: int = 0  # every entry's amount that day (+ credits, - debits)
    balance: int = 0  # at the end of the day (UTC)

    @property
    def total(self) -> int:
        return sum(self.items.values())


@dataclass
class Projection:
    """When the balance is expected to reach the recharge threshold (or zero without auto
    recharge), at the last 30 days' burn rate."""

    burn_per_day: int  # cents, rounded
    when: date | None  # None: no spend to project from
    target: int  # the balance it crosses: the threshold, or 0
    auto_recharge: bool
    already: bool = False  # the balance is below it now
    # A guardrail holding the recharge back (guardrails.Stop: declined cards, the monthly
    # cap, the daily limit) at the projected time: then no date is promised.
    held: object | None = None
    resumes: date | None = None  # when the cap or the daily limit lets it through again
    cap_left: int | None = None  # what the monthly cap still allows this month


@dataclass
class UpcomingFee:
    due: date
    amount: int
    method: object | None  # the Primary card it is charged to (Opt-in Direct Charge), else None


@dataclass
class Picture:
    account_id: int
    period: int
    days: list[Day]  # the period's days, oldest first, each one there even without spend
    totals: dict[str, int]  # cents per item over the period, items with spend only
    this_month: int
    last_month: int
    last_month_to_date: int  # last month up to the same day of the month
    month_label: str
    last_month_label: str
    projection: Projection | None = None
    next_fee: UpcomingFee | None = None

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def items(self) -> list[str]:
        return [name for name in ITEMS if name in self.totals]

    @property
    def peak(self) -> int:
        return max((d.total for d in self.days), default=0)

    @property
    def balance_range(self) -> tuple[int, int]:
        values = [d.balance for d in self.days] or [0]
        return min(0, *values), max(0, *values)


def picture(session: Session, account: Account, period: int = DEFAULT_PERIOD,
            now: datetime | None = None) -> Picture:
    """The last `period` days (today included, UTC) of `account`'s own ledger, by day and
    item, with its balance at each day's end and this month against last month. One query.
    """
    now = now or clock_now()
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=period - 1)
    this_start = month_start(now)
    last_start = previous_month_start(this_start)
    since = min(datetime(first.year, first.month, first.day, tzinfo=UTC), last_start)
    day = _day(session, LedgerEntry.created_at)
    described = case((LedgerEntry.kind == LedgerKind.USAGE, LedgerEntry.description),
                     else_=literal(""))
    rows = session.execute(
        select(day, LedgerEntry.kind, described, func.sum(LedgerEntry.amount_cents),
               func.count())
        .where(LedgerEntry.account_id == account.id, LedgerEntry.created_at >= since)
        .group_by(day, LedgerEntry.kind, described)).all()
    by_day: dict[str, Day] = {}
    read: dict[str, dict[str, int]] = {}
    for text, kind, description, amount, postings in rows:
        entry = by_day.get(text)
        if entry is None:
            entry = by_day[text] = Day(date.fromisoformat(text))
        amount = int(amount)  # PostgreSQL sums a BIGINT as NUMERIC
        entry.net += amount
        if kind not in SPEND_KINDS:
            continue
        if kind == LedgerKind.USAGE:
            parts = usage_items(description, -amount, postings, read)
        else:
            parts = {"plan_fee" if kind == LedgerKind.PLAN_FEE else "tax": -amount}
        for name, cents in parts.items():
            entry.items[name] = entry.items.get(name, 0) + cents
    # The balance at each day's end: today's is the balance now, each day before it the
    # next day's less what that day moved.
    days = []
    balance = account.balance_cents
    on = today
    while on >= first:
        entry = by_day.get(on.isoformat()) or Day(on)
        entry.balance = balance
        days.append(entry)
        balance -= entry.net
        on -= timedelta(days=1)
    days.reverse()
    totals: dict[str, int] = {}
    for entry in days:
        for name, cents in entry.items.items():
            totals[name] = totals.get(name, 0) + cents
    totals = {name: totals[name] for name in ITEMS if totals.get(name)}
    this_first, last_first = this_start.date(), last_start.date()
    same_day = last_first + (today - this_first)  # e.g. Nov 1-3 against Dec 1-3

    def spent(start: date, end: date) -> int:  # end inclusive
        return sum(d.total for d in by_day.values() if start <= d.day <= end)

    return Picture(
        account_id=account.id, period=period, days=days, totals=totals,
        this_month=spent(this_first, today),
        last_month=spent(last_first, this_first - timedelta(days=1)),
        last_month_to_date=spent(last_first, min(same_day, this_first - timedelta(days=1))),
        month_label=f"{this_start:%B %Y}", last_month_label=f"{last_start:%B %Y}")


def project(balance: int, spent_30_days: int, threshold: int | None, now: datetime) -> Projection:
    """The day the balance, falling at the last 30 days' rate, goes below `threshold` (the
    auto recharge threshold: the recharge is made then), or below zero without one."""
    target = threshold if threshold is not None else 0
    burn = (spent_30_days + BURN_DAYS // 2) // BURN_DAYS
    if balance < target:
        return Projection(burn, now.date(), target, threshold is not None, already=True)
    if spent_30_days <= 0:
        return Projection(0, None, target, threshold is not None)
    # Below the target once it has fallen more than (balance - target): integer seconds.
    seconds = ((balance - target) * BURN_DAYS * 86400) // spent_30_days + 1
    when = (now + timedelta(seconds=seconds)).astimezone(UTC).date()
    return Projection(burn, when, target, threshold is not None)


def hold(projection: Projection, standing, now: datetime) -> Projection:
    """The recharge guardrails' say on a projected recharge (`standing`: guardrails.Standing).
    Stopped after declined cards: no date until a payment succeeds or a card is added. The
    monthly cap reached: none before the 1st of next month, so a date in this month is held.
    Today's limit reached: none before 00:00 UTC, so a date today is held."""
    stop = standing.stop if standing is not None else None
    if not projection.auto_recharge or stop is None:
        return projection
    today = now.astimezone(UTC).date()
    due = today if projection.already else projection.when
    if stop.reason == "declines":
        projection.held = stop
    elif stop.reason == "cap":
        resumes = month_start(month_start(now) + timedelta(days=32)).date()
        if due is not None and due < resumes:
            projection.held, projection.resumes = stop, resumes
    elif stop.reason == "daily" and due is not None and due <= today:
        projection.held, projection.resumes = stop, today + timedelta(days=1)
    return projection


def upcoming(account: Account, pic: Picture, settings, primary,
             now: datetime | None = None, standing=None) -> Picture:
    """Add the next plan fee and the recharge projection to `pic`. `settings` are the
    account's billing settings, `primary` its Primary method (or None), `standing` the
    recharge guardrails' figures (guardrails.Standing: a stop holds the recharge back)."""
    now = now or clock_now()
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=BURN_DAYS - 1)
    spent = sum(d.total for d in pic.days if first <= d.day <= today)
    pic.projection = hold(project(account.balance_cents, spent,
                                  settings.recharge_threshold_cents if settings.auto_recharge
                                  else None, now), standing, now)
    cap = getattr(settings, "recharge_cap_cents", None)
    if settings.auto_recharge and cap is not None and standing is not None \
            and pic.projection.held is None:
        pic.projection.cap_left = max(cap - standing.month_cents, 0)
    fee = rules.PLAN_FEES.get(account.plan, 0) if not account.is_sub else 0
    if fee and not account.is_canceled:
        nxt = month_start(month_start(now) + timedelta(days=32)).date()
        pic.next_fee = UpcomingFee(nxt, fee, primary if settings.direct_charge else None)
    return pic


@dataclass
class SubSpend:
    id: int
    name: str
    billing_mode: BillingMode
    balance: int  # its own balance (customer billing); 0 on agency billing
    by_agency: int  # spent this month from the agency's balance
    by_customer: int  # spent this month from its own balance

    @property
    def total(self) -> int:
        return self.by_agency + self.by_customer

    @property
    def customer_billed(self) -> bool:
        return self.billing_mode == BillingMode.CUSTOMER


def month_spend_query(agency_id: int, start: datetime):
    """A subquery of each sub-account's spend since `start` (cents, positive): `sub_id`,
    `by_agency` (debits on the agency's ledger naming it) and `by_customer` (its own
    ledger's). One pass over the month's entries of the agency and its sub-accounts."""
    subs = select(Account.id).where(Account.parent_id == agency_id)
    sub_id = func.coalesce(LedgerEntry.for_account_id, LedgerEntry.account_id)
    on_agency = LedgerEntry.account_id == agency_id
    return (
        select(sub_id.label("sub_id"),
               func.sum(case((on_agency, -LedgerEntry.amount_cents), else_=0)).label("by_agency"),
               func.sum(case((on_agency, 0), else_=-LedgerEntry.amount_cents)).label("by_customer"))
        .where(LedgerEntry.kind.in_(SPEND_KINDS), LedgerEntry.created_at >= start,
               or_(on_agency & LedgerEntry.for_account_id.is_not(None),
                   LedgerEntry.account_id.in_(subs)))
        .group_by(sub_id).subquery("month_spend"))


def by_sub_account(session: Session, agency: Account, now: datetime | None = None
                   ) -> list[SubSpend]:
    """This month's spend of each of the agency's sub-accounts with any, most first. One
    query."""
    start = month_start(now or clock_now())
    spend = month_spend_query(agency.id, start)
    rows = session.execute(
        select(Account.id, Account.name, Account.billing_mode, Account.balance_cents,
               spend.c.by_agency, spend.c.by_customer)
        .join(spend, spend.c.sub_id == Account.id)
        .where(Account.parent_id == agency.id)
        .order_by((spend.c.by_agency + spend.c.by_customer).desc(), Account.name, Account.id)
    ).all()
    return [SubSpend(id_, name, mode, balance if mode == BillingMode.CUSTOMER else 0,
                     int(a or 0), int(c or 0))
            for id_, name, mode, balance, a, c in rows if int(a or 0) + int(c or 0)]


# The charts' geometry (drawn by templates/macros/charts.html): an SVG viewBox of
# BAR_STEP units a day by CHART_HEIGHT, stretched to the page's width; its labels are HTML
# around it, so they keep their size on a phone.
BAR_STEP, CHART_HEIGHT = 10, 100


def nice_top(cents: int) -> int:
    """The axis's top: 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten dollars (in
    cents), the least at or above `cents`: round labels, and a chart at least 2/3 used."""
    if cents <= 0:
        return 100
    step = 100
    while True:
        for factor in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8):
            top = int(step * factor)
            if top >= cents:
                return top
        step *= 10


@dataclass(frozen=True)
class Bar:
    x: int
    y: float
    height: float
    item: str
    cents: int
    day: date


@dataclass(frozen=True)
class Chart:
    width: int
    top: int  # the spend axis's top, cents
    bars: list[Bar]
    balance_low: int
    balance_high: int
    balance_points: str  # the polyline's points
    zero_y: float | None  # where the balance axis crosses $0 (None: off the chart)
    threshold_y: float | None  # the auto recharge threshold's line

    @property
    def gridlines(self) -> list[float]:
        return [CHART_HEIGHT * k / 4 for k in (1, 2, 3)]


def chart(pic: Picture) -> Chart:
    top = nice_top(pic.peak)
    bars = []
    for i, day in enumerate(pic.days):
        base = float(CHART_HEIGHT)
        for name in ITEMS:
            cents = day.items.get(name, 0)
            if cents <= 0:
                continue
            height = cents * CHART_HEIGHT / top
            base -= height
            bars.append(Bar(i * BAR_STEP + 1, base, height, name, cents, day.day))
    low, high = pic.balance_range
    threshold = pic.projection.target if pic.projection and pic.projection.auto_recharge \
        else None
    if threshold is not None:
        high = max(high, threshold)
    high = nice_top(high) if high > 0 else 0
    low = -nice_top(-low) if low < 0 else 0
    span = (high - low) or 100

    def y(cents: int) -> float:
        return round(CHART_HEIGHT - (cents - low) * CHART_HEIGHT / span, 2)

    points = " ".join(f"{i * BAR_STEP + BAR_STEP / 2:g},{y(d.balance):g}"
                      for i, d in enumerate(pic.days))
    return Chart(len(pic.days) * BAR_STEP, top, bars, low, high, points,
                 y(0) if low < 0 else None, y(threshold) if threshold is not None else None)
