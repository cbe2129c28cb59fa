"""Billing Logs: every ledger entry of the account, newest first; search, kind and UTC date
filters, Older/Newer pages, the htmx partial, and the CSV export filtered like the page."""

import csv
import io
import os
from datetime import UTC, datetime

import pytest

from portal import clock
from portal.models import Cause, LedgerKind
from portal.services import ledger
from tests.conftest import HX
from tests.web.billing_world import (
    NOW,
    build,
    card,
    form_error,
    form_key,
    post,
    url,
)
from tests.web.conftest import sign_in_as
from tests.web.pages import (
    NOT_FOUND,
    assert_fragment,
    assert_full_page,
    body,
    pager_links,
    query,
    table_rows,
    text,
)

HEADER = ["created_at_utc", "kind", "description", "amount", "balance_after", "cause",
          "reference"]


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def bw(session):
    clock.freeze(NOW)
    return build(session)


# (when, kind, cents, description), oldest first: either side of the Nov 20–21 boundaries
ENTRIES = [
    (at(19, 23, 59, 59), LedgerKind.PAYMENT, 10000, "Payment: Visa ending 4242 (R-00000001)"),
    (at(20), LedgerKind.USAGE, -300, "Usage: 60 minutes"),
    (at(21, 8, 15), LedgerKind.USAGE, -150, "Usage: 30 MINUTES, 1 number"),
    (at(21, 23, 59, 59), LedgerKind.ADJUSTMENT, 500, "=Goodwill credit"),
    (at(22), LedgerKind.PLAN_FEE, -17900, "Plan fee: Pro, December 2026"),
]


@pytest.fixture
def logs(session, bw):
    for i, (when, kind, cents, description) in enumerate(ENTRIES):
        ledger.post(session, bw.solo, kind, cents, description, f"test:{i}", Cause.JOB,
                    cause_ref=f"ref-{i}", now=when)
    ledger.post(session, bw.rival, LedgerKind.USAGE, -999, "Usage: the rival's minutes",
                "test:rival", Cause.USAGE, now=at(21, 9))
    session.commit()
    return bw


def logs_page(client, account, headers=None, **params):
    return client.get(url(account, "logs"), query_string=params, headers=headers or {})


def descriptions(response) -> list[str]:
    return [row.cells[2] for row in table_rows(body(response))]


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body(response))))


# --- the list ------------------------------------------------------------------------------------

def test_lists_every_entry_newest_first(client, logs):
    sign_in_as(client, logs.ann)
    response = logs_page(client, logs.solo)
    assert response.status_code == 200
    html = assert_full_page(response)
    assert "<h1>Billing Logs <span class=\"muted\">· Acme Plumbing</span></h1>" in html
    assert [row.cells for row in table_rows(html)] == [
        ["2026-11-22 00:00", "Plan fee", "Plan fee: Pro, December 2026", "-$179.00", "-$78.50"],
        ["2026-11-21 23:59", "Adjustment", "=Goodwill credit", "$5.00", "$100.50"],
        ["2026-11-21 08:15", "Usage", "Usage: 30 MINUTES, 1 number", "-$1.50", "$95.50"],
        ["2026-11-20 00:00", "Usage", "Usage: 60 minutes", "-$3.00", "$97.00"],
        ["2026-11-19 23:59", "Payment", "Payment: Visa ending 4242 (R-00000001)", "$100.00",
         "$100.00"]]
    assert "the rival" not in html
    assert "Entries 1–5, newest first" in text(html)
    assert pager_links(html) == {}


def test_a_payment_made_on_the_page_is_in_the_logs(client, session, bw):
    visa = card(session, bw.solo)
    sign_in_as(client, bw.ann)
    assert post(client, url(bw.solo, "payments"), {
        "method": str(visa.id), "amount": "25", "form_key": form_key(client, bw.solo),
    }).status_code == 303
    [row] = table_rows(body(logs_page(client, bw.solo)))
    assert row.cells[0:2] == ["2026-11-23 12:00", "Payment"]
    assert row.cells[2].startswith("Payment: Visa ending 4242 (R-")
    assert row.cells[3:] == ["$25.00", "$25.00"]


