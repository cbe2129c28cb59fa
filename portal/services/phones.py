"""Phone numbers: one reading of E.164 for every field that takes one (tracking numbers, the
critical billing phone, a call's numbers, the caller number GDPR tools look up)."""

import re

from portal.errors import ValidationFailed

SEPARATORS = re.compile(r"[\s().-]")  # what people type between digits
# A plus, a country code that does not start with 0, 8 to 15 digits in all. [0-9], not \d:
# no fullwidth "４" or other digits.
E164 = re.compile(r"\+[1-9][0-9]{7,14}")
NANP_LENGTH = 12  # "+1" and 10 digits: North American numbers
INTERNATIONAL = "Enter the number in international format, like +14155550100."


def normalize_e164(raw, *, national: bool = False, lenient: bool = False,
                   field: str = "number", message: str = INTERNATIONAL) -> str:
    """"+1 (415) 555-0100" → "+14155550100"; anything else raises ValidationFailed({field:
    message}). Spaces, brackets, dots and dashes are dropped; a +1 number has 10 digits
    after the 1.

    national: a US number may come without its +1 (10 digits).
    lenient: how a caller's number may have been stored, for looking it up: "00" for the
    plus, 10 digits (US) or 11 starting with 1, other digits with a plus put in front, any
    length of country code up to 15 digits."""
    text = SEPARATORS.sub("", raw) if isinstance(raw, str) else ""
    plain = text.isascii() and text.isdigit()
    if lenient:
        if text.startswith("00"):
            text = "+" + text[2:]
        elif not text.startswith("+"):
            text = ("+1" if plain and len(text) == 10 else "+") + text
        body = text[1:]
        if body.isascii() and body.isdigit() and 8 <= len(body) <= 15:
            return text
        raise ValidationFailed({field: message})
    if national and plain and len(text) == 10:
        text = "+1" + text
    if not E164.fullmatch(text) or (text.startswith("+1") and len(text) != NANP_LENGTH):
        raise ValidationFailed({field: message})
    return text
