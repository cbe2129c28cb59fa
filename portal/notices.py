"""Billing emails: receipts and decline notices, rendered from templates/mail/ and queued
in the outbox for every billing-email recipient of the paying account.

Called by the charge flow, which always runs inside the app (a request, a CLI command or
the jobs), so the templates are the app's.
"""

from flask import render_template
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.models import Account, Charge, Refund, RefundStatus, User
from portal.services import billing, outbox
from portal.services.money import dollars


def receipt(session: Session, charge: Charge) -> int:
    """To every billing-email recipient, and to the person who paid (the signed-in user who
    made the payment) when they are not among them."""
    account = session.get(Account, charge.account_id)
    settings = billing.settings_for(session, account)
    context = {"charge": charge, "account": account, "settings": settings}
    subject = (f"Receipt {charge.receipt_number}: {charge.label.lower()} of "
               f"{dollars(charge.amount_cents)} for {account.name}")
    payer = session.get(User, charge.actor_id) if charge.actor_id else None
    return _send(session, account, "receipt", f"receipt:{charge.id}", subject,
                 "mail/receipt", context, also=payer)


def refund(session: Session, refund: Refund) -> int:
    """A refund settled (or refused): to the billing-email recipients of whoever pays for
    the account (an agency-billed sub-account's agency) and to the customer named on it."""
    from portal.services import ledger

    account = session.get(Account, refund.account_id)
    charge = refund.charge
    paying = ledger.paying_account(session, account)
    context = {"refund": refund, "charge": charge, "account": account}
    if refund.status == RefundStatus.SUCCEEDED:
        subject = (f"Refunded {dollars(refund.amount_cents)} ({charge.receipt_number}) "
                   f"for {account.name}")
    else:
        subject = f"Action needed: a refund for {account.name} didn't go through"
    sent = _send(session, paying, "refund", f"refund:{refund.id}:{refund.status}", subject,
                 "mail/refund", context)
    if refund.notify_email:
        outbox.queue(session, to=refund.notify_email, subject=subject, kind="refund",
                     text=render_template("mail/refund_customer.txt", **context),
                     html=render_template("mail/refund_customer.html", **context),
                     account_id=account.id,
                     dedupe_key=f"refund:{refund.id}:{refund.status}:customer")
        sent += 1
    return sent


def declined(session: Session, charges: list[Charge]) -> int:
    """The last card (or every card tried) declined: tell the recipients, once per charge."""
    last = charges[-1]
    account = session.get(Account, last.account_id)
    context = {"charges": charges, "account": account}
    subject = f"Action needed: your card was declined for {account.name}"
    return _send(session, account, "decline", f"decline:{last.id}", subject,
                 "mail/declined", context)


def _send(session: Session, account: Account, kind: str, key: str, subject: str,
          template: str, context: dict, also: User | None = None) -> int:
    people = billing.recipients(session, account)
    if also is not None and all(user.id != also.id for user in people):
        people.append(also)
    for user in people:
        context = {**context, "recipient": user}
        outbox.queue(session, to=user.email, subject=subject, kind=kind,
                     text=render_template(f"{template}.txt", **context),
                     html=render_template(f"{template}.html", **context),
                     account_id=account.id, dedupe_key=f"{key}:{user.id}")
    return len(people)


def statement(session: Session, account: Account, built, recipient: str, pdf: bytes,
              dedupe_key: str | None = None) -> None:
    """The statement as a PDF attachment, to one address."""
    from portal.models import OutboxAttachment

    context = {"account": account, "statement": built}
    period = f"{built.start:%b %-d, %Y} – {built.end:%b %-d, %Y}"
    message = outbox.queue(session, to=recipient, kind="statement",
                           subject=f"Statement for {account.name}: {period}",
                           text=render_template("mail/statement.txt", **context),
                           html=render_template("mail/statement.html", **context),
                           account_id=account.id, dedupe_key=dedupe_key)
    exists = session.scalar(select(OutboxAttachment.id).where(
        OutboxAttachment.message_id == message.id))
    if exists is None:
        session.add(OutboxAttachment(
            message_id=message.id, content_type="application/pdf", data=pdf,
            filename=f"statement-{account.id}-{built.start:%Y%m%d}-{built.end:%Y%m%d}.pdf"))
        session.flush()
