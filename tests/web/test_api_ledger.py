"""Issue 18 E2: GET /api/v1/accounts/{id}/ledger: the Billing Logs' entries and balances, its
filters and their messages, cursor pages newest first, and tenant isolation."""
# ruff: noqa: F811  (the `aw` fixture, imported, is each test's argument)

from datetime import timedelta

import pytest

from portal.models import Cause, LedgerKind
from portal.services import ledger
from tests import factories as f
from tests.web.api_billing_world import NOW, assert_problem, aw, call, snapshot  # noqa: F401
from tests.web.billing_world import card, paid


def entries(client, w, account, query="", key="solo"):
    response = call(client, w, "GET", f"/accounts/{account.id}/ledger{query}", key=key)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_the_ledger_as_the_billing_logs_give_it(client, session, aw):
    f.funds(session, aw.solo, 10000, when=NOW - timedelta(days=3))
    ledger.post(session, aw.solo, LedgerKind.USAGE, -1234, "Minutes ×20", "u-1", Cause.USAGE,
                now=NOW - timedelta(days=2))
    session.commit()
    charge = paid(session, aw.solo, card(session, aw.solo), "25.00")
    page = entries(client, aw, aw.solo)
    assert page["has_more"] is False and page["next_cursor"] is None
    rows = [(e["kind"], e["amount_cents"], e["balance_after_cents"], e["description"])
            for e in page["data"]]
    assert rows == [
        ("payment", 2500, 11266, f"Payment: Visa ending 4242 ({charge.receipt_number})"),
        ("usage", -1234, 8766, "Minutes ×20"),
        ("payment", 10000, 10000, "Opening payment"),
    ]
    newest = page["data"][0]
    assert (newest["label"], newest["cause"], newest["reference"], newest["for_account_id"]) \
        == ("Payment", "charge", str(charge.id), None)
    assert page["data"][2]["created_at"] == "2026-11-20T12:00:00+00:00"


def test_filters_and_cursor(client, session, aw):
    for day in range(5):
        ledger.post(session, aw.solo, LedgerKind.USAGE, -100 - day, f"Minutes day {day}",
                    f"u-{day}", Cause.USAGE, now=NOW - timedelta(days=5 - day))
    f.funds(session, aw.solo, 5000, when=NOW - timedelta(days=1))
    session.commit()
    usage = entries(client, aw, aw.solo, "?kind=usage&limit=2")
    assert [e["description"] for e in usage["data"]] == ["Minutes day 4", "Minutes day 3"]
    assert usage["has_more"] is True
    seen = [e["id"] for e in usage["data"]]
    cursor = usage["next_cursor"]
    while cursor:
        more = entries(client, aw, aw.solo, f"?kind=usage&limit=2&cursor={cursor}")
        seen += [e["id"] for e in more["data"]]
        cursor = more["next_cursor"]
    assert len(seen) == len(set(seen)) == 5 and seen == sorted(seen, reverse=True)
    ranged = entries(client, aw, aw.solo, "?from=2026-11-19&to=2026-11-20")
    assert [e["description"] for e in ranged["data"]] == ["Minutes day 2", "Minutes day 1"]
    found = entries(client, aw, aw.solo, "?q=DAY%203")
    assert [e["description"] for e in found["data"]] == ["Minutes day 3"]


@pytest.mark.parametrize("query, errors", [
    ("?kind=bonus", {"kind": "Choose a kind from the list."}),
    ("?from=2026-13-01", {"from": "From must be a date like 2026-11-23."}),
    ("?from=2026-11-20&to=2026-11-19", {"to": "To must be on or after From."}),
    ("?q=" + "x" * 101, {"q": "Search for at most 100 characters."}),
    ("?cursor=nope", {"cursor": "Not a cursor from this list: send next_cursor from the page "
                                "before, or none for the first."}),
])
def test_a_bad_filter_is_422_with_the_pages_message(client, session, aw, query, errors):
    response = call(client, aw, "GET", f"/accounts/{aw.solo.id}/ledger{query}")
    assert_problem(response, 422, "; ".join(errors.values()), errors)


def test_an_agency_ledger_names_the_sub_account_and_the_sub_reads_its_own(client, session,
                                                                          aw):
    f.funds(session, aw.agency, 10000)
    ledger.post(session, aw.agency, LedgerKind.USAGE, -300, "Minutes ×6 (Bayside Dental)",
                "u-bay", Cause.USAGE, for_account=aw.bayside)
    f.funds(session, aw.harbor, 700)
    session.commit()
    agency = entries(client, aw, aw.agency, key="agency")
    assert [(e["amount_cents"], e["for_account_id"]) for e in agency["data"]] == [
        (-300, aw.bayside.id), (10000, None)]
    # Bayside is paid from the agency: its own ledger is empty but readable (as the page).
    assert entries(client, aw, aw.bayside, key="agency")["data"] == []
    assert [e["amount_cents"] for e in entries(client, aw, aw.harbor, key="agency")["data"]] \
        == [700]
    assert [e["amount_cents"] for e in entries(client, aw, aw.harbor, key="harbor")["data"]] \
        == [700]


def test_another_tenants_key_gets_404(client, session, aw):
    f.funds(session, aw.solo, 10000)
    session.commit()
    for account in (aw.solo, aw.agency, aw.bayside):
        response = call(client, aw, "GET", f"/accounts/{account.id}/ledger", key="rival")
        assert_problem(response, 404, "No such account, or this key does not reach it.")
    response = call(client, aw, "GET", f"/accounts/{aw.agency.id}/ledger", key="harbor")
    assert_problem(response, 404, "No such account, or this key does not reach it.")


def test_the_cursor_follows_the_pages_order_through_equal_and_backdated_times(client,
                                                                             session, aw):
    same = NOW - timedelta(hours=1)
    for n in range(3):  # three entries in the same microsecond
        ledger.post(session, aw.solo, LedgerKind.USAGE, -10 - n, f"same {n}", f"s-{n}",
                    Cause.USAGE, now=same)
    ledger.post(session, aw.solo, LedgerKind.ADJUSTMENT, 500, "backdated", "b-1", Cause.USER,
                now=NOW - timedelta(days=3))  # a later id, an older time
    ledger.post(session, aw.solo, LedgerKind.USAGE, -1, "newest", "n-1", Cause.USAGE, now=NOW)
    session.commit()
    seen, cursor = [], ""
    while True:
        page = entries(client, aw, aw.solo, f"?limit=2&cursor={cursor}")
        seen += [e["description"] for e in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == ["newest", "same 2", "same 1", "same 0", "backdated"]
