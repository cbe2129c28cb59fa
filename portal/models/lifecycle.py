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
    BUDGET_PAUSED = "budget_paused"
    BUDGET_RESUMED = "budget_resumed"


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
    EventKind.BUDGET_PAUSED: "Paused calls: the month's budget was reached",
    EventKind.BUDGET_RESUMED: "Calls resumed after the budget pause",
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

    @property
    def summary(self) -> str:
        """The event in words, from its details: what, to what or whom, how much (the
        Activity list on Account Settings and Parent Settings)."""
        return describe(self.kind, self.details)


_BUDGET_RESUMED = {  # issue 17 (B): why a budget pause was lifted
    "resumed": "resumed by the agency",
    "raised": "the budget was raised",
    "pause off": "the pause was turned off",
    "cleared": "the budget was removed",
    "month": "a new month began",
}


def _money(cents: Any) -> str:
    from portal.services.money import dollars  # plain formatting; no model imported there

    return dollars(int(cents))


def _listed(items: Any) -> str:
    return ", ".join(str(i) for i in items) if items else ""


def describe(kind: EventKind, d: dict[str, Any]) -> str:
    """An event's sentence. Each kind words the details it records; a detail an older
    event lacks is left out (never an empty "(to )")."""
    label = EVENT_LABELS[kind]
    K = EventKind
    if kind in (K.NUMBER_RELEASED, K.NUMBER_RESTORED) and d.get("number"):
        return f"{label}: {d['number']}"
    if kind == K.CLOSED:
        text = "Closed"
        if d.get("by_agency"):
            text += f" with its agency, {d['by_agency']}"
        if d.get("released"):
            text += f"; released {_listed(d['released'])}"
        return text
    if kind == K.REACTIVATED:
        return "Reactivated" + (f" (canceled since {str(d['canceled_at'])[:10]})"
                                if d.get("canceled_at") else "")
    if kind == K.AGENCY_CANCELED:
        text = label
        if d.get("sub_accounts"):
            text += f" ({_listed(d['sub_accounts'])})"
        if d.get("released"):
            text += f"; released {_listed(d['released'])}"
        if d.get("reason"):
            text += f". Reason: {d['reason']}"
        if d.get("comments"):
            text += f". Comments: {d['comments']}"
        return text
    if kind == K.TRANSFERRED_OUT:
        text = f"Transferred {d.get('account') or 'a sub-account'} out of the agency"
        return text + (f", to its new owner {d['new_owner']}" if d.get("new_owner") else "")
    if kind == K.TRANSFERRED_IN:
        text = label + (f" (from {d['agency']})" if d.get("agency") else "")
        if d.get("new_owner"):
            text += f", owned by {d['new_owner']}"
        if d.get("plan"):
            text += f", on the {d['plan']} plan"
        return text
    if kind == K.SUPPORT_REQUESTED:
        text = label + (f" #{d['request']}" if d.get("request") else "")
        kinds = {k.value: v for k, v in SUPPORT_LABELS.items()}
        if d.get("kind"):
            text += f": {kinds.get(d['kind'], d['kind'])}"
        if d.get("number"):
            text += f" ({d['number']})"
        return text
    if kind == K.DATA_PURGED and d.get("calls") is not None:
        calls = int(d["calls"])
        return f"{label}: {calls} call{'s' if calls != 1 else ''}"
    if kind in (K.BILLING_PAUSED, K.BILLING_RESUMED) and d.get("balance") is not None:
        return f"{label} (balance {_money(d['balance'])})"
    if kind == K.BUDGET_PAUSED and d.get("budget") is not None:
        return (f"{label} ({_money(d['spent'])} of {_money(d['budget'])})"
                if d.get("spent") is not None else f"{label} ({_money(d['budget'])})")
    if kind == K.BUDGET_RESUMED and d.get("reason") in _BUDGET_RESUMED:
        return f"{label}: {_BUDGET_RESUMED[d['reason']]}"
    sub = d.get("account") or "a sub-account"
    if kind == K.BILLING_LINK_SENT:
        text = f"Emailed {d.get('email') or 'the customer'} a link to take {sub} off agency billing"
        if d.get("amount_cents") is not None:
            text += f" (starting balance {_money(d['amount_cents'])})"
        return text
    if kind == K.BILLING_LINK_CANCELED:
        return (f"Canceled the billing request for {sub}"
                + (f" sent to {d['email']}" if d.get("email") else ""))
    if kind == K.BILLING_MODE_CHANGED:
        if d.get("billing") == "agency":
            text = f"Added {sub} to agency billing: its usage is paid from the agency balance"
            if d.get("moved_cents"):
                moved = int(d["moved_cents"])
                text += (f"; its balance of {_money(moved)} moved to the agency" if moved > 0
                         else f"; its negative balance of {_money(moved)} moved to the agency")
            return text
        if d.get("billing") == "customer":
            text = f"Took {sub} off agency billing: its customer pays"
            if d.get("email"):
                text = f"Took {sub} off agency billing: {d['email']} pays"
            if d.get("paid_cents") is not None:
                text += f" (paid {_money(d['paid_cents'])} as the opening balance)"
            return text
        return f"Changed {sub}'s billing"
    return label


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