def test_a_search_for_a_receipt_number_finds_its_payment(client, session, bw):
    """A whole receipt number goes through the charge's index (cause_ref): the same rows as
    the text search, any case; a part of one is a text search still."""
    visa = card(session, bw.solo)
    sign_in_as(client, bw.ann)
    for amount in ("25", "30"):
        assert post(client, url(bw.solo, "payments"), {
            "method": str(visa.id), "amount": amount, "form_key": form_key(client, bw.solo),
        }).status_code == 303
    first, second = reversed(descriptions(logs_page(client, bw.solo)))
    receipt, other = (d[d.index("(R-") + 1:-1] for d in (first, second))
    assert descriptions(logs_page(client, bw.solo, q=receipt)) == [first]
    assert descriptions(logs_page(client, bw.solo, q=receipt.lower())) == [first]
    # What both receipt numbers start with (R-00000329 and R-00000330 share "R-000003"): a
    # part of a number, searched as text, finds both.
    shared = os.path.commonprefix([receipt, other])
    assert len(shared) < len(receipt)
    assert descriptions(logs_page(client, bw.solo, q=shared)) == [second, first]
    assert descriptions(logs_page(client, bw.solo, q="R-99999999")) == []


@pytest.mark.parametrize("params,expected", [
    pytest.param({"q": "minutes"}, ["Usage: 30 MINUTES, 1 number", "Usage: 60 minutes"],
                 id="search-any-case"),
    pytest.param({"q": "  VISA   ending "}, ["Payment: Visa ending 4242 (R-00000001)"],
                 id="search-trimmed"),
    pytest.param({"q": "100%"}, [], id="search-wildcard-is-literal"),
    pytest.param({"q": "_"}, [], id="search-underscore-is-literal"),
    pytest.param({"kind": "usage"}, ["Usage: 30 MINUTES, 1 number", "Usage: 60 minutes"],
                 id="kind"),
    pytest.param({"kind": "plan_fee"}, ["Plan fee: Pro, December 2026"], id="kind-plan-fee"),
    pytest.param({"kind": "refund"}, [], id="kind-none"),
    pytest.param({"from": "2026-11-20", "to": "2026-11-21"},
                 ["=Goodwill credit", "Usage: 30 MINUTES, 1 number", "Usage: 60 minutes"],
                 id="from-to-inclusive"),
    pytest.param({"from": "2026-11-21", "to": "2026-11-21"},
                 ["=Goodwill credit", "Usage: 30 MINUTES, 1 number"], id="one-day"),
    pytest.param({"from": "2026-11-22"}, ["Plan fee: Pro, December 2026"], id="from-only"),
    pytest.param({"to": "2026-11-19"}, ["Payment: Visa ending 4242 (R-00000001)"],
                 id="to-only"),
    pytest.param({"q": "usage", "kind": "usage", "from": "2026-11-21", "to": "2026-11-21"},
                 ["Usage: 30 MINUTES, 1 number"], id="everything-together"),
])
def test_filters(client, logs, params, expected):
    sign_in_as(client, logs.ann)
    response = logs_page(client, logs.solo, **params)
    assert response.status_code == 200
    assert descriptions(response) == expected
    html = body(response)
    if not expected:
        assert "No entries match." in html
    # the form keeps what was asked
    if "kind" in params:
        assert f'<option value="{params["kind"]}" selected>' in html
    for name in ("from", "to"):
        if name in params:
            assert f'name="{name}" value="{params[name]}"' in html


@pytest.mark.parametrize("params,errors", [
    pytest.param({"from": "2026-13-01"}, ["From must be a date like 2026-11-23."], id="month-13"),
    pytest.param({"to": "23/11/2026"}, ["To must be a date like 2026-11-23."], id="not-iso"),
    pytest.param({"from": "2026-11-22", "to": "2026-11-21"}, ["To must be on or after From."],
                 id="to-before-from"),
    pytest.param({"kind": "bonus"}, ["Choose a kind from the list."], id="unknown-kind"),
    pytest.param({"q": "x" * 101}, ["Search for at most 100 characters."], id="long-search"),
    pytest.param({"from": "yesterday", "kind": "bonus"},
                 ["Choose a kind from the list.", "From must be a date like 2026-11-23."],
                 id="two-errors"),
])
def test_a_bad_filter_is_a_422_with_the_message(client, logs, params, errors):
    sign_in_as(client, logs.ann)
    for headers in ({}, HX):
        response = logs_page(client, logs.solo, headers, **params)
        assert response.status_code == 422
        html = body(response)
        if headers:
            assert_fragment(response, '<div id="results">')
        else:
            assert_full_page(response)
        assert html.count('<p class="form-error" role="alert">') == len(errors)
        for message in errors:
            assert form_error(message) in html
        assert table_rows(html) == []
        assert "Export to CSV" not in html
    csv_response = client.get(url(logs.solo, "logs.csv"), query_string=params)
    assert csv_response.status_code == 422
    assert "Content-Disposition" not in csv_response.headers
    assert form_error(errors[0]) in body(csv_response)


