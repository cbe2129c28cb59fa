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

from sqlalchemy.orm import Session

from portal.errors import ValidationFailed
from portal.models import Account, Charge
from portal.services import charges
from portal.services.cards import ACCEPTED, ACCEPTED_TEXT
from portal.services.gateway import GatewayTimeout, SavedMethod

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


def charge_on_session(session: Session, gateway, charge: Charge,
                      now: datetime) -> tuple[Charge, str]:
    """Ask the processor for a pending link charge and resolve its answer: the path every
    charge takes (`charges.attempt`: the request is a function of the row, so a retry by
    the jobs sends the same parameters under the same key). Returns (charge, client
    secret): the secret only when the processor asks the payer to authenticate (the charge
    stays pending with its intent's id)."""
    charge = charges.attempt(session, gateway, charge, now)
    return charge, _secret(charge)


def confirm_on_session(session: Session, gateway, charge: Charge,
                       now: datetime) -> tuple[Charge, str]:
    """After the challenge: the processor's answer for the charge's intent, resolved (the
    secret again when the intent still waits for the payer)."""
    charge = charges.check_intent(session, gateway, charge, now)
    return charge, _secret(charge)


def _secret(charge: Charge) -> str:
    action = getattr(charge, "action", None)
    return action.client_secret if action is not None and charge.is_pending else ""
