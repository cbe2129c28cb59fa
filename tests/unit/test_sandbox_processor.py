"""The sandbox as a processor (issue 16): payment methods entered on its form, setup intents
($0 authorization, 3-D Secure, micro-deposits), payment intents by key, and the old flows'
tokens still charging."""

from datetime import date

import pytest
from sqlalchemy import func, select

from portal.models import SandboxCharge, SandboxPaymentMethod, SandboxSetup
from portal.sandbox import cards, core
from portal.sandbox.testing import (
    AUTHENTICATE_ALWAYS,
    AUTHENTICATE_ONCE,
    DECLINES_WHEN_CHARGED,
    bank_account,
    complete_challenge,
    paying_card,
    saved_bank_account,
    saved_card,
)
from portal.services import gateway
from portal.services.gateway import ChargeRequest, GatewayTimeout, SandboxGateway

CUS = "cus_sbx_test"


@pytest.fixture
def sandbox(app) -> SandboxGateway:
    found = gateway.load(app.config["PAYMENT_GATEWAY"], app.config)
    assert found.name == "sandbox"
    return found


def _pay(pm, key, *, amount=2500, customer=CUS, on_session=False, **extra):
    return ChargeRequest(method=pm, customer=customer, kind="recharge", amount_cents=amount,
                         idempotency_key=key, description="Recharge", on_session=on_session,
                         **extra)


def test_the_form_keeps_no_number_and_answers_stripes_shape(app, session):
    body = core.create_payment_method(cards.enter_card(
        "4242 4242 4242 4242", "12", "30", "123", "Pat Doe", date(2026, 12, 3)))
    assert body["id"].startswith("pm_sbx_") and body["object"] == "payment_method"
    assert body["card"] == {"brand": "Visa", "last4": "4242", "exp_month": 12,
                            "exp_year": 2030}
    assert body["billing_details"] == {"name": "Pat Doe"}
    row = session.get(SandboxPaymentMethod, body["id"])
    assert "424242" not in repr(row.__dict__) and row.behaviour == "approved"


@pytest.mark.parametrize("number,exp,cvc,code,param", [
    ("4242424242424241", "12/30", "123", "incorrect_number", "card[number]"),
    ("36227206271667", "12/30", "123", "incorrect_number", "card[number]"),  # Diners
    ("4242424242424242", "01/20", "123", "expired_card", "card[exp_year]"),
    ("4242424242424242", "13/30", "123", "invalid_expiry_month", "card[exp_month]"),
    ("378282246310005", "12/30", "123", "invalid_cvc", "card[cvc]"),
])
def test_the_form_refuses_bad_cards_with_stripes_codes(number, exp, cvc, code, param):
    month, year = exp.split("/")
    with pytest.raises(cards.EntryError) as e:
        cards.enter_card(number, month, year, cvc, "Pat Doe", date(2026, 12, 3))
    assert (e.value.type, e.value.code, e.value.param) == ("card_error", code, param)


@pytest.mark.parametrize("number,code", [("4000000000000002", "card_declined"),
                                         ("4000000000000069", "expired_card"),
                                         ("4000000000000127", "incorrect_cvc")])
def test_cards_refused_at_setup(sandbox, session, number, code):
    answer = sandbox.save_method(CUS, paying_card(number), "card", f"save-{number}")
    assert (answer.succeeded, answer.outcome, answer.code) == (False, "failed", code)
    assert answer.method is None
    assert session.scalar(select(SandboxPaymentMethod.customer)) == ""


def test_a_saved_card_is_attached_and_described(sandbox):
    pm = paying_card()
    answer = sandbox.save_method(CUS, pm, "card", "save-1")
    assert answer.succeeded and answer.reference.startswith("seti_sbx_")
    assert answer.method == sandbox.describe_method(pm)
    assert (answer.method.brand, answer.method.last4, answer.method.kind) == (
        "Visa", "4242", "card")
    # the same key answers the same; another customer can't take the card
    assert sandbox.save_method(CUS, pm, "card", "save-1") == answer
    other = sandbox.save_method("cus_sbx_other", pm, "card", "save-2")
    assert other.code == "payment_method_unavailable"


