"""A local fake of the Stripe API endpoints the adapter uses (issue 16, design16 §5).

stripe-mock can't be installed here (a Go binary) and is stateless anyway (no idempotency
replay, no declines by card), so the Stripe adapter's tests run against this: a werkzeug
server on 127.0.0.1 (a free port) in a daemon thread, speaking Stripe's wire format:
form-encoded bodies with brackets (`metadata[charge_key]=…`, `expand[0]=…`), Stripe's JSON
objects and error bodies, `Authorization: Bearer sk_test_fake`, `Idempotency-Key` replay
(the first answer is stored, 500s included; other parameters under one key: 400
idempotency_error; the same key in flight: 409), and Stripe's own test PaymentMethod ids
(`pm_card_visa`, `pm_card_chargeDeclinedInsufficientFunds`, …), cloned on attach as Stripe
does. It keeps every request it got (`requests`) and every event it generated (`events`),
signed with the SDK's scheme by `sign`.

Test-only controls (never Stripe's): POST /_fake/fail {"path", "mode": "timeout" | "500" |
"500_before" | "429" | "drop", "times"}, /_fake/authenticate/<pi|seti> {"outcome"},
/_fake/refund/<pi> (a Dashboard refund), /_fake/refunds/<re> {"status"}, /_fake/dispute/<pi>,
/_fake/dispute/<dp>/close {"outcome"}; GET /_fake/events.
"""

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

SECRET_KEY = "sk_test_fake"
WEBHOOK_SECRET = "whsec_fake"
SLOW_SECONDS = 1.2  # past the client's read timeout in the tests (0.5 s)

# Stripe's test PaymentMethods: (type, brand, last4, what happens at setup, when charged)
TEST_METHODS = {
    "pm_card_visa": ("card", "visa", "4242", "ok", "ok"),
    "pm_card_mastercard": ("card", "mastercard", "4444", "ok", "ok"),
    "pm_card_amex": ("card", "amex", "8431", "ok", "ok"),
    "pm_card_discover": ("card", "discover", "1117", "ok", "ok"),
    "pm_card_diners": ("card", "diners", "0004", "ok", "ok"),
    "pm_card_chargeDeclined": ("card", "visa", "0002", "card_declined", "card_declined"),
    "pm_card_chargeDeclinedExpiredCard": ("card", "visa", "0069", "expired_card",
                                          "expired_card"),
    "pm_card_chargeDeclinedIncorrectCvc": ("card", "visa", "0127", "incorrect_cvc",
                                           "incorrect_cvc"),
    "pm_card_chargeDeclinedInsufficientFunds": ("card", "visa", "9995", "ok",
                                                "insufficient_funds"),
    "pm_card_chargeDeclinedProcessingError": ("card", "visa", "0119", "ok", "processing_error"),
    "pm_card_chargeCustomerFail": ("card", "visa", "0341", "ok", "card_declined"),
    "pm_card_authenticationRequiredOnSetup": ("card", "visa", "3155", "authenticate",
                                              "authenticate_on_session"),
    "pm_card_authenticationRequired": ("card", "visa", "3184", "authenticate", "authenticate"),
    "pm_usBankAccount": ("us_bank_account", "", "6789", "microdeposits", "processing"),
}
DECLINE_MESSAGES = {
    "card_declined": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "processing_error": "An error occurred while processing your card. Try again in a little bit.",
    "authentication_required": "Your card was declined. This transaction requires authentication.",
}
MICRODEPOSITS = [32, 45]
MICRODEPOSIT_TRIES = 3
KEY_RE = re.compile(r"([^\[\]]+)|\[([^\]]*)\]")


