"""Charges: Make a Payment, settling once, retries of unanswered charges, billing pause, and
auto recharge (Primary, then Backup, then decline emails)."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from portal import clock, rules
from portal.errors import ValidationFailed
from portal.models import (
    Account,
    AccountStatus,
    Charge,
    ChargePurpose,
    ChargeStatus,
    LedgerEntry,
    LedgerKind,
    MethodRole,
    OutboxMessage,
    Role,
    SandboxCharge,
)
from portal.services import billing, charges, ledger, usage
from portal.services.gateway import ChargeResult, GatewayTimeout, SandboxGateway
from tests import factories as f

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DECLINES = "4000000000000341"  # saves fine, every charge is declined (0002: refused at entry)
NO_FUNDS = "4000000000009995"
TIMEOUT = "4000000000000259"


@pytest.fixture
def gw(app):
    clock.freeze(NOW)
    return SandboxGateway()


@pytest.fixture
def people(session):
    """An account with an owner, an admin and a plain user (the first two get billing mail)."""
    owner = f.user(session, "owner@example.test")
    admin = f.user(session, "admin@example.test")
    plain_user = f.user(session, "user@example.test")
    account = f.standalone(session, "Harbor Dental", admin=admin)
    f.member(session, owner, account, Role.OWNER)
    f.member(session, plain_user, account, Role.USER)
    return account, owner, admin


def count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def entries(session, account):
    return [tuple(row) for row in session.execute(
        select(LedgerEntry.kind, LedgerEntry.amount_cents, LedgerEntry.balance_after_cents)
        .where(LedgerEntry.account_id == account.id).order_by(LedgerEntry.id))]


def mail(session, kind=None):
    query = select(OutboxMessage.to_address, OutboxMessage.kind, OutboxMessage.subject)
    if kind:
        query = query.where(OutboxMessage.kind == kind)
    return sorted(tuple(row) for row in session.execute(query))


def legacy_card(session, account, token: str):
    """A card saved before issue 16, by the sandbox's old token (tok_<behaviour>_…), which
    it still charges: a card saved fine can expire later (0069 is refused at entry now)."""
    from portal.models import MethodKind, PaymentMethod

    method = PaymentMethod(account_id=account.id, kind=MethodKind.CARD, brand="Visa",
                           last4="0069", holder="Pat Doe", token=f"{token}_0a1b2c3d",
                           exp_month=12, exp_year=2030, role=MethodRole.PRIMARY)
    session.add(method)
    session.commit()
    return method


def pay(session, gw, account, actor, method, amount, form_key=None):
    charge = charges.pay(session, account, actor, str(method.id), amount,
                         form_key or charges.new_form_key())
    session.commit()
    return charges.attempt(session, gw, charge)


# --------------------------------------------------------------- Make a Payment

def test_a_payment_credits_the_ledger_once_and_emails_a_receipt_to_each_recipient(
        session, gw, people):
    account, owner, admin = people
    method = f.card(session, account)
    charge = pay(session, gw, account, admin, method, "$1,234.56")
    assert charge.status == ChargeStatus.SUCCEEDED
    assert (charge.purpose, charge.amount_cents, charge.attempts, charge.actor_id) == (
        ChargePurpose.PAYMENT, 123456, 1, admin.id)
    assert (charge.failure_code, charge.failure_message) == ("", "")
    assert charge.gateway_reference.startswith("pi_")  # a payment intent (issue 16)
    assert (charge.settled_at, charge.last_attempt_at) == (NOW, NOW)
    assert charge.description == "Payment to Harbor Dental"
    entry = session.scalar(select(LedgerEntry).where(LedgerEntry.account_id == account.id))
    assert (entry.kind, entry.amount_cents, entry.balance_after_cents, entry.actor_id) == (
        LedgerKind.PAYMENT, 123456, 123456, admin.id)
    assert entry.description == f"Payment: Visa ending 4242 ({charge.receipt_number})"
    assert entry.idempotency_key == f"charge:{charge.id}"
    assert session.get(Account, account.id).balance_cents == 123456
    subject = f"Receipt {charge.receipt_number}: payment of $1,234.56 for Harbor Dental"
    assert mail(session) == [("admin@example.test", "receipt", subject),
                             ("owner@example.test", "receipt", subject)]
    text = session.scalar(select(OutboxMessage.text_body).where(
        OutboxMessage.to_address == "owner@example.test"))
    assert "Payment: $1,234.56" in text and "Charged to: Visa ending 4242" in text
    assert "Available balance after this payment: $1,234.56" in text
    assert count(session, SandboxCharge) == 1
    assert ledger.check(session) == []


def test_the_same_form_submitted_twice_charges_once(session, gw, people):
    account, _owner, admin = people
    method = f.card(session, account)
    key = charges.new_form_key()
    first = pay(session, gw, account, admin, method, "25", key)
    again = pay(session, gw, account, admin, method, "25", key)
    assert again.id == first.id and again.status == ChargeStatus.SUCCEEDED
    assert count(session, Charge) == 1
    assert count(session, SandboxCharge) == 1
    assert entries(session, account) == [(LedgerKind.PAYMENT, 2500, 2500)]
    assert len(mail(session, "receipt")) == 2


def test_a_new_form_is_a_new_payment(session, gw, people):
    account, _owner, admin = people
    method = f.card(session, account)
    pay(session, gw, account, admin, method, "25")
    pay(session, gw, account, admin, method, "25")
    assert entries(session, account) == [(LedgerKind.PAYMENT, 2500, 2500),
                                         (LedgerKind.PAYMENT, 2500, 5000)]


@pytest.mark.parametrize("number,code,message", [
    (DECLINES, "card_declined", "The card was declined."),
    (NO_FUNDS, "insufficient_funds", "The card was declined: insufficient funds."),
    ("tok_expired_card", "expired_card", "The card has expired."),
])
def test_a_declined_payment_fails_with_the_reason_and_credits_nothing(
        session, gw, people, number, code, message):
    account, _owner, admin = people
    method = f.card(session, account, number) if number.isdigit() else \
        legacy_card(session, account, number)
    charge = pay(session, gw, account, admin, method, "50")
    assert (charge.status, charge.failure_code, charge.failure_message) == (
        ChargeStatus.FAILED, code, message)
    assert charge.settled_at == NOW
    assert entries(session, account) == []
    assert session.get(Account, account.id).balance_cents == 0
    assert mail(session) == []  # the page says why; no receipt, no decline mail for a payment


def test_payment_input_is_validated(session, gw, people):
    account, _owner, admin = people
    f.card(session, account)
    other_method = f.card(session, f.standalone(session))
    with pytest.raises(ValidationFailed) as e:
        charges.pay(session, account, admin, str(other_method.id), "0", "not-a-key")
    assert e.value.errors == {
        "method": "Choose one of the account's payment methods.",
        "amount": "The amount must be more than zero.",
        "": "The form was out of date. Reload the page and try again.",
    }
    with pytest.raises(ValidationFailed) as e:
        charges.pay(session, account, admin, "abc", "10000.01", "A" * 32)
    assert e.value.errors == {
        "method": "Choose one of the account's payment methods.",
        "amount": "The amount can be at most $10,000.00.",
        "": "The form was out of date. Reload the page and try again.",
    }
    assert count(session, Charge) == 0


def test_a_removed_method_cant_be_charged(session, gw, people):
    account, _owner, admin = people
    f.card(session, account)
    backup = f.card(session, account, "5555555555554444")
    from portal.services import payment_methods

    payment_methods.remove(session, account, backup.id)
    with pytest.raises(ValidationFailed) as e:
        charges.pay(session, account, admin, str(backup.id), "25", charges.new_form_key())
    assert e.value.errors == {"method": "Choose one of the account's payment methods."}


# --------------------------------------------------------------- timeouts and retries

def test_a_timeout_leaves_the_charge_pending_and_credits_nothing(session, gw, people):
    account, _owner, admin = people
    method = f.card(session, account, TIMEOUT)
    charge = pay(session, gw, account, admin, method, "40")
    assert (charge.status, charge.attempts, charge.last_attempt_at) == (
        ChargeStatus.PENDING, 1, NOW)
    assert entries(session, account) == []
    assert mail(session) == []
    # the processor did charge it (and remembers it by the key)
    stored = session.get(SandboxCharge, charge.idempotency_key)
    assert (stored.succeeded, stored.amount_cents) == (True, 4000)


def test_a_pending_charge_is_retried_after_the_backoff_and_settles_once(session, gw, people):
    account, _owner, admin = people
    method = f.card(session, account, TIMEOUT)
    charge = pay(session, gw, account, admin, method, "40")
    charge_id = charge.id

    early = NOW + rules.CHARGE_RETRY_AFTER - timedelta(seconds=1)
    clock.freeze(early)
    assert charges.retry_pending(session, gw, early) == []
    assert session.get(Charge, charge_id).status == ChargeStatus.PENDING

    later = NOW + rules.CHARGE_RETRY_AFTER
    clock.freeze(later)
    done = charges.retry_pending(session, gw, later)
    assert [c.id for c in done] == [charge_id]
    charge = session.get(Charge, charge_id)
    assert (charge.status, charge.attempts, charge.settled_at) == (
        ChargeStatus.SUCCEEDED, 2, later)
    assert count(session, SandboxCharge) == 1  # asked twice, charged once
    assert entries(session, account) == [(LedgerKind.PAYMENT, 4000, 4000)]
    assert len(mail(session, "receipt")) == 2

    # nothing more to do, however often the job runs
    clock.freeze(later + timedelta(hours=1))
    assert charges.retry_pending(session, gw, later + timedelta(hours=1)) == []
    assert entries(session, account) == [(LedgerKind.PAYMENT, 4000, 4000)]
    assert ledger.check(session) == []


class SilentGateway(SandboxGateway):
    """A processor that never answers."""

    def __init__(self):
        self.calls = 0

    def charge(self, request):  # the Processor's charge(ChargeRequest) (issue 16)
        self.calls += 1
        raise GatewayTimeout("no answer")


def test_a_charge_the_processor_never_answers_stays_pending_and_is_asked_less_often(
        session, gw, people):
    """rules: asked again after 1 minute, then 2, 3, ... (attempts x 1 minute), at most
    hourly, and never marked failed without an answer (it may have gone through)."""
    account, _owner, admin = people
    method = f.card(session, account)
    silent = SilentGateway()
    charge = charges.pay(session, account, admin, str(method.id), "40", charges.new_form_key())
    session.commit()
    charge_id = charge.id
    charges.attempt(session, silent, charge, NOW)

    def job(moment):
        clock.freeze(moment)
        charges.retry_pending(session, silent, moment)
        charge = session.get(Charge, charge_id)
        return silent.calls, charge.attempts, charge.status

    minute = timedelta(minutes=1)
    assert job(NOW + minute - timedelta(seconds=1)) == (1, 1, ChargeStatus.PENDING)
    assert job(NOW + minute) == (2, 2, ChargeStatus.PENDING)
    assert job(NOW + 2 * minute) == (2, 2, ChargeStatus.PENDING)  # now 2 minutes apart
    assert job(NOW + 3 * minute) == (3, 3, ChargeStatus.PENDING)
    assert job(NOW + 5 * minute) == (3, 3, ChargeStatus.PENDING)
    assert job(NOW + 6 * minute) == (4, 4, ChargeStatus.PENDING)
    # after many attempts the wait stops growing at an hour
    many = NOW + timedelta(days=1)
    session.execute(update(Charge).where(Charge.id == charge_id)
                    .values(attempts=500, last_attempt_at=many))
    session.commit()
    assert job(many + timedelta(minutes=59)) == (4, 500, ChargeStatus.PENDING)
    assert job(many + timedelta(minutes=60)) == (5, 501, ChargeStatus.PENDING)
    assert entries(session, account) == []
    assert mail(session) == []


def test_settling_is_conditional_so_a_charge_is_credited_once(session, gw, people):
    account, _owner, admin = people
    method = f.card(session, account)
    charge = charges.pay(session, account, admin, str(method.id), "30", charges.new_form_key())
    session.flush()
    assert charges.settle(session, charge, True, "ch_1", "approved", "Approved.") is True
    assert charges.settle(session, charge, True, "ch_2", "approved", "Approved.") is False
    assert charges.settle(session, charge, False, "ch_3", "card_declined", "No.") is False
    assert (charge.status, charge.gateway_reference, charge.failure_code) == (
        ChargeStatus.SUCCEEDED, "ch_1", "")
    assert entries(session, account) == [(LedgerKind.PAYMENT, 3000, 3000)]
    assert len(mail(session, "receipt")) == 2


def test_attempting_a_settled_charge_does_not_ask_the_processor_again(session, gw, people):
    account, _owner, admin = people
    method = f.card(session, account)
    charge = pay(session, gw, account, admin, method, "30")
    silent = SilentGateway()
    assert charges.attempt(session, silent, charge).status == ChargeStatus.SUCCEEDED
    assert silent.calls == 0 and charge.attempts == 1


class AnsweringGateway(SandboxGateway):
    def __init__(self, result):
        self.result = result

    def charge(self, request):  # the Processor's charge(ChargeRequest) (issue 16)
        return self.result


def test_a_processor_answer_for_a_mismatched_request_fails_the_charge(session, gw, people):
    account, _owner, admin = people
    method = f.card(session, account)
    charge = charges.pay(session, account, admin, str(method.id), "30", charges.new_form_key())
    session.commit()
    answer = ChargeResult(False, "ch_x", "idempotency_mismatch", "Already tried.")
    charge = charges.attempt(session, AnsweringGateway(answer), charge)
    assert (charge.status, charge.failure_code, charge.failure_message) == (
        ChargeStatus.FAILED, "idempotency_mismatch", "Already tried.")
    assert entries(session, account) == []


def test_a_payment_is_stamped_when_credited_so_the_running_balance_reads_in_time_order(
        session, gw, people):
    """A payment sent to the processor at t0 whose answer came back after another entry
    (t1 > t0) was credited with t0: sorted by time, as the Billing Logs and the API's ledger
    read, its balance_after came before an entry it followed. Now it is stamped under the
    payer's lock."""
    account, _owner, admin = people
    method = f.card(session, account)
    sent_at = clock.now()
    charge = charges.pay(session, account, admin, str(method.id), "30", charges.new_form_key())
    session.commit()

    class SlowProcessor(SandboxGateway):
        def charge(self, request):  # meanwhile, usage is debited
            clock.freeze(sent_at + timedelta(seconds=2))
            usage.post(session, account, {"minutes": 10}, "meanwhile")
            session.commit()
            clock.freeze(sent_at + timedelta(seconds=3))
            return ChargeResult(True, "ch_slow", "approved", "")

    clock.freeze(sent_at)
    charges.attempt(session, SlowProcessor(), charge, now=sent_at)
    session.expire_all()
    rows = session.scalars(select(LedgerEntry).where(LedgerEntry.account_id == account.id)
                           .order_by(LedgerEntry.created_at, LedgerEntry.id)).all()
    assert [r.cause_ref or r.idempotency_key for r in rows] == ["meanwhile", str(charge.id)]
    balance = 0
    for row in rows:
        balance += row.amount_cents
        assert row.balance_after_cents == balance, [(r.created_at, r.amount_cents,
                                                     r.balance_after_cents) for r in rows]
    assert rows[1].created_at == sent_at + timedelta(seconds=3)