def test_an_htmx_search_returns_the_results_with_the_filter_they_were_drawn_from(client, logs):
    """The fragment holds the filter form too, drawn from the same search: a history restore
    (back, forward) brings controls and rows back together (issue 14)."""
    sign_in_as(client, logs.ann)
    response = logs_page(client, logs.solo, HX, q="minutes", kind="usage")
    assert response.status_code == 200
    html = assert_fragment(response, '<div id="results">')
    assert html.count('id="log-filters"') == 1
    assert 'name="q" value="minutes"' in html
    assert '<option value="usage" selected>' in html
    assert "q=minutes&amp;kind=usage" in html  # the Export to CSV link: the same filter
    assert [row.cells[2] for row in table_rows(html)] == ["Usage: 30 MINUTES, 1 number",
                                                          "Usage: 60 minutes"]


def test_older_and_newer_pages_keep_the_filters(app, client, logs):
    app.config["BILLING_LOGS_PER_PAGE"] = 2
    sign_in_as(client, logs.ann)
    first = logs_page(client, logs.solo)
    assert descriptions(first) == ["Plan fee: Pro, December 2026", "=Goodwill credit"]
    links = pager_links(body(first))
    assert set(links) == {"next"}
    assert '<a href="' in body(first) and 'rel="next">Older →</a>' in body(first)
    assert query(links["next"]) == {"page": "2"}
    assert "Page 1" in text(body(first))

    second = client.get(links["next"], headers=HX)
    html = assert_fragment(second, '<div id="results">')
    assert [r.cells[2] for r in table_rows(html)] == ["Usage: 30 MINUTES, 1 number",
                                                      "Usage: 60 minutes"]
    assert 'rel="prev">← Newer</a>' in html
    assert "Entries 3–4, newest first" in text(html)
    links = pager_links(html)
    assert set(links) == {"prev", "next"}
    assert query(links["prev"]) == {"page": "1"}

    third = client.get(links["next"])
    assert descriptions(third) == ["Payment: Visa ending 4242 (R-00000001)"]
    assert set(pager_links(body(third))) == {"prev"}

    # filtered: the pager carries the filter
    usage = logs_page(client, logs.solo, kind="usage", q="usage", **{"from": "2026-11-20"})
    assert pager_links(body(usage)) == {}
    app.config["BILLING_LOGS_PER_PAGE"] = 1
    usage = logs_page(client, logs.solo, kind="usage", q="usage", **{"from": "2026-11-20"})
    assert descriptions(usage) == ["Usage: 30 MINUTES, 1 number"]
    older = pager_links(body(usage))["next"]
    assert query(older) == {"page": "2", "kind": "usage", "q": "usage", "from": "2026-11-20"}
    assert descriptions(client.get(older)) == ["Usage: 60 minutes"]


@pytest.mark.parametrize("page", ["0", "abc", "-2"])
def test_a_bad_page_number_is_refused(client, logs, page):
    sign_in_as(client, logs.ann)
    response = logs_page(client, logs.solo, page=page)
    assert response.status_code == 422
    assert table_rows(body(response)) == []


def test_a_page_past_the_end_is_empty(client, logs):
    sign_in_as(client, logs.ann)
    response = logs_page(client, logs.solo, page="9")
    assert response.status_code == 200
    assert descriptions(response) == []
    assert "No entries match." in body(response)
    assert set(pager_links(body(response))) == {"prev"}


# --- CSV export ----------------------------------------------------------------------------------

