"""Stripe as the payment processor (issue 16): the `Processor` interface over the official
`stripe` package (StripeClient, the v1 services).

Cards and bank accounts are entered on Stripe's own form (Stripe.js); the portal gets a
PaymentMethod id and saves it for off-session use with a SetupIntent. Charges are
PaymentIntents created with the ledger's idempotency key as Stripe's Idempotency-Key, and
their parameters are a pure function of the Charge row (gateway.ChargeRequest), so a retry
is the same request and Stripe answers as it did the first time.

What a retry can meet, and what it becomes:
- no answer (a network error, a read timeout), a 409 (the same key in flight) or a 429:
  `GatewayTimeout`; the charge stays pending and the jobs ask again with the same key;
- a 5xx: Stripe stores it under the key and replays it forever, so the same key can never
  succeed: the payment is looked for by listing the customer's PaymentIntents (strongly
  consistent, unlike search) and matching `metadata.charge_key`; none found means nothing
  was charged: failed ("processing_error");
- a first try older than 23 hours: Stripe may have pruned the key (after 24 h), so a
  re-POST could charge twice: the payment is looked for by listing, never re-sent;
- a known PaymentIntent id: retrieved, never created again.

Nothing here imports Flask: `from_config` takes the app's config mapping.
"""

import json
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import stripe

from portal.clock import now as clock_now
from portal.services.gateway import (
    DECLINES,
    BadSignature,
    BrowserSetup,
    ChargeRequest,
    ChargeResult,
    GatewayTimeout,
    ProcessorEvent,
    SavedMethod,
)

log = logging.getLogger("portal.stripe")

# The API version the requests are made and the events are sent in: the one the installed
# package (stripe 16.1) is written for. A new package version is a deliberate upgrade.
API_VERSION = "2026-10-28.endive"
STRIPE_JS_URL = "https://js.stripe.com/v3/"
RECONCILE_AFTER = timedelta(hours=23)  # Stripe may prune idempotency keys after 24 h
RECONCILE_MARGIN_SECONDS = 300
SIGNATURE_TOLERANCE_SECONDS = 300

BRANDS = {
    "visa": "Visa", "mastercard": "Mastercard", "amex": "American Express",
    "discover": "Discover", "diners": "Diners Club", "jcb": "JCB", "unionpay": "UnionPay",
    "cartes_bancaires": "Cartes Bancaires", "eftpos_au": "eftpos", "interac": "Interac",
    "link": "Link",
}
MESSAGES = {
    **DECLINES,
    "generic_decline": DECLINES["card_declined"],
    "do_not_honor": DECLINES["card_declined"],
    "lost_card": DECLINES["card_declined"],
    "stolen_card": DECLINES["card_declined"],
    "fraudulent": DECLINES["card_declined"],
    "authentication_required": "The card asks the cardholder to confirm this payment with "
                               "their bank.",
    "payment_intent_authentication_failure": "The card's authentication failed.",
    "setup_intent_authentication_failure": "The card's authentication failed.",
    "charge_already_refunded": "This payment was already refunded in full.",
    "idempotency_mismatch": "This payment was already tried with different details.",
    "payment_method_unavailable": "That payment method belongs to someone else. Enter it again.",
    "payment_method_microdeposit_verification_amounts_mismatch":
        "Those amounts don't match the deposits. Check the bank statement and try again.",
    "payment_method_microdeposit_verification_attempts_exceeded":
        "Too many wrong amounts: the bank account can't be verified. Add it again.",
    "canceled": "The payment was canceled before it completed.",
    "not_found": "The processor has no record of this payment; nothing was charged.",
}
STRIPE_SETTINGS = ("STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET")


def missing_settings(config: Mapping) -> list[str]:
    """The Stripe settings a deployment with PAYMENT_GATEWAY=stripe must have and lacks."""
    return [name for name in STRIPE_SETTINGS if not str(config.get(name) or "").strip()]


def message(code: str) -> str:
    return MESSAGES.get(code, DECLINES["card_declined"])


def _plain(obj) -> Any:
    """A StripeObject as plain dicts and lists (what the fake and the events send)."""
    return obj.to_dict() if hasattr(obj, "to_dict") else obj


def _failed(reference: str, code: str, text: str = "") -> ChargeResult:
    return ChargeResult(False, reference, code, text or message(code), status="failed")


