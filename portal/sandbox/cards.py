"""The sandbox form's checks and its test numbers (issue 16).

The card and bank-account checks (length, Luhn, brand, expiry, CVC by brand, the ABA routing
checksum, holder) run here, on the processor's side of card entry: the portal never receives
a number. The form maps their messages to Stripe's error codes and parameters. The numbers
never leave the sandbox: it keeps the behaviour, the brand, the last 4 digits and the expiry.
"""

import re
from dataclasses import dataclass
from datetime import date

from portal.errors import ValidationFailed
from portal.services.cards import ACCEPTED_TEXT  # the brands the portal takes
from portal.services.inputs import (
    clean_text,
    digits_only_message,
    foreign_digits,
    is_digits,
    to_int,
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

# ------------------------------------------------------------------- the checks

# (brand, prefix ranges as (low, high) over the first N digits, allowed lengths)
_BRANDS: tuple[tuple[str, tuple[tuple[int, int], ...], tuple[int, ...]], ...] = (
    ("American Express", ((34, 34), (37, 37)), (15,)),
    ("Diners Club", ((300, 305), (3095, 3095), (36, 36), (38, 39)), (14, 15, 16, 17, 18, 19)),
    ("Discover", ((6011, 6011), (622126, 622925), (644, 649), (65, 65)),
     (16, 17, 18, 19)),
    ("Mastercard", ((51, 55), (2221, 2720)), (16,)),
    ("Visa", ((4, 4),), (13, 16, 19)),
)

_LENGTHS = {brand: lengths for brand, _ranges, lengths in _BRANDS}


def _or(values) -> str:
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


@dataclass(frozen=True)
class CardDetails:
    """What the sandbox may keep of a card (never the number or the CVC)."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    holder: str


@dataclass(frozen=True)
class BankDetails:
    routing_last4: str
    last4: str
    holder: str


def digits(raw: str | None) -> str:
    """"4242 4242-4242 4242" → "4242424242424242"; other characters are kept (and refused)."""
    return re.sub(r"[\s-]", "", raw or "")


def luhn_ok(number: str) -> bool:
    if not is_digits(number):
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def brand_of(number: str) -> str | None:
    for brand, ranges, _lengths in _BRANDS:
        for low, high in ranges:
            width = len(str(low))
            if len(number) >= width and low <= int(number[:width]) <= high:
                return brand
    return None


def check_card(number: str, exp_month: str, exp_year: str, cvc: str, holder: str,
               today: date) -> CardDetails:
    """Length, Luhn, brand (Diners Club refused), expiry, CVC length by brand, holder."""
    errors: dict[str, str] = {}
    number = digits(number)
    brand = None
    if not number:
        errors["number"] = "Enter the card number."
    elif foreign_digits(number):
        errors["number"] = digits_only_message("The card number")
    elif not is_digits(number):
        errors["number"] = "The card number has only digits."
    else:
        brand = brand_of(number)
        if brand == "Diners Club":
            errors["number"] = f"Diners Club cards are not accepted. {ACCEPTED_TEXT}"
        elif brand is None:
            errors["number"] = f"This card brand is not accepted. {ACCEPTED_TEXT}"
        elif len(number) not in _LENGTHS[brand]:
            errors["number"] = f"{brand} card numbers have {_or(_LENGTHS[brand])} digits."
        elif not luhn_ok(number):
            errors["number"] = "This card number isn't valid: check the digits."

    month = to_int(exp_month, max_digits=2)
    year = to_int(exp_year, max_digits=4)
    if year is not None and year < 100:
        year += 2000
    if month is None or not 1 <= month <= 12:
        errors["exp_month"] = "Choose the expiry month."
    if year is None or not 2000 <= year <= today.year + 25:
        errors["exp_year"] = "Enter the expiry year, like 2029."
    if "exp_month" not in errors and "exp_year" not in errors and (year, month) < (
            today.year, today.month):
        errors["exp_year"] = "This card has expired."

    cvc = (cvc or "").strip()
    wanted = 4 if brand == "American Express" else 3
    if not is_digits(cvc) or len(cvc) != wanted:
        errors["cvc"] = ("The security code is 4 digits on American Express cards and 3 on "
                         "others.")

    try:
        holder = clean_text(holder, "holder", "The name", 120,
                            required="Enter the name on the card.")
    except ValidationFailed as e:
        errors.update(e.errors)
    if errors:
        raise ValidationFailed(errors)
    return CardDetails(brand=brand, last4=number[-4:], exp_month=month, exp_year=year,
                       holder=holder)


def routing_ok(routing: str) -> bool:
    """The ABA routing number checksum: 3·(d1+d4+d7) + 7·(d2+d5+d8) + (d3+d6+d9) ≡ 0 mod 10."""
    if len(routing) != 9 or not is_digits(routing):
        return False
    d = [int(c) for c in routing]
    total = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8])
    return total % 10 == 0


def check_bank_account(routing: str, account: str, holder: str) -> BankDetails:
    errors: dict[str, str] = {}
    routing, account = digits(routing), digits(account)
    if not routing:
        errors["routing"] = "Enter the 9-digit routing number."
    elif foreign_digits(routing):
        errors["routing"] = digits_only_message("The routing number")
    elif not routing_ok(routing):
        errors["routing"] = "This routing number isn't valid: check the 9 digits."
    if not account:
        errors["account_number"] = "Enter the account number."
    elif foreign_digits(account):
        errors["account_number"] = digits_only_message("The account number")
    elif not is_digits(account) or not 4 <= len(account) <= 17:
        errors["account_number"] = "An account number has 4 to 17 digits."
    try:
        holder = clean_text(holder, "holder", "The name", 120,
                            required="Enter the account holder's name.")
    except ValidationFailed as e:
        errors.update(e.errors)
    if errors:
        raise ValidationFailed(errors)
    return BankDetails(routing_last4=routing[-4:], last4=account[-4:], holder=holder)


# ------------------------------------------------------------ the form's answers

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
