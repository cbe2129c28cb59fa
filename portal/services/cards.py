"""Card and bank-account checks before anything goes to the payment gateway.

Only what the gateway returns (a token) and what the user needs to recognise the method
(brand, last 4, expiry, holder) is ever kept: never the number or the CVC.
"""

import re
from dataclasses import dataclass
from datetime import date

from portal.errors import ValidationFailed
from portal.services.inputs import (
    clean_text,
    digits_only_message,
    foreign_digits,
    is_digits,
    to_int,
)

ACCEPTED = ("Visa", "Mastercard", "American Express", "Discover")
ACCEPTED_TEXT = "We accept Visa, Mastercard, American Express and Discover."

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
    """What may be kept of a card (the number and CVC go to the gateway only)."""

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

