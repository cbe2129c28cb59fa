"""A billing request: the agency asked a customer to take a sub-account off agency billing.

The emailed link names only `link_id` (signed); everything else (the sub-account, the
agency, the email, the amount) is read from this row, never from the customer's form.
"""

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import now
from portal.extensions import db
from portal.models.accounts import _enum
from portal.models.types import UTCDateTime


class RequestStatus(enum.StrEnum):
    PENDING = "pending"  # emailed, waiting for the customer
    PAID = "paid"  # the customer paid: the link is used up
    CANCELED = "canceled"  # the agency canceled it
    REPLACED = "replaced"  # a newer link was sent for the sub-account


class BillingRequest(db.Model):
    __tablename__ = "billing_requests"
    __table_args__ = (
        # One live request per sub-account (a new one replaces the old in the same
        # transaction).
        Index("uq_billing_requests_pending_sub", "sub_account_id", unique=True,
              sqlite_where=text("status = 'pending'"),
              postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_id: Mapped[str] = mapped_column(String(32), unique=True)  # random, what is signed
    agency_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    sub_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    amount_cents: Mapped[int] = mapped_column(BigInteger)  # the starting balance asked
    message: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[RequestStatus] = mapped_column(_enum(RequestStatus),
                                                  default=RequestStatus.PENDING)
    # Declined attempts so far: each new attempt charges under its own key
    # ("billing-link:<link_id>:<attempt>"), so a double submit is one charge and a retry
    # after a decline is a new one.
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    charge_id: Mapped[int | None] = mapped_column(ForeignKey("charges.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # paid/canceled/replaced


class LinkHit(db.Model):
    """Requests to the public link pages, per client address, for rate limiting."""

    __tablename__ = "billing_link_hits"
    __table_args__ = (Index("ix_billing_link_hits_address_at", "address", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class TaskKind(enum.StrEnum):
    CARD = "card"  # "Ask the client to update their card"
    PAY = "pay"  # "Ask the client to pay" (amount_cents)


class TaskStatus(enum.StrEnum):
    PENDING = "pending"  # emailed, waiting for the client
    DONE = "done"  # the card was saved / the payment made: the link is used up
    REPLACED = "replaced"  # a newer link of the same kind was sent for the sub-account
    CANCELED = "canceled"  # the sub-account (or its agency) was closed


class TaskLink(db.Model):
    """A single-task link (issue 15): the agency asks the client of a customer-billed
    sub-account to update its card or to pay an amount, through a signed one-time link like
    the billing link's. The link names only `link_id`; the sub-account, agency, email and
    amount are read from this row."""

    __tablename__ = "task_links"
    __table_args__ = (
        # One live link per kind and sub-account (a newer one replaces it in the same
        # transaction).
        Index("uq_task_links_pending_sub_kind", "sub_account_id", "kind", unique=True,
              sqlite_where=text("status = 'pending'"),
              postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[TaskKind] = mapped_column(_enum(TaskKind))
    link_id: Mapped[str] = mapped_column(String(32), unique=True)  # random, what is signed
    agency_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    sub_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)  # PAY only
    status: Mapped[TaskStatus] = mapped_column(_enum(TaskStatus), default=TaskStatus.PENDING)
    # Declined payment attempts so far (PAY): each attempt charges under its own key
    # ("task-link:<link_id>:<attempt>"), so a double submit is one charge.
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # done/replaced/canceled
    charge_id: Mapped[int | None] = mapped_column(ForeignKey("charges.id"))  # PAY, once paid
    method_id: Mapped[int | None] = mapped_column(ForeignKey("payment_methods.id"))  # CARD

    @property
    def is_card(self) -> bool:
        """"Ask the client to update their card" (else "Ask the client to pay")."""
        return self.kind == TaskKind.CARD


class AuthenticationStatus(enum.StrEnum):
    PENDING = "pending"  # emailed, waiting for the card holder
    USED = "used"  # the card holder used it (a charge or a setup on-session)
    REVOKED = "revoked"  # a newer link for the same card was sent


class AuthenticationRequest(db.Model):
    """Issue 16, 3-D Secure off-session: an auto recharge's card asked its holder to
    authenticate while nobody was there (`charge`, failure authentication_required). The
    billing recipients get a signed one-time link (billing_links/authenticate.py) to do it
    on-session: the recharge still due when the link is used, or, when nothing is due any
    more, the card confirmed with its bank for the next recharges. The link names only
    `link_id`; the account, card and amount are read from the rows."""

    __tablename__ = "authentication_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_id: Mapped[str] = mapped_column(String(32), unique=True)  # random, what is signed
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    charge_id: Mapped[int] = mapped_column(ForeignKey("charges.id"))  # the off-session one
    method_id: Mapped[int] = mapped_column(ForeignKey("payment_methods.id"), index=True)
    status: Mapped[AuthenticationStatus] = mapped_column(
        _enum(AuthenticationStatus), default=AuthenticationStatus.PENDING)
    # On-session attempts that failed (a challenge failed or abandoned): each use charges
    # under its own key ("sca:<link_id>:<attempt>"), and a failed one frees the link again.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    payment_charge_id: Mapped[int | None] = mapped_column(ForeignKey("charges.id"))
    setup_reference: Mapped[str] = mapped_column(String(64), default="")  # seti_… if no charge
    last_error: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the setup succeeded

    @property
    def is_pending(self) -> bool:
        return self.status == AuthenticationStatus.PENDING

    @property
    def is_used(self) -> bool:
        return self.status == AuthenticationStatus.USED
