"""Remove from Agency Billing (a billing request and its emailed one-time link), the
customer's payment through the link, and Add to Agency Billing.

The link works once: the payment's transaction consumes the request with a conditional
UPDATE (pending → paid) that must change exactly one row, and the gateway charge carries a
key derived from the link id, so a double submit, a retry after a timeout or two tabs at
once make one charge. Opening the link (GET) never consumes it.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing_links import card_entry, tokens
from billing_links.models import BillingRequest, LinkHit, RequestStatus
from portal import rules, signed_links
from portal.clock import now as clock_now
from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.mail import notices
from portal.models import (
    Account,
    AccountStatus,
    BillingMode,
    BillingSettings,
    Cause,
    Charge,
    ChargePurpose,
    ChargeStatus,
    EventKind,
    InvitationStatus,
    LedgerKind,
    MethodKind,
    MethodRole,
    PaymentMethod,
    User,
)
from portal.services import charges, ledger, lifecycle, payment_methods, people, webhooks
from portal.services.gateway import PaymentGateway, SavedMethod
from portal.services.inputs import clean_email, clean_text
from portal.services.lifecycle import record
from portal.services.money import dollars, parse_cents, plain
from portal.transactions import begin_write

MAX_MESSAGE = 2000


class LinkUsed(tokens.LinkError):
    reason = "used"


class LinkRevoked(tokens.LinkError):
    reason = "revoked"


@dataclass(frozen=True)
class LinkSettings:
    keys: list[str]  # oldest first; the last one signs
    ttl: timedelta
    base_url: str  # the configured external URL, never the request's Host


def url_for_token(settings: LinkSettings, token: str) -> str:
    return f"{settings.base_url.rstrip('/')}/billing-link/{token}"


# --------------------------------------------------------------- the agency's side

def pending_for(session: Session, sub_ids: list[int]) -> dict[int, BillingRequest]:
    """The live request of each of these sub-accounts (for the Billing column)."""
    if not sub_ids:
        return {}
    return {r.sub_account_id: r for r in session.scalars(select(BillingRequest).where(
        BillingRequest.sub_account_id.in_(sub_ids),
        BillingRequest.status == RequestStatus.PENDING))}


def sub_of(session: Session, agency: Account, sub_id: int) -> Account:
    sub = session.scalar(select(Account).where(Account.id == sub_id,
                                               Account.parent_id == agency.id))
    if sub is None:
        raise NotFound("No such sub-account.")
    return sub


def _check_agency_billed(agency: Account, sub: Account) -> None:
    if agency.is_canceled:
        raise NotAllowed(f"{agency.name} is canceled.")
    if sub.is_canceled:
        raise NotAllowed(f"{sub.name} is canceled: reactivate it first.")
    if sub.billing_mode != BillingMode.AGENCY:
        raise NotAllowed(f"{sub.name} already pays from its own balance (Balance from: "
                         "customer).")


def request_removal(session: Session, settings: LinkSettings, agency: Account, sub: Account,
                    actor: User, email: str, amount: str, message: str,
                    now: datetime | None = None) -> tuple[BillingRequest, str]:
    """"Email Client": a pending request (replacing any earlier one) and its link's URL."""
    now = now or clock_now()
    _check_agency_billed(agency, sub)
    errors = {}
    try:
        email = clean_email(email, "email",
                            "Enter the customer's email address, like name@example.com.")
    except ValidationFailed as e:
        errors.update(e.errors)
    try:
        cents = parse_cents(amount, "amount", minimum=rules.MIN_STARTING_BALANCE_CENTS,
                            maximum=rules.MAX_CHARGE_CENTS, label="The starting balance")
    except ValidationFailed as e:
        errors.update(e.errors)
    try:
        message = clean_text(message, "message", "The message", multiline=True)
    except ValidationFailed as e:
        errors.update(e.errors)
    else:
        if len(message) > MAX_MESSAGE:
            errors["message"] = f"Keep the message to {MAX_MESSAGE:,} characters."
    if errors:
        raise ValidationFailed(errors)
    begin_write(session)
    _close_pending(session, sub, RequestStatus.REPLACED, now)
    request = BillingRequest(link_id=signed_links.new_link_id(), agency_id=agency.id,
                             sub_account_id=sub.id, email=email, amount_cents=cents,
                             message=message, status=RequestStatus.PENDING,
                             failed_attempts=0, created_by_id=actor.id, created_at=now,
                             expires_at=now + settings.ttl)
    session.add(request)
    session.flush()
    record(session, agency, EventKind.BILLING_LINK_SENT, actor, now, account=sub.name,
           account_id=sub.id, email=email, amount_cents=cents)
    return request, url_for_token(settings, tokens.sign(settings.keys, request.link_id))