def parse_form(pairs) -> dict:
    """Stripe's bracket encoding (`a[b][0]=x`) back into nested dicts and lists."""
    root: dict = {}
    for key, value in pairs:
        parts = [m.group(1) if m.group(1) is not None else m.group(2)
                 for m in KEY_RE.finditer(key)]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node):
    if not isinstance(node, dict):
        return node
    node = {k: _lists(v) for k, v in node.items()}
    if node and all(k.isdigit() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return node


def sign(payload: str, secret: str = WEBHOOK_SECRET, t: int | None = None) -> str:
    """The Stripe-Signature header for `payload`, by the SDK's scheme (construct_event checks
    it): HMAC-SHA256 of "<t>.<payload>" with the endpoint's secret."""
    t = int(time.time()) if t is None else t
    sig = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={sig}"


class StripeFail(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(status)
        self.status, self.body = status, body


def _error(status: int, type_: str, message: str, **extra) -> StripeFail:
    return StripeFail(status, {"error": {"type": type_, "message": message, **extra}})


def _missing(what: str, id_: str) -> StripeFail:
    return _error(404, "invalid_request_error", f"No such {what}: '{id_}'",
                  code="resource_missing", param="id")


@dataclass
class Recorded:
    method: str
    path: str
    params: dict
    idempotency_key: str | None
    stripe_version: str | None


@dataclass
class FakeStripe:
    api_version: str = ""
    requests: list[Recorded] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    objects: dict[str, dict] = field(default_factory=dict)
    url: str = ""

    def __post_init__(self):
        self._lock = threading.RLock()
        self._keys: dict[str, tuple[Any, int, dict]] = {}
        self._in_flight: set[str] = set()
        self._fail: list[dict] = []
        self._behaviour: dict[str, tuple] = {}  # pm id → TEST_METHODS row
        self._authenticated: set[str] = set()  # cloned 3155 pms authenticated at setup
        self._microdeposit_fails: dict[str, int] = {}

    # ---------------------------------------------------------------- helpers for tests
    def posts(self, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.startswith(path_prefix)]

    def of_type(self, prefix: str) -> list[dict]:
        return [o for o in self.objects.values() if o["id"].startswith(prefix)]

    def event(self, type_: str) -> dict:
        """The last event of this type."""
        return [e for e in self.events if e["type"] == type_][-1]

    def fail_next(self, path: str, mode: str, times: int = 1) -> None:
        with self._lock:
            self._fail.append({"path": path, "mode": mode, "times": times})

    # ---------------------------------------------------------------- the WSGI app
    def __call__(self, environ, start_response):
        request = Request(environ)
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        if request.path.startswith("/_fake/"):
            return self._control(request)
        if request.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
            return _json(401, {"error": {"type": "invalid_request_error",
                                         "message": "Invalid API Key provided."}})
        params = parse_form(request.form.items(multi=True) if request.method == "POST"
                            else request.args.items(multi=True))
        key = request.headers.get("Idempotency-Key")
        with self._lock:
            self.requests.append(Recorded(request.method, request.path, params, key,
                                          request.headers.get("Stripe-Version")))
            fail = self._take_fail(request.path)
        if fail == "drop":  # nothing done, no answer in time
            time.sleep(SLOW_SECONDS)
            return _json(500, {"error": {"type": "api_error", "message": "dropped"}})
        if request.method != "POST" or not key:
            status, body = self._run(request, params, fail)
            if fail == "timeout":
                time.sleep(SLOW_SECONDS)
            return _json(status, body)
        fingerprint = (request.path, json.dumps(params, sort_keys=True))
        with self._lock:
            stored = self._keys.get(key)
            if stored is None and key in self._in_flight:
                return _json(409, {"error": {"type": "idempotency_error",
                                             "message": "A request with this key is in flight."}})
            if stored is None:
                self._in_flight.add(key)
        if stored is not None:
            if stored[0] != fingerprint:
                return _json(400, {"error": {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent requests can only be used with the same "
                               "parameters they were first used with."}})
            return _json(stored[1], stored[2], replayed=True)
        try:
            status, body = self._run(request, params, fail)
            if status != 429:  # a rate-limited request is not run, nor saved
                with self._lock:
                    self._keys[key] = (fingerprint, status, body)
        finally:
            with self._lock:
                self._in_flight.discard(key)
        if fail == "timeout":  # done and stored; the answer comes too late
            time.sleep(SLOW_SECONDS)
        return _json(status, body)

    def _take_fail(self, path: str) -> str | None:
        for rule in self._fail:
            if path.startswith(rule["path"]):
                rule["times"] -= 1
                if rule["times"] <= 0:
                    self._fail.remove(rule)
                return rule["mode"]
        return None

    def _run(self, request: Request, params: dict, fail: str | None) -> tuple[int, dict]:
        if fail == "429":
            return 429, {"error": {"type": "invalid_request_error", "code": "rate_limit",
                                   "message": "Too many requests hit the API too quickly."}}
        if fail == "500_before":
            return 500, {"error": {"type": "api_error", "message": "Something went wrong."}}
        try:
            with self._lock:
                body = self._route(request.method, request.path.strip("/").split("/"), params)
            status = 200
        except StripeFail as e:
            status, body = e.status, e.body
        if fail == "500":  # done, but the answer is an error (and stored as one)
            return 500, {"error": {"type": "api_error", "message": "Something went wrong."}}
        return status, body

    def _route(self, method: str, parts: list[str], p: dict) -> dict:
        match method, parts:
            case "POST", ["v1", "customers"]:
                return self._new("cus", "customer", name=p.get("name", ""),
                                 metadata=p.get("metadata", {}))
            case "GET", ["v1", "payment_methods", pm]:
                return self._pm(pm)
            case "POST", ["v1", "payment_methods", pm, "detach"]:
                obj = self._pm(pm)
                obj["customer"] = None
                self._emit("payment_method.detached", obj)
                return obj
            case "POST", ["v1", "setup_intents"]:
                return self._expand(self._create_setup(p), p)
            case "GET", ["v1", "setup_intents", seti]:
                return self._expand(self._get(seti, "setup_intent"), p)
            case "POST", ["v1", "setup_intents", seti, "verify_microdeposits"]:
                return self._expand(self._verify(seti, p), p)
            case "POST", ["v1", "payment_intents"]:
                return self._expand(self._create_payment(p), p)
            case "GET", ["v1", "payment_intents"]:
                return self._list(p)
            case "GET", ["v1", "payment_intents", pi]:
                return self._expand(self._get(pi, "payment_intent"), p)
            case "POST", ["v1", "payment_intents", pi, "cancel"]:
                return self._cancel(pi)
            case "POST", ["v1", "refunds"]:
                return self._create_refund(p)
            case "GET", ["v1", "refunds", re_]:
                return self._get(re_, "refund")
        raise _error(404, "invalid_request_error", f"Unrecognized request URL ({method}).")

    # ---------------------------------------------------------------- objects
    def _new(self, prefix: str, object_: str, **fields) -> dict:
        obj = {"id": f"{prefix}_{secrets.token_hex(12)}", "object": object_,
               "created": int(time.time()), "livemode": False, "metadata": {}, **fields}
        self.objects[obj["id"]] = obj
        return obj

    def _get(self, id_: str, what: str) -> dict:
        obj = self.objects.get(id_)
        if obj is None or obj["object"] != what:
            raise _missing(what, id_)
        return obj

    def _pm(self, pm: str) -> dict:
        if pm in self.objects:
            return self.objects[pm]
        row = TEST_METHODS.get(pm)
        if row is None:
            raise _missing("payment_method", pm)
        return self._pm_object(pm, row, None)

    def _pm_object(self, id_: str, row: tuple, customer: str | None) -> dict:
        type_, brand, last4 = row[:3]
        obj = {"id": id_, "object": "payment_method", "created": int(time.time()),
               "livemode": False, "metadata": {}, "type": type_, "customer": customer,
               "billing_details": {"name": "Jenny Rosen", "email": None}}
        if type_ == "card":
            obj["card"] = {"brand": brand, "last4": last4, "exp_month": 12, "exp_year": 2034,
                           "funding": "credit", "country": "US"}
        else:
            obj["us_bank_account"] = {"last4": last4, "bank_name": "STRIPE TEST BANK",
                                      "routing_number": "110000000", "account_type": "checking"}
        return obj

    def _attach(self, pm: str, customer: str | None) -> str:
        """The pm the intent uses: a test id is cloned to a new pm_…, as Stripe does."""
        if pm in self.objects:
            owner = self.objects[pm].get("customer")
            if customer and owner and owner != customer:
                raise _error(400, "invalid_request_error",
                             "The provided PaymentMethod was previously attached to another "
                             "Customer.", code="payment_method_unavailable")
            if customer and not owner:
                self.objects[pm]["customer"] = customer
            return pm
        row = TEST_METHODS.get(pm)
        if row is None:
            raise _missing("payment_method", pm)
        if not customer:
            return pm
        clone = f"pm_{secrets.token_hex(12)}"
        self.objects[clone] = self._pm_object(clone, row, customer)
        self._behaviour[clone] = row
        return clone

    def _row(self, pm: str) -> tuple:
        return self._behaviour.get(pm) or TEST_METHODS[pm]

    def _expand(self, obj: dict, p: dict) -> dict:
        if "payment_method" in (p.get("expand") or []) and obj.get("payment_method"):
            return {**obj, "payment_method": self._pm(obj["payment_method"])}
        return obj

    def _secret(self, id_: str) -> str:
        return f"{id_}_secret_{secrets.token_hex(8)}"

    # ---------------------------------------------------------------- setup intents
    def _create_setup(self, p: dict) -> dict:
        customer = p.get("customer")
        pm = self._attach(p["payment_method"], customer)
        seti = self._new("seti", "setup_intent", customer=customer, payment_method=pm,
                         usage=p.get("usage", "off_session"), status="requires_confirmation",
                         next_action=None, last_setup_error=None,
                         payment_method_types=p.get("payment_method_types", ["card"]),
                         metadata=p.get("metadata", {}))
        seti["client_secret"] = self._secret(seti["id"])
        at_setup = self._row(pm)[3]
        if at_setup == "ok":
            seti["status"] = "succeeded"
            self._emit("setup_intent.succeeded", seti)
        elif at_setup == "authenticate":
            seti.update(status="requires_action", next_action={"type": "use_stripe_sdk"})
        elif at_setup == "microdeposits":
            if "mandate_data" not in p:
                raise _error(400, "invalid_request_error",
                             "mandate_data is required for us_bank_account.",
                             code="parameter_missing", param="mandate_data")
            seti.update(status="requires_action", next_action={
                "type": "verify_with_microdeposits",
                "verify_with_microdeposits": {"microdeposit_type": "amounts"}})
        else:
            err = self._decline(at_setup)
            seti.update(status="requires_payment_method", last_setup_error=err,
                        payment_method=None)
            self._emit("setup_intent.setup_failed", seti)
            raise StripeFail(402, {"error": {**err, "setup_intent": dict(seti)}})
        return seti

    def _verify(self, seti_id: str, p: dict) -> dict:
        seti = self._get(seti_id, "setup_intent")
        if seti["status"] != "requires_action" or \
                (seti["next_action"] or {}).get("type") != "verify_with_microdeposits":
            raise _error(400, "invalid_request_error", "This SetupIntent can't be verified.",
                         code="setup_intent_unexpected_state")
        amounts = [int(a) for a in p.get("amounts", [])]
        if amounts == MICRODEPOSITS:
            seti.update(status="succeeded", next_action=None)
            self._emit("setup_intent.succeeded", seti)
            return seti
        fails = self._microdeposit_fails[seti_id] = self._microdeposit_fails.get(seti_id, 0) + 1
        if fails >= MICRODEPOSIT_TRIES:
            seti.update(status="requires_payment_method", next_action=None, last_setup_error={
                "type": "invalid_request_error",
                "code": "payment_method_microdeposit_verification_attempts_exceeded",
                "message": "You have exceeded the number of allowed verification attempts."})
            self._emit("setup_intent.setup_failed", seti)
            raise _error(400, "invalid_request_error",
                         "You have exceeded the number of allowed verification attempts.",
                         code="payment_method_microdeposit_verification_attempts_exceeded")
        raise _error(400, "invalid_request_error",
                     "The amounts provided do not match the amounts that were sent to the "
                     "bank account.",
                     code="payment_method_microdeposit_verification_amounts_mismatch")

    # ---------------------------------------------------------------- payment intents
    def _create_payment(self, p: dict) -> dict:
        customer = p.get("customer")
        pm = self._attach(p["payment_method"], customer)
        amount = int(p["amount"])
        pi = self._new("pi", "payment_intent", amount=amount, amount_received=0,
                       currency=p.get("currency", "usd"), customer=customer, payment_method=pm,
                       description=p.get("description"), status="requires_confirmation",
                       latest_charge=None, last_payment_error=None, next_action=None,
                       metadata=p.get("metadata", {}),
                       setup_future_usage=p.get("setup_future_usage"))
        pi["client_secret"] = self._secret(pi["id"])
        off_session = p.get("off_session") == "true"
        when_charged = self._row(pm)[4]
        if when_charged == "authenticate_on_session":
            when_charged = "ok" if off_session else "authenticate"
        if when_charged == "ok":
            self._succeed(pi)
        elif when_charged == "processing":
            pi["status"] = "processing"
            self._emit("payment_intent.processing", pi)
        elif when_charged == "authenticate" and not off_session:
            pi.update(status="requires_action", next_action={"type": "use_stripe_sdk"})
            self._emit("payment_intent.requires_action", pi)
        else:
            code = "authentication_required" if when_charged == "authenticate" else when_charged
            err = self._decline(code)
            pi.update(status="requires_payment_method", last_payment_error=err)
            self._emit("payment_intent.payment_failed", pi)
            raise StripeFail(402, {"error": {**err, "payment_intent": dict(pi)}})
        return pi

    @staticmethod
    def _decline(code: str) -> dict:
        top = code if code in ("expired_card", "incorrect_cvc", "processing_error",
                               "authentication_required") else "card_declined"
        err = {"type": "card_error", "code": top,
               "message": DECLINE_MESSAGES.get(code, DECLINE_MESSAGES["card_declined"])}
        if top == "card_declined":
            err["decline_code"] = "generic_decline" if code == "card_declined" else code
        return err

    def _succeed(self, pi: dict) -> None:
        charge = self._new("ch", "charge", amount=pi["amount"], amount_refunded=0,
                           payment_intent=pi["id"], customer=pi["customer"], refunded=False,
                           status="succeeded", paid=True, disputed=False,
                           metadata=dict(pi["metadata"]))  # Stripe copies the PI's
        pi.update(status="succeeded", amount_received=pi["amount"], latest_charge=charge["id"],
                  next_action=None)
        self._emit("charge.succeeded", charge)
        self._emit("payment_intent.succeeded", pi)

    def _cancel(self, pi_id: str) -> dict:
        pi = self._get(pi_id, "payment_intent")
        if pi["status"] in ("succeeded", "canceled"):
            raise _error(400, "invalid_request_error",
                         f"You cannot cancel this PaymentIntent because it has a status of "
                         f"{pi['status']}.", code="payment_intent_unexpected_state",
                         payment_intent=dict(pi))
        pi.update(status="canceled", next_action=None, cancellation_reason="requested_by_customer")
        self._emit("payment_intent.canceled", pi)
        return pi

    def _list(self, p: dict) -> dict:
        gte = int((p.get("created") or {}).get("gte", 0))
        data = [o for o in self.objects.values() if o["object"] == "payment_intent"
                and (not p.get("customer") or o["customer"] == p["customer"])
                and o["created"] >= gte]
        data.sort(key=lambda o: o["created"], reverse=True)
        limit = int(p.get("limit", 10))
        return {"object": "list", "data": data[:limit], "has_more": len(data) > limit,
                "url": "/v1/payment_intents"}

    # ---------------------------------------------------------------- refunds, disputes
    def _create_refund(self, p: dict, status: str | None = None) -> dict:
        pi = self._get(p["payment_intent"], "payment_intent")
        if pi["status"] != "succeeded":
            raise _error(400, "invalid_request_error",
                         "This PaymentIntent does not have a successful charge to refund.",
                         code="charge_not_found")
        charge = self.objects[pi["latest_charge"]]
        left = charge["amount"] - charge["amount_refunded"]
        if left <= 0:
            raise _error(400, "invalid_request_error",
                         f"Charge {charge['id']} has already been refunded.",
                         code="charge_already_refunded")
        amount = int(p.get("amount") or left)
        if amount > left:
            raise _error(400, "invalid_request_error",
                         f"Refund amount (${amount / 100:.2f}) is greater than unrefunded "
                         f"amount on charge (${left / 100:.2f})", code="amount_too_large",
                         param="amount")
        ach = self.objects.get(pi["payment_method"], {}).get("type") == "us_bank_account"
        refund = self._new("re", "refund", amount=amount, payment_intent=pi["id"],
                           charge=charge["id"], currency="usd",
                           status=status or ("pending" if ach else "succeeded"),
                           metadata=p.get("metadata", {}))
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        self._emit("refund.created", refund)
        self._emit("charge.refunded", charge)
        return refund

    def _control(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        parts = request.path.strip("/").split("/")[1:]
        try:
            with self._lock:
                match request.method, parts:
                    case "POST", ["fail"]:
                        self._fail.append({"path": body["path"], "mode": body["mode"],
                                           "times": int(body.get("times", 1))})
                        return _json(200, {"ok": True})
                    case "GET", ["events"]:
                        return _json(200, {"data": self.events})
                    case "POST", ["authenticate", intent]:
                        return _json(200, self._authenticate(intent, body.get("outcome",
                                                                              "complete")))
                    case "POST", ["refund", pi]:
                        return _json(200, self._create_refund(
                            {"payment_intent": pi, "amount": body.get("amount")}))
                    case "POST", ["refunds", re_]:
                        refund = self._get(re_, "refund")
                        refund["status"] = body["status"]
                        self._emit("refund.failed" if body["status"] == "failed"
                                   else "refund.updated", refund)
                        return _json(200, refund)
                    case "POST", ["dispute", pi]:
                        return _json(200, self._dispute(pi, body))
                    case "POST", ["dispute", dp, "close"]:
                        dispute = self._get(dp, "dispute")
                        dispute["status"] = body.get("outcome", "won")
                        self._emit("charge.dispute.closed", dispute)
                        return _json(200, dispute)
        except StripeFail as e:
            return _json(e.status, e.body)
        return _json(404, {"error": {"type": "invalid_request_error", "message": "no control"}})

    def _authenticate(self, intent: str, outcome: str) -> dict:
        obj = self.objects[intent]
        if obj["status"] != "requires_action":
            return obj
        setup = obj["object"] == "setup_intent"
        if outcome == "complete":
            if setup:
                obj.update(status="succeeded", next_action=None)
                self._emit("setup_intent.succeeded", obj)
            else:
                self._succeed(obj)
        else:
            code = ("setup_intent_authentication_failure" if setup
                    else "payment_intent_authentication_failure")
            err = {"type": "invalid_request_error", "code": code,
                   "message": "We are unable to authenticate your payment method."}
            obj.update(status="requires_payment_method", next_action=None,
                       **{("last_setup_error" if setup else "last_payment_error"): err})
            self._emit("setup_intent.setup_failed" if setup else "payment_intent.payment_failed",
                       obj)
        return obj

    def _dispute(self, pi_id: str, body: dict) -> dict:
        pi = self._get(pi_id, "payment_intent")
        charge = self.objects[pi["latest_charge"]]
        charge["disputed"] = True
        dispute = self._new("dp", "dispute", amount=int(body.get("amount") or pi["amount"]),
                            charge=charge["id"], payment_intent=pi_id, currency="usd",
                            reason=body.get("reason", "fraudulent"), status="needs_response")
        self._emit("charge.dispute.created", dispute)
        return dispute

    # ---------------------------------------------------------------- events
    def _emit(self, type_: str, obj: dict) -> dict:
        event = {"id": f"evt_{secrets.token_hex(12)}", "object": "event",
                 "api_version": self.api_version, "created": int(time.time()), "type": type_,
                 "data": {"object": json.loads(json.dumps(obj))}, "livemode": False,
                 "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None}}
        self.events.append(event)
        return event


def _json(status: int, body: dict, replayed: bool = False) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["Request-Id"] = f"req_{secrets.token_hex(7)}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):  # the tests read `requests`, not a log
        pass


class FakeStripeServer:
    """The fake on 127.0.0.1 and a free port, in a daemon thread; `stop` shuts it down."""

    def __init__(self, api_version: str = ""):
        self.fake = FakeStripe(api_version=api_version)
        self._server = make_server("127.0.0.1", 0, self.fake, threaded=True,
                                   request_handler=_Quiet)
        self.fake.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
