"""The sandbox gateway's answers by test card (issue 16: the card is entered on the sandbox's
form, which gives a pm_sbx_ id; saved to a customer, then charged by ChargeRequest)."""

import pytest
from sqlalchemy import func, select

from portal.models import SandboxCharge
from portal.sandbox.testing import (
    DECLINES_WHEN_CHARGED,
    paying_card,
    saved_bank_account,
    saved_card,
)
from portal.services import gateway
from portal.services.gateway import ChargeRequest, GatewayTimeout, SandboxGateway

CUS = "cus_sbx_gateway"


@pytest.fixture
def sandbox(app):
    return gateway.load(app.config["PAYMENT_GATEWAY"])


def _card(number):
    """The card typed into the sandbox's form and saved to CUS: its pm_sbx_ id."""
    return saved_card(number, customer=CUS).reference


def _pay(method, key, amount=2500):
    return ChargeRequest(method=method, customer=CUS, kind="payment", amount_cents=amount,
                         idempotency_key=key, description="Payment")


def test_the_default_gateway_is_the_sandbox(sandbox):
    assert isinstance(sandbox, SandboxGateway)


def test_payment_method_ids_never_contain_the_card_number(sandbox):
    pm = paying_card("4242424242424242")
    assert pm.startswith("pm_sbx_") and "4242424242" not in pm
    saved = sandbox.describe_method(pm)
    assert (saved.reference, saved.brand, saved.last4) == (pm, "Visa", "4242")


@pytest.mark.parametrize("number", ["4242424242424242", "5555555555554444",
                                    "378282246310005", "6011111111111117"])
def test_approved_cards(sandbox, number):
    result = sandbox.charge(_pay(_card(number), f"ok-{number}"))
    assert result.succeeded and result.code == "approved"
    assert result.reference.startswith("pi_sbx_")


@pytest.mark.parametrize("number,code,message", [
    ("4000000000000002", "card_declined", "The card was declined."),
    ("4000000000000069", "expired_card", "The card has expired."),
    ("4000000000000127", "incorrect_cvc", "The card's security code is incorrect."),
])
def test_each_documented_decline_at_entry(sandbox, number, code, message):
    """Refused when saved (the $0 authorization): the card can't be kept to charge later."""
    result = sandbox.save_method(CUS, paying_card(number), "card", f"save-{number}")
    assert (result.succeeded, result.code, result.message) == (False, code, message)


@pytest.mark.parametrize("number,code,message", [
    (DECLINES_WHEN_CHARGED, "card_declined", "The card was declined."),
    ("4000000000009995", "insufficient_funds", "The card was declined: insufficient funds."),
    ("4000000000000119", "processing_error",
     "The card couldn't be processed. Try again in a few minutes."),
])
def test_each_documented_decline_when_charged(sandbox, number, code, message):
    result = sandbox.charge(_pay(_card(number), f"no-{number}"))
    assert (result.succeeded, result.code, result.message) == (False, code, message)


def test_a_retry_with_the_same_key_returns_the_first_answer_and_charges_once(sandbox, session):
    method = _card("4242424242424242")
    first = sandbox.charge(_pay(method, "pay-1"))
    again = sandbox.charge(_pay(method, "pay-1"))
    assert again == first
    assert session.scalar(select(func.count()).select_from(SandboxCharge)) == 1


def test_a_timeout_charges_and_the_retry_learns_it_succeeded(sandbox, session):
    method = _card("4000000000000259")
    with pytest.raises(GatewayTimeout):
        sandbox.charge(_pay(method, "pay-t"))
    retry = sandbox.charge(_pay(method, "pay-t"))
    assert retry.succeeded
    assert session.scalar(select(func.count()).select_from(SandboxCharge)) == 1


def test_the_same_key_with_other_details_is_refused(sandbox):
    method = _card("4242424242424242")
    sandbox.charge(_pay(method, "pay-2"))
    other = sandbox.charge(_pay(method, "pay-2", amount=9900))
    assert (other.succeeded, other.code) == (False, "idempotency_mismatch")


def test_bank_accounts(sandbox):
    ok = saved_bank_account("000123456789", customer=CUS, routing="021000021").reference
    poor = saved_bank_account("000111111116", customer=CUS, routing="021000021").reference
    assert sandbox.charge(_pay(ok, "ach-1")).succeeded
    assert sandbox.charge(_pay(poor, "ach-2")).code == "insufficient_funds"