# --------------------------------------------------------------- billing pause

def test_a_payment_that_brings_the_balance_back_to_zero_lifts_the_billing_pause(
        session, gw, people):
    account, _owner, admin = people
    method = f.card(session, account)
    usage.post(session, account, {"numbers": 2}, "rent-1")  # -$6.00
    assert session.get(Account, account.id).status == AccountStatus.BILLING_PAUSED
    session.commit()
    pay(session, gw, account, admin, method, "5.99")
    account = session.get(Account, account.id)
    assert (account.balance_cents, account.status) == (-1, AccountStatus.BILLING_PAUSED)
    pay(session, gw, account, admin, method, "0.01")
    account = session.get(Account, account.id)
    assert (account.balance_cents, account.status) == (0, AccountStatus.ACTIVE)


# --------------------------------------------------------------- auto recharge

def recharge_world(session, primary=None, backup=None, balance=2000):
    """Harbor Dental: auto recharge below $10 up to $50, a $20 balance."""
    admin = f.user(session, "admin@example.test")
    owner = f.user(session, "owner@example.test")
    account = f.standalone(session, "Harbor Dental", admin=admin)
    f.member(session, owner, account, Role.OWNER)
    if primary:
        f.card(session, account, primary)
    if backup:
        f.card(session, account, backup, role="backup")
    f.recharge_settings(session, account, "10", "50")
    if balance:
        f.funds(session, account, balance)
    return account


