"""/api/v1: The ledger (billing logs), filtered and cursor-paginated (issue 18 E2).

The Billing Logs' filter (billing_logs.parse_filter: text, kind, a UTC date range, the same
messages) over the same conditions, in the page's order (newest first: created_at, then
id); readable on agency billing too (the account's own past ledger, as the page).
The cursor is billing_common.newest_first's: (created_at, id) on the page's indexes."""

import marshmallow as ma
from flask import request
from flask.views import MethodView
from marshmallow import fields, validate
from sqlalchemy import select

from portal.blueprints.api_v1 import blueprint
from portal.blueprints.api_v1.billing_common import newest_first, reach
from portal.blueprints.api_v1.schemas import PageArgsSchema, page_schema
from portal.extensions import db
from portal.models import Cause, LedgerEntry, LedgerKind
from portal.services import billing_logs

bp = blueprint("ledger", "The ledger (billing logs), filtered and cursor-paginated.")


class LedgerEntrySchema(ma.Schema):
    id = fields.Integer(required=True)
    kind = fields.Enum(LedgerKind, by_value=True, required=True)
    label = fields.String(required=True, metadata={"description": "\"Usage\", \"Payment\"…"})
    description = fields.String(required=True)
    amount_cents = fields.Integer(required=True, metadata={
        "description": "+ a credit, - a debit."})
    balance_after_cents = fields.Integer(required=True)
    for_account_id = fields.Integer(allow_none=True, required=True, metadata={
        "description": "The sub-account that incurred it (an agency's balance paying)."})
    cause = fields.Enum(Cause, by_value=True, required=True)
    reference = fields.String(attribute="cause_ref", required=True, metadata={
        "description": "The cause's id (a charge's, for payments and refunds)."})
    created_at = fields.DateTime(required=True)


class LedgerArgsSchema(PageArgsSchema):
    q = fields.String(load_default="", validate=validate.Length(max=400), metadata={
        "description": "Description contains (any case); a whole receipt number "
                       "(R-00001234) finds its charge's entries."})
    kind = fields.String(load_default="", metadata={
        "description": "One of: " + ", ".join(k.value for k in LedgerKind)})
    from_ = fields.String(data_key="from", load_default="", metadata={
        "description": "First day, YYYY-MM-DD (UTC), inclusive."})
    to = fields.String(load_default="", metadata={
        "description": "Last day, YYYY-MM-DD (UTC), inclusive."})


LedgerPage = page_schema(LedgerEntrySchema, "LedgerPage")


@bp.route("/accounts/<id:account_id>/ledger")
class Ledger(MethodView):
    @bp.doc(operationId="listLedgerEntries")
    @bp.arguments(LedgerArgsSchema, location="query")
    @bp.response(200, LedgerPage)
    def get(self, args, account_id: int):
        """List the ledger entries (Billing Logs)

        Every ledger entry of the account (Billing Logs), newest first; 422 with the
        page's messages for a bad filter."""
        account = reach(account_id).account
        log_filter = billing_logs.parse_filter(request.args)
        query = select(LedgerEntry).where(*log_filter.conditions(account))
        return newest_first(db.session, query, LedgerEntry.created_at, LedgerEntry.id,
                            args["limit"], args["cursor"])
