"""Issue 18: the public API, /api/v1/, over the same services as the pages.

flask-smorest builds it (chosen over APIFlask and flask-openapi3: it is plain Flask
blueprints plus marshmallow schemas, so each resource module reads like the portal's other
blueprints; the OpenAPI 3.1 document is generated from the same schemas that parse the
requests, and its webargs parsing answers 422 with every field's error). The document is at
/api/v1/openapi.json; the reference page (/api/v1/docs) is rendered by a vendored copy of
ReDoc, nothing from a CDN.

Every resource module makes its blueprint with `blueprint(...)` below and is listed in
MODULES; `init_app` registers them. Authentication, scopes and tenancy are auth.py; errors
are RFC 9457 problem details (portal/blueprints/api/problems.py), never flask-smorest's own
error bodies.
"""

import http
from importlib import import_module

from flask import Flask
from flask_smorest import Api, Blueprint
from flask_smorest.spec import prepare_response
from flask_smorest.spec.plugins import FlaskPlugin
from marshmallow import fields as ma_fields
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from portal import rules
from portal.blueprints.api import problems
from portal.errors import DomainError
from portal.extensions import csrf

PREFIX = "/api/v1"
# The resource modules, in the order the reference lists them.
MODULES = ("keys", "accounts", "billing_mode", "people", "history", "payment_methods",
           "payments", "ledger", "statements", "settings", "usage", "webhooks")


# The reference's sections (the OpenAPI tags), by module: a readable name for each resource.
TAGS = {
    "keys": "API key", "accounts": "Accounts", "billing_mode": "Billing mode",
    "people": "Users and invitations", "history": "Change history",
    "payment_methods": "Payment methods", "payments": "Payments", "ledger": "Ledger",
    "statements": "Statements", "settings": "Settings", "usage": "Usage",
    "webhooks": "Webhooks",
}
IDEMPOTENCY_PARAMETER = "IdempotencyKey"
SECURITY_SCHEME = "apiKey"