def test_usage_below_the_threshold_recharges_the_primary_up_to_the_amount(session, gw):
    account = recharge_world(session, primary="4242424242424242")
    posted = usage.post(session, account, {"minutes": 300}, "batch-1")  # -$15.00 -> $5.00
    recharge = posted.recharge
    assert recharge is not None and recharge.status == ChargeStatus.PENDING
    assert (recharge.purpose, recharge.amount_cents) == (ChargePurpose.RECHARGE, 4500)
    assert recharge.description == "Auto recharge of Harbor Dental to $50.00"
    assert recharge.method.role == MethodRole.PRIMARY
    session.commit()
    charge = charges.run_recharge(session, gw, recharge)
    assert charge.id == recharge.id and charge.status == ChargeStatus.SUCCEEDED
    assert entries(session, account)[-2:] == [(LedgerKind.USAGE, -1500, 500),
                                              (LedgerKind.RECHARGE, 4500, 5000)]
    entry = session.scalar(select(LedgerEntry).where(LedgerEntry.kind == LedgerKind.RECHARGE))
    assert entry.description == f"Auto recharge: Visa ending 4242 ({charge.receipt_number})"
    subject = f"Receipt {charge.receipt_number}: auto recharge of $45.00 for Harbor Dental"
    assert mail(session) == [("admin@example.test", "receipt", subject),
                             ("owner@example.test", "receipt", subject)]
    assert count(session, SandboxCharge) == 1
    assert ledger.check(session) == []


