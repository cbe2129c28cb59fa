"""The processor's webhook events, each applied once (issue 16, design16 §4).

`apply` takes an event whose signature the gateway verified (`parse_event`), claims its id
in processor_events and applies it in the caller's transaction; the caller commits. A
second delivery of the id finds the row and does nothing. "Applied once" also holds if the
process dies between the effect and the commit (both roll back) and for two deliveries at
once (the second's insert of the same id fails: nothing of it is committed), and every
effect is keyed besides: a settlement is a conditional update from pending, ledger entries
have keys, a dispute's reference is unique, and refunded amounts are cumulative.

The events, and what each does:
- payment_intent.succeeded / payment_failed / canceled / processing / requires_action: the
  pending Charge with this PaymentIntent (its gateway_reference, else its key in
  metadata.charge_key) is settled from what the processor says *now* (`payment_status`,
  so events out of order or replayed can't undo a success) with `charges.settle`, the code
  every answer settles through (`charges.resolve`: the request's own, the jobs' retries,
  the payer's challenge); a charge already settled is left as it is. After the commit the
  webhook hands it to `charges.after_event`: a declined recharge goes on to the Backup, as
  after the jobs' retry (`settled_charge`);
- charge.refunded: the refunded amount is cumulative; what is not yet on the ledger (the
  portal's own refunds and earlier events) is debited, kind `refund`, key
  `processor-refund:<charge>:<amount refunded>`;
- refund.updated / refund.failed: a pending portal Refund with this reference (or key) is
  settled with `refunds.settle` (a failed refund gives the balance back);
- charge.dispute.created: a Dispute, and a `dispute` debit (key `dispute:<dp>`); the
  balance may go below zero, which pauses billing;
- charge.dispute.closed: won → a `dispute_reversal` credit (key `dispute-won:<dp>`); lost →
  the status only; a closed dispute whose created event never came is created first;
- anything else: kept, outcome "ignored".
"""

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now as clock_now
from portal.mail import notices
from portal.models import (
    Cause,
    Charge,
    ChargeStatus,
    Dispute,
    LedgerEntry,
    LedgerKind,
    ProcessorEventRecord,
    Refund,
    RefundSource,
    RefundStatus,
)
from portal.services import charges, ledger, refunds, webhooks
from portal.services.gateway import ChargeResult, ProcessorEvent
from portal.services.money import dollars
from portal.transactions import begin_write

log = logging.getLogger("portal.processor_events")

PAYMENT_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed",
                  "payment_intent.canceled", "payment_intent.processing",
                  "payment_intent.requires_action")
REFUND_EVENTS = ("refund.updated", "refund.failed")
KEEP_EVENTS = timedelta(days=90)  # Stripe stops retrying after 3 days: ids older can go


def seen(session: Session, event_id: str) -> bool:
    return session.get(ProcessorEventRecord, event_id) is not None


def apply(session: Session, gateway, event: ProcessorEvent,
          now: datetime | None = None) -> str:
    """Apply one verified event once, in the caller's transaction (the caller commits).
    Returns the outcome kept on its row: "applied", "no_match", "already_settled",
    "pending", "ignored", or "duplicate" (seen before: nothing done)."""
    now = now or clock_now()
    if seen(session, event.id):
        return "duplicate"
    # What the processor says now, asked before this transaction writes anything (no write
    # lock is held across the network).
    status = None
    if event.type in PAYMENT_EVENTS and event.object.get("id"):
        status = gateway.payment_status(event.object["id"])
    begin_write(session)
    try:
        with session.begin_nested():
            session.add(ProcessorEventRecord(
                id=event.id[:64], gateway=getattr(gateway, "name", "stripe")[:16],
                type=event.type[:64], object_ref=str(event.object.get("id") or "")[:64],
                outcome="", received_at=now))
            session.flush()
    except IntegrityError:  # delivered twice at once: the other delivery applies it
        return "duplicate"
    if event.type in PAYMENT_EVENTS:
        outcome = _payment(session, event.object, status, now)
    elif event.type == "charge.refunded":
        outcome = _refunded(session, event.object, now)
    elif event.type in REFUND_EVENTS:
        outcome = _refund_settled(session, event.object, now)
    elif event.type == "charge.dispute.created":
        outcome = _dispute_created(session, event.object, now)
    elif event.type == "charge.dispute.closed":
        outcome = _dispute_closed(session, event.object, now)
    else:
        outcome = "ignored"
    record = session.get(ProcessorEventRecord, event.id[:64])
    record.outcome = outcome
    log.info("processor event %s (%s): %s", event.id, event.type, outcome)
    return outcome


