"""What the portal keeps of the processor's webhooks (issue 16): each event it applied, by
the processor's event id (applied once), and the disputes on its charges."""

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import now
from portal.extensions import db
from portal.models.types import UTCDateTime


class ProcessorEventRecord(db.Model):
    """One webhook event received and handled: a second delivery of the same id (Stripe
    retries for 3 days, and may send one twice) finds it and does nothing. Purged after 90
    days by the jobs."""

    __tablename__ = "processor_events"
    __table_args__ = (Index("ix_processor_events_received_at", "received_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # evt_…
    gateway: Mapped[str] = mapped_column(String(16))  # "stripe"
    type: Mapped[str] = mapped_column(String(64))  # payment_intent.succeeded, …
    object_ref: Mapped[str] = mapped_column(String(64), default="")  # pi_…, ch_…, dp_…
    outcome: Mapped[str] = mapped_column(String(32))  # applied, no_match, ignored, …
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class Dispute(db.Model):
    """A cardholder's dispute of a charge (a chargeback): the processor takes the amount
    back when it opens (a `dispute` debit on the ledger) and returns it if it is won (a
    `dispute_reversal` credit)."""

    __tablename__ = "disputes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    charge_id: Mapped[int] = mapped_column(ForeignKey("charges.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    reference: Mapped[str] = mapped_column(String(64), unique=True)  # dp_…
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(64), default="")  # fraudulent, duplicate, …
    # the processor's: needs_response, under_review, won, lost, …
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    charge = relationship("Charge", lazy="joined")

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None
