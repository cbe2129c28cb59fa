"""Payment Methods: add a card or bank account (checked here, tokenized by the gateway),
make one Primary or Backup (at most one of each), remove one; each method's standing (its
last charge's result, its expiry), and a warning before a failing one is made Primary."""

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from portal.clock import now as clock_now
from portal.errors import ConfirmationNeeded, NotAllowed, NotFound, ValidationFailed
from portal.models import (
    Account,
    BillingMode,
    Charge,
    ChargeStatus,
    MethodKind,
    MethodRole,
    PaymentMethod,
)
from portal.services import cards
from portal.services.gateway import PaymentGateway


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


def _expiry(method: PaymentMethod, today: date) -> tuple[bool, bool]:
    """(expired, expires this month): a card is good through the last day of its month."""
    if method.kind != MethodKind.CARD or not method.exp_year or not method.exp_month:
        return False, False
    month, now = (method.exp_year, method.exp_month), (today.year, today.month)
    return month < now, month == now


def _last_charge_columns():
    """The newest settled charge of each method (ix_charges_method), as columns."""
    last = aliased(Charge)
    newest = (select(func.max(Charge.id))
              .where(Charge.method_id == PaymentMethod.id,
                     Charge.status != ChargeStatus.PENDING)
              .correlate(PaymentMethod).scalar_subquery())
    return last, newest, (last.status, last.settled_at, last.created_at, last.failure_code,
                          last.failure_message)


def _standing(method: PaymentMethod, status, settled_at, created_at, code, message,
              today: date) -> Standing:
    expired, this_month = _expiry(method, today)
    at = settled_at or created_at
    return Standing(last_status=status, last_at=at, last_code=code or "",
                    last_message=message or "", expired=expired, expires_this_month=this_month,
                    last_this_year=at is None or at.year == today.year)


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


def add_card(session: Session, account: Account, gateway: PaymentGateway, *, number: str,
             exp_month: str, exp_year: str, cvc: str, holder: str,
             today: date | None = None) -> PaymentMethod:
    _check_own_billing(account)
    details = cards.check_card(number, exp_month, exp_year, cvc, holder,
                               today or clock_now().date())
    token = gateway.tokenize_card(cards.digits(number), details.exp_month, details.exp_year,
                                  cvc.strip(), details.holder)
    return _add(session, account, MethodKind.CARD, details.brand, details.last4,
                details.holder, token, details.exp_month, details.exp_year)


def add_bank_account(session: Session, account: Account, gateway: PaymentGateway, *,
                     routing: str, account_number: str, holder: str) -> PaymentMethod:
    _check_own_billing(account)
    details = cards.check_bank_account(routing, account_number, holder)
    token = gateway.tokenize_bank_account(cards.digits(routing), cards.digits(account_number),
                                          details.holder)
    return _add(session, account, MethodKind.ACH, "Bank account", details.last4,
                details.holder, token)


def _add(session: Session, account: Account, kind: MethodKind, brand: str, last4: str,
         holder: str, token: str, exp_month: int | None = None,
         exp_year: int | None = None) -> PaymentMethod:
    # The first method in use becomes Primary: an account with a method always has one.
    first = not in_use(session, account)
    method = PaymentMethod(account_id=account.id, kind=kind, brand=brand, last4=last4,
                           holder=holder, token=token, exp_month=exp_month,
                           exp_year=exp_year,
                           role=MethodRole.PRIMARY if first else MethodRole.OTHER)
    session.add(method)
    session.flush()
    return method


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