def settled_charge(session: Session, event: ProcessorEvent) -> Charge | None:
    """The portal's charge a payment event was about, once the event is committed: the
    caller hands it to `charges.after_event` (a declined recharge goes on to the Backup,
    a recharge usage outran starts the next), outside the event's transaction since that
    asks the processor again."""
    if event.type not in PAYMENT_EVENTS:
        return None
    charge = _charge_for(session, event.object)
    return None if charge is None or charge.is_pending else charge


def purge(session: Session, now: datetime | None = None) -> int:
    """Forget events received more than 90 days ago (the jobs, daily); the caller commits.
    Their effects stay keyed (ledger keys, dispute references), so a very late duplicate
    still changes nothing."""
    begin_write(session)
    cutoff = (now or clock_now()) - KEEP_EVENTS
    return session.execute(delete(ProcessorEventRecord)
                           .where(ProcessorEventRecord.received_at < cutoff)).rowcount


def _charge_for(session: Session, obj: Mapping[str, Any]) -> Charge | None:
    """The portal's charge of a PaymentIntent: by its id, else by the key it carries."""
    pi = obj.get("payment_intent") if obj.get("object") != "payment_intent" else obj.get("id")
    if isinstance(pi, Mapping):
        pi = pi.get("id")
    if pi:
        found = session.scalar(select(Charge).where(Charge.gateway_reference == pi))
        if found is not None:
            return found
    key = (obj.get("metadata") or {}).get("charge_key")
    return charges.by_key(session, key) if key else None


# ------------------------------------------------------------------ payments

def _payment(session: Session, obj: Mapping, status: ChargeResult | None,
             now: datetime) -> str:
    charge = _charge_for(session, obj)
    if charge is None:
        return "no_match"
    if charge.status != ChargeStatus.PENDING:
        return "already_settled"
    if status is None or status.outcome in ("requires_action", "processing"):
        return "pending"
    settled = charges.settle(session, charge, status.succeeded, status.reference or obj["id"],
                             status.code, status.message, now=now)
    return "applied" if settled else "already_settled"


# ------------------------------------------------------------------ refunds

def _refunded(session: Session, obj: Mapping, now: datetime) -> str:
    """A refund made at the processor (its Dashboard, or the portal's own): what is not on
    the ledger yet is debited."""
    charge = _charge_for(session, obj)
    if charge is None:
        return "no_match"
    if charge.status != ChargeStatus.SUCCEEDED:
        return "not_settled"
    refunded = int(obj.get("amount_refunded") or 0)
    by_portal = session.scalar(
        select(func.coalesce(func.sum(Refund.amount_cents), 0))
        .where(Refund.charge_id == charge.id, Refund.source == RefundSource.PORTAL,
               Refund.status != RefundStatus.FAILED)) or 0
    by_events = -(session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
        .where(LedgerEntry.kind == LedgerKind.REFUND,
               LedgerEntry.idempotency_key.like(f"processor-refund:{charge.id}:%"))) or 0)
    debit = min(refunded, charge.amount_cents) - int(by_portal) - int(by_events)
    if debit <= 0:
        return "already_recorded"
    locked = ledger.lock_payer(session, charge.account_id)
    ledger.post(session, locked.payer, LedgerKind.REFUND, -debit,
                f"Refund of {charge.receipt_number} ({dollars(debit)}) made at the payment "
                f"processor", f"processor-refund:{charge.id}:{refunded}", Cause.CHARGE,
                cause_ref=str(charge.id),
                for_account=locked.account if locked.on_behalf else None, now=now)
    _show_refund(session, charge, debit, now)
    webhooks.refund_at_processor(session, charge, debit, now)  # issue 18
    notices.processor_refund(session, charge, debit, f"processor-refund:{charge.id}:{refunded}")
    return "applied"


PROCESSOR_REFUND_REASON = "it was refunded at the payment processor"


