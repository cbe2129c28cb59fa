"""What happened to an account (the lifecycle record) and its support requests."""

import enum
import json
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import now
from portal.extensions import db
from portal.models.accounts import _enum
from portal.models.types import UTCDateTime


class EventKind(enum.StrEnum):
    SWAPPING_PAUSED = "swapping_paused"
    CALLS_STOPPED = "calls_stopped"
    RESUMED = "resumed"
    CLOSED = "closed"
    REACTIVATED = "reactivated"
    NUMBER_RELEASED = "number_released"
    NUMBER_RESTORED = "number_restored"
    AGENCY_CANCELED = "agency_canceled"
    TRANSFERRED_OUT = "transferred_out"
    TRANSFERRED_IN = "transferred_in"
    SUPPORT_REQUESTED = "support_requested"
    DATA_PURGED = "data_purged"
    BILLING_PAUSED = "billing_paused"
    BILLING_RESUMED = "billing_resumed"
    BILLING_LINK_SENT = "billing_link_sent"
    BILLING_LINK_CANCELED = "billing_link_canceled"
    BILLING_MODE_CHANGED = "billing_mode_changed"


EVENT_LABELS = {
    EventKind.SWAPPING_PAUSED: "Paused number swapping",
    EventKind.CALLS_STOPPED: "Stopped incoming calls and paused number swapping",
    EventKind.RESUMED: "Resumed",
    EventKind.CLOSED: "Closed",
    EventKind.REACTIVATED: "Reactivated",
    EventKind.NUMBER_RELEASED: "Released a tracking number",
    EventKind.NUMBER_RESTORED: "Restored a tracking number",
    EventKind.AGENCY_CANCELED: "Canceled the agency and all sub-accounts",
    EventKind.TRANSFERRED_OUT: "Transferred out of the agency",
    EventKind.TRANSFERRED_IN: "Became a standalone account",
    EventKind.SUPPORT_REQUESTED: "Sent a support request",
    EventKind.DATA_PURGED: "Call data removed (60 days after closing)",
    EventKind.BILLING_PAUSED: "Paused for billing: the balance went below zero",
    EventKind.BILLING_RESUMED: "Billing pause lifted: the balance is zero or more",
    EventKind.BILLING_LINK_SENT: "Emailed a customer a link to take a sub-account off agency "
                                 "billing",
    EventKind.BILLING_LINK_CANCELED: "Canceled a billing request",
    EventKind.BILLING_MODE_CHANGED: "Changed a sub-account's billing",
}


class AccountEvent(db.Model):
    """Append-only: who did what to an account, and when (UTC)."""

    __tablename__ = "account_events"
    __table_args__ = (Index("ix_account_events_account_at", "account_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: the system
    kind: Mapped[EventKind] = mapped_column(_enum(EventKind))
    details_json: Mapped[str] = mapped_column(Text, default="{}")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    actor = relationship("User", lazy="raise")

    @property
    def details(self) -> dict[str, Any]:
        return json.loads(self.details_json or "{}")

    @property
    def label(self) -> str:
        return EVENT_LABELS[self.kind]


class SupportKind(enum.StrEnum):
    REFUND = "refund"
    RESTORE_NUMBER = "restore_number"
    REACTIVATE_AGENCY = "reactivate_agency"
    OTHER = "other"


SUPPORT_LABELS = {
    SupportKind.REFUND: "Refund of the available balance",
    SupportKind.RESTORE_NUMBER: "Restore a released number (carrier inquiry)",
    SupportKind.REACTIVATE_AGENCY: "Reactivate a canceled agency",
    SupportKind.OTHER: "Something else",
}


class SupportStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    DECLINED = "declined"


class SupportRequest(db.Model):
    """A ticket: refunds, restoring numbers past 14 days, reactivating a canceled agency."""

    __tablename__ = "support_requests"
    __table_args__ = (Index("ix_support_requests_account_status", "account_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[SupportKind] = mapped_column(_enum(SupportKind))
    status: Mapped[SupportStatus] = mapped_column(_enum(SupportStatus),
                                                  default=SupportStatus.OPEN)
    tracking_number_id: Mapped[int | None] = mapped_column(ForeignKey("tracking_numbers.id"))
    message: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[str] = mapped_column(Text, default="")

    created_by = relationship("User", lazy="raise")
    tracking_number = relationship("TrackingNumber", lazy="raise")

    @property
    def label(self) -> str:
        return SUPPORT_LABELS[self.kind]
