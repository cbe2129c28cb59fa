"""3-D Secure for off-session recharges (issue 16): the link that lets the card holder
authenticate what their bank asked for while nobody was there.

An auto recharge runs with nobody present. When the card's bank asks its holder to confirm
it (failure code authentication_required), the recharge fails over to the Backup as a
decline does (charges._after_recharge), and the billing recipients get an email
(notices.authentication_needed, queued with the decline handling) carrying a signed
one-time link to /authenticate/<token>. The link names only a random id (its own salt,
"authenticate", the billing links' keys); the AuthenticationRequest row says the rest.

- Issued once per off-session charge that asked (`issue`); a newer link for the same card
  revokes the older; removing the card, or closing the account, stops it; it expires after
  rules.SCA_LINK_TTL (7 days).
- Used (`use`): "is a recharge still due?" is decided then, under the payer's lock, never
  when the email was sent. The link is consumed in that transaction (a conditional update
  pending → used: a second tab gets LinkUsed, no second charge). Due → the recharge due now,
  on this card, on-session (key "sca:<link>:<attempt>", purpose recharge: at most one
  recharge is pending per account, so it can't run beside the jobs' own): the bank's
  challenge appears on the page. Nothing due (the Backup paid, the balance is fine, or a
  recharge is already in flight) → the card is confirmed with its bank by a setup
  (gateway.save_method), so the next recharge can use it, and nothing is charged.
- A failed or abandoned challenge frees the link for another try (attempts + 1, a new key).

No Flask here: the views (authenticate_views.py) parse the request and render.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing_links import card_entry, tokens
from billing_links.models import AuthenticationRequest, AuthenticationStatus
from billing_links.service import LinkRevoked, LinkSettings, LinkUsed
from portal import rules, signed_links
from portal.clock import now as clock_now
from portal.models import Account, Charge, ChargePurpose, ChargeStatus, PaymentMethod
from portal.services import charges, ledger, processor
from portal.services.gateway import ChargeResult, GatewayTimeout
from portal.services.money import dollars
from portal.transactions import begin_write, retry_when_locked

SALT = "authenticate"
KEY_PREFIX = processor.HOLDER_PRESENT_KEY  # the on-session recharge: "sca:<link>:<attempt>"
SETUP_PREFIX = "sca-setup:"  # the card's setup when nothing is due: "sca-setup:<link>:<n>"
TTL = getattr(rules, "SCA_LINK_TTL", timedelta(days=7))
ASKED = "authentication_required"  # the processor's code for "the bank asks its holder"

PENDING, USED, REVOKED = (AuthenticationStatus.PENDING, AuthenticationStatus.USED,
                          AuthenticationStatus.REVOKED)
NOT_CONFIRMED = ("Your bank didn't confirm it, so nothing was charged. You can try again "
                 "with this link.")


def sign(keys: list[str], link_id: str) -> str:
    return signed_links.sign(keys, SALT, link_id)


def verify(keys: list[str], token: str) -> str:
    """The link id, or LinkTampered / LinkExpired (another link kind's token is tampered
    here: another salt)."""
    return signed_links.verify(keys, SALT, token, TTL + timedelta(days=1),
                               expired=tokens.LinkExpired, tampered=tokens.LinkTampered)


def url_for_token(settings: LinkSettings, token: str) -> str:
    return f"{settings.base_url.rstrip('/')}/authenticate/{token}"


def link_url(settings: LinkSettings, request: AuthenticationRequest) -> str:
    return url_for_token(settings, sign(settings.keys, request.link_id))


# --------------------------------------------------------------- issuing

def asks_authentication(charge: Charge) -> bool:
    """An off-session recharge the card's bank refused until its holder authenticates."""
    return (charge.is_failed and charge.failure_code == ASKED
            and charge.purpose == ChargePurpose.RECHARGE
            and not charge.idempotency_key.startswith(KEY_PREFIX))


def issue(session: Session, charge: Charge, now: datetime | None = None
          ) -> AuthenticationRequest:
    """The link for an off-session charge that asked to authenticate: made once per charge
    (the same row on a second call), revoking the older live links of the same card. In the
    caller's transaction (the decline's)."""
    existing = session.scalar(select(AuthenticationRequest).where(
        AuthenticationRequest.charge_id == charge.id))
    if existing is not None:
        return existing
    now = now or clock_now()
    begin_write(session)
    session.execute(update(AuthenticationRequest).where(
        AuthenticationRequest.method_id == charge.method_id,
        AuthenticationRequest.status == PENDING).values(status=REVOKED))
    request = AuthenticationRequest(
        link_id=signed_links.new_link_id(), account_id=charge.account_id, charge_id=charge.id,
        method_id=charge.method_id, status=PENDING, attempts=0, setup_reference="",
        last_error="", created_at=now, expires_at=now + TTL)
    session.add(request)
    session.flush()
    return request


# --------------------------------------------------------------- opening

