"""Errors of the JSON API (/api/...) as RFC 9457 problem details, never an HTML page.

Every error answer of the API is `Content-Type: application/problem+json` with

    {"type": "https://portal.invalid/problems/validation",   the kind of problem (below)
     "title": "Validation failed",                           the same for every such problem
     "status": 422,                                          the HTTP status
     "detail": "The usage was not posted.",                  what went wrong this time
     "errors": {"items": "..."},                             field -> message ({} if none)
     "error": "The usage was not posted."}                   = detail, for older clients

`type` is an absolute URI (RFC 9457 recommends absolute over relative ones, which clients
would have to resolve against each deployment's address). It is an identifier, stable across
releases and deployments: clients compare it as a string. The `.invalid` host says it is not
meant to be fetched. The kinds:

    status  type (after PROBLEM_BASE)  title
    400     bad-request                Bad request                (not a JSON object, unreadable)
    401     unauthenticated            Authentication required    (no or wrong bearer token)
    403     forbidden                  Not allowed
    404     not-found                  Not found                  (no such account, no such path)
    405     method-not-allowed         Method not allowed         (with an Allow header)
    409     conflict                   Conflict                   (e.g. a canceled account)
    410     gone                       Gone                       (closed over 60 days ago)
    413     too-large                  Request body too large     (over MAX_CONTENT_LENGTH)
    415     unsupported-media-type     Unsupported media type     (a body that isn't JSON)
    422     validation                 Validation failed          (field errors in "errors")
    429     rate-limited               Too many requests
    500     server-error               Internal server error      (logged with the request id)
    503     unavailable                Service unavailable        (USAGE_API_TOKEN unset)

Any other status gets RFC 9457's `about:blank` with the HTTP reason phrase as its title.
"errors" and "error" were the API's fields before problem details; they stay so existing
clients keep working ("errors" maps a field to its message, as the pages' forms do).
"""

import json
from http import HTTPStatus

from flask import current_app, request
from werkzeug.exceptions import HTTPException

MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://portal.invalid/problems/"
API_PREFIX = "/api"

KINDS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    410: ("gone", "Gone"),
    413: ("too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation", "Validation failed"),
    429: ("rate-limited", "Too many requests"),
    500: ("server-error", "Internal server error"),
    503: ("unavailable", "Service unavailable"),
}

# The detail of errors raised outside the API's views (routing, the request's size, crashes).
DETAILS = {
    400: "The request could not be read.",
    404: "There is no API endpoint at this address.",
    429: "Too many requests: wait a little and try again.",
    500: "The server could not finish this request. The error was logged under this "
         "response's X-Request-ID; quote it if you ask for help.",
}


def type_uri(status: int) -> str:
    kind = KINDS.get(status)
    return PROBLEM_BASE + kind[0] if kind else "about:blank"


def title(status: int) -> str:
    kind = KINDS.get(status)
    if kind:
        return kind[1]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def is_api_request() -> bool:
    """Is this request for the JSON API (so its errors must be problem details)?"""
    path = request.path
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def problem(status: int, detail: str, errors: dict | None = None,
            headers: dict | None = None):
    body = {"type": type_uri(status), "title": title(status), "status": status,
            "detail": detail, "errors": errors or {}, "error": detail}
    response = current_app.response_class(json.dumps(body), status=status,
                                          mimetype=MEDIA_TYPE, headers=headers)
    return response


def from_http_exception(e: HTTPException):
    """An HTTP error raised by Flask or Werkzeug (routing, body size, abort()) as a problem,
    keeping its headers (Allow on a 405, Retry-After, WWW-Authenticate)."""
    status = e.code or 500
    if status == 405:
        allowed = sorted(m for m in getattr(e, "valid_methods", None) or [] if m != "OPTIONS")
        detail = (f"{request.method} is not allowed here; use {', '.join(allowed)}."
                  if allowed else f"{request.method} is not allowed here.")
    elif status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        detail = (f"The request body is over the limit of {limit:,} bytes." if limit
                  else "The request body is too large.")
    else:
        detail = DETAILS.get(status) or title(status) + "."
    headers = {name: value for name, value in e.get_headers()
               if name.lower() != "content-type"}
    errors = _field_errors(getattr(e, "data", None))
    if errors:
        detail = "Some fields are not valid: " + "; ".join(
            f"{name}: {message}" for name, message in errors.items())
        status = 422 if status == 400 else status
    return problem(status, detail, errors, headers=headers)


def _field_errors(data) -> dict[str, str]:
    """webargs' errors (flask-smorest's 422: {"messages": {"json": {"field": ["..."]}}}) as
    the API's "errors": field → its first message (nested fields joined with dots)."""
    if not isinstance(data, dict) or not isinstance(data.get("messages"), dict):
        return {}
    found: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                walk(f"{prefix}.{name}" if prefix else str(name), inner)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            found[prefix or "request"] = value[0]
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                walk(f"{prefix}.{index}", inner)
        else:
            found[prefix or "request"] = str(value)

    for location_errors in data["messages"].values():
        walk("", location_errors)
    return found
