"""What the billing resources of /api/v1 share (issue 18 E2): the access rule of every billing
page (roles.Can.BILLING; an account that pays its own bills for the pages under
`@own_billing`), the services' field names said as the API's, a problem with more members,
a PDF answer.

The services parse money as people type it ("25.00"); the API takes integer cents and hands
the services the same amount as text (`cents_text`), so the one parser (its minimum, maximum
and messages) decides for both, and its errors are moved to the API's field names."""

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from flask import make_response

from portal import roles
from portal.blueprints.api import problems
from portal.blueprints.api_v1 import auth
from portal.errors import ValidationFailed
from portal.services import billing
from portal.services.access import Access
from portal.services.money import plain

PDF = {"type": "string", "format": "binary"}


def reach(account_id: int, own_billing: bool = False) -> Access:
    """The account as the key reaches it with the billing capability (404 for another
    tenant's, 403 without the role); `own_billing`: 403 for a sub-account paid from its
    agency's balance, as the pages' @own_billing."""
    access = auth.reach(account_id, roles.Can.BILLING)
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
