import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import now
from portal.extensions import db
from portal.models.types import UTCDateTime
from portal.versioning import CHANGED, REDACTED, Spec, by_name, by_user_name, own_account


def _enum(cls):
    # Store the lower-case values, as plain strings with a CHECK, on every database.
    return Enum(cls, values_callable=lambda e: [m.value for m in e], native_enum=False,
                validate_strings=True, length=24, create_constraint=True)


class AccountKind(enum.StrEnum):
    STANDALONE = "standalone"
    AGENCY = "agency"
    SUB = "sub"


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    SWAPPING_PAUSED = "swapping_paused"
    CALLS_STOPPED = "calls_stopped"
    BILLING_PAUSED = "billing_paused"
    CANCELED = "canceled"
    BUDGET_PAUSED = "budget_paused"  # issue 17: calls stopped, the month's budget reached


class BillingMode(enum.StrEnum):
    """Whose balance pays: the agency's (sub-accounts only) or the account's own."""

    AGENCY = "agency"
    CUSTOMER = "customer"


class Role(enum.StrEnum):
    """A membership's role; what each may do is the matrix in portal/roles.py."""

    OWNER = "owner"
    ADMIN = "admin"
    BILLING = "billing"
    USER = "user"


PLANS = ("Starter", "Essentials", "Pro", "Performance", "Marketing Lite", "Agency")

STATUS_LABELS = {
    AccountStatus.ACTIVE: "Active",
    AccountStatus.SWAPPING_PAUSED: "Swapping paused",
    AccountStatus.CALLS_STOPPED: "Calls stopped",
    AccountStatus.BILLING_PAUSED: "Billing paused",
    AccountStatus.CANCELED: "Canceled",
    AccountStatus.BUDGET_PAUSED: "Calls paused: budget reached",
}


class Account(db.Model):
    __tablename__ = "accounts"
    __versioned__ = (
        Spec("account", ("name", "plan", "status", "require_two_factor", "auto_redact"),
             label=by_name, accounts=own_account, actions=frozenset({CHANGED, REDACTED})),
        Spec("billing_mode", ("billing_mode",), label=by_name, accounts=own_account,
             actions=frozenset({CHANGED, REDACTED})),
    )
    __table_args__ = (
        CheckConstraint(
            "(kind = 'sub') = (parent_id IS NOT NULL)", name="sub_has_parent"
        ),
        CheckConstraint(
            "kind = 'sub' OR billing_mode = 'customer'", name="only_subs_agency_billed"
        ),
        CheckConstraint(
            "(status = 'canceled') = (canceled_at IS NOT NULL)", name="canceled_has_date"
        ),
        # Settings → Accounts reads an agency's sub-accounts in name order.
        Index("ix_accounts_parent_name_id", "parent_id", "name", "id"),
        # ... and counts them by status (the filter panel) from the index alone.
        Index("ix_accounts_parent_status", "parent_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[AccountKind] = mapped_column(_enum(AccountKind))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    plan: Mapped[str] = mapped_column(String(32))
    status: Mapped[AccountStatus] = mapped_column(
        _enum(AccountStatus), default=AccountStatus.ACTIVE
    )
    billing_mode: Mapped[BillingMode] = mapped_column(
        _enum(BillingMode), default=BillingMode.CUSTOMER
    )
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The ledger's sum, kept in the same transaction as each entry (checked by
    # `flask ledger check`).
    balance_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Set by the scheduled purge 60 days after cancelation: call data removed, no way back.
    data_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Account Security: every user of the account (and, on an agency, of its sub-accounts)
    # must sign in with a second factor.
    require_two_factor: Mapped[bool] = mapped_column(Boolean, default=False,
                                                     server_default=false())
    # GDPR: new calls' personal data (caller name, number, notes) is removed on arrival.
    auto_redact: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)

    # raise_on_sql, not raise: still no lazy query of its own, but after a rollback (a refused
    # action) the expired account reloads with the joinedload it was first loaded with, and
    # the page's header can name the agency again.
    parent = relationship("Account", remote_side=[id], lazy="raise_on_sql")

    @property
    def is_agency(self) -> bool:
        return self.kind == AccountKind.AGENCY

    @property
    def is_sub(self) -> bool:
        return self.kind == AccountKind.SUB

    @property
    def is_canceled(self) -> bool:
        return self.status == AccountStatus.CANCELED

    @property
    def is_active(self) -> bool:
        return self.status == AccountStatus.ACTIVE

    @property
    def is_swapping_paused(self) -> bool:
        return self.status == AccountStatus.SWAPPING_PAUSED

    @property
    def is_calls_stopped(self) -> bool:
        return self.status == AccountStatus.CALLS_STOPPED

    @property
    def is_billing_paused(self) -> bool:
        return self.status == AccountStatus.BILLING_PAUSED

    @property
    def is_budget_paused(self) -> bool:
        """Issue 17: calls paused by its agency's budget rule (like calls stopped)."""
        return self.status == AccountStatus.BUDGET_PAUSED

    @property
    def is_agency_billed(self) -> bool:
        """A sub-account whose usage the agency's balance pays."""
        return self.billing_mode == BillingMode.AGENCY

    @property
    def plan_fee_cents(self) -> int:
        """The monthly plan fee it is charged (rules.PLAN_FEES; 0 for a plan not listed). A
        sub-account pays none: its agency's plan covers it (services/fees.py)."""
        from portal import rules

        return 0 if self.is_sub else rules.PLAN_FEES.get(self.plan, 0)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    def __repr__(self) -> str:
        return f"<Account {self.id} {self.name!r} {self.kind}>"


class Membership(db.Model):
    """A user's role on one account. Owners and admins of an agency reach its subs."""

    __tablename__ = "memberships"
    __versioned__ = (Spec("membership", ("user_id", "role"), label=by_user_name),)
    __table_args__ = (UniqueConstraint("user_id", "account_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    # The user's agent status on this account: a built-in key or "custom:<id>".
    agent_status: Mapped[str] = mapped_column(String(40), default="online",
                                              server_default="online")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    user = relationship("User", back_populates="memberships", lazy="raise")
    account = relationship("Account", lazy="raise")