def _show_refund(session: Session, charge: Charge, debit: int, now: datetime) -> None:
    """Payment History and the receipt show a charge refunded at the processor as refunded
    (a Refund of source processor, settled: nothing for the portal to ask), its amount the
    total refunded there so far. A charge the portal refunded itself keeps that refund."""
    shown = session.scalar(select(Refund).where(Refund.charge_id == charge.id))
    if shown is None:
        session.add(Refund(charge_id=charge.id, account_id=charge.account_id,
                           amount_cents=debit, reason=PROCESSOR_REFUND_REASON,
                           status=RefundStatus.SUCCEEDED, source=RefundSource.PROCESSOR,
                           idempotency_key=f"processor-refund:{charge.id}",
                           created_at=now, settled_at=now))
        session.flush()
    elif shown.source == RefundSource.PROCESSOR:
        shown.amount_cents += debit
        shown.settled_at = now


def _refund_settled(session: Session, obj: Mapping, now: datetime) -> str:
    key = (obj.get("metadata") or {}).get("refund_key")
    refund = session.scalar(select(Refund).where(Refund.gateway_reference == obj.get("id"))) \
        or (session.scalar(select(Refund).where(Refund.idempotency_key == key)) if key else None)
    if refund is None:
        return "no_match"
    if refund.status != RefundStatus.PENDING or obj.get("status") not in ("succeeded",
                                                                          "failed", "canceled"):
        return "already_settled" if refund.status != RefundStatus.PENDING else "pending"
    succeeded = obj["status"] == "succeeded"
    refunds.settle(session, refund, succeeded, obj["id"],
                   "" if succeeded else "The processor couldn't complete the refund.", now)
    return "applied"


# ------------------------------------------------------------------ disputes

def _dispute_created(session: Session, obj: Mapping, now: datetime) -> str:
    dispute = _open_dispute(session, obj, now)
    return "no_match" if dispute is None else "applied"


def _open_dispute(session: Session, obj: Mapping, now: datetime) -> Dispute | None:
    """The Dispute of this dp_…, created (with its debit) if it is new."""
    reference = obj["id"]
    dispute = session.scalar(select(Dispute).where(Dispute.reference == reference))
    if dispute is not None:
        return dispute
    charge = _charge_for(session, obj)
    if charge is None or charge.status != ChargeStatus.SUCCEEDED:
        return None
    amount = int(obj.get("amount") or charge.amount_cents)
    locked = ledger.lock_payer(session, charge.account_id)
    dispute = Dispute(charge_id=charge.id, account_id=charge.account_id, reference=reference,
                      amount_cents=amount, reason=str(obj.get("reason") or "")[:64],
                      status=str(obj.get("status") or "needs_response")[:32], created_at=now)
    session.add(dispute)
    session.flush()
    ledger.post(session, locked.payer, LedgerKind.DISPUTE, -amount,
                f"Dispute of {charge.receipt_number} ({dollars(amount)}): the cardholder's "
                f"bank took the payment back", f"dispute:{reference}", Cause.CHARGE,
                cause_ref=str(charge.id),
                for_account=locked.account if locked.on_behalf else None, now=now)
    notices.dispute_opened(session, dispute)
    webhooks.dispute_created(session, dispute, now)  # issue 18
    return dispute


def _dispute_closed(session: Session, obj: Mapping, now: datetime) -> str:
    dispute = _open_dispute(session, obj, now)  # order-proof: created first if missing
    if dispute is None:
        return "no_match"
    if dispute.closed_at is not None:
        return "already_settled"
    status = str(obj.get("status") or "")[:32]
    dispute.status, dispute.closed_at = status, now
    if status == "won":
        charge = session.get(Charge, dispute.charge_id)
        locked = ledger.lock_payer(session, dispute.account_id)
        ledger.post(session, locked.payer, LedgerKind.DISPUTE_REVERSAL, dispute.amount_cents,
                    f"Dispute of {charge.receipt_number} won: {dollars(dispute.amount_cents)} "
                    f"back", f"dispute-won:{dispute.reference}", Cause.CHARGE,
                    cause_ref=str(charge.id),
                    for_account=locked.account if locked.on_behalf else None, now=now)
    session.flush()
    notices.dispute_closed(session, dispute)
    return "applied"
