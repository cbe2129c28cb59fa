"""Writers on one SQLite file (the embedded default), as two instances of the portal and their
jobs are: the file is in WAL mode, so a commit never waits for a reader (a streamed export);
a writer waits SQLITE_BUSY_TIMEOUT_MS (30 s) for the one write lock; and where the processor
or the mail server has already answered, a write that still found the lock busy is tried
again rather than lost (transactions.retry_when_locked).

The load test found these (bench/README.md): with a rollback journal and a 5 s busy timeout,
two instances under 50 users answered 500 "database is locked" (9 of 15,479 requests in 5
minutes), and a jobs run that had sent an email but could not mark it sent crashed: the other
instance sent it again.

SQLite only: PostgreSQL has row locks and MVCC, no "database is locked" (its own tests of the
same flows run in the PostgreSQL half of the suite)."""

import sqlite3
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text

from portal import clock, transactions
from portal.extensions import db
from portal.mail import delivery, outbox
from portal.models import (
    Charge,
    ChargeStatus,
    LedgerEntry,
    MailStatus,
    OutboxMessage,
)
from portal.services import calls, charges
from portal.services.gateway import SandboxGateway
from tests import factories as f
from tests.conftest import make_app

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def sqlite_path(app, database_url):
    if not database_url.startswith("sqlite:///"):
        pytest.skip("SQLite's one write lock; PostgreSQL locks rows (no 'database is locked')")
    clock.freeze(NOW)
    return database_url.removeprefix("sqlite:///")


def short_wait_app(database_url, ms: int):
    """Another app (another instance) on the same file whose writers wait only `ms`."""
    return make_app(database_url, SQLITE_BUSY_TIMEOUT_MS=ms)


class WriteLockHolder:
    """Another instance's writer: its own connection to the file, holding the write lock from
    take() until the portal logs that it will try again (or 20 s pass)."""

    def __init__(self, path: str, monkeypatch):
        self.path = path
        self.taken = threading.Event()
        self.release = threading.Event()
        self.retries: list[str] = []
        self.thread = None
        warning = transactions.log.warning

        def logged(message, *args):
            if "stayed busy" in message:
                self.retries.append(message % args)
                self.release.set()
            warning(message, *args)

        monkeypatch.setattr(transactions.log, "warning", logged)

    def take(self) -> None:
        def hold():
            conn = sqlite3.connect(self.path, timeout=20, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                self.taken.set()
                self.release.wait(20)
                conn.execute("ROLLBACK")
            finally:
                conn.close()

        self.thread = threading.Thread(target=hold)
        self.thread.start()
        assert self.taken.wait(20), "the other writer never got the lock"

    def join(self) -> None:
        if self.thread is not None:
            self.release.set()
            self.thread.join(20)


# --------------------------------------------------------------- the file's settings

def test_a_file_database_is_in_wal_mode_and_writers_wait_30_seconds(sqlite_path,
                                                                    database_url):
    assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert db.session.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
    assert db.session.execute(text("PRAGMA secure_delete")).scalar() == 1
    other = short_wait_app(database_url, 1234)
    with other.app_context():
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar() == 1234
        db.session.remove()
        db.engine.dispose()


# --------------------------------------------------------------- readers don't block a commit

def test_a_commit_does_not_wait_for_a_streamed_export(sqlite_path, database_url, session):
    """The Call History CSV streams with an open cursor (a million rows take minutes). With a
    rollback journal that reader's lock kept every commit out ("database is locked" after the
    busy timeout, for as long as the download lasted); in WAL mode a writer commits
    meanwhile, and the export reads what it started with."""
    account = f.standalone(session, "Acme Plumbing")
    f.calls(session, account, 60, start=NOW.replace(day=1))
    session.commit()
    account_id = account.id
    export = calls.export_csv(session, account, calls.DateRange(), batch=10)
    first = next(export) + next(export)  # the header and 10 rows: the cursor is open
    errors = []

    def pay_elsewhere():
        other = short_wait_app(database_url, 300)
        with other.app_context():
            try:
                s = db.session
                f.funds(s, s.get(type(account), account_id), 2_500, key="while-exporting")
                s.commit()
            except Exception as e:  # handed to the test's thread
                errors.append(e)
            finally:
                db.session.remove()
                db.engine.dispose()

    writer = threading.Thread(target=pay_elsewhere)
    writer.start()
    writer.join(30)
    assert errors == []
    rest = "".join(export)
    assert len((first + rest).splitlines()) == 61  # the header and every call
    assert session.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.idempotency_key == "while-exporting")) == 1


# --------------------------------------------------------------- answers not lost to a busy lock

