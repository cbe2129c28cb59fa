"""Printable Statements (portal/services/statements.py): the opening and closing balance from
the ledger, totals by kind, card charges and usage in a range of whole UTC days (both ends
inclusive), an agency's usage by sub-account, the date checks, the recipient, and the
recurring schedules' periods (each claimed once).

The property test builds random ledger histories and checks the statement against the
ledger for random ranges."""

import random
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.errors import NotFound, ValidationFailed
from portal.models import (
    BillingMode,
    Cause,
    Charge,
    ChargeStatus,
    LedgerEntry,
    LedgerKind,
    Role,
    ScheduleFrequency,
    StatementSchedule,
)
from portal.services import billing, charges, ledger, statements, usage
from portal.services.gateway import SandboxGateway
from tests import factories as f

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
TINY = timedelta(microseconds=1)


def at(day: date, hour=0, minute=0, second=0, micro=0) -> datetime:
    return datetime.combine(day, time(hour, minute, second, micro), UTC)


def post(session, account, kind, cents, when, key=None, for_account=None):
    return ledger.post(session, account, kind, cents, f"{kind.value} {cents}",
                       key or f"{kind.value}-{when.isoformat()}-{cents}", Cause.JOB,
                       now=when, for_account=for_account)


@pytest.fixture
def solo(session):
    clock.freeze(NOW)
    admin = f.user(session, "pat@example.test")
    account = f.standalone(session, "Harbor Dental", admin=admin)
    session.commit()
    return account


# --------------------------------------------------------------- build

def test_opening_closing_and_totals_come_from_the_ledger(session, solo):
    post(session, solo, LedgerKind.PAYMENT, 10_000, at(date(2026, 10, 5), 9))
    post(session, solo, LedgerKind.USAGE, -1_250, at(date(2026, 10, 31), 23, 59, 59))
    # November
    post(session, solo, LedgerKind.PLAN_FEE, -17_900, at(date(2026, 11, 1)))
    post(session, solo, LedgerKind.TAX, -91, at(date(2026, 11, 1), 0, 0, 1))
    post(session, solo, LedgerKind.RECHARGE, 20_000, at(date(2026, 11, 2), 8))
    post(session, solo, LedgerKind.USAGE, -300, at(date(2026, 11, 3), 10))
    post(session, solo, LedgerKind.USAGE, -45, at(date(2026, 11, 20), 23, 59, 59, 999_999))
    # after the range
    post(session, solo, LedgerKind.USAGE, -5, at(date(2026, 11, 21)))
    session.commit()

    built = statements.build(session, solo, date(2026, 11, 1), date(2026, 11, 20))
    assert (built.start, built.end) == (date(2026, 11, 1), date(2026, 11, 20))
    assert built.opening_cents == 8_750
    assert built.totals == {LedgerKind.RECHARGE: 20_000, LedgerKind.USAGE: -345,
                            LedgerKind.PLAN_FEE: -17_900, LedgerKind.TAX: -91}
    assert list(built.totals) == [LedgerKind.RECHARGE, LedgerKind.USAGE, LedgerKind.PLAN_FEE,
                                  LedgerKind.TAX]  # in the ledger's order of kinds
    assert built.net_cents == 20_000 - 345 - 17_900 - 91
    assert built.closing_cents == 8_750 + built.net_cents == 10_414
    assert [e.amount_cents for e in built.entries] == [-17_900, -91, 20_000, -300, -45]
    assert built.entries[-1].balance_after_cents == built.closing_cents
    assert not built.empty
    assert built.charges == [] and built.by_sub == {}
    # up to today: the closing balance is the account's balance
    whole = statements.build(session, solo, date(2026, 10, 1), NOW.date())
    session.refresh(solo)
    assert (whole.opening_cents, whole.closing_cents) == (0, solo.balance_cents)
    assert sum(whole.totals.values()) == solo.balance_cents


