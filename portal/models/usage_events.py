"""Issue 18 (M): usage events sent in batches (`POST /api/v1/usage/batches`).

One row per accepted event: the metered account's own event id is accepted once, forever
(UNIQUE(account_id, event_id), like the usage keys of `usage.key_for`). Each row points at
the ledger entry that debited it: one entry per paying account, item and batch
("Usage: 1,284 minutes"), so an event's money is found from the event and back."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import now
from portal.extensions import db
from portal.models.types import UTCDateTime


class UsageEvent(db.Model):
    __tablename__ = "usage_events"
    __table_args__ = (
        UniqueConstraint("account_id", "event_id", name="uq_usage_events_account_event"),
        Index("ix_usage_events_entry", "ledger_entry_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))  # the metered account
    event_id: Mapped[str] = mapped_column(String(80))  # the sender's id
    item: Mapped[str] = mapped_column(String(40))  # a rules.USAGE_PRICES key
    quantity: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    batch: Mapped[str] = mapped_column(String(40))  # the batch it came in
    # The key that sent it and the entry that debited it: ids, not foreign keys. Both are
    # written in the batch's own transaction (the entry) or checked by the request (the
    # key), neither is ever deleted, and a foreign key is a check and a row lock on the
    # referenced row per event inserted: 2,000 more of each for a batch of 1,000.
    api_key_id: Mapped[int | None] = mapped_column(Integer)
    ledger_entry_id: Mapped[int | None] = mapped_column(Integer)
