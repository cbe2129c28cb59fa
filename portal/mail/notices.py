"""The emails the portal sends, each to the people it concerns, queued in the outbox in the
transaction of what they tell (rendered by compose, from templates/mail/ and, for the billing
links, billing_links/templates/billing_links/email_*):

- receipt, refund, declined, primary_declined (the Backup paid a recharge the Primary
  declined): a charge or refund settled, to the billing-email recipients of
  the paying account (and whoever else it concerns); authentication_needed instead of the
  last two when a card's bank asked its holder to authenticate an off-session recharge
  (with the one-time link of billing_links/authenticate.py);
- statement: a statement as a PDF attachment, to one address;
- new_owner: a transferred account's new owner;
- link_request, link_switched, link_receipt: the billing links' request to the customer,
  and after the customer paid, the note to the agency and the customer's receipt;
- added_to_agency_billing: a customer-billed sub-account moved to agency billing, to its
  people as they were while it paid its own (customer_billed_people), once each;
- account_closed, account_reactivated, agency_canceled, transferred (out and in): to
  people_told (owners and admins, billing recipients, billing users, a customer-billed
  sub-account's customer), one notice per event per person (the dedupe key holds the
  event's id and the address), queued in the change's transaction.
"""

import hashlib
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import rules
from portal.mail import compose
from portal.models import (
    Account,
    AccountEvent,
    BillingMode,
    Charge,
    Membership,
    OutboxAttachment,
    Refund,
    RefundStatus,
    Role,
    User,
)
from portal.services import auth, billing
from portal.services.money import dollars

if TYPE_CHECKING:
    from portal.models import BillingRequest


# --------------------------------------------------------------- billing