def test_the_range_is_whole_utc_days_both_ends_inclusive(session, solo):
    start, end = date(2026, 11, 10), date(2026, 11, 12)
    times = {
        "day before, last instant": at(start) - TINY,
        "first instant": at(start),
        "middle": at(date(2026, 11, 11), 12),
        "last instant": at(end + DAY) - TINY,
        "day after, first instant": at(end + DAY),
    }
    for n, when in enumerate(sorted(times.values())):
        post(session, solo, LedgerKind.USAGE, -(10 ** n), when)
    session.commit()
    built = statements.build(session, solo, start, end)
    assert [e.created_at for e in built.entries] == [
        times["first instant"], times["middle"], times["last instant"]]
    assert built.opening_cents == -1
    assert built.totals == {LedgerKind.USAGE: -10 - 100 - 1000}
    assert built.closing_cents == -1111
    one_day = statements.build(session, solo, end + DAY, end + DAY)
    assert [e.amount_cents for e in one_day.entries] == [-10_000]
    assert (one_day.opening_cents, one_day.closing_cents) == (-1111, -11_111)


def test_entries_at_the_same_moment_keep_their_posting_order(session, solo):
    moment = at(date(2026, 11, 5), 9)
    for cents in (500, -200, -100, 50):
        post(session, solo, LedgerKind.ADJUSTMENT, cents, moment, key=f"adj-{cents}")
    session.commit()
    built = statements.build(session, solo, date(2026, 11, 5), date(2026, 11, 5))
    assert [e.balance_after_cents for e in built.entries] == [500, 300, 200, 250]
    assert built.closing_cents == 250
    after = statements.build(session, solo, date(2026, 11, 6), date(2026, 11, 6))
    assert (after.opening_cents, after.closing_cents, after.empty) == (250, 250, True)


def test_a_range_with_no_activity_is_empty_and_keeps_the_balance(session, solo):
    post(session, solo, LedgerKind.PAYMENT, 2_500, at(date(2026, 10, 1), 9))
    session.commit()
    built = statements.build(session, solo, date(2026, 11, 1), date(2026, 11, 20))
    assert built.empty
    assert (built.opening_cents, built.closing_cents, built.totals, built.net_cents) == (
        2_500, 2_500, {}, 0)
    assert (built.entries, built.charges, built.by_sub) == ([], [], {})
    never = statements.build(session, solo, date(2026, 1, 1), date(2026, 1, 31))
    assert (never.opening_cents, never.closing_cents, never.empty) == (0, 0, True)


def test_card_charges_in_the_range_succeeded_and_failed_but_not_pending(session, solo):
    gateway = SandboxGateway()
    visa = f.card(session, solo)
    declines = f.card(session, solo, "4000000000000341", role="backup")
    slow = f.card(session, solo, "4000000000000259", role="other")
    session.commit()

    def pay(method, amount, when):
        clock.freeze(when)
        charge = charges.pay(session, solo, None, str(method.id), amount,
                             charges.new_form_key())
        session.commit()
        return charges.attempt(session, gateway, charge)

    before = pay(visa, "5", at(date(2026, 10, 31), 23, 59, 59))
    ok = pay(visa, "25", at(date(2026, 11, 1)))
    failed = pay(declines, "30", at(date(2026, 11, 2), 10))
    pending = pay(slow, "35", at(date(2026, 11, 3), 10))
    ok_late = pay(visa, "40", at(date(2026, 11, 30), 23, 59))
    after = pay(visa, "45", at(date(2026, 12, 1)))
    assert [c.status for c in (before, ok, failed, pending, ok_late, after)] == [
        ChargeStatus.SUCCEEDED, ChargeStatus.SUCCEEDED, ChargeStatus.FAILED,
        ChargeStatus.PENDING, ChargeStatus.SUCCEEDED, ChargeStatus.SUCCEEDED]
    built = statements.build(session, solo, date(2026, 11, 1), date(2026, 11, 30))
    assert [c.id for c in built.charges] == [ok.id, failed.id, ok_late.id]
    assert built.opening_cents == 500
    assert built.totals == {LedgerKind.PAYMENT: 6_500}  # the failed one credits nothing
    assert built.closing_cents == 7_000
    # a range with only a failed charge is not empty: the charge is listed
    only_failed = statements.build(session, solo, date(2026, 11, 2), date(2026, 11, 2))
    assert [c.id for c in only_failed.charges] == [failed.id]
    assert not only_failed.empty and only_failed.totals == {}


