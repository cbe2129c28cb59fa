from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import now
from portal.extensions import db
from portal.models.types import UTCDateTime
from portal.versioning import CHANGED, REDACTED, Spec, by_name, user_accounts


class User(UserMixin, db.Model):
    __tablename__ = "users"
    # Dark mode is the user's own preference, not a setting of any account: not versioned.
    __versioned__ = (Spec("user", ("name", "email", "totp_enabled_at"), label=by_name,
                          accounts=user_accounts, actions=frozenset({CHANGED, REDACTED})),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    dark_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped to sign the user out of every session (Flask-Login's alternative id).
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    # Two-factor sign-in by authenticator app (RFC 6238). The secret is set while the user
    # sets it up and only counts once enabled; the last accepted time step refuses a replay.
    # Sealed (portal/sealing.py): read it with portal.services.security.secret_of.
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    memberships = relationship("Membership", back_populates="user", lazy="raise")

    @property
    def has_two_factor(self) -> bool:
        return self.totp_enabled_at is not None

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class SigninAttempt(db.Model):
    """Every sign-in try, kept for throttling (per email and per address)."""

    __tablename__ = "signin_attempts"
    __table_args__ = (
        Index("ix_signin_attempts_email_at", "email", "at"),
        Index("ix_signin_attempts_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    # "password", or the second step: "totp" / "recovery" (a code) after a good password.
    step: Mapped[str] = mapped_column(String(16), default="password",
                                      server_default="password")
    user_agent: Mapped[str] = mapped_column(String(200), default="", server_default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
