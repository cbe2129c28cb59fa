"""Issue 18 E2: /api/v1 statements: a PDF for a range, a big one made by the jobs (202, a
statement file to poll, then its PDF), the period's messages, recurring schedules, and
tenant isolation."""
# ruff: noqa: F811  (the `aw` fixture, imported, is each test's argument)

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal import jobs, rules
from portal.models import Cause, LedgerKind, StatementSchedule
from portal.models.statement_files import StatementFile
from portal.services import ledger
from tests import factories as f
from tests.web.api_billing_world import (  # noqa: F401
    API,
    NOW,
    assert_problem,
    aw,
    call,
    headers,
    snapshot,
)
from tests.web.billing_world import AGENCY_BILLED

NOV = "?from=2026-11-01&to=2026-11-23"
NOT_REACHED = "No such account, or this key does not reach it."


@pytest.fixture
def activity(session, aw):
    f.funds(session, aw.solo, 10000, when=NOW - timedelta(days=10))
    for day in range(3):
        ledger.post(session, aw.solo, LedgerKind.USAGE, -200, "Minutes ×4", f"u-{day}",
                    Cause.USAGE, now=NOW - timedelta(days=5 - day))
    session.commit()


def statement(client, w, query=NOV, key="solo", account=None):
    account = account or w.solo
    return call(client, w, "GET", f"/accounts/{account.id}/statements.pdf{query}", key=key)


def test_a_statement_pdf_for_a_range(client, session, aw, activity):
    response = statement(client, aw)
    assert response.status_code == 200
    assert response.mimetype == "application/pdf" and response.data.startswith(b"%PDF")
    assert f"statement-{aw.solo.id}-20261101-20261123.pdf" in \
        response.headers["Content-Disposition"]
    assert session.scalars(select(StatementFile)).all() == []


def test_a_big_statement_is_made_by_the_jobs(client, session, aw, activity, monkeypatch):
    monkeypatch.setattr(rules, "STATEMENT_SYNC_MAX_ENTRIES", 3)
    asked = statement(client, aw)
    assert asked.status_code == 202, asked.get_data(as_text=True)
    body = asked.get_json()
    assert (body["period_from"], body["period_to"], body["status"], body["pdf_url"]) == (
        "2026-11-01", "2026-11-23", "pending", None)
    file_url = f"{API}/accounts/{aw.solo.id}/statement-files/{body['id']}"
    assert asked.headers["Location"] == file_url
    assert statement(client, aw).get_json()["id"] == body["id"]  # the same file, reused
    early = client.get(file_url + ".pdf", headers=headers(aw))
    assert_problem(early, 409, f"The statement is being prepared: poll {file_url} until "
                               "its status is ready.")
    assert jobs.prepare_statements(session) == 1
    status = client.get(file_url, headers=headers(aw)).get_json()
    assert status["status"] == "ready" and status["pdf_url"] == file_url + ".pdf"
    assert status["pages"] >= 1 and status["size"] > 0
    ready = client.get(status["pdf_url"], headers=headers(aw))
    assert ready.status_code == 200 and ready.data.startswith(b"%PDF")
    again = statement(client, aw)  # the ready file, served at once
    assert again.status_code == 200 and again.data == ready.data


@pytest.mark.parametrize("query, errors", [
    ("", {"from": "Choose the first day of the statement.",
          "to": "Choose the last day of the statement."}),
    ("?from=2026-11-01&to=2026-11-24", {"to": "The statement can't end after today."}),
    ("?from=2026-11-01&to=23/11/2026", {"to": "To must be a date like 2026-11-23."}),
    ("?from=2022-11-01&to=2026-11-01", {"to": "A statement covers at most 3 years."}),
])
def test_a_bad_period_is_422_with_the_pages_message(client, session, aw, query, errors):
    before = snapshot(session)
    assert_problem(statement(client, aw, query), 422, "; ".join(errors.values()), errors)
    assert snapshot(session) == before


def test_schedules(client, session, aw):
    base = f"/accounts/{aw.solo.id}/statement-schedules"
    made = call(client, aw, "POST", base, json={"frequency": "monthly",
                                                "recipient": " Books@Example.test "})
    assert made.status_code == 201, made.get_json()
    schedule = made.get_json()
    assert (schedule["frequency"], schedule["recipient"]) == ("monthly", "books@example.test")
    listed = call(client, aw, "GET", base).get_json()
    assert [s["id"] for s in listed["data"]] == [schedule["id"]]
    for sent, errors in (
            ({"frequency": "daily", "recipient": "a@example.test"},
             {"frequency": "Choose weekly or monthly."}),
            ({"frequency": "weekly", "recipient": "not an address"},
             {"recipient": "Choose who receives the statement, or enter an email address."})):
        before = snapshot(session)
        assert_problem(call(client, aw, "POST", base, json=sent), 422,
                       "; ".join(errors.values()), errors)
        assert snapshot(session) == before
    assert call(client, aw, "DELETE", f"{base}/{schedule['id']}").status_code == 204
    assert session.scalars(select(StatementSchedule)).all() == []
    assert_problem(call(client, aw, "DELETE", f"{base}/{schedule['id']}"), 404,
                   "No such schedule.")


def test_agency_billed_sub_account_has_no_statements_of_its_own(client, session, aw):
    for method, rest in (("GET", f"statements.pdf{NOV}"), ("GET", "statement-schedules"),
                         ("POST", "statement-schedules")):
        response = call(client, aw, method, f"/accounts/{aw.bayside.id}/{rest}", key="agency",
                        json={"frequency": "weekly", "recipient": "a@example.test"}
                        if method == "POST" else None)
        assert_problem(response, 403, AGENCY_BILLED.format("Bayside Dental"))


def test_another_tenants_key_gets_404(client, session, aw, activity, monkeypatch):
    monkeypatch.setattr(rules, "STATEMENT_SYNC_MAX_ENTRIES", 3)
    file_id = statement(client, aw).get_json()["id"]
    schedule = call(client, aw, "POST", f"/accounts/{aw.solo.id}/statement-schedules",
                    json={"frequency": "weekly", "recipient": "a@example.test"}).get_json()
    before = snapshot(session)
    for method, rest in (("GET", f"statements.pdf{NOV}"), ("GET", f"statement-files/{file_id}"),
                         ("GET", f"statement-files/{file_id}.pdf"),
                         ("GET", "statement-schedules"), ("POST", "statement-schedules"),
                         ("DELETE", f"statement-schedules/{schedule['id']}")):
        response = call(client, aw, method, f"/accounts/{aw.solo.id}/{rest}", key="rival",
                        json={"frequency": "weekly", "recipient": "a@example.test"}
                        if method == "POST" else None)
        assert_problem(response, 404, NOT_REACHED)
    for rest, message in ((f"statement-files/{file_id}", "No such statement."),
                          (f"statement-files/{file_id}.pdf", "No such statement.")):
        response = call(client, aw, "GET", f"/accounts/{aw.rival.id}/{rest}", key="rival")
        assert_problem(response, 404, message)
    response = call(client, aw, "DELETE",
                    f"/accounts/{aw.rival.id}/statement-schedules/{schedule['id']}", key="rival")
    assert_problem(response, 404, "No such schedule.")
    assert snapshot(session) == before