def test_an_agency_statement_itemizes_its_agency_billed_sub_accounts_usage(session):
    clock.freeze(NOW)
    agency = f.agency(session, "Northwind Agency", owner=f.user(session))
    bayside = f.sub(session, agency, "Bayside Dental", billing=BillingMode.AGENCY)
    zenith = f.sub(session, agency, "Zenith Vets", billing=BillingMode.AGENCY)
    harbor = f.sub(session, agency, "Harbor Law", billing=BillingMode.CUSTOMER)
    session.commit()
    usage.post(session, bayside, {"minutes": 100}, "b-1")  # $5.00
    usage.post(session, bayside, {"numbers": 1}, "b-2")  # $3.00
    usage.post(session, zenith, {"transcriptions": 10}, "z-1")  # $0.30
    usage.post(session, agency, {"minutes": 20}, "a-1")  # the agency's own: $1.00
    usage.post(session, harbor, {"minutes": 1000}, "h-1")  # customer billing: its own balance
    session.commit()
    built = statements.build(session, agency, NOW.date(), NOW.date())
    assert built.by_sub == {"Bayside Dental": -800, "Zenith Vets": -30}
    assert list(built.by_sub) == ["Bayside Dental", "Zenith Vets"]
    assert built.totals == {LedgerKind.USAGE: -930}
    assert [e.description for e in built.entries] == [
        "Usage (Bayside Dental): 100 minutes", "Usage (Bayside Dental): 1 number",
        "Usage (Zenith Vets): 10 transcription minutes", "Usage: 20 minutes"]
    assert built.closing_cents == -930
    own = statements.build(session, harbor, NOW.date(), NOW.date())
    assert (own.totals, own.by_sub, own.closing_cents) == (
        {LedgerKind.USAGE: -5000}, {}, -5000)


# --------------------------------------------------------------- the property

CASES = 50
KINDS = list(LedgerKind)
WINDOW_START = date(2026, 1, 1)
WINDOW_DAYS = 90


def _random_moment(rng: random.Random) -> datetime:
    day = WINDOW_START + timedelta(days=rng.randrange(WINDOW_DAYS))
    shape = rng.random()
    if shape < 0.15:  # exactly midnight: the first instant of a day
        return at(day)
    if shape < 0.25:  # the last instant of a day
        return at(day + DAY) - TINY
    return at(day) + timedelta(microseconds=rng.randrange(86_400 * 10 ** 6))


def _expected(history, start: date, end: date):
    """What the statement must say, from the entries as posted (oldest first)."""
    lower, upper = at(start), at(end + DAY)
    earlier = [e for e in history if e[0] < lower]
    inside = [e for e in history if lower <= e[0] < upper]
    opening = earlier[-1][3] if earlier else 0
    totals = {}
    for _when, kind, cents, _after in inside:
        totals[kind] = totals.get(kind, 0) + cents
    return opening, {k: totals[k] for k in KINDS if k in totals}, len(inside)


