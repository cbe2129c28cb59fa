"""Issue 14, items 3 and 8, on the services: the recharge a save would make is the one it
makes (recharge_due), each method's standing, the warning before a failing Primary, and the
notice when the Backup paid what the Primary declined (also when the Backup's answer came
on a retry)."""

from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from portal import clock
from portal.errors import ConfirmationNeeded
from portal.models import Charge, ChargeStatus, MethodRole, OutboxMessage, PaymentMethod
from portal.services import charges, payment_methods, usage
from portal.services.gateway import SandboxGateway
from tests import factories as f
from tests.unit.test_charges import DECLINES, NO_FUNDS, NOW, recharge_world

TIMES_OUT_ONCE = "4000000000000259"


@pytest.fixture
def gw(app):
    clock.freeze(NOW)
    return SandboxGateway()


def kinds(session) -> list[str]:
    return session.scalars(select(OutboxMessage.kind).order_by(OutboxMessage.id)).all()


def test_the_save_asks_for_exactly_what_start_recharge_records(session, gw):
    account = recharge_world(session, primary="4242424242424242", balance=2000)
    session.commit()
    with pytest.raises(ConfirmationNeeded) as asked:
        charges.save_auto_recharge(session, account, "30", "80")
    due = asked.value.subject
    assert asked.value.message == ("Saving charges $60.00 to Visa ending 4242 now, to bring the "
                                   "balance to $80.00.")
    assert (due.amount_cents, due.balance_cents, due.threshold_cents, due.target_cents) == (
        6000, 2000, 3000, 8000)
    session.rollback()
    assert session.scalars(select(Charge)).all() == []
    _settings, charge = charges.save_auto_recharge(session, account, "30", "80",
                                                   confirmed=due.confirmation)
    assert (charge.amount_cents, charge.method_id) == (due.amount_cents, due.method.id)
    assert charge.description == "Auto recharge of Harbor Dental to $80.00"


def test_nothing_is_due_while_a_recharge_is_in_flight(session, gw):
    account = recharge_world(session, primary="4242424242424242", balance=500)
    session.commit()
    assert charges.start_recharge(session, account) is not None  # pending
    session.commit()
    settings, charge = charges.save_auto_recharge(session, account, "30", "80")
    assert charge is None and settings.recharge_threshold_cents == 3000


def test_standing_reads_the_newest_settled_charge_and_the_expiry(session, gw):
    account = f.standalone(session)
    visa = f.card(session, account)
    ach = f.bank_account(session, account, "000123456789", routing="110000000", gateway=gw)
    f.card(session, account, NO_FUNDS)
    session.commit()
    methods, standing = payment_methods.listed(session, account)
    assert [m.id for m in methods][:2] == [visa.id, ach.id]
    assert standing[visa.id] == payment_methods.Standing(  # issue 16: days to its expiry
        expires_in_days=standing[visa.id].expires_in_days)
    assert standing[visa.id].expires_in_days > 30
    # A pending charge is no result yet; a failed one is, until a newer one settles.
    for status, code in ((ChargeStatus.FAILED, "insufficient_funds"),
                         (ChargeStatus.PENDING, "")):
        charge = charges.start(session, account, visa, charges.ChargePurpose.PAYMENT, 100,
                               f"k-{status}", "Payment")
        session.execute(update(Charge).where(Charge.id == charge.id).values(
            status=status, failure_code=code, settled_at=NOW - timedelta(days=3)))
    session.commit()
    state = payment_methods.standing(session, visa)
    assert (state.declined, state.failing, state.decline_reason) == (
        True, True, "insufficient funds")
    assert state.why_failing == ("its last charge was declined on Nov 20: insufficient funds")
    # Expiry: good through its month; an ACH never expires.
    session.execute(update(PaymentMethod).where(PaymentMethod.id == visa.id).values(
        exp_month=11, exp_year=2026))
    session.commit()
    _methods, standing = payment_methods.listed(session, account, today=date(2026, 11, 30))
    assert (standing[visa.id].expires_this_month, standing[visa.id].expired) == (True, False)
    _methods, standing = payment_methods.listed(session, account, today=date(2026, 12, 1))
    assert (standing[visa.id].expires_this_month, standing[visa.id].expired) == (False, True)
    assert standing[visa.id].why_failing == (
        "it has expired and its last charge was declined on Nov 20: insufficient funds")
    assert standing[ach.id] == payment_methods.Standing()


def test_a_failing_method_made_primary_needs_the_confirmation(session, gw):
    account = f.standalone(session)
    f.card(session, account)
    bad = f.card(session, account, DECLINES)
    charge = charges.start(session, account, bad, charges.ChargePurpose.PAYMENT, 100, "k1",
                           "Payment")
    session.commit()
    charges.attempt(session, gw, charge)
    with pytest.raises(ConfirmationNeeded) as asked:
        payment_methods.set_role(session, account, bad.id, "primary")
    assert asked.value.subject.declined
    session.rollback()
    assert payment_methods.set_role(session, account, bad.id, "backup").role == \
        MethodRole.BACKUP  # no question for the Backup
    assert payment_methods.set_role(session, account, bad.id, "primary",
                                    confirmed=True).role == MethodRole.PRIMARY


