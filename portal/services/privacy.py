"""GDPR tools and redaction: remove a caller's personal data (name, number, notes) from call
records by hand or automatically on arrival; export everything held about one caller number
and erase it. Redaction overwrites the values in the database and can't be undone; the
version it leaves names the fields, never their values (see portal.versioning)."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.clock import now as clock_now
from portal.errors import NotFound, ValidationFailed
from portal.models import Account, Call, TrackingNumber
from portal.services.calls import _csv_safe, csv_chunks
from portal.services.phones import normalize_e164
from portal.transactions import scrub_after_commit

REDACTED_LABEL = "Redacted"
EXPORT_FIELDS = ["call_id", "started_at_utc", "caller_number", "caller_name", "notes",
                 "called_number", "tracking_number_label", "source", "duration_seconds"]
MAX_NOTES = 5000
FREE_TEXT = {"caller_name", "notes", "tracking_number_label", "source"}
# The caller export reads and writes this many calls at a time: its memory stays flat.
EXPORT_BATCH = 500


def normalize_number(raw: str) -> str:
    """A caller number as calls store it (E.164): spaces, dashes, dots and brackets are
    dropped; 10 US digits get +1."""
    if not (raw or "").strip():
        raise ValidationFailed({"number": "Enter the caller's phone number."})
    return normalize_e164(raw, lenient=True,
                          message="Enter a phone number like +1 415 555 0100.")


def _redact(call: Call, now: datetime) -> None:
    call.caller_name = ""
    call.caller_number = ""
    call.notes = ""
    call.redacted_at = now


def account_call(session: Session, account: Account, call_id: int) -> Call:
    call = session.scalar(select(Call).where(Call.id == call_id, Call.account_id == account.id))
    if call is None:
        raise NotFound("Call not found.")
    return call


def redact_call(session: Session, account: Account, call_id: int,
                now: datetime | None = None) -> Call:
    call = account_call(session, account, call_id)
    if call.redacted_at is not None:
        raise ValidationFailed({"": "This call's personal data was already removed."})
    _redact(call, now or clock_now())
    scrub_after_commit(session)  # no copy of the old values left in SQLite's WAL file
    return call


def set_auto_redact(session: Session, account: Account, on: bool) -> None:
    account.auto_redact = on


@dataclass(frozen=True)
class Arrival:
    started_at: datetime
    caller_number: str
    called_number: str
    duration_seconds: int
    caller_name: str = ""
    source: str = ""
    notes: str = ""
    tracking_number_id: int | None = None


def receive_call(session: Session, account: Account, arrival: Arrival,
                 now: datetime | None = None) -> Call:
    """Record a new call. With automatic redaction on, its personal data is never stored:
    the caller's name, number and notes are dropped on arrival."""
    now = now or clock_now()
    call = Call(account_id=account.id, tracking_number_id=arrival.tracking_number_id,
                caller_number=normalize_number(arrival.caller_number),
                caller_name=(arrival.caller_name or "")[:120],
                called_number=arrival.called_number, started_at=arrival.started_at,
                duration_seconds=arrival.duration_seconds, source=(arrival.source or "")[:60],
                notes=(arrival.notes or "")[:MAX_NOTES])
    if account.auto_redact:
        _redact(call, now)
    session.add(call)
    return call


def caller_calls(session: Session, account: Account, number: str) -> list[Call]:
    return list(session.scalars(
        select(Call).where(Call.account_id == account.id, Call.caller_number == number)
        .order_by(Call.started_at, Call.id)))


def caller_count(session: Session, account: Account, number: str) -> int:
    return session.scalar(select(func.count()).select_from(Call).where(
        Call.account_id == account.id, Call.caller_number == number)) or 0