def test_property_statement_totals_equal_the_ledger_for_random_ranges(session):
    clock.freeze(NOW)
    for case in range(CASES):
        rng = random.Random(case)
        account = f.standalone(session, f"Random {case}")
        # Entries are posted oldest first, as the clock runs when the services post them;
        # some share a moment.
        moments = sorted(_random_moment(rng) for _ in range(rng.randrange(0, 30)))
        for i in range(len(moments) - 1):
            if rng.random() < 0.1:
                moments[i + 1] = moments[i]
        history = []
        for i, when in enumerate(moments):
            kind = rng.choice(KINDS)
            cents = rng.choice([-1, 1]) * rng.randrange(1, 100_000)
            entry = post(session, account, kind, cents, when, key=f"case-{case}-{i}")
            history.append((when, kind, cents, entry.balance_after_cents))
        session.commit()
        assert [h[3] for h in history] == [sum(h[2] for h in history[:i + 1])
                                           for i in range(len(history))], case
        ranges = []
        for _ in range(6):
            first = WINDOW_START + timedelta(days=rng.randrange(-5, WINDOW_DAYS + 5))
            ranges.append((first, first + timedelta(days=rng.choice(
                [0, 0, 1, 6, rng.randrange(0, 60), rng.randrange(0, 120)]))))
        if moments:  # ranges that begin or end on an entry's own day
            pick = rng.choice(moments).date()
            ranges += [(pick, pick), (pick, pick + timedelta(days=3)),
                       (pick - timedelta(days=3), pick)]
        for start, end in ranges:
            built = statements.build(session, account, start, end)
            opening, totals, count = _expected(history, start, end)
            where = (case, start, end)
            assert built.opening_cents == opening, where
            assert built.totals == totals and list(built.totals) == list(totals), where
            assert len(built.entries) == count, where
            assert built.closing_cents == opening + sum(totals.values()), where
            assert built.net_cents == sum(totals.values()), where
            if built.entries:
                assert built.closing_cents == built.entries[-1].balance_after_cents, where
            assert built.empty == (count == 0), where  # no card charges here
            # issue 17: the usage summed per day and item spends what the ledger says, and
            # every other entry keeps its line
            assert sum(day.cents for day in built.usage_days) == -built.totals.get(
                LedgerKind.USAGE, 0), where
            assert built.usage_postings + len(built.lines) == count, where
            assert all(e.kind != LedgerKind.USAGE for e in built.lines), where
            assert all(start <= day.day <= end for day in built.usage_days), where
        # the statement up to the last entry ends at the account's balance
        session.refresh(account)
        whole = statements.build(session, account, WINDOW_START - DAY,
                                 WINDOW_START + timedelta(days=WINDOW_DAYS))
        assert whole.closing_cents == account.balance_cents, case
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) > CASES * 5


def test_the_balances_agree_when_entries_were_not_posted_in_time_order(session, solo):
    """Two postings at once: each reads the clock before it waits for the balance's row lock
    (ledger.post), so the one that read the clock first can post second. Its entry is then
    the older one by created_at but carries the newer balance. The statement must still
    agree with the ledger: closing = opening + net, and the whole history ends at the
    account's balance."""
    day = date(2026, 11, 10)
    post(session, solo, LedgerKind.PAYMENT, 10_000, at(day, 9, 0, 0, 2))  # posted first
    post(session, solo, LedgerKind.USAGE, -300, at(day, 9, 0, 0, 1))  # its clock read earlier
    session.commit()
    session.refresh(solo)
    assert solo.balance_cents == 9_700
    built = statements.build(session, solo, day, day)
    assert built.totals == {LedgerKind.PAYMENT: 10_000, LedgerKind.USAGE: -300}
    assert built.opening_cents == 0
    assert built.closing_cents == built.opening_cents + built.net_cents == 9_700
    later = statements.build(session, solo, day + DAY, day + DAY)
    assert later.opening_cents == later.closing_cents == 9_700


# --------------------------------------------------------------- dates and recipient

TODAY = date(2026, 11, 23)


@pytest.mark.parametrize("start,end,errors", [
    ("", "", {"from": "Choose the first day of the statement.",
              "to": "Choose the last day of the statement."}),
    (None, "2026-11-01", {"from": "Choose the first day of the statement."}),
    ("2026-11-01", "  ", {"to": "Choose the last day of the statement."}),
    ("11/01/2026", "2026-11-20", {"from": "From must be a date like 2026-11-23."}),
    ("2026-11-01", "2026-02-30", {"to": "To must be a date like 2026-11-23."}),
    ("2026-11-20", "2026-11-19", {"to": "To must be on or after From."}),
    ("2026-11-01", "2026-11-24", {"to": "The statement can't end after today."}),
    ("2026-12-01", "2026-12-31", {"to": "The statement can't end after today."}),
    ("2023-11-20", "2026-11-23", {"to": "A statement covers at most 3 years."}),  # 1,099 days
])
def test_a_bad_period_is_refused_with_messages(start, end, errors):
    with pytest.raises(ValidationFailed) as e:
        statements.parse_period(start, end, TODAY)
    assert e.value.errors == errors