@dataclass(frozen=True)
class Opened:
    """What the link's page shows: the account, the card, the recharge that asked, what
    the other card did about it, and (a preview, decided again at use) what is due now."""

    request: AuthenticationRequest
    account: Account
    method: PaymentMethod
    asked: Charge  # the off-session recharge the bank asked about
    other: Charge | None  # the other card's try of the same recharge (the Backup's)
    due: charges.RechargeDue | None  # what the balance calls for now (a preview)
    payment: Charge | None  # the charge made through the link (once used)

    @property
    def other_paid(self) -> bool:
        return self.other is not None and self.other.is_succeeded

    @property
    def other_role(self) -> str:
        """What the other card was for this recharge: the Backup (or the Primary, when the
        card that asked was the Backup)."""
        return "Primary" if self.asked.idempotency_key.endswith(charges.BACKUP) else "Backup"

    @property
    def confirmed(self) -> bool:
        return self.request.confirmed_at is not None


def _load(session: Session, settings: LinkSettings, token: str) -> AuthenticationRequest:
    link_id = verify(settings.keys, token)
    request = session.scalar(select(AuthenticationRequest).where(
        AuthenticationRequest.link_id == link_id)
        .execution_options(populate_existing=True))
    if request is None:
        raise tokens.LinkTampered()
    return request


def _revoked(session: Session, request: AuthenticationRequest) -> bool:
    if request.status == REVOKED:
        return True
    newer = session.scalar(select(AuthenticationRequest.id).where(
        AuthenticationRequest.method_id == request.method_id,
        AuthenticationRequest.id > request.id).limit(1))
    method = session.get(PaymentMethod, request.method_id)
    account = session.get(Account, request.account_id)
    return newer is not None or method.removed_at is not None or account.is_canceled


def _opened(session: Session, request: AuthenticationRequest) -> Opened:
    account = session.get(Account, request.account_id)
    asked = session.get(Charge, request.charge_id)
    key = asked.idempotency_key
    other = charges.by_key(session, key.removesuffix(charges.BACKUP)
                           if key.endswith(charges.BACKUP) else key + charges.BACKUP)
    payment = (session.get(Charge, request.payment_charge_id)
               if request.payment_charge_id else None)
    due = charges.recharge_due(session, account) if request.status == PENDING else None
    return Opened(request, account, session.get(PaymentMethod, request.method_id), asked,
                  other, due, payment)


def open_link(session: Session, settings: LinkSettings, token: str,
              now: datetime | None = None) -> Opened:
    """The link's request if it can still be used (opening never uses it up): LinkTampered,
    LinkUsed, LinkRevoked or LinkExpired otherwise."""
    now = now or clock_now()
    request = _load(session, settings, token)
    if request.status == USED:
        raise LinkUsed()
    if _revoked(session, request):
        raise LinkRevoked()
    if now >= request.expires_at:
        raise tokens.LinkExpired()
    return _opened(session, request)


def outcome(session: Session, settings: LinkSettings, token: str) -> Opened | None:
    """A used link's page: what it did (paid, confirmed, or waiting for the bank's answer);
    None for a link not used."""
    try:
        request = _load(session, settings, token)
    except tokens.LinkError:
        return None
    return _opened(session, request) if request.status == USED else None


# --------------------------------------------------------------- using

def use(session: Session, gateway, settings: LinkSettings, token: str,
        now: datetime | None = None) -> tuple[Opened, str]:
    """The card holder pressed the button: use the link up and do what is due now, decided
    under the payer's lock. Returns (what was done, the processor's client secret when the
    bank's challenge must run on the page, else ""). Commits."""
    now = now or clock_now()
    request = open_link(session, settings, token, now).request
    attempt = request.attempts
    session.commit()  # read: the lock is taken afresh below

    ledger.lock_payer(session, request.account_id)
    consumed = session.execute(update(AuthenticationRequest).where(
        AuthenticationRequest.id == request.id, AuthenticationRequest.status == PENDING,
        AuthenticationRequest.attempts == attempt)
        .values(status=USED, used_at=now, last_error="")).rowcount
    if consumed != 1:  # another tab used it first
        session.rollback()
        raise LinkUsed()
    account = session.get(Account, request.account_id)
    method = session.get(PaymentMethod, request.method_id)
    due = charges.recharge_due(session, account)
    charge = None
    if due is not None:
        try:
            charge = charges.start(
                session, account, method, ChargePurpose.RECHARGE, due.amount_cents,
                f"{KEY_PREFIX}{request.link_id}:{attempt}",
                f"Auto recharge of {account.name} to {dollars(due.target_cents)}, "
                "confirmed with the card's bank", now=now)
        except IntegrityError:  # a recharge started meanwhile: it is on its way
            charge = None
        if charge is not None:
            session.execute(update(AuthenticationRequest).where(
                AuthenticationRequest.id == request.id).values(payment_charge_id=charge.id))
    session.commit()
    if charge is not None:
        secret = _charge(session, gateway, charge, method, now)
    else:
        secret = _setup(session, gateway, request, method, attempt, now)
    session.refresh(request)
    return _opened(session, request), secret


