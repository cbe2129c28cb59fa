"""Issue 17 (J): statements past rules.STATEMENT_SYNC_MAX_ENTRIES are made by the jobs
(services/statement_files.py): the threshold is one COUNT of the period's ledger entries;
requests for one period share one open file (also at once); a file is claimed by one job
runner only (also at once); a failure is kept with its error; expired files are purged."""

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock, jobs, rules
from portal.extensions import db
from portal.models import LedgerKind, StatementFile
from portal.models.statement_files import FileStatus
from portal.services import statement_files
from tests import factories as f
from tests.threads import at_once
from tests.unit.test_statements import NOW, at, post

START, END = date(2026, 11, 1), date(2026, 11, 23)


@pytest.fixture
def w(session):
    clock.freeze(NOW)
    admin = f.user(session, "pat@example.test")
    account = f.standalone(session, "Harbor Dental", admin=admin)
    session.commit()
    return account, admin


def count_files(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(StatementFile))


def test_the_threshold_is_the_periods_entry_count(session, w, monkeypatch):
    account, _ = w
    monkeypatch.setattr(rules, "STATEMENT_SYNC_MAX_ENTRIES", 3)
    for day in (1, 5, 23):
        post(session, account, LedgerKind.ADJUSTMENT, 100, at(date(2026, 11, day), 12))
    post(session, account, LedgerKind.ADJUSTMENT, 100, at(date(2026, 10, 31), 23, 59))
    post(session, account, LedgerKind.ADJUSTMENT, 100, at(date(2026, 11, 24), 0))
    session.commit()
    assert statement_files.entry_count(session, account, START, END) == 3  # not Oct 31, Nov 24
    assert not statement_files.is_big(session, account, START, END)  # at the limit: at once
    post(session, account, LedgerKind.ADJUSTMENT, 100, at(END, 23, 59, 59))
    session.commit()
    assert statement_files.is_big(session, account, START, END)


def test_two_requests_for_one_period_share_one_file(session, w, monkeypatch):
    account, admin = w
    first = statement_files.request(session, account, admin, START, END)
    session.commit()
    again = statement_files.request(session, account, admin, START, END, send_to="a@x.test")
    statement_files.request(session, account, admin, START, END, send_to="A@x.test")
    session.commit()
    assert again.id == first.id and again.send_to == "a@x.test"
    other = statement_files.request(session, account, admin, START, END - timedelta(days=1))
    session.commit()
    assert other.id != first.id and count_files(session) == 2
    # the race's loser: it saw no open file, its insert hits the partial unique index and it
    # reads the winner's row back (the savepoint keeps its transaction)
    real = statement_files.open_file
    calls = []

    def missed_once(*args):
        calls.append(1)
        return None if len(calls) == 1 else real(*args)

    monkeypatch.setattr(statement_files, "open_file", missed_once)
    loser = statement_files.request(session, account, admin, START, END)
    session.commit()
    assert loser.id == first.id and count_files(session) == 2 and len(calls) == 2


def _at_once(app, n, work):
    def run(i):
        with app.app_context():
            try:
                return work(db.session, i)
            finally:
                db.session.remove()

    return at_once(n, run)


def test_requests_at_once_make_one_file(app, session, w):
    account_id, admin_id = w[0].id, w[1].id

    def ask(s, i):
        from portal.models import Account, User

        made = statement_files.request(s, s.get(Account, account_id), s.get(User, admin_id),
                                       START, END, send_to=f"p{i}@x.test")
        s.commit()
        return made.id

    ids = _at_once(app, 6, ask)
    assert len(set(ids)) == 1 and count_files(session) == 1
    [file] = session.scalars(select(StatementFile)).all()
    assert sorted(file.send_to.splitlines()) == [f"p{i}@x.test" for i in range(6)]


def test_a_file_is_claimed_by_one_runner(app, session, w):
    account, admin = w
    file = statement_files.request(session, account, admin, START, END)
    session.commit()
    file_id = file.id
    claimed = _at_once(app, 4, lambda s, _i: getattr(statement_files.claim_next(s), "id", None))
    assert sorted(claimed, key=str) == [file_id, None, None, None]
    session.expire_all()
    assert session.get(StatementFile, file_id).status == FileStatus.BUILDING
    assert statement_files.claim_next(session) is None  # being built: not again
    # a runner that died: claimed again once the claim is stale
    later = NOW + rules.STATEMENT_BUILD_STALE + timedelta(seconds=1)
    assert statement_files.claim_next(session, later).id == file_id
    assert statement_files.claim_next(session, later) is None


def test_two_job_runs_at_once_build_and_email_once(app, session, w):
    account, admin = w
    statement_files.request(session, account, admin, START, END)
    session.commit()
    made = _at_once(app, 2, lambda s, _i: jobs.prepare_statements(s))
    assert sorted(made) == [0, 1]
    from portal.models import OutboxMessage

    session.expire_all()
    assert session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.subject.like("Your statement for%"))) == 1


def test_a_failure_is_kept_with_its_error_and_try_again_asks_anew(session, w):
    account, admin = w
    file = statement_files.request(session, account, admin, START, END)
    session.commit()
    assert statement_files.claim_next(session).id == file.id
    statement_files.fail(session, file.id, "RuntimeError: out of memory")
    session.expire_all()
    failed = session.get(StatementFile, file.id)
    assert (failed.status, failed.error) == (FileStatus.FAILED, "RuntimeError: out of memory")
    assert statement_files.claim_next(session) is None  # not retried by itself
    again = statement_files.retry(session, account, admin, failed)
    session.commit()
    assert again.id != failed.id and again.status == FileStatus.PENDING


def test_expired_files_are_purged(session, w):
    account, admin = w
    days = rules.STATEMENT_FILE_TTL
    made = {}
    for name, end in (("old", END - timedelta(days=1)), ("fresh", END),
                      ("failed", END - timedelta(days=2)), ("pending", END - timedelta(days=3))):
        made[name] = statement_files.request(session, account, admin, START, end)
    session.commit()
    for name in ("old", "fresh"):
        statement_files.finish(session, made[name], b"%PDF-1.7 x",
                               NOW - (days if name == "old" else timedelta(0)))
    statement_files.fail(session, made["failed"].id, "boom")
    session.commit()
    assert statement_files.ready_file(session, account, START, END - timedelta(days=1)) is None
    assert statement_files.ready_file(session, account, START, END).id == made["fresh"].id
    assert [x.id for x in statement_files.recent(session, account)] == sorted(
        [made["fresh"].id, made["failed"].id, made["pending"].id], reverse=True)
    ids = {name: file.id for name, file in made.items()}
    assert statement_files.purge_expired(session, NOW) == 1
    session.commit()
    assert statement_files.purge_expired(session, NOW + days) == 2  # fresh, failed
    session.commit()
    session.expire_all()
    assert session.scalars(select(StatementFile.id)).all() == [ids["pending"]]
