"""GDPR tools and redaction (portal.services.privacy): a redaction overwrites the caller's
data in the database and its version names the fields only; automatic redaction on arrival;
one caller's export and erasure; caller numbers normalized."""

import csv
import io
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from portal import clock
from portal.errors import NotFound, ValidationFailed
from portal.extensions import db
from portal.models import Call, Version
from portal.services import privacy
from tests import factories as f

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CALLER = "+14155550100"
NAME = "Zebulon Quixwort"
NOTES = "Wants a quote for 17 Larkspur Lane; call back after 5"
OTHER = "+12025550199"
BAD_NUMBER = "Enter a phone number like +1 415 555 0100."
HIDDEN = {"caller_name": [None, None], "caller_number": [None, None], "notes": [None, None]}


def make_call(session, account, caller=CALLER, name=NAME, notes=NOTES, days_ago=1,
              source="Google Ads"):
    c = Call(account_id=account.id, caller_number=caller, caller_name=name, notes=notes,
             called_number="+14155550000", started_at=NOW - timedelta(days=days_ago),
             duration_seconds=95, source=source)
    session.add(c)
    session.flush()
    return c


def stored(call_id: int) -> dict:
    """The row as the database holds it, read on a connection of its own."""
    with db.engine.connect() as conn:
        row = conn.execute(text("SELECT caller_name, caller_number, notes, redacted_at, "
                                "called_number, duration_seconds, source FROM calls "
                                "WHERE id = :id"), {"id": call_id}).mappings().one()
    return dict(row)


def exported(fmt: str, session, account, number: str = CALLER) -> str:
    """The caller export as one text (the service streams it in pieces)."""
    export = privacy.export_json if fmt == "json" else privacy.export_csv
    return "".join(export(session, account, number))


def versions_text(session) -> str:
    rows = session.execute(select(Version.record_type, Version.record_label, Version.action,
                                  Version.changes_json)).all()
    return repr(rows)


def assert_nothing_of(haystack: str, *values: str) -> None:
    for value in values:
        assert value not in haystack
    for part in NAME.split() + ["Larkspur", "4155550100"]:
        assert part not in haystack


@pytest.fixture
def world(session):
    from types import SimpleNamespace

    clock.freeze(NOW)
    w = SimpleNamespace()
    w.acme = f.standalone(session, "Acme Plumbing")
    w.rival = f.standalone(session, "Rival Shop")
    w.first = make_call(session, w.acme, days_ago=3)
    w.second = make_call(session, w.acme, notes="Second call", days_ago=2)
    w.someone_else = make_call(session, w.acme, caller=OTHER, name="Other Person",
                               notes="Not Zebulon")
    w.rivals = make_call(session, w.rival)  # the same caller, another tenant
    session.commit()
    return w


# --- numbers --------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,number", [
    ("(415) 555-0100", "+14155550100"),
    ("415.555.0100", "+14155550100"),
    ("4155550100", "+14155550100"),
    (" 1 415 555 0100 ", "+14155550100"),
    ("1-415-555-0100", "+14155550100"),
    ("+1 (415) 555-0100", "+14155550100"),
    ("+44 20 7946 0958", "+442079460958"),
    ("0044 20 7946 0958", "+442079460958"),
    ("+123456789012345", "+123456789012345"),  # 15 digits: the most E.164 has
])
def test_normalize_number(raw, number):
    assert privacy.normalize_number(raw) == number


@pytest.mark.parametrize("raw,message", [
    ("", "Enter the caller's phone number."),
    ("   ", "Enter the caller's phone number."),
    (None, "Enter the caller's phone number."),
    ("abc", BAD_NUMBER),
    ("555-0100", BAD_NUMBER),  # 7 digits: too short
    ("+1234567890123456", BAD_NUMBER),  # 16 digits: too long
    ("+1 415 555 0100 ext 2", BAD_NUMBER),
    ("+1 415 555 01OO", BAD_NUMBER),
    ("٤١٥٥٥٥٠١٠٠", BAD_NUMBER),  # digits, but not ASCII ones
    ("+", BAD_NUMBER),
    ("4155550100\x00", BAD_NUMBER),
])
def test_normalize_number_refuses(raw, message):
    with pytest.raises(ValidationFailed) as e:
        privacy.normalize_number(raw)
    assert e.value.errors == {"number": message}


# --- redacting one call -----------------------------------------------------------------------