@pytest.mark.parametrize("start,end", [
    ("2026-11-23", "2026-11-23"), ("2026-11-01", "2026-11-23"), (" 2026-01-01 ", "2026-01-31"),
    ("2023-11-21", "2026-11-23"),  # 1,098 days: the most a statement covers
])
def test_a_good_period(start, end):
    assert statements.parse_period(start, end, TODAY) == (
        date.fromisoformat(start.strip()), date.fromisoformat(end.strip()))


@pytest.mark.parametrize("choice,other,email", [
    ("pat@example.test", "", "pat@example.test"),
    ("Pat@Example.TEST", "ignored@example.test", "pat@example.test"),
    ("other", "  Books@Harbor.example ", "books@harbor.example"),
])
def test_the_recipient_is_a_choice_or_another_address(choice, other, email):
    assert statements.parse_recipient(choice, other) == email


@pytest.mark.parametrize("choice,other", [
    ("", ""), (None, None), ("other", ""), ("other", "not-an-address"),
    ("other", "a b@example.test"), ("other", "pat@localhost"),
    ("other", "x" * 250 + "@example.test"),
])
def test_a_bad_recipient_is_refused(choice, other):
    with pytest.raises(ValidationFailed) as e:
        statements.parse_recipient(choice, other)
    assert e.value.errors == {
        "recipient": "Choose who receives the statement, or enter an email address."}


def test_the_recipient_choices_are_the_billing_email_recipients(session):
    clock.freeze(NOW)
    owner, admin = f.user(session, "zed@example.test"), f.user(session, "amy@example.test")
    agency = f.agency(session, "Northwind", owner=owner)
    f.member(session, admin, agency, Role.ADMIN)
    f.member(session, f.user(session, "plain@example.test"), agency)
    assert statements.recipient_choices(session, agency) == [
        "amy@example.test", "zed@example.test"]
    billing.set_recipients(session, agency, [str(admin.id)])
    assert statements.recipient_choices(session, agency) == ["amy@example.test"]


# --------------------------------------------------------------- schedules and periods

@pytest.mark.parametrize("now,weekly,monthly", [
    # Monday Nov 23, 2026
    (datetime(2026, 11, 23, 0, 0, tzinfo=UTC),
     (date(2026, 11, 16), date(2026, 11, 22)), (date(2026, 10, 1), date(2026, 10, 31))),
    # Sunday Nov 22, 2026, the last instant
    (datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC),
     (date(2026, 11, 9), date(2026, 11, 15)), (date(2026, 10, 1), date(2026, 10, 31))),
    # New Year's Day (a Friday): the previous month is December of the year before
    (datetime(2027, 1, 1, 0, 0, tzinfo=UTC),
     (date(2026, 12, 21), date(2026, 12, 27)), (date(2026, 12, 1), date(2026, 12, 31))),
    # March 1st of a leap year
    (datetime(2028, 3, 1, 12, tzinfo=UTC),
     (date(2028, 2, 21), date(2028, 2, 27)), (date(2028, 2, 1), date(2028, 2, 29))),
])
def test_the_previous_period_is_the_last_whole_week_or_month(now, weekly, monthly):
    assert statements.previous_period(ScheduleFrequency.WEEKLY, now) == weekly
    assert statements.previous_period(ScheduleFrequency.MONTHLY, now) == monthly
    assert weekly[0].weekday() == 0 and weekly[1].weekday() == 6


