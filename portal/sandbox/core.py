"""The sandbox processor's logic over its own tables (issue 16). No Flask.

Everything is written through its own connection (db.engine.begin()), outside the portal's
transaction, as a real processor's storage would be: an answer the portal never received
is still remembered, and a retry with the same idempotency key gets the first answer.

Objects, named as Stripe names them: payment methods (pm_sbx_…, entered on the sandbox's
form), customers (cus_sbx_…, derived from the key: nothing to store), setup intents
(seti_sbx_…: saving a method for off-session use, with a $0 authorization) and payment
intents (pi_sbx_…, in sandbox_charges with the old flows' ch_… charges).
"""

import hashlib
import hmac
import secrets

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from portal.clock import now as clock_now
from portal.extensions import db
from portal.models.sandbox import (
    SandboxCharge,
    SandboxPaymentMethod,
    SandboxRefund,
    SandboxSetup,
)
from portal.sandbox.cards import MICRODEPOSITS, REFUSED_AT_SETUP, EnteredMethod
from portal.services.gateway import DECLINES, ChargeResult, GatewayTimeout, SavedMethod

MICRODEPOSIT_TRIES = 3

MESSAGES = {
    **DECLINES,
    "authentication_required": "The card's bank asks the card holder to confirm this "
                               "payment.",
    "authentication_failed": "The card's bank couldn't confirm it was you: the card was not "
                             "charged.",
    "payment_method_unavailable": "This payment method can't be used any more: enter it "
                                  "again.",
    "bank_account_unverified": "This bank account isn't verified yet: confirm the two "
                               "deposits first.",
    "verify_microdeposits": "We sent two small deposits to the account: enter their amounts "
                            "to verify it.",
    "microdeposits_mismatch": "Those amounts don't match the two deposits.",
    "verification_failed": "The bank account couldn't be verified: enter it again.",
    "canceled": "The payment was canceled before it was confirmed.",
    "intent_not_found": "The processor has no record of this payment.",
    "idempotency_mismatch": "This payment was already tried with different details.",
}
_PAYMENT_DECLINES = {"card_declined", "insufficient_funds", "expired_card", "incorrect_cvc",
                     "processing_error"}

PMS, SETUPS = SandboxPaymentMethod.__table__, SandboxSetup.__table__
CHARGES, REFUNDS = SandboxCharge.__table__, SandboxRefund.__table__


def new_id(prefix: str) -> str:
    return f"{prefix}_sbx_{secrets.token_hex(12)}"


def _secret(intent: str) -> str:
    return f"{intent}_secret_{secrets.token_hex(12)}"


def result(status: str, reference: str, code: str = "", *, client_secret: str = "",
           next_action: str = "", method: SavedMethod | None = None,
           message: str = "") -> ChargeResult:
    """The ChargeResult for an intent in `status` (succeeded|failed|requires_action)."""
    if status == "succeeded":
        return ChargeResult(True, reference, "approved", "Approved.", status="succeeded",
                            method=method)
    if status == "requires_action":
        code = code or ("verify_microdeposits" if next_action == "verify_microdeposits"
                        else "authentication_required")
    return ChargeResult(False, reference, code,
                        message or MESSAGES.get(code, DECLINES["card_declined"]),
                        status=status, client_secret=client_secret,
                        next_action=next_action, method=method)


# ------------------------------------------------------------------------- payment methods

def create_payment_method(entered: EnteredMethod) -> dict:
    """Keep what the form's checks let through (never the number): Stripe's payment_method."""
    pm = new_id("pm")
    with db.engine.begin() as conn:
        conn.execute(insert(PMS).values(
            id=pm, kind=entered.kind, behaviour=entered.behaviour, brand=entered.brand,
            last4=entered.last4, exp_month=entered.exp_month, exp_year=entered.exp_year,
            holder=entered.holder, bank_name=entered.bank_name, customer="",
            authenticated=False, detached=False, created_at=clock_now()))
    return payment_method_json(_method(pm))


def _method(pm: str):
    with db.engine.begin() as conn:
        return conn.execute(select(PMS).where(PMS.c.id == pm)).first()


