"""The ledger: every balance change is an append-only entry (integer cents)."""

import enum
from datetime import datetime

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    event,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import now
from portal.extensions import db
from portal.models.accounts import _enum
from portal.models.sandbox import SandboxCharge, SandboxRefund  # noqa: F401  (re-exported)
from portal.models.types import UTCDateTime
from portal.versioning import Spec, by_user_name


class LedgerKind(enum.StrEnum):
    PAYMENT = "payment"
    RECHARGE = "recharge"
    USAGE = "usage"
    PLAN_FEE = "plan_fee"
    TAX = "tax"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    DISPUTE = "dispute"  # a cardholder disputed a payment: the processor took it back
    DISPUTE_REVERSAL = "dispute_reversal"  # the dispute was won: the money came back


LEDGER_LABELS = {
    LedgerKind.PAYMENT: "Payment",
    LedgerKind.RECHARGE: "Auto recharge",
    LedgerKind.USAGE: "Usage",
    LedgerKind.PLAN_FEE: "Plan fee",
    LedgerKind.TAX: "Tax",
    LedgerKind.TRANSFER_IN: "Transfer in",
    LedgerKind.TRANSFER_OUT: "Transfer out",
    LedgerKind.REFUND: "Refund",
    LedgerKind.ADJUSTMENT: "Adjustment",
    LedgerKind.DISPUTE: "Dispute",
    LedgerKind.DISPUTE_REVERSAL: "Dispute won",
}


class Cause(enum.StrEnum):
    """What made the entry: a person, a card charge, a usage batch, a scheduled job."""

    USER = "user"
    CHARGE = "charge"
    USAGE = "usage"
    JOB = "job"


class LedgerEntry(db.Model):
    """Append-only. The account's balance is the sum of its entries' amounts."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key"),
        # A usage key belongs to the metered account ("usage:<account id>:<key>"), whichever
        # ledger paid: posted on the agency's and again on the sub-account's own ledger after
        # a billing switch, it would be debited twice.
        Index("uq_ledger_entries_usage_key", "idempotency_key", unique=True,
              sqlite_where=text("kind = 'usage'"), postgresql_where=text("kind = 'usage'")),
        Index("ix_ledger_entries_account_created", "account_id", "created_at", "id"),
        # Billing Logs filtered by kind (and a date range), newest first.
        Index("ix_ledger_entries_account_kind_created", "account_id", "kind", "created_at",
              "id"),
        # Billing Logs: a receipt number's entries (cause_ref is the charge id), both
        # databases; every "description contains" search on PostgreSQL (pg_trgm).
        Index("ix_ledger_entries_account_cause_ref", "account_id", "cause_ref", "created_at", "id"),
        Index("ix_ledger_entries_description_trgm", "description", postgresql_using="gin",
              postgresql_ops={"description": "gin_trgm_ops"}).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))  # whose balance
    kind: Mapped[LedgerKind] = mapped_column(_enum(LedgerKind))
    amount_cents: Mapped[int] = mapped_column(BigInteger)  # + credit, - debit
    balance_after_cents: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(String(200))
    # The sub-account that incurred it, when an agency's balance pays for a sub-account.
    for_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    cause: Mapped[Cause] = mapped_column(_enum(Cause))
    cause_ref: Mapped[str] = mapped_column(String(64), default="")
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    idempotency_key: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    @property
    def label(self) -> str:
        return LEDGER_LABELS[self.kind]


# The trigram index's operator class, for metadata.create_all on PostgreSQL (the benchmarks'
# fresh databases); the migration creates the extension too.
event.listen(LedgerEntry.__table__, "before_create",
             DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"))


# The sandbox processor's tables live in portal/models/sandbox.py (issue 16); re-exported.


class MethodKind(enum.StrEnum):
    CARD = "card"
    ACH = "ach"


class MethodRole(enum.StrEnum):
    PRIMARY = "primary"
    BACKUP = "backup"
    OTHER = "other"


class MethodVerification(enum.StrEnum):
    VERIFIED = "verified"  # usable
    PENDING = "pending"  # an ACH account waiting for its micro-deposits
    FAILED = "failed"  # micro-deposits never matched
    DETACHED = "detached"  # removed at the processor


class PaymentMethod(db.Model):
    """A card or bank account as the gateway tokenized it: never the number or the CVC."""

    __tablename__ = "payment_methods"
    __versioned__ = (Spec(
        "payment_method", ("kind", "brand", "last4", "exp_month", "exp_year", "holder", "role",
                           "removed_at"),
        label=lambda _c, v: f"{v.get('brand') or 'Card'} ending {v.get('last4') or '????'}",
        values={"kind": {"card": "Credit card", "ach": "Bank account (ACH)"}}),)
    __table_args__ = (
        # At most one Primary and one Backup among an account's methods in use.
        Index("uq_payment_methods_account_role", "account_id", "role", unique=True,
              sqlite_where=text("role != 'other' AND removed_at IS NULL"),
              postgresql_where=text("role != 'other' AND removed_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[MethodKind] = mapped_column(_enum(MethodKind))
    brand: Mapped[str] = mapped_column(String(32))  # "Visa" ... or "Bank account"
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    holder: Mapped[str] = mapped_column(String(120))
    token: Mapped[str] = mapped_column(String(64))  # the processor's pm_… id
    # Which gateway saved it ("sandbox" | "stripe"): another gateway's method can't be used.
    gateway: Mapped[str] = mapped_column(String(16), default="sandbox",
                                         server_default="sandbox")
    customer_ref: Mapped[str] = mapped_column(String(64), default="", server_default="")
    setup_reference: Mapped[str] = mapped_column(String(64), default="", server_default="")
    verification: Mapped[MethodVerification] = mapped_column(
        _enum(MethodVerification), default=MethodVerification.VERIFIED,
        server_default="verified")
    role: Mapped[MethodRole] = mapped_column(_enum(MethodRole), default=MethodRole.OTHER)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def short_label(self) -> str:
        """"Visa ending 4242", "Bank account ending 6789": in tables, receipts and mail."""
        return f"{self.brand} ending {self.last4}"

    @property
    def label(self) -> str:
        """The short label, and a card's expiry: "Visa ending 4242, expires 12/2030"."""
        if self.kind == MethodKind.ACH:
            return self.short_label
        return f"{self.short_label}, expires {self.exp_month:02d}/{self.exp_year}"

    @property
    def is_primary(self) -> bool:
        return self.role == MethodRole.PRIMARY

    @property
    def is_backup(self) -> bool:
        return self.role == MethodRole.BACKUP

    @property
    def awaits_verification(self) -> bool:
        """An ACH account waiting for its micro-deposits."""
        return self.verification == MethodVerification.PENDING

    @property
    def verification_failed(self) -> bool:
        return self.verification == MethodVerification.FAILED

    @property
    def is_detached(self) -> bool:
        """Removed at the processor: it can't pay."""
        return self.verification == MethodVerification.DETACHED