class StripeGateway:
    name = "stripe"

    def __init__(self, secret_key: str, publishable_key: str, webhook_secrets: list[str], *,
                 api_base: str = "https://api.stripe.com", timeout_seconds: float = 20,
                 max_network_retries: int = 2, js_url: str = STRIPE_JS_URL):
        self.publishable_key = publishable_key
        self.webhook_secrets = webhook_secrets
        self.js_url = js_url
        self.client = stripe.StripeClient(
            secret_key, stripe_version=API_VERSION, base_addresses={"api": api_base},
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=(5, timeout_seconds)))

    @classmethod
    def from_config(cls, config: Mapping) -> "StripeGateway":
        missing = missing_settings(config)
        if missing:
            raise RuntimeError("PAYMENT_GATEWAY=stripe needs " + ", ".join(missing))
        # The SDK logs request lines at INFO (ids, and client secrets in bodies at DEBUG).
        logging.getLogger("stripe").setLevel(logging.WARNING)
        return cls(config["STRIPE_SECRET_KEY"], config["STRIPE_PUBLISHABLE_KEY"],
                   [s.strip() for s in str(config["STRIPE_WEBHOOK_SECRET"]).split(",")
                    if s.strip()],
                   api_base=config.get("STRIPE_API_BASE") or "https://api.stripe.com",
                   timeout_seconds=float(config.get("STRIPE_TIMEOUT_SECONDS", 20)),
                   max_network_retries=int(config.get("STRIPE_MAX_NETWORK_RETRIES", 2)),
                   js_url=config.get("STRIPE_JS_URL") or STRIPE_JS_URL)

    # ---------------------------------------------------------------- the browser
    def browser(self) -> BrowserSetup:
        return BrowserSetup(self.js_url, "Stripe", self.publishable_key, csp={
            "script-src": ("https://js.stripe.com", "https://*.js.stripe.com"),
            "frame-src": ("https://js.stripe.com", "https://*.js.stripe.com",
                          "https://hooks.stripe.com"),
            "connect-src": ("https://api.stripe.com",),
        })

    # ---------------------------------------------------------------- calls and errors
    def _call(self, fn: Callable[[], Any], on_card_error: Callable[[dict], ChargeResult],
              on_api_error: Callable[[], ChargeResult] | None = None) -> Any:
        """Run one API call; a Stripe error becomes a failed result or GatewayTimeout."""
        try:
            return fn()
        except stripe.CardError as e:
            return on_card_error((e.json_body or {}).get("error") or {})
        except stripe.IdempotencyError:
            log.error("stripe: idempotency key reused with other parameters")
            return _failed("", "idempotency_mismatch")
        except (stripe.APIConnectionError, stripe.RateLimitError) as e:
            raise GatewayTimeout(f"stripe: {type(e).__name__}") from e
        except stripe.APIError as e:
            if e.http_status == 409:  # the same key in flight: ask again later
                raise GatewayTimeout("stripe: 409 conflict") from e
            log.warning("stripe: %s answered %s", type(e).__name__, e.http_status)
            if on_api_error is not None:
                return on_api_error()
            return _failed("", "processing_error")
        except stripe.InvalidRequestError as e:
            error = (e.json_body or {}).get("error") or {}
            code = e.code or "invalid_request"
            return _failed(_intent_id(error), code,
                           MESSAGES.get(code) or e.user_message or message(code))
        except (stripe.AuthenticationError, stripe.PermissionError):
            log.error("stripe: the secret key was refused (check STRIPE_SECRET_KEY)")
            raise

    # ---------------------------------------------------------------- customers, methods
    def create_customer(self, account_ref: str, name: str, idempotency_key: str) -> str:
        try:
            customer = self.client.v1.customers.create(
                {"name": name, "metadata": {"account_ref": account_ref}},
                {"idempotency_key": idempotency_key})
        except (stripe.APIConnectionError, stripe.RateLimitError) as e:
            raise GatewayTimeout("stripe: no answer creating the customer") from e
        return customer.id

    def describe_method(self, method: str) -> SavedMethod:
        return saved_method(_plain(self.client.v1.payment_methods.retrieve(method)))

    def detach(self, method: str) -> None:
        """Best effort, after the removal committed: an error is logged, never raised."""
        try:
            self.client.v1.payment_methods.detach(method)
        except stripe.StripeError as e:
            log.warning("stripe: detaching %s failed: %s", method, type(e).__name__)

    # ---------------------------------------------------------------- setups
    def save_method(self, customer: str, method: str, kind: str, idempotency_key: str,
                    mandate=None) -> ChargeResult:
        """A SetupIntent for off-session use: Stripe verifies the card ($0 authorization)
        or starts the bank account's micro-deposits. `mandate` (ACH only): the payer's
        online acceptance, its .ip and .user_agent."""
        params: dict[str, Any] = {
            "customer": customer, "payment_method": method, "confirm": True,
            "usage": "off_session", "use_stripe_sdk": True, "expand": ["payment_method"],
            "payment_method_types": ["us_bank_account" if kind == "ach" else "card"],
            "metadata": {"setup_key": idempotency_key},
        }
        if kind == "ach":
            params["payment_method_options"] = {
                "us_bank_account": {"verification_method": "automatic"}}
            if mandate is not None:
                params["mandate_data"] = {"customer_acceptance": {
                    "type": "online",
                    "online": {"ip_address": mandate.ip, "user_agent": mandate.user_agent}}}
        return self._call(
            lambda: self._setup_result(_plain(self.client.v1.setup_intents.create(
                params, {"idempotency_key": idempotency_key}))),
            lambda error: _failed(_intent_id(error), _code(error)))

    def setup_status(self, setup: str) -> ChargeResult:
        return self._call(lambda: self._setup_result(_plain(self.client.v1.setup_intents.retrieve(
            setup, {"expand": ["payment_method"]}))), lambda error: _failed(setup, _code(error)))

    def verify_microdeposits(self, setup: str, amounts: tuple[int, int]) -> ChargeResult:
        result = self._call(
            lambda: self._setup_result(_plain(self.client.v1.setup_intents.verify_microdeposits(
                setup, {"amounts": list(amounts), "expand": ["payment_method"]}))),
            lambda error: _failed(setup, _code(error)))
        if result.outcome == "failed":
            now = self.setup_status(setup)
            if now.outcome == "requires_action":  # wrong amounts, tries left: still waiting
                return ChargeResult(False, setup, result.code, result.message,
                                    status="requires_action", next_action=now.next_action)
            if now.outcome == "failed":
                return ChargeResult(False, setup, result.code, result.message, status="failed")
        return result

    @staticmethod
    def _setup_result(seti: dict) -> ChargeResult:
        status = seti.get("status")
        pm = seti.get("payment_method")
        method = saved_method(pm) if isinstance(pm, dict) else None
        if status == "succeeded":
            return ChargeResult(True, seti["id"], "approved", "Saved.", status="succeeded",
                                method=method)
        if status == "requires_action":
            return _action(seti, method)
        if status == "processing":
            return ChargeResult(False, seti["id"], "processing", "Verifying the account.",
                                status="processing", method=method)
        error = seti.get("last_setup_error") or {}
        return _failed(seti["id"], _code(error) if error else "card_declined")

    # ---------------------------------------------------------------- payments
    def charge(self, request: ChargeRequest) -> ChargeResult:
        if request.reference:  # created before: look it up, never create again
            return self.payment_status(request.reference)
        if request.first_tried_at is not None \
                and clock_now() - request.first_tried_at > RECONCILE_AFTER:
            return self._reconcile(request)
        params: dict[str, Any] = {
            "amount": request.amount_cents, "currency": "usd",
            "payment_method": request.method, "confirm": True,
            "description": request.description,
            "metadata": {**dict(request.metadata), "charge_key": request.idempotency_key},
            # The saved method's type decides; no redirect-based methods (no return_url).
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
            "expand": ["payment_method"],
        }
        if request.customer:
            params["customer"] = request.customer
        if request.on_session:
            params["use_stripe_sdk"] = True
        else:
            params["off_session"] = True
        if request.save_method:
            params["setup_future_usage"] = "off_session"
        result = self._call(
            lambda: _plain(self.client.v1.payment_intents.create(
                params, {"idempotency_key": request.idempotency_key})),
            lambda error: _failed(_intent_id(error), _code(error)),
            lambda: self._reconcile(request, after_error=True))
        if isinstance(result, ChargeResult):
            return result
        if result.get("status") in ("requires_confirmation", "processing"):
            # A replay is the first answer: where the payment is now, Stripe knows.
            return self.payment_status(result["id"])
        return payment_result(result)

    def _reconcile(self, request: ChargeRequest, after_error: bool = False) -> ChargeResult:
        """The PaymentIntent made under this charge's key, found by listing the customer's
        recent ones; none: nothing was charged."""
        since = request.first_tried_at or clock_now()
        params: dict[str, Any] = {
            "created": {"gte": int(since.timestamp()) - RECONCILE_MARGIN_SECONDS},
            "limit": 100}
        if request.customer:
            params["customer"] = request.customer
        try:
            page = self.client.v1.payment_intents.list(params)
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as e:
            raise GatewayTimeout("stripe: no answer listing payments") from e
        for pi in page.auto_paging_iter():
            pi = _plain(pi)
            if (pi.get("metadata") or {}).get("charge_key") == request.idempotency_key:
                return payment_result(pi)
        log.warning("stripe: no payment found for %s%s", request.idempotency_key,
                    " after a processor error" if after_error else "")
        return _failed("", "processing_error" if after_error else "not_found")

    def payment_status(self, reference: str) -> ChargeResult:
        return self._call(lambda: payment_result(_plain(self.client.v1.payment_intents.retrieve(
            reference, {"expand": ["payment_method"]}))),
            lambda error: _failed(reference, _code(error)))

    def cancel_payment(self, reference: str) -> ChargeResult:
        """An abandoned challenge: canceled, or, when the customer finished meanwhile, what
        it became ("succeeded" if it won the race)."""
        try:
            return payment_result(_plain(self.client.v1.payment_intents.cancel(reference)))
        except stripe.InvalidRequestError as e:
            if e.code == "payment_intent_unexpected_state":
                return self.payment_status(reference)
            return _failed(reference, e.code or "invalid_request")
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as e:
            raise GatewayTimeout("stripe: no answer canceling") from e

    # ---------------------------------------------------------------- refunds
    def refund(self, payment_reference: str, amount_cents: int,
               idempotency_key: str) -> ChargeResult:
        return self._call(
            lambda: refund_result(_plain(self.client.v1.refunds.create(
                {"payment_intent": payment_reference, "amount": amount_cents,
                 "metadata": {"refund_key": idempotency_key}},
                {"idempotency_key": idempotency_key}))),
            lambda error: _failed("", _code(error)))

    def refund_status(self, reference: str) -> ChargeResult:
        return self._call(lambda: refund_result(_plain(self.client.v1.refunds.retrieve(
            reference))), lambda error: _failed(reference, _code(error)))

    # ---------------------------------------------------------------- webhooks
    def parse_event(self, payload: bytes, signature: str) -> ProcessorEvent:
        """A webhook's event, its signature checked by the SDK (each secret in turn, for a
        rotation); BadSignature when it is wrong, missing or older than 5 minutes."""
        if not signature:
            raise BadSignature("no Stripe-Signature header")
        text = payload.decode("utf-8", errors="replace")
        for secret in self.webhook_secrets:
            try:
                stripe.Webhook.construct_event(text, signature, secret,
                                               tolerance=SIGNATURE_TOLERANCE_SECONDS)
            except stripe.SignatureVerificationError:
                continue
            except ValueError as e:
                raise BadSignature("not an event") from e
            event = json.loads(text)
            return ProcessorEvent(event["id"], event["type"], int(event.get("created", 0)),
                                  event["data"]["object"])
        raise BadSignature("signature not verified")


