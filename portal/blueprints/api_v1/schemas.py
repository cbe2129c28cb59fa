"""The schemas shared by every resource: a problem, a page of a list, an account. Each
resource module keeps its own schemas beside its routes.

Money is integer cents (fields ending in `_cents`), times are ISO 8601 in UTC, enums are
their lower-case values (as stored)."""

import marshmallow as ma
from marshmallow import fields, validate

from portal.models import AccountKind, AccountStatus, BillingMode


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details (see portal/blueprints/api/problems.py)."""

    type = fields.String(required=True, metadata={
        "description": "A stable URI per kind of problem; compare it as a string."})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "Field → message, for validation problems."})
    error = fields.String(metadata={"description": "= detail (older clients)."})


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
