"""Call history: the list, its UTC date filter and pages, and the streamed CSV export."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from tests import factories as f
from tests.conftest import HX
from tests.web.conftest import sign_in_as
from tests.web.pages import (
    assert_fragment,
    assert_full_page,
    body,
    pager_links,
    query,
    table_rows,
    text,
)

HEADER = ["started_at_utc", "caller_number", "caller_name", "called_number",
          "duration_seconds", "source"]


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def admin(session):
    return f.user(session, email="admin@example.test")


@pytest.fixture
def account(session, admin):
    return f.standalone(session, "Acme Plumbing", admin=admin)


@pytest.fixture
def edges(session, account):
    """Calls either side of the Nov 20–21 (UTC) boundaries, and someone else's call."""
    for name, when in [("Before", at(19, 23, 59, 59)), ("First", at(20)),
                       ("Middle", at(21, 8, 15)), ("Last", at(21, 23, 59, 59)),
                       ("After", at(22))]:
        f.call(session, account, when, caller_name=name)
    f.call(session, f.standalone(session, "Other Co"), at(21, 9), caller_name="Stranger")
    session.commit()
    return account


def caller_names(response) -> list[str]:
    return [row.cells[2] for row in table_rows(body(response))]


def calls_page(client, account, **params):
    return client.get(f"/accounts/{account.id}/calls/", query_string=params)


# --- the list -----------------------------------------------------------------------------

def test_lists_this_accounts_calls_newest_first(client, admin, edges):
    sign_in_as(client, admin)
    response = calls_page(client, edges)
    assert response.status_code == 200
    html = assert_full_page(response)
    assert caller_names(response) == ["After", "Last", "Middle", "First", "Before"]
    assert "Stranger" not in html
    first = table_rows(html)[0].cells
    # then Notes (empty) and the Redact button (admins)
    assert first == ["2026-11-22 00:00", "+12025550100", "After", "+14155550000",
                     "Google Ads", "1:00", "", "Redact"]
    assert "Calls 1–5 of 5" in text(html)


@pytest.mark.parametrize("params,expected", [
    ({"from": "2026-11-20", "to": "2026-11-21"}, ["Last", "Middle", "First"]),
    ({"from": "2026-11-21", "to": "2026-11-21"}, ["Last", "Middle"]),
    ({"from": "2026-11-21"}, ["After", "Last", "Middle"]),
    ({"to": "2026-11-20"}, ["First", "Before"]),
    ({"from": " 2026-11-22 ", "to": ""}, ["After"]),
    ({"from": "2026-11-23"}, []),
    # the last and first dates there are: once a 500 (the day after 9999-12-31 overflowed)
    ({"from": "2026-11-21", "to": "9999-12-31"}, ["After", "Last", "Middle"]),
    ({"from": "0001-01-01", "to": "2026-11-20"}, ["First", "Before"]),
])
def test_date_filter_is_inclusive_in_utc(client, admin, edges, params, expected):
    sign_in_as(client, admin)
    response = calls_page(client, edges, **params)
    assert response.status_code == 200
    assert caller_names(response) == expected
    if not expected:
        assert "No calls in this range." in body(response)


def test_filter_as_htmx_returns_the_results_fragment(client, admin, edges):
    sign_in_as(client, admin)
    response = client.get(f"/accounts/{edges.id}/calls/?from=2026-11-21&to=2026-11-21",
                          headers=HX)
    assert response.status_code == 200
    html = assert_fragment(response, '<div id="results">')
    assert caller_names(response) == ["Last", "Middle"]
    export = f'href="/accounts/{edges.id}/calls/export.csv?from=2026-11-21&amp;to=2026-11-21"'
    assert export in html


@pytest.mark.parametrize("params,messages", [
    ({"from": "2026-11-32"}, ["From must be a date like 2026-11-23."]),
    ({"from": "11/20/2026"}, ["From must be a date like 2026-11-23."]),
    ({"to": "tomorrow"}, ["To must be a date like 2026-11-23."]),
    ({"from": "2026-11-21", "to": "2026-11-20"}, ["To must be on or after From."]),
    ({"from": "x", "to": "y"}, ["From must be a date like 2026-11-23.",
                                "To must be a date like 2026-11-23."]),
])
@pytest.mark.parametrize("headers", [{}, HX], ids=["full", "htmx"])
def test_bad_dates_are_422_with_the_message_and_no_rows(client, admin, edges, params,
                                                        messages, headers):
    sign_in_as(client, admin)
    response = client.get(f"/accounts/{edges.id}/calls/", query_string=params,
                          headers=headers)
    assert response.status_code == 422
    html = body(response)
    for message in messages:
        assert f'<p class="form-error" role="alert">{message}</p>' in html
    assert html.count('class="form-error"') == len(messages)
    assert caller_names(response) == []
    if headers:
        assert_fragment(response, '<div id="results">')
    else:
        assert_full_page(response)
        # the form keeps what was typed
        assert f'value="{params.get("from", "")}"' in html


@pytest.mark.parametrize("page_number,message", [("abc", "Page must be a whole number."),
                                          ("0", "Page must be 1 or more."),
                                          ("10000000000", "Page must be 1,000,000 or less.")])
def test_bad_page_is_422(client, admin, edges, page_number, message):
    sign_in_as(client, admin)
    response = calls_page(client, edges, page=page_number)
    assert response.status_code == 422
    assert f'<p class="form-error" role="alert">{message}</p>' in body(response)


