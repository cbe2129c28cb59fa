"""The sandbox processor's own tables (issue 16): what a processor keeps on its side.

The portal never reads these: only the sandbox (portal/sandbox/core.py and SandboxGateway)
does, through its own connection outside the portal's transaction, as a real processor's
storage would be. Ids look like a processor's: pm_sbx_…, seti_sbx_…, pi_sbx_…, ch_… (old).
"""

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import now
from portal.extensions import db
from portal.models.types import UTCDateTime


class SandboxCharge(db.Model):
    """The sandbox processor's memory of charges (payment intents), by idempotency key."""

    __tablename__ = "sandbox_charges"

    idempotency_key: Mapped[str] = mapped_column(String(120), primary_key=True)
    token: Mapped[str] = mapped_column(String(64))  # tok_… (old flows) or pm_sbx_…
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    code: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(40), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    # issue 16: succeeded | failed | requires_action | canceled
    status: Mapped[str] = mapped_column(String(24), default="", server_default="")
    customer: Mapped[str] = mapped_column(String(40), default="", server_default="")
    off_session: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    client_secret: Mapped[str] = mapped_column(String(80), default="", server_default="")


class SandboxRefund(db.Model):
    """The sandbox processor's memory of refunds, by idempotency key."""

    __tablename__ = "sandbox_refunds"

    idempotency_key: Mapped[str] = mapped_column(String(120), primary_key=True)
    charge_reference: Mapped[str] = mapped_column(String(64), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    code: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class SandboxPaymentMethod(db.Model):
    """A payment method entered on the sandbox's own form (pm_sbx_…): what it shows and how
    it behaves. Never the card number, the CVC or the bank account number."""

    __tablename__ = "sandbox_payment_methods"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # card | ach
    behaviour: Mapped[str] = mapped_column(String(32))
    brand: Mapped[str] = mapped_column(String(32))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    exp_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    holder: Mapped[str] = mapped_column(String(200), default="")
    bank_name: Mapped[str] = mapped_column(String(64), default="", server_default="")
    customer: Mapped[str] = mapped_column(String(40), default="", server_default="")
    authenticated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    detached: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class SandboxSetup(db.Model):
    """A setup intent (seti_sbx_…): saving a method for later off-session use."""

    __tablename__ = "sandbox_setups"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    client_secret: Mapped[str] = mapped_column(String(80))
    customer: Mapped[str] = mapped_column(String(40))
    payment_method: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(24))  # succeeded|failed|requires_action|canceled
    code: Mapped[str] = mapped_column(String(32), default="")
    next_action: Mapped[str] = mapped_column(String(32), default="", server_default="")
    microdeposit_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
