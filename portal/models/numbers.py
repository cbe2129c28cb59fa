import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import now
from portal.extensions import db
from portal.models.accounts import _enum
from portal.models.types import UTCDateTime
from portal.versioning import Spec


class NumberStatus(enum.StrEnum):
    ACTIVE = "active"
    RELEASED = "released"


class TrackingNumber(db.Model):
    __tablename__ = "tracking_numbers"
    __versioned__ = (Spec("tracking_number", ("number", "label", "status", "released_at"),
                          label=lambda _c, v: v["number"]),)
    __table_args__ = (
        CheckConstraint("number LIKE '+%'", name="e164"),
        CheckConstraint(
            "(status = 'released') = (released_at IS NOT NULL)", name="released_has_date"
        ),
        # A number is active on at most one account at a time.
        Index(
            "uq_tracking_numbers_active_number", "number", unique=True,
            sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'"),
        ),
        Index("ix_tracking_numbers_account_status", "account_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    number: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(120), default="")
    status: Mapped[NumberStatus] = mapped_column(_enum(NumberStatus), default=NumberStatus.ACTIVE)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
