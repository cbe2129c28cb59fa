from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db
from portal.models.types import UTCDateTime
from portal.versioning import REDACTED, Spec


class Call(db.Model):
    """One inbound call to a tracking number. Times are UTC."""

    __tablename__ = "calls"
    # Versioned only when its personal data is removed, and without the values.
    __versioned__ = (Spec("call", ("caller_name", "caller_number", "notes"),
                          hidden=("caller_name", "caller_number", "notes"),
                          label=lambda _c, v: f"Call #{v['id']}", actions=frozenset({REDACTED})),)
    __table_args__ = (
        Index("ix_calls_account_started", "account_id", "started_at"),
        # GDPR export and erase find one caller's calls.
        Index("ix_calls_account_caller", "account_id", "caller_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    tracking_number_id: Mapped[int | None] = mapped_column(ForeignKey("tracking_numbers.id"))
    caller_number: Mapped[str] = mapped_column(String(16))
    caller_name: Mapped[str] = mapped_column(String(120), default="")
    called_number: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(60), default="")
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Set when the caller's name, number and notes were removed (GDPR): for good.
    redacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
