import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest

from portal.errors import ValidationFailed
from portal.services import calls
from tests import factories as f

START = datetime(2026, 11, 1, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize("start,end,errors", [
    ("11/01/2026", "", {"from": "From must be a date like 2026-11-23."}),
    ("", "tomorrow", {"to": "To must be a date like 2026-11-23."}),
    ("2026-11-05", "2026-11-01", {"to": "To must be on or after From."}),
    ("2026-02-30", "", {"from": "From must be a date like 2026-11-23."}),
])
def test_parse_range_refuses_bad_dates(start, end, errors):
    with pytest.raises(ValidationFailed) as e:
        calls.parse_range(start, end)
    assert e.value.errors == errors


def test_parse_range_accepts_blank_and_single_day():
    assert calls.parse_range("", None) == calls.DateRange(None, None)
    day = calls.parse_range("2026-11-02", "2026-11-02")
    assert day == calls.DateRange(date(2026, 11, 2), date(2026, 11, 2))


def test_list_is_newest_first_and_date_range_is_inclusive_in_utc(session):
    account = f.standalone(session)
    f.calls(session, account, 72, start=START)  # hourly from Nov 1 00:30 to Nov 3 23:30
    f.calls(session, f.standalone(session), 10, start=START)  # someone else's
    everything = calls.list_calls(session, account, calls.DateRange(), per_page=100)
    assert everything.total == 72
    started = [c.started_at for c in everything.items]
    assert started == sorted(started, reverse=True)
    nov2 = calls.list_calls(session, account, calls.parse_range("2026-11-02", "2026-11-02"),
                            per_page=100)
    assert nov2.total == 24
    assert {c.started_at.date() for c in nov2.items} == {date(2026, 11, 2)}
    assert all(c.started_at.tzinfo is not None for c in nov2.items)


def test_pages(session):
    account = f.standalone(session)
    f.calls(session, account, 7, start=START)
    page = calls.list_calls(session, account, calls.DateRange(), page=2, per_page=5)
    assert len(page.items) == 2 and page.pages == 2
    assert page.items[-1].started_at == START


def test_export_is_oldest_first_in_batches_and_neutralises_formulas(session):
    account = f.standalone(session)
    f.calls(session, account, 7, start=START, caller_name="=HYPERLINK(\"x\")", source="+cmd")
    chunks = list(calls.export_csv(session, account, calls.DateRange(), batch=3))
    assert len([c for c in chunks if c]) >= 3
    rows = list(csv.reader(io.StringIO("".join(chunks))))
    assert rows[0] == calls.CSV_HEADER
    assert len(rows) == 8
    assert rows[1][0] == "2026-11-01T00:30:00Z"
    assert rows[-1][0] == (START + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rows[1][2] == "'=HYPERLINK(\"x\")" and rows[1][5] == "'+cmd"
