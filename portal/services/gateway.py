"""The payment gateway: an interface, and the built-in sandbox that is the default.

A real processor plugs in as one class (the Processor protocol), named by the
PAYMENT_GATEWAY setting ("module:Class"). Card numbers and CVCs never reach the portal:
they are entered on the processor's own form (Stripe Elements; the sandbox's frame), and the
portal keeps the payment-method id it gives.

The sandbox behaves like the big processors' test modes: documented test numbers approve or
decline with each reason (the table in the README), and every charge is remembered by its
idempotency key in the sandbox's own table, written outside the portal's transaction as a
processor's would be, so a retry after a timeout returns the first answer and never charges
twice.
"""

import importlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from portal.clock import now as clock_now
from portal.extensions import db
from portal.models import SandboxCharge, SandboxRefund


@dataclass(frozen=True)
class SavedMethod:
    """What the portal keeps of a payment method the processor saved: its id and what a
    person needs to recognise it. Never a card number, a CVC or a bank account number."""

    reference: str  # the processor's id (pm_…), read from its answer, not from the browser
    kind: str  # "card" | "ach"
    brand: str  # "Visa", "Mastercard", …, "Bank account"
    last4: str
    exp_month: int | None = None
    exp_year: int | None = None
    holder: str = ""
    bank_name: str = ""


@dataclass(frozen=True)
class ChargeResult:
    succeeded: bool
    reference: str  # the gateway's id for the charge attempt (pi_…, seti_…, re_…)
    code: str  # "approved", or why not
    message: str  # for the person paying
    # issue 16: "succeeded" | "failed" | "requires_action" | "processing"; "" = from succeeded
    status: str = ""
    client_secret: str = ""  # requires_action only: handed to the browser, never stored/logged
    next_action: str = ""  # "authenticate" | "verify_microdeposits"
    method: SavedMethod | None = None  # a saved method (setups, payments that save the card)

    @property
    def outcome(self) -> str:
        return self.status or ("succeeded" if self.succeeded else "failed")


@dataclass(frozen=True)
class ChargeRequest:
    """One charge as the processor is asked for it: a pure function of the portal's Charge
    row, so every retry sends the same parameters (Stripe compares them under one key)."""

    method: str  # the saved method's processor id
    customer: str  # the processor's customer id ("" for a one-off payment)
    kind: str  # the charge's purpose (ChargeKind value)
    amount_cents: int
    idempotency_key: str  # the ledger's key: Stripe's Idempotency-Key
    description: str
    on_session: bool = False  # the payer is present (Make a Payment, links): may challenge
    save_method: bool = False  # keep the method for later off-session use (link payments)
    reference: str = ""  # the processor's id once known: look it up, never create again
    first_tried_at: datetime | None = None  # older than a day: reconcile, never re-send
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Mandate:
    """A bank account's debit authorization, as the payer gave it on the page (ACH only):
    Stripe keeps it with the SetupIntent for the later off-session debits. Stored nowhere
    by the portal."""

    ip: str
    user_agent: str


@dataclass(frozen=True)
class BrowserSetup:
    """What a card-entry page loads: the processor's script (the sandbox's own, or Stripe.js)
    and the extra Content-Security-Policy sources that page needs."""

    script_url: str
    factory: str  # the script's global ("SandboxStripe", "Stripe")
    publishable_key: str
    csp: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcessorEvent:
    """A webhook event, its signature verified."""

    id: str
    type: str
    created: int
    object: Mapping[str, Any]


class BadSignature(Exception):
    """A webhook whose signature is wrong, missing or too old: answered 400, nothing done."""


class GatewayTimeout(Exception):
    """No answer in time: the charge may have happened. Retry with the same key."""