class ChargePurpose(enum.StrEnum):
    PAYMENT = "payment"  # Make a Payment
    RECHARGE = "recharge"  # auto recharge
    PLAN_FEE = "plan_fee"  # Opt-in Direct Charge for Plan Subscription
    OPENING_BALANCE = "opening_balance"  # a customer taking a sub-account off agency billing


CHARGE_LABELS = {
    ChargePurpose.PAYMENT: "Payment",
    ChargePurpose.RECHARGE: "Auto recharge",
    ChargePurpose.PLAN_FEE: "Plan subscription",
    ChargePurpose.OPENING_BALANCE: "Opening balance",
}


class ChargeStatus(enum.StrEnum):
    PENDING = "pending"  # on record, the processor not yet (or not surely) answered
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Charge(db.Model):
    """One attempt to charge a payment method: Account Payment History.

    Written as pending before the processor is called, with the idempotency key the
    processor gets, so a crash or timeout leaves a record that is retried with the same key:
    never charged twice, never credited without a charge.
    """

    __tablename__ = "charges"
    __table_args__ = (
        # At most one auto recharge in flight per account: concurrent usage can't start two.
        Index("uq_charges_pending_recharge", "account_id", unique=True,
              sqlite_where=text("status = 'pending' AND purpose = 'recharge'"),
              postgresql_where=text("status = 'pending' AND purpose = 'recharge'")),
        Index("ix_charges_account_created", "account_id", "created_at", "id"),
        Index("ix_charges_pending", "status", "last_attempt_at"),
        # A payment method's last result (Payment Methods: "Declined Nov 28", "Paid Nov 30").
        Index("ix_charges_method", "method_id", "id"),
        # A webhook finds its charge by the processor's payment id.
        Index("ix_charges_gateway_reference", "gateway_reference"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    method_id: Mapped[int] = mapped_column(ForeignKey("payment_methods.id"))
    purpose: Mapped[ChargePurpose] = mapped_column(_enum(ChargePurpose))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[ChargeStatus] = mapped_column(_enum(ChargeStatus),
                                                 default=ChargeStatus.PENDING)
    failure_code: Mapped[str] = mapped_column(String(32), default="")
    failure_message: Mapped[str] = mapped_column(String(200), default="")
    gateway_reference: Mapped[str] = mapped_column(String(64), default="")
    # The processor's own status ("requires_action", "processing", ...), for the pages.
    processor_status: Mapped[str] = mapped_column(String(24), default="", server_default="")
    # When it started waiting for the payer to authenticate (3-D Secure), else None.
    action_required_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    method = relationship("PaymentMethod", lazy="joined")
    # Its refund, if any (one full refund per charge): Payment History and the receipt say so.
    refund = relationship("Refund", uselist=False, viewonly=True, lazy="selectin")

    @property
    def label(self) -> str:
        return CHARGE_LABELS[self.purpose]

    @property
    def receipt_number(self) -> str:
        return f"R-{self.id:08d}"

    @property
    def is_succeeded(self) -> bool:
        return self.status == ChargeStatus.SUCCEEDED

    @property
    def is_failed(self) -> bool:
        return self.status == ChargeStatus.FAILED

    @property
    def is_pending(self) -> bool:
        return self.status == ChargeStatus.PENDING


class RefundStatus(enum.StrEnum):
    PENDING = "pending"  # on record, the processor not yet (or not surely) answered
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RefundSource(enum.StrEnum):
    PORTAL = "portal"  # the portal asked the processor
    PROCESSOR = "processor"  # the processor told us (a Dashboard refund)


class Refund(db.Model):
    """Money given back on a charge through the processor (today: a billing-link payment
    that arrived after its request could no longer be honoured).

    Like a charge: written as pending with the idempotency key the processor gets and
    committed before the processor is called; the answer settles it once, and a success
    debits the ledger (kind refund) under a key derived from the refund."""

    __tablename__ = "refunds"
    __table_args__ = (Index("ix_refunds_pending", "status", "last_attempt_at"),
                      Index("ix_refunds_gateway_reference", "gateway_reference"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    charge_id: Mapped[int] = mapped_column(ForeignKey("charges.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    # Who is told, besides the account's billing-email recipients (the customer who paid a
    # billing link has no user).
    notify_email: Mapped[str] = mapped_column(String(254), default="")
    status: Mapped[RefundStatus] = mapped_column(_enum(RefundStatus),
                                                 default=RefundStatus.PENDING)
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    gateway_reference: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[RefundSource] = mapped_column(_enum(RefundSource), default=RefundSource.PORTAL,
                                                 server_default="portal")
    failure_message: Mapped[str] = mapped_column(String(200), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    charge = relationship("Charge", lazy="joined")

    @property
    def is_succeeded(self) -> bool:
        return self.status == RefundStatus.SUCCEEDED

    @property
    def is_failed(self) -> bool:
        return self.status == RefundStatus.FAILED


class ProcessorCustomer(db.Model):
    """The processor's customer for an account (one per gateway), made on first use."""

    __tablename__ = "processor_customers"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    gateway: Mapped[str] = mapped_column(String(16), primary_key=True)
    customer_ref: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class BillingSettings(db.Model):
    """An account's Billing Settings: auto recharge, contact, service address, direct charge.

    No row means the defaults: auto recharge off, nothing filled in.
    """

    __tablename__ = "billing_settings"
    __versioned__ = (
        Spec("billing_settings", ("critical_phone", "address_line1", "address_line2", "city",
                                  "region", "postal_code", "country", "direct_charge"),
             label=lambda _c, _v: "Billing settings"),
        Spec("recharge_settings", ("recharge_threshold_cents", "recharge_amount_cents",
                                   "recharge_cap_cents", "recharge_daily_limit",
                                   "low_balance_cents"),
             label=lambda _c, _v: "Balance Auto Recharge Settings"),
    )

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    # Both set (amount > threshold > 0) or both None (auto recharge off).
    recharge_threshold_cents: Mapped[int | None] = mapped_column(BigInteger)
    recharge_amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    critical_phone: Mapped[str] = mapped_column(String(16), default="")  # E.164
    address_line1: Mapped[str] = mapped_column(String(120), default="")
    address_line2: Mapped[str] = mapped_column(String(120), default="")
    city: Mapped[str] = mapped_column(String(80), default="")
    region: Mapped[str] = mapped_column(String(2), default="")  # US state code
    postal_code: Mapped[str] = mapped_column(String(10), default="")
    country: Mapped[str] = mapped_column(String(2), default="US")
    direct_charge: Mapped[bool] = mapped_column(Boolean, default=False)
    # Recharge guardrails (issue 17): no recharge past the month's cap (None: no cap), at
    # most recharge_daily_limit recharges a UTC day, and none after 3 declined recharges in a
    # row (recharge_declines counts them; recharge_stopped_at is when the third stopped it,
    # cleared by a successful payment or a new card). recharge_cap_month: the month ("2026-12")
    # whose cap reached the recipients were told of (the reset is told once, at its turn).
    recharge_cap_cents: Mapped[int | None] = mapped_column(BigInteger)
    recharge_daily_limit: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    recharge_declines: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    recharge_stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recharge_cap_month: Mapped[str] = mapped_column(String(7), default="", server_default="")
    # "Email me when the balance drops below $X" (None: off); low_balance_below: the balance
    # is below it and the alert for this crossing has gone (cleared when it is back up).
    low_balance_cents: Mapped[int | None] = mapped_column(BigInteger)
    low_balance_below: Mapped[bool] = mapped_column(Boolean, default=False,
                                                    server_default=false())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)

    @property
    def auto_recharge(self) -> bool:
        return self.recharge_threshold_cents is not None

    @property
    def daily_limit(self) -> int:
        """At most this many recharges a UTC day (5 until someone chooses: a row not yet
        stored has no value, and its first version lists only what was set)."""
        return self.recharge_daily_limit if self.recharge_daily_limit is not None else 5

    @property
    def has_address(self) -> bool:
        return bool(self.address_line1 and self.city and self.region and self.postal_code)


class BillingEmailRecipient(db.Model):
    """Users who Receive Billing Emails (chosen on an agency's Billing Settings)."""

    __tablename__ = "billing_email_recipients"
    __versioned__ = (Spec("billing_recipient", ("user_id",), label=by_user_name),)
    __table_args__ = (UniqueConstraint("account_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class ScheduleFrequency(enum.StrEnum):
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class StatementSchedule(db.Model):
    """A recurring statement: the previous week's or month's statement, emailed once per
    period (the job claims a period with a conditional update of last_period_start)."""

    __tablename__ = "statement_schedules"
    __versioned__ = (Spec(
        "statement_schedule", ("frequency", "recipient"),
        label=lambda _c, v: f"{str(getattr(v['frequency'], 'value', v['frequency'])).capitalize()}"
                            f" statement to {v['recipient']}",
        values={"frequency": {"weekly": "Weekly", "monthly": "Monthly"}}),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    frequency: Mapped[ScheduleFrequency] = mapped_column(_enum(ScheduleFrequency))
    recipient: Mapped[str] = mapped_column(String(254))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    # The start of the last period whose statement was sent (None: none yet).
    last_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertKind(enum.StrEnum):
    LOW_BALANCE = "low_balance"
    CAP_REACHED = "recharge_cap_reached"
    CAP_RESET = "recharge_cap_reset"
    RECHARGE_STOPPED = "recharge_stopped"
    BUDGET = "budget"  # issue 17 (B): a sub-account's budget threshold reached


ALERT_LABELS = {
    AlertKind.LOW_BALANCE: "Low balance",
    AlertKind.CAP_REACHED: "Monthly recharge cap reached",
    AlertKind.CAP_RESET: "Monthly recharge cap reset",
    AlertKind.RECHARGE_STOPPED: "Auto recharge stopped",
    AlertKind.BUDGET: "Budget",
}


class Alert(db.Model):
    """An alert sent to an account's billing recipients (Billing Settings → Recent alerts);
    each is also an outbox email. `key` makes it once: once per crossing, per month, ..."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_account_created", "account_id", "created_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))  # whose recipients
    # The sub-account it is about, when an agency is told (budgets, next round).
    for_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(32))  # an AlertKind value (plain: more to come)
    message: Mapped[str] = mapped_column(String(300))
    key: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    @property
    def label(self) -> str:
        try:
            return ALERT_LABELS[AlertKind(self.kind)]
        except ValueError:
            return self.kind.replace("_", " ").capitalize()