def resend(session: Session, settings: LinkSettings, agency: Account, sub: Account,
           actor: User, now: datetime | None = None) -> tuple[BillingRequest, str]:
    """A new link for the same email, amount and message; the old link stops working."""
    current = pending_for(session, [sub.id]).get(sub.id)
    if current is None:
        raise NotAllowed(f"There is no pending billing request for {sub.name}.")
    return request_removal(session, settings, agency, sub, actor, current.email,
                           plain(current.amount_cents), current.message, now)


def cancel_request(session: Session, agency: Account, sub: Account, actor: User,
                   now: datetime | None = None) -> BillingRequest:
    now = now or clock_now()
    begin_write(session)
    current = pending_for(session, [sub.id]).get(sub.id)
    if current is None or not _close_pending(session, sub, RequestStatus.CANCELED, now):
        raise NotAllowed(f"There is no pending billing request for {sub.name}.")
    record(session, agency, EventKind.BILLING_LINK_CANCELED, actor, now, account=sub.name,
           account_id=sub.id, email=current.email)
    session.refresh(current)
    return current


def _close_pending(session: Session, sub: Account, status: RequestStatus,
                   now: datetime) -> int:
    return session.execute(
        update(BillingRequest).where(BillingRequest.sub_account_id == sub.id,
                                     BillingRequest.status == RequestStatus.PENDING)
        .values(status=status, closed_at=now)).rowcount


@dataclass(frozen=True)
class AgencyMove:
    """What Add to Agency Billing would do to a customer-billed sub-account (its dialog says
    it before, its email after): which balance moves which way, the payment methods and
    the auto recharge it loses, and who is told."""

    sub: Account
    agency: Account
    balance_cents: int  # the sub-account's: > 0 moves to the agency, < 0 the agency takes on
    methods: list[str]  # the payment methods in use, as shown ("Visa ending 4242 (Primary)")
    recharge: tuple[int, int] | None  # its auto recharge (threshold, amount) when on
    # Everyone the move emails, each once (notices.customer_billed_people): its owners and
    # admins, its billing-email recipients, its billing users, its last billing customer.
    told: list[str]

    @property
    def agency_balance_after_cents(self) -> int:
        return self.agency.balance_cents + self.balance_cents


def agency_move(session: Session, agency: Account, sub: Account) -> AgencyMove:
    """The move as it stands now (the dialog; the service reads it again under the lock)."""
    settings = session.get(BillingSettings, sub.id)
    return AgencyMove(
        sub=sub, agency=agency, balance_cents=sub.balance_cents,
        methods=[m.short_label + (" (Primary)" if m.is_primary else " (Backup)"
                                  if m.is_backup else "")
                 for m in payment_methods.in_use(session, sub)],
        recharge=((settings.recharge_threshold_cents, settings.recharge_amount_cents)
                  if settings is not None and settings.auto_recharge else None),
        told=notices.customer_billed_people(session, sub))


