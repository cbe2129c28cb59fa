"""Payment Methods: add a card or bank account (the processor's card entry gives a
payment-method id, saved to the account's processor customer: the portal never sees a
number), make one Primary or Backup (at most one of each), remove one; each method's
standing (its last charge's result, its expiry), and a warning before a failing one is made
Primary."""

import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from portal import rules
from portal.clock import now as clock_now
from portal.errors import ConfirmationNeeded, NotAllowed, NotFound, ValidationFailed
from portal.models import (
    Account,
    BillingMode,
    Charge,
    ChargeStatus,
    MethodKind,
    MethodRole,
    MethodVerification,
    PaymentMethod,
)
from portal.services import processor
from portal.services.gateway import ChargeResult, Mandate, SavedMethod


def in_use(session: Session, account: Account) -> list[PaymentMethod]:
    """Primary first, then Backup, then the others by age."""
    order = {MethodRole.PRIMARY: 0, MethodRole.BACKUP: 1, MethodRole.OTHER: 2}
    methods = session.scalars(select(PaymentMethod).where(
        PaymentMethod.account_id == account.id, PaymentMethod.removed_at.is_(None)
    ).order_by(PaymentMethod.created_at, PaymentMethod.id))
    return sorted(methods, key=lambda m: order[m.role])


# --------------------------------------------------------------- standing

# "Declined Nov 28: insufficient funds": the processor's decline codes, said shortly (any
# other code: its message as the processor gave it).
DECLINE_REASONS = {
    "card_declined": "the bank gave no reason",
    "insufficient_funds": "insufficient funds",
    "expired_card": "the card has expired",
    "incorrect_cvc": "incorrect security code",
    "processing_error": "processing error",
}


@dataclass(frozen=True)
class Standing:
    """What a method's row says besides its label: the result of its last settled charge,
    and whether it has expired or expires this month (cards only)."""

    last_status: ChargeStatus | None = None
    last_at: datetime | None = None  # when that charge settled
    last_code: str = ""
    last_message: str = ""
    expired: bool = False
    expires_this_month: bool = False
    last_this_year: bool = True  # the date is said without its year
    # Card health (issue 16): failed charges since its last success, days to its expiry
    # (cards; None otherwise), and whether it can pay at all (verified, this gateway's).
    declines_in_a_row: int = 0
    expires_in_days: int | None = None
    usable: bool = True

    @property
    def flagged(self) -> bool:
        """Not to be relied on: declined DECLINES_TO_FLAG times in a row, expired, or not
        usable. Auto recharge skips a flagged Primary for a healthy Backup."""
        return (self.declines_in_a_row >= DECLINES_TO_FLAG or self.expired
                or not self.usable)

    @property
    def declined(self) -> bool:
        return self.last_status == ChargeStatus.FAILED

    @property
    def paid(self) -> bool:
        return self.last_status == ChargeStatus.SUCCEEDED

    @property
    def failing(self) -> bool:
        """Likely to fail the next charge: its last charge declined, or it has expired."""
        return self.declined or self.expired

    @property
    def decline_reason(self) -> str:
        return DECLINE_REASONS.get(self.last_code) or \
            self.last_message.rstrip(".") or "declined"

    @property
    def why_failing(self) -> str:
        """"it has expired", "its last charge was declined on Nov 28: insufficient funds"."""
        reasons = []
        if self.expired:
            reasons.append("it has expired")
        if self.declined:
            day = f"{self.last_at:%b %-d}" if self.last_this_year else f"{self.last_at:%b %-d, %Y}"
            reasons.append(f"its last charge was declined on {day}: {self.decline_reason}")
        return " and ".join(reasons)


DECLINES_TO_FLAG = getattr(rules, "DECLINES_TO_FLAG", 2)


def _expires_in_days(method: PaymentMethod, today: date) -> int | None:
    """Days until the card's last good day (the end of its expiry month); None: no expiry."""
    if method.kind != MethodKind.CARD or not method.exp_year or not method.exp_month:
        return None
    first_after = date(method.exp_year + (method.exp_month == 12),
                       method.exp_month % 12 + 1, 1)
    return (first_after - today).days - 1


def _expiry(method: PaymentMethod, today: date) -> tuple[bool, bool]:
    """(expired, expires this month): a card is good through the last day of its month."""
    if method.kind != MethodKind.CARD or not method.exp_year or not method.exp_month:
        return False, False
    month, now = (method.exp_year, method.exp_month), (today.year, today.month)
    return month < now, month == now