def receipt(session: Session, charge: Charge) -> int:
    """To every billing-email recipient, and to the person who paid (the signed-in user who
    made the payment) when they are not among them."""
    account = session.get(Account, charge.account_id)
    settings = billing.settings_for(session, account)
    context = {"charge": charge, "account": account, "settings": settings}
    subject = (f"Receipt {charge.receipt_number}: {charge.label.lower()} of "
               f"{dollars(charge.amount_cents)} for {account.name}")
    payer = session.get(User, charge.actor_id) if charge.actor_id else None
    return _to_recipients(session, account, "receipt", f"receipt:{charge.id}", subject,
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
    sent = _to_recipients(session, paying, "refund", f"refund:{refund.id}:{refund.status}",
                          subject, "mail/refund", context)
    if refund.notify_email:
        compose.queue(session, to=refund.notify_email, subject=subject, kind="refund",
                      template="mail/refund_customer", context=context,
                      account_id=account.id,
                      dedupe_key=f"refund:{refund.id}:{refund.status}:customer")
        sent += 1
    return sent


def declined(session: Session, charges: list[Charge]) -> int:
    """The last card (or every card tried) declined: tell the recipients, once per charge.
    A card whose bank asked its holder to authenticate gets authentication_needed instead
    (the same facts, and the link to do it)."""
    if any(_asks_authentication(charge) for charge in charges):
        return authentication_needed(session, charges, None)
    last = charges[-1]
    account = session.get(Account, last.account_id)
    context = {"charges": charges, "account": account}
    subject = f"Action needed: your card was declined for {account.name}"
    return _to_recipients(session, account, "decline", f"decline:{last.id}", subject,
                          "mail/declined", context)


def primary_declined(session: Session, declined: Charge, paid: Charge) -> int:
    """An auto recharge's Primary declined and the Backup paid: besides the receipt, tell
    the recipients the Primary needs fixing (the next recharge tries it first again). When
    its bank asked its holder to authenticate: authentication_needed instead."""
    if _asks_authentication(declined):
        return authentication_needed(session, [declined], paid)
    account = session.get(Account, paid.account_id)
    context = {"declined": declined, "paid": paid, "account": account}
    subject = (f"Your Primary card was declined for {account.name}: the Backup paid "
               f"{dollars(paid.amount_cents)}")
    return _to_recipients(session, account, "primary_declined", f"primary-declined:{paid.id}",
                          subject, "mail/primary_declined", context)


def _to_recipients(session: Session, account: Account, kind: str, key: str, subject: str,
                   template: str, context: dict, also: User | None = None) -> int:
    people = billing.recipients(session, account)
    if also is not None and all(user.id != also.id for user in people):
        people.append(also)
    for user in people:
        compose.queue(session, to=user.email, subject=subject, kind=kind, template=template,
                      context={**context, "recipient": user}, account_id=account.id,
                      dedupe_key=f"{key}:{user.id}")
    return len(people)


def statement(session: Session, account: Account, built, recipient: str, pdf: bytes,
              dedupe_key: str | None = None, postings: bytes | None = None) -> None:
    """The statement as a PDF attachment, to one address; with `postings`, the period's
    postings as a CSV attachment beside it (issue 17)."""
    period = f"{built.start:%b %-d, %Y} – {built.end:%b %-d, %Y}"
    message = compose.queue(session, to=recipient, kind="statement",
                            subject=f"Statement for {account.name}: {period}",
                            template="mail/statement",
                            context={"account": account, "statement": built},
                            account_id=account.id, dedupe_key=dedupe_key)
    exists = session.scalar(select(OutboxAttachment.id).where(
        OutboxAttachment.message_id == message.id))
    if exists is None:
        session.add(OutboxAttachment(
            message_id=message.id, content_type="application/pdf", data=pdf,
            filename=f"statement-{account.id}-{built.start:%Y%m%d}-{built.end:%Y%m%d}.pdf"))
        if postings is not None:
            session.add(OutboxAttachment(
                message_id=message.id, content_type="text/csv", data=postings,
                filename=f"statement-{account.id}-{built.start:%Y%m%d}-{built.end:%Y%m%d}"
                         "-postings.csv"))
        session.flush()


# --------------------------------------------------------------- a transferred account

def new_owner(session: Session, account: Account, agency_name: str, owner: User,
              secret_key: str) -> None:
    """To the new owner of a transferred account: who moved it to them and where to sign in;
    when the transfer made their user (the email had none), the one-time link to set a
    password first (signed with `secret_key`). Queued in the transfer's transaction,
    whichever of the two it is, so the agency's answer is the same."""
    link = None
    if not auth.has_password(owner):
        token = auth.password_link_token(secret_key, owner)
        link = compose.external_url("auth.set_password", token=token)
    context = {"account": account, "agency_name": agency_name, "owner": owner,
               "link": link, "sign_in": compose.external_url("auth.login"),
               "days": rules.PASSWORD_LINK_TTL.days}
    compose.queue(session, to=owner.email, kind="transfer",
                  subject=f"You are now the owner of {account.name}",
                  template="mail/new_owner", context=context, account_id=account.id)


# --------------------------------------------------------------- invitations

def invitation(session: Session, account: Account, invitation, inviter: User | None,
               url: str) -> None:
    """Invite User (portal/services/people.py): to the invited email, who asked, the role,
    the one-time link and how long it works. Once per invitation."""
    from portal.services.people import ROLE_HELP, ROLE_LABELS

    context = {"account": account, "invitation": invitation, "inviter": inviter, "url": url,
               "role": ROLE_LABELS[invitation.role], "role_help": ROLE_HELP[invitation.role],
               "days": rules.INVITATION_TTL.days}
    who = inviter.name if inviter is not None else account.name
    compose.queue(session, to=invitation.email, kind="invitation",
                  subject=f"{who} invited you to {account.name}",
                  template="mail/invitation", context=context, account_id=account.id,
                  dedupe_key=f"invitation:{invitation.link_id}")


# --------------------------------------------------------------- billing links

def link_request(session: Session, agency: Account, sub: Account, request: "BillingRequest",
                 url: str) -> None:
    """The request to the customer: the agency's message, the amount, the link."""
    compose.queue(session, to=request.email, kind="billing_link",
                  subject=f"{agency.name}: set up billing for {sub.name}",
                  template="billing_links/email_request",
                  context={"agency": agency, "sub": sub, "request": request, "url": url},
                  account_id=sub.id, dedupe_key=f"billing-link:{request.link_id}")


def link_switched(session: Session, agency: Account, sub: Account, request: "BillingRequest",
                  charge: Charge) -> None:
    """The customer paid: to the agency's billing-email recipients (plain text)."""
    context = {"agency": agency, "sub": sub, "request": request, "charge": charge}
    subject = f"{sub.name} now pays from its own balance ({dollars(charge.amount_cents)} paid)"
    for user in billing.recipients(session, agency):
        compose.queue(session, to=user.email, subject=subject, kind="billing_switched",
                      template="billing_links/email_switched", context=context, html=False,
                      account_id=agency.id,
                      dedupe_key=f"billing-switched:{request.link_id}:{user.id}")


def link_receipt(session: Session, agency: Account, sub: Account, request: "BillingRequest",
                 charge: Charge, refunding: str | None = None, invitation=None) -> None:
    """The receipt to the person who paid the link (every successful charge gets one), also
    when the payment is being refunded (`refunding` says why). Plain text. `invitation`:
    the payer's invitation to be the sub-account's billing user (people.invite_payer), whose
    link the receipt carries."""
    user = (session.scalar(select(User).where(User.email == invitation.email))
            if invitation is not None else None)
    context = {"agency": agency, "sub": sub, "request": request, "charge": charge,
               "refunding": refunding, "invitation": invitation,
               "has_user": user is not None and auth.has_password(user)}
    compose.queue(session, to=request.email, kind="receipt",
                  subject=f"Receipt {charge.receipt_number}: {sub.name}'s opening balance"
                          + (" (being refunded)" if refunding else ""),
                  template="billing_links/email_customer_receipt", context=context,
                  html=False, account_id=sub.id,
                  dedupe_key=f"billing-link-receipt:{charge.id}")


def added_to_agency_billing(session: Session, move, moved_cents: int, actor: User | None,
                            key: str) -> int:
    """Add to Agency Billing (billing_links.service.AgencyMove): to the sub-account's people
    as it was while customer-billed (`move.told`, customer_billed_people: its owners and
    admins, its billing-email recipients, its billing users, the customer on its last billing
    request), once each: which balance moved which way, the cards and auto recharge it lost,
    that its history stays readable. The dedupe key is the move's `key` and the address."""
    sub, agency = move.sub, move.agency
    context = {"sub": sub, "agency": agency, "move": move, "moved": moved_cents,
               "actor": actor, "sign_in": compose.external_url("auth.login")}
    subject = f"{sub.name} is now paid from {agency.name}'s balance (agency billing)"
    for email in move.told:
        compose.queue(session, to=email, subject=subject, kind="billing_mode",
                      template="mail/added_to_agency", context=context, account_id=sub.id,
                      dedupe_key=_person_key(key, email))
    return len(move.told)


def _person_key(key: str, email: str) -> str:
    """`key:address` (lower-cased), the address hashed when it would outgrow the column."""
    person = f"{key}:{email.lower()}"
    if len(person) > 160:
        person = f"{key}:{hashlib.sha256(email.lower().encode()).hexdigest()}"
    return person


# --------------------------------------------------------------- lifecycle: who is told

def people_told(session: Session, account: Account) -> list[str]:
    """Everyone a change to `account` (closed, reactivated, canceled with its agency,
    transferred) concerns, each address once (case-insensitively), in this order: its owners
    and admins; the billing-email recipients of whoever pays for it (an agency-billed
    sub-account's agency); its billing users (members with the billing role); and, for a
    customer-billed sub-account, the customer on its last billing request. Read it before a
    change that alters the account's kind or billing (a transfer)."""
    from portal.services import ledger

    return _people(session, account, ledger.paying_account(session, account),
                   account.is_sub and account.billing_mode == BillingMode.CUSTOMER)


def customer_billed_people(session: Session, sub: Account) -> list[str]:
    """people_told of a sub-account as it is while customer-billed, whatever its billing mode
    reads now (Add to Agency Billing, in the transaction that switches it): its owners and
    admins, its own billing-email recipients (it paid its bills: they got its receipts), its
    billing users and the customer on its last billing request."""
    return _people(session, sub, sub, True)


def _people(session: Session, account: Account, payer: Account, customer: bool) -> list[str]:
    from portal.models import BillingRequest

    members = session.execute(
        select(User.email, Membership.role).join(Membership, Membership.user_id == User.id)
        .where(Membership.account_id == account.id,
               Membership.role.in_((Role.OWNER, Role.ADMIN, Role.BILLING)))
        .order_by(User.email)).all()
    emails = [email for email, role in members if role in (Role.OWNER, Role.ADMIN)]
    emails += [user.email for user in billing.recipients(session, payer)]
    emails += [email for email, role in members if role == Role.BILLING]
    if customer:
        last = session.scalar(select(BillingRequest.email).where(
            BillingRequest.sub_account_id == account.id)
            .order_by(BillingRequest.created_at.desc(), BillingRequest.id.desc()).limit(1))
        if last:
            emails.append(last)
    return _once(emails)


def _once(emails) -> list[str]:
    seen, told = set(), []
    for email in emails:
        if email and email.lower() not in seen:
            seen.add(email.lower())
            told.append(email)
    return told


def _event_key(kind: str, event: AccountEvent, email: str) -> str:
    """One notice per event per person: the event's id and the address (hashed when the
    key would outgrow the outbox's column)."""
    return _person_key(f"{kind}:{event.id}", email)


def _tell(session: Session, event: AccountEvent, emails: list[str], *, kind: str,
          subject: str, template: str, context: dict, account_id: int) -> int:
    session.flush()  # the event's id, for the dedupe keys
    context = {**context, "sign_in": compose.external_url("auth.login")}
    for email in emails:
        compose.queue(session, to=email, subject=subject, kind=kind, template=template,
                      context=context, account_id=account_id,
                      dedupe_key=_event_key(kind, event, email))
    return len(emails)


def account_closed(session: Session, account: Account, event: AccountEvent,
                   actor: User | None, released: list[str]) -> int:
    """A standalone account or a sub-account was closed (lifecycle.close): to people_told."""
    return _tell(session, event, people_told(session, account), kind="account_closed",
                 subject=f"{account.name} is closed", template="mail/account_closed",
                 context={"account": account, "actor": actor, "released": released,
                          "days": rules.DATA_RETENTION.days},
                 account_id=account.id)


def account_reactivated(session: Session, account: Account, event: AccountEvent,
                        actor: User | None) -> int:
    """A canceled account was reactivated (lifecycle.reactivate): to people_told."""
    return _tell(session, event, people_told(session, account),
                 kind="account_reactivated", subject=f"{account.name} is reactivated",
                 template="mail/account_reactivated",
                 context={"account": account, "actor": actor,
                          "restore_days": rules.NUMBER_RESTORE_WINDOW.days},
                 account_id=account.id)


def agency_canceled(session: Session, agency: Account, event: AccountEvent,
                    subs: list[Account], actor: User | None) -> int:
    """An agency was canceled with its sub-accounts (agency.cancel), one email per person
    for the whole cancel: the agency's people_told hear of the agency and every
    sub-account canceled with it; each sub-account's own people_told (its owners and
    admins, its billing users, a customer-billed one's customer) of the sub-accounts of
    theirs that were canceled (a person of several hears of each in the one email)."""
    told: dict[str, tuple[str, list[Account]]] = {}
    agency_people = {email.lower() for email in people_told(session, agency)}
    for email in people_told(session, agency):
        told[email.lower()] = (email, list(subs))
    for sub in subs:
        for email in people_told(session, sub):
            address, theirs = told.setdefault(email.lower(), (email, []))
            if sub not in theirs:
                theirs.append(sub)
    session.flush()
    subject = f"{agency.name} is canceled"
    for address, theirs in told.values():
        context = {"agency": agency, "actor": actor, "subs": theirs, "all_subs": subs,
                   "sign_in": compose.external_url("auth.login"),
                   "days": rules.DATA_RETENTION.days,
                   "of_agency": address.lower() in agency_people}
        compose.queue(session, to=address, subject=subject, kind="agency_canceled",
                      template="mail/agency_canceled", context=context,
                      account_id=agency.id,
                      dedupe_key=_event_key("agency_canceled", event, address))
    return len(told)


def transferred(session: Session, agency: Account, sub: Account, out_event: AccountEvent,
                in_event: AccountEvent, actor: User | None, new_owner_email: str,
                sub_people: list[str]) -> int:
    """A sub-account was transferred out of its agency (agency.transfer_out): the agency's
    people_told hear it left (the transfer-out event); the sub-account's people_told as it
    was before the transfer (`sub_people`) hear it is now standalone and who owns it (the
    transfer-in event). The new owner is not among them: notices.new_owner tells them."""
    context = {"agency": agency, "sub": sub, "actor": actor, "new_owner": new_owner_email}
    sent = _tell(session, out_event, people_told(session, agency), kind="transferred_out",
                 subject=f"{sub.name} was transferred out of {agency.name}",
                 template="mail/transferred_out", context=context, account_id=agency.id)
    sub_told = [email for email in sub_people if email.lower() != new_owner_email.lower()]
    sent += _tell(session, in_event, sub_told, kind="transferred_in",
                  subject=f"{sub.name} is now a standalone account",
                  template="mail/transferred_in", context=context, account_id=sub.id)
    return sent


# --------------------------------------------------------------- single-task links (F)

def task_link(session: Session, agency: Account, sub: Account, link, url: str) -> None:
    """"Ask the client to update their card" / "Ask the client to pay": the link, to the
    address the agency chose (billing_links.tasks.issue). Plain text."""
    subject = (f"{agency.name}: update the card for {sub.name}" if link.is_card else
               f"{agency.name}: pay {dollars(link.amount_cents)} for {sub.name}")
    compose.queue(session, to=link.email, kind="task_link", subject=subject,
                  template=f"billing_links/task_email_{link.kind}",
                  context={"agency": agency, "sub": sub, "link": link, "url": url},
                  html=False, account_id=sub.id, dedupe_key=f"task-link:{link.link_id}")


def task_card_updated(session: Session, agency: Account, sub: Account, link, method,
                      old_primary, old_role) -> None:
    """The client saved a new Primary card through a task link: to the client, and to the
    sub-account's and the agency's billing-email recipients (each address once)."""
    context = {"agency": agency, "sub": sub, "link": link, "method": method,
               "old_primary": old_primary, "old_role": old_role}
    subject = f"{sub.name}'s Primary card is now {method.short_label}"
    emails = _once([link.email] + [u.email for u in billing.recipients(session, sub)]
                   + [u.email for u in billing.recipients(session, agency)])
    for email in emails:
        compose.queue(session, to=email, kind="task_card_updated", subject=subject,
                      template="billing_links/task_email_card_done", context=context,
                      html=False, account_id=sub.id,
                      dedupe_key=f"task-card:{link.link_id}:{email}")


def task_receipt(session: Session, agency: Account, sub: Account, link, charge: Charge) -> None:
    """The receipt to the client who paid through a task link (its public receipt's link).
    Plain text."""
    compose.queue(session, to=link.email, kind="receipt",
                  subject=f"Receipt {charge.receipt_number}: payment of "
                          f"{dollars(charge.amount_cents)} for {sub.name}",
                  template="billing_links/task_email_receipt",
                  context={"agency": agency, "sub": sub, "link": link, "charge": charge},
                  html=False, account_id=sub.id, dedupe_key=f"task-receipt:{charge.id}")


# --------------------------------------------------------------- issue 16: card health

def card_expiring(session: Session, method, days: int, expires_on) -> int:
    """The Primary or Backup card expires within `days` (30, then 7): to the account's
    billing-email recipients, once per card and threshold (the job runs daily)."""
    account = session.get(Account, method.account_id)
    context = {"method": method, "account": account, "days": days,
               "expires_on": expires_on}
    role = "Primary" if method.is_primary else "Backup"
    subject = (f"Your {role} card for {account.name}, {method.short_label}, expires "
               f"{expires_on:%B %-d, %Y}")
    return _to_recipients(session, account, "card_expiry", f"card-expiry:{method.id}:{days}",
                          subject, "mail/card_expiring", context)


# --------------------------------------------------------------- issue 16: the processor's news

def processor_refund(session: Session, charge: Charge, amount_cents: int, key: str) -> int:
    """A refund made at the payment processor (its dashboard), now on the ledger: to the
    billing recipients of whoever paid (an agency-billed sub-account's agency)."""
    from portal.services import ledger

    account = session.get(Account, charge.account_id)
    paying = ledger.paying_account(session, account)
    context = {"charge": charge, "account": account, "amount_cents": amount_cents}
    subject = (f"Refunded {dollars(amount_cents)} ({charge.receipt_number}) for "
               f"{account.name} at the payment processor")
    return _to_recipients(session, paying, "processor_refund", key, subject,
                          "mail/processor_refund", context)


def dispute_opened(session: Session, dispute) -> int:
    """A cardholder disputed a payment: the processor took it back (a ledger debit)."""
    from portal.services import ledger

    charge = session.get(Charge, dispute.charge_id)
    account = session.get(Account, dispute.account_id)
    paying = ledger.paying_account(session, account)
    context = {"dispute": dispute, "charge": charge, "account": account}
    subject = (f"Action needed: a payment of {dollars(dispute.amount_cents)} for "
               f"{account.name} is disputed ({charge.receipt_number})")
    return _to_recipients(session, paying, "dispute", f"dispute-opened:{dispute.reference}",
                          subject, "mail/dispute_opened", context)


def dispute_closed(session: Session, dispute) -> int:
    """The dispute is closed: won (the amount came back) or lost."""
    from portal.services import ledger

    charge = session.get(Charge, dispute.charge_id)
    account = session.get(Account, dispute.account_id)
    paying = ledger.paying_account(session, account)
    context = {"dispute": dispute, "charge": charge, "account": account,
               "won": dispute.status == "won"}
    outcome = "won: the payment is back" if dispute.status == "won" else "lost"
    subject = f"The dispute of {charge.receipt_number} for {account.name} was {outcome}"
    return _to_recipients(session, paying, "dispute",
                          f"dispute-closed:{dispute.reference}", subject,
                          "mail/dispute_closed", context)


# --------------------------------------------------------------- issue 16: 3-D Secure

def _asks_authentication(charge: Charge) -> bool:
    from billing_links import authenticate

    return authenticate.asks_authentication(charge)


def authentication_needed(session: Session, tried: list[Charge], paid: Charge | None) -> int:
    """An auto recharge's card asked its holder to authenticate while nobody was there
    (authentication_required): to every billing-email recipient, in the decline handling's
    transaction, with a one-time link to do it (billing_links/authenticate.py: issued here,
    once per charge). `tried`: the cards tried and declined, in order; `paid`: the Backup's
    charge when it paid instead (the link then confirms the card for next time)."""
    from billing_links import authenticate

    asked = [charge for charge in tried if _asks_authentication(charge)]
    requests = [(charge, authenticate.issue(session, charge)) for charge in asked]
    first = asked[0]
    account = session.get(Account, first.account_id)
    context = {"tried": tried, "paid": paid, "account": account, "requests": requests,
               "asked": first, "days": authenticate.TTL.days}
    if paid is not None:
        subject = (f"Confirm your card with your bank for {account.name}: the Backup paid "
                   f"{dollars(paid.amount_cents)}")
    else:
        subject = (f"Action needed: confirm your card with your bank to recharge "
                   f"{account.name}")
    return _to_recipients(session, account, "authentication_needed",
                          f"authentication-needed:{first.id}", subject,
                          "mail/authentication_needed", context)


# --------------------------------------------------------------- issue 17: alerts

def alert(session: Session, account: Account, alert, people: list[User], subject: str,
          context: dict) -> int:
    """An alert (services/alerts.py: low balance, a recharge cap reached or reset, auto
    recharge stopped): to `people` (alerts.people), once per alert and person."""
    for user in people:
        compose.queue(session, to=user.email, subject=subject, kind="alert",
                      template="mail/alert",
                      context={**context, "alert": alert, "account": account,
                               "recipient": user},
                      account_id=account.id, dedupe_key=f"alert:{alert.id}:{user.id}")
    return len(people)


# --------------------------------------------------------------- issue 17 (J): prepared statements

def statement_ready(session: Session, account: Account, file, requester: User,
                    url: str) -> None:
    """A statement the jobs prepared (statement_files): to the person who asked for it, the
    download link (the PDF is not attached: it is the big one), once per file."""
    period = f"{file.period_from:%b %-d, %Y} – {file.period_to:%b %-d, %Y}"
    compose.queue(session, to=requester.email, kind="statement",
                  subject=f"Your statement for {account.name} is ready: {period}",
                  template="mail/statement_ready",
                  context={"account": account, "file": file, "url": url,
                           "recipient": requester, "days": rules.STATEMENT_FILE_TTL.days},
                  account_id=account.id, dedupe_key=f"statement-file:{file.id}")
