"""Pagination and search helpers shared by the list services."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import false

from portal.errors import ValidationFailed
from portal.services.inputs import is_digits, to_int


@dataclass(frozen=True)
class Page:
    items: list[Any]
    total: int
    number: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def first_index(self) -> int:
        return 0 if self.total == 0 else (self.number - 1) * self.per_page + 1

    @property
    def last_index(self) -> int:
        return min(self.total, self.number * self.per_page)


MAX_PAGE = 1_000_000


def parse_page(raw: str | None) -> int:
    """A page number from the query string: a positive integer, 1 when absent."""
    if raw in (None, ""):
        return 1
    text = raw.strip()
    if text.startswith("-") and is_digits(text[1:]):
        raise ValidationFailed({"page": "Page must be 1 or more."})
    if not is_digits(text):  # the digits 0-9 only (not "１", "1_0" or "+1")
        raise ValidationFailed({"page": "Page must be a whole number."})
    number = to_int(text.lstrip("0") or "0", max_digits=len(str(MAX_PAGE)) + 1)
    if number is None:
        number = MAX_PAGE + 1  # more digits than any page has
    if number < 1:
        raise ValidationFailed({"page": "Page must be 1 or more."})
    if number > MAX_PAGE:  # the OFFSET it makes would overflow the database's integer
        raise ValidationFailed({"page": f"Page must be {MAX_PAGE:,} or less."})
    return number


def escape_like(text: str) -> str:
    """Escape LIKE wildcards so a search for "50%" finds "50%", not everything."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(column, text: str):
    """Case-insensitive "column contains text", wildcards escaped."""
    if "\x00" in text:  # no stored text holds NUL, and PostgreSQL refuses it in a query
        return false()
    return column.ilike(f"%{escape_like(text)}%", escape="\\")