def _last_charge_columns():
    """The newest settled charge of each method (ix_charges_method), as columns, and how
    many of its charges failed since its last success."""
    last = aliased(Charge)
    newest = (select(func.max(Charge.id))
              .where(Charge.method_id == PaymentMethod.id,
                     Charge.status != ChargeStatus.PENDING)
              .correlate(PaymentMethod).scalar_subquery())
    paid = aliased(Charge)
    last_paid = (select(func.coalesce(func.max(paid.id), 0))
                 .where(paid.method_id == PaymentMethod.id,
                        paid.status == ChargeStatus.SUCCEEDED)
                 .correlate(PaymentMethod).scalar_subquery())
    failed = aliased(Charge)
    in_a_row = (select(func.count(failed.id))
                .where(failed.method_id == PaymentMethod.id,
                       failed.status == ChargeStatus.FAILED, failed.id > last_paid)
                .correlate(PaymentMethod).scalar_subquery())
    return last, newest, (last.status, last.settled_at, last.created_at, last.failure_code,
                          last.failure_message, in_a_row)


def _standing(method: PaymentMethod, status, settled_at, created_at, code, message,
              in_a_row=0, today: date | None = None) -> Standing:
    today = today or clock_now().date()
    expired, this_month = _expiry(method, today)
    at = settled_at or created_at
    return Standing(last_status=status, last_at=at, last_code=code or "",
                    last_message=message or "", expired=expired, expires_this_month=this_month,
                    last_this_year=at is None or at.year == today.year,
                    declines_in_a_row=int(in_a_row or 0),
                    expires_in_days=_expires_in_days(method, today),
                    usable=method.verification == MethodVerification.VERIFIED)


def listed(session: Session, account: Account, today: date | None = None
           ) -> tuple[list[PaymentMethod], dict[int, Standing]]:
    """The methods in use (as in_use orders them) and each one's standing, in one query."""
    today = today or clock_now().date()
    last, newest, columns = _last_charge_columns()
    rows = session.execute(
        select(PaymentMethod, *columns)
        .outerjoin(last, last.id == newest)
        .where(PaymentMethod.account_id == account.id, PaymentMethod.removed_at.is_(None))
        .order_by(PaymentMethod.created_at, PaymentMethod.id)).all()
    order = {MethodRole.PRIMARY: 0, MethodRole.BACKUP: 1, MethodRole.OTHER: 2}
    methods = sorted((row[0] for row in rows), key=lambda m: order[m.role])
    return methods, {row[0].id: _standing(*row, today=today) for row in rows}


def standing(session: Session, method: PaymentMethod, today: date | None = None) -> Standing:
    last, newest, columns = _last_charge_columns()
    row = session.execute(select(*columns).select_from(PaymentMethod)
                          .outerjoin(last, last.id == newest)
                          .where(PaymentMethod.id == method.id)).one()
    return _standing(method, *row, today=today or clock_now().date())


def _check_own_billing(account: Account) -> None:
    if account.is_sub and account.billing_mode == BillingMode.AGENCY:
        raise NotAllowed(f"{account.name} is paid from the agency balance: it has no payment "
                         "methods of its own.")


# ------------------------------------------------------- the processor's card entry (issue 16)

KINDS = {"card": MethodKind.CARD, "ach": MethodKind.ACH}
SETUP_MESSAGES = {
    "payment_method_unavailable": "Those details can't be used any more: enter them again.",
    "idempotency_mismatch": "Those details can't be used any more: enter them again.",
    "setup_intent_authentication_failure": "The card's bank couldn't confirm it's you, so the "
                                           "card was not saved. Try again or use another card.",
    "authentication_failed": "The card's bank couldn't confirm it's you, so the card was not "
                             "saved. Try again or use another card.",
}


@dataclass(frozen=True)
class ActionNeeded:
    """The processor asks the person to authenticate (3-D Secure) before the card is saved:
    the page hands `client_secret` to the processor's script, then confirms `setup`."""

    setup: str
    client_secret: str
    kind: str


def _setup_failed(result: ChargeResult, field: str = "payment_method") -> ValidationFailed:
    return ValidationFailed({field: SETUP_MESSAGES.get(result.code) or result.message
                             or "The card was not saved."})


# A card or bank account number (6 or more digits, perhaps spaced or dashed) where the
# processor's id (pm_…) belongs.
NOT_A_NUMBER = ("That is a card or account number. Card and bank details go to the payment "
                "processor, never to the portal: enter them in the secure card entry, which "
                "gives the processor's id (pm_…).")


