"""Refunds: money given back on a succeeded charge through the processor.

Today the product refunds one thing by itself: a billing-link payment whose answer came
after its request could no longer be honoured (a newer link was sent, the sub-account was
closed or left the agency). A refund works like a charge, the other way round:

- `start` records it as pending, with the idempotency key the processor will get, and, if the
  charge was credited to a balance, debits it in the same transaction (kind "refund"), so the
  money is never on a balance that something could spend or move meanwhile (a billing-link
  payment refunded at once was never credited: it touches no ledger);
- `attempt` commits, asks the processor, and settles the answer once (a conditional update
  from pending); a timeout leaves it pending and the jobs ask again with the same key, so it
  is never refunded twice;
- if the processor refuses, the debit (if any) is reversed with an adjustment, and the
  billing-email recipients and the customer are told.
"""

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.clock import now as clock_now
from portal.mail import notices
from portal.models import (
    Account,
    Cause,
    Charge,
    ChargeStatus,
    LedgerEntry,
    LedgerKind,
    Refund,
    RefundStatus,
)
from portal.services import charges, ledger, webhooks
from portal.services.gateway import PaymentGateway
from portal.services.money import dollars
from portal.transactions import begin_write, retry_when_locked

log = logging.getLogger("portal.refunds")

def key_for(charge: Charge) -> str:
    """One full refund per charge."""
    return f"refund:{charge.id}"


def start(session: Session, charge: Charge, reason: str, notify_email: str = "",
          now: datetime | None = None) -> Refund:
    """Record a full refund of a succeeded charge (pending) and debit it from the account
    the charge credited, in the caller's transaction. Returns the one already recorded for
    this charge, if any."""
    if charge.status != ChargeStatus.SUCCEEDED:
        raise ValueError(f"charge {charge.id} did not succeed: nothing to refund")
    now = now or clock_now()
    begin_write(session)
    key = key_for(charge)
    existing = session.scalar(select(Refund).where(Refund.idempotency_key == key))
    if existing is not None:
        return existing
    refund = Refund(charge_id=charge.id, account_id=charge.account_id,
                    amount_cents=charge.amount_cents, reason=reason[:200],
                    notify_email=notify_email[:254], status=RefundStatus.PENDING,
                    idempotency_key=key, attempts=0, created_at=now)
    session.add(refund)
    session.flush()
    if _entry(session, charge.account_id, f"charge:{charge.id}") is not None:
        # The charge was credited: the money leaves whoever holds the account's balance now
        # (read under the lock, as for every debit).
        locked = ledger.lock_payer(session, charge.account_id)
        ledger.post(session, locked.payer, LedgerKind.REFUND, -charge.amount_cents,
                    f"Refund of {charge.receipt_number} ({dollars(charge.amount_cents)}): "
                    f"{reason}"[:200], f"refund:{refund.id}", Cause.CHARGE,
                    cause_ref=str(charge.id),
                    for_account=locked.account if locked.on_behalf else None, now=now)
    return refund


def _entry(session: Session, account_id: int, key: str) -> LedgerEntry | None:
    """The entry under this key on the account's ledger or its agency's (where a credit or
    debit for a sub-account lands while the agency pays for it)."""
    parent_id = session.scalar(select(Account.parent_id).where(Account.id == account_id))
    return session.scalar(select(LedgerEntry).where(
        LedgerEntry.account_id.in_([account_id, parent_id or account_id]),
        LedgerEntry.idempotency_key == key))


def attempt(session: Session, gateway: PaymentGateway, refund: Refund,
            now: datetime | None = None) -> Refund:
    """Ask the processor to refund a pending refund, settle the answer, commit. Leaves it
    pending when the processor doesn't answer."""
    if refund.status != RefundStatus.PENDING:
        return refund
    now = now or clock_now()
    charge = session.get(Charge, refund.charge_id)
    request = (charge.gateway_reference, refund.amount_cents, refund.idempotency_key)
    result = charges.ask(session, Refund, refund.id, now, lambda: gateway.refund(*request))
    if result is None:
        return refund

    def settle_and_commit() -> None:
        settle(session, refund, result.succeeded, result.reference, result.message, now)
        session.commit()

    retry_when_locked(session, settle_and_commit, f"refund {refund.id}: settle")
    return refund


def settle(session: Session, refund: Refund, succeeded: bool, reference: str, message: str,
           now: datetime | None = None) -> bool:
    """Pending → succeeded (the customer is told) or failed (the debit is reversed and the
    people affected are told). False when someone else settled it first."""
    now = now or clock_now()
    begin_write(session)
    status = RefundStatus.SUCCEEDED if succeeded else RefundStatus.FAILED
    changed = session.execute(
        update(Refund).where(Refund.id == refund.id, Refund.status == RefundStatus.PENDING)
        .values(status=status, settled_at=now, gateway_reference=reference[:64],
                failure_message="" if succeeded else message[:200])).rowcount
    session.refresh(refund)
    if changed != 1:
        return False
    webhooks.refund_settled(session, refund, now)  # issue 18: its event, once
    if not succeeded:
        log.error("refund %s of charge %s refused by the processor: %s", refund.id,
                  refund.charge_id, message)
        debit = _entry(session, refund.account_id, f"refund:{refund.id}")
        if debit is not None:  # give the balance back what the refund took from it
            holder = session.get(Account, debit.account_id)
            ledger.post(session, holder, LedgerKind.ADJUSTMENT, refund.amount_cents,
                        f"Refund of {refund.charge.receipt_number} refused by the processor:"
                        f" {message}"[:200], f"refund-failed:{refund.id}", Cause.CHARGE,
                        cause_ref=str(refund.charge_id),
                        for_account=session.get(Account, debit.for_account_id)
                        if debit.for_account_id else None, now=now)
    notices.refund(session, refund)
    return True


def retry_pending(session: Session, gateway: PaymentGateway,
                  now: datetime | None = None) -> list[Refund]:
    """Refunds left pending whose backoff has passed (as for charges): asked again with the
    same key. Commits."""
    now = now or clock_now()
    return [attempt(session, gateway, refund, now)
            for refund in charges.due_for_retry(session, Refund, RefundStatus.PENDING, now)]


def pending_for_charge(session: Session, charge_id: int) -> Refund | None:
    return session.scalar(select(Refund).where(Refund.charge_id == charge_id,
                                               Refund.status == RefundStatus.PENDING))


def for_charges(session: Session, charge_ids: list[int]) -> dict[int, Refund]:
    """The refund of each of these charges (Payment History shows it)."""
    if not charge_ids:
        return {}
    return {r.charge_id: r for r in session.scalars(
        select(Refund).where(Refund.charge_id.in_(charge_ids)))}
