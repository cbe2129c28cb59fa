"""/api/v1/key: the calling key itself ("who am I"): its name, scopes, role and account."""

from flask.views import MethodView
from marshmallow import Schema, fields

from portal.blueprints.api_v1 import auth, blueprint
from portal.blueprints.api_v1.schemas import AccountSchema
from portal.models import SCOPES, Role

bp = blueprint("keys", "The API key a request is sent with: which account it acts on, with "
                       "which scopes and role. Keys are made and revoked on Settings → "
                       "Developers, never through the API.")


class KeySchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    hint = fields.String(required=True, metadata={
        "description": "The key's visible start, apk_<prefix>_…; the secret is never shown "
                       "again."})
    scopes = fields.List(fields.String(metadata={"enum": list(SCOPES)}), required=True)
    role = fields.String(required=True, metadata={
        "enum": [Role.OWNER.value, Role.ADMIN.value],
        "description": "The role the key acts with: owner or admin."})
    created_at = fields.DateTime(required=True)
    last_used_at = fields.DateTime(allow_none=True, required=True)
    account = fields.Nested(AccountSchema, required=True, metadata={
        "description": "The key's account; an agency's key also reaches its sub-accounts."})


@bp.route("/key")
class Key(MethodView):
    api_scope = auth.ANY_SCOPE  # a metering-only key can check itself too

    @bp.doc(operationId="getApiKey")
    @bp.response(200, KeySchema)
    def get(self):
        """Read the calling key

        The calling key: its account, scopes and role. Any live key may read itself,
        whatever its scopes."""
        key = auth.key()
        return {"id": key.id, "name": key.name, "hint": key.hint,
                "scopes": [scope for scope in SCOPES if scope in key.scope_set],
                "role": key.role.value, "created_at": key.created_at,
                "last_used_at": key.last_used_at, "account": key.account}