def add_to_agency_billing(session: Session, agency: Account, sub: Account, actor: User,
                          now: datetime | None = None) -> int:
    """Its payment methods and recharge settings are removed, its balance moves to the
    agency (a pair of entries naming each other), billing becomes agency, its pending
    billing-role invitations are revoked (no billing of its own to manage); its owners and
    admins and the customer on its last billing request are emailed what moved (its
    payment history and billing logs stay readable). Returns the cents moved."""
    now = now or clock_now()
    # The agency's and the sub-account's rows (in that order), read afresh: no usage or
    # payment for the sub-account lands between the balance read below and the switch.
    sub = ledger.lock_payer(session, sub.id).account
    session.refresh(agency)
    if agency.is_canceled or sub.is_canceled:
        raise NotAllowed(f"{sub.name if sub.is_canceled else agency.name} is canceled.")
    switched = session.execute(
        update(Account).where(Account.id == sub.id, Account.billing_mode == BillingMode.CUSTOMER,
                              Account.parent_id == agency.id)
        .values(billing_mode=BillingMode.AGENCY, updated_at=now)).rowcount
    if switched != 1:
        raise NotAllowed(f"{sub.name} is already on agency billing.")
    move = agency_move(session, agency, sub)  # what it had, before it is removed
    session.execute(update(PaymentMethod).where(
        PaymentMethod.account_id == sub.id, PaymentMethod.removed_at.is_(None))
        .values(removed_at=now, role=MethodRole.OTHER))
    settings = session.get(BillingSettings, sub.id)
    if settings is not None:
        settings.recharge_threshold_cents = settings.recharge_amount_cents = None
        settings.direct_charge = False
    _close_pending(session, sub, RequestStatus.CANCELED, now)
    people.revoke_billing_invitations(session, sub, now)
    balance = session.scalar(select(Account.balance_cents).where(Account.id == sub.id))
    if balance:
        key = f"to-agency:{sub.id}:{now:%Y%m%dT%H%M%S.%f}"
        out = ledger.post(session, sub, LedgerKind.TRANSFER_OUT, -balance,
                          f"Balance moved to {agency.name} (Add to Agency Billing)", key,
                          Cause.USER, actor=actor, now=now)
        into = ledger.post(session, agency, LedgerKind.TRANSFER_IN, balance,
                           f"Balance of {sub.name} (Add to Agency Billing)", key, Cause.USER,
                           cause_ref=f"entry:{out.id}", actor=actor, for_account=sub, now=now)
        out.cause_ref = f"entry:{into.id}"
        session.flush()
    session.refresh(sub)
    record(session, agency, EventKind.BILLING_MODE_CHANGED, actor, now, account=sub.name,
           account_id=sub.id, billing="agency", moved_cents=balance)
    notices.added_to_agency_billing(session, move, balance, actor,
                                    f"to-agency:{sub.id}:{now:%Y%m%dT%H%M%S.%f}")
    return balance


# --------------------------------------------------------------- the customer's side

@dataclass(frozen=True)
class OpenLink:
    request: BillingRequest
    sub: Account
    agency: Account


def open_link(session: Session, settings: LinkSettings, token: str,
              now: datetime | None = None) -> OpenLink:
    """The request behind a token if it can still be paid (never consumes it)."""
    now = now or clock_now()
    link_id = tokens.verify(settings.keys, token, settings.ttl + timedelta(days=1))
    request = session.scalar(select(BillingRequest).where(BillingRequest.link_id == link_id))
    if request is None:
        raise tokens.LinkTampered()
    if request.status == RequestStatus.PAID:
        raise LinkUsed()
    if request.status != RequestStatus.PENDING:
        raise LinkRevoked()
    sub = session.get(Account, request.sub_account_id)
    agency = session.get(Account, request.agency_id)
    if (sub.parent_id != agency.id or sub.is_canceled or agency.is_canceled
            or sub.billing_mode != BillingMode.AGENCY):
        raise LinkRevoked()
    if now >= request.expires_at:
        raise tokens.LinkExpired()
    return OpenLink(request, sub, agency)


@dataclass(frozen=True)
class Payment:
    charge: Charge
    switched: bool  # the sub-account now pays from its own balance
    # The processor asks the payer to authenticate (3-D Secure): the client secret the
    # page's processor script needs (handed to the browser, never stored or logged).
    action: str = ""


