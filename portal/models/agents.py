"""Agent statuses: the built-in ones plus an account's custom ones, in order."""

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import now
from portal.extensions import db
from portal.models.types import UTCDateTime
from portal.versioning import Spec, by_name

# Built in, on every account, before the custom ones: key -> (name, color, available).
BUILTIN_STATUSES = {
    "online": ("Online", "#2e7d32", True),
    "away": ("Away", "#b26a00", False),
    "offline": ("Offline", "#6b7280", False),
}


class AgentStatus(db.Model):
    __tablename__ = "agent_statuses"
    __versioned__ = (Spec("agent_status", ("name", "color", "available", "position"),
                          label=by_name),)
    __table_args__ = (
        CheckConstraint("length(color) = 7", name="color_hex"),
        Index("ix_agent_statuses_account_position", "account_id", "position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(40))
    color: Mapped[str] = mapped_column(String(7))  # #rrggbb
    available: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
