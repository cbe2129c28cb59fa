"""Small input rules shared by the settings services: names, one-line text and checkboxes."""

import unicodedata
from typing import Any

from portal.errors import ValidationFailed

TRUE_VALUES = ("on", "1", "true", "yes")


def flag(value: Any) -> bool:
    """A checkbox or JSON boolean: on/1/true/yes (any case) or True."""
    if isinstance(value, bool):
        return value
    return str(value if value is not None else "").strip().lower() in TRUE_VALUES


def has_control(text: str) -> bool:
    """NUL and other control characters: no name or setting holds them (and PostgreSQL
    refuses NUL in text outright)."""
    return any(unicodedata.category(c) == "Cc" for c in text)


def clean_name(raw: Any, field: str, noun: str, max_len: int,
               taken: set[str] | None = None) -> str:
    """A name: spaces collapsed, 1..max_len characters, no control characters, not one of
    `taken` (compared without case). Raises ValidationFailed({field: ...})."""
    name = " ".join(str(raw if raw is not None else "").split())
    if not name:
        raise ValidationFailed({field: f"Enter the {noun} name."})
    if has_control(name):
        raise ValidationFailed({field: f"The {noun} name can't contain control characters."})
    if len(name) > max_len:
        raise ValidationFailed({field: f"The {noun} name is at most {max_len} characters."})
    if taken and name.casefold() in {t.casefold() for t in taken}:
        raise ValidationFailed({field: f"There is already a {noun} named {name}: choose "
                                       "another name."})
    return name