def test_redaction_removes_the_data_from_the_database(session, world):
    privacy.redact_call(session, world.acme, world.first.id)
    session.commit()
    row = stored(world.first.id)
    assert (row["caller_name"], row["caller_number"], row["notes"]) == ("", "", "")
    assert row["redacted_at"] is not None
    # What billing needs stays.
    assert (row["called_number"], row["duration_seconds"], row["source"]) == (
        "+14155550000", 95, "Google Ads")
    session.expire_all()
    assert world.first.redacted_at == NOW
    # The other calls are untouched.
    assert stored(world.second.id)["caller_name"] == NAME
    assert stored(world.rivals.id)["caller_number"] == CALLER


def test_redaction_leaves_a_version_with_the_field_names_only(session, world):
    privacy.redact_call(session, world.acme, world.first.id)
    session.commit()
    versions = session.scalars(select(Version).where(Version.record_type == "call")).all()
    assert len(versions) == 1
    v = versions[0]
    assert (v.account_id, v.record_id, v.action) == (world.acme.id, world.first.id,
                                                     "redacted")
    assert v.changes == HIDDEN
    assert v.record_label == f"Call #{world.first.id}"
    assert_nothing_of(versions_text(session), NAME, CALLER, NOTES)


def test_redacting_a_call_without_notes_or_name(session, world):
    bare = make_call(session, world.acme, caller=OTHER, name="", notes="")
    session.commit()
    privacy.redact_call(session, world.acme, bare.id)
    session.commit()
    v = session.scalar(select(Version).where(Version.record_id == bare.id))
    assert v.action == "redacted"
    assert v.changes == {"caller_number": [None, None]}
    assert OTHER not in versions_text(session)


def test_redacting_twice_is_refused_with_a_message(session, world):
    privacy.redact_call(session, world.acme, world.first.id)
    session.commit()
    with pytest.raises(ValidationFailed) as e:
        privacy.redact_call(session, world.acme, world.first.id)
    assert e.value.errors == {"": "This call's personal data was already removed."}


def test_another_accounts_call_is_not_found(session, world):
    with pytest.raises(NotFound):
        privacy.redact_call(session, world.acme, world.rivals.id)
    with pytest.raises(NotFound):
        privacy.redact_call(session, world.acme, 2**31 - 1)
    session.rollback()
    assert stored(world.rivals.id)["caller_name"] == NAME


def sqlite_files(database_url: str) -> bytes:
    """Every byte SQLite keeps of the database on disk: the file, its write-ahead log (WAL
    mode: committed pages wait there for a checkpoint) and any rollback journal.

    Read by another process (`cat`), never opened here: closing any file descriptor of the
    database file drops every POSIX lock this process holds on it, the shared lock of the
    suite's open WAL connections included. The next other process to close its connection
    (a gunicorn in a later test) then believes it is the last one, checkpoints and deletes
    the -wal and -shm files under this process's connections, and every write after that
    fails with "disk I/O error" (CI on 2026-12-02: 683 errors after test_log_masking)."""
    path = Path(database_url.removeprefix("sqlite:///"))
    parts = [str(part) for part in (path.with_name(path.name + suffix)
                                    for suffix in ("", "-wal", "-journal")) if part.exists()]
    return subprocess.run(["cat", *parts], check=True, capture_output=True).stdout


def _close_and_purge(session, account, now):
    from portal.services import lifecycle

    lifecycle.close(session, account, f.user(session, email="owner@example.test"), now=now)
    session.commit()
    assert lifecycle.purge_expired(session, now=now + timedelta(days=61)) == [account.id]