def test_0341_saves_then_every_charge_declines(sandbox):
    card = saved_card(DECLINES_WHEN_CHARGED)
    for key in ("a", "b"):
        answer = sandbox.charge(_pay(card.reference, key))
        assert (answer.succeeded, answer.code) == (False, "card_declined")
        assert answer.reference.startswith("pi_sbx_")


@pytest.mark.parametrize("number,code", [("4000000000009995", "insufficient_funds"),
                                         ("4000000000000119", "processing_error")])
def test_cards_that_save_then_decline(sandbox, number, code):
    card = saved_card(number)
    assert sandbox.charge(_pay(card.reference, "k")).code == code


def test_a_payment_is_once_per_key(sandbox, session):
    card = saved_card()
    first = sandbox.charge(_pay(card.reference, "pay-1"))
    assert first.succeeded and first.outcome == "succeeded"
    assert sandbox.charge(_pay(card.reference, "pay-1")) == first
    assert sandbox.charge(_pay(card.reference, "pay-1", amount=999)).code == (
        "idempotency_mismatch")
    assert session.scalar(select(func.count()).select_from(SandboxCharge)) == 1
    # a known reference is looked up, never created again
    again = sandbox.charge(_pay(card.reference, "pay-2", reference=first.reference))
    assert again.reference == first.reference
    assert session.scalar(select(func.count()).select_from(SandboxCharge)) == 1


def test_0259_charges_and_the_retry_learns_it(sandbox):
    card = saved_card("4000000000000259")
    with pytest.raises(GatewayTimeout):
        sandbox.charge(_pay(card.reference, "t"))
    assert sandbox.charge(_pay(card.reference, "t")).succeeded


def test_3155_setup_challenge_then_off_session_approves(sandbox, session):
    pm = paying_card(AUTHENTICATE_ONCE)
    answer = sandbox.save_method(CUS, pm, "card", "save-3155")
    assert (answer.outcome, answer.next_action) == ("requires_action", "authenticate")
    assert answer.client_secret.startswith(answer.reference + "_secret_")
    assert sandbox.setup_status(answer.reference).outcome == "requires_action"
    # a wrong secret changes nothing
    assert core.authenticate(answer.reference, "seti_x_secret_no", True) is None
    done = complete_challenge(answer)
    assert done.succeeded and done.method.reference == pm
    assert sandbox.setup_status(answer.reference).succeeded
    assert sandbox.charge(_pay(pm, "off")).succeeded
    on = sandbox.charge(_pay(pm, "on", on_session=True))
    assert on.outcome == "requires_action" and on.client_secret
    assert complete_challenge(on).succeeded
    assert sandbox.payment_status(on.reference).succeeded


def test_3155_failed_challenge_saves_nothing(sandbox, session):
    pm = paying_card(AUTHENTICATE_ONCE)
    answer = sandbox.save_method(CUS, pm, "card", "save-f")
    failed = complete_challenge(answer, complete=False)
    assert (failed.succeeded, failed.code) == (False, "authentication_failed")
    assert session.get(SandboxPaymentMethod, pm).customer == ""
    # a second answer to the same challenge changes nothing
    assert core.authenticate(answer.reference, answer.client_secret, True) is None


def test_3184_off_session_needs_authentication(sandbox):
    card = saved_card(AUTHENTICATE_ALWAYS)
    off = sandbox.charge(_pay(card.reference, "off"))
    assert (off.succeeded, off.code, off.outcome) == (False, "authentication_required",
                                                      "failed")
    on = sandbox.charge(_pay(card.reference, "on", on_session=True))
    assert on.outcome == "requires_action"
    assert complete_challenge(on, complete=False).code == "authentication_failed"


def test_an_abandoned_challenge_is_canceled_and_a_won_one_stays(sandbox):
    card = saved_card(AUTHENTICATE_ALWAYS)
    on = sandbox.charge(_pay(card.reference, "on", on_session=True))
    canceled = sandbox.cancel_payment(on.reference)
    assert (canceled.succeeded, canceled.code) == (False, "canceled")
    assert core.authenticate(on.reference, on.client_secret, True) is None
    won = sandbox.charge(_pay(card.reference, "on2", on_session=True))
    complete_challenge(won)
    assert sandbox.cancel_payment(won.reference).succeeded


