"""The sandbox processor's blueprint (issue 16), on its own path as if on the processor's
host: its script (sandbox.js, the small Stripe.js subset the portal's pages call), its
card-entry frame, its payment-method API in Stripe's wire shape and its 3-D Secure page.

Like a processor's API it is CSRF-exempt and signed-out (a payment method is made before
anyone is known; the portal then saves it with the gateway), rate-limited per address in
memory (it writes nothing but its own sandbox_* tables), and its pages may be framed by the
portal's own pages only (frame-ancestors 'self', X-Frame-Options SAMEORIGIN).
"""

import time
from collections import deque
from pathlib import Path
from threading import Lock

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    send_from_directory,
)

from portal import headers
from portal.clock import now
from portal.extensions import csrf
from portal.sandbox import URL_PREFIX, core
from portal.sandbox.cards import EntryError, enter_bank_account, enter_card

bp = Blueprint("sandbox", __name__, url_prefix=URL_PREFIX, template_folder="templates")
csrf.exempt(bp)
STATIC = Path(__file__).resolve().parent / "static"
FRAMED_CSP = headers.CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")
KINDS = {"card": "card", "us_bank_account": "ach"}
RATE_LIMIT, RATE_WINDOW_SECONDS = 30, 600  # POSTs per address (SANDBOX_RATE_* override)


def register(app: Flask) -> None:
    app.extensions["sandbox_rate"] = RateLimit()
    app.register_blueprint(bp)


class RateLimit:
    """POSTs per client address in a sliding window, in this process's memory."""

    def __init__(self):
        self._seen: dict[str, deque] = {}
        self._lock = Lock()

    def allow(self, address: str, limit: int, window: float) -> bool:
        moment = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(address, deque())
            while seen and seen[0] <= moment - window:
                seen.popleft()
            if len(seen) >= limit:
                return False
            seen.append(moment)
            return True

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()


@bp.before_request
def rate_limit():
    if request.method != "POST":
        return None
    config = current_app.config
    allowed = current_app.extensions["sandbox_rate"].allow(
        request.remote_addr or "unknown", config.get("SANDBOX_RATE_LIMIT", RATE_LIMIT),
        config.get("SANDBOX_RATE_WINDOW_SECONDS", RATE_WINDOW_SECONDS))
    if allowed:
        return None
    return _error(429, "rate_limit_error", "rate_limit",
                  "Too many requests from your network. Wait a few minutes and try again.")


@bp.after_request
def framed_by_us_only(response):
    response.headers["Content-Security-Policy"] = FRAMED_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Referrer-Policy"] = "no-referrer"  # a client secret may be in the URL
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def _error(status: int, type_: str, code: str, message: str, param: str = ""):
    body = {"type": type_, "code": code, "message": message}
    if param:
        body["param"] = param
    return jsonify({"error": body}), status


# ------------------------------------------------------------------------------- scripts

@bp.get("/sandbox.js")
def script():
    return send_from_directory(STATIC, "sandbox.js", mimetype="text/javascript")


@bp.get("/frame.js")
def frame_script():
    return send_from_directory(STATIC, "frame.js", mimetype="text/javascript")


@bp.get("/sandbox.css")
def stylesheet():
    return send_from_directory(STATIC, "sandbox.css", mimetype="text/css")


# ---------------------------------------------------------------------------- the frame

@bp.get("/elements/<kind>")
def element(kind: str):
    if kind not in KINDS:
        abort(404)
    return render_template("sandbox/element.html", kind=KINDS[kind])


@bp.post("/payment_methods")
def payment_methods():
    """Stripe's POST /v1/payment_methods: type=card&card[number]=…&card[exp_month]=…
    &card[exp_year]=…&card[cvc]=…&billing_details[name]=…, or type=us_bank_account with
    us_bank_account[routing_number] and [account_number]."""
    form = request.form
    kind = form.get("type", "")
    name = form.get("billing_details[name]", "")
    try:
        if kind == "card":
            entered = enter_card(form.get("card[number]", ""), form.get("card[exp_month]", ""),
                                 form.get("card[exp_year]", ""), form.get("card[cvc]", ""),
                                 name, now().date())
        elif kind == "us_bank_account":
            entered = enter_bank_account(form.get("us_bank_account[routing_number]", ""),
                                         form.get("us_bank_account[account_number]", ""), name)
        else:
            return _error(400, "invalid_request_error", "parameter_invalid_empty",
                          "Choose the payment method type: card or us_bank_account.", "type")
    except EntryError as e:
        return jsonify(e.body()), 402 if e.type == "card_error" else 400
    return jsonify(core.create_payment_method(entered))


# ------------------------------------------------------------------------- 3-D Secure

@bp.get("/authenticate/<intent>")
def authenticate(intent: str):
    secret = request.args.get("client_secret", "")
    pending = core.pending_action(intent, secret)
    if pending is None:
        return render_template("sandbox/authenticate_done.html", intent=intent,
                               status="unknown"), 404
    kind, amount = pending
    return render_template("sandbox/authenticate.html", intent=intent, client_secret=secret,
                           kind=kind, amount_cents=amount)


@bp.post("/authenticate/<intent>")
def authenticate_answer(intent: str):
    outcome = request.form.get("outcome", "")
    if outcome not in ("complete", "fail"):
        abort(400)
    answer = core.authenticate(intent, request.form.get("client_secret", ""),
                               outcome == "complete")
    if answer is None:
        return render_template("sandbox/authenticate_done.html", intent=intent,
                               status="unknown"), 404
    status = "succeeded" if answer.succeeded else "failed"
    return render_template("sandbox/authenticate_done.html", intent=intent, status=status)
