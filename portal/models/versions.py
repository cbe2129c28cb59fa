"""Versions: every create, change and delete of a settings record, with the fields before
and after. Written by portal.versioning (one session hook for every model), never by views."""

import json
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import now
from portal.extensions import db
from portal.models.types import UTCDateTime


class Version(db.Model):
    __tablename__ = "versions"
    __table_args__ = (
        # Change History: one account's versions, newest first.
        Index("ix_versions_account_at", "account_id", "at", "id"),
        # A feature page's Versions panel: one record's versions.
        Index("ix_versions_record", "account_id", "record_type", "record_id", "at"),
        # Change History's user filter: who made an account's versions.
        Index("ix_versions_account_actor", "account_id", "actor_id"),
        # The purge walks by age.
        Index("ix_versions_at", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    record_type: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[int] = mapped_column(Integer)
    record_label: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(16))  # created, changed, deleted, redacted
    # {"field": [before, after]}; a hidden field (personal data) is [null, null] with its name
    # only: the values are never written here.
    changes_json: Mapped[str] = mapped_column(Text, default="{}")
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Who, as shown: the user's name then, "System" for the scheduled jobs, or "Customer
    # (billing link)".
    actor_label: Mapped[str] = mapped_column(String(160), default="System")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    actor = relationship("User", lazy="raise")

    @property
    def changes(self) -> dict[str, Any]:
        return json.loads(self.changes_json or "{}")
