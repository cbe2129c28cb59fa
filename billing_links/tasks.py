"""Single-task links (issue 15): for a customer-billed sub-account the agency asks its client
to update the card ("Ask the client to update their card") or to pay an amount ("Ask the
client to pay"). Each is a signed one-time link like the billing link (an itsdangerous
signature over a random link id, under its own salt; the keys and the lifetime are the
billing links'), opening a public page that does only that task (Stripe's hosted
card-update and invoice pages are the model).

- A newer link of the same kind for the same sub-account replaces the older one; closing the
  sub-account (or canceling its agency) revokes them; moving it to agency billing makes them
  stop working (the task page checks it is still customer-billed).
- Update card: consumed in the transaction that saves the card (a conditional UPDATE
  pending → done that must change one row). The new card becomes Primary; the old Primary
  becomes the Backup when there is none, otherwise it stays on file (not Primary, not
  Backup). `card_outcome` says which, before and after.
- Pay: the amount the agency asked, charged once (the charge's key is derived from the
  link id and the declined attempts so far, as the billing link's), credited to the
  sub-account's balance by a ledger entry; the link is consumed in the charge's settlement
  transaction. The card it is paid with is not kept on the account.

No Flask here: the views (task_views.py) parse the request and commit.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from billing_links import card_entry, tokens
from billing_links.models import BillingRequest, TaskKind, TaskLink, TaskStatus
from billing_links.service import LinkRevoked, LinkSettings, LinkUsed
from portal import rules, signed_links
from portal.clock import now as clock_now
from portal.errors import NotAllowed, ValidationFailed
from portal.mail import notices
from portal.models import (
    Account,
    BillingMode,
    Charge,
    ChargePurpose,
    MethodKind,
    MethodRole,
    PaymentMethod,
    User,
)
from portal.services import charges
from portal.services.gateway import ChargeResult, PaymentGateway, SavedMethod
from portal.services.inputs import clean_email
from portal.services.money import parse_cents
from portal.transactions import begin_write

SALT = "task-link.v1"
DONE_SALT = "task-link-done.v1"
KEY_PREFIX = "task-link:"  # a payment's charge key: "task-link:<link_id>:<attempt>"
MIN_PAYMENT_CENTS = 100  # "Ask the client to pay": at least $1.00

LABELS = {TaskKind.CARD: "update their card", TaskKind.PAY: "pay"}


def url_for_token(settings: LinkSettings, token: str) -> str:
    return f"{settings.base_url.rstrip('/')}/task-link/{token}"


def sign(keys: list[str], link_id: str) -> str:
    return signed_links.sign(keys, SALT, link_id)


def verify(keys: list[str], token: str, max_age: timedelta) -> str:
    """The link id, or LinkTampered / LinkExpired (a billing link's token is tampered here:
    another salt)."""
    return signed_links.verify(keys, SALT, token, max_age,
                               expired=tokens.LinkExpired, tampered=tokens.LinkTampered)


def sign_done(keys: list[str], link: TaskLink, ref_id: int) -> str:
    """The token of the page after the task (and of a payment's receipt): the link id and
    the card or charge it made, under their own salt."""
    return signed_links.sign_pair(keys, DONE_SALT, link.link_id, ref_id)


def verify_done(keys: list[str], token: str) -> tuple[str, int]:
    return signed_links.verify_pair(keys, DONE_SALT, token, tampered=tokens.LinkTampered)


# --------------------------------------------------------------- the agency's side

def _check_customer_billed(agency: Account, sub: Account) -> None:
    if agency.is_canceled:
        raise NotAllowed(f"{agency.name} is canceled.")
    if sub.is_canceled:
        raise NotAllowed(f"{sub.name} is canceled: reactivate it first.")
    if sub.billing_mode != BillingMode.CUSTOMER:
        raise NotAllowed(f"{sub.name} is paid from {agency.name}'s balance: only a sub-account "
                         "that pays from its own balance has a card or payments to ask for.")


def last_customer_email(session: Session, sub: Account) -> str | None:
    """The customer named on the sub-account's last billing request (the default address)."""
    return session.scalar(select(BillingRequest.email).where(
        BillingRequest.sub_account_id == sub.id)
        .order_by(BillingRequest.created_at.desc(), BillingRequest.id.desc()).limit(1))


def pending_for(session: Session, sub: Account) -> dict[TaskKind, TaskLink]:
    """The sub-account's live task links, by kind (the billing dialog shows them)."""
    return {link.kind: link for link in session.scalars(select(TaskLink).where(
        TaskLink.sub_account_id == sub.id, TaskLink.status == TaskStatus.PENDING))}


def issue(session: Session, settings: LinkSettings, agency: Account, sub: Account,
          actor: User, kind: TaskKind, email: str, amount: str | None = None,
          now: datetime | None = None) -> tuple[TaskLink, str]:
    """A new link of `kind` for the sub-account (replacing a live one of the same kind) and
    its URL. ValidationFailed on a bad email or amount, NotAllowed when the sub-account is
    not customer-billed (nothing is written either way)."""
    now = now or clock_now()
    _check_customer_billed(agency, sub)
    errors = {}
    try:
        email = clean_email(email, "email",
                            "Enter the client's email address, like name@example.com.")
    except ValidationFailed as e:
        errors.update(e.errors)
    cents = None
    if kind == TaskKind.PAY:
        try:
            cents = parse_cents(amount, "amount", minimum=MIN_PAYMENT_CENTS,
                                maximum=rules.MAX_CHARGE_CENTS, label="The amount")
        except ValidationFailed as e:
            errors.update(e.errors)
    if errors:
        raise ValidationFailed(errors)
    begin_write(session)
    session.execute(update(TaskLink).where(
        TaskLink.sub_account_id == sub.id, TaskLink.kind == kind,
        TaskLink.status == TaskStatus.PENDING)
        .values(status=TaskStatus.REPLACED, closed_at=now))
    link = TaskLink(kind=kind, link_id=signed_links.new_link_id(), agency_id=agency.id,
                    sub_account_id=sub.id, email=email, amount_cents=cents,
                    status=TaskStatus.PENDING, failed_attempts=0, created_by_id=actor.id,
                    created_at=now, expires_at=now + settings.ttl)
    session.add(link)
    session.flush()
    url = url_for_token(settings, sign(settings.keys, link.link_id))
    notices.task_link(session, agency, sub, link, url)
    return link, url


def revoke_for_closed(session: Session, account: Account, now: datetime) -> None:
    """Closing a sub-account (or canceling an agency) stops its live task links for good."""
    session.execute(update(TaskLink).where(
        or_(TaskLink.sub_account_id == account.id, TaskLink.agency_id == account.id),
        TaskLink.status == TaskStatus.PENDING)
        .values(status=TaskStatus.CANCELED, closed_at=now))


# --------------------------------------------------------------- the client's side

@dataclass(frozen=True)
class OpenTask:
    link: TaskLink
    sub: Account
    agency: Account
    primary: PaymentMethod | None  # the sub-account's Primary now
    backup: PaymentMethod | None

    @property
    def card_outcome(self) -> str:
        """What saving a new card does to the cards on file (the page says it before)."""
        if self.primary is None:
            return "It becomes the Primary card: the one auto recharge and the plan fee charge."
        if self.backup is None:
            return (f"It becomes the Primary card. The current Primary, "
                    f"{self.primary.short_label}, becomes the Backup (charged only when the "
                    "Primary declines).")
        return (f"It becomes the Primary card. The current Primary, {self.primary.short_label}, "
                f"stays on file but is no longer charged; the Backup, "
                f"{self.backup.short_label}, stays the Backup.")


def _methods(session: Session, sub: Account) -> tuple[PaymentMethod | None,
                                                       PaymentMethod | None]:
    in_use = {m.role: m for m in session.scalars(select(PaymentMethod).where(
        PaymentMethod.account_id == sub.id, PaymentMethod.removed_at.is_(None),
        PaymentMethod.role.in_((MethodRole.PRIMARY, MethodRole.BACKUP))))}
    return in_use.get(MethodRole.PRIMARY), in_use.get(MethodRole.BACKUP)


def open_task(session: Session, settings: LinkSettings, token: str,
              now: datetime | None = None) -> OpenTask:
    """The task behind a token if it can still be done (opening never consumes it):
    LinkTampered, LinkExpired, LinkUsed or LinkRevoked otherwise."""
    now = now or clock_now()
    link_id = verify(settings.keys, token, settings.ttl + timedelta(days=1))
    link = session.scalar(select(TaskLink).where(TaskLink.link_id == link_id))
    if link is None:
        raise tokens.LinkTampered()
    if link.status == TaskStatus.DONE:
        raise LinkUsed()
    if link.status != TaskStatus.PENDING:
        raise LinkRevoked()
    sub = session.get(Account, link.sub_account_id)
    agency = session.get(Account, link.agency_id)
    if (sub.parent_id != agency.id or sub.is_canceled or agency.is_canceled
            or sub.billing_mode != BillingMode.CUSTOMER):
        raise LinkRevoked()
    if now >= link.expires_at:
        raise tokens.LinkExpired()
    return OpenTask(link, sub, agency, *_methods(session, sub))


def _save(session: Session, gateway: PaymentGateway, task: OpenTask, form) -> ChargeResult:
    """The card the processor's form gave, saved to the sub-account's processor customer (a
    $0 authorization: a card the processor refuses is refused here, with its reason). Its
    answer: succeeded with .method, or requires_action (3-D Secure: the page challenges)."""
    entered = card_entry.entered_card(gateway, form)  # ValidationFailed: nothing written
    customer = card_entry.customer_for(session, gateway, task.sub)
    session.commit()  # the customer is on record before the processor saves the card
    answer = gateway.save_method(customer, entered.reference, "card",
                                 f"task-card:{task.link.link_id}:{entered.reference}")
    if answer.outcome == "failed":
        raise ValidationFailed({"payment_method": f"The card was refused: {answer.message}"})
    return answer


def confirm_setup(session: Session, gateway: PaymentGateway, settings: LinkSettings,
                  token: str, setup: str, now: datetime | None = None):
    """Back from the card's challenge: the setup's answer, saved as update_card does when
    it succeeded. `setup` is the one update_card started for this link (the view keeps it
    in the signed session: never an id the form sends)."""
    task = open_task(session, settings, token, now)
    if not setup:
        raise ValidationFailed({"payment_method": card_entry.NO_CARD})
    answer = gateway.setup_status(setup)
    customer = card_entry.customer_for(session, gateway, task.sub)
    method = answer.method
    if answer.outcome != "succeeded" or method is None:
        raise ValidationFailed({"payment_method": "The card's bank couldn't confirm it was "
                                                  "you, so the card was not saved. Try "
                                                  "again, or use another card."})
    return _keep(session, task, method, customer, gateway, now or clock_now())


def update_card(session: Session, gateway: PaymentGateway, settings: LinkSettings,
                token: str, form, now: datetime | None = None):
    """Save the card (the processor's payment-method id: the processor saves it to the
    sub-account's customer) as the sub-account's Primary and use the link up, in one
    transaction (the view commits). Returns (link, method), or the processor's
    requires_action answer when the card's bank asks to authenticate first (the page shows
    the challenge, then confirm_setup saves it). Only the processor's id, the brand, the
    last 4 digits, the expiry and the holder are kept."""
    now = now or clock_now()
    task = open_task(session, settings, token, now)
    answer = _save(session, gateway, task, form)
    if answer.outcome == "requires_action":
        return answer
    customer = card_entry.customer_for(session, gateway, task.sub)
    return _keep(session, open_task(session, settings, token, now), answer.method, customer,
                 gateway, now)


def _keep(session: Session, task: OpenTask, card: SavedMethod, customer: str, gateway,
          now: datetime) -> tuple[TaskLink, PaymentMethod]:
    begin_write(session)
    consumed = session.execute(update(TaskLink).where(
        TaskLink.id == task.link.id, TaskLink.status == TaskStatus.PENDING)
        .values(status=TaskStatus.DONE, closed_at=now)).rowcount
    if consumed != 1:  # a second submit (another tab) got there first
        raise LinkUsed()
    primary, backup = _methods(session, task.sub)  # read again, under the write lock
    if primary is not None:
        primary.role = MethodRole.BACKUP if backup is None else MethodRole.OTHER
        session.flush()
    method = PaymentMethod(account_id=task.sub.id, kind=MethodKind.CARD, brand=card.brand,
                           last4=card.last4, holder=card.holder, token=card.reference,
                           customer_ref=customer, gateway=card_entry.gateway_name(gateway),
                           exp_month=card.exp_month, exp_year=card.exp_year,
                           role=MethodRole.PRIMARY, created_at=now)
    session.add(method)
    session.flush()
    session.execute(update(TaskLink).where(TaskLink.id == task.link.id)
                    .values(method_id=method.id))
    session.refresh(task.link)
    notices.task_card_updated(session, task.agency, task.sub, task.link, method, primary,
                              primary.role if primary is not None else None)
    return task.link, method


def pay(session: Session, gateway: PaymentGateway, settings: LinkSettings, token: str, form,
        now: datetime | None = None) -> tuple[Charge, str]:
    """Charge the amount the agency asked, once, to the card the processor's form gave (its
    payment-method id), on-session; commits (the charge is on record before the processor
    is asked). The settlement (_paid, in the charge's transaction) credits the balance and
    uses the link up; a decline (_declined) leaves the link usable. Returns (charge, client
    secret): the secret when the card's bank asks to authenticate (the page challenges,
    then confirm_payment settles it)."""
    now = now or clock_now()
    task = open_task(session, settings, token, now)
    link = task.link
    key = f"{KEY_PREFIX}{link.link_id}:{link.failed_attempts}"
    session.commit()  # the link was read: its connection back before the processor is asked
    card = card_entry.entered_card(gateway, form)  # ValidationFailed: nothing written
    charge = charges.by_key(session, key)
    if charge is None:
        begin_write(session)
        # The link's row, locked (PostgreSQL; SQLite's write lock is the database's): a twin
        # submit waits here, then finds the charge recorded.
        session.execute(select(TaskLink.id).where(TaskLink.id == link.id).with_for_update())
        charge = charges.by_key(session, key)
    if charge is None:
        # The card pays this once: it is on record for the receipt, not kept on the account.
        method = PaymentMethod(account_id=task.sub.id, kind=MethodKind.CARD, brand=card.brand,
                               last4=card.last4, holder=card.holder, token=card.reference,
                               gateway=card_entry.gateway_name(gateway),
                               exp_month=card.exp_month, exp_year=card.exp_year,
                               role=MethodRole.OTHER, created_at=now, removed_at=now)
        session.add(method)
        session.flush()
        charge = charges.start(session, task.sub, method, ChargePurpose.PAYMENT,
                               link.amount_cents, key,
                               f"Payment to {task.sub.name} (asked by {task.agency.name})",
                               now=now)
    session.commit()
    return card_entry.charge_on_session(session, gateway, charge, now)


def confirm_payment(session: Session, gateway: PaymentGateway, settings: LinkSettings,
                    token: str, now: datetime | None = None) -> tuple[Charge, str] | None:
    """Back from the challenge: the link's waiting charge, settled from the processor's
    answer; None when nothing waits."""
    now = now or clock_now()
    task = open_task(session, settings, token, now)
    charge = charges.by_key(session, f"{KEY_PREFIX}{task.link.link_id}:"
                                     f"{task.link.failed_attempts}")
    if charge is None or not charge.gateway_reference:
        return None
    return card_entry.confirm_on_session(session, gateway, charge, now)


def _link_of(session: Session, charge: Charge) -> TaskLink:
    link_id = charge.idempotency_key.split(":")[1]
    return session.scalars(select(TaskLink).where(TaskLink.link_id == link_id)
                           .execution_options(populate_existing=True)).one()


def _paid(session: Session, charge: Charge, now: datetime) -> None:
    """A task-link payment succeeded (in the settlement's transaction, the payer locked):
    the balance gets its ledger entry, the link is used up (a link replaced or revoked while
    the payment was in flight is still honoured: the client paid while it worked), the
    sub-account's billing recipients and the client get receipts."""
    link = _link_of(session, charge)
    session.execute(update(TaskLink).where(TaskLink.id == link.id).values(
        status=TaskStatus.DONE, charge_id=charge.id,
        closed_at=link.closed_at or now))
    charges.credit(session, charge, now)
    notices.receipt(session, charge)
    session.refresh(link)
    notices.task_receipt(session, session.get(Account, link.agency_id),
                         session.get(Account, link.sub_account_id), link, charge)


def _declined(session: Session, charge: Charge, now: datetime) -> None:
    """Declined: nothing changes on the account; the next attempt gets a new key."""
    link = _link_of(session, charge)
    session.execute(update(TaskLink).where(
        TaskLink.id == link.id, TaskLink.status == TaskStatus.PENDING,
        TaskLink.failed_attempts == int(charge.idempotency_key.rsplit(":", 1)[1]))
        .values(failed_attempts=TaskLink.failed_attempts + 1))


def _on_payment(default):
    def settled(session: Session, charge: Charge, now: datetime) -> None:
        if charge.idempotency_key.startswith(KEY_PREFIX):
            (_paid if charge.is_succeeded else _declined)(session, charge, now)
        elif default is not None:
            default(session, charge, now)
    settled.task_links = True
    return settled


def _default_payment_success(session: Session, charge: Charge, now: datetime) -> None:
    """What charges.settle does for a Make a Payment charge with no hook of its own."""
    charges.credit(session, charge, now)
    notices.receipt(session, charge)


def wire() -> None:
    """Hook the task links into the services (billing_links.init_app): a task-link payment
    settles here (a Make a Payment charge as before), closing revokes the live links.
    Idempotent."""
    from portal.services import lifecycle

    success = charges.ON_SUCCESS.get(ChargePurpose.PAYMENT)
    if not getattr(success, "task_links", False):
        charges.ON_SUCCESS[ChargePurpose.PAYMENT] = _on_payment(
            success or _default_payment_success)
    failure = charges.ON_FAILURE.get(ChargePurpose.PAYMENT)
    if not getattr(failure, "task_links", False):
        charges.ON_FAILURE[ChargePurpose.PAYMENT] = _on_payment(failure)
    if revoke_for_closed not in lifecycle.ON_CLOSE:
        lifecycle.ON_CLOSE.append(revoke_for_closed)


# --------------------------------------------------------------- after the task

@dataclass(frozen=True)
class Done:
    """A task done (or a payment made or processing), as its page and receipt show it."""

    link: TaskLink
    sub: Account
    agency: Account
    method: PaymentMethod | None  # CARD: the card saved
    charge: Charge | None  # PAY: the charge
    primary: PaymentMethod | None
    backup: PaymentMethod | None


def done(session: Session, settings: LinkSettings, token: str,
         now: datetime | None = None) -> Done:
    """The task behind a done token, or LinkTampered / LinkExpired (a payment's receipt
    reads for rules.BILLING_LINK_RECEIPT_TTL, like the billing link's)."""
    now = now or clock_now()
    link_id, ref_id = verify_done(settings.keys, token)
    link = session.scalar(select(TaskLink).where(TaskLink.link_id == link_id))
    if link is None:
        raise tokens.LinkTampered()
    sub = session.get(Account, link.sub_account_id)
    agency = session.get(Account, link.agency_id)
    method = charge = None
    if link.kind == TaskKind.CARD:
        if link.method_id != ref_id:
            raise tokens.LinkTampered()
        method = session.get(PaymentMethod, ref_id)
        if now >= method.created_at + rules.BILLING_LINK_RECEIPT_TTL:
            raise tokens.LinkExpired()
    else:
        charge = session.get(Charge, ref_id)
        if (charge is None or charge.account_id != sub.id
                or not charge.idempotency_key.startswith(f"{KEY_PREFIX}{link_id}:")):
            raise tokens.LinkTampered()
        if now >= charge.created_at + rules.BILLING_LINK_RECEIPT_TTL:
            raise tokens.LinkExpired()
    return Done(link, sub, agency, method, charge, *_methods(session, sub))


def done_by_link(session: Session, settings: LinkSettings, token: str) -> str | None:
    """The done token of the task that used this link up (the used-link page points to it)."""
    try:
        link_id = verify(settings.keys, token, settings.ttl + timedelta(days=1))
    except tokens.LinkError:
        return None
    link = session.scalar(select(TaskLink).where(TaskLink.link_id == link_id))
    if link is None or link.status != TaskStatus.DONE:
        return None
    ref = link.method_id if link.kind == TaskKind.CARD else link.charge_id
    return sign_done(settings.keys, link, ref) if ref else None
