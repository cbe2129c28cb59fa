"""The public pages' side of the processor's card entry (issue 16): the page's processor
script turns what the payer types into a payment-method id (pm_…) in the processor's own
frame; the portal receives only that id and asks the processor what it is. No card number,
expiry or CVC ever reaches these functions.

A link payment is on-session (the payer is on the page): the processor may ask for
3-D Secure, which leaves the charge pending with its intent's id; the page shows the
challenge and `confirm_on_session` settles it from the processor's answer.
"""

import re
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from portal.errors import ValidationFailed
from portal.models import Account, Charge, ChargeStatus, PaymentMethod
from portal.services import charges
from portal.services.cards import ACCEPTED, ACCEPTED_TEXT
from portal.services.gateway import ChargeRequest, GatewayTimeout, SavedMethod
from portal.transactions import begin_write, retry_when_locked

PM_ID = re.compile(r"pm_[A-Za-z0-9_]{1,60}")
NO_CARD = "Enter your card in the card form (it needs JavaScript), then pay."
UNREADABLE = "We couldn't read that card from the payment processor. Enter it again."


def entered_card(gateway, form, field: str = "payment_method") -> SavedMethod:
    """The card the processor's form gave (a pm_… id in `field`), as the processor describes
    it; a clear message when there is none, it is unknown, not a card, or of a brand the
    portal doesn't take."""
    pm = (form.get(field) or "").strip()
    if not PM_ID.fullmatch(pm):
        raise ValidationFailed({field: NO_CARD})
    try:
        saved = gateway.describe_method(pm)
    except GatewayTimeout:
        raise ValidationFailed({field: "The payment processor didn't answer. Try again in a "
                                       "moment."}) from None
    except Exception:  # unknown to the processor (a stale or made-up id)
        raise ValidationFailed({field: UNREADABLE}) from None
    if saved.kind != "card":
        raise ValidationFailed({field: "Pay with a credit card here."})
    if saved.brand not in ACCEPTED:
        name = "Diners Club cards are" if saved.brand == "Diners Club" else "This card brand is"
        raise ValidationFailed({field: f"{name} not accepted. {ACCEPTED_TEXT}"})
    return saved


def customer_for(session: Session, gateway, account: Account) -> str:
    """The account's customer at the processor (services/processor.customer_for: made on
    first use, stored per account and gateway)."""
    from portal.services import processor

    return processor.customer_for(session, account, gateway)


def gateway_name(gateway) -> str:
    return getattr(gateway, "name", "sandbox")


def request_for(charge: Charge, method: PaymentMethod, save_method: bool = True) -> ChargeRequest:
    """The on-session charge, saving the card to the method's customer for later
    off-session recharges: a pure function of the rows, the same on every retry (the
    processor compares the parameters under one key)."""
    return ChargeRequest(method=method.token, customer=method.customer_ref,
                         kind=charge.purpose.value, amount_cents=charge.amount_cents,
                         idempotency_key=charge.idempotency_key,
                         description=charge.description, on_session=True,
                         save_method=save_method,
                         reference=charge.gateway_reference, first_tried_at=charge.created_at,
                         metadata=(("account_id", str(charge.account_id)),
                                   ("charge_key", charge.idempotency_key)))


def charge_on_session(session: Session, gateway, charge: Charge, now: datetime,
                      save_method: bool = True) -> tuple[Charge, str]:
    """Ask the processor for a pending link charge (counted first, like charges.attempt) and
    settle its answer. Returns (charge, client secret): the secret only when the processor
    asks the payer to authenticate (the charge stays pending with its intent's id)."""
    if charge.status != ChargeStatus.PENDING:
        return charge, ""
    request = request_for(charge, session.get(PaymentMethod, charge.method_id), save_method)
    result = charges.ask(session, Charge, charge.id, now, lambda: gateway.charge(request))
    return settle_answer(session, gateway, charge, result, now)


def confirm_on_session(session: Session, gateway, charge: Charge,
                       now: datetime) -> tuple[Charge, str]:
    """After the challenge: the processor's answer for the charge's intent, settled."""
    if charge.status != ChargeStatus.PENDING or not charge.gateway_reference:
        return charge, ""
    try:
        result = gateway.payment_status(charge.gateway_reference)
    except GatewayTimeout:
        return charge, ""
    return settle_answer(session, gateway, charge, result, now)


def settle_answer(session: Session, gateway, charge: Charge, result,
                  now: datetime) -> tuple[Charge, str]:
    if result is None or result.outcome == "processing":  # no answer yet: the jobs ask again
        return charge, ""
    if result.outcome == "requires_action":
        reference = result.reference[:64]

        def remember() -> None:
            begin_write(session)
            session.execute(update(Charge).where(
                Charge.id == charge.id, Charge.status == ChargeStatus.PENDING)
                .values(gateway_reference=reference))
            session.commit()

        retry_when_locked(session, remember, f"charge {charge.id}: intent")
        session.refresh(charge)
        return charge, result.client_secret

    def settle_and_commit() -> None:
        charges.settle(session, charge, result.succeeded, result.reference, result.code,
                       result.message, now=now)
        session.commit()

    retry_when_locked(session, settle_and_commit, f"charge {charge.id}: settle")
    from portal.services import refunds

    refund = refunds.pending_for_charge(session, charge.id)
    if refund is not None:  # a payment that can't be honoured: its refund, asked now
        refunds.attempt(session, gateway, refund, now)
    return charge, ""
