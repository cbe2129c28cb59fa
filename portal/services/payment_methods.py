"""Payment Methods: add a card or bank account (checked here, tokenized by the gateway),
make one Primary or Backup (at most one of each), remove one."""

from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.clock import now as clock_now
from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.models import Account, BillingMode, MethodKind, MethodRole, PaymentMethod
from portal.services import cards
from portal.services.gateway import PaymentGateway


def in_use(session: Session, account: Account) -> list[PaymentMethod]:
    """Primary first, then Backup, then the others by age."""
    order = {MethodRole.PRIMARY: 0, MethodRole.BACKUP: 1, MethodRole.OTHER: 2}
    methods = session.scalars(select(PaymentMethod).where(
        PaymentMethod.account_id == account.id, PaymentMethod.removed_at.is_(None)
    ).order_by(PaymentMethod.created_at, PaymentMethod.id))
    return sorted(methods, key=lambda m: order[m.role])


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


def set_role(session: Session, account: Account, method_id: int, role: str) -> PaymentMethod:
    """The pencil: make a method Primary or Backup; the one that held that role steps down
    (to the role this one leaves, so Primary and Backup swap)."""
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


def remove(session: Session, account: Account, method_id: int, promote_id: int | None = None,
           now: datetime | None = None) -> PaymentMethod:
    """Remove a method (kept for the payment history). Removing the Primary needs the one to
    promote when others remain."""
    method = get(session, account, method_id)
    others = [m for m in in_use(session, account) if m.id != method.id]
    promote = None
    if method.role == MethodRole.PRIMARY and others:
        promote = next((m for m in others if m.id == promote_id), None)
        if promote is None:
            raise ValidationFailed({"promote": "Choose which method becomes Primary."})
    session.execute(update(PaymentMethod).where(PaymentMethod.id == method.id)
                    .values(removed_at=now or clock_now(), role=MethodRole.OTHER))
    session.refresh(method)
    if promote is not None:
        promote.role = MethodRole.PRIMARY
        session.flush()
    return method