def payment_method_json(row) -> dict:
    """Stripe's wire shape of a payment_method."""
    body = {"id": row.id, "object": "payment_method",
            "type": "card" if row.kind == "card" else "us_bank_account",
            "billing_details": {"name": row.holder}, "customer": row.customer or None,
            "livemode": False}
    if row.kind == "card":
        body["card"] = {"brand": row.brand, "last4": row.last4, "exp_month": row.exp_month,
                        "exp_year": row.exp_year}
    else:
        body["us_bank_account"] = {"last4": row.last4, "bank_name": row.bank_name}
    return body


def _saved(row) -> SavedMethod:
    return SavedMethod(reference=row.id, kind=row.kind, brand=row.brand, last4=row.last4,
                       exp_month=row.exp_month, exp_year=row.exp_year, holder=row.holder,
                       bank_name=row.bank_name)


def describe_method(pm: str) -> SavedMethod:
    row = _method(pm)
    if row is None:
        raise LookupError(f"no such payment method: {pm}")
    return _saved(row)


def detach(pm: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(update(PMS).where(PMS.c.id == pm).values(detached=True, customer=""))


def create_customer(idempotency_key: str) -> str:
    """The same key always names the same customer (a retry creates no second one)."""
    return "cus_sbx_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]


def _attach(conn, pm: str, customer: str, *, authenticated: bool | None = None) -> None:
    values = {"customer": customer}
    if authenticated:
        values["authenticated"] = True
    conn.execute(update(PMS).where(PMS.c.id == pm, PMS.c.detached.is_(False))
                 .values(**values))


def _unavailable(pm_row, customer: str) -> bool:
    return (pm_row is None or pm_row.detached
            or bool(customer and pm_row.customer and pm_row.customer != customer))


# --------------------------------------------------------------------------- setup intents

def save_method(customer: str, pm: str, kind: str, idempotency_key: str) -> ChargeResult:
    """A setup intent: attach `pm` to `customer` for off-session use after a $0
    authorization. Cards refused at entry fail here; 3155/3184 ask for authentication;
    bank accounts wait for the two micro-deposits."""
    with db.engine.begin() as conn:
        stored = conn.execute(select(SETUPS).where(
            SETUPS.c.idempotency_key == idempotency_key)).first()
    if stored is not None:
        if (stored.payment_method, stored.customer) != (pm, customer):
            return result("failed", stored.id, "idempotency_mismatch")
        return setup_status(stored.id)
    row = _method(pm)
    seti, secret, next_action, code = new_id("seti"), "", "", ""
    if _unavailable(row, customer) or row.kind != ("card" if kind == "card" else "ach"):
        status, code = "failed", "payment_method_unavailable"
    elif row.kind == "ach":
        status, next_action, secret = "requires_action", "verify_microdeposits", _secret(seti)
    elif row.behaviour in REFUSED_AT_SETUP:
        status, code = "failed", row.behaviour
    elif row.behaviour == "authenticate_always" or (
            row.behaviour == "authenticate_once" and not row.authenticated):
        status, next_action, secret = "requires_action", "authenticate", _secret(seti)
    else:
        status = "succeeded"
    try:
        with db.engine.begin() as conn:
            conn.execute(insert(SETUPS).values(
                id=seti, idempotency_key=idempotency_key, client_secret=secret,
                customer=customer, payment_method=pm, status=status, code=code,
                next_action=next_action, microdeposit_attempts=0, created_at=clock_now()))
            if status == "succeeded":
                _attach(conn, pm, customer)
    except IntegrityError:  # the same key at the same moment: answer as the first did
        return save_method(customer, pm, kind, idempotency_key)
    return setup_status(seti)


def _setup(seti: str):
    with db.engine.begin() as conn:
        return conn.execute(select(SETUPS).where(SETUPS.c.id == seti)).first()


def setup_status(seti: str) -> ChargeResult:
    row = _setup(seti)
    if row is None:
        return result("failed", seti, "intent_not_found")
    method = describe_method(row.payment_method) if row.status == "succeeded" else None
    if row.status == "requires_action":
        return result("requires_action", row.id, client_secret=row.client_secret,
                      next_action=row.next_action)
    return result(row.status, row.id, row.code, method=method)


def verify_microdeposits(seti: str, amounts: tuple[int, int]) -> ChargeResult:
    """The two deposits' amounts in cents (either order): right → verified and attached;
    wrong → another try, up to MICRODEPOSIT_TRIES, then the setup fails."""
    row = _setup(seti)
    if row is None or row.status != "requires_action" or (
            row.next_action != "verify_microdeposits"):
        return setup_status(seti)
    with db.engine.begin() as conn:
        if tuple(sorted(amounts)) == MICRODEPOSITS:
            done = conn.execute(update(SETUPS).where(
                SETUPS.c.id == seti, SETUPS.c.status == "requires_action").values(
                status="succeeded", next_action="", client_secret="")).rowcount
            if done:
                _attach(conn, row.payment_method, row.customer, authenticated=True)
            return_mismatch = False
        else:
            tries = row.microdeposit_attempts + 1
            failed = tries >= MICRODEPOSIT_TRIES
            conn.execute(update(SETUPS).where(
                SETUPS.c.id == seti, SETUPS.c.status == "requires_action").values(
                microdeposit_attempts=tries,
                **({"status": "failed", "code": "verification_failed", "next_action": "",
                    "client_secret": ""} if failed else {})))
            return_mismatch = not failed
    if return_mismatch:
        left = MICRODEPOSIT_TRIES - row.microdeposit_attempts - 1
        tries_left = f"{left} {'try' if left == 1 else 'tries'} left."
        return result("requires_action", seti, "microdeposits_mismatch",
                      client_secret=row.client_secret, next_action="verify_microdeposits",
                      message=f"{MESSAGES['microdeposits_mismatch']} {tries_left}")
    return setup_status(seti)


# ------------------------------------------------------------------------- payment intents

def _behaviour(method: str) -> tuple[str, object]:
    """(behaviour, the payment method's row or None) for a pm_sbx_ id or an old tok_."""
    if method.startswith("tok_"):
        return method[4:].rsplit("_", 1)[0], None
    row = _method(method)
    return (row.behaviour if row is not None else ""), row


def charge(method: str, customer: str, amount_cents: int, idempotency_key: str, *,
           on_session: bool, save_method: bool = False) -> ChargeResult:
    """A payment intent, once per key (a retry answers as the first did, or
    idempotency_mismatch for other details). Raises GatewayTimeout for 0259 the first time,
    after charging."""
    with db.engine.begin() as conn:
        stored = conn.execute(select(CHARGES).where(
            CHARGES.c.idempotency_key == idempotency_key)).first()
    if stored is not None:
        if (stored.token, stored.amount_cents) != (method, amount_cents):
            return result("failed", stored.reference, "idempotency_mismatch")
        return _payment(stored)
    behaviour, row = _behaviour(method)
    pi, secret, code = new_id("pi"), "", ""
    if not method.startswith("tok_") and _unavailable(row, customer):
        status, code = "failed", "payment_method_unavailable"
    elif row is not None and row.kind == "ach" and not row.authenticated:
        status, code = "failed", "bank_account_unverified"
    elif behaviour in ("approved", "timeout"):
        status = "succeeded"
    elif behaviour == "charge_customer_fail":
        status, code = "failed", "card_declined"
    elif behaviour in _PAYMENT_DECLINES:
        status, code = "failed", behaviour
    elif behaviour in ("authenticate_once", "authenticate_always"):
        if on_session:
            status, secret = "requires_action", _secret(pi)
        elif behaviour == "authenticate_once" and row.authenticated:
            status = "succeeded"
        else:
            status, code = "failed", "authentication_required"
    else:
        status, code = "failed", "card_declined"
    try:
        with db.engine.begin() as conn:
            conn.execute(insert(CHARGES).values(
                idempotency_key=idempotency_key, token=method, amount_cents=amount_cents,
                succeeded=status == "succeeded", code=code or "approved", reference=pi,
                status=status, customer=customer, off_session=not on_session,
                client_secret=secret, created_at=clock_now()))
            if save_method and customer and status != "failed" and row is not None:
                _attach(conn, method, customer)
    except IntegrityError:  # the same key at the same moment: answer as the first did
        return charge(method, customer, amount_cents, idempotency_key, on_session=on_session,
                      save_method=save_method)
    if behaviour == "timeout":
        raise GatewayTimeout("the sandbox processor did not answer in time")
    return payment_status(pi)


def _payment(row) -> ChargeResult:
    status = row.status or ("succeeded" if row.succeeded else "failed")
    if status == "canceled":
        return result("failed", row.reference, "canceled")
    if status == "requires_action":
        return result(status, row.reference, client_secret=row.client_secret,
                      next_action="authenticate")
    return result(status, row.reference, "" if status == "succeeded" else row.code)


def _charge_row(reference: str):
    with db.engine.begin() as conn:
        return conn.execute(select(CHARGES).where(CHARGES.c.reference == reference)).first()


def payment_status(reference: str) -> ChargeResult:
    row = _charge_row(reference)
    if row is None:
        return result("failed", reference, "intent_not_found")
    return _payment(row)


def cancel_payment(reference: str) -> ChargeResult:
    """Cancel a payment still waiting for authentication; one that completed first stays
    succeeded (the answer says so)."""
    with db.engine.begin() as conn:
        conn.execute(update(CHARGES).where(
            CHARGES.c.reference == reference, CHARGES.c.status == "requires_action").values(
            status="canceled", code="canceled", client_secret=""))
    return payment_status(reference)


def refund_status(reference: str) -> ChargeResult:
    with db.engine.begin() as conn:
        row = conn.execute(select(REFUNDS).where(REFUNDS.c.reference == reference)).first()
    if row is None:
        return result("failed", reference, "charge_not_found")
    return result("succeeded" if row.succeeded else "failed", row.reference, row.code)


# ------------------------------------------------------------------------- 3-D Secure page

def pending_action(intent: str, client_secret: str):
    """(kind, amount_cents or None) of an intent waiting for authentication whose client
    secret matches; None otherwise (unknown, done, or the wrong secret)."""
    if intent.startswith("seti_"):
        row = _setup(intent)
        if row is None or row.next_action != "authenticate":
            return None
        kind, amount = "setup", None
    else:
        row = _charge_row(intent)
        if row is None:
            return None
        kind, amount = "payment", row.amount_cents
    if row.status != "requires_action" or not client_secret or not hmac.compare_digest(
            row.client_secret, client_secret):
        return None
    return kind, amount


def authenticate(intent: str, client_secret: str, complete: bool) -> ChargeResult | None:
    """The challenge's answer: complete → the intent succeeds (a setup attaches the card,
    now authenticated); fail → it fails with authentication_failed. None when the intent is
    not waiting for it or the secret is wrong (nothing changes)."""
    if pending_action(intent, client_secret) is None:
        return None
    status = "succeeded" if complete else "failed"
    code = "" if complete else "authentication_failed"
    with db.engine.begin() as conn:
        if intent.startswith("seti_"):
            row = conn.execute(select(SETUPS).where(SETUPS.c.id == intent)).first()
            done = conn.execute(update(SETUPS).where(
                SETUPS.c.id == intent, SETUPS.c.status == "requires_action").values(
                status=status, code=code, next_action="", client_secret="")).rowcount
            if done and complete:
                _attach(conn, row.payment_method, row.customer, authenticated=True)
        else:
            row = conn.execute(select(CHARGES).where(CHARGES.c.reference == intent)).first()
            done = conn.execute(update(CHARGES).where(
                CHARGES.c.reference == intent, CHARGES.c.status == "requires_action").values(
                status=status, succeeded=complete, code=code or "approved",
                client_secret="")).rowcount
            if done and complete and not row.token.startswith("tok_"):
                conn.execute(update(PMS).where(PMS.c.id == row.token).values(
                    authenticated=True))
    return setup_status(intent) if intent.startswith("seti_") else payment_status(intent)