def test_a_period_is_claimed_once(session, solo):
    user = f.user(session)
    schedule = statements.add_schedule(session, solo, user, "monthly", "pat@example.test")
    session.commit()
    assert statements.claim_due(session, schedule, NOW) == (date(2026, 10, 1),
                                                             date(2026, 10, 31))
    session.commit()
    assert statements.claim_due(session, schedule, NOW) is None
    session.rollback()
    assert statements.claim_due(session, schedule, NOW + timedelta(days=7)) is None
    session.rollback()
    session.refresh(schedule)
    assert schedule.last_period_start == datetime(2026, 10, 1, tzinfo=UTC)
    december = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert statements.claim_due(session, schedule, december) == (date(2026, 11, 1),
                                                                 date(2026, 11, 30))
    session.commit()
    # a clock set back never sends an older period again
    assert statements.claim_due(session, schedule, NOW) is None
    session.rollback()


def test_schedules_are_added_listed_and_removed_per_account(session, solo):
    user = f.user(session)
    rival = f.standalone(session, "Rival")
    weekly = statements.add_schedule(session, solo, user, "weekly", "pat@example.test")
    monthly = statements.add_schedule(session, solo, user, "monthly", "books@example.test")
    theirs = statements.add_schedule(session, rival, user, "monthly", "rival@example.test")
    session.commit()
    assert [(s.frequency, s.recipient, s.created_by_id, s.last_period_start)
            for s in statements.schedules(session, solo)] == [
        (ScheduleFrequency.WEEKLY, "pat@example.test", user.id, None),
        (ScheduleFrequency.MONTHLY, "books@example.test", user.id, None)]
    with pytest.raises(ValidationFailed) as e:
        statements.add_schedule(session, solo, user, "daily", "pat@example.test")
    assert e.value.errors == {"frequency": "Choose weekly or monthly."}
    session.rollback()
    with pytest.raises(NotFound):
        statements.remove_schedule(session, solo, theirs.id)
    statements.remove_schedule(session, solo, weekly.id)
    session.commit()
    assert [s.id for s in statements.schedules(session, solo)] == [monthly.id]
    assert session.get(StatementSchedule, theirs.id) is not None
    with pytest.raises(NotFound):
        statements.remove_schedule(session, solo, weekly.id)


def test_charges_are_not_counted_twice(session, solo):
    """A card charge is listed once under Card charges and its credit once in the totals."""
    visa = f.card(session, solo)
    session.commit()
    charge = charges.pay(session, solo, None, str(visa.id), "12.34", charges.new_form_key())
    session.commit()
    charges.attempt(session, SandboxGateway(), charge)
    built = statements.build(session, solo, NOW.date(), NOW.date())
    assert [c.amount_cents for c in built.charges] == [1234]
    assert built.totals == {LedgerKind.PAYMENT: 1234}
    assert session.scalar(select(func.count()).select_from(Charge)) == 1


# --------------------------------------------------------------- issue 17: short statements

def _usage(session, account, items, when, key):
    clock.freeze(when)
    entry = usage.post(session, account, items, key).entry
    clock.freeze(NOW)
    return entry


