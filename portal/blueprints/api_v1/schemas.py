"""The schemas shared by every resource: a problem, a page of a list, an account. Each
resource module keeps its own schemas beside its routes.

Money is integer cents (fields ending in `_cents`), times are ISO 8601 in UTC, enums are
their lower-case values (as stored)."""

import marshmallow as ma
from marshmallow import fields, validate

from portal.blueprints.api import problems
from portal.models import AccountKind, AccountStatus, BillingMode


def _problem_types() -> str:
    kinds = [(status, slug) for status, (slug, _title) in problems.KINDS.items()]
    kinds.insert(next(i for i, (status, _) in enumerate(kinds) if status > 402),
                 (402, PAYMENT_FAILED))
    return "; ".join(f"`{slug}` ({status})" for status, slug in kinds)


PAYMENT_FAILED = "payment-failed"  # 402: the processor declined, or the payer didn't confirm


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details (see portal/blueprints/api/problems.py). Besides the members
    below, a problem may carry extension members (RFC 9457 §3.2): clients ignore those they
    don't know."""

    class Meta:
        unknown = ma.INCLUDE  # documented as additionalProperties: true

    type = fields.String(required=True, metadata={
        "description": "A stable URI per kind of problem; compare it as a string. "
                       f"`{problems.PROBLEM_BASE}` followed by one of: {_problem_types()}; "
                       "`about:blank` for any other status."})
    title = fields.String(required=True, metadata={
        "description": "The same for every problem of a type."})
    status = fields.Integer(required=True)
    detail = fields.String(required=True, metadata={"description": "What went wrong this time."})
    errors = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "Field → message, for validation problems ({} otherwise)."})
    error = fields.String(metadata={"description": "= detail (older clients)."})
    charge = fields.Dict(metadata={
        "description": "On a 402 `payment-failed`: the failed payment (as a Charge; nothing "
                       "was charged). On a 409 from PUT .../auto-recharge: the charge the "
                       "save would make, with the `confirmation` to send back as "
                       "`confirm_charge`."})
    standing = fields.Dict(allow_none=True, metadata={
        "description": "On a 409 from make-primary: why the method is failing (as a "
                       "Standing); send `{\"confirm\": true}` to go ahead."})
    status_of_file = fields.String(metadata={
        "description": "On a 409 from a statement file's PDF: the file's status "
                       "(pending, building or failed)."})


class PageArgsSchema(ma.Schema):
    """?limit= and ?cursor= of every list."""

    limit = fields.Integer(load_default=25, validate=validate.Range(1, 100))
    cursor = fields.String(load_default=None, allow_none=True,
                           validate=validate.Length(max=200), metadata={
                               "description": "next_cursor of the page before."})


def page_schema(item: type[ma.Schema], name: str) -> type[ma.Schema]:
    """A page of `item`s: {"data": [...], "next_cursor": "…" or null, "has_more": bool}."""
    return ma.Schema.from_dict({
        "data": fields.List(fields.Nested(item), required=True),
        "next_cursor": fields.String(allow_none=True, required=True),
        "has_more": fields.Boolean(required=True),
    }, name=name)


class AccountSchema(ma.Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    kind = fields.Enum(AccountKind, by_value=True, required=True)
    parent_id = fields.Integer(allow_none=True, required=True, metadata={
        "description": "The agency's id, for a sub-account."})
    plan = fields.String(required=True)
    status = fields.Enum(AccountStatus, by_value=True, required=True)
    status_label = fields.String(required=True)
    billing_mode = fields.Enum(BillingMode, by_value=True, required=True)
    balance_cents = fields.Integer(required=True)
    canceled_at = fields.DateTime(allow_none=True, required=True)
