"""Issue 17 (J): statements past rules.STATEMENT_SYNC_MAX_ENTRIES ledger entries are made by
the jobs, not in the request. The request creates (or reuses) a pending StatementFile and
answers "being prepared"; the jobs step "statements-prepare" claims each pending file with a
conditional UPDATE (two runners never build the same one), renders it with the same
pdf.statement(..., for_pdf=True) as the request would, stores it and emails the requester the
download link. Ready files are kept rules.STATEMENT_FILE_TTL (7 days), then purged.

No Flask here: the jobs module does the rendering (it needs a request context for links)."""

import re
import zlib
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import rules
from portal.clock import now as clock_now
from portal.errors import NotFound
from portal.models import Account, LedgerEntry, User
from portal.models.statement_files import FileStatus, StatementFile
from portal.services.statements import _bounds
from portal.transactions import begin_write

OPEN = (FileStatus.PENDING, FileStatus.BUILDING)
_OBJECT_STREAM = re.compile(rb"/ObjStm\b.*?stream\r?\n", re.S)
_PAGES_COUNT = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)"
                          rb"|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b")


def entry_count(session: Session, account: Account, start: date, end: date) -> int:
    """The period's ledger entries (one COUNT on the account/created_at index)."""
    lower, upper = _bounds(start, end)
    return int(session.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.account_id == account.id, LedgerEntry.created_at >= lower,
        LedgerEntry.created_at < upper)) or 0)


def is_big(session: Session, account: Account, start: date, end: date) -> bool:
    """Made by the jobs (True) or rendered in the request (False)."""
    return entry_count(session, account, start, end) > rules.STATEMENT_SYNC_MAX_ENTRIES


@dataclass(frozen=True)
class Download:
    """What a statement download gets (the page's and the API's): `ready`, a file the jobs
    made (served at once); `preparing`, a file in the making for a period over
    STATEMENT_SYNC_MAX_ENTRIES (the caller commits and answers 202); neither: render it in
    the request."""

    ready: "StatementFile | None" = None
    preparing: "StatementFile | None" = None
    entries: int | None = None


def download(session: Session, account: Account, user: User | None, start: date,
             end: date) -> Download:
    ready = ready_file(session, account, start, end)
    if ready is not None:
        return Download(ready=ready)
    entries = entry_count(session, account, start, end)
    if entries > rules.STATEMENT_SYNC_MAX_ENTRIES:
        return Download(preparing=request(session, account, user, start, end),
                        entries=entries)
    return Download(entries=entries)


def _period(account: Account, start: date, end: date):
    return (StatementFile.account_id == account.id, StatementFile.period_from == start,
            StatementFile.period_to == end)


def ready_file(session: Session, account: Account, start: date, end: date,
               now: datetime | None = None) -> StatementFile | None:
    """The newest ready, unexpired file of this period (served at once)."""
    now = now or clock_now()
    return session.scalar(select(StatementFile).where(
        *_period(account, start, end), StatementFile.status == FileStatus.READY,
        StatementFile.expires_at > now).order_by(StatementFile.id.desc()).limit(1))


def open_file(session: Session, account: Account, start: date,
              end: date) -> StatementFile | None:
    return session.scalar(select(StatementFile).where(
        *_period(account, start, end), StatementFile.status.in_(OPEN)).limit(1))


def request(session: Session, account: Account, user: User | None, start: date, end: date,
            send_to: str | None = None) -> StatementFile:
    """The period's file in the making: the open one (pending or building) when there is
    one, else a new pending one. Two requests at once make one row: the partial unique
    index refuses the second insert, which then reads the first back (a savepoint keeps
    the caller's transaction). `send_to`: an address (Send Statement) it is also emailed
    to when ready. The caller commits."""
    begin_write(session)
    existing = open_file(session, account, start, end)
    if existing is None:
        try:
            with session.begin_nested():
                existing = StatementFile(account_id=account.id, period_from=start,
                                         period_to=end, status=FileStatus.PENDING,
                                         requested_by_id=user.id if user else None,
                                         send_to="")
                session.add(existing)
                session.flush()
        except IntegrityError:
            existing = open_file(session, account, start, end)
            if existing is None:  # built and finished in between: ask again
                return request(session, account, user, start, end, send_to)
    if send_to:  # under the row's lock: requests at once each keep their address
        existing = lock(session, existing.id)
        if not existing.is_open:  # finished meanwhile: ask again
            return request(session, account, user, start, end, send_to)
        wanted = [a for a in existing.send_to.splitlines() if a]
        if send_to.lower() not in (a.lower() for a in wanted):
            existing.send_to = "\n".join([*wanted, send_to])
            session.flush()
    return existing


