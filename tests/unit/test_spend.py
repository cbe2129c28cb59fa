"""Where the money goes (issue 17): spend by day and item read back from the ledger, the
balance at each day's end, the burn-rate projection, this month against last month at a
UTC month boundary, and an agency's spend by sub-account."""

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from portal import clock, rules
from portal.models import BillingMode, Cause, LedgerEntry, LedgerKind
from portal.services import accounts, ledger, spend, usage
from tests import factories as f

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


def _usage(session, account, when, key, **items):
    with clock.at(when):
        return usage.post(session, account, items, key).entry


def _fee(session, account, when, cents, kind=LedgerKind.PLAN_FEE, key=None):
    return ledger.post(session, account, kind, -cents, f"{kind.value} {key}", key or f"k{when}",
                       Cause.JOB, now=when)


def test_usage_items_are_priced_from_the_description_and_add_up_to_the_debit():
    p = rules.USAGE_PRICES
    text = "Usage: 1,284 minutes, 2 numbers, 1 transcription minute"
    debited = 1284 * p["minutes"] + 2 * p["numbers"] + p["transcriptions"]
    assert spend.usage_items(text, debited) == {
        "minutes": 1284 * p["minutes"], "numbers": 2 * p["numbers"],
        "transcriptions": p["transcriptions"]}
    # On the agency's ledger, naming the sub-account (whose name may hold "): ").
    assert spend.usage_items("Usage (A): B): 3 minutes", 3 * p["minutes"]) == {
        "minutes": 3 * p["minutes"]}
    # A description cut at 200 characters: what it no longer tells is "Other usage".
    cut = spend.usage_items("Usage: 10 minutes, 4 enhanced caller ID loo", 10 * p["minutes"] + 60)
    assert cut == {"minutes": 10 * p["minutes"], "other": 60}
    # Priced otherwise than today: no item is told wrong.
    assert spend.usage_items("Usage: 10 minutes", 1) == {"other": 1}
    # A day's postings with the same description, grouped: each posting's items, times them.
    cache: dict = {}
    three = spend.usage_items("Usage: 2 numbers", 3 * 2 * p["numbers"], 3, cache)
    assert three == {"numbers": 6 * p["numbers"]} and "Usage: 2 numbers" in cache
    assert spend.usage_items("Usage: 2 numbers", 2 * 2 * p["numbers"], 2, cache) == {
        "numbers": 4 * p["numbers"]}


def test_sums_per_day_and_item_equal_the_ledger(session):
    account = f.standalone(session)
    f.funds(session, account, 50_000, when=NOW - timedelta(days=40))
    _usage(session, account, NOW - timedelta(days=35), "old", minutes=1000)  # before 30 days
    _usage(session, account, NOW - timedelta(days=3, hours=2), "a", minutes=100, numbers=2)
    _usage(session, account, NOW - timedelta(days=3, hours=1), "b", minutes=7,
           transcriptions=30)
    _fee(session, account, datetime(2026, 12, 1, 0, 5, tzinfo=UTC), 4_900, key="fee")
    _fee(session, account, datetime(2026, 12, 1, 0, 6, tzinfo=UTC), 123, LedgerKind.TAX, "tax")
    _usage(session, account, NOW - timedelta(days=1), "c", enhanced_caller_id=4,
           encrypted_recording=9)
    f.funds(session, account, 2_500, when=NOW - timedelta(days=1))  # not spend
    session.commit()

    pic = spend.picture(session, account, 30, now=NOW)
    entries = session.scalars(select(LedgerEntry).where(LedgerEntry.account_id == account.id)
                              .order_by(LedgerEntry.created_at, LedgerEntry.id)).all()
    assert len(pic.days) == 30 and pic.days[-1].day == NOW.date()
    assert pic.days[0].day == NOW.date() - timedelta(days=29)
    for day in pic.days:
        that_day = [e for e in entries if e.created_at.date() == day.day]
        spent = -sum(e.amount_cents for e in that_day if e.kind in spend.SPEND_KINDS)
        assert day.total == spent, day.day
        earlier = [e for e in entries if e.created_at.date() <= day.day]
        assert day.balance == (earlier[-1].balance_after_cents if earlier else 0), day.day
    p = rules.USAGE_PRICES
    assert pic.totals == {
        "minutes": 107 * p["minutes"], "numbers": 2 * p["numbers"],
        "transcriptions": 30 * p["transcriptions"],
        "enhanced_caller_id": 4 * p["enhanced_caller_id"],
        "encrypted_recording": 9 * p["encrypted_recording"], "plan_fee": 4_900, "tax": 123}
    assert pic.items == ["minutes", "numbers", "transcriptions", "enhanced_caller_id",
                         "encrypted_recording", "plan_fee", "tax"]
    assert pic.days[-1].balance == account.balance_cents
    # 90 days take in the older usage too.
    assert spend.picture(session, account, 90, now=NOW).totals["minutes"] == 1107 * p["minutes"]