class Processor(Protocol):
    """The gateway interface of issue 16: only the processor's ids cross from the browser
    to the portal (the card is entered on the processor's own form). The sandbox
    (portal/sandbox/) and Stripe (services/stripe_gateway.py) implement it; the flows move
    to it from PaymentGateway below, which goes away when they all have."""

    name: str  # "sandbox" | "stripe"

    def browser(self) -> BrowserSetup: ...

    def create_customer(self, account_ref: str, name: str, idempotency_key: str) -> str: ...

    def describe_method(self, method: str) -> SavedMethod: ...

    def save_method(self, customer: str, method: str, kind: str, idempotency_key: str,
                    mandate: Mandate | None = None) -> ChargeResult: ...  # off_session

    def setup_status(self, setup: str) -> ChargeResult: ...

    def verify_microdeposits(self, setup: str, amounts: tuple[int, int]) -> ChargeResult: ...

    def charge(self, request: ChargeRequest) -> ChargeResult: ...

    def payment_status(self, reference: str) -> ChargeResult: ...

    def cancel_payment(self, reference: str) -> ChargeResult: ...

    def refund(self, payment_reference: str, amount_cents: int,
               idempotency_key: str) -> ChargeResult: ...

    def refund_status(self, reference: str) -> ChargeResult: ...

    def detach(self, method: str) -> None: ...

    def parse_event(self, payload: bytes, signature: str) -> ProcessorEvent: ...


class PaymentGateway(Protocol):
    def charge(self, token: str, amount_cents: int, idempotency_key: str,
               description: str) -> ChargeResult: ...

    def refund(self, charge_reference: str, amount_cents: int,
               idempotency_key: str) -> ChargeResult: ...


DECLINES = {
    "card_declined": "The card was declined.",
    "insufficient_funds": "The card was declined: insufficient funds.",
    "expired_card": "The card has expired.",
    "incorrect_cvc": "The card's security code is incorrect.",
    "processing_error": "The card couldn't be processed. Try again in a few minutes.",
    "charge_not_found": "The processor has no successful charge to refund.",
    "amount_too_large": "The refund is more than what is left of the charge.",
}