def pay(session: Session, gateway: PaymentGateway, settings: LinkSettings, token: str,
        form, now: datetime | None = None) -> Payment:
    """Check the card and the amount, charge it once, and on success switch the sub-account
    to customer billing in the payment's transaction. Commits (the charge is on record
    before the gateway is called). The form's other fields (an account or agency id) are
    never read."""
    now = now or clock_now()
    link = open_link(session, settings, token, now)
    request = link.request
    errors = {}
    try:
        cents = parse_cents(form.get("amount"), "amount", minimum=request.amount_cents,
                            maximum=rules.MAX_CHARGE_CENTS, label="The payment")
    except ValidationFailed as e:
        errors.update(e.errors)
        if e.errors.get("amount", "").startswith("The payment must be at least"):
            errors["amount"] = (f"The payment must be at least {dollars(request.amount_cents)}"
                                f", the starting balance {link.agency.name} asked for.")
    # The link was read: end that read (its connection goes back to the pool) before the
    # processor is asked about the card.
    session.commit()
    method = None
    try:
        method = card_entry.entered_card(gateway, form)
    except ValidationFailed as e:
        errors.update(e.errors)
    if errors:
        raise ValidationFailed(errors)
    key = f"billing-link:{request.link_id}:{request.failed_attempts}"
    charge = charges.by_key(session, key)
    if charge is None:
        begin_write(session)
        customer = card_entry.customer_for(session, gateway, link.sub)
        charge = _record(session, link, method, customer, card_entry.gateway_name(gateway),
                         cents, key, now)
    session.commit()
    # Settled in the charge's own transaction: _paid (switch, or refund if the request can't
    # be honoured any more) or _declined. A card that asks for authentication (3-D Secure)
    # leaves it pending: the page shows the processor's challenge, then confirm() settles.
    charge, action = card_entry.charge_on_session(session, gateway, charge, now)
    session.refresh(request)
    return Payment(charge, request.status == RequestStatus.PAID, action)


def confirm(session: Session, gateway: PaymentGateway, settings: LinkSettings, token: str,
            now: datetime | None = None) -> Payment | None:
    """Back from the processor's challenge (3-D Secure): the pending charge of this link's
    current attempt, settled from the processor's answer (completed → paid and switched;
    failed → declined, the next attempt gets a new key). None when there is nothing waiting
    (the form is shown again). The browser sends nothing but the link."""
    now = now or clock_now()
    link = open_link(session, settings, token, now)
    request = link.request
    charge = charges.by_key(session, f"billing-link:{request.link_id}:{request.failed_attempts}")
    if charge is None or not charge.gateway_reference:
        return None
    charge, action = card_entry.confirm_on_session(session, gateway, charge, now)
    session.refresh(request)
    return Payment(charge, request.status == RequestStatus.PAID, action)


def _record(session: Session, link: OpenLink, card: SavedMethod, customer: str,
            gateway: str, cents: int, key: str, now: datetime) -> Charge:
    """The card (not yet Primary: nothing changes on the account until the payment
    succeeds) and the pending charge, together; a twin submit finds the charge by its key."""
    begin_write(session)
    existing = charges.by_key(session, key)
    if existing is not None:
        return existing
    try:
        with session.begin_nested():
            method = PaymentMethod(account_id=link.sub.id, kind=MethodKind.CARD,
                                   brand=card.brand, last4=card.last4, holder=card.holder,
                                   token=card.reference, customer_ref=customer,
                                   gateway=gateway, exp_month=card.exp_month,
                                   exp_year=card.exp_year, role=MethodRole.OTHER,
                                   created_at=now)
            session.add(method)
            session.flush()
            charge = Charge(account_id=link.sub.id, method_id=method.id,
                            purpose=ChargePurpose.OPENING_BALANCE, amount_cents=cents,
                            idempotency_key=key, status=ChargeStatus.PENDING, attempts=0,
                            description=f"Opening balance of {link.sub.name} (moving off "
                                        f"{link.agency.name}'s billing)", created_at=now)
            session.add(charge)
            session.flush()
    except IntegrityError:
        existing = charges.by_key(session, key)
        if existing is None:
            raise
        return existing
    return charge


