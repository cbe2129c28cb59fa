"""The GDPR caller export (privacy.export_json / export_csv) is streamed: the same bytes as
the whole document built at once, written in pieces from a query read in batches, so its
memory stays flat however many calls the caller made (it used to build everything in memory:
300,000 calls took a worker from 137 MB to 1,041 MB)."""

import csv
import gc
import io
import json
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, insert, select

from portal import clock
from portal.extensions import db
from portal.models import Call, TrackingNumber
from portal.services import privacy
from tests import factories as f

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CALLER = "+14155550100"


# --- the old, in-memory export, kept here as the reference for the bytes -----------------------

def reference_rows(session, account, number) -> list[dict]:
    labels = dict(session.execute(select(TrackingNumber.id, TrackingNumber.label)
                                  .where(TrackingNumber.account_id == account.id)).all())
    return [{
        "call_id": c.id,
        "started_at_utc": c.started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "caller_number": c.caller_number, "caller_name": c.caller_name, "notes": c.notes,
        "called_number": c.called_number,
        "tracking_number_label": labels.get(c.tracking_number_id, ""),
        "source": c.source, "duration_seconds": c.duration_seconds,
    } for c in privacy.caller_calls(session, account, number)]


def reference_json(session, account, number) -> str:
    return json.dumps({"caller_number": number, "account": account.name,
                       "exported_at_utc": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "calls": reference_rows(session, account, number)}, indent=2)


def reference_csv(session, account, number) -> str:
    from portal.services.calls import _csv_safe

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=privacy.EXPORT_FIELDS)
    writer.writeheader()
    for row in reference_rows(session, account, number):
        writer.writerow({k: _csv_safe(v) if k in privacy.FREE_TEXT else v
                         for k, v in row.items()})
    return buffer.getvalue()


@pytest.fixture
def world(session):
    from types import SimpleNamespace

    clock.freeze(NOW)
    w = SimpleNamespace()
    w.acme = f.standalone(session, 'Acme "Plumbing" & Sons [HQ]')
    w.rival = f.standalone(session, "Rival Shop")
    w.main = f.number(session, w.acme, label="Main line — spring ads")
    w.rivals_number = f.number(session, w.rival, label="Rival's secret campaign")
    texts = [("Zoë Quixwort", "Line one\nline two, \"quoted\"\ttab", "Google Ads"),
             ("=HYPERLINK(\"http://evil.test\")", "@SUM(A1)", "+cmd"),
             ("", "", ""),
             ("名前 😀", "back\\slash and \u2028 separator", "Bing"),
             ("Pat", "x" * 5000, "Referral")]
    for i, (name, notes, source) in enumerate(texts * 3):
        number = (w.main.id, None, w.rivals_number.id)[i % 3]  # a foreign id: no label
        session.add(Call(account_id=w.acme.id, caller_number=CALLER, caller_name=name,
                         notes=notes, called_number="+14155550000", source=source,
                         started_at=NOW - timedelta(days=20 - i, seconds=i),
                         duration_seconds=i * 7, tracking_number_id=number))
    session.add(Call(account_id=w.acme.id, caller_number="+12025550199", caller_name="Other",
                     called_number="+14155550000", started_at=NOW, duration_seconds=1))
    session.add(Call(account_id=w.rival.id, caller_number=CALLER, caller_name="Not Acme's",
                     called_number="+14155550000", started_at=NOW, duration_seconds=1))
    session.commit()
    return w


def test_the_json_is_byte_for_byte_the_whole_document(session, world):
    expected = reference_json(session, world.acme, CALLER)
    assert len(json.loads(expected)["calls"]) == 15
    for batch in (1, 2, 4, 15, 16, 500):
        pieces = list(privacy.export_json(session, world.acme, CALLER, batch=batch))
        assert "".join(pieces) == expected, batch
        assert len(pieces) >= 15 // batch + 1


def test_the_csv_is_byte_for_byte_the_whole_file(session, world):
    expected = reference_csv(session, world.acme, CALLER)
    assert len(list(csv.DictReader(io.StringIO(expected)))) == 15
    for batch in (1, 2, 4, 15, 16, 500):
        pieces = list(privacy.export_csv(session, world.acme, CALLER, batch=batch))
        assert "".join(pieces) == expected, batch
        assert len(pieces) >= 15 // batch + 1


@pytest.mark.parametrize("number", ["+19999999999", "+12025550199"])
def test_a_caller_with_no_or_one_call(session, world, number):
    for export, reference in ((privacy.export_json, reference_json),
                              (privacy.export_csv, reference_csv)):
        text = "".join(export(session, world.acme, number))
        assert text == reference(session, world.acme, number)
    assert json.loads("".join(privacy.export_json(session, world.acme, "+19999999999"))
                      )["calls"] == []


def test_nothing_is_read_until_the_first_piece_is_taken(session, world):
    """The view returns the generator: the query must run inside the streamed response."""
    statements = []

    def count(*_args, **_kwargs):
        statements.append(1)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        pieces = privacy.export_csv(session, world.acme, CALLER)
        json_pieces = privacy.export_json(session, world.acme, CALLER)
        assert statements == []
        next(pieces)
        next(json_pieces)
        list(pieces)
        list(json_pieces)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(statements) >= 2  # each export's query (and the account's name, if expired)


# --- memory ------------------------------------------------------------------------------------

def add_calls(session, account, number: str, count: int) -> None:
    start = NOW - timedelta(days=400)
    for low in range(0, count, 10_000):
        session.execute(insert(Call), [{
            "account_id": account.id, "caller_number": number, "caller_name": "Pat Caller",
            "called_number": "+14155550000", "started_at": start + timedelta(minutes=i),
            "duration_seconds": 60 + i % 600, "source": "Google Ads",
            "notes": "Asked for a quote on the kitchen; call back after 5 pm.",
        } for i in range(low, min(count, low + 10_000))])
    session.commit()


def traced(pieces, marker: str) -> tuple[int, int, str]:
    """(tracemalloc's peak above the start while the pieces are taken, how many times
    `marker` was seen, the last characters)."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        calls = 0
        tail = ""
        for piece in pieces:
            calls += piece.count(marker)
            tail = (tail + piece)[-20:]
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    return peak, calls, tail


def test_memory_stays_flat_from_10k_to_100k_calls(session):
    clock.freeze(NOW)
    account = f.standalone(session, "Big Caller Co")
    small, large = "+14155550001", "+14155550002"
    add_calls(session, account, small, 10_000)
    add_calls(session, account, large, 100_000)
    session.expire_all()

    peaks = {}
    for fmt, export in (("json", privacy.export_json), ("csv", privacy.export_csv)):
        for number, count in ((small, 10_000), (large, 100_000)):
            # JSON: one "call_id" per call; CSV: one line per call and the header.
            marker = '"call_id": ' if fmt == "json" else "\r\n"
            peak, seen, tail = traced(export(session, account, number), marker)
            assert seen == (count if fmt == "json" else count + 1)
            assert tail.endswith("\n  ]\n}" if fmt == "json" else "\r\n")
            peaks[fmt, count] = peak
    print("tracemalloc peaks (bytes):", peaks)
    for fmt in ("json", "csv"):
        small_peak, large_peak = peaks[fmt, 10_000], peaks[fmt, 100_000]
        # Ten times the calls, the same memory (within noise): far from the 10x of an export
        # built whole. A batch of 500 rows is well under 2 MB.
        assert large_peak <= 1.5 * small_peak + 256 * 1024, (fmt, peaks)
        assert large_peak < 8 * 1024 * 1024, (fmt, peaks)
