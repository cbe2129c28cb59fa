"""Write transactions that hold on SQLite as on PostgreSQL.

Python's sqlite3 driver (in its default, legacy transaction mode) opens a transaction only
before an INSERT, UPDATE or DELETE, not before a SAVEPOINT. A savepoint that comes first is
then the outermost one, and releasing it COMMITS: everything before the end of the
savepoint is committed early and a later rollback can't undo it. It is also a deferred
transaction, which under concurrency fails ("database is locked") when a reader tries to
become the writer instead of waiting for its turn.

`begin_write` is called by every service that writes money or uses a savepoint, before it
does: on SQLite, when no transaction is open yet, it opens one with BEGIN IMMEDIATE (the
write lock now, waiting up to busy_timeout for the current writer: one writer at a time, in
order). The driver sees the transaction and commits it at the session's commit. Reads stay
outside transactions, so a long CSV export blocks no one. On PostgreSQL it does nothing.
"""

from sqlalchemy.orm import Session


def begin_write(session: Session) -> None:
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    dbapi = connection.connection.dbapi_connection
    if not dbapi.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def lock_account(session: Session, account_id: int) -> None:
    """One writer of an account's settings records at a time (the services' unique-name and
    count checks hold): the write lock on SQLite, the account's row on PostgreSQL."""
    from sqlalchemy import select

    from portal.models import Account

    begin_write(session)
    if session.connection().dialect.name == "postgresql":
        session.execute(select(Account.id).where(Account.id == account_id).with_for_update())
