"""Issue 17 (G), on the services: the recharge guardrails' edges (the monthly cap reached
exactly and what is left under it, its reset at the month's turn, the daily limit at the UTC
day boundary, the third declined recharge in a row, the restart after a payment or a new
card), each stop's state, what the recipients are told (alerts + outbox, once), and the
low-balance alert once per crossing."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock, jobs
from portal.errors import ConfirmationNeeded, ValidationFailed
from portal.models import (
    Account,
    Alert,
    AlertKind,
    BillingMode,
    BillingSettings,
    Charge,
    ChargePurpose,
    ChargeStatus,
    LedgerEntry,
    OutboxMessage,
    PaymentMethod,
    Role,
    User,
)
from portal.services import alerts, billing, charges, guardrails, usage
from portal.services.gateway import SandboxGateway
from tests import factories as f
from tests.unit.test_charges import DECLINES

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
VISA = "4242424242424242"
MINUTE = 5  # cents (rules.USAGE_PRICES["minutes"])


@pytest.fixture
def gw(app):
    clock.freeze(NOW - timedelta(hours=1))  # the cards are added before the postings
    return SandboxGateway()


def world(session, primary=VISA, backup=None, other=None, balance=2000, cap=None,
          daily_limit=None):
    """Harbor Dental: auto recharge below $10 up to $50, a $20 balance, an owner and an
    admin (the billing recipients), the cards added an hour before NOW."""
    admin = f.user(session, "admin@example.test")
    owner = f.user(session, "owner@example.test")
    account = f.standalone(session, "Harbor Dental", admin=admin)
    f.member(session, owner, account, Role.OWNER)
    if primary:
        f.card(session, account, primary)
    if backup:
        f.card(session, account, backup, role="backup")
    if other:
        f.card(session, account, other, role="other")
    billing.set_auto_recharge(session, account, "10", "50", cap=cap, daily_limit=daily_limit)
    if balance:
        f.funds(session, account, balance)
    session.commit()
    clock.freeze(NOW)
    return account


_keys = iter(range(1, 10**6))


def spend(session, gw, account, cents, when=None):
    """Usage of `cents` posted (and the recharge it starts, run), at `when` (else NOW)."""
    if when is not None:
        clock.freeze(when)
    received = usage.post_and_recharge(session, gw, account, {"minutes": cents // MINUTE},
                                       f"batch-{next(_keys)}")
    session.expire_all()
    return received.recharge


def recharges(session, account):
    return session.scalars(select(Charge).where(
        Charge.account_id == account.id, Charge.purpose == ChargePurpose.RECHARGE)
        .order_by(Charge.id)).all()


def alerts_of(session, kind):
    return session.scalars(select(Alert).where(Alert.kind == kind.value)
                           .order_by(Alert.id)).all()


def mail(session, kind="alert"):
    return session.execute(select(OutboxMessage.to_address, OutboxMessage.subject)
                           .where(OutboxMessage.kind == kind)
                           .order_by(OutboxMessage.id)).all()


def balance(session, account):
    return session.scalar(select(Account.balance_cents).where(Account.id == account.id))


def stop_of(session, account):
    settings = session.get(BillingSettings, account.id)
    return guardrails.standing(session, account, settings).stop


# --------------------------------------------------------------- the monthly cap

def test_the_recharge_that_reaches_the_cap_exactly_tells_the_recipients_once(session, gw):
    account = world(session, cap="90")
    assert spend(session, gw, account, 1500).amount_cents == 4500  # $20 - $15 = $5 -> $50
    assert alerts_of(session, AlertKind.CAP_REACHED) == []  # $45 of $90
    assert spend(session, gw, account, 4500).amount_cents == 4500  # $90: the cap, exactly
    [reached] = alerts_of(session, AlertKind.CAP_REACHED)
    assert reached.message == ("Auto recharge reached its monthly cap of $90.00 for November "
                               "2026: no more recharges until December 1 (00:00 UTC).")
    assert sorted(mail(session)) == [
        ("admin@example.test", "Monthly recharge cap reached for Harbor Dental"),
        ("owner@example.test", "Monthly recharge cap reached for Harbor Dental")]
    # past the cap: no recharge, the stop shown with how to clear it, told once only
    assert spend(session, gw, account, 4500) is None
    assert balance(session, account) == 500
    stop = stop_of(session, account)
    assert stop.reason == "cap"
    assert stop.detail == ("$90.00 was recharged in November 2026, the cap of $90.00: no more "
                           "recharges this month.")
    assert stop.clear == ("Recharges resume on December 1 (00:00 UTC), or raise or remove the "
                          "cap below.")
    assert spend(session, gw, account, 100) is None
    assert len(alerts_of(session, AlertKind.CAP_REACHED)) == 1
    assert len(mail(session)) == 2


def test_a_recharge_near_the_cap_charges_what_is_left_under_it(session, gw):
    account = world(session, cap="80")
    spend(session, gw, account, 1500)  # $45 recharged
    second = spend(session, gw, account, 4500)  # $45 needed, $35 left under the cap
    assert (second.amount_cents, second.status) == (3500, ChargeStatus.SUCCEEDED)
    assert second.description == "Auto recharge of Harbor Dental to $40.00"
    assert balance(session, account) == 4000
    assert len(alerts_of(session, AlertKind.CAP_REACHED)) == 1  # $80 of $80: reached


def test_the_cap_resets_at_the_months_turn_in_utc_and_says_so_once(session, gw):
    account = world(session, cap="45")
    spend(session, gw, account, 1500)  # $45: the cap
    assert spend(session, gw, account, 4500, when=datetime(2026, 11, 30, 23, 59, 59,
                                                             tzinfo=UTC)) is None
    # the jobs at the turn: one reset notice, once however often they run
    turn = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    clock.freeze(turn)
    by_name = {job.name: job for job in jobs.JOBS}
    assert by_name["recharge-caps"].run(session) == 1
    assert by_name["recharge-caps"].report(1) == "recharge-caps: 1 monthly cap reset(s) told"
    assert guardrails.cap_resets(session, turn) == 0
    [reset] = alerts_of(session, AlertKind.CAP_RESET)
    assert reset.message == "A new month: auto recharge is back on, up to $45.00 in December 2026."
    # and the next posting recharges again
    again = spend(session, gw, account, 100, when=turn + timedelta(minutes=1))
    assert (again.amount_cents, again.status) == (4500, ChargeStatus.SUCCEEDED)  # $46 due
    assert stop_of(session, account).reason == "cap"  # December's $45, reached in turn
    assert len(alerts_of(session, AlertKind.CAP_REACHED)) == 2  # November's, December's


def test_a_posting_after_the_turn_tells_the_reset_if_the_jobs_have_not(session, gw):
    account = world(session, cap="45")
    spend(session, gw, account, 1500)
    spend(session, gw, account, 4500)  # held back by the cap
    assert spend(session, gw, account, 100, when=datetime(2026, 12, 1, 0, 0, 1,
                                                            tzinfo=UTC)) is not None
    assert len(alerts_of(session, AlertKind.CAP_RESET)) == 1
    assert guardrails.cap_resets(session, datetime(2026, 12, 1, 0, 5, tzinfo=UTC)) == 0


def test_raising_the_cap_lifts_the_stop_and_reaching_it_again_is_told(session, gw):
    account = world(session, cap="45")
    spend(session, gw, account, 1500)
    assert spend(session, gw, account, 4500) is None  # $5 left, held back by the cap
    with pytest.raises(ConfirmationNeeded) as asked:  # raised: the recharge is due now
        charges.save_auto_recharge(session, account, "10", "50", cap="90", daily_limit="5")
    session.rollback()
    _settings, recharge = charges.save_auto_recharge(
        session, account, "10", "50", cap="90", daily_limit="5",
        confirmed=asked.value.subject.confirmation)
    session.commit()
    assert session.get(BillingSettings, account.id).recharge_cap_month == ""
    assert charges.run_recharge(session, gw, recharge).amount_cents == 4500  # $90 of $90
    session.expire_all()
    assert [a.message for a in alerts_of(session, AlertKind.CAP_REACHED)] == [
        "Auto recharge reached its monthly cap of $45.00 for November 2026: no more "
        "recharges until December 1 (00:00 UTC).",
        "Auto recharge reached its monthly cap of $90.00 for November 2026: no more "
        "recharges until December 1 (00:00 UTC)."]
    assert stop_of(session, account).reason == "cap"


# --------------------------------------------------------------- the daily limit

def test_the_daily_limit_counts_recharges_per_utc_day(session, gw):
    account = world(session, daily_limit="2")
    late = datetime(2026, 11, 23, 23, 59, 0, tzinfo=UTC)
    assert spend(session, gw, account, 1500, when=late) is not None
    assert spend(session, gw, account, 4500, when=late) is not None  # 2 of 2
    assert spend(session, gw, account, 4500,
                 when=datetime(2026, 11, 23, 23, 59, 59, 999999, tzinfo=UTC)) is None
    stop = stop_of(session, account)
    assert (stop.reason, stop.clear) == ("daily", "Recharges resume at 00:00 UTC, or raise "
                                                  "the limit below.")
    # 00:00:00 UTC is the next day: the next posting recharges
    clock.freeze(datetime(2026, 11, 24, 0, 0, tzinfo=UTC))
    assert stop_of(session, account) is None
    assert spend(session, gw, account, 100) is not None
    assert len(recharges(session, account)) == 3


def test_the_default_is_five_a_day(session, gw):
    account = world(session)
    assert session.get(BillingSettings, account.id).recharge_daily_limit == 5
    for _ in range(5):
        assert spend(session, gw, account, 4500) is not None
    assert spend(session, gw, account, 4500) is None
    assert stop_of(session, account).reason == "daily"


# --------------------------------------------------------------- declines in a row

def test_the_third_declined_recharge_in_a_row_stops_and_tells_the_recipients(session, gw):
    account = world(session, primary=DECLINES)
    for n in (1, 2):
        assert spend(session, gw, account, 100 if n > 1 else 1500).status == ChargeStatus.FAILED
        assert stop_of(session, account) is None
        assert alerts_of(session, AlertKind.RECHARGE_STOPPED) == []
    assert spend(session, gw, account, 100).status == ChargeStatus.FAILED  # the third
    stop = stop_of(session, account)
    assert stop.reason == "declines"
    assert stop.clear == ("It starts again when a payment succeeds or a card is added: make a "
                          "payment below, or add a card under Payment Methods.")
    [stopped] = alerts_of(session, AlertKind.RECHARGE_STOPPED)
    assert stopped.message == ("Auto recharge stopped: 3 recharges in a row were declined (the "
                               "last on Visa ending 0341: the card was declined).")
    assert sorted(to for to, _ in mail(session)) == ["admin@example.test", "owner@example.test"]
    # stopped: the next posting tries no card
    assert spend(session, gw, account, 100) is None
    assert len(recharges(session, account)) == 3


def test_a_decline_the_backup_paid_is_not_a_declined_recharge(session, gw):
    account = world(session, primary=DECLINES, backup=VISA)
    for _ in range(4):
        assert spend(session, gw, account, 4500).status == ChargeStatus.SUCCEEDED  # the Backup
    assert stop_of(session, account) is None
    assert alerts_of(session, AlertKind.RECHARGE_STOPPED) == []


def _stopped(session, gw, account):
    spend(session, gw, account, 1500)
    spend(session, gw, account, 100)
    spend(session, gw, account, 100)
    assert stop_of(session, account).reason == "declines"


def test_a_payment_that_succeeds_restarts_auto_recharge(session, gw):
    account = world(session, primary=DECLINES, other="5555555555554444")
    _stopped(session, gw, account)
    admin = session.scalar(select(User).where(User.email == "admin@example.test"))
    mastercard = session.scalar(select(PaymentMethod).where(
        PaymentMethod.account_id == account.id, PaymentMethod.last4 == "4444"))
    clock.freeze(NOW + timedelta(minutes=5))
    payment = charges.pay(session, account, admin, str(mastercard.id), "5.00",
                          charges.new_form_key())
    session.commit()
    assert charges.attempt(session, gw, payment).status == ChargeStatus.SUCCEEDED
    session.expire_all()
    assert stop_of(session, account) is None
    settings = session.get(BillingSettings, account.id)
    assert (settings.recharge_stopped_at, settings.recharge_declines) == (None, 0)
    # the next posting below the threshold tries the Primary again (declined: 1 in a row)
    assert spend(session, gw, account, 100).status == ChargeStatus.FAILED
    assert stop_of(session, account) is None


def test_a_card_added_restarts_auto_recharge(session, gw):
    account = world(session, primary=DECLINES)
    _stopped(session, gw, account)
    clock.freeze(NOW + timedelta(minutes=5))
    f.card(session, account, VISA, role="primary")
    session.commit()
    assert stop_of(session, account) is None
    recharge = spend(session, gw, account, 100)
    assert recharge is not None and recharge.status == ChargeStatus.SUCCEEDED
    assert balance(session, account) == 5000


# --------------------------------------------------------------- the settings

@pytest.mark.parametrize("cap, limit, errors", [
    ("-5", "5", {"cap": "The monthly cap must be more than zero."}),
    ("abc", "5", {"cap": "The monthly cap must be a dollar amount, like 25 or 25.00."}),
    ("20000000", "5", {"cap": "The monthly cap can be at most $1,000,000.00."}),
    ("", "0", {"daily_limit": "Enter how many recharges a day: a whole number from 1 to 50."}),
    ("", "51", {"daily_limit": "Enter how many recharges a day: a whole number from 1 to 50."}),
    ("", "2.5", {"daily_limit": "Enter how many recharges a day: a whole number from 1 to 50."}),
    ("", "", {"daily_limit": "Enter how many recharges a day: a whole number from 1 to 50."}),
    ("", "٣", {"daily_limit": "Enter how many recharges a day: a whole number from 1 to 50."}),
])
def test_bad_guardrails_are_refused_field_by_field(session, gw, cap, limit, errors):
    account = world(session, balance=0)
    with pytest.raises(ValidationFailed) as refused:
        billing.set_auto_recharge(session, account, "10", "50", cap=cap, daily_limit=limit)
    assert refused.value.errors == errors


def test_guardrails_left_out_are_unchanged_and_blank_cap_is_no_cap(session, gw):
    account = world(session, balance=0, cap="100", daily_limit="3")
    settings = billing.set_auto_recharge(session, account, "20", "60")  # older callers
    assert (settings.recharge_cap_cents, settings.recharge_daily_limit) == (10000, 3)
    settings = billing.set_auto_recharge(session, account, "20", "60", cap=" ",
                                         daily_limit="7")
    assert (settings.recharge_cap_cents, settings.recharge_daily_limit) == (None, 7)


# --------------------------------------------------------------- the low-balance alert

def test_the_low_balance_alert_is_sent_once_per_crossing(session, gw):
    account = world(session, primary=None, balance=3000)  # no card: no recharge
    alerts.set_low_balance(session, account, "20")
    session.commit()
    spend(session, gw, account, 500)  # $25: above
    assert alerts_of(session, AlertKind.LOW_BALANCE) == []
    spend(session, gw, account, 600)  # $19: crossed
    spend(session, gw, account, 600)  # $13: still below, no second alert
    [low] = alerts_of(session, AlertKind.LOW_BALANCE)
    assert low.message.startswith("The balance dropped below $20.00: it is $19.00 (")
    assert sorted(mail(session)) == [
        ("admin@example.test", "Low balance: Harbor Dental is below $20.00"),
        ("owner@example.test", "Low balance: Harbor Dental is below $20.00")]
    f.funds(session, account, 700)  # $20.00: back at the amount: armed again
    session.commit()
    assert len(alerts_of(session, AlertKind.LOW_BALANCE)) == 1
    spend(session, gw, account, 5)  # $19.95: the second crossing
    assert len(alerts_of(session, AlertKind.LOW_BALANCE)) == 2


def test_the_low_balance_alert_works_with_auto_recharge_too(session, gw):
    account = world(session, balance=3000)  # recharge below $10 up to $50
    alerts.set_low_balance(session, account, "15")
    session.commit()
    spend(session, gw, account, 2500)  # $5: crossed $15 (and $10: recharged to $50)
    assert len(alerts_of(session, AlertKind.LOW_BALANCE)) == 1
    assert balance(session, account) == 5000
    spend(session, gw, account, 4000)  # $10: crossed again after the recharge
    assert len(alerts_of(session, AlertKind.LOW_BALANCE)) == 2


def test_setting_the_alert_below_the_balance_now_tells_the_next_crossing(session, gw):
    account = world(session, primary=None, balance=1000)
    settings = alerts.set_low_balance(session, account, "20")  # $10 is below $20 already
    assert settings.low_balance_below is True
    session.commit()
    spend(session, gw, account, 100)
    assert alerts_of(session, AlertKind.LOW_BALANCE) == []
    with pytest.raises(ValidationFailed) as refused:
        alerts.set_low_balance(session, account, "twenty")
    assert refused.value.errors == {
        "low_balance": "The alert amount must be a dollar amount, like 25 or 25.00."}
    session.rollback()
    off = alerts.set_low_balance(session, account, "20", enabled=False)
    assert (off.low_balance_cents, off.low_balance_below) == (None, False)


def test_a_customer_billed_subs_alert_also_goes_to_its_billing_users(session, gw):
    agency = f.agency(session)
    sub = f.sub(session, agency, "Bayside Dental", billing=BillingMode.CUSTOMER)
    owner = f.user(session, "sub-owner@example.test")
    clerk = f.user(session, "clerk@example.test")
    f.member(session, owner, sub, Role.OWNER)
    f.member(session, clerk, sub, Role.BILLING)
    session.commit()
    told = [user.email for user in alerts.people(session, sub)]
    assert "clerk@example.test" in told and "sub-owner@example.test" in told
    assert len(told) == len(set(told))


def test_the_alerts_list_is_the_accounts_newest_first(session, gw):
    account = world(session, primary=None, balance=3000)
    other = f.standalone(session, "Elsewhere")
    alerts.set_low_balance(session, account, "20")
    session.commit()
    for n in range(12):
        alerts.send(session, account if n != 5 else other, AlertKind.LOW_BALANCE,
                    f"test:{n}", f"alert {n}", "subject",
                    now=NOW + timedelta(minutes=n))
    session.commit()
    listed = alerts.recent(session, account)
    assert [a.message for a in listed] == [f"alert {n}" for n in (11, 10, 9, 8, 7, 6, 4, 3,
                                                                  2, 1)]
    figures = guardrails.page(session, account, NOW)
    assert [a.message for a in figures.alerts] == [a.message for a in listed]
    assert alerts.send(session, account, AlertKind.LOW_BALANCE, "test:1", "again",
                       "subject") is None  # a key is told once
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) > 0


def test_the_processors_sentence_reads_inside_the_alerts_own():
    """Round two of issue 17: "Visa ending 0341, The card was declined" read badly."""
    assert guardrails.clause("The card was declined.") == "the card was declined"
    assert guardrails.clause("CVC check failed.") == "CVC check failed"
    assert guardrails.clause("") == "no reason given"
    long = guardrails.clause("Declined " * 50)
    assert long.startswith("declined Declined") and len(long) <= 160