class SandboxGateway:
    """The built-in processor: the Processor methods (issue 16) call portal/sandbox/core.py,
    whose card-entry form is the sandbox blueprint's (/sandbox/v1). charge(token, …) still
    answers the tokens the old sandbox gave (tok_…), which older local databases hold."""

    name = "sandbox"

    # ---------------------------------------------------------------- Processor (issue 16)

    def browser(self) -> BrowserSetup:
        return BrowserSetup(script_url="/sandbox/v1/sandbox.js", factory="SandboxStripe",
                            publishable_key="pk_sandbox", csp={"frame-src": ("'self'",)})

    def create_customer(self, account_ref: str, name: str, idempotency_key: str) -> str:
        from portal.sandbox import core

        return core.create_customer(idempotency_key)

    def describe_method(self, method: str) -> SavedMethod:
        from portal.sandbox import core

        return core.describe_method(method)

    def save_method(self, customer: str, method: str, kind: str, idempotency_key: str,
                    mandate: Mandate | None = None) -> ChargeResult:
        from portal.sandbox import core

        return core.save_method(customer, method, kind, idempotency_key)

    def setup_status(self, setup: str) -> ChargeResult:
        from portal.sandbox import core

        return core.setup_status(setup)

    def verify_microdeposits(self, setup: str, amounts: tuple[int, int]) -> ChargeResult:
        from portal.sandbox import core

        return core.verify_microdeposits(setup, amounts)

    def payment_status(self, reference: str) -> ChargeResult:
        from portal.sandbox import core

        return core.payment_status(reference)

    def cancel_payment(self, reference: str) -> ChargeResult:
        from portal.sandbox import core

        return core.cancel_payment(reference)

    def refund_status(self, reference: str) -> ChargeResult:
        from portal.sandbox import core

        return core.refund_status(reference)

    def detach(self, method: str) -> None:
        from portal.sandbox import core

        core.detach(method)

    def parse_event(self, payload: bytes, signature: str) -> ProcessorEvent:
        raise BadSignature("the sandbox sends no webhooks")

    def _charge_request(self, request: ChargeRequest) -> ChargeResult:
        from portal.sandbox import core

        if request.reference:  # known: look it up, never create it again
            return core.payment_status(request.reference)
        return core.charge(request.method, request.customer, request.amount_cents,
                           request.idempotency_key, on_session=request.on_session,
                           save_method=request.save_method)

    # -------------------------------------- methods saved before issue 16 (tok_ tokens)

    def charge(self, token, amount_cents: int | None = None, idempotency_key: str = "",
               description: str = "") -> ChargeResult:
        if isinstance(token, ChargeRequest):  # the Processor's charge(request)
            return self._charge_request(token)
        # The old call, by a token the old sandbox gave (cards are entered on the sandbox's
        # form now, which gives pm_sbx_ ids): "tok_<behaviour>_<random>"; anything else
        # (a pm_ id asked the old way included: nobody does) is not a sandbox token: declined
        behaviour = token[4:].rsplit("_", 1)[0] if token.startswith("tok_") else "card_declined"
        table = SandboxCharge.__table__
        # The processor's own storage: its own connection and transaction.
        with db.engine.begin() as conn:
            stored = conn.execute(select(table).where(
                table.c.idempotency_key == idempotency_key)).first()
        if stored is not None:
            return self._answer(stored.succeeded, stored.code, stored.reference,
                                stored.token == token and stored.amount_cents == amount_cents)
        succeeded = behaviour in ("approved", "timeout")
        code = "approved" if succeeded else behaviour
        reference = f"ch_{secrets.token_hex(10)}"
        try:
            with db.engine.begin() as conn:
                conn.execute(insert(table).values(
                    idempotency_key=idempotency_key, token=token, amount_cents=amount_cents,
                    succeeded=succeeded, code=code, reference=reference, created_at=clock_now()))
        except IntegrityError:  # the same key at the same moment: answer as the first did
            return self.charge(token, amount_cents, idempotency_key, description)
        if behaviour == "timeout":
            raise GatewayTimeout("the sandbox processor did not answer in time")
        return self._answer(succeeded, code, reference, True)

    def refund(self, charge_reference: str, amount_cents: int,
               idempotency_key: str) -> ChargeResult:
        """Give back (part of) a charge that succeeded, once per key: a retry answers as the
        first did. Refused for an unknown or failed charge, or past what it charged."""
        charges, refunds = SandboxCharge.__table__, SandboxRefund.__table__
        with db.engine.begin() as conn:
            stored = conn.execute(select(refunds).where(
                refunds.c.idempotency_key == idempotency_key)).first()
            if stored is not None:
                same = (stored.charge_reference == charge_reference
                        and stored.amount_cents == amount_cents)
                return self._answer(stored.succeeded, stored.code, stored.reference, same)
            charged = conn.execute(select(charges).where(
                charges.c.reference == charge_reference)).first()
            given = conn.scalar(select(func.coalesce(func.sum(refunds.c.amount_cents), 0))
                                .where(refunds.c.charge_reference == charge_reference,
                                       refunds.c.succeeded.is_(True)))
        if charged is None or not charged.succeeded:
            code = "charge_not_found"
        elif not 0 < amount_cents <= charged.amount_cents - int(given):
            code = "amount_too_large"
        else:
            code = "approved"
        succeeded = code == "approved"
        reference = f"re_{secrets.token_hex(10)}"
        try:
            with db.engine.begin() as conn:
                conn.execute(insert(refunds).values(
                    idempotency_key=idempotency_key, charge_reference=charge_reference,
                    amount_cents=amount_cents, succeeded=succeeded, code=code,
                    reference=reference, created_at=clock_now()))
        except IntegrityError:  # the same key at the same moment: answer as the first did
            return self.refund(charge_reference, amount_cents, idempotency_key)
        return self._answer(succeeded, code, reference, True)

    @staticmethod
    def _answer(succeeded: bool, code: str, reference: str, same_request: bool) -> ChargeResult:
        if not same_request:
            return ChargeResult(False, reference, "idempotency_mismatch",
                                "This payment was already tried with different details.")
        if succeeded:
            return ChargeResult(True, reference, "approved", "Approved.")
        return ChargeResult(False, reference, code, DECLINES.get(code, DECLINES["card_declined"]))


def load(path: str, config: Mapping | None = None) -> PaymentGateway:
    """The gateway named by PAYMENT_GATEWAY ("module:Class"): cls.from_config(config) when
    the class defines it and a config is given, else cls()."""
    module, _, name = path.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if config is not None and hasattr(cls, "from_config"):
        return cls.from_config(config)
    return cls()
