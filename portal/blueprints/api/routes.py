"""The usage and calls endpoints, and the bearer-token check before each."""

import hmac

from flask import current_app, jsonify, request

from portal.blueprints.api import bp, problems
from portal.blueprints.views import submit
from portal.extensions import db, payment_gateway
from portal.models import Account
from portal.services import calls, usage


def _problem(status: int, message: str, errors: dict | None = None):
    """An RFC 9457 problem+json answer (see problems.py for its fields and types)."""
    return problems.problem(status, message, errors)


def _json_object():
    """The request's JSON object, or None (not JSON, not an object, or nested too deep to
    parse)."""
    try:
        data = request.get_json(silent=True)
    except RecursionError:
        return None
    return data if isinstance(data, dict) else None


@bp.before_request
def authenticate():
    expected = current_app.config.get("USAGE_API_TOKEN", "")
    if not expected:
        return _problem(503, "The usage API is not configured (USAGE_API_TOKEN).")
    header = request.headers.get("Authorization", "")
    given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        response = _problem(401, "A valid bearer token is required.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="usage"'
        return response
    return None


@bp.post("/accounts/<id:account_id>/usage")
def post_usage(account_id: int):
    account = db.session.get(Account, account_id)
    if account is None:
        return _problem(404, "No such account.")
    data = _json_object()
    if data is None:
        return _problem(400, "Send a JSON object: {\"idempotency_key\": ..., \"items\": "
                             "{\"minutes\": 12, ...}}.")
    key = data.get("idempotency_key") or request.headers.get("Idempotency-Key", "")
    return submit(
        lambda: usage.post_and_recharge(db.session, payment_gateway(), account,
                                        data.get("items"), key),
        lambda errors: _problem(422, "The usage was not posted.", errors),
        _usage_posted, refused=lambda message: _problem(409, message))


def _usage_posted(received: usage.Received):
    return jsonify(received.as_json()), 200 if received.duplicate else 201


@bp.post("/accounts/<id:account_id>/calls")
def post_call(account_id: int):
    """A call arrived (from the telephony side): calls.receive says what it must hold."""
    account = db.session.get(Account, account_id)
    if account is None:
        return _problem(404, "No such account.")
    data = _json_object()
    if data is None:
        return _problem(400, "Send a JSON object: {\"caller_number\": ..., \"called_number\": "
                             "..., \"started_at\": \"2026-11-23T12:00:00Z\", "
                             "\"duration_seconds\": 60}.")

    def receive():
        call = calls.receive(db.session, account, data)
        # Read before the commit expires them (each would be a query after it).
        return {"call_id": call.id, "account_id": account.id,
                "redacted": call.redacted_at is not None}

    return submit(receive, lambda errors: _problem(422, "The call was not recorded.", errors),
                  lambda body: (jsonify(body), 201),
                  refused=lambda message: _problem(409, message))