def test_a_balance_at_or_above_the_threshold_is_not_recharged(session, gw):
    account = recharge_world(session, primary="4242424242424242")
    assert usage.post(session, account, {"minutes": 200}, "b1").recharge is None  # $10.00
    assert session.get(Account, account.id).balance_cents == 1000
    assert usage.post(session, account, {"minutes": 1}, "b2").recharge.amount_cents == 4005


def test_a_negative_balance_is_recharged_up_to_the_amount(session, gw):
    account = recharge_world(session, primary="4242424242424242")
    recharge = usage.post(session, account, {"numbers": 10}, "b1").recharge  # $20 - $30
    assert recharge.amount_cents == 6000
    session.commit()
    charges.run_recharge(session, gw, recharge)
    account = session.get(Account, account.id)
    assert (account.balance_cents, account.status) == (5000, AccountStatus.ACTIVE)


def test_a_declined_primary_falls_back_to_the_backup(session, gw):
    account = recharge_world(session, primary=DECLINES, backup="5555555555554444")
    first = usage.post(session, account, {"minutes": 300}, "batch-1").recharge
    session.commit()
    charge = charges.run_recharge(session, gw, first)
    first = session.get(Charge, first.id)
    assert (first.status, first.failure_message) == (ChargeStatus.FAILED,
                                                     "The card was declined.")
    assert charge.id != first.id and charge.status == ChargeStatus.SUCCEEDED
    assert charge.idempotency_key == f"{first.idempotency_key}:backup"
    assert charge.description == "Auto recharge of Harbor Dental to $50.00 (backup card)"
    assert (charge.amount_cents, charge.method.last4, charge.method.role) == (
        4500, "4444", MethodRole.BACKUP)
    assert entries(session, account)[-1] == (LedgerKind.RECHARGE, 4500, 5000)
    assert count(session, LedgerEntry, LedgerEntry.kind == LedgerKind.RECHARGE) == 1
    subject = f"Receipt {charge.receipt_number}: auto recharge of $45.00 for Harbor Dental"
    assert mail(session, "receipt") == [("admin@example.test", "receipt", subject),
                                        ("owner@example.test", "receipt", subject)]
    # Besides the receipt (issue 14): the Primary declined, and needs fixing.
    notice = "Your Primary card was declined for Harbor Dental: the Backup paid $45.00"
    assert mail(session, "primary_declined") == [
        ("admin@example.test", "primary_declined", notice),
        ("owner@example.test", "primary_declined", notice)]