def test_the_csv_has_the_header_and_every_entry_oldest_first(client, logs):
    sign_in_as(client, logs.ann)
    response = client.get(url(logs.solo, "logs.csv"))
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="billing-logs-{logs.solo.id}.csv"')
    rows = csv_rows(response)
    assert rows == [
        HEADER,
        ["2026-11-19T23:59:59Z", "Payment", "Payment: Visa ending 4242 (R-00000001)", "100.00",
         "100.00", "job", "ref-0"],
        ["2026-11-20T00:00:00Z", "Usage", "Usage: 60 minutes", "-3.00", "97.00", "job",
         "ref-1"],
        ["2026-11-21T08:15:00Z", "Usage", "Usage: 30 MINUTES, 1 number", "-1.50", "95.50",
         "job", "ref-2"],
        # a formula-looking description is neutralised for spreadsheets
        ["2026-11-21T23:59:59Z", "Adjustment", "'=Goodwill credit", "5.00", "100.50", "job",
         "ref-3"],
        ["2026-11-22T00:00:00Z", "Plan fee", "Plan fee: Pro, December 2026", "-179.00",
         "-78.50", "job", "ref-4"],
    ]


def test_the_page_links_to_the_csv_with_its_filters(client, logs):
    sign_in_as(client, logs.ann)
    html = body(logs_page(client, logs.solo, kind="usage", q="min", **{"from": "2026-11-21"}))
    link = (f'<a href="{url(logs.solo, "logs.csv")}?q=min&amp;kind=usage&amp;from=2026-11-21'
            '&amp;to=" hx-boost="false" data-export-from="log-filters" download>Export to CSV</a>')
    assert link in html


@pytest.mark.parametrize("params,expected", [
    ({"kind": "usage"}, ["Usage: 60 minutes", "Usage: 30 MINUTES, 1 number"]),
    ({"q": "MINUTES"}, ["Usage: 60 minutes", "Usage: 30 MINUTES, 1 number"]),
    ({"from": "2026-11-21", "to": "2026-11-21"},
     ["Usage: 30 MINUTES, 1 number", "'=Goodwill credit"]),
    ({"q": "nothing like this"}, []),
])
def test_the_csv_is_filtered_like_the_page(client, logs, params, expected):
    sign_in_as(client, logs.ann)
    rows = csv_rows(client.get(url(logs.solo, "logs.csv"), query_string=params))
    assert rows[0] == HEADER
    assert [row[2] for row in rows[1:]] == expected
    page = [d.replace("=", "'=") if d.startswith("=") else d
            for d in descriptions(logs_page(client, logs.solo, **params))]
    assert list(reversed(page)) == expected


def test_an_empty_csv_has_just_the_header(client, bw):
    sign_in_as(client, bw.ann)
    response = client.get(url(bw.solo, "logs.csv"))
    assert response.status_code == 200
    assert csv_rows(response) == [HEADER]


# --- who sees them -------------------------------------------------------------------------------

def test_another_tenant_gets_404_for_the_logs(client, logs):
    sign_in_as(client, logs.rex)
    for path in ("logs", "logs.csv"):
        response = client.get(url(logs.solo, path))
        assert response.status_code == 404
        assert NOT_FOUND in body(response)
        assert "Goodwill" not in body(response)
        assert "Content-Disposition" not in response.headers


def test_a_sub_on_agency_billing_keeps_its_own_logs_readable(client, session, bw):
    """Issue 14: its own ledger (from when it paid its own bills) stays readable; the usage
    the agency pays for it is on the agency's logs, not its own."""
    from portal.services import usage

    usage.post(session, bw.bayside, {"minutes": "20"}, "bayside-1")
    session.commit()
    sign_in_as(client, bw.avery)
    for path in ("logs", "logs.csv"):
        response = client.get(url(bw.bayside, path))
        assert response.status_code == 200, path
        assert "20 minutes" not in body(response)


def test_the_agencys_logs_name_the_sub_account_that_used_it(client, session, bw):
    from portal.services import usage

    usage.post(session, bw.bayside, {"minutes": "20"}, "bayside-1")
    session.commit()
    sign_in_as(client, bw.avery)
    [row] = table_rows(body(logs_page(client, bw.agency)))
    assert row.cells[1:] == ["Usage", "Usage (Bayside Dental): 20 minutes", "-$1.00", "-$1.00"]
