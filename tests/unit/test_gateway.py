import pytest
from sqlalchemy import func, select

from portal.models import SandboxCharge
from portal.services import gateway
from portal.services.gateway import GatewayTimeout, SandboxGateway


@pytest.fixture
def sandbox(app):
    return gateway.load(app.config["PAYMENT_GATEWAY"])


def _card(sandbox, number):
    return sandbox.tokenize_card(number, 12, 2030, "123", "Pat Doe")


def test_the_default_gateway_is_the_sandbox(sandbox):
    assert isinstance(sandbox, SandboxGateway)


def test_tokens_never_contain_the_card_number(sandbox):
    token = _card(sandbox, "4242424242424242")
    assert token.startswith("tok_") and "4242" not in token


@pytest.mark.parametrize("number", ["4242424242424242", "5555555555554444",
                                    "378282246310005", "6011111111111117"])
def test_approved_cards(sandbox, number):
    result = sandbox.charge(_card(sandbox, number), 2500, f"ok-{number}", "Payment")
    assert result.succeeded and result.code == "approved" and result.reference.startswith("ch_")


@pytest.mark.parametrize("number,code,message", [
    ("4000000000000002", "card_declined", "The card was declined."),
    ("4000000000009995", "insufficient_funds", "The card was declined: insufficient funds."),
    ("4000000000000069", "expired_card", "The card has expired."),
    ("4000000000000127", "incorrect_cvc", "The card's security code is incorrect."),
    ("4000000000000119", "processing_error",
     "The card couldn't be processed. Try again in a few minutes."),
])
def test_each_documented_decline(sandbox, number, code, message):
    result = sandbox.charge(_card(sandbox, number), 2500, f"no-{number}", "Payment")
    assert (result.succeeded, result.code, result.message) == (False, code, message)


def test_a_retry_with_the_same_key_returns_the_first_answer_and_charges_once(sandbox, session):
    token = _card(sandbox, "4242424242424242")
    first = sandbox.charge(token, 2500, "pay-1", "Payment")
    again = sandbox.charge(token, 2500, "pay-1", "Payment")
    assert again == first
    assert session.scalar(select(func.count()).select_from(SandboxCharge)) == 1


def test_a_timeout_charges_and_the_retry_learns_it_succeeded(sandbox, session):
    token = _card(sandbox, "4000000000000259")
    with pytest.raises(GatewayTimeout):
        sandbox.charge(token, 2500, "pay-t", "Payment")
    retry = sandbox.charge(token, 2500, "pay-t", "Payment")
    assert retry.succeeded
    assert session.scalar(select(func.count()).select_from(SandboxCharge)) == 1


def test_the_same_key_with_other_details_is_refused(sandbox):
    token = _card(sandbox, "4242424242424242")
    sandbox.charge(token, 2500, "pay-2", "Payment")
    other = sandbox.charge(token, 9900, "pay-2", "Payment")
    assert (other.succeeded, other.code) == (False, "idempotency_mismatch")


def test_bank_accounts(sandbox):
    ok = sandbox.tokenize_bank_account("021000021", "000123456789", "Pat Doe")
    poor = sandbox.tokenize_bank_account("021000021", "000111111116", "Pat Doe")
    assert sandbox.charge(ok, 2500, "ach-1", "Payment").succeeded
    assert sandbox.charge(poor, 2500, "ach-2", "Payment").code == "insufficient_funds"
