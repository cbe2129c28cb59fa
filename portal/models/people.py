"""An invitation to join an account with a role (Settings → Users → Invite User).

The emailed link names only `link_id` (signed, like a billing link: billing_links/tokens.py);
the account, the email and the role are read from this row. It works once: accepting
consumes it (pending → accepted) in the transaction that creates the membership. A newer
invitation to the same email on the same account replaces it; revoking ends it.
"""

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import now
from portal.extensions import db
from portal.models.accounts import Role, _enum
from portal.models.types import UTCDateTime


class InvitationStatus(enum.StrEnum):
    PENDING = "pending"  # emailed, waiting for the person
    ACCEPTED = "accepted"  # used up: the membership exists
    REVOKED = "revoked"  # an owner or admin revoked it
    REPLACED = "replaced"  # a newer invitation was sent (Resend, or Invite again)


class Invitation(db.Model):
    __tablename__ = "invitations"
    __table_args__ = (
        # One live invitation per account and email (a new one replaces the old in the same
        # transaction).
        Index("uq_invitations_pending_email", "account_id", "email", unique=True,
              sqlite_where=text("status = 'pending'"),
              postgresql_where=text("status = 'pending'")),
        # The throttle counts an account's invitations of the last hour.
        Index("ix_invitations_account_created", "account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_id: Mapped[str] = mapped_column(String(32), unique=True)  # random, what is signed
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    email: Mapped[str] = mapped_column(String(254))  # normalized (lower case)
    role: Mapped[Role] = mapped_column(_enum(Role))
    status: Mapped[InvitationStatus] = mapped_column(_enum(InvitationStatus),
                                                     default=InvitationStatus.PENDING)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # accepted/revoked/replaced

    @property
    def is_pending(self) -> bool:
        return self.status == InvitationStatus.PENDING
