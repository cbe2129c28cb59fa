"""The usage and calls endpoints, and the bearer-token check before each."""

import hmac
from datetime import UTC, datetime, timedelta

from flask import current_app, jsonify, request

from portal.blueprints.api import bp, problems
from portal.clock import now as clock_now
from portal.errors import NotAllowed, ValidationFailed
from portal.extensions import db, payment_gateway
from portal.models import Account, ChargeStatus
from portal.services import charges, usage
from portal.services.inputs import has_control

EARLIEST_CALL = datetime(2000, 1, 1, tzinfo=UTC)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800")
        return False
    return True


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
    try:
        posted = usage.post(db.session, account, data.get("items"), key)
    except ValidationFailed as e:
        db.session.rollback()
        return _problem(422, "The usage was not posted.", e.errors)
    except NotAllowed as e:
        db.session.rollback()
        return _problem(409, e.message)
    entry = posted.entry
    # Read before the commit expires them (each would be a query after it).
    body = {"entry_id": entry.id, "account_id": account.id,
            "paid_by_account_id": entry.account_id, "amount_cents": -entry.amount_cents,
            "balance_after_cents": entry.balance_after_cents, "duplicate": posted.duplicate}
    db.session.commit()
    recharge = None
    if posted.recharge is not None:
        charge = charges.run_recharge(db.session, payment_gateway(), posted.recharge)
        recharge = {"id": charge.id, "status": charge.status.value,
                    "amount_cents": charge.amount_cents,
                    "reason": charge.failure_message if charge.status == ChargeStatus.FAILED
                    else ""}
    body["recharge"] = recharge
    return jsonify(body), 200 if posted.duplicate else 201


@bp.post("/accounts/<id:account_id>/calls")
def post_call(account_id: int):
    """A call arrived (from the telephony side). With automatic redaction on, the caller's
    name, number and notes are dropped before anything is stored."""
    from portal.services import privacy

    account = db.session.get(Account, account_id)
    if account is None:
        return _problem(404, "No such account.")
    data = _json_object()
    if data is None:
        return _problem(400, "Send a JSON object: {\"caller_number\": ..., \"called_number\": "
                             "..., \"started_at\": \"2026-11-23T12:00:00Z\", "
                             "\"duration_seconds\": 60}.")
    errors = {}
    try:
        started = datetime.fromisoformat(str(data.get("started_at", "")).replace("Z", "+00:00"))
        if started.tzinfo is None:
            raise ValueError
        started = started.astimezone(UTC)
        if not EARLIEST_CALL <= started <= clock_now() + timedelta(days=1):
            raise ValueError
    except (ValueError, OverflowError):
        errors["started_at"] = "started_at must be an ISO 8601 time with a zone, like " \
                               "2026-11-23T12:00:00Z, from 2000 to now."
        started = None
    duration = data.get("duration_seconds")
    if not isinstance(duration, int) or isinstance(duration, bool) or not 0 <= duration <= 86400:
        errors["duration_seconds"] = "duration_seconds must be a whole number from 0 to 86400."
    called = data.get("called_number")
    if not isinstance(called, str) or not called.startswith("+") or len(called) > 16 or not (
            called[1:].isascii() and called[1:].isdigit()):
        errors["called_number"] = "called_number must be an E.164 number like +14155550100."
    texts = {}
    for name, limit in (("caller_number", 32), ("caller_name", 120), ("source", 60),
                        ("notes", privacy.MAX_NOTES)):
        value = data.get(name, "")
        if not isinstance(value, str) or len(value) > limit:
            errors[name] = f"{name} must be text of at most {limit} characters."
        elif has_control(value.replace("\n", "").replace("\t", "")) or not _encodable(value):
            errors[name] = f"{name} can't contain control characters or invalid text."
        texts[name] = value if isinstance(value, str) else ""
    if errors:
        return _problem(422, "The call was not recorded.", errors)
    if account.is_canceled:
        return _problem(409, f"{account.name} is canceled: it receives no calls.")
    try:
        call = privacy.receive_call(db.session, account, privacy.Arrival(
            started_at=started, caller_number=texts["caller_number"], called_number=called,
            duration_seconds=duration, caller_name=texts["caller_name"],
            source=texts["source"], notes=texts["notes"]))
        db.session.flush()
    except ValidationFailed as e:
        db.session.rollback()
        errors = {("caller_number" if key == "number" else key): message
                  for key, message in e.errors.items()}
        return _problem(422, "The call was not recorded.", errors)
    body = {"call_id": call.id, "account_id": account.id,
            "redacted": call.redacted_at is not None}
    db.session.commit()
    return jsonify(body), 201
