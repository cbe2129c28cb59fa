"""The billing links' emails (outbox): the request to the customer, with a plain-text and
an HTML part; and, when the customer paid, a note to the agency's billing-email recipients
and a receipt to the customer (also when the payment came too late and is refunded)."""

from flask import render_template
from sqlalchemy.orm import Session

from billing_links.models import BillingRequest
from portal.models import Account, Charge
from portal.services import billing, outbox
from portal.services.money import dollars


def request(session: Session, agency: Account, sub: Account, request: BillingRequest,
            url: str) -> None:
    context = {"agency": agency, "sub": sub, "request": request, "url": url}
    outbox.queue(session, to=request.email, kind="billing_link",
                 subject=f"{agency.name}: set up billing for {sub.name}",
                 text=render_template("billing_links/email_request.txt", **context),
                 html=render_template("billing_links/email_request.html", **context),
                 account_id=sub.id, dedupe_key=f"billing-link:{request.link_id}")


def switched(session: Session, agency: Account, sub: Account, request: BillingRequest,
             charge: Charge) -> None:
    context = {"agency": agency, "sub": sub, "request": request, "charge": charge}
    subject = f"{sub.name} now pays from its own balance ({dollars(charge.amount_cents)} paid)"
    text = render_template("billing_links/email_switched.txt", **context)
    for user in billing.recipients(session, agency):
        outbox.queue(session, to=user.email, subject=subject, kind="billing_switched",
                     text=text, account_id=agency.id,
                     dedupe_key=f"billing-switched:{request.link_id}:{user.id}")


def customer_receipt(session: Session, agency: Account, sub: Account, request: BillingRequest,
                     charge: Charge, refunding: str | None = None) -> None:
    """The receipt to the person who paid the link (every successful charge gets one), also
    when the payment is being refunded (`refunding` says why)."""
    context = {"agency": agency, "sub": sub, "request": request, "charge": charge,
               "refunding": refunding}
    outbox.queue(session, to=request.email, kind="receipt",
                 subject=f"Receipt {charge.receipt_number}: {sub.name}'s opening balance"
                         + (" (being refunded)" if refunding else ""),
                 text=render_template("billing_links/email_customer_receipt.txt", **context),
                 account_id=sub.id, dedupe_key=f"billing-link-receipt:{charge.id}")