def _rows(session: Session, account: Account, number: str, batch: int) -> Iterator[tuple]:
    """The caller's calls as export rows (values in EXPORT_FIELDS' order), oldest first, read
    `batch` rows at a time (a server-side cursor on PostgreSQL): never all of them at once.
    Plain columns, not Call objects: nothing piles up in the session."""
    calls, numbers = Call.__table__.c, TrackingNumber.__table__.c
    result = session.execute(
        select(calls.id, calls.started_at, calls.caller_number, calls.caller_name, calls.notes,
               calls.called_number, numbers.label, calls.source, calls.duration_seconds)
        .select_from(Call.__table__.outerjoin(TrackingNumber.__table__, (
            numbers.id == calls.tracking_number_id) & (numbers.account_id == account.id)))
        .where(calls.account_id == account.id, calls.caller_number == number)
        .order_by(calls.started_at, calls.id)
        .execution_options(yield_per=batch))
    for (call_id, started_at, caller_number, caller_name, notes, called_number, label, source,
         duration) in result:
        # UTC (UTCDateTime): "2026-11-23T12:00:00+00:00"[:19] + "Z", as strftime would write
        # "%Y-%m-%dT%H:%M:%SZ" but several times faster
        yield (call_id, started_at.isoformat(timespec="seconds")[:19] + "Z", caller_number,
               caller_name, notes, called_number, label or "", source, duration)


# One call as json.dumps(..., indent=2) writes it two levels deep in the export, keys in order:
# call_id and duration_seconds are integers (%d), the rest text (%s of json.dumps' own string
# encoder, called directly: this is the export's hot loop).
_JSON_CALL = "{\n" + ",\n".join(
    f"      {json.dumps(k)}: {'%d' if k in ('call_id', 'duration_seconds') else '%s'}"
    for k in EXPORT_FIELDS) + "\n    }"
_FREE_TEXT_AT = [i for i, k in enumerate(EXPORT_FIELDS) if k in FREE_TEXT]


def _json_call(row: tuple) -> str:
    q = encode_basestring_ascii
    (call_id, started, caller_number, caller_name, notes, called_number, label, source,
     duration) = row
    return _JSON_CALL % (call_id, q(started), q(caller_number), q(caller_name), q(notes),
                         q(called_number), q(label), q(source), duration)


def export_json(session: Session, account: Account, number: str,
                now: datetime | None = None, batch: int = EXPORT_BATCH) -> Iterator[str]:
    """The export as JSON text in pieces: the same bytes as json.dumps of the whole document
    with indent=2 ({"caller_number", "account", "exported_at_utc", "calls": [...]}), written
    call by call, `batch` calls per piece, so memory stays flat however many calls there are.
    The query runs when the first piece is taken (inside the streamed response)."""
    now = now or clock_now()
    head = json.dumps({"caller_number": number, "account": account.name,
                       "exported_at_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ")}, indent=2)
    yield head[:-2] + ',\n  "calls": ['  # head ends with "\n}"
    pieces: list[str] = []
    separator = "\n    "
    for row in _rows(session, account, number, batch):
        pieces.append(separator + _json_call(row))
        separator = ",\n    "
        if len(pieces) == batch:
            yield "".join(pieces)
            pieces.clear()
    yield "".join(pieces) + ("]\n}" if separator == "\n    " else "\n  ]\n}")


def export_csv(session: Session, account: Account, number: str,
               batch: int = EXPORT_BATCH) -> Iterator[str]:
    """The export as CSV text in pieces (the header, then `batch` rows per piece). Free text
    is neutralised against spreadsheet formulas; the numbers are validated E.164 and stay as
    they are (as in the Call History export)."""

    def safe(row: tuple) -> list:
        row = list(row)
        for i in _FREE_TEXT_AT:
            row[i] = _csv_safe(row[i])
        return row

    yield from csv_chunks(EXPORT_FIELDS, map(safe, _rows(session, account, number, batch)),
                          batch)


def erase(session: Session, account: Account, number: str, confirmed: bool,
          now: datetime | None = None) -> int:
    """Remove the caller's personal data from every call of theirs on this account: the
    calls stay (their time, duration and number called, for billing), nameless."""
    if not confirmed:
        raise ValidationFailed({"confirm": "Tick the box to confirm: erasing can't be undone."})
    now = now or clock_now()
    calls = caller_calls(session, account, number)
    for call in calls:
        _redact(call, now)
    scrub_after_commit(session)  # no copy of the old values left in SQLite's WAL file
    return len(calls)
