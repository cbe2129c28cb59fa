"""GDPR tools and redaction: remove a caller's personal data (name, number, notes) from call
records by hand or automatically on arrival; export everything held about one caller number
and erase it. Redaction overwrites the values in the database and can't be undone; the
version it leaves names the fields, never their values (see portal.versioning)."""

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.clock import now as clock_now
from portal.errors import NotFound, ValidationFailed
from portal.models import Account, Call, TrackingNumber
from portal.services.calls import _csv_safe

REDACTED_LABEL = "Redacted"
EXPORT_FIELDS = ["call_id", "started_at_utc", "caller_number", "caller_name", "notes",
                 "called_number", "tracking_number_label", "source", "duration_seconds"]
MAX_NOTES = 5000
FREE_TEXT = {"caller_name", "notes", "tracking_number_label", "source"}


def normalize_number(raw: str) -> str:
    """A caller number as calls store it (E.164): spaces, dashes, dots and brackets are
    dropped; 10 US digits get +1."""
    text = (raw or "").strip()
    if not text:
        raise ValidationFailed({"number": "Enter the caller's phone number."})
    digits = re.sub(r"[\s\-().]", "", text)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if not digits.startswith("+"):
        if len(digits) == 10 and digits.isascii() and digits.isdigit():
            digits = "+1" + digits
        elif len(digits) == 11 and digits.startswith("1") and digits.isdigit():
            digits = "+" + digits
        else:
            digits = "+" + digits
    body = digits[1:]
    if not (body.isascii() and body.isdigit() and 8 <= len(body) <= 15):
        raise ValidationFailed({"number": "Enter a phone number like +1 415 555 0100."})
    return digits


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


def _rows(session: Session, account: Account, number: str) -> list[dict]:
    labels = {number_id: label for number_id, label in session.execute(
        select(TrackingNumber.id, TrackingNumber.label)
        .where(TrackingNumber.account_id == account.id))}
    return [{
        "call_id": c.id,
        "started_at_utc": c.started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "caller_number": c.caller_number, "caller_name": c.caller_name, "notes": c.notes,
        "called_number": c.called_number,
        "tracking_number_label": labels.get(c.tracking_number_id, ""),
        "source": c.source, "duration_seconds": c.duration_seconds,
    } for c in caller_calls(session, account, number)]


def export_json(session: Session, account: Account, number: str,
                now: datetime | None = None) -> str:
    now = now or clock_now()
    rows = _rows(session, account, number)
    return json.dumps({"caller_number": number, "account": account.name,
                       "exported_at_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "calls": rows}, indent=2)


def export_csv(session: Session, account: Account, number: str) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for row in _rows(session, account, number):
        # Free text is neutralised against spreadsheet formulas; the numbers are validated
        # E.164 and stay as they are (as in the Call History export).
        writer.writerow({k: _csv_safe(v) if k in FREE_TEXT else v for k, v in row.items()})
    return buffer.getvalue()


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
    return len(calls)