# ---------------------------------------------------------------- answers → results

def saved_method(pm: dict) -> SavedMethod:
    holder = (pm.get("billing_details") or {}).get("name") or ""
    if pm.get("type") == "us_bank_account":
        bank = pm.get("us_bank_account") or {}
        return SavedMethod(pm["id"], "ach", "Bank account", bank.get("last4") or "",
                           None, None, holder, bank.get("bank_name") or "")
    card = pm.get("card") or {}
    brand = card.get("brand") or ""
    return SavedMethod(pm["id"], "card", BRANDS.get(brand, brand.replace("_", " ").title()),
                       card.get("last4") or "", card.get("exp_month"), card.get("exp_year"),
                       holder)


def payment_result(pi: dict) -> ChargeResult:
    status = pi.get("status")
    pm = pi.get("payment_method")
    method = saved_method(pm) if isinstance(pm, dict) and pi.get("setup_future_usage") else None
    if status == "succeeded":
        return ChargeResult(True, pi["id"], "approved", "Approved.", status="succeeded",
                            method=method)
    if status == "processing":
        return ChargeResult(False, pi["id"], "processing", "The payment is being processed.",
                            status="processing")
    if status in ("requires_action", "requires_confirmation"):
        return _action(pi, method)
    if status == "canceled":
        return _failed(pi["id"], "canceled")
    error = pi.get("last_payment_error") or {}
    return _failed(pi["id"], _code(error) if error else "card_declined")


