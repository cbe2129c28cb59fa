"""/api/v1/accounts/<id>/history: Change History over the API — every version of the
account's settings and records (who, when, what changed, before and after), filtered as the
page filters (user, record type, a date range, an agency's sub-accounts too), newest first,
cursor-paginated. Owners and admins (Can.SETTINGS). Versions made through the API name the
key ("API key “Nightly sync”") and its maker's id. Kept 7 days for individual accounts, 120
for agencies and their sub-accounts."""

import marshmallow as ma
from flask.views import MethodView
from marshmallow import fields, validate
from sqlalchemy import select

from portal import roles, versioning
from portal.blueprints.api_v1 import blueprint, paging
from portal.blueprints.api_v1.accounts import reach
from portal.blueprints.api_v1.schemas import PageArgsSchema, page_schema
from portal.extensions import db
from portal.models import Version
from portal.services import history

bp = blueprint("history", "Change history.")


class HistoryArgsSchema(PageArgsSchema):
    """The Change History page's filters, with its names and messages."""

    user = fields.String(load_default="", validate=validate.Length(max=20), metadata={
        "description": "Only versions made by this user id."})
    type = fields.String(validate=validate.Length(max=40), metadata={
        "description": "Only this record type.", "enum": list(versioning.RECORD_TYPES)})
    from_ = fields.String(data_key="from", load_default="", validate=validate.Length(max=20),
                          metadata={"description": "From this day (YYYY-MM-DD, UTC)."})
    to = fields.String(load_default="", validate=validate.Length(max=20), metadata={
        "description": "To this day, included (YYYY-MM-DD, UTC)."})
    subs = fields.Boolean(load_default=False, metadata={
        "description": "An agency: its sub-accounts' versions too."})


class ChangeSchema(ma.Schema):
    field = fields.String(required=True)
    label = fields.String(required=True, metadata={"description": "As the page names it."})
    before = fields.Raw(allow_none=True, required=True, metadata={
        "description": "The value before: a string, number, boolean or null (none yet)."})
    after = fields.Raw(allow_none=True, required=True, metadata={
        "description": "The value after, as `before` (null: removed)."})


class VersionSchema(ma.Schema):
    id = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    account_id = fields.Integer(required=True)
    record_type = fields.String(required=True)
    record_type_label = fields.String(required=True)
    record_id = fields.Integer(required=True)
    record_label = fields.String(required=True)
    action = fields.String(required=True, metadata={
        "enum": [versioning.CREATED, versioning.CHANGED, versioning.DELETED,
                 versioning.REDACTED]})
    actor_id = fields.Integer(allow_none=True, required=True, metadata={
        "description": "The user who made it (through the API: the key's maker)."})
    actor_label = fields.String(required=True, metadata={
        "description": "Who, as shown: a name, an API key, \"System\", a customer."})
    changes = fields.List(fields.Nested(ChangeSchema), required=True, metadata={
        "description": "Each field's value before and after (personal data that was "
                       "removed: its name only, both null)."})


VersionPage = page_schema(VersionSchema, "VersionPage")


def _version(version: Version) -> dict:
    return {
        **{name: getattr(version, name) for name in (
            "id", "at", "account_id", "record_type", "record_id", "record_label", "action",
            "actor_id", "actor_label")},
        "record_type_label": versioning.RECORD_TYPES.get(version.record_type,
                                                         version.record_type),
        "changes": [{"field": name, "label": versioning.field_label(name, version.record_type),
                     "before": pair[0], "after": pair[1]}
                    for name, pair in sorted(version.changes.items())],
    }


@bp.route("/accounts/<id:account_id>/history")
class History(MethodView):
    @bp.doc(operationId="listChanges")
    @bp.arguments(HistoryArgsSchema, location="query")
    @bp.response(200, VersionPage)
    def get(self, args, account_id: int):
        """Read the change history

        Change History's entries, newest first, filtered as the page filters."""
        account = reach(account_id, roles.Can.SETTINGS).account
        filters = history.parse_filters(account, {
            "user": args["user"], "type": args.get("type", ""), "from": args["from_"],
            "to": args["to"], "subs": "1" if args["subs"] else ""})
        query = select(Version).where(*history.filter_conditions(account, filters))
        page = paging.page(db.session, query, Version.id, args["limit"], args["cursor"])
        return {**page, "data": [_version(v) for v in page["data"]]}
