"""The payment gateway: an interface, and the built-in sandbox that is the default.

A real processor plugs in as one class with the same four methods, named by the
PAYMENT_GATEWAY setting ("module:Class"). Card numbers and CVCs go to the gateway and
nowhere else; the portal keeps the token it returns.

The sandbox behaves like the big processors' test modes: documented test numbers approve or
decline with each reason (the table in the README), tokens carry that behaviour, and every
charge is remembered by its idempotency key in the sandbox's own table, written outside the
portal's transaction as a processor's would be, so a retry after a timeout returns the first
answer and never charges twice.
"""

import importlib
import secrets
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from portal.clock import now as clock_now
from portal.extensions import db
from portal.models import SandboxCharge, SandboxRefund


@dataclass(frozen=True)
class ChargeResult:
    succeeded: bool
    reference: str  # the gateway's id for the charge attempt
    code: str  # "approved", or why not
    message: str  # for the person paying


class GatewayTimeout(Exception):
    """No answer in time: the charge may have happened. Retry with the same key."""


class PaymentGateway(Protocol):
    def tokenize_card(self, number: str, exp_month: int, exp_year: int, cvc: str,
                      holder: str) -> str: ...

    def tokenize_bank_account(self, routing: str, account: str, holder: str) -> str: ...

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

# Test numbers (any future expiry, any CVC of the right length). Any other valid card
# number is approved.
SANDBOX_CARDS = {
    "4242424242424242": "approved",
    "5555555555554444": "approved",
    "378282246310005": "approved",
    "6011111111111117": "approved",
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
    "4000000000000119": "processing_error",
    "4000000000000259": "timeout",  # charged, but the answer never arrives (first try)
}
SANDBOX_BANK_ACCOUNTS = {"000111111116": "insufficient_funds"}


class SandboxGateway:
    def tokenize_card(self, number: str, exp_month: int, exp_year: int, cvc: str,
                      holder: str) -> str:
        return self._token(SANDBOX_CARDS.get(number, "approved"))

    def tokenize_bank_account(self, routing: str, account: str, holder: str) -> str:
        return self._token(SANDBOX_BANK_ACCOUNTS.get(account, "approved"))

    @staticmethod
    def _token(behaviour: str) -> str:
        return f"tok_{behaviour}_{secrets.token_hex(8)}"

    def charge(self, token: str, amount_cents: int, idempotency_key: str,
               description: str) -> ChargeResult:
        # "tok_<behaviour>_<random>"; anything else is not a sandbox token: declined
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


def load(path: str) -> PaymentGateway:
    """The gateway named by PAYMENT_GATEWAY ("module:Class")."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)()
