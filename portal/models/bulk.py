"""Issue 17 (K): bulk actions on Settings → Accounts. A BulkAction is one confirmed action
over selected sub-accounts, keyed by the id its confirmation carried (a resubmitted
confirmation finds it and shows its stored results); each selected sub-account is a
BulkActionRow with its own outcome (done / already / refused, and why)."""

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import now
from portal.extensions import db
from portal.models.types import UTCDateTime
from portal.versioning import Spec


class BulkKind(enum.StrEnum):
    SEND_LINKS = "send_links"
    AGENCY_BILLING = "agency_billing"
    PAUSE = "pause"
    STOP = "stop"
    RESUME = "resume"
    SET_BUDGET = "set_budget"
    CLOSE = "close"

    @property
    def is_close(self) -> bool:
        return self is BulkKind.CLOSE

    @property
    def is_links(self) -> bool:
        return self is BulkKind.SEND_LINKS

    @property
    def is_budget(self) -> bool:
        return self is BulkKind.SET_BUDGET


BULK_LABELS = {
    BulkKind.SEND_LINKS: "Send billing links",
    BulkKind.AGENCY_BILLING: "Add to Agency Billing",
    BulkKind.PAUSE: "Pause number swapping",
    BulkKind.STOP: "Stop calls",
    BulkKind.RESUME: "Resume",
    BulkKind.SET_BUDGET: "Set budget",
    BulkKind.CLOSE: "Close",
}


class RowOutcome(enum.StrEnum):
    PENDING = "pending"  # not run yet (a run cut short shows it so)
    DONE = "done"
    ALREADY = "already"  # nothing to do: it was already so (a re-run)
    REFUSED = "refused"


def _bulk_label(_conn, values: dict) -> str:
    kind = values.get("kind") or ""
    try:
        return BULK_LABELS[BulkKind(kind)]  # Change History shows "Bulk action: <this>"
    except ValueError:
        return kind


def _agency_of(_conn, values: dict) -> list[int]:
    return [values["agency_id"]]


class BulkAction(db.Model):
    __tablename__ = "bulk_actions"
    # Change History lists the action (what, how many, each row's outcome in `summary`).
    __versioned__ = (Spec("bulk_action", ("kind", "state", "summary"), label=_bulk_label,
                          accounts=_agency_of,
                          labels={"kind": "Action", "state": "State", "summary": "Results"},
                          values={"kind": {k.value: v for k, v in BULK_LABELS.items()},
                                  "state": {"running": "Running", "done": "Done"}}),)
    __table_args__ = (
        UniqueConstraint("agency_id", "key", name="uq_bulk_actions_agency_key"),
        Index("ix_bulk_actions_agency_created", "agency_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    # The id made when the confirmation was shown (a resubmission carries it again).
    key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # a BulkKind value
    params_json: Mapped[str] = mapped_column(Text, default="{}")  # e.g. the budget asked
    state: Mapped[str] = mapped_column(String(16), default="running")  # running / done
    summary: Mapped[str] = mapped_column(Text, default="")
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    rows: Mapped[list["BulkActionRow"]] = relationship(
        order_by="BulkActionRow.position", back_populates="bulk_action")

    @property
    def label(self) -> str:
        return BULK_LABELS[BulkKind(self.kind)]


class BulkActionRow(db.Model):
    __tablename__ = "bulk_action_rows"
    __table_args__ = (
        UniqueConstraint("bulk_action_id", "account_id", name="uq_bulk_action_rows_account"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bulk_action_id: Mapped[int] = mapped_column(ForeignKey("bulk_actions.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(120))  # as it was named when acted on
    params_json: Mapped[str] = mapped_column(Text, default="{}")  # a row's email, amount
    outcome: Mapped[str] = mapped_column(String(16), default=RowOutcome.PENDING.value)
    message: Mapped[str] = mapped_column(String(500), default="")

    bulk_action: Mapped[BulkAction] = relationship(back_populates="rows")
