"""Remove from Agency Billing (a billing request and its emailed one-time link), the
customer's payment through the link, and Add to Agency Billing.

The link works once: the payment's transaction consumes the request with a conditional
UPDATE (pending → paid) that must change exactly one row, and the gateway charge carries a
key derived from the link id, so a double submit, a retry after a timeout or two tabs at
once make one charge. Opening the link (GET) never consumes it.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing_links import tokens
from billing_links.models import BillingRequest, LinkHit, RequestStatus
from portal import rules
from portal.clock import now as clock_now
from portal.errors import NotAllowed, NotFound, ValidationFailed
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
    LedgerKind,
    MethodKind,
    MethodRole,
    PaymentMethod,
    User,
)
from portal.services import cards, charges, ledger, lifecycle
from portal.services.gateway import PaymentGateway
from portal.services.lifecycle import record
from portal.services.money import dollars, parse_cents, plain
from portal.transactions import begin_write

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
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
    email = (email or "").strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        errors["email"] = "Enter the customer's email address, like name@example.com."
    try:
        cents = parse_cents(amount, "amount", minimum=rules.MIN_STARTING_BALANCE_CENTS,
                            maximum=rules.MAX_CHARGE_CENTS, label="The starting balance")
    except ValidationFailed as e:
        errors.update(e.errors)
    message = (message or "").strip()
    if len(message) > MAX_MESSAGE:
        errors["message"] = f"Keep the message to {MAX_MESSAGE:,} characters."
    if errors:
        raise ValidationFailed(errors)
    begin_write(session)
    _close_pending(session, sub, RequestStatus.REPLACED, now)
    request = BillingRequest(link_id=tokens.new_link_id(), agency_id=agency.id,
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


def add_to_agency_billing(session: Session, agency: Account, sub: Account, actor: User,
                          now: datetime | None = None) -> int:
    """Its payment methods and recharge settings are removed, its balance moves to the
    agency (a pair of entries naming each other), billing becomes agency. Returns the cents
    moved."""
    now = now or clock_now()
    if agency.is_canceled or sub.is_canceled:
        raise NotAllowed(f"{sub.name if sub.is_canceled else agency.name} is canceled.")
    begin_write(session)
    switched = session.execute(
        update(Account).where(Account.id == sub.id, Account.billing_mode == BillingMode.CUSTOMER,
                              Account.parent_id == agency.id)
        .values(billing_mode=BillingMode.AGENCY, updated_at=now)).rowcount
    if switched != 1:
        raise NotAllowed(f"{sub.name} is already on agency billing.")
    session.execute(update(PaymentMethod).where(
        PaymentMethod.account_id == sub.id, PaymentMethod.removed_at.is_(None))
        .values(removed_at=now, role=MethodRole.OTHER))
    settings = session.get(BillingSettings, sub.id)
    if settings is not None:
        settings.recharge_threshold_cents = settings.recharge_amount_cents = None
        settings.direct_charge = False
    _close_pending(session, sub, RequestStatus.CANCELED, now)
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
    try:
        card = cards.check_card(form.get("number", ""), form.get("exp_month", ""),
                                form.get("exp_year", ""), form.get("cvc", ""),
                                form.get("holder", ""), now.date())
    except ValidationFailed as e:
        errors.update(e.errors)
    if errors:
        raise ValidationFailed(errors)
    key = f"billing-link:{request.link_id}:{request.failed_attempts}"
    charge = charges.by_key(session, key)
    if charge is None:
        token_ = gateway.tokenize_card(cards.digits(form.get("number", "")), card.exp_month,
                                       card.exp_year, form.get("cvc", "").strip(), card.holder)
        charge = _record(session, link, card, token_, cents, key, now)
    session.commit()
    request_id = request.id
    charge = charges.attempt(session, gateway, charge, now)  # success: _switch, same transaction
    if charge.status == ChargeStatus.FAILED:
        _declined(session, request_id, charge, now)
    session.refresh(request)
    return Payment(charge, request.status == RequestStatus.PAID)


def _record(session: Session, link: OpenLink, card, token: str, cents: int, key: str,
            now: datetime) -> Charge:
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
                                   token=token, exp_month=card.exp_month,
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


def _switch(session: Session, charge: Charge, now: datetime) -> None:
    """In the payment's transaction (charges.settle calls it, also when the jobs settle a
    charge that timed out): use up the link (exactly one row), make the card Primary, switch
    billing to customer, tell the agency."""
    link_id = charge.idempotency_key.split(":")[1]  # "billing-link:<link_id>:<attempt>"
    request_id = session.scalar(select(BillingRequest.id).where(
        BillingRequest.link_id == link_id))
    request = session.get(BillingRequest, request_id)
    if request.status != RequestStatus.PENDING:
        # Canceled or replaced while the card was being charged: the payment stays on the
        # sub-account's balance (credited by the charge); the agency can send a new link.
        return
    switched = session.execute(
        update(Account).where(Account.id == request.sub_account_id,
                              Account.billing_mode == BillingMode.AGENCY,
                              Account.status != AccountStatus.CANCELED)
        .values(billing_mode=BillingMode.CUSTOMER, updated_at=now)).rowcount
    # Use the link up (exactly one row) only with the switch; a sub-account closed (or
    # switched) meanwhile revokes it instead, and the payment stays on its balance.
    consumed = session.execute(
        update(BillingRequest).where(BillingRequest.id == request_id,
                                     BillingRequest.status == RequestStatus.PENDING)
        .values(status=RequestStatus.PAID if switched == 1 else RequestStatus.CANCELED,
                closed_at=now, charge_id=charge.id)).rowcount
    if consumed != 1 or switched != 1:
        if consumed != 1 and switched == 1:  # consumed by someone else: undo our switch
            raise RuntimeError("billing request consumed twice")
        return
    primary = session.scalar(select(PaymentMethod).where(
        PaymentMethod.account_id == request.sub_account_id, PaymentMethod.removed_at.is_(None),
        PaymentMethod.role == MethodRole.PRIMARY))
    if primary is None:
        session.execute(update(PaymentMethod).where(PaymentMethod.id == charge.method_id)
                        .values(role=MethodRole.PRIMARY))
    sub = session.get(Account, request.sub_account_id)
    agency = session.get(Account, request.agency_id)
    session.refresh(sub)
    record(session, agency, EventKind.BILLING_MODE_CHANGED, None, now, account=sub.name,
           account_id=sub.id, billing="customer", paid_cents=charge.amount_cents,
           email=request.email)
    from billing_links import emails

    emails.switched(session, agency, sub, request, charge)


def _declined(session: Session, request_id: int, charge: Charge, now: datetime) -> None:
    """Nothing changes on the account: the card is removed again, and the next attempt
    gets a new key."""
    begin_write(session)
    session.execute(update(PaymentMethod).where(PaymentMethod.id == charge.method_id,
                                                PaymentMethod.role == MethodRole.OTHER)
                    .values(removed_at=now))
    session.execute(update(BillingRequest).where(
        BillingRequest.id == request_id, BillingRequest.status == RequestStatus.PENDING,
        BillingRequest.failed_attempts == int(charge.idempotency_key.rsplit(":", 1)[1]))
        .values(failed_attempts=BillingRequest.failed_attempts + 1))
    session.commit()


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


charges.AFTER_SUCCESS[ChargePurpose.OPENING_BALANCE] = _switch
lifecycle.ON_CLOSE.append(revoke_for_closed)


def purge_hits(session: Session, older_than: timedelta = timedelta(days=1),
               now: datetime | None = None) -> int:
    """Rate-limit records past any window (the jobs run this)."""
    from sqlalchemy import delete

    now = now or clock_now()
    return session.execute(delete(LinkHit).where(LinkHit.at < now - older_than)).rowcount