def _paid(session: Session, charge: Charge, now: datetime) -> None:
    """A billing-link payment succeeded (charges.settle calls this in the settlement's
    transaction, with the sub-account and its agency locked: from the page, or from the jobs
    when the processor's answer came late). The customer is owed what they paid for: the
    switch to customer billing, if the sub-account is still open under the same agency and
    no newer link was sent (a request canceled meanwhile is still honoured: the customer paid
    while the link worked); otherwise their money back. Either way they get a receipt."""
    request = _request_of(session, charge)
    sub = session.get(Account, request.sub_account_id)  # read afresh under the lock
    agency = session.scalars(select(Account).where(Account.id == request.agency_id)
                             .execution_options(populate_existing=True)).one()
    newer = session.scalar(select(BillingRequest.id).where(
        BillingRequest.sub_account_id == sub.id, BillingRequest.id > request.id).limit(1))
    refusal = _why_not_honoured(request, sub, agency, newer is not None)
    if refusal is None:
        _switch(session, request, sub, agency, charge, now)
    else:
        _refund(session, request, sub, agency, charge, refusal, now)


def _request_of(session: Session, charge: Charge) -> BillingRequest:
    link_id = charge.idempotency_key.split(":")[1]  # "billing-link:<link_id>:<attempt>"
    return session.scalars(select(BillingRequest).where(BillingRequest.link_id == link_id)
                           .execution_options(populate_existing=True)).one()


def _why_not_honoured(request: BillingRequest, sub: Account, agency: Account,
                      newer: bool) -> str | None:
    """Why a paid request can no longer switch its sub-account (the refund's reason, as the
    customer reads it), or None."""
    if request.status == RequestStatus.REPLACED or newer:
        return f"{agency.name} sent a newer billing link"
    if sub.is_canceled:
        return f"{sub.name} was closed"
    if agency.is_canceled:
        return f"{agency.name} was canceled"
    if sub.parent_id != agency.id:
        return f"{sub.name} is no longer managed by {agency.name}"
    if sub.billing_mode != BillingMode.AGENCY:
        return f"{sub.name} already pays from its own balance"
    if request.status not in (RequestStatus.PENDING, RequestStatus.CANCELED):
        return "the billing request was already paid"
    return None


def _switch(session: Session, request: BillingRequest, sub: Account, agency: Account,
            charge: Charge, now: datetime) -> None:
    """Use the link up, switch billing to customer, credit the payment as the opening
    balance, make the card Primary, tell the agency and the customer."""
    switched = session.execute(
        update(Account).where(Account.id == sub.id, Account.billing_mode == BillingMode.AGENCY,
                              Account.parent_id == agency.id,
                              Account.status != AccountStatus.CANCELED)
        .values(billing_mode=BillingMode.CUSTOMER, updated_at=now)).rowcount
    consumed = session.execute(
        update(BillingRequest).where(
            BillingRequest.id == request.id,
            BillingRequest.status.in_((RequestStatus.PENDING, RequestStatus.CANCELED)))
        .values(status=RequestStatus.PAID, closed_at=now, charge_id=charge.id)).rowcount
    if switched != 1 or consumed != 1:  # checked under the lock just now: can't happen
        raise RuntimeError(f"billing request {request.id}: the switch was not exactly once")
    session.refresh(sub)
    charges.credit(session, charge, now)  # the sub-account pays for itself now: its ledger
    primary = session.scalar(select(PaymentMethod).where(
        PaymentMethod.account_id == sub.id, PaymentMethod.removed_at.is_(None),
        PaymentMethod.role == MethodRole.PRIMARY))
    if primary is None:
        session.execute(update(PaymentMethod).where(PaymentMethod.id == charge.method_id)
                        .values(role=MethodRole.PRIMARY))
    session.refresh(request)
    record(session, agency, EventKind.BILLING_MODE_CHANGED, None, now, account=sub.name,
           account_id=sub.id, billing="customer", paid_cents=charge.amount_cents,
           email=request.email)
    webhooks.billing_link_paid(session, sub, request, charge, now)  # issue 18
    # The customer who paid becomes the sub-account's billing user: invited (Settings →
    # Users' invitation, billing role) in this transaction; the receipt and the thank-you
    # page carry the link.
    invitation = people.invite_payer(session, sub, request.email, request.created_by_id, now)
    notices.link_switched(session, agency, sub, request, charge)
    notices.link_receipt(session, agency, sub, request, charge, invitation=invitation)
    notices.receipt(session, charge)


