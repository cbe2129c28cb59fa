"""Write transactions that hold on SQLite as on PostgreSQL.

Python's sqlite3 driver (in its default, legacy transaction mode) opens a transaction only
before an INSERT, UPDATE or DELETE, not before a SAVEPOINT. A savepoint that comes first is
then the outermost one, and releasing it COMMITS: everything before the end of the
savepoint is committed early and a later rollback can't undo it. It is also a deferred
transaction, which under concurrency fails ("database is locked") when a reader tries to
become the writer instead of waiting for its turn.

`begin_write` is called by every service that writes money or uses a savepoint, before it
does: on SQLite, when no transaction is open yet, it opens one with BEGIN IMMEDIATE (the
write lock now, waiting up to busy_timeout, SQLITE_BUSY_TIMEOUT_MS, for the current writer:
one writer at a time; SQLite polls, so the waiting writers are not served in order). The
driver sees the transaction and commits it at the session's commit. Reads stay outside
transactions, and the file is in WAL mode (portal/__init__.py), so a long CSV export blocks
no one: a reader sees the last commit, and the writer doesn't wait for readers. What
happens between BEGIN IMMEDIATE and the commit holds up every other writer: nothing slow
goes there (no PDF, no processor call, no SMTP). On PostgreSQL it does nothing.
"""

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

log = logging.getLogger("portal.transactions")
T = TypeVar("T")


# A wait for, or a hold of, SQLite's write lock longer than this is logged (a WARNING with
# the request id): every other writer waits that long too.
SLOW_LOCK_SECONDS = 1.0
_HELD_SINCE = "portal.write_lock_since"


def begin_write(session: Session) -> None:
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    dbapi = connection.connection.dbapi_connection
    if not dbapi.in_transaction:
        asked = time.monotonic()
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        session.info[_HELD_SINCE] = got = time.monotonic()
        if got - asked > SLOW_LOCK_SECONDS:
            log.warning("SQLite write lock: waited %.1f s for it (%s)", got - asked, _where())


def is_locked(error: BaseException) -> bool:
    """SQLite gave up waiting for the write lock: "database is locked" (busy_timeout ran out)
    or "database table is locked"."""
    import sqlite3

    original = getattr(error, "orig", error)
    return isinstance(original, sqlite3.OperationalError) and "locked" in str(original)


def retry_when_locked(session: Session, work: Callable[[], T], what: str,
                      attempts: int = 3) -> T:
    """`work()` again, after a rollback, when SQLite gave up waiting for the write lock.

    Only for work that is one whole transaction, from its first statement to its commit
    (nothing pending before it: the rollback undoes everything since the last commit), with
    no effect outside the database, and correct to run again from the start: the settling
    of a charge or a refund after the processor answered (a conditional update from
    pending), an outbox message's claim and its outcome after the mail server answered.
    There, failing would cost more than waiting: the processor's or mail server's answer
    would be lost to a busy moment (a charge left pending behind a 500, an email sent again).
    Any other error, and the last "locked", propagate. On PostgreSQL it runs `work()` once
    (its errors are not "locked" ones)."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except OperationalError as e:
            if not is_locked(e) or attempt == attempts:
                raise
            session.rollback()
            log.warning("%s: the SQLite write lock stayed busy (attempt %d of %d); trying "
                        "again", what, attempt, attempts)
    raise AssertionError("unreachable")


def lock_account(session: Session, account_id: int) -> None:
    """One writer of an account's settings records at a time (the services' unique-name and
    count checks hold): the write lock on SQLite, the account's row on PostgreSQL."""
    from sqlalchemy import select

    from portal.models import Account

    begin_write(session)
    if session.connection().dialect.name == "postgresql":
        session.execute(select(Account.id).where(Account.id == account_id).with_for_update())


# --------------------------------------------------------------- WAL and erased data

_SCRUB = "portal.scrub_after_commit"
# How long a checkpoint that must truncate the WAL waits for readers still on it. It holds
# the write lock meanwhile (SQLite's rule for a truncating checkpoint), so it waits briefly;
# when readers are still there (a long export), the next `jobs run` checkpoints again.
CHECKPOINT_WAIT_MS = 2000


def scrub_after_commit(session: Session) -> None:
    """Personal data was overwritten or deleted in this transaction (a redaction, an erasure,
    a purge). On SQLite, `secure_delete` zeroes it in the pages written, but in WAL mode the
    pages that held it can still be in the -wal file (written there before, and not yet
    overwritten): once this transaction commits, the WAL is checkpointed into the database
    and truncated (`checkpoint`). Nothing to do on PostgreSQL."""
    session.info[_SCRUB] = True


def checkpoint(engine: Engine, wait_ms: int = CHECKPOINT_WAIT_MS) -> bool:
    """PRAGMA wal_checkpoint(TRUNCATE): every committed page copied into the database file
    and the -wal file emptied (zero bytes), waiting up to `wait_ms` for readers still on it.
    True when done (or nothing to do: not SQLite, not WAL); False when readers kept it busy
    (logged: `jobs run` checkpoints again)."""
    if engine.dialect.name != "sqlite":
        return True
    started = time.monotonic()
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        before = dbapi.execute("PRAGMA busy_timeout").fetchone()[0]
        dbapi.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
        try:
            busy, frames, copied = dbapi.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            dbapi.execute(f"PRAGMA busy_timeout={int(before)}")
    if busy:
        log.warning("SQLite WAL checkpoint: readers still on the log after %d ms (%s of %s "
                    "pages copied); the next jobs run checkpoints again", wait_ms, copied,
                    frames)
        return False
    log.info("SQLite WAL checkpoint: the log copied into the database file and truncated, "
             "in %.0f ms", (time.monotonic() - started) * 1000)
    return True


def _after_commit(session: Session) -> None:
    if session.info.pop(_SCRUB, False):
        bind = session.get_bind()
        checkpoint(getattr(bind, "engine", bind))


def _after_rollback(session: Session) -> None:
    session.info.pop(_SCRUB, None)  # nothing was erased after all


def _transaction_ended(session: Session, transaction) -> None:
    if transaction.parent is not None or transaction.nested:
        return  # a savepoint: the write lock is still held
    since = session.info.pop(_HELD_SINCE, None)
    if since is not None and time.monotonic() - since > SLOW_LOCK_SECONDS:
        log.warning("SQLite write lock: held %.1f s (%s)", time.monotonic() - since, _where())


def _where() -> str:
    """The route (its rule: no token of a URL) or the command, for the lock's log lines."""
    import sys

    from flask import has_request_context, request

    if has_request_context():
        return f"{request.method} {request.url_rule.rule if request.url_rule else '?'}"
    return " ".join(a.rsplit("/", 1)[-1] for a in sys.argv[:4])


def install_sqlite_hooks() -> None:
    """The session hooks behind scrub_after_commit, and the log of a write lock held long
    (create_app installs them on SQLite, once)."""
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)
        event.listen(Session, "after_transaction_end", _transaction_ended)