def test_the_backup_paying_on_a_retry_still_tells_the_recipients(session, gw):
    """The Backup's first answer never arrived (a timeout): the jobs' retry settles it, and
    the settlement queues the notice with the receipt."""
    account = recharge_world(session, primary=DECLINES, backup=TIMES_OUT_ONCE)
    first = usage.post(session, account, {"minutes": 300}, "batch-1").recharge
    session.commit()
    backup = charges.run_recharge(session, gw, first)
    assert backup.status == ChargeStatus.PENDING and kinds(session) == []
    clock.freeze(NOW + timedelta(hours=1))
    [done] = charges.retry_pending(session, gw)
    assert done.status == ChargeStatus.SUCCEEDED
    assert sorted(kinds(session)) == ["primary_declined", "primary_declined", "receipt",
                                      "receipt"]  # admin and owner, once each


def test_a_backup_paying_a_one_time_payment_tells_nobody_extra(session, gw):
    """Only an auto recharge falls back to the Backup: a payment that succeeded is a receipt."""
    account = recharge_world(session, primary="4242424242424242", backup=NO_FUNDS)
    visa = session.scalars(select(PaymentMethod).where(
        PaymentMethod.account_id == account.id, PaymentMethod.last4 == "4242")).one()
    charge = charges.start(session, account, visa, charges.ChargePurpose.PAYMENT, 100,
                           "k1:backup", "Payment")
    session.commit()
    charges.attempt(session, gw, charge)
    assert set(kinds(session)) == {"receipt"}


# --- issue 16: card health ------------------------------------------------------------------

def _settle(session, account, method, status, key):
    charge = charges.start(session, account, method, charges.ChargePurpose.PAYMENT, 100, key,
                           "Payment")
    session.execute(update(Charge).where(Charge.id == charge.id).values(
        status=status, failure_code="card_declined" if status == ChargeStatus.FAILED else "",
        settled_at=NOW))
    session.commit()


def test_declines_in_a_row_count_since_the_last_success_and_flag_at_two(session, gw):
    account = f.standalone(session)
    visa = f.card(session, account)
    session.commit()
    health = lambda: payment_methods.standing(session, visa)  # noqa: E731
    assert (health().declines_in_a_row, health().flagged) == (0, False)
    _settle(session, account, visa, ChargeStatus.FAILED, "a")
    assert (health().declines_in_a_row, health().flagged) == (1, False)
    _settle(session, account, visa, ChargeStatus.FAILED, "b")
    assert (health().declines_in_a_row, health().flagged) == (2, True)
    _settle(session, account, visa, ChargeStatus.SUCCEEDED, "c")  # a success resets it
    assert (health().declines_in_a_row, health().flagged) == (0, False)
    _settle(session, account, visa, ChargeStatus.FAILED, "d")
    _methods, standing = payment_methods.listed(session, account)
    assert standing[visa.id].declines_in_a_row == 1  # the page's one query agrees


def test_expires_in_days_counts_to_the_last_day_of_its_month(session, gw):
    account = f.standalone(session)
    visa = f.card(session, account)
    session.execute(update(PaymentMethod).where(PaymentMethod.id == visa.id).values(
        exp_month=12, exp_year=2026))
    session.commit()
    days = lambda today: payment_methods.standing(session, visa, today).expires_in_days  # noqa
    assert days(date(2026, 12, 31)) == 0
    assert days(date(2026, 12, 1)) == 30
    assert days(date(2026, 11, 30)) == 31
    assert days(date(2027, 1, 1)) == -1


def test_auto_recharge_skips_a_flagged_primary_for_a_healthy_backup(session, gw):
    account = recharge_world(session, primary="4242424242424242",
                             backup="5555555555554444")
    primary, backup = (charges._role(session, account, role)
                       for role in (MethodRole.PRIMARY, MethodRole.BACKUP))
    for key in ("x", "y"):
        _settle(session, account, primary, ChargeStatus.FAILED, key)
    posted = usage.post(session, account, {"minutes": 300}, "batch-1")
    assert posted.recharge is not None
    assert posted.recharge.method_id == backup.id  # the Primary was skipped
    session.rollback()
    # a Backup that is flagged too: the Primary is still tried (better than nothing)
    for key in ("p", "q"):
        _settle(session, account, backup, ChargeStatus.FAILED, key)
    due = charges.recharge_due(session, account, balance=500)
    assert due is not None and due.method.id == primary.id