def _refund(session: Session, request: BillingRequest, sub: Account, agency: Account,
            charge: Charge, reason: str, now: datetime) -> None:
    """The payment can't be honoured: it is credited to no balance, the card is not kept,
    the request (if still pending) is closed, and the money goes back through the processor
    (refunds.start; charges.attempt asks the processor right after this transaction, the
    jobs retry). The customer gets the receipt of what they paid, then the refund's notice;
    the agency's billing-email recipients are told by the refund's notice."""
    from portal.services import refunds

    session.execute(update(PaymentMethod).where(PaymentMethod.id == charge.method_id)
                    .values(removed_at=now, role=MethodRole.OTHER))
    session.execute(update(BillingRequest).where(
        BillingRequest.id == request.id, BillingRequest.status == RequestStatus.PENDING)
        .values(status=RequestStatus.CANCELED, closed_at=now))
    session.execute(update(BillingRequest).where(BillingRequest.id == request.id)
                    .values(charge_id=charge.id))
    session.refresh(request)
    refunds.start(session, charge, reason, notify_email=request.email, now=now)
    notices.link_receipt(session, agency, sub, request, charge, refunding=reason)


def _declined(session: Session, charge: Charge, now: datetime) -> None:
    """A billing-link payment was declined (from the page, or from the jobs): nothing
    changes on the account, the card is removed again, and the next attempt gets a new
    key."""
    request = _request_of(session, charge)
    session.execute(update(PaymentMethod).where(PaymentMethod.id == charge.method_id,
                                                PaymentMethod.role == MethodRole.OTHER)
                    .values(removed_at=now))
    session.execute(update(BillingRequest).where(
        BillingRequest.id == request.id, BillingRequest.status == RequestStatus.PENDING,
        BillingRequest.failed_attempts == int(charge.idempotency_key.rsplit(":", 1)[1]))
        .values(failed_attempts=BillingRequest.failed_attempts + 1))


# --------------------------------------------------------------- after paying

@dataclass(frozen=True)
class Paid:
    """A billing-link payment as its thank-you page and receipt show it (read only: opening
    them again changes and charges nothing)."""

    request: BillingRequest
    charge: Charge
    sub: Account
    agency: Account
    settings: BillingSettings  # the sub-account's billing settings now

    @property
    def switched(self) -> bool:
        """This payment took the sub-account off agency billing."""
        return (self.request.status == RequestStatus.PAID
                and self.request.charge_id == self.charge.id)


@dataclass(frozen=True)
class PayerAccess:
    """How the customer who paid reaches the sub-account's Billing Settings now (the
    thank-you page says it): `state` is
      "invited"   a pending invitation (people.invite_payer): `token` is its link's (signed
                  afresh: the page links /invitations/<token> on its own host); `has_user`
                  when the email already has a sign-in (the "sign in to accept" kind);
      "accepted"  they accepted it: they sign in;
      "member"    they already reached the account when they paid (no invitation);
      "none"      the invitation was revoked, replaced or expired: ask the agency."""

    state: str
    email: str
    invitation: object | None = None  # Invitation
    token: str | None = None
    has_user: bool = False


def invitation_settings(settings: LinkSettings) -> people.LinkSettings:
    """The invitations' link settings from the billing links' (the same keys and external
    address, as Settings → Users signs them; the invitations' own salt and lifetime)."""
    return people.LinkSettings(keys=settings.keys, ttl=rules.INVITATION_TTL,
                               base_url=settings.base_url)


def payer_access(session: Session, settings: LinkSettings, paid: Paid,
                 now: datetime | None = None) -> PayerAccess:
    """Read only (the thank-you page is a GET): the payer's invitation, signed afresh."""
    from portal.services import auth

    now = now or clock_now()
    email = auth.normalize_email(paid.request.email)
    invitation = people.payer_invitation(session, paid.sub, email)
    if invitation is not None and invitation.created_at >= paid.charge.created_at:
        if invitation.status == InvitationStatus.ACCEPTED:
            return PayerAccess("accepted", email, invitation)
        if invitation.is_pending and now < invitation.expires_at and not paid.sub.is_canceled:
            user = session.scalar(select(User).where(User.email == email))
            token = people.sign(settings.keys, invitation.link_id)
            return PayerAccess("invited", email, invitation, token,
                               user is not None and auth.has_password(user))
        return PayerAccess("none", email, invitation)
    if people.reaches(session, paid.sub, email):
        return PayerAccess("member", email)
    return PayerAccess("none", email)


