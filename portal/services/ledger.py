"""The ledger: append-only entries in integer cents; the balance is their sum.

`post` is the only way a balance changes. It adds the entry and moves the account's cached
balance in one transaction (an UPDATE ... RETURNING, which also serialises concurrent
postings to one account on PostgreSQL), and an idempotency key per account makes a retried
write return the first entry instead of posting twice. A balance below zero puts the
account in billing pause; one that comes back to zero or more lifts it.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now as clock_now
from portal.errors import ValidationFailed
from portal.models import (
    Account,
    AccountStatus,
    BillingMode,
    Cause,
    EventKind,
    LedgerEntry,
    LedgerKind,
    User,
)
from portal.transactions import begin_write

PAUSABLE = (AccountStatus.ACTIVE, AccountStatus.SWAPPING_PAUSED, AccountStatus.CALLS_STOPPED)


class KeyReused(ValidationFailed):
    """The idempotency key was used for a different posting."""


def paying_account(session: Session, account: Account) -> Account:
    """Whose balance pays for this account: the agency's for a sub on agency billing.

    Read from `account` as loaded: for a debit, use `lock_payer`, which reads it under the
    lock that the debit's entry is written under."""
    if account.is_sub and account.billing_mode == BillingMode.AGENCY:
        return session.get(Account, account.parent_id)
    return account


@dataclass(frozen=True)
class Payer:
    account: Account  # the account the money is for, as it is now (locked)
    payer: Account  # whose balance pays for it now: the agency's for agency billing

    @property
    def on_behalf(self) -> bool:
        return self.payer.id != self.account.id


def lock_payer(session: Session, account_id: int) -> Payer:
    """Lock an account for a money write and read who pays for it under that lock.

    Who pays (billing mode, agency) can change at any moment (Add to Agency Billing, a
    billing link paid, a transfer out): read before the lock, a debit lands on the ledger of
    whoever paid a moment ago. So every writer of an account's money takes this lock first,
    in one order, and reads the account afresh under it: on PostgreSQL the agency's row
    before the sub-account's (FOR NO KEY UPDATE: as an UPDATE locks; cancel_agency takes
    them in the same order, so no two writers wait on each other in a cycle); on SQLite the
    database's write lock (BEGIN IMMEDIATE), which orders every writer anyway.
    """
    begin_write(session)
    postgres = session.connection().dialect.name == "postgresql"
    for _attempt in range(3):
        parent_id = session.scalar(select(Account.parent_id).where(Account.id == account_id))
        if postgres and parent_id is not None:
            session.execute(select(Account.id).where(Account.id == parent_id)
                            .with_for_update(key_share=True))
        query = select(Account).where(Account.id == account_id) \
            .execution_options(populate_existing=True)
        if postgres:
            query = query.with_for_update(key_share=True)
        account = session.scalars(query).one()
        if account.parent_id == parent_id:  # else it moved while we waited: lock again
            break
    else:  # pragma: no cover - an account moving between agencies three times in a row
        raise RuntimeError(f"account {account_id} kept moving while being locked")
    if account.is_sub and account.billing_mode == BillingMode.AGENCY:
        payer = session.scalars(select(Account).where(Account.id == account.parent_id)
                                .execution_options(populate_existing=True)).one()
        return Payer(account, payer)
    return Payer(account, account)