def test_when_both_cards_decline_every_recipient_gets_a_decline_email(session, gw):
    account = recharge_world(session, primary=DECLINES, backup=NO_FUNDS)
    first = usage.post(session, account, {"minutes": 300}, "batch-1").recharge
    session.commit()
    last = charges.run_recharge(session, gw, first)
    assert last.status == ChargeStatus.FAILED
    assert last.failure_message == "The card was declined: insufficient funds."
    assert count(session, Charge, Charge.status == ChargeStatus.FAILED) == 2
    assert count(session, LedgerEntry, LedgerEntry.kind == LedgerKind.RECHARGE) == 0
    assert session.get(Account, account.id).balance_cents == 500
    subject = "Action needed: your card was declined for Harbor Dental"
    assert mail(session) == [("admin@example.test", "decline", subject),
                             ("owner@example.test", "decline", subject)]
    text = session.scalar(select(OutboxMessage.text_body).where(
        OutboxMessage.to_address == "admin@example.test"))
    assert "We tried to charge $45.00 (auto recharge)" in text
    assert "- Visa ending 0341: The card was declined." in text
    assert "- Visa ending 9995: The card was declined: insufficient funds." in text
    assert "Available balance: $5.00" in text


def test_a_declined_primary_without_a_backup_sends_the_decline_email(session, gw):
    account = recharge_world(session, primary=DECLINES)
    first = usage.post(session, account, {"minutes": 300}, "batch-1").recharge
    session.commit()
    last = charges.run_recharge(session, gw, first)
    assert last.id == first.id and last.status == ChargeStatus.FAILED
    assert count(session, Charge) == 1
    assert [kind for _to, kind, _subject in mail(session)] == ["decline", "decline"]
    # the decline is sent once per charge, however often it is looked at again
    charges.run_recharge(session, gw, session.get(Charge, first.id))
    assert len(mail(session)) == 2


