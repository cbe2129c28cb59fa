"""What the billing resources of /api/v1 share (issue 18 E2): the access rule of every billing
page (roles.Can.BILLING; an account that pays its own bills for the pages under
`@own_billing`), the services' field names said as the API's, a problem with more members,
a PDF answer.

The services parse money as people type it ("25.00"); the API takes integer cents and hands
the services the same amount as text (`cents_text`), so the one parser (its minimum, maximum
and messages) decides for both, and its errors are moved to the API's field names."""

import base64
import binascii
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from flask import make_response, request
from sqlalchemy import Integer, literal, tuple_
from sqlalchemy.orm import Session

from portal import roles
from portal.blueprints.api import problems
from portal.blueprints.api_v1 import auth
from portal.errors import ValidationFailed
from portal.models.types import UTCDateTime
from portal.services import billing
from portal.services.access import Access
from portal.services.money import plain

PDF = {"type": "string", "format": "binary"}


def reach(account_id: int, own_billing: bool = False) -> Access:
    """The account as the key reaches it with the billing capability (404 for another
    tenant's, 403 without the role), under the pages' account guard (accounts.reach: gone
    60 days after closing, 410; a canceled account is read-only, 409 for a write);
    `own_billing`: 403 for a sub-account paid from its agency's balance, as the pages'
    @own_billing."""
    from portal.blueprints.api_v1 import accounts

    access = accounts.reach(account_id, roles.Can.BILLING,
                            write=request.method not in auth.SAFE_METHODS)
    if own_billing:
        billing.check_own_billing(access.account)
    return access


def cents_text(cents: int | None) -> str:
    """Integer cents as the services' parser reads an amount ("1234.56"; "" for none)."""
    return "" if cents is None else plain(cents)


@contextmanager
def fields_named(names: Mapping[str, str]) -> Iterator[None]:
    """A ValidationFailed inside, with its fields renamed (the form's "amount" is the API's
    "amount_cents")."""
    try:
        yield
    except ValidationFailed as e:
        raise ValidationFailed({names.get(k, k): v for k, v in e.errors.items()}) from None


def problem(status: int, detail: str, errors: dict | None = None, **members):
    """A problem+json answer with extension members (RFC 9457 §3.2) besides the usual."""
    response = problems.problem(status, detail, errors)
    body = json.loads(response.get_data())
    body.update(members)
    response.set_data(json.dumps(body))
    return response


def pdf_answer(data: bytes, filename: str):
    response = make_response(data)
    response.headers["Content-Type"] = "application/pdf"
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


# ------------------------------------------------------------------ newest first, by cursor

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
NOT_A_CURSOR = ("Not a cursor from this list: send next_cursor from the page before, or none "
                "for the first.")


def newest_first(session: Session, query, created_column, id_column, limit: int,
                 cursor: str | None) -> dict:
    """paging.page's {"data", "next_cursor", "has_more"} in the pages' order (created_at,
    then id, newest first), the cursor being the last row's (created_at, id) compared as a
    row value: each page is read from the (account_id, created_at, id) index the pages use.
    Ordering by the id alone made PostgreSQL walk the primary key backwards past every other
    account's rows: 198 ms for an account whose 20 ledger entries are older than a million
    others', 0.04 ms this way (EXPLAIN ANALYZE, PostgreSQL 15)."""
    after = _decode(cursor)
    if after is not None:
        query = query.where(tuple_(created_column, id_column) < tuple_(
            literal(after[0], UTCDateTime()), literal(after[1], Integer())))
    rows = list(session.scalars(query.order_by(created_column.desc(), id_column.desc())
                                .limit(limit + 1)))
    has_more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows and has_more else None
    next_cursor = None if last is None else _encode(getattr(last, created_column.key),
                                                    getattr(last, id_column.key))
    return {"data": rows, "next_cursor": next_cursor, "has_more": has_more}


def _encode(moment: datetime, row_id: int) -> str:
    at = (moment - EPOCH) // MICROSECOND
    return base64.urlsafe_b64encode(f"at:{at}:{row_id}".encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> tuple[datetime, int] | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    kind, _, rest = text.partition(":")
    at, _, row_id = rest.partition(":")
    if kind != "at" or not all(part.isascii() and part.isdigit() and len(part) <= 18
                               for part in (at, row_id)) or int(row_id) >= 2**31:
        raise ValidationFailed({"cursor": NOT_A_CURSOR})
    try:
        moment = EPOCH + int(at) * MICROSECOND
    except OverflowError:
        raise ValidationFailed({"cursor": NOT_A_CURSOR}) from None
    return moment, int(row_id)
