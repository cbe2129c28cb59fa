"""The monthly plan fee and sales tax, posted by the scheduled job on the 1st of the month.

For month M (the month `now` is in): each open standalone or agency account created before
M began is debited its plan's fee for M, and the sales tax on its usage in the month before
M at its service address's rate. Ledger keys name the month, so running the job again (or
from two instances) posts nothing more. With Opt-in Direct Charge the fee is charged to the
Primary method first (a card charge that credits the balance the fee then debits); if the
card declines, the fee comes from the balance and the recipients are told.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from portal import rules
from portal.clock import now as clock_now
from portal.mail import notices
from portal.models import (
    Account,
    AccountKind,
    AccountStatus,
    Cause,
    ChargePurpose,
    ChargeStatus,
    LedgerEntry,
    LedgerKind,
    MethodRole,
    PaymentMethod,
)
from portal.services import billing, charges, ledger
from portal.services.gateway import PaymentGateway
from portal.services.money import dollars


def month_start(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def previous_month_start(start: datetime) -> datetime:
    return datetime(start.year - (start.month == 1), 12 if start.month == 1 else start.month - 1,
                    1, tzinfo=UTC)


def tax_cents(usage_cents: int, rate_bps: int) -> int:
    """Tax on a usage total, rounded half up to the cent."""
    return (usage_cents * rate_bps + 5000) // 10000


@dataclass
class MonthlyRun:
    month: str
    fees: int = 0
    taxes: int = 0
    direct_charges: int = 0
    recharges: list = field(default_factory=list)


def run_monthly(session: Session, gateway: PaymentGateway,
                now: datetime | None = None) -> MonthlyRun:
    """Post what is due for the current month. Commits (card charges are on record before the
    processor is called)."""
    now = now or clock_now()
    start = month_start(now)
    prior = previous_month_start(start)
    label = f"{start:%Y-%m}"
    fee_key = f"plan-fee:{label}"
    run = MonthlyRun(label)
    due = list(session.scalars(
        select(Account).where(
            Account.kind.in_((AccountKind.STANDALONE, AccountKind.AGENCY)),
            Account.status != AccountStatus.CANCELED,
            Account.created_at < start,
            ~exists().where(LedgerEntry.account_id == Account.id,
                            LedgerEntry.idempotency_key == fee_key))
        .order_by(Account.id)))
    for account in due:
        _month_for(session, gateway, account, start, prior, run, now)
    return run


def _month_for(session: Session, gateway: PaymentGateway, account: Account,
               start: datetime, prior: datetime, run: MonthlyRun, now: datetime) -> None:
    fee = rules.PLAN_FEES.get(account.plan, 0)
    settings = billing.settings_for(session, account)
    if fee and settings.direct_charge:
        primary = session.scalar(select(PaymentMethod).where(
            PaymentMethod.account_id == account.id, PaymentMethod.removed_at.is_(None),
            PaymentMethod.role == MethodRole.PRIMARY))
        if primary is not None:
            charge = charges.start(
                session, account, primary, ChargePurpose.PLAN_FEE, fee,
                f"plan-fee:{account.id}:{start:%Y-%m}",
                f"{account.plan} plan subscription, {start:%B %Y}", now=now)
            session.commit()
            charge = charges.attempt(session, gateway, charge, now)
            if charge.status == ChargeStatus.SUCCEEDED:
                run.direct_charges += 1
            elif charge.status == ChargeStatus.FAILED:
                notices.declined(session, [charge])
    # The account as it is now, under the lock the fee is written under: one closed since
    # the run began owes no fee (and a sub-account never pays one).
    locked = ledger.lock_payer(session, account.id)
    if locked.account.is_canceled or locked.account.is_sub:
        session.commit()
        return
    if fee:
        ledger.post(session, account, LedgerKind.PLAN_FEE, -fee,
                    f"Plan fee: {account.plan}, {start:%B %Y}", f"plan-fee:{start:%Y-%m}",
                    Cause.JOB, now=now)
        run.fees += 1
    # int(): PostgreSQL's SUM of a BIGINT is a NUMERIC (a Decimal in Python).
    usage = -int(session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
        LedgerEntry.account_id == account.id, LedgerEntry.kind == LedgerKind.USAGE,
        LedgerEntry.created_at >= prior, LedgerEntry.created_at < start)) or 0)
    rate = billing.tax_rate_bps(settings)
    tax = tax_cents(usage, rate)
    if tax > 0:
        percent = f"{rate // 100}.{rate % 100:02d}%"  # basis points, no float
        ledger.post(session, account, LedgerKind.TAX, -tax,
                    f"Sales tax ({settings.region} {percent}) on {prior:%B %Y} usage "
                    f"of {dollars(usage)}", f"tax:{prior:%Y-%m}", Cause.JOB, now=now)
        run.taxes += 1
    recharge = charges.start_recharge(session, account, now)
    session.commit()
    if recharge is not None:
        run.recharges.append(charges.run_recharge(session, gateway, recharge, now))
