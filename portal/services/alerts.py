"""Alerts (issue 17): what the portal told an account's billing people about its money, as
rows of `alerts` (Billing Settings → Recent alerts), each also an outbox email.

- `send`: one alert under a key (the key makes it once: once per crossing, once per month's
  cap, once per stop), and its email to `people`, in the caller's transaction.
- The low-balance alert, "email me when the balance drops below $X": `balance_moved` is
  called by every ledger posting with the balance before and after it, under the lock the
  posting is written under (postings on one balance are serialized), so exactly one posting
  sees a crossing; the crossing is also claimed with a conditional update of
  `low_balance_below` (down: false → true; back up: true → false), so it is told once, not
  per posting, however many postings arrive at once. With or without auto recharge.
"""

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now as clock_now
from portal.models import (
    Account,
    Alert,
    AlertKind,
    BillingMode,
    BillingSettings,
    Membership,
    Role,
    User,
)
from portal.services import billing
from portal.services.money import dollars, parse_cents

RECENT = 10  # Billing Settings shows this many
MAX_LOW_BALANCE_CENTS = 100_000_000  # $1,000,000


def people(session: Session, account: Account) -> list[User]:
    """Who an alert about `account`'s balance goes to: its billing-email recipients, and for a
    customer-billed sub-account also its billing users, each once."""
    told = list(billing.recipients(session, account))
    if account.is_sub and account.billing_mode == BillingMode.CUSTOMER:
        told += session.scalars(select(User).join(Membership, Membership.user_id == User.id)
                                .where(Membership.account_id == account.id,
                                       Membership.role == Role.BILLING)
                                .order_by(User.email)).all()
    seen, once = set(), []
    for user in told:
        if user.id not in seen:
            seen.add(user.id)
            once.append(user)
    return once


def send(session: Session, account: Account, kind: AlertKind, key: str, message: str,
         subject: str, context: dict | None = None, for_account: Account | None = None,
         now: datetime | None = None) -> Alert | None:
    """Record the alert under `key` and queue its email to `people`, once: None when an alert
    with this key exists already (told before, or by a concurrent transaction)."""
    from portal.mail import notices

    if session.scalar(select(Alert.id).where(Alert.key == key)) is not None:
        return None
    alert = Alert(account_id=account.id, for_account_id=for_account.id if for_account else None,
                  kind=kind.value, message=message[:300], key=key[:120],
                  created_at=now or clock_now())
    try:
        with session.begin_nested():
            session.add(alert)
            session.flush()
    except IntegrityError:
        return None
    notices.alert(session, account, alert, people(session, account), subject,
                  context or {})
    return alert


def recent(session: Session, account: Account, limit: int = RECENT) -> list[Alert]:
    return list(session.scalars(select(Alert).where(Alert.account_id == account.id)
                                .order_by(Alert.created_at.desc(), Alert.id.desc())
                                .limit(limit)))


# --------------------------------------------------------------- low-balance alert

def set_low_balance(session: Session, account: Account, threshold: str,
                    enabled: bool = True) -> BillingSettings:
    """"Email me when the balance drops below $X" (blank or turned off: no alert). Whether
    the balance is below it now is recorded, not told: the next drop below it is."""
    billing.check_own_billing(account)
    settings = billing._stored(session, account)
    if not enabled or not (threshold or "").strip():
        settings.low_balance_cents = None
        settings.low_balance_below = False
        session.flush()
        return settings
    cents = parse_cents(threshold, "low_balance", maximum=MAX_LOW_BALANCE_CENTS,
                        label="The alert amount")
    balance = session.scalar(select(Account.balance_cents).where(Account.id == account.id))
    settings.low_balance_cents = cents
    settings.low_balance_below = balance < cents
    session.flush()
    return settings


def balance_moved(session: Session, account: Account, before: int, after: int, ref: str,
                  now: datetime | None = None) -> Alert | None:
    """A posting moved `account`'s balance from `before` to `after` (its own transaction,
    under its lock; `ref`: the entry's id). Crossing down below the alert amount: the
    alert, once; back up to it or above: armed again for the next crossing. One statement,
    and none that writes, for a posting that crosses nothing."""
    if before == after:
        return None
    below = after < before  # a debit can only cross down; a credit only back up
    table = BillingSettings.__table__  # Core: no ORM bookkeeping on the postings' path
    claimed = session.execute(
        update(table)
        .where(table.c.account_id == account.id,
               table.c.low_balance_cents.is_not(None),
               table.c.low_balance_below == (not below),
               (table.c.low_balance_cents > after) if below
               else (table.c.low_balance_cents <= after))
        .values(low_balance_below=below)
        .returning(table.c.low_balance_cents)).first()
    if claimed is None or not below:
        return None
    limit = claimed[0]
    now = now or clock_now()
    message = (f"The balance dropped below {dollars(limit)}: it is {dollars(after)} "
               f"({now:%b %-d, %H:%M} UTC).")
    alert = send(session, account, AlertKind.LOW_BALANCE,
                 f"low-balance:{account.id}:{ref}", message,
                 f"Low balance: {account.name} is below {dollars(limit)}",
                 {"limit": limit, "balance": after}, now=now)
    if alert is not None:  # issue 18: the crossing's webhook event, once
        from portal.services import webhooks

        webhooks.balance_low(session, account, limit, after, now)
    return alert