def test_pages_of_50(app, client, session, admin, account):
    assert app.config["CALLS_PER_PAGE"] == 50
    f.calls(session, account, 55, start=at(1), step=timedelta(minutes=10))
    session.commit()
    sign_in_as(client, admin)

    first = calls_page(client, account)
    rows = table_rows(body(first))
    assert len(rows) == 50
    assert rows[0].cells[0] == (at(1) + timedelta(minutes=10 * 54)).strftime("%Y-%m-%d %H:%M")
    assert "Calls 1–50 of 55" in text(body(first))
    links = pager_links(body(first))
    assert set(links) == {"next"} and query(links["next"]) == {"page": "2"}

    second = client.get(links["next"])
    rows = table_rows(body(second))
    assert [r.cells[0] for r in rows] == [
        (at(1) + timedelta(minutes=10 * i)).strftime("%Y-%m-%d %H:%M") for i in range(4, -1, -1)]
    assert "Calls 51–55 of 55" in text(body(second))
    assert set(pager_links(body(second))) == {"prev"}


def test_pager_links_keep_the_date_filter(client, session, admin, account):
    f.calls(session, account, 60, start=at(5), step=timedelta(minutes=1))
    f.calls(session, account, 10, start=at(9))
    session.commit()
    sign_in_as(client, admin)
    html = body(calls_page(client, account, **{"from": "2026-11-05", "to": "2026-11-05"}))
    assert "Calls 1–50 of 60" in text(html)
    assert query(pager_links(html)["next"]) == {"from": "2026-11-05", "to": "2026-11-05",
                                                "page": "2"}
    second = client.get(pager_links(html)["next"], headers=HX)
    assert len(table_rows(assert_fragment(second, '<div id="results">'))) == 10


# --- CSV export -----------------------------------------------------------------------------

def export(client, account, **params):
    return client.get(f"/accounts/{account.id}/calls/export.csv", query_string=params)


def parse(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body(response))))


def test_export_is_a_csv_attachment_of_the_filtered_calls_oldest_first(client, admin, edges):
    sign_in_as(client, admin)
    response = export(client, edges, **{"from": "2026-11-20", "to": "2026-11-21"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="calls-{edges.id}.csv"')
    rows = parse(response)
    assert rows[0] == HEADER
    assert rows[1:] == [
        ["2026-11-20T00:00:00Z", "+12025550100", "First", "+14155550000", "60", "Google Ads"],
        ["2026-11-21T08:15:00Z", "+12025550100", "Middle", "+14155550000", "60", "Google Ads"],
        ["2026-11-21T23:59:59Z", "+12025550100", "Last", "+14155550000", "60", "Google Ads"],
    ]


def test_export_without_a_filter_has_every_call_of_this_account(client, admin, edges):
    sign_in_as(client, admin)
    rows = parse(export(client, edges))
    assert [r[2] for r in rows[1:]] == ["Before", "First", "Middle", "Last", "After"]


def test_export_up_to_the_last_date_there_is(client, admin, edges):
    sign_in_as(client, admin)
    response = export(client, edges, **{"from": "2026-11-22", "to": "9999-12-31"})
    assert response.status_code == 200
    assert [r[2] for r in parse(response)[1:]] == ["After"]


def test_export_of_nothing_is_just_the_header(client, admin, account):
    sign_in_as(client, admin)
    assert parse(export(client, account)) == [HEADER]


@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://evil.example\")", "+1+1", "-2+3",
                                  "@SUM(A1)"])
def test_export_neutralises_spreadsheet_formulas(client, session, admin, account, name):
    f.call(session, account, at(3), caller_name=name, source="=cmd|' /C calc'!A0")
    session.commit()
    sign_in_as(client, admin)
    row = parse(export(client, account))[1]
    assert row[2] == "'" + name
    assert row[5] == "'=cmd|' /C calc'!A0"
    assert row[1] == "+12025550100"  # phone numbers are data, not formulas: kept as they are


def test_large_export_streams_in_several_chunks(client, session, admin, account):
    f.calls(session, account, 1201, start=at(1), step=timedelta(minutes=1))
    session.commit()
    sign_in_as(client, admin)
    response = export(client, account)
    assert response.status_code == 200
    assert not response.is_sequence  # streamed, not built whole in memory
    chunks = [c for c in response.response if c]
    data_chunks = [c for c in chunks if c.count(b"\n") and not c.startswith(b"started_at")]
    assert len(data_chunks) >= 3  # 1201 rows, 500 at a time
    assert max(c.count(b"\n") for c in data_chunks) <= 500
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert rows[0] == HEADER
    assert len(rows) == 1 + 1201
    started = [r[0] for r in rows[1:]]
    assert started == sorted(started)
    assert started[0] == "2026-11-01T00:00:00Z"


@pytest.mark.parametrize("params,message", [
    ({"from": "nope"}, "From must be a date like 2026-11-23."),
    ({"to": "2026-02-30"}, "To must be a date like 2026-11-23."),
    ({"from": "2026-11-21", "to": "2026-11-20"}, "To must be on or after From."),
])
def test_export_with_bad_dates_is_422(client, admin, edges, params, message):
    sign_in_as(client, admin)
    response = export(client, edges, **params)
    assert response.status_code == 422
    assert response.mimetype == "text/html"
    assert "Content-Disposition" not in response.headers
    assert f'<p class="form-error" role="alert">{message}</p>' in body(response)