def post(session: Session, account: Account, kind: LedgerKind, amount_cents: int,
         description: str, idempotency_key: str, cause: Cause, *, cause_ref: str = "",
         actor: User | None = None, for_account: Account | None = None,
         now: datetime | None = None, key_checked: bool = False) -> LedgerEntry:
    """Append an entry to `account`'s ledger (the one whose balance moves) once per key.

    key_checked: the caller has just looked the key up itself (usage.post); the unique
    constraint still catches a concurrent duplicate."""
    if not isinstance(amount_cents, int) or isinstance(amount_cents, bool):
        raise TypeError("amounts are integer cents")
    if amount_cents == 0:
        raise ValidationFailed({"amount": "The amount can't be zero."})
    if not idempotency_key or len(idempotency_key) > 120:
        raise ValueError("an idempotency key of 1 to 120 characters is required")
    begin_write(session)
    # Stamped once this transaction is the writer (SQLite) so entries' times follow the
    # order they are applied in; on PostgreSQL the row lock below orders them.
    now = now or clock_now()
    existing = None if key_checked else _by_key(session, account.id, idempotency_key)
    if existing is not None:
        return _same(existing, kind, amount_cents)
    try:
        with session.begin_nested():
            balance, status = session.execute(
                update(Account).where(Account.id == account.id)
                .values(balance_cents=Account.balance_cents + amount_cents)
                .returning(Account.balance_cents, Account.status)
            ).one()
            entry = LedgerEntry(
                account_id=account.id, kind=kind, amount_cents=amount_cents,
                balance_after_cents=balance, description=description[:200],
                for_account_id=for_account.id if for_account else None, cause=cause,
                cause_ref=cause_ref, actor_id=actor.id if actor else None,
                idempotency_key=idempotency_key, created_at=now,
            )
            session.add(entry)
            session.flush()
    except IntegrityError:  # the same key posted at the same moment by someone else
        existing = _by_key(session, account.id, idempotency_key)
        if existing is None:
            raise
        return _same(existing, kind, amount_cents)
    session.expire(account, ["balance_cents"])
    _billing_pause(session, account, balance, status, actor, now)
    # Issue 17: "email me when the balance drops below $X", once per crossing.
    from portal.services import alerts

    alerts.balance_moved(session, account, balance - amount_cents, balance, str(entry.id), now)
    # Issue 17 (B): a usage debit counts against its sub-account's monthly budget.
    from portal.services import budgets

    budgets.usage_posted(session, account, entry, now)
    return entry


def _by_key(session: Session, account_id: int, key: str) -> LedgerEntry | None:
    return session.scalar(select(LedgerEntry).where(
        LedgerEntry.account_id == account_id, LedgerEntry.idempotency_key == key))


def _same(entry: LedgerEntry, kind: LedgerKind, amount_cents: int) -> LedgerEntry:
    if entry.kind != kind or entry.amount_cents != amount_cents:
        raise KeyReused({"": "This request was already made with different details."})
    return entry


def pause_if_overdrawn(session: Session, account: Account, actor: User | None,
                       now: datetime) -> None:
    """A status lifted by hand (a budget pause resumed) on an account whose own balance went
    below zero meanwhile (a budget pause holds off the billing pause): paused for billing now,
    as the next posting would. Caller's transaction."""
    session.flush()
    session.refresh(account, ["balance_cents", "status"])
    _billing_pause(session, account, account.balance_cents, account.status, actor, now)


def _billing_pause(session: Session, account: Account, balance: int, status: AccountStatus,
                   actor: User | None, now: datetime) -> None:
    from portal.services.lifecycle import record  # lifecycle imports nothing of ours

    # The status came back with the balance, from the row this transaction now holds (the
    # write lock on SQLite, the row lock on PostgreSQL): most postings change nothing and
    # need no statement.
    if not (balance < 0 and status in PAUSABLE
            or balance >= 0 and status == AccountStatus.BILLING_PAUSED):
        return
    if balance < 0:
        paused = session.execute(
            update(Account).where(Account.id == account.id, Account.status.in_(PAUSABLE))
            .values(status=AccountStatus.BILLING_PAUSED, updated_at=now)
        ).rowcount
        if paused:
            record(session, account, EventKind.BILLING_PAUSED, actor, now, balance=balance)
    else:
        lifted = session.execute(
            update(Account).where(Account.id == account.id,
                                  Account.status == AccountStatus.BILLING_PAUSED)
            .values(status=AccountStatus.ACTIVE, updated_at=now)
        ).rowcount
        if lifted:
            record(session, account, EventKind.BILLING_RESUMED, actor, now, balance=balance)
    session.expire(account, ["status"])


@dataclass(frozen=True)
class Mismatch:
    account_id: int
    cached_cents: int
    ledger_cents: int


def check(session: Session) -> list[Mismatch]:
    """Every account whose cached balance differs from the sum of its ledger."""
    sums = (select(LedgerEntry.account_id, func.sum(LedgerEntry.amount_cents).label("total"))
            .group_by(LedgerEntry.account_id).subquery())
    rows = session.execute(
        select(Account.id, Account.balance_cents, func.coalesce(sums.c.total, 0))
        .outerjoin(sums, sums.c.account_id == Account.id)
        .where(Account.balance_cents != func.coalesce(sums.c.total, 0))
        .order_by(Account.id)
    ).all()
    return [Mismatch(*row) for row in rows]