def add(session: Session, account: Account, gateway, payment_method: str, kind: str,
        mandate: Mandate | None = None) -> "PaymentMethod | ActionNeeded":
    """Save the method the processor's card entry gave (a pm_… id, never card data) to the
    account's processor customer: a SetupIntent with a $0 authorization. A card saved is
    stored; one whose bank asks for authentication gives ActionNeeded (confirm_setup after
    the challenge); a bank account is stored pending its micro-deposits (verify), its
    debit authorization (`mandate`: the payer's address and browser) given to the
    processor with it."""
    _check_own_billing(account)
    method_kind = KINDS.get(kind)
    payment_method = (payment_method or "").strip()
    if method_kind is None:
        raise ValidationFailed({"kind": "Choose a card or a bank account."})
    if not payment_method or len(payment_method) > 64 or not payment_method.isascii():
        raise ValidationFailed({"payment_method": "Enter the card details." if kind == "card"
                                else "Enter the bank account details."})
    digits = re.sub(r"[\s-]", "", payment_method)
    if digits.isdigit() and len(digits) >= 6:  # never sent on, never kept
        raise ValidationFailed({"payment_method": NOT_A_NUMBER})
    customer, known = processor.customer_ref(session, account, gateway)
    key = f"save:{account.id}:{payment_method}"
    result = gateway.save_method(customer, payment_method, kind, key,
                                 mandate if kind == "ach" else None)
    if not known:  # written after the processor's call (see processor.customer_ref)
        customer = processor.remember_customer(session, account, gateway, customer)
    return _saved_or_action(session, account, gateway, customer, result, kind,
                            payment_method)


def _saved_or_action(session, account, gateway, customer, result: ChargeResult, kind: str,
                     payment_method: str = ""):
    if result.outcome == "requires_action" and result.next_action == "authenticate":
        return ActionNeeded(result.reference, result.client_secret, kind)
    if result.outcome == "requires_action" and result.next_action == "verify_microdeposits":
        saved = _describe(gateway, result, payment_method)
        return _store(session, account, gateway, customer, saved, result.reference,
                      MethodVerification.PENDING)
    if not result.succeeded:
        raise _setup_failed(result)
    return _store(session, account, gateway, customer,
                  _describe(gateway, result, payment_method), result.reference)


def _describe(gateway, result: ChargeResult, payment_method: str) -> SavedMethod:
    """What the processor's answer says was saved (Stripe clones a test pm on attach: its
    answer's id, never the browser's); a pending bank account: the id the page gave."""
    if result.method is not None:
        return result.method
    if not payment_method:
        raise _setup_failed(result)
    return gateway.describe_method(payment_method)


def confirm_setup(session: Session, account: Account, gateway, setup: str, kind: str
                  ) -> "PaymentMethod | ActionNeeded":
    """After the challenge: the setup's answer, read from the processor (never from the
    browser), stores the method or says why not."""
    _check_own_billing(account)
    customer = processor.customer_for(session, account, gateway)
    result = gateway.setup_status(setup)
    if result.outcome == "requires_action" and result.next_action == "authenticate":
        raise ValidationFailed({"payment_method": "The card's bank is still waiting for you "
                                                  "to confirm it's you: the card was not "
                                                  "saved. Try again."})
    return _saved_or_action(session, account, gateway, customer, result, kind)


def _store(session, account, gateway, customer: str, saved: SavedMethod, setup: str,
           verification: MethodVerification = MethodVerification.VERIFIED) -> PaymentMethod:
    existing = session.scalar(select(PaymentMethod).where(
        PaymentMethod.account_id == account.id, PaymentMethod.token == saved.reference,
        PaymentMethod.removed_at.is_(None)))
    if existing is not None:  # the same answer twice (a double submit): one method
        return existing
    kind = MethodKind.CARD if saved.kind == "card" else MethodKind.ACH
    first = verification == MethodVerification.VERIFIED and not usable(session, account)
    method = PaymentMethod(
        account_id=account.id, kind=kind, brand=saved.brand[:32], last4=saved.last4[-4:],
        holder=(saved.holder or "")[:120], token=saved.reference,
        exp_month=saved.exp_month if kind == MethodKind.CARD else None,
        exp_year=saved.exp_year if kind == MethodKind.CARD else None,
        gateway=processor.gateway_name(gateway), customer_ref=customer,
        setup_reference=setup, verification=verification,
        role=MethodRole.PRIMARY if first else MethodRole.OTHER)
    session.add(method)
    session.flush()
    return method


def usable(session: Session, account: Account) -> list[PaymentMethod]:
    return [m for m in in_use(session, account)
            if m.verification == MethodVerification.VERIFIED]