def test_an_agencys_chosen_recipients_get_the_decline_email(session, gw):
    agency = f.agency(session, "Acme Agency", owner=f.user(session, "owner@example.test"))
    bookkeeper = f.user(session, "bookkeeper@example.test")
    f.member(session, bookkeeper, agency, Role.USER)
    billing.set_recipients(session, agency, [str(bookkeeper.id)])
    f.card(session, agency, DECLINES)
    f.recharge_settings(session, agency, "10", "50")
    on_agency = f.sub(session, agency, "Bayside Vet")
    first = usage.post(session, on_agency, {"minutes": 300}, "batch-1").recharge
    assert (first.account_id, first.amount_cents) == (agency.id, 6500)
    session.commit()
    charges.run_recharge(session, gw, first)
    assert mail(session) == [("bookkeeper@example.test", "decline",
                              "Action needed: your card was declined for Acme Agency")]


def test_no_recharge_when_auto_recharge_is_off(session, gw):
    account = recharge_world(session, primary="4242424242424242")
    billing.set_auto_recharge(session, account, "", "", enabled=False)
    assert usage.post(session, account, {"numbers": 10}, "b1").recharge is None
    assert count(session, Charge) == 0


def test_no_recharge_without_a_primary_method(session, gw):
    account = recharge_world(session)
    assert usage.post(session, account, {"numbers": 10}, "b1").recharge is None
    assert count(session, Charge) == 0


def test_a_removed_primary_is_not_recharged(session, gw):
    account = recharge_world(session, primary="4242424242424242")
    from portal.services import payment_methods

    primary = payment_methods.in_use(session, account)[0]
    payment_methods.remove(session, account, primary.id)
    assert usage.post(session, account, {"numbers": 10}, "b1").recharge is None