def test_a_charge_the_processor_answered_is_settled_when_the_lock_was_busy(
        sqlite_path, database_url, monkeypatch):
    """The card is charged; the settlement (credit, receipt) finds the write lock held by
    another instance past the busy timeout: it is tried again, not left pending behind a 500
    (and settled once: the retry is a conditional update from pending)."""
    holder = WriteLockHolder(sqlite_path, monkeypatch)

    class AnsweredThenBusy(SandboxGateway):
        def charge(self, *args, **kwargs):
            answer = super().charge(*args, **kwargs)
            holder.take()  # another writer takes the lock as the answer comes back
            return answer

    other = short_wait_app(database_url, 500)
    with other.app_context():
        s = db.session
        try:
            admin = f.user(s, "ann@example.test")
            account = f.standalone(s, "Acme Plumbing", admin=admin)
            visa = f.card(s, account)
            charge = charges.pay(s, account, admin, str(visa.id), "25.50",
                                 charges.new_form_key())
            s.commit()
            charge = charges.attempt(s, AnsweredThenBusy(), charge)
            assert charge.status == ChargeStatus.SUCCEEDED
            assert holder.retries == [f"charge {charge.id}: settle: the SQLite write lock "
                                      "stayed busy (attempt 1 of 3); trying again"]
            credits = s.scalars(select(LedgerEntry).where(
                LedgerEntry.idempotency_key == f"charge:{charge.id}")).all()
            assert [e.amount_cents for e in credits] == [2_550]
            assert s.get(type(account), account.id).balance_cents == 2_550
            assert s.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.dedupe_key.like(f"receipt:{charge.id}:%"))) == 1  # to ann
        finally:
            holder.join()
            s.remove()
            db.engine.dispose()


def test_a_charge_is_asked_when_the_lock_was_busy_before_asking(sqlite_path, database_url,
                                                                monkeypatch):
    """The attempt is counted (committed) before the processor is asked: a busy lock there
    is waited out too, rather than a 500 with the charge never asked."""
    holder = WriteLockHolder(sqlite_path, monkeypatch)
    other = short_wait_app(database_url, 500)
    with other.app_context():
        s = db.session
        try:
            admin = f.user(s, "ann@example.test")
            account = f.standalone(s, "Acme Plumbing", admin=admin)
            visa = f.card(s, account)
            charge = charges.pay(s, account, admin, str(visa.id), "40.00",
                                 charges.new_form_key())
            s.commit()
            holder.take()
            charge = charges.attempt(s, SandboxGateway(), charge)
            assert (charge.status, charge.attempts) == (ChargeStatus.SUCCEEDED, 1)
            assert holder.retries == [f"charge {charge.id}: attempt: the SQLite write lock "
                                      "stayed busy (attempt 1 of 3); trying again"]
            assert s.scalar(select(func.count()).select_from(Charge)) == 1
        finally:
            holder.join()
            s.remove()
            db.engine.dispose()


def test_an_email_sent_is_marked_sent_when_the_lock_was_busy(sqlite_path, database_url,
                                                             monkeypatch):
    """The mail server took the message; marking it sent finds the lock busy past the busy
    timeout. It is tried again: before, the jobs run crashed with the message still claimed,
    and when the claim ran out the other instance sent it a second time."""
    holder = WriteLockHolder(sqlite_path, monkeypatch)
    delivered = []

    def send_then_busy(config, email):
        delivered.append(email["Message-ID"])
        holder.take()  # another writer takes the lock as the server answers

    monkeypatch.setattr(delivery, "_send", send_then_busy)
    other = short_wait_app(database_url, 500)
    with other.app_context():
        s = db.session
        try:
            message = outbox.queue(s, to="pat@example.test", subject="Hello", text="Hi",
                                   kind="test")
            s.commit()
            config = delivery.MailConfig(server="127.0.0.1")  # _send is the stand-in above
            result = delivery.deliver(s, config, NOW)
            assert (result.sent, result.retried, result.failed) == (1, 0, 0)
            assert holder.retries == [f"outbox message {message.id}: sent: the SQLite write "
                                      "lock stayed busy (attempt 1 of 3); trying again"]
            s.expire_all()
            assert s.get(OutboxMessage, message.id).status == MailStatus.SENT
            # A later run (either instance's) sends nothing more.
            assert delivery.deliver(s, config, NOW.replace(hour=23)).sent == 0
            assert len(delivered) == 1
        finally:
            holder.join()
            s.remove()
            db.engine.dispose()


def test_only_locked_errors_are_tried_again(sqlite_path, session, monkeypatch):
    """Another error is not a busy moment: it propagates at once, and a lock that stays busy
    fails after the last attempt."""
    from sqlalchemy.exc import OperationalError

    calls_made = []

    def broken():
        calls_made.append(1)
        session.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(OperationalError, match="no such table"):
        transactions.retry_when_locked(session, broken, "broken")
    assert len(calls_made) == 1

    def always_locked():
        calls_made.append(1)
        raise OperationalError("BEGIN IMMEDIATE", {},
                               sqlite3.OperationalError("database is locked"))

    calls_made.clear()
    with pytest.raises(OperationalError, match="database is locked"):
        transactions.retry_when_locked(session, always_locked, "locked")
    assert len(calls_made) == 3