def verify(session: Session, account: Account, gateway, method_id: int, first: str,
           second: str) -> PaymentMethod:
    """The two micro-deposits' amounts ("0.32", "0.45" or cents), either order: right →
    the bank account is verified (Primary if the account has none); wrong → tries left
    (ValidationFailed); the last try wrong → the method is marked failed and returned."""
    method = get(session, account, method_id)
    if method.verification != MethodVerification.PENDING:
        raise ValidationFailed({"": "This bank account is not waiting for micro-deposits."})
    amounts, errors = [], {}
    for name, value in (("first", first), ("second", second)):
        cents = _deposit_cents(value)
        if cents is None:
            errors[name] = "Enter the deposit as it shows on the statement, like 0.32."
        amounts.append(cents)
    if errors:
        raise ValidationFailed(errors)
    result = gateway.verify_microdeposits(method.setup_reference, (amounts[0], amounts[1]))
    if result.succeeded:
        first_usable = not usable(session, account)
        method.verification = MethodVerification.VERIFIED
        if first_usable:
            method.role = MethodRole.PRIMARY
        session.flush()
        return method
    if result.outcome == "requires_action":
        raise ValidationFailed({"first": result.message or "Those amounts don't match."})
    # Kept (committed): the processor won't take another try. The page says so.
    method.verification = MethodVerification.FAILED
    session.flush()
    return method


VERIFY_FAILED = ("Those amounts didn't match three times: the bank account can't be "
                 "verified. Remove it and add it again.")


def _deposit_cents(value: str) -> int | None:
    value = (value or "").strip().lstrip("$")
    if value.isdigit() and len(value) <= 2:
        return int(value)
    whole, dot, frac = value.partition(".")
    if dot and whole in ("", "0") and frac.isdigit() and len(frac) == 2:
        return int(frac)
    return None


def get(session: Session, account: Account, method_id: int) -> PaymentMethod:
    method = session.scalar(select(PaymentMethod).where(
        PaymentMethod.id == method_id, PaymentMethod.account_id == account.id,
        PaymentMethod.removed_at.is_(None)))
    if method is None:
        raise NotFound("Payment method not found.")
    return method


def set_role(session: Session, account: Account, method_id: int, role: str,
             confirmed: bool = False, today: date | None = None) -> PaymentMethod:
    """The pencil: make a method Primary or Backup; the one that held that role steps down
    (to the role this one leaves, so Primary and Backup swap). Making a failing method
    (declined last time, or expired) Primary needs `confirmed`: else ConfirmationNeeded,
    saying why, with its Standing."""
    try:
        role = MethodRole(role)
    except ValueError:
        raise ValidationFailed({"role": "Choose Primary, Backup or neither."}) from None
    method = get(session, account, method_id)
    if method.role == role:
        return method
    if method.role == MethodRole.PRIMARY:
        raise ValidationFailed({"role": "Make another method Primary first: the account "
                                        "needs one."})
    if role != MethodRole.OTHER and method.verification != MethodVerification.VERIFIED:
        raise ValidationFailed({"role": "Verify this bank account's micro-deposits first: "
                                        "until then it can't pay." if method.verification
                                        == MethodVerification.PENDING else
                                        "This method can't pay: add it again."})
    if role == MethodRole.PRIMARY and not confirmed:
        check_primary(session, method, today)
    holder = session.scalar(select(PaymentMethod).where(
        PaymentMethod.account_id == account.id, PaymentMethod.removed_at.is_(None),
        PaymentMethod.role == role)) if role != MethodRole.OTHER else None
    leaving = method.role
    method.role = MethodRole.OTHER
    session.flush()
    if holder is not None:
        holder.role = leaving
        session.flush()
    method.role = role
    session.flush()
    return method


def check_primary(session: Session, method: PaymentMethod, today: date | None = None) -> None:
    """ConfirmationNeeded when `method` is likely to fail as the Primary."""
    state = standing(session, method, today)
    if state.failing:
        raise ConfirmationNeeded(
            f"{method.short_label} may not pay: {state.why_failing}. Auto recharge and the "
            "plan fee charge the Primary first; if it declines, the Backup is tried, and if "
            "there is none or it declines too, the balance is not recharged.", state)


def remove(session: Session, account: Account, method_id: int, promote_id: int | None = None,
           now: datetime | None = None, promote_confirmed: bool = False) -> PaymentMethod:
    """Remove a method (kept for the payment history). Removing the Primary needs the one to
    promote when others remain; promoting a failing one needs `promote_confirmed` (else
    ConfirmationNeeded, as the pencil asks)."""
    method = get(session, account, method_id)
    others = [m for m in in_use(session, account) if m.id != method.id]
    promote = None
    if method.role == MethodRole.PRIMARY and others:
        promote = next((m for m in others if m.id == promote_id), None)
        if promote is None:
            raise ValidationFailed({"promote": "Choose which method becomes Primary."})
        if not promote_confirmed:
            check_primary(session, promote, (now or clock_now()).date())
    session.execute(update(PaymentMethod).where(PaymentMethod.id == method.id)
                    .values(removed_at=now or clock_now(), role=MethodRole.OTHER))
    session.refresh(method)
    if promote is not None:
        promote.role = MethodRole.PRIMARY
        session.flush()
    return method