def test_ach_verifies_with_32_and_45_and_fails_after_3_tries(sandbox, session):
    pm = bank_account()
    answer = sandbox.save_method(CUS, pm, "ach", "ach-1")
    assert (answer.outcome, answer.next_action) == ("requires_action", "verify_microdeposits")
    assert sandbox.charge(_pay(pm, "too-soon")).code == "bank_account_unverified"
    wrong = sandbox.verify_microdeposits(answer.reference, (10, 20))
    assert wrong.outcome == "requires_action" and "2 tries left" in wrong.message
    ok = sandbox.verify_microdeposits(answer.reference, (45, 32))
    assert ok.succeeded and ok.method.brand == "Bank account" and ok.method.last4 == "6789"
    assert sandbox.charge(_pay(pm, "ach-pay")).succeeded

    other = sandbox.save_method(CUS, bank_account(), "ach", "ach-2")
    for _ in range(3):
        last = sandbox.verify_microdeposits(other.reference, (1, 2))
    assert (last.outcome, last.code) == ("failed", "verification_failed")
    assert session.get(SandboxSetup, other.reference).microdeposit_attempts == 3


def test_ach_000111111116_verifies_then_declines(sandbox):
    method = saved_bank_account("000111111116")
    assert sandbox.charge(_pay(method.reference, "x")).code == "insufficient_funds"


def test_a_detached_method_cant_be_charged(sandbox):
    card = saved_card()
    sandbox.detach(card.reference)
    assert sandbox.charge(_pay(card.reference, "d")).code == "payment_method_unavailable"


def test_refunds_of_a_payment_intent(sandbox):
    card = saved_card()
    paid = sandbox.charge(_pay(card.reference, "p", amount=5000))
    refund = sandbox.refund(paid.reference, 2000, "r-1")
    assert refund.succeeded and sandbox.refund_status(refund.reference).succeeded
    assert sandbox.refund(paid.reference, 3001, "r-2").code == "amount_too_large"


def test_old_tokens_still_charge_through_both_calls(sandbox):
    """Methods saved before issue 16 hold the old sandbox's tokens (tok_<behaviour>_<hex>):
    existing local databases keep charging them."""
    token = "tok_approved_5f0c2a9e8b7d6c41"
    assert sandbox.charge(token, 2500, "old-1", "Payment").succeeded
    assert sandbox.charge(_pay(token, "old-2", customer="")).succeeded
    declined = "tok_card_declined_0d9e8f7a6b5c4d3e"
    assert sandbox.charge(_pay(declined, "old-3", customer="")).code == "card_declined"


def test_customers_are_once_per_key_and_the_browser_setup(sandbox):
    assert sandbox.create_customer("acct-1", "Pat", "cus-1") == sandbox.create_customer(
        "acct-1", "Pat", "cus-1")
    assert sandbox.create_customer("acct-2", "Pat", "cus-2").startswith("cus_sbx_")
    setup = sandbox.browser()
    assert (setup.script_url, setup.factory, setup.publishable_key) == (
        "/sandbox/v1/sandbox.js", "SandboxStripe", "pk_sandbox")
    with pytest.raises(gateway.BadSignature):
        sandbox.parse_event(b"{}", "t=1,v1=x")


def test_client_secrets_are_masked_in_log_lines(sandbox):
    from portal.logmask import MaskTokens

    card = saved_card(AUTHENTICATE_ALWAYS)
    answer = sandbox.charge(_pay(card.reference, "log", on_session=True))
    secret = answer.client_secret.split("_secret_")[1]
    line = (f'"GET /sandbox/v1/authenticate/{answer.reference}?client_secret='
            f'{answer.client_secret} HTTP/1.1" 200')
    masked = MaskTokens().mask(line)
    assert secret not in masked and answer.reference in masked