def test_this_month_against_last_month_at_the_utc_month_boundary(session):
    account = f.standalone(session)
    f.funds(session, account, 100_000, when=datetime(2026, 10, 1, tzinfo=UTC))
    _usage(session, account, datetime(2026, 11, 1, 0, 0, 0, tzinfo=UTC), "n1", minutes=10)
    _usage(session, account, datetime(2026, 11, 2, 12, tzinfo=UTC), "n2", minutes=20)
    _usage(session, account, datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC), "n30", minutes=40)
    _usage(session, account, datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC), "d1", minutes=80)
    session.commit()
    m = rules.USAGE_PRICES["minutes"]

    first_second = spend.picture(session, account, 30,
                                 now=datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))
    assert first_second.this_month == 80 * m  # Dec 1 00:00:00 is December's
    assert first_second.last_month == 70 * m  # Nov 30 23:59:59 is November's
    assert first_second.last_month_to_date == 10 * m  # Nov 1 only, against Dec 1
    assert (first_second.month_label, first_second.last_month_label) == (
        "December 2026", "November 2026")

    last_second = spend.picture(session, account, 30,
                                now=datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))
    assert last_second.this_month == 70 * m
    assert last_second.last_month == 0  # October: only a payment


def test_month_to_date_of_a_shorter_last_month_stops_at_its_end(session):
    account = f.standalone(session)
    f.funds(session, account, 100_000, when=datetime(2027, 1, 1, tzinfo=UTC))
    _usage(session, account, datetime(2027, 2, 28, 9, tzinfo=UTC), "f28", minutes=5)
    _usage(session, account, datetime(2027, 3, 31, 9, tzinfo=UTC), "m31", minutes=9)
    session.commit()
    pic = spend.picture(session, account, 30, now=datetime(2027, 3, 31, 10, tzinfo=UTC))
    m = rules.USAGE_PRICES["minutes"]
    assert (pic.this_month, pic.last_month, pic.last_month_to_date) == (9 * m, 5 * m, 5 * m)


def test_burn_rate_projection():
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    # $100 above the $20 threshold, $300 spent in 30 days ($10 a day): below it in 8 days.
    p = spend.project(10_000, 30_000, 2_000, now)
    assert (p.burn_per_day, p.when, p.target, p.auto_recharge, p.already) == (
        1_000, date(2026, 12, 11), 2_000, True, False)
    # Exactly on the threshold is not below it: the day it drops past is the next moment.
    assert spend.project(2_000, 30_000, 2_000, now).when == date(2026, 12, 3)
    # 9.6 hours of spend left: later the same UTC day; 13 hours: the next day.
    assert spend.project(2_400, 30_000, 2_000, now).when == date(2026, 12, 3)
    assert spend.project(2_542, 30_000, 2_000, now).when == date(2026, 12, 4)
    # No auto recharge: when the balance goes below $0.
    off = spend.project(10_000, 30_000, None, now)
    assert (off.target, off.auto_recharge, off.when) == (0, False, date(2026, 12, 13))
    # Nothing spent: nothing to project; already below: due now.
    assert spend.project(10_000, 0, 2_000, now).when is None
    assert spend.project(1_000, 0, 2_000, now).already


def test_upcoming_plan_fee_date_amount_and_card(session):
    account = f.standalone(session, plan="Pro")
    card = f.card(session, account, role="primary")
    settings = f.recharge_settings(session, account, "20", "100")
    session.commit()
    pic = spend.upcoming(account, spend.picture(session, account, 30, now=NOW), settings, None,
                         now=NOW)
    assert (pic.next_fee.due, pic.next_fee.amount, pic.next_fee.method) == (
        date(2027, 1, 1), rules.PLAN_FEES["Pro"], None)
    settings.direct_charge = True
    pic = spend.upcoming(account, pic, settings, card, now=NOW)
    assert pic.next_fee.method is card
    assert pic.projection.auto_recharge and pic.projection.target == 2_000
    sub = f.sub(session, f.agency(session), billing=BillingMode.CUSTOMER)
    assert spend.upcoming(sub, spend.picture(session, sub, 30, now=NOW), settings, None,
                          now=NOW).next_fee is None  # a sub-account pays no plan fee