def test_usage_is_summed_per_day_and_item_and_the_rest_keeps_its_lines(session, solo):
    nov = lambda day, *hms: at(date(2026, 11, day), *hms)  # noqa: E731
    post(session, solo, LedgerKind.PAYMENT, 50_000, nov(2, 9))
    _usage(session, solo, {"minutes": 100}, nov(2, 23, 59, 59, 999_999) - TINY, "a")
    _usage(session, solo, {"minutes": 1_000, "transcriptions": 40}, nov(3, 0), "b")
    post(session, solo, LedgerKind.RECHARGE, 20_000, nov(3, 8))
    _usage(session, solo, {"minutes": 184, "numbers": 1}, nov(3, 9), "c")
    post(session, solo, LedgerKind.PLAN_FEE, -17_900, nov(3, 10))
    post(session, solo, LedgerKind.TAX, -91, nov(3, 10, 0, 1))
    post(session, solo, LedgerKind.ADJUSTMENT, 250, nov(3, 11))
    post(session, solo, LedgerKind.REFUND, 500, nov(3, 12))
    _usage(session, solo, {"enhanced_caller_id": 1, "encrypted_recording": 30}, nov(4, 1), "d")
    session.commit()
    before = statements.build(session, solo, date(2026, 11, 1), date(2026, 11, 4))

    built = statements.build(session, solo, date(2026, 11, 2), date(2026, 11, 4))
    assert [day.day for day in built.usage_days] == [date(2026, 11, d) for d in (2, 3, 4)]
    assert [day.items for day in built.usage_days] == [
        {"minutes": [100, 500]},
        {"minutes": [1_184, 5_920], "transcriptions": [40, 120], "numbers": [1, 300]},
        {"enhanced_caller_id": [1, 15], "encrypted_recording": [30, 60]},
    ]
    assert [day.postings for day in built.usage_days] == [1, 2, 1]
    assert built.items == ["minutes", "transcriptions", "enhanced_caller_id",
                           "encrypted_recording", "numbers"]
    nov3 = built.usage_days[1]
    assert nov3.line("minutes") == "Minutes: 1,184 min, $59.20"
    assert nov3.line("numbers") == "Numbers: 1 number, $3.00"
    assert built.usage_days[2].line("enhanced_caller_id") == "Enhanced caller ID: 1 lookup, $0.15"
    assert nov3.cents == 5_920 + 120 + 300
    assert built.item_totals == {"minutes": [1_284, 6_420], "transcriptions": [40, 120],
                                 "enhanced_caller_id": [1, 15],
                                 "encrypted_recording": [30, 60], "numbers": [1, 300]}
    # the totals are the ledger's, and so are the balances
    assert sum(day.cents for day in built.usage_days) == -built.totals[LedgerKind.USAGE] \
        == 500 + 6_340 + 75
    assert (built.opening_cents, built.closing_cents) == (0, before.closing_cents)
    session.refresh(solo)
    assert built.closing_cents == solo.balance_cents
    # every other entry is its own line, with its own balance after it
    assert [(e.kind, e.amount_cents) for e in built.lines] == [
        (LedgerKind.PAYMENT, 50_000), (LedgerKind.RECHARGE, 20_000),
        (LedgerKind.PLAN_FEE, -17_900), (LedgerKind.TAX, -91),
        (LedgerKind.ADJUSTMENT, 250), (LedgerKind.REFUND, 500)]
    assert [e.balance_after_cents for e in built.lines] == [
        50_000, 50_000 - 500 - 5_120 + 20_000, 64_380 - 1_220 - 17_900,
        45_260 - 91, 45_169 + 250, 45_419 + 500]
    assert built.usage_postings + len(built.lines) == len(built.entries) == 10
    # a day of the period's first instant counts in that day only
    one = statements.build(session, solo, date(2026, 11, 3), date(2026, 11, 3))
    assert [d.day for d in one.usage_days] == [date(2026, 11, 3)]
    assert one.opening_cents == 50_000 - 500


@pytest.mark.parametrize("description,cents,items", [
    ("Usage: 100 minutes", 500, {"minutes": [100, 500]}),
    ("Usage: 1,284 minutes, 1 number", 6_720, {"minutes": [1_284, 6_420],
                                               "numbers": [1, 300]}),
    ("Usage (Bayside Dental): 200 minutes", 1_000, {"minutes": [200, 1_000]}),
    ("Usage (A: b, c): 3 transcription minutes", 9, {"transcriptions": [3, 9]}),
    # priced otherwise then: the posting's own amount, split in proportion, exactly
    ("Usage: 100 minutes, 100 transcription minutes", 1_001,
     {"minutes": [100, 626], "transcriptions": [100, 375]}),
    ("usage 123", 123, {"other": [0, 123]}),
    ("Usage: 12 parsecs", 40, {"other": [0, 40]}),
    ("Usage: ", -40, {"other": [0, -40]}),
])
def test_a_postings_items_and_their_share_of_its_amount(description, cents, items):
    found = statements.usage_items(description, cents)
    assert found == items
    assert sum(share for _, share in found.values()) == cents


