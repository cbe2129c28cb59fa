"""The sandbox form's checks and its test numbers (issue 16).

The card and bank-account checks are the portal's own (portal/services/cards.py, which the
old card forms still use this round); the sandbox's form runs them on the processor's side
and maps their messages to Stripe's error codes and parameters. The numbers never leave the
sandbox: it keeps the behaviour, the brand, the last 4 digits and the expiry.
"""

from dataclasses import dataclass
from datetime import date

from portal.errors import ValidationFailed
from portal.services.cards import (  # noqa: F401  (the checks, re-exported for the sandbox)
    ACCEPTED,
    brand_of,
    check_bank_account,
    check_card,
    digits,
    luhn_ok,
    routing_ok,
)

# Test card numbers (any future expiry, any CVC of the right length); any other valid number
# is approved. Refused when saved ($0 authorization): card_declined, expired_card and
# incorrect_cvc. Saved fine, then fail when charged: insufficient_funds, processing_error,
# charge_customer_fail (every charge declined) and timeout (charged, the answer lost once).
# authenticate_once (3155): the save asks for authentication, on-session payments ask again,
# off-session payments then approve. authenticate_always (3184): every on-session payment
# asks, off-session payments fail with authentication_required.
TEST_CARDS = {
    "4242424242424242": "approved",
    "5555555555554444": "approved",
    "378282246310005": "approved",
    "6011111111111117": "approved",
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
    "4000000000000119": "processing_error",
    "4000000000000341": "charge_customer_fail",
    "4000000000000259": "timeout",
    "4000002500003155": "authenticate_once",
    "4000002760003184": "authenticate_always",
}
REFUSED_AT_SETUP = frozenset({"card_declined", "expired_card", "incorrect_cvc"})

# Bank accounts: every one is verified with two micro-deposits (32 and 45 cents).
# 000111111116 verifies, then every payment declines with insufficient_funds.
TEST_BANK_ACCOUNTS = {"000111111116": "insufficient_funds"}
MICRODEPOSITS = (32, 45)
BANK_NAMES = {"021000021": "JPMorgan Chase", "110000000": "Stripe Test Bank"}

# The check's field → (Stripe's parameter, Stripe's error code)
_CARD_PARAMS = {
    "number": ("card[number]", "incorrect_number"),
    "exp_month": ("card[exp_month]", "invalid_expiry_month"),
    "exp_year": ("card[exp_year]", "invalid_expiry_year"),
    "cvc": ("card[cvc]", "invalid_cvc"),
    "holder": ("billing_details[name]", "parameter_missing"),
}
_BANK_PARAMS = {
    "routing": ("us_bank_account[routing_number]", "routing_number_invalid"),
    "account_number": ("us_bank_account[account_number]", "account_number_invalid"),
    "holder": ("billing_details[name]", "parameter_missing"),
}


@dataclass(frozen=True)
class EnteredMethod:
    """What the sandbox keeps of a method entered on its form."""

    kind: str  # "card" | "ach"
    behaviour: str
    brand: str
    last4: str
    exp_month: int | None
    exp_year: int | None
    holder: str
    bank_name: str = ""


class EntryError(Exception):
    """Stripe's error body for a refused entry: {type, code, param, message}; and every
    field's message, for the form."""

    def __init__(self, type_: str, code: str, param: str, message: str,
                 errors: dict[str, str]):
        super().__init__(message)
        self.type, self.code, self.param, self.message = type_, code, param, message
        self.errors = errors

    def body(self) -> dict:
        return {"error": {"type": self.type, "code": self.code, "param": self.param,
                          "message": self.message}}


def _refused(e: ValidationFailed, params: dict, type_: str) -> EntryError:
    field, message = next(iter(e.errors.items()))
    param, code = params.get(field, ("", "invalid_request"))
    if field == "exp_year" and message == "This card has expired.":
        code = "expired_card"
    return EntryError(type_, code, param, message, dict(e.errors))


def enter_card(number: str, exp_month: str, exp_year: str, cvc: str, holder: str,
               today: date) -> EnteredMethod:
    """The card form's fields → what the sandbox keeps, or EntryError (card_error)."""
    try:
        card = check_card(number, exp_month, exp_year, cvc, holder, today)
    except ValidationFailed as e:
        raise _refused(e, _CARD_PARAMS, "card_error") from None
    behaviour = TEST_CARDS.get(digits(number), "approved")
    return EnteredMethod("card", behaviour, card.brand, card.last4, card.exp_month,
                         card.exp_year, card.holder)


def enter_bank_account(routing: str, account: str, holder: str) -> EnteredMethod:
    """The bank form's fields → what the sandbox keeps, or EntryError (invalid_request)."""
    try:
        bank = check_bank_account(routing, account, holder)
    except ValidationFailed as e:
        raise _refused(e, _BANK_PARAMS, "invalid_request_error") from None
    behaviour = TEST_BANK_ACCOUNTS.get(digits(account), "approved")
    return EnteredMethod("ach", behaviour, "Bank account", bank.last4, None, None,
                         bank.holder, BANK_NAMES.get(digits(routing), "Test bank"))