def _charge(session: Session, gateway, charge: Charge, method: PaymentMethod,
            now: datetime) -> str:
    """The recharge on-session (the holder is here: the bank may challenge), saved for
    off-session use again (setup_future_usage); the one settle path (charges.resolve).
    The request is processor.request_for's (on-session by the key's prefix), so the jobs'
    retry of this key asks the same; charges.attempt is every charge's path."""
    charge = charges.attempt(session, gateway, charge, now)
    action = getattr(charge, "action", None)
    return action.client_secret if action is not None else ""


def _setup(session: Session, gateway, request: AuthenticationRequest,
           method: PaymentMethod, attempt: int, now: datetime) -> str:
    """Nothing is due: confirm the card with its bank (a setup, $0) for the next recharges."""
    customer = method.customer_ref or card_entry.customer_for(
        session, gateway, session.get(Account, method.account_id))
    session.commit()
    try:
        answer = gateway.save_method(customer, method.token, "card",
                                     f"{SETUP_PREFIX}{request.link_id}:{attempt}")
    except GatewayTimeout:
        answer = ChargeResult(False, "", "processing_error",
                              "The payment processor didn't answer. Try again in a moment.",
                              status="failed")
    _setup_answer(session, request, answer, now)
    return answer.client_secret if answer.outcome == "requires_action" else ""


def _setup_answer(session: Session, request: AuthenticationRequest, answer,
                  now: datetime) -> None:
    def record() -> None:
        begin_write(session)
        if answer.outcome == "succeeded":
            values = {"confirmed_at": now, "setup_reference": answer.reference[:64]}
        elif answer.outcome == "requires_action":
            values = {"setup_reference": answer.reference[:64]}
        else:
            session.execute(_freed(request.id, request.attempts, answer.message))
            session.commit()
            return
        session.execute(update(AuthenticationRequest).where(
            AuthenticationRequest.id == request.id).values(**values))
        session.commit()

    retry_when_locked(session, record, f"authentication request {request.id}: setup")
    session.refresh(request)


def _freed(request_id: int, attempt: int, message: str):
    """A failed or abandoned attempt gives the link back for another (a new key)."""
    return (update(AuthenticationRequest).where(
        AuthenticationRequest.id == request_id, AuthenticationRequest.status == USED,
        AuthenticationRequest.attempts == attempt)
        .values(status=PENDING, attempts=attempt + 1, used_at=None, payment_charge_id=None,
                setup_reference="", last_error=(message or NOT_CONFIRMED)[:200]))


def confirm(session: Session, gateway, settings: LinkSettings, token: str,
            now: datetime | None = None) -> Opened | None:
    """Back from the bank's challenge: the answer read from the processor (never from the
    browser). A challenge still waiting was left by the holder: canceled at the processor
    (the link is free for another try). None for a link not in use."""
    now = now or clock_now()
    request = _load(session, settings, token)
    if request.status != USED:
        return None
    if request.payment_charge_id:
        charge = session.get(Charge, request.payment_charge_id)
        if charge.status == ChargeStatus.PENDING and charge.gateway_reference:
            try:
                result = gateway.payment_status(charge.gateway_reference)
                if result.outcome == "requires_action":  # the holder closed the challenge
                    result = gateway.cancel_payment(charge.gateway_reference)
                    if result.outcome != "succeeded":
                        result = ChargeResult(False, result.reference,
                                              "authentication_abandoned", NOT_CONFIRMED,
                                              status="failed")
            except GatewayTimeout:
                result = None
            if result is not None:
                charges.resolve(session, gateway, charge, result, now)
    elif request.setup_reference and request.confirmed_at is None:
        try:
            answer = gateway.setup_status(request.setup_reference)
        except GatewayTimeout:
            answer = None
        if answer is not None:
            if answer.outcome == "requires_action":  # left: free the link again
                answer = ChargeResult(False, answer.reference, "authentication_abandoned",
                                      NOT_CONFIRMED, status="failed")
            _setup_answer(session, request, answer, now)
    session.refresh(request)
    return _opened(session, request)


# --------------------------------------------------------------- settlement hook

def _on_recharge_failure(default):
    def failed(session: Session, charge: Charge, now: datetime) -> None:
        link_id, _, attempt = charge.idempotency_key.removeprefix(KEY_PREFIX).partition(":")
        if charge.idempotency_key.startswith(KEY_PREFIX) and attempt.isdigit():
            # The link's own charge declined or its challenge failed: the link is free
            # again (in the settlement's transaction). Not its Backup try (a ":backup"
            # key, when the jobs' retry settled it and _after_recharge went on).
            request_id = session.scalar(select(AuthenticationRequest.id).where(
                AuthenticationRequest.link_id == link_id))
            if request_id is not None:
                message = charge.failure_message
                if charge.failure_code == "authentication_failed":
                    message = NOT_CONFIRMED
                session.execute(_freed(request_id, int(attempt), message))
        if default is not None:
            default(session, charge, now)
    failed.sca_links = True
    return failed


def wire() -> None:
    """Hook the links into the charges' settlement (idempotent): a failed link charge frees
    its link for another try."""
    failure = charges.ON_FAILURE.get(ChargePurpose.RECHARGE)
    if not getattr(failure, "sca_links", False):
        charges.ON_FAILURE[ChargePurpose.RECHARGE] = _on_recharge_failure(failure)