@pytest.mark.parametrize("how", ["redact", "erase", "purge"])
def test_removed_values_are_left_nowhere_in_the_sqlite_files(session, world, database_url,
                                                             how):
    """PRAGMA secure_delete: the overwritten (redaction, erasure) or deleted (the purge 60
    days after a close) name, number and notes are not left in free space of the database
    file; and in WAL mode not in the -wal file either, where the pages that held them were
    written: the commit that removed them checkpoints the log into the database file and
    truncates it (transactions.scrub_after_commit)."""
    if not database_url.startswith("sqlite"):
        # PostgreSQL has no secure_delete: old row versions keep the values until VACUUM
        # removes them (a known limit, in the README); the database rows themselves are
        # checked on both databases by the redaction tests above.
        pytest.skip("SQLite only: PostgreSQL keeps dead row versions until VACUUM")
    marker_name = "Ottoline Vexbridge-Quarn"
    marker_notes = "Confidential: Ottoline's gate code is 4417-XQ"
    account = f.standalone(session, "Vexbridge Kennels") if how == "purge" else world.acme
    c = make_call(session, account, caller="+19175550123", name=marker_name,
                  notes=marker_notes)
    session.commit()
    assert session.execute(text("PRAGMA secure_delete")).scalar() == 1
    assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    # The control: before, the files hold them (here, in the WAL: not checkpointed yet).
    raw = sqlite_files(database_url)
    assert marker_name.encode() in raw and b"gate code is 4417" in raw
    if how == "redact":
        privacy.redact_call(session, account, c.id)
    elif how == "erase":
        assert privacy.erase(session, account, "+19175550123", confirmed=True) == 1
    else:
        _close_and_purge(session, account, NOW)
    session.commit()
    raw = sqlite_files(database_url)
    assert marker_name.encode() not in raw
    assert b"gate code is 4417" not in raw
    assert b"+19175550123" not in raw
    wal = Path(database_url.removeprefix("sqlite:///") + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # truncated


def test_a_rolled_back_redaction_checkpoints_nothing(session, world, database_url,
                                                     monkeypatch):
    """The checkpoint follows a commit that removed data, not one after a rollback."""
    from portal import transactions

    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only: the WAL checkpoint (PostgreSQL has no such file)")

    done = []
    monkeypatch.setattr(transactions, "checkpoint", lambda engine, **kw: done.append(engine))
    privacy.redact_call(session, world.acme, world.first.id)
    session.rollback()
    session.add(Call(account_id=world.acme.id, caller_number=OTHER, called_number=CALLER,
                     started_at=NOW, duration_seconds=1))
    session.commit()
    assert done == []
    privacy.redact_call(session, world.acme, world.first.id)
    session.commit()
    assert len(done) == 1


# --- automatic redaction on arrival ---------------------------------------------------------

def arrival(**overrides) -> privacy.Arrival:
    values = dict(started_at=NOW - timedelta(minutes=5), caller_number="(415) 555-0100",
                  called_number="+14155550000", duration_seconds=42, caller_name=NAME,
                  source="Bing", notes=NOTES)
    values.update(overrides)
    return privacy.Arrival(**values)


def test_auto_redact_off_stores_the_callers_data(session, world):
    call = privacy.receive_call(session, world.acme, arrival())
    session.commit()
    row = stored(call.id)
    assert (row["caller_name"], row["caller_number"], row["notes"]) == (NAME, CALLER, NOTES)
    assert row["redacted_at"] is None


def test_auto_redact_on_never_stores_the_callers_data(session, world):
    privacy.set_auto_redact(session, world.acme, True)
    session.commit()
    call = privacy.receive_call(session, world.acme, arrival())
    session.commit()
    row = stored(call.id)
    assert (row["caller_name"], row["caller_number"], row["notes"]) == ("", "", "")
    assert row["redacted_at"] is not None
    assert (row["duration_seconds"], row["source"], row["called_number"]) == (
        42, "Bing", "+14155550000")
    assert_nothing_of(versions_text(session), NAME, NOTES)
    # Another account is not affected.
    other = privacy.receive_call(session, world.rival, arrival())
    session.commit()
    assert stored(other.id)["caller_name"] == NAME


def test_auto_redact_setting_is_versioned(session, world):
    privacy.set_auto_redact(session, world.acme, True)
    session.commit()
    v = session.scalar(select(Version).where(Version.record_type == "account",
                                             Version.account_id == world.acme.id))
    assert v.changes == {"auto_redact": [False, True]}


def test_receive_call_refuses_a_bad_caller_number(session, world):
    with pytest.raises(ValidationFailed) as e:
        privacy.receive_call(session, world.acme, arrival(caller_number="unknown"))
    assert e.value.errors == {"number": BAD_NUMBER}


def test_receive_call_trims_long_texts(session, world):
    call = privacy.receive_call(session, world.acme, arrival(
        caller_name="N" * 500, source="S" * 500, notes="x" * (privacy.MAX_NOTES + 10)))
    session.commit()
    row = stored(call.id)
    assert len(row["caller_name"]) == 120 and len(row["source"]) == 60
    assert len(row["notes"]) == privacy.MAX_NOTES


# --- one caller: count, export, erase ---------------------------------------------------------

def test_caller_calls_and_count_are_that_callers_on_that_account(session, world):
    assert [c.id for c in privacy.caller_calls(session, world.acme, CALLER)] == [
        world.first.id, world.second.id]
    assert privacy.caller_count(session, world.acme, CALLER) == 2
    assert privacy.caller_count(session, world.rival, CALLER) == 1
    assert privacy.caller_count(session, world.acme, "+19999999999") == 0


def test_export_json_has_exactly_that_callers_calls(session, world):
    data = json.loads(exported("json", session, world.acme))
    assert data["caller_number"] == CALLER
    assert data["account"] == "Acme Plumbing"
    assert data["exported_at_utc"] == "2026-11-23T12:00:00Z"
    assert [c["call_id"] for c in data["calls"]] == [world.first.id, world.second.id]
    first = data["calls"][0]
    assert first == {"call_id": world.first.id, "started_at_utc": "2026-11-20T12:00:00Z",
                     "caller_number": CALLER, "caller_name": NAME, "notes": NOTES,
                     "called_number": "+14155550000", "tracking_number_label": "",
                     "source": "Google Ads", "duration_seconds": 95}


def test_export_csv_has_exactly_that_callers_calls(session, world):
    rows = list(csv.DictReader(io.StringIO(exported("csv", session, world.acme))))
    assert [int(r["call_id"]) for r in rows] == [world.first.id, world.second.id]
    assert list(rows[0]) == privacy.EXPORT_FIELDS
    assert {r["caller_name"] for r in rows} == {NAME}
    assert [r["notes"] for r in rows] == [NOTES, "Second call"]


def test_export_csv_numbers_match_the_json_export(session, world):
    """The same export in two formats: the CSV's phone numbers are the numbers, as in the
    JSON (a normalized +E.164 number is not a formula to neutralise)."""
    rows = list(csv.DictReader(io.StringIO(exported("csv", session, world.acme))))
    calls = json.loads(exported("json", session, world.acme))["calls"]
    assert [(r["caller_number"], r["called_number"]) for r in rows] == [
        (c["caller_number"], c["called_number"]) for c in calls]


def test_export_csv_neutralises_formulas_in_free_text(session, world):
    make_call(session, world.acme, name="=HYPERLINK(\"http://evil.test\")", notes="@SUM(A1)")
    session.commit()
    rows = list(csv.DictReader(io.StringIO(exported("csv", session, world.acme))))
    assert rows[-1]["caller_name"].startswith("'=")
    assert rows[-1]["notes"] == "'@SUM(A1)"


def test_a_redacted_call_is_no_longer_in_the_callers_export(session, world):
    privacy.redact_call(session, world.acme, world.first.id)
    session.commit()
    data = json.loads(exported("json", session, world.acme))
    assert [c["call_id"] for c in data["calls"]] == [world.second.id]
    text = exported("csv", session, world.acme)
    assert text.count(NAME) == 1  # the second call's row only; the first is nameless


def test_erase_needs_the_confirmation(session, world):
    with pytest.raises(ValidationFailed) as e:
        privacy.erase(session, world.acme, CALLER, confirmed=False)
    assert e.value.errors == {"confirm": "Tick the box to confirm: erasing can't be undone."}
    session.commit()
    assert stored(world.first.id)["caller_name"] == NAME
    assert stored(world.second.id)["redacted_at"] is None


def test_erase_redacts_every_call_of_that_caller_on_that_account_only(session, world):
    assert privacy.erase(session, world.acme, CALLER, confirmed=True) == 2
    session.commit()
    for call in (world.first, world.second):
        row = stored(call.id)
        assert (row["caller_name"], row["caller_number"], row["notes"]) == ("", "", "")
        assert row["redacted_at"] is not None
    assert stored(world.someone_else.id)["caller_name"] == "Other Person"
    assert stored(world.rivals.id)["caller_name"] == NAME
    assert privacy.caller_count(session, world.acme, CALLER) == 0
    versions = session.scalars(select(Version).where(Version.record_type == "call")
                               .order_by(Version.record_id)).all()
    assert [(v.record_id, v.action, v.changes) for v in versions] == [
        (world.first.id, "redacted", HIDDEN), (world.second.id, "redacted", HIDDEN)]
    assert_nothing_of(versions_text(session), NAME, NOTES, "Second call")
    assert privacy.erase(session, world.acme, CALLER, confirmed=True) == 0