def test_only_one_recharge_is_pending_per_account(session, gw):
    account = recharge_world(session, primary=TIMEOUT)
    first = usage.post(session, account, {"minutes": 300}, "b1").recharge
    assert usage.post(session, account, {"minutes": 20}, "b2").recharge is None
    assert charges.start_recharge(session, account) is None
    session.commit()
    assert charges.run_recharge(session, gw, first).status == ChargeStatus.PENDING  # timeout
    assert usage.post(session, account, {"minutes": 20}, "b3").recharge is None
    assert count(session, Charge) == 1
    # the database refuses a second pending recharge, whoever writes it
    with pytest.raises(IntegrityError):
        with session.begin_nested():
            session.add(Charge(account_id=account.id, method_id=first.method_id,
                               purpose=ChargePurpose.RECHARGE, amount_cents=100,
                               idempotency_key="second", description="x"))
            session.flush()
    # once it settles, the next usage below the threshold starts the next one
    later = NOW + rules.CHARGE_RETRY_AFTER
    clock.freeze(later)
    assert [c.status for c in charges.retry_pending(session, gw, later)] == [
        ChargeStatus.SUCCEEDED]
    balance = session.get(Account, account.id).balance_cents
    assert balance == 5000 - 200  # recharged by $45.00 from $5.00; then b2 and b3
    assert usage.post(session, account, {"numbers": 14}, "b4").recharge.amount_cents == (
        5000 - (balance - 4200))


def test_usage_debited_while_a_recharge_is_in_flight_is_recharged_when_it_settles(session, gw):
    """A recharge is pending; another posting lowers the balance further and, finding it in
    flight, starts none. The recharge's credit was sized before that debit, so the balance
    it leaves is still below the threshold: its settlement starts the next recharge, and
    running the first runs that one too. Without it the account stayed below the threshold
    with nothing to recharge it until the next posting (the usage bench caught one ending at
    -$13.20)."""
    account = recharge_world(session, primary="4242424242424242")
    first = usage.post(session, account, {"minutes": 300}, "b1").recharge  # $20 -> $5
    assert first.amount_cents == 4500
    assert usage.post(session, account, {"minutes": 1000}, "b2").recharge is None  # -> -$45
    session.commit()
    assert charges.run_recharge(session, gw, first).id == first.id
    session.expire_all()
    assert first.status == ChargeStatus.SUCCEEDED
    made = session.scalars(select(Charge).order_by(Charge.id)).all()
    assert [(c.amount_cents, c.status) for c in made] == [
        (4500, ChargeStatus.SUCCEEDED), (5000 - 0, ChargeStatus.SUCCEEDED)]
    # $50 - $50 (b2) = $0 after the first credit: below $10, recharged by $50 to $50
    assert entries(session, account)[-3:] == [(LedgerKind.USAGE, -5000, -4500),
                                              (LedgerKind.RECHARGE, 4500, 0),
                                              (LedgerKind.RECHARGE, 5000, 5000)]
    assert count(session, SandboxCharge) == 2
    assert ledger.check(session) == []


def test_a_recharge_settled_above_the_threshold_starts_no_other(session, gw):
    account = recharge_world(session, primary="4242424242424242")
    first = usage.post(session, account, {"minutes": 300}, "b1").recharge  # $20 -> $5
    assert usage.post(session, account, {"minutes": 100}, "b2").recharge is None  # -> $0
    session.commit()
    charges.run_recharge(session, gw, first)
    session.expire_all()
    assert count(session, Charge) == 1
    assert session.get(Account, account.id).balance_cents == 5000 - 500


def test_no_next_recharge_after_a_declined_one(session, gw):
    """A decline leaves the balance low and tells the recipients; the settlement of a failed
    recharge starts nothing (no loop of declines)."""
    account = recharge_world(session, primary=DECLINES)
    first = usage.post(session, account, {"minutes": 300}, "b1").recharge
    usage.post(session, account, {"minutes": 1000}, "b2")
    session.commit()
    assert charges.run_recharge(session, gw, first).status == ChargeStatus.FAILED
    session.expire_all()
    assert count(session, Charge) == 1


