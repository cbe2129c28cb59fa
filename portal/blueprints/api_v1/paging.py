"""Cursor pagination for the API's lists: newest first by a unique, increasing column (the
id); the cursor is the last row's id, opaque to clients (base64url), so a page never skips
or repeats rows when new ones arrive."""

import base64
import binascii

from sqlalchemy.orm import Session

from portal.errors import ValidationFailed


def encode(value: int) -> str:
    return base64.urlsafe_b64encode(f"id:{value}".encode()).decode().rstrip("=")


def decode(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    kind, _, value = text.partition(":")
    if kind != "id" or not value.isascii() or not value.isdigit() or len(value) > 12:
        raise ValidationFailed({"cursor": "Not a cursor from this list: send next_cursor "
                                          "from the page before, or none for the first."})
    return int(value)


def page(session: Session, query, id_column, limit: int, cursor: str | None) -> dict:
    """{"data": rows, "next_cursor", "has_more"} for `query` (a select of models or rows),
    newest first by `id_column`."""
    after = decode(cursor)
    if after is not None:
        query = query.where(id_column < after)
    rows = list(session.scalars(query.order_by(id_column.desc()).limit(limit + 1)))
    has_more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    next_cursor = encode(_id_of(last, id_column)) if has_more and last is not None else None
    return {"data": rows, "next_cursor": next_cursor, "has_more": has_more}


def _id_of(row, id_column) -> int:
    return getattr(row, id_column.key)