def _csv(session, account, start, end):
    import csv
    import io

    return list(csv.reader(io.StringIO(
        statements.postings_csv_bytes(session, account, start, end).decode())))


def test_the_csv_has_every_posting_of_the_period_once(session, solo):
    start, end = date(2026, 11, 10), date(2026, 11, 12)
    post(session, solo, LedgerKind.PAYMENT, 10_000, at(start) - TINY)  # before: not in it
    post(session, solo, LedgerKind.ADJUSTMENT, -1, at(start))  # the first instant
    for i in range(7):
        _usage(session, solo, {"minutes": i + 1}, at(date(2026, 11, 11), 9, i), f"u{i}")
    post(session, solo, LedgerKind.TAX, -1_234_567, at(end + DAY) - TINY)  # the last instant
    post(session, solo, LedgerKind.REFUND, 99, at(end + DAY))  # after: not in it
    session.commit()
    rows = _csv(session, solo, start, end)
    assert rows[0] == statements.CSV_HEADER == [
        "posted_at_utc", "kind", "description", "sub_account", "amount", "balance_after",
        "reference"]
    built = statements.build(session, solo, start, end)
    assert len(rows) - 1 == len(built.entries) == 9
    ids = [e.id for e in session.scalars(select(LedgerEntry).where(
        LedgerEntry.account_id == solo.id).order_by(LedgerEntry.created_at, LedgerEntry.id))]
    assert len(ids) == 11
    assert rows[1] == [at(start).strftime("%Y-%m-%dT%H:%M:%SZ"), "Adjustment",
                       "adjustment -1", "", "-0.01", "99.99", ""]
    assert rows[2][:5] == ["2026-11-11T09:00:00Z", "Usage", "Usage: 1 minute", "", "-0.05"]
    assert rows[-1][1:6] == ["Tax", "tax -1234567", "", "-12345.67",
                             statements.plain(built.closing_cents)]
    assert rows[-1][0] == "2026-11-12T23:59:59Z"
    # the cents as dollars add up to the statement's net change
    assert sum(round(float(r[4]) * 100) for r in rows[1:]) == built.net_cents
    assert len({tuple(r) for r in rows[1:]}) == 9  # each once


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+1+2", "-2+3", "@SUM(A1)",
                                  "\tTab", "=cmd|' /C calc'!A0"])
def test_the_csv_neutralises_spreadsheet_formulas(session, solo, text):
    ledger.post(session, solo, LedgerKind.ADJUSTMENT, 100, text, "formula", Cause.USER,
                now=at(date(2026, 11, 5), 9))
    session.commit()
    [_, row] = _csv(session, solo, date(2026, 11, 5), date(2026, 11, 5))
    assert row[2] == "'" + text
    assert row[4] == "1.00"


def test_the_csv_names_the_sub_account_of_agency_billed_usage(session):
    clock.freeze(NOW)
    agency = f.agency(session, "Northwind Agency", owner=f.user(session))
    bayside = f.sub(session, agency, "=Bayside", billing=BillingMode.AGENCY)
    session.commit()
    _usage(session, bayside, {"minutes": 20}, at(date(2026, 11, 5), 9), "bay-1")
    _usage(session, agency, {"numbers": 1}, at(date(2026, 11, 5), 10), "own-1")
    session.commit()
    rows = _csv(session, agency, date(2026, 11, 5), date(2026, 11, 5))
    assert [r[2:5] for r in rows[1:]] == [
        ["Usage (=Bayside): 20 minutes", "'=Bayside", "-1.00"],
        ["Usage: 1 number", "", "-3.00"]]
    built = statements.build(session, agency, date(2026, 11, 5), date(2026, 11, 5))
    assert built.usage_days[0].items == {"minutes": [20, 100], "numbers": [1, 300]}
    assert built.by_sub == {"=Bayside": -100}
