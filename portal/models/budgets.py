"""Issue 17 (B): a sub-account's monthly budget, set by its agency, and the budget alerts
sent (one per threshold per UTC month)."""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import now
from portal.extensions import db
from portal.models.types import UTCDateTime
from portal.versioning import Spec

DEFAULT_THRESHOLDS = (50, 80, 100)
MAX_THRESHOLDS = 5


class Budget(db.Model):
    """One row per sub-account that has a budget (no row: no budget)."""

    __tablename__ = "budgets"
    # Change History: who set, changed or removed it (not the month's running spend).
    __versioned__ = (Spec("budget", ("amount_cents", "thresholds_text", "pause_calls"),
                          label=lambda _c, _v: "Monthly budget",
                          labels={"amount_cents": "Monthly budget",
                                  "thresholds_text": "Alerts at (%)",
                                  "pause_calls": "Pause calls when the budget is reached"}),)
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
    )

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    # The alert percentages, ascending, comma-separated ("50,80,100").
    thresholds_text: Mapped[str] = mapped_column(String(24), default="50,80,100")
    pause_calls: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The month ("2026-12") and amount whose reaching paused calls already: a Resume in the
    # same month leaves them running until the budget is raised or the month turns.
    paused_key: Mapped[str] = mapped_column(String(32), default="", server_default="")
    # This UTC month's usage debits of the sub-account ("2026-12", cents), kept by every
    # usage posting under the row's lock (a posting in a new month starts it again).
    month: Mapped[str] = mapped_column(String(7), default="", server_default="")
    spent_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)

    @property
    def thresholds(self) -> list[int]:
        return [int(t) for t in self.thresholds_text.split(",") if t]


class BudgetAlert(db.Model):
    """A threshold reached in a month: the UNIQUE constraint makes it once, also when
    postings race (the loser's insert does nothing)."""

    __tablename__ = "budget_alerts"
    __table_args__ = (
        UniqueConstraint("account_id", "month", "threshold",
                         name="uq_budget_alerts_account_month_threshold"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    month: Mapped[str] = mapped_column(String(7))  # "2026-12", UTC
    threshold: Mapped[int] = mapped_column(Integer)
    amount_cents: Mapped[int] = mapped_column(BigInteger)  # the budget then
    spent_cents: Mapped[int] = mapped_column(BigInteger)  # the month's spend then
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
