"""Issue 17 (J): a statement past rules.STATEMENT_SYNC_MAX_ENTRIES is made by the jobs
(step "statements-prepare"), not in the request: a StatementFile is that statement, pending
until the jobs build it, then ready (its PDF kept 7 days) or failed (with the error)."""

import enum
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import now
from portal.extensions import db
from portal.models.accounts import _enum
from portal.models.types import UTCDateTime


class FileStatus(enum.StrEnum):
    PENDING = "pending"
    BUILDING = "building"  # claimed by a job runner (two runners never build the same one)
    READY = "ready"
    FAILED = "failed"


FILE_STATUS_LABELS = {
    FileStatus.PENDING: "Being prepared",
    FileStatus.BUILDING: "Being prepared",
    FileStatus.READY: "Ready",
    FileStatus.FAILED: "Failed",
}


class StatementFile(db.Model):
    __tablename__ = "statement_files"
    __table_args__ = (
        # One statement in the making per account and period: a second request reuses it
        # (the loser of a race reads the winner's row back).
        Index("uq_statement_files_open", "account_id", "period_from", "period_to",
              unique=True,
              sqlite_where=text("status IN ('pending', 'building')"),
              postgresql_where=text("status IN ('pending', 'building')")),
        Index("ix_statement_files_account_created", "account_id", "created_at", "id"),
        Index("ix_statement_files_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    period_from: Mapped[date] = mapped_column(Date)
    period_to: Mapped[date] = mapped_column(Date)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[FileStatus] = mapped_column(_enum(FileStatus), default=FileStatus.PENDING)
    # Send Statement for a big period: the addresses it goes to when ready (one a line),
    # besides the requester's download-link email.
    send_to: Mapped[str] = mapped_column(Text, default="", server_default="")
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    pages: Mapped[int | None] = mapped_column(Integer)
    size: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(String(300), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def status_label(self) -> str:
        return FILE_STATUS_LABELS[self.status]

    @property
    def is_open(self) -> bool:
        return self.status in (FileStatus.PENDING, FileStatus.BUILDING)

    @property
    def is_ready(self) -> bool:
        return self.status == FileStatus.READY

    @property
    def is_failed(self) -> bool:
        return self.status == FileStatus.FAILED
