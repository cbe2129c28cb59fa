"""Dollar amounts typed by people, read as integer cents (never through a float)."""

import re

from portal.errors import ValidationFailed
from portal.services.inputs import digits_only_message, foreign_digits, to_int

# "25", "25.5", "25.50", "$1,234.56": digits with optional thousands commas, at most two
# decimals. No sign, exponent, "NaN" or "inf". Digits are 0-9 only (re.ASCII: without it \d
# takes fullwidth "２５", which int() reads as 25).
_AMOUNT = re.compile(r"^\$?\s*(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?$", re.ASCII)
_SUB_CENT = re.compile(r"^\$?\s*\d[\d,]*\.\d{3,}$", re.ASCII)


def parse_cents(text: str | None, field: str, *, minimum: int = 1, maximum: int,
                label: str = "The amount") -> int:
    """Cents from a dollar amount, or ValidationFailed({field: message})."""
    raw = (text or "").strip()
    if not raw:
        raise ValidationFailed({field: f"{label} is required."})
    match = _AMOUNT.match(raw)
    if not match:
        if foreign_digits(raw):
            message = digits_only_message(label, "25 or 25.00")
        elif _SUB_CENT.match(raw):
            message = f"{label} can't have fractions of a cent: use at most two decimals."
        elif raw.startswith("-"):
            message = f"{label} must be more than zero."
        else:
            message = f"{label} must be a dollar amount, like 25 or 25.00."
        raise ValidationFailed({field: message})
    whole, fraction = match.groups()
    if len(whole.replace(",", "")) > 9:
        raise ValidationFailed({field: f"{label} can be at most {dollars(maximum)}."})
    cents = to_int(whole.replace(",", "")) * 100 + to_int((fraction or "0").ljust(2, "0"))
    if cents < minimum:
        if minimum <= 1:
            raise ValidationFailed({field: f"{label} must be more than zero."})
        raise ValidationFailed({field: f"{label} must be at least {dollars(minimum)}."})
    if cents > maximum:
        raise ValidationFailed({field: f"{label} can be at most {dollars(maximum)}."})
    return cents


def dollars(cents: int) -> str:
    """$1,234.56 (and -$5.00)."""
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def plain(cents: int) -> str:
    """1234.56: for form fields and CSV."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"
