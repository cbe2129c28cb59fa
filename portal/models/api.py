"""Issue 18: the public API's keys, and what the API keeps per key.

An ApiKey belongs to one account and acts on it (and, for an agency's key, on its
sub-accounts) with its scopes and the role it was given when made (owner or admin, never
more than its maker's). Only a hash of its secret is kept: the token is shown once.

ApiIdempotency holds the first answer to a write sent with an Idempotency-Key, so that the
same key and body replay it; ApiRateWindow counts a key's requests per minute (the 429s)."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import now
from portal.extensions import db
from portal.models.accounts import Account, Role, _enum
from portal.models.types import UTCDateTime
from portal.versioning import Spec

SCOPES = ("read", "write", "metering")
SCOPE_LABELS = {
    "read": "Read: accounts, billing, statements, history",
    "write": "Write: every change its role may make in the portal",
    "metering": "Metering: post usage",
}


class ApiKey(db.Model):
    __tablename__ = "api_keys"
    # Change History: a key made (its name, scopes, role) and revoked; never its secret.
    __versioned__ = (Spec("api_key", ("name", "scopes", "role", "revoked_at"),
                          label=lambda _c, v: f"“{v.get('name') or ''}”",
                          labels={"scopes": "Scopes", "revoked_at": "Revoked",
                                  "role": "Acts as"}),)
    __table_args__ = (Index("ix_api_keys_account", "account_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(80))
    # The token is "apk_<prefix>_<secret>": the prefix finds the row, the secret's SHA-256
    # is compared in constant time (a 256-bit random secret needs no slow hash).
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(40))  # space-separated, from SCOPES
    role: Mapped[Role] = mapped_column(_enum(Role))  # owner or admin
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    account: Mapped[Account] = relationship(lazy="joined")
    created_by = relationship("User", foreign_keys=[created_by_id])
    revoked_by = relationship("User", foreign_keys=[revoked_by_id])

    # The role it acts with in this request: `role`, or less when its maker's own role on
    # the account is less now (set by api_keys.authenticate; not a column).
    acting_role = None

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())

    @property
    def acts_as(self) -> str:
        """"an owner" or "an admin", as the emails say it."""
        return "an owner" if self.role == Role.OWNER else "an admin"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def hint(self) -> str:
        """What the Developers page shows of a key: its prefix, never its secret."""
        return f"apk_{self.prefix}_…"


class ApiIdempotency(db.Model):
    """The first answer to a write sent with an Idempotency-Key (per API key). `fingerprint`
    is a SHA-256 of the method, path and body: the same key with another request is 422.
    status 0: the first request is still running (a second one at once is 409)."""

    __tablename__ = "api_idempotency"
    __table_args__ = (UniqueConstraint("api_key_id", "key", name="uq_api_idempotency_key"),
                      Index("ix_api_idempotency_created", "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer, default=0)
    content_type: Mapped[str] = mapped_column(String(100), default="", server_default="")
    headers: Mapped[str] = mapped_column(Text, default="", server_default="")  # JSON
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class ApiRateWindow(db.Model):
    """A key's requests in one minute (window_start: the minute's start, UTC), per bucket:
    "api" (every request) or "metering" (the usage endpoints, with their larger limit)."""

    __tablename__ = "api_rate_windows"
    __table_args__ = (UniqueConstraint("api_key_id", "bucket", "window_start",
                                       name="uq_api_rate_windows_key_window"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    bucket: Mapped[str] = mapped_column(String(16), default="api", server_default="api")
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer, default=0)