class PortalApi(Api):
    """flask-smorest's Api with the portal's problem+json errors: its own app-wide
    HTTPException handler is not installed (the app's handlers answer /api with problems),
    and the document describes every error answer as a Problem in application/problem+json."""

    def _register_error_handlers(self):
        pass

    def register_blueprint(self, blp, *, parameters=None, **options):
        """flask-smorest's, with the resource's readable tag (TAGS) instead of the
        blueprint's name, and the Idempotency-Key header documented on every write."""
        name = blp.name
        tag = TAGS.get(name.removeprefix(BLUEPRINT_PREFIX), name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        if _document_conventions not in blp._prepare_doc_cbks:
            blp._prepare_doc_cbks.append(_document_conventions)
        for endpoint_doc in blp._docs.values():
            for method, operation_doc in endpoint_doc.items():
                if method != "parameters" and operation_doc.get("tags") is None:
                    operation_doc["tags"] = [tag]
        blp.register_views_in_doc(self, self._app, self.spec, name=name, parameters=parameters)
        self._document_what_every_view_shares(blp)
        self.spec.tag({"name": tag, "description": blp.description})

    def _document_what_every_view_shares(self, blp) -> None:
        """What auth.py, idempotency.py and the error handlers do for every view, in each
        operation of `blp`: the scope it needs (as its security requirement's role, which
        OpenAPI 3.1 allows for an http scheme) and the error answers any such request can
        get, each a problem+json response."""
        from portal.blueprints.api_v1 import auth

        for endpoint in blp._docs:
            rule = next(self._app.url_map.iter_rules(f"{blp.name}.{endpoint}"))
            path = FlaskPlugin.flaskpath2openapi(rule.rule)
            view = self._app.view_functions[rule.endpoint]
            for method, operation in self.spec._paths[path].items():
                if method.upper() not in rule.methods:
                    continue
                if "operationId" not in operation:
                    raise RuntimeError(f"{rule.endpoint} {method.upper()}: give it an "
                                       "operationId (@bp.doc(operationId=...))")
                scope = auth.scope_of(view, method)
                operation["security"] = [
                    {SECURITY_SCHEME: [] if scope == auth.ANY_SCOPE else [scope]}]
                for parameter in operation.get("parameters", []):
                    if "$ref" not in parameter and parameter.get("in") == "query":
                        _never_null(parameter["schema"])
                statuses = [401, 403, 429]
                if rule.arguments:
                    statuses += [404]
                if "account_id" in rule.arguments:
                    statuses += [410]
                if method.upper() not in auth.SAFE_METHODS:
                    statuses += [409, 413, 422]  # 422: also an Idempotency-Key reused
                if "requestBody" in operation:
                    statuses += [400, 415]  # not JSON; JSON nested too deeply
                responses = operation.setdefault("responses", {})
                for status in sorted(statuses):
                    responses.setdefault(str(status), self.spec.components.get_ref(
                        "response", http.HTTPStatus(status).name))

    def _register_pagination_header(self):
        pass  # the lists are cursor pages (paging.py), not flask-smorest's pagination

    def _register_responses(self):
        from portal.blueprints.api_v1.schemas import ProblemSchema

        for status in http.HTTPStatus:
            response = {"description": ERROR_DESCRIPTIONS.get(status, status.phrase)}
            content_type = self.DEFAULT_RESPONSE_CONTENT_TYPE
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = ProblemSchema
                response["headers"] = {**ERROR_HEADERS, **STATUS_HEADERS.get(status, {})}
                content_type = problems.MEDIA_TYPE
            prepare_response(response, self.spec, content_type)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "An error, as RFC 9457 problem details",
                    "schema": ProblemSchema,
                    "headers": {**ERROR_HEADERS, "Retry-After": _header_ref("RetryAfter")}}
        prepare_response(response, self.spec, problems.MEDIA_TYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


def _never_null(schema: dict) -> None:
    """A query parameter is absent or a string, never null: what marshmallow's
    load_default=None (which implies allow_none) made the schema say is taken back."""
    kinds = schema.get("type")
    if isinstance(kinds, list) and "null" in kinds:
        kinds = [kind for kind in kinds if kind != "null"]
        schema["type"] = kinds[0] if len(kinds) == 1 else kinds
    if "enum" in schema:
        schema["enum"] = [value for value in schema["enum"] if value is not None]
    if "default" in schema and schema["default"] is None:
        del schema["default"]


def _enum_type(_converter, field, ret, **_kwargs) -> dict:
    """marshmallow's Enum by value gives only an `enum`; its values here are strings, so
    the document says so (generated clients get a string enum, not Any)."""
    if isinstance(field, ma_fields.Enum) and field.by_value and "type" not in ret and all(
            isinstance(member.value, str) for member in field.enum):
        return {"type": ["string", "null"] if field.allow_none else "string"}
    return {}


def _header_ref(name: str) -> dict:
    return {"$ref": f"#/components/headers/{name}"}


# The headers every answer to a request with a key carries (ratelimit.py), and a replay's.
RATE_HEADERS = {name: _header_ref(name.replace("-", ""))
                for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")}
# Every answer's request id; an error's, as any answer's (a replayed error says so too).
REQUEST_ID = {"X-Request-ID": _header_ref("XRequestID")}
ERROR_HEADERS = {**RATE_HEADERS, **REQUEST_ID,
                 "Idempotent-Replayed": _header_ref("IdempotentReplayed")}
STATUS_HEADERS = {
    401: {"WWW-Authenticate": _header_ref("WWWAuthenticate")},
    405: {"Allow": _header_ref("Allow")},
    429: {"Retry-After": _header_ref("RetryAfter")},
}
# What each error status means in this API (the problem's `type` names the kind).
ERROR_DESCRIPTIONS = {
    400: "The body could not be read (not JSON, nested too deeply).",
    401: "No API key, or one that is revoked or unknown.",
    403: "The key lacks the scope, or its role may not do this.",
    404: "No such record, or one the key does not reach (the same answer either way).",
    409: "The record's state does not allow it now (the detail says why), or a request "
         "with the same Idempotency-Key is still running.",
    410: "The account was closed more than 60 days ago.",
    413: "The body is too large.",
    415: "The body is not JSON: send Content-Type: application/json.",
    422: "A field is wrong (`errors` names each one), or the Idempotency-Key was used "
         "with another request.",
    429: "Over the key's rate limit: wait Retry-After seconds.",
}
HEADERS = {
    "RateLimitLimit": ("integer", "Requests this key may make in the current minute."),
    "RateLimitRemaining": ("integer", "Requests left in the current minute."),
    "RateLimitReset": ("integer", "Seconds until the minute's count starts again."),
    "RetryAfter": ("integer", "On a 429: seconds to wait before trying again."),
    "IdempotentReplayed": ("string", "`true` when this answer is the replay of the first "
                                     "request sent with the same Idempotency-Key."),
    "XRequestID": ("string", "This request's id, as the server logged it: quote it when "
                             "asking for help."),
    "WWWAuthenticate": ("string", "On a 401: `Bearer realm=\"api\"`."),
    "Allow": ("string", "On a 405: the methods this path takes."),
}


def _document_conventions(doc, _doc_info, *, method, **_kwargs):
    """Every write documents the Idempotency-Key header; every answer, the RateLimit
    headers (and a write's, Idempotent-Replayed)."""
    write = method.upper() not in ("GET", "HEAD", "OPTIONS")
    if write:
        doc.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)  # a $ref
    for response in (doc.get("responses") or {}).values():
        if isinstance(response, dict) and "$ref" not in response:
            headers = response.setdefault("headers", {})
            headers.update(RATE_HEADERS)
            headers.update(REQUEST_ID)
            if write:
                headers["Idempotent-Replayed"] = _header_ref("IdempotentReplayed")
    return doc


api = PortalApi()
BLUEPRINT_PREFIX = "api_v1_"


class UnsupportedMediaType(DomainError):
    status = 415


class BodyParser(FlaskParser):
    """webargs' parser, stricter about the body: one that isn't JSON is a 415 problem (it
    was read as no body at all, so the answer named fields as missing), and JSON nested
    deeper than Python's recursion limit is a 400 problem (it was a 500)."""

    def _raw_load_json(self, req):
        if not is_json_request(req):
            if req.get_data(cache=True).strip():
                raise UnsupportedMediaType(
                    "Send the body as JSON, with Content-Type: application/json.")
            return core.missing
        try:
            return core.parse_json(req.get_data(cache=True))
        except RecursionError:
            raise DomainError("The JSON body is nested too deeply to read.") from None


class PortalBlueprint(Blueprint):
    ARGUMENTS_PARSER = BodyParser()


def blueprint(name: str, description: str) -> Blueprint:
    """A resource's blueprint; its routes are written relative to /api/v1."""
    return PortalBlueprint(f"{BLUEPRINT_PREFIX}{name}", __name__, url_prefix=PREFIX,
                           description=description)


def init_app(app: Flask) -> None:
    app.config.setdefault("API_TITLE", "Account portal API")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.1.0")
    app.config.setdefault("OPENAPI_URL_PREFIX", PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("API_SPEC_OPTIONS", {
        "info": {"description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "security": [{SECURITY_SCHEME: []}],
        "components": {"securitySchemes": {SECURITY_SCHEME: {
            "type": "http", "scheme": "bearer",
            "description": "An API key from Settings → Developers: "
                           "`Authorization: Bearer apk_…`"}}},
    })
    api.init_app(app)
    api.ma_plugin.converter.add_attribute_function(_enum_type)
    for name, (kind, description) in HEADERS.items():
        api.spec.components.header(name, {"description": description,
                                          "schema": {"type": kind}})
    from portal.blueprints.api_v1 import idempotency

    api.spec.components.parameter(IDEMPOTENCY_PARAMETER, "header", {
        "name": idempotency.HEADER, "required": False, "description": idempotency.DESCRIPTION,
        "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_LENGTH,
                   "pattern": "^[\\x21-\\x7e]+$"}})
    from portal.blueprints import IdConverter

    api.register_converter(IdConverter, lambda _converter: {
        "type": "integer", "minimum": 1, "maximum": 2**31 - 1})
    from portal.blueprints.api_v1 import auth

    auth.install(app)
    for name in MODULES:
        module = import_module(f"portal.blueprints.api_v1.{name}")
        csrf.exempt(module.bp)  # no cookie: a bearer key, not a session
        api.register_blueprint(module.bp)
    from portal.blueprints.api_v1 import reference

    app.register_blueprint(reference.bp)


DESCRIPTION = f"""\
Everything an account's owner or admin does in the portal, over the same rules.

**Keys.** Make one on Settings → Developers; send it as `Authorization: Bearer apk_…`. A key
has scopes (`read`: every GET; `write`: every other request but usage; `metering`: usage;
any key may read `GET /api/v1/key`) and acts as an owner or an admin. Each operation's
security requirement names the scope it needs. An agency's key reaches its sub-accounts.

**Errors** are `application/problem+json` (RFC 9457) with a stable `type` per kind (the
Problem schema lists them). Each operation lists the errors it can answer.

**Writes** take an `Idempotency-Key` header (1–255 visible ASCII characters, no spaces,
such as a UUID): a retry with the same key, method, path and body gets the first answer again, with
`Idempotent-Replayed: true`, and changes nothing; the same key with another request is 422;
while the first is still running, 409. A 5xx is not kept (a retry runs again). Keys are
remembered for 24 hours per API key.

**Lists** are cursor-paginated, newest first: `?limit=` (1–100) and `?cursor=` from the last
page's `next_cursor`; `has_more` says whether there is another page.

**Rate limits** per key and minute ({rules.API_RATE_LIMIT_PER_MINUTE:,} requests by default;
usage has its own {rules.API_METERING_RATE_LIMIT_PER_MINUTE:,}), with
`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds) on every answer
to a live key, and 429 with `Retry-After` past them.

**Every answer** carries `X-Request-ID`: quote it when asking for help.
"""