def test_a_recharge_a_webhook_declined_goes_on_to_the_backup(session, gw):
    """The processor's webhook settles a recharge (processor_events, in the event's
    transaction); after its commit `after_event` takes the step the request's own answer
    would have: a declined Primary goes on to the Backup."""
    account = recharge_world(session, primary="4242424242424242", backup="5555555555554444")
    first = usage.post(session, account, {"minutes": 300}, "b1").recharge  # $20 -> $5
    session.commit()
    assert charges.settle(session, first, False, "pi_elsewhere", "card_declined",
                          "The card was declined.")
    session.commit()
    after = charges.after_event(session, gw, first)
    assert (after.idempotency_key, after.status) == (
        f"{first.idempotency_key}{charges.BACKUP}", ChargeStatus.SUCCEEDED)
    assert after.method.role == MethodRole.BACKUP
    assert entries(session, account)[-1] == (LedgerKind.RECHARGE, 4500, 5000)
    assert [m[1] for m in mail(session, "primary_declined")] == ["primary_declined"] * 2


def test_a_recharge_a_webhook_settled_after_usage_outran_it_starts_the_next(session, gw):
    account = recharge_world(session, primary="4242424242424242")
    first = usage.post(session, account, {"minutes": 300}, "b1").recharge  # $20 -> $5
    usage.post(session, account, {"minutes": 1000}, "b2")  # -> -$45, none started
    session.commit()
    assert charges.settle(session, first, True, "pi_elsewhere", "", "")
    session.commit()
    assert charges.after_event(session, gw, first).id == first.id
    session.expire_all()
    assert [(c.amount_cents, c.status) for c in session.scalars(
        select(Charge).order_by(Charge.id))] == [(4500, ChargeStatus.SUCCEEDED),
                                                 (5000, ChargeStatus.SUCCEEDED)]
    assert session.get(Account, account.id).balance_cents == 5000
    assert ledger.check(session) == []


def test_a_recharge_started_while_the_primary_was_declining_does_not_break_the_backup_step(
        app, session, gw, monkeypatch):
    """Between the Primary's decline (committed) and the Backup's charge being recorded, a
    usage posting from another request finds no recharge in flight and records one. The
    first request must still finish (no error out of run_recharge), and at most one recharge
    is in flight afterwards."""
    from portal.extensions import db

    account = recharge_world(session, primary=DECLINES, backup="5555555555554444")
    account_id = account.id
    first = usage.post(session, account, {"minutes": 300}, "batch-1").recharge
    session.commit()
    real_role = charges._role
    other = {}

    def usage_elsewhere():
        with app.app_context():
            target = db.session.get(Account, account_id)
            other["posted"] = usage.post(db.session, target, {"minutes": 20}, "batch-2")
            db.session.commit()

    def role_after_another_posting(session_, account_, role):
        if role == MethodRole.BACKUP and "thread" not in other:
            other["thread"] = thread = threading.Thread(target=usage_elsewhere)
            thread.start()
            thread.join(timeout=1.0)  # if our transaction holds it off, carry on
        return real_role(session_, account_, role)

    monkeypatch.setattr(charges, "_role", role_after_another_posting)
    try:
        last = charges.run_recharge(session, gw, first)
    finally:
        session.commit()  # hold no transaction while waiting for the other request
        other["thread"].join(timeout=10)
        monkeypatch.undo()
    assert "posted" in other  # the other request's usage went in
    assert last.status in (ChargeStatus.FAILED, ChargeStatus.SUCCEEDED)
    session.expire_all()
    assert count(session, Charge, Charge.status == ChargeStatus.PENDING) <= 1
    assert ledger.check(session) == []


def test_payment_history_pages_count_every_charge_of_the_account_only(session, gw, people):
    """charges.history: newest first, per page, with the total carried by the page's own
    query (and asked for alone only past the last page)."""
    account, _owner, admin = people
    other = f.standalone(session, "Other Clinic")
    method, theirs = f.card(session, account), f.card(session, other)
    made = [pay(session, gw, account, admin, method, f"${n}.00") for n in range(1, 6)]
    pay(session, gw, other, admin, theirs, "$9.00")
    first, last = charges.history(session, account, 1, 2), charges.history(session, account, 3, 2)
    assert (first.total, last.total, first.pages) == (5, 5, 3)
    assert [c.id for c in first.items] == [made[4].id, made[3].id]
    assert [c.id for c in last.items] == [made[0].id]
    past = charges.history(session, account, 4, 2)
    assert (past.items, past.total) == ([], 5)
    assert charges.history(session, f.standalone(session, "Empty"), 1, 2).total == 0