def test_agency_spend_by_sub_account_this_month(session):
    agency = f.agency(session)
    f.funds(session, agency, 100_000, when=datetime(2026, 11, 1, tzinfo=UTC))
    paid_by_agency = f.sub(session, agency, "Bayside Dental")
    own = f.sub(session, agency, "Harbor Vet", billing=BillingMode.CUSTOMER)
    f.funds(session, own, 5_000, when=datetime(2026, 11, 1, tzinfo=UTC))
    quiet = f.sub(session, agency, "Quiet Co")
    other = f.sub(session, f.agency(session), billing=BillingMode.CUSTOMER)
    f.funds(session, other, 5_000, when=datetime(2026, 11, 1, tzinfo=UTC))
    _usage(session, paid_by_agency, datetime(2026, 12, 2, tzinfo=UTC), "x", minutes=100)
    _usage(session, paid_by_agency, datetime(2026, 11, 30, tzinfo=UTC), "old", minutes=999)
    _usage(session, own, datetime(2026, 12, 1, tzinfo=UTC), "y", numbers=3)
    _usage(session, other, datetime(2026, 12, 1, tzinfo=UTC), "z", numbers=5)
    session.commit()
    rows = spend.by_sub_account(session, agency, now=NOW)
    p = rules.USAGE_PRICES
    assert [(r.name, r.by_agency, r.by_customer, r.balance) for r in rows] == [
        ("Harbor Vet", 0, 3 * p["numbers"], 5_000 - 3 * p["numbers"]),
        ("Bayside Dental", 100 * p["minutes"], 0, 0)]
    assert quiet.id not in [r.id for r in rows]

    with clock.at(NOW):
        by_spend = accounts.list_sub_accounts(session, agency, sort="spend")
        by_spend_asc = accounts.list_sub_accounts(session, agency, sort="spend_asc")
        by_name = accounts.list_sub_accounts(session, agency)
    assert [(r.name, r.month_spend) for r in by_spend.items] == [
        ("Harbor Vet", 3 * p["numbers"]), ("Bayside Dental", 100 * p["minutes"]), ("Quiet Co", 0)]
    assert [r.name for r in by_spend_asc.items] == ["Quiet Co", "Bayside Dental", "Harbor Vet"]
    assert [r.name for r in by_name.items] == ["Bayside Dental", "Harbor Vet", "Quiet Co"]
    assert {r.name: r.balance_cents for r in by_name.items}["Harbor Vet"] == own.balance_cents


def test_the_chart_draws_every_day_item_and_balance():
    days = [spend.Day(date(2026, 12, 1), {"minutes": 500, "tax": 250}, balance=1_000),
            spend.Day(date(2026, 12, 2), {}, balance=-200)]
    pic = spend.Picture(1, 30, days, {"minutes": 500, "tax": 250}, 0, 0, 0, "", "")
    chart = spend.chart(pic)
    assert chart.top == 800  # $7.50 rounds up to $8
    assert [(b.item, b.cents, b.height) for b in chart.bars] == [("minutes", 500, 62.5),
                                                                 ("tax", 250, 31.25)]
    assert chart.bars[1].y + chart.bars[1].height == chart.bars[0].y  # stacked
    assert (chart.balance_low, chart.balance_high) == (-200, 1_000)
    assert chart.zero_y is not None and chart.threshold_y is None
    assert [spend.nice_top(c) for c in (1, 100, 101, 201, 251, 501, 801, 12_345)] == [
        100, 100, 150, 250, 300, 600, 1_000, 15_000]


def test_the_projected_recharge_waits_for_the_guardrails():
    """A stop after declined cards holds it with no date; the monthly cap holds a date in
    this month until the 1st (a date after the reset stands); today's limit holds it only
    when it is due today."""
    from portal.services.guardrails import Standing, Stop

    now = datetime(2026, 11, 20, 12, tzinfo=UTC)

    def held(reason, when=None, already=False, auto=True):
        stop = Stop(reason, "t", "d", "c") if reason else None
        p = spend.Projection(100, when, 2_000, auto, already=already)
        return spend.hold(p, Standing(0, 0, 0, stop), now)

    p = held("declines", date(2026, 12, 5))
    assert p.held.reason == "declines" and p.resumes is None
    p = held("cap", date(2026, 11, 25))
    assert p.held.reason == "cap" and p.resumes == date(2026, 12, 1)
    assert held("cap", already=True).resumes == date(2026, 12, 1)
    assert held("cap", date(2026, 12, 1)).held is None  # after the reset: the date stands
    assert held("daily", date(2026, 11, 20)).resumes == date(2026, 11, 21)
    assert held("daily", already=True).held is not None
    assert held("daily", date(2026, 11, 21)).held is None
    assert held(None, date(2026, 11, 25)).held is None
    assert held("declines", date(2026, 11, 25), auto=False).held is None  # no auto recharge