def lock(session: Session, file_id: int) -> StatementFile:
    """The file read again under its row's write lock (SQLite: the database's)."""
    begin_write(session)
    return session.scalars(select(StatementFile).where(StatementFile.id == file_id)
                           .with_for_update()
                           .execution_options(populate_existing=True)).one()


def get(session: Session, account: Account, file_id: int) -> StatementFile:
    """The account's file `file_id`; another account's, or none: NotFound."""
    found = session.get(StatementFile, file_id)
    if found is None or found.account_id != account.id:
        raise NotFound("No such statement.")
    return found


def recent(session: Session, account: Account, now: datetime | None = None,
           limit: int = 10) -> list[StatementFile]:
    """The account's prepared statements for the Statements dialog: open, failed, and
    ready ones not yet expired, newest first."""
    now = now or clock_now()
    return list(session.scalars(select(StatementFile).where(
        StatementFile.account_id == account.id,
        or_(StatementFile.status != FileStatus.READY, StatementFile.expires_at > now))
        .order_by(StatementFile.created_at.desc(), StatementFile.id.desc()).limit(limit)))


def claim_next(session: Session, now: datetime | None = None) -> StatementFile | None:
    """The oldest pending file (or one whose build was claimed over STATEMENT_BUILD_STALE
    ago: its runner died), claimed with a conditional UPDATE and committed: another runner's
    UPDATE of the same row matches nothing and it moves on to the next one."""
    now = now or clock_now()
    stale = now - rules.STATEMENT_BUILD_STALE
    claimable = or_(StatementFile.status == FileStatus.PENDING,
                    (StatementFile.status == FileStatus.BUILDING)
                    & (StatementFile.claimed_at < stale))
    skipped: set[int] = set()
    while True:
        query = select(StatementFile.id).where(claimable).order_by(StatementFile.id)
        if skipped:
            query = query.where(StatementFile.id.notin_(skipped))
        file_id = session.scalar(query.limit(1))
        if file_id is None:
            session.rollback()
            return None
        begin_write(session)
        won = session.execute(
            update(StatementFile).where(StatementFile.id == file_id, claimable)
            .values(status=FileStatus.BUILDING, claimed_at=now)
            .execution_options(synchronize_session=False)).rowcount
        session.commit()
        if won == 1:
            return session.get(StatementFile, file_id)
        skipped.add(file_id)


def page_count(data: bytes) -> int:
    """The pages of a PDF WeasyPrint wrote: its page tree root's /Count (the largest), read
    from the file and from its compressed object streams (no PDF library at run time)."""
    texts = [data]
    for match in _OBJECT_STREAM.finditer(data):
        end = data.find(b"endstream", match.end())
        try:
            texts.append(zlib.decompressobj().decompress(data[match.end():end]))
        except zlib.error:
            continue
    counts = [int(a or b) for text in texts for a, b in _PAGES_COUNT.findall(text)]
    return max(counts, default=0)


def finish(session: Session, file: StatementFile, data: bytes,
           now: datetime | None = None) -> None:
    """Ready: the PDF stored, kept STATEMENT_FILE_TTL. The caller queues the emails and
    commits."""
    now = now or clock_now()
    file.status = FileStatus.READY
    file.pdf = data
    file.size = len(data)
    file.pages = page_count(data)
    file.error = ""
    file.ready_at = now
    file.expires_at = now + rules.STATEMENT_FILE_TTL
    session.flush()
    from portal.services import webhooks  # issue 18: statement.ready

    webhooks.statement_ready(session, file, now)


def fail(session: Session, file_id: int, error: str) -> None:
    """Failed with `error` (the page says so, with Try again). Commits."""
    session.execute(update(StatementFile).where(StatementFile.id == file_id)
                    .values(status=FileStatus.FAILED, error=error[:300] or "Unknown error")
                    .execution_options(synchronize_session=False))
    session.commit()


def retry(session: Session, account: Account, user: User | None,
          file: StatementFile) -> StatementFile:
    """Try again after a failure: the same period asked anew (a new pending file, or the
    open one another request made meanwhile)."""
    return request(session, account, user, file.period_from, file.period_to)


def purge_expired(session: Session, now: datetime | None = None) -> int:
    """Ready files past expires_at, and failed ones older than STATEMENT_FILE_TTL. The caller
    commits."""
    now = now or clock_now()
    return session.execute(delete(StatementFile).where(or_(
        (StatementFile.status == FileStatus.READY) & (StatementFile.expires_at <= now),
        (StatementFile.status == FileStatus.FAILED)
        & (StatementFile.created_at <= now - rules.STATEMENT_FILE_TTL)))
        .execution_options(synchronize_session=False)).rowcount
