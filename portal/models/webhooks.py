"""Issue 18 (W): outgoing webhooks.

A WebhookEndpoint is a URL an account's owner or admin registered to hear about its events
(all of them, or the types chosen), signed with its secret (kept sealed: portal/sealing.py,
as the two-factor keys are, since the app must read it back to sign). After a rotation the
previous secret signs too until `previous_secret_expires_at`.

A WebhookEvent is written in the same transaction as the change it tells of (the outbox:
an event exists iff its change committed), with one WebhookDelivery per endpoint that
hears it; the jobs (step "webhooks-deliver") send the deliveries and retry them."""

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import now
from portal.extensions import db
from portal.models.accounts import Account, _enum
from portal.models.types import UTCDateTime

ALL_EVENTS = "*"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # gave up (3 days of retries), or the endpoint was refused


DELIVERY_LABELS = {
    DeliveryStatus.PENDING: "Pending",
    DeliveryStatus.SUCCEEDED: "Succeeded",
    DeliveryStatus.FAILED: "Failed",
}


class WebhookEndpoint(db.Model):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_account", "account_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # "*" (every type), or the chosen types separated by spaces.
    event_types: Mapped[str] = mapped_column(Text, default=ALL_EVENTS)
    secret_sealed: Mapped[str] = mapped_column(Text)
    previous_secret_sealed: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    account: Mapped[Account] = relationship(lazy="joined")

    @property
    def all_events(self) -> bool:
        return self.event_types.strip() == ALL_EVENTS

    @property
    def type_set(self) -> frozenset[str]:
        return frozenset(self.event_types.split()) - {ALL_EVENTS}

    def hears(self, event_type: str) -> bool:
        return self.all_events or event_type in self.type_set

    def rotating(self, at: datetime) -> bool:
        """A rotation under way: the previous secret still signs beside the current one."""
        return (self.previous_secret_sealed is not None
                and self.previous_secret_expires_at is not None
                and self.previous_secret_expires_at > at)


class WebhookEvent(db.Model):
    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_account", "account_id", "id"),
                      Index("ix_webhook_events_created", "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # evt_…
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    type: Mapped[str] = mapped_column(String(40))
    # The body sent, exactly (JSON): the same bytes on every attempt and redelivery.
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class WebhookDelivery(db.Model):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at", "id"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus),
                                                   default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When it is due (a runner that claims it pushes this past its timeout, so a second
    # runner skips it and a crashed runner's claim lapses); None once it is done.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Retries stop here (3 days after the event, or after a Redeliver).
    retry_until: Mapped[datetime] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(String(300), default="", server_default="")
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    event: Mapped[WebhookEvent] = relationship(lazy="joined")
    endpoint: Mapped[WebhookEndpoint] = relationship(lazy="joined")

    @property
    def status_label(self) -> str:
        return DELIVERY_LABELS[self.status]

    @property
    def is_pending(self) -> bool:
        return self.status == DeliveryStatus.PENDING
