"""Small input rules shared by the services: names, free text, whole numbers, email
addresses and checkboxes. Every number typed by a person is read by to_int / whole_number
(or money.parse_cents), every free-text field by clean_text, every address by clean_email."""

import unicodedata
from typing import Any

from email_validator import EmailNotValidError, validate_email

from portal.errors import ValidationFailed

TRUE_VALUES = ("on", "1", "true", "yes")


def flag(value: Any) -> bool:
    """A checkbox or JSON boolean: on/1/true/yes (any case) or True."""
    if isinstance(value, bool):
        return value
    return str(value if value is not None else "").strip().lower() in TRUE_VALUES


# The bidirectional embeddings, overrides and isolates ("Trojan Source"): one in a name would
# reverse the text around it wherever the name is shown (a message, an email, Change History).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# What shows nothing on its own: format characters (zero-width space, joiners, marks) and
# separators.
INVISIBLE = frozenset(("Cc", "Cf", "Zs", "Zl", "Zp"))


def has_control(text: str) -> bool:
    """NUL and other control characters, and the bidirectional controls: no name or setting
    holds them (and PostgreSQL refuses NUL in text outright)."""
    return any(unicodedata.category(c) == "Cc" or c in BIDI_CONTROLS for c in text)


def has_visible(text: str) -> bool:
    """At least one character that shows: a name of zero-width spaces is no name."""
    return any(unicodedata.category(c) not in INVISIBLE for c in text)


def clean_name(raw: Any, field: str, noun: str, max_len: int,
               taken: set[str] | None = None, missing: str = "") -> str:
    """A name: spaces collapsed, 1..max_len characters, no control characters, not one of
    `taken` (compared without case). Raises ValidationFailed({field: ...})."""
    name = " ".join(str(raw if raw is not None else "").split())
    if not has_visible(name):
        raise ValidationFailed({field: missing or f"Enter the {noun} name."})
    if has_control(name):
        raise ValidationFailed({field: f"The {noun} name can't contain control characters."})
    if len(name) > max_len:
        raise ValidationFailed({field: f"The {noun} name is at most {max_len} characters."})
    if taken and name.casefold() in {t.casefold() for t in taken}:
        raise ValidationFailed({field: f"There is already a {noun} named {name}: choose "
                                       "another name."})
    return name


def clean_text(raw: Any, field: str, label: str, max_len: int | None = None, *,
               multiline: bool = False, required: str = "") -> str:
    """Free text a person typed (a name on a card, a message, a note, an address line):
    spaces around it dropped; on one line, runs of spaces made one; in a multi-line field
    (multiline=True) line breaks kept, as "\n". Any other control character (NUL, tab,
    escape, a line break in a one-line field) is refused with a message, never stored.
    Empty is fine unless `required` (its message) is given; longer than max_len is refused.
    Raises ValidationFailed({field: message})."""
    text = "" if raw is None else str(raw)
    if multiline:
        text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
        bad = has_control(text.replace("\n", ""))
    else:
        text = text.strip()
        bad = has_control(text)
        text = " ".join(text.split())  # (no control character is left to split on)
    if bad:
        where = "" if multiline else " or line breaks"
        raise ValidationFailed({field: f"{label} can't contain control characters{where}."})
    if not text and required:
        raise ValidationFailed({field: required})
    if max_len is not None and len(text) > max_len:
        raise ValidationFailed({field: f"{label} is at most {max_len:,} characters."})
    return text


def clean_email(raw: Any, field: str, message: str) -> str:
    """An email address someone typed (a statement's recipient, a customer, a new owner):
    one address, checked by email-validator for its syntax only (no DNS lookup), without a
    display name, quotes or line breaks (so "a@b.com\r\nBcc: x@y" can never become a mail
    header), its domain in ASCII (IDNA). Lowercased, as every address here is. Raises
    ValidationFailed({field: message}).

    Domains under .test are allowed (RFC 2606 keeps them for testing: the demo's users and
    the tests use them; mail to one simply fails delivery); .invalid, .localhost and other
    special-use names are refused."""
    text = "" if raw is None else str(raw).strip()
    if not text or has_control(text):
        raise ValidationFailed({field: message})
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=False,
                                 allow_display_name=False, allow_quoted_local=False,
                                 allow_domain_literal=False, test_environment=True)
    except EmailNotValidError:
        raise ValidationFailed({field: message}) from None
    return checked.ascii_email.lower()


# --- whole numbers ---------------------------------------------------------------------------
# Only the ASCII digits 0-9. Python is generous: str.isdigit() is true for "²" (which int()
# then refuses: a 500), re's \d and int() take fullwidth "４２" as 42 (a card number that
# reaches the gateway, "２５" charged as $25.00), and int() also reads "1_2" as 12, "+5" and
# " 5 ". None of that is a number a person meant to type here.
DIGITS = frozenset("0123456789")


def is_digits(text: Any) -> bool:
    """A non-empty string of the digits 0-9 and nothing else."""
    return isinstance(text, str) and bool(text) and all(c in DIGITS for c in text)


def foreign_digits(text: Any) -> bool:
    """Digits other than 0-9 in the text (fullwidth ４, superscript ², Arabic-Indic ٤...):
    worth a message of their own, since they look like digits to the person who typed them."""
    return isinstance(text, str) and any(c.isdigit() and c not in DIGITS for c in text)


def digits_only_message(label: str, example: str = "") -> str:
    """Like "The amount must be written with the digits 0-9, like 25.00." """
    like = f", like {example}" if example else ""
    return f"{label} must be written with the digits 0-9{like}."


def to_int(raw: Any, max_digits: int = 9) -> int | None:
    """The whole number in `raw` (spaces around it ignored), or None: at most `max_digits`
    digits 0-9, nothing else (no sign, underscore or other digits). A JSON integer passes
    through; a boolean is not a number."""
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int):
        return raw if len(str(abs(raw))) <= max_digits and raw >= 0 else None
    text = str(raw).strip()
    if not is_digits(text) or len(text) > max_digits:
        return None
    return int(text)



MAX_ROW_ID = 2**31 - 1  # past it, PostgreSQL's INTEGER overflows


def to_id(raw: Any) -> int | None:
    """A row id from a form or query string (1 to 2**31 - 1), or None."""
    value = to_int(raw, max_digits=10)
    return value if value is not None and 1 <= value <= MAX_ROW_ID else None