def receipt_token(settings: LinkSettings, request: BillingRequest, charge: Charge) -> str:
    return tokens.sign_receipt(settings.keys, request.link_id, charge.id)


def paid(session: Session, settings: LinkSettings, token: str,
         now: datetime | None = None) -> Paid:
    """The payment behind a receipt token (see tokens.sign_receipt), or LinkTampered /
    LinkExpired (rules.BILLING_LINK_RECEIPT_TTL after the payment). The token names the
    charge and its link: a charge of another link is refused as tampered."""
    from portal.services import billing

    now = now or clock_now()
    link_id, charge_id = tokens.verify_receipt(settings.keys, token)
    request = session.scalar(select(BillingRequest).where(BillingRequest.link_id == link_id))
    charge = session.get(Charge, charge_id)
    if (request is None or charge is None
            or not charge.idempotency_key.startswith(f"billing-link:{link_id}:")
            or charge.account_id != request.sub_account_id):
        raise tokens.LinkTampered()
    if now >= charge.created_at + rules.BILLING_LINK_RECEIPT_TTL:
        raise tokens.LinkExpired()
    sub = session.get(Account, request.sub_account_id)
    agency = session.get(Account, request.agency_id)
    return Paid(request, charge, sub, agency, billing.settings_for(session, sub))


def paid_by_link(session: Session, settings: LinkSettings, token: str) -> str | None:
    """The receipt token of the payment that used this link up (the used-link page points to
    its thank-you page), or None."""
    try:
        link_id = tokens.verify(settings.keys, token, settings.ttl + timedelta(days=1))
    except tokens.LinkError:
        return None
    request = session.scalar(select(BillingRequest).where(BillingRequest.link_id == link_id))
    if request is None or request.status != RequestStatus.PAID or request.charge_id is None:
        return None
    return tokens.sign_receipt(settings.keys, request.link_id, request.charge_id)


# --------------------------------------------------------------- rate limiting

def throttled(session: Session, address: str, limit: int, window: timedelta,
              now: datetime | None = None) -> bool:
    """Count this hit; True when the address made more than `limit` in the window."""
    now = now or clock_now()
    begin_write(session)
    session.add(LinkHit(address=address[:64], at=now))
    session.flush()
    hits = session.scalar(select(func.count()).select_from(LinkHit).where(
        LinkHit.address == address[:64], LinkHit.at > now - window))
    return hits > limit


def revoke_for_closed(session: Session, account: Account, now: datetime) -> None:
    """A closed sub-account's (or canceled agency's) pending requests stop for good: they
    don't come back if it is reactivated."""
    from sqlalchemy import or_

    session.execute(update(BillingRequest).where(
        or_(BillingRequest.sub_account_id == account.id, BillingRequest.agency_id == account.id),
        BillingRequest.status == RequestStatus.PENDING)
        .values(status=RequestStatus.CANCELED, closed_at=now))


def wire() -> None:
    """Hook the billing links into the services (billing_links.init_app, from create_app):
    an opening-balance charge settles here (_paid, _declined), and closing an account
    revokes its pending requests. Idempotent: every app made in one process calls it."""
    charges.ON_SUCCESS[ChargePurpose.OPENING_BALANCE] = _paid
    charges.ON_FAILURE[ChargePurpose.OPENING_BALANCE] = _declined
    if revoke_for_closed not in lifecycle.ON_CLOSE:
        lifecycle.ON_CLOSE.append(revoke_for_closed)


def purge_hits(session: Session, older_than: timedelta = timedelta(days=1),
               now: datetime | None = None) -> int:
    """Rate-limit records past any window (the jobs run this)."""
    from sqlalchemy import delete

    now = now or clock_now()
    return session.execute(delete(LinkHit).where(LinkHit.at < now - older_than)).rowcount