def refund_result(refund: dict) -> ChargeResult:
    status = refund.get("status")
    if status == "succeeded":
        return ChargeResult(True, refund["id"], "approved", "Refunded.", status="succeeded")
    if status in ("pending", "requires_action"):
        return ChargeResult(False, refund["id"], "pending", "The refund is on its way.",
                            status="processing")
    code = refund.get("failure_reason") or "refund_failed"
    return _failed(refund["id"], code, "The processor couldn't refund this payment.")


def _action(intent: dict, method: SavedMethod | None) -> ChargeResult:
    kind = (intent.get("next_action") or {}).get("type")
    step = "verify_microdeposits" if kind == "verify_with_microdeposits" else "authenticate"
    return ChargeResult(False, intent["id"], "requires_action",
                        "The bank account's micro-deposits need confirming."
                        if step == "verify_microdeposits"
                        else "The card asks for authentication.",
                        status="requires_action", client_secret=intent.get("client_secret") or "",
                        next_action=step, method=method)


def _code(error: Mapping) -> str:
    """The product's reason for a Stripe error body: the decline code when there is one."""
    code = error.get("decline_code") or error.get("code") or "card_declined"
    return "card_declined" if code == "generic_decline" else code


def _intent_id(error: Mapping) -> str:
    for key in ("payment_intent", "setup_intent"):
        intent = error.get(key)
        if isinstance(intent, Mapping) and intent.get("id"):
            return intent["id"]
    return ""
