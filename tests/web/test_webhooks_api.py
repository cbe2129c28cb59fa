"""/api/v1 webhooks, read-only (issue 18 W): the account's endpoints (no secret), its events
as delivered, the deliveries to its endpoints; cursor pages, filters, tenancy (404), a read
key is enough; and the path end to end: a change made over the API is an event the jobs
deliver, signed, to a real receiver."""

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select as db_select

from portal import clock
from portal.models import Role
from portal.services import lifecycle, webhooks
from tests import factories as f
from tests.web.conftest import bearer
from tests.webhook_receiver import Receiver

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)




@pytest.fixture
def w(session):
    clock.freeze(NOW)

    class W:
        pass

    w = W()
    w.owner = f.user(session, "olive@northwind.test")
    w.agency = f.agency(session, "Northwind Agency", owner=w.owner)
    w.sub = f.sub(session, w.agency, "Bayside Dental")
    w.other = f.standalone(session, "Elsewhere Inc")
    session.commit()
    w.made = webhooks.create(session, w.agency, w.owner, "https://hooks.example.com/a", "",
                             ["*"], allow_private=True)
    session.commit()
    w.token = f.api_key(session, w.agency, w.owner, scopes=("read",))
    w.other_token = f.api_key(session, w.other, scopes=("read", "write"))
    return w


def test_endpoints_without_their_secret(client, w):
    answer = client.get(f"/api/v1/accounts/{w.agency.id}/webhook-endpoints",
                        headers=bearer(w.token))
    assert answer.status_code == 200
    [endpoint] = answer.get_json()["data"]
    assert endpoint["url"] == "https://hooks.example.com/a" and endpoint["events"] == ["*"]
    assert endpoint["enabled"] is True and endpoint["secret_rotating_until"] is None
    assert "whsec_" not in answer.get_data(as_text=True)
    assert w.made.secret not in answer.get_data(as_text=True)


def test_events_and_deliveries_pages(client, session, w):
    for _ in range(3):
        lifecycle.pause_swapping(session, w.sub, w.owner)
        lifecycle.resume(session, w.sub, w.owner)
    session.commit()
    events = client.get(f"/api/v1/accounts/{w.sub.id}/webhook-events?limit=4",
                        headers=bearer(w.token)).get_json()
    assert [e["type"] for e in events["data"]] == ["account.resumed", "account.paused"] * 2
    assert events["has_more"] is True
    rest = client.get(f"/api/v1/accounts/{w.sub.id}/webhook-events?limit=4"
                      f"&cursor={events['next_cursor']}", headers=bearer(w.token)).get_json()
    assert len(rest["data"]) == 2 and rest["has_more"] is False
    first = events["data"][0]
    assert first["id"].startswith("evt_") and first["account_id"] == w.sub.id
    assert first["data"]["account"]["name"] == "Bayside Dental"
    paused = client.get(f"/api/v1/accounts/{w.sub.id}/webhook-events?type=account.paused",
                        headers=bearer(w.token)).get_json()
    assert {e["type"] for e in paused["data"]} == {"account.paused"}
    agency_events = client.get(f"/api/v1/accounts/{w.agency.id}/webhook-events",
                               headers=bearer(w.token)).get_json()
    assert agency_events["data"] == []  # they are about the sub-account

    # one event by its id: about this account only, another tenant's key never reaches it
    one = client.get(f"/api/v1/accounts/{w.sub.id}/webhook-events/{first['id']}",
                     headers=bearer(w.token))
    assert one.status_code == 200 and one.get_json() == first
    for account, token in ((w.agency.id, w.token), (w.sub.id, w.other_token),
                           (w.other.id, w.other_token)):
        answer = client.get(f"/api/v1/accounts/{account}/webhook-events/{first['id']}",
                            headers=bearer(token))
        assert answer.status_code == 404, (account, answer.get_json())
        assert answer.mimetype == "application/problem+json"
    missing = client.get(f"/api/v1/accounts/{w.sub.id}/webhook-events/evt_{'0' * 24}",
                         headers=bearer(w.token))
    assert missing.status_code == 404 and "kept 30 days" in missing.get_json()["detail"]

    deliveries = client.get(f"/api/v1/accounts/{w.agency.id}/webhook-deliveries",
                            headers=bearer(w.token)).get_json()["data"]
    assert len(deliveries) == 6
    assert deliveries[0]["event_id"] == first["id"]
    assert deliveries[0]["status"] == "pending" and deliveries[0]["attempts"] == 0
    assert deliveries[0]["next_attempt_at"] is not None
    none = client.get(f"/api/v1/accounts/{w.agency.id}/webhook-deliveries?status=failed",
                      headers=bearer(w.token)).get_json()
    assert none["data"] == []


def test_another_tenant_is_not_found(client, w):
    for rest in ("webhook-endpoints", "webhook-events", "webhook-deliveries"):
        answer = client.get(f"/api/v1/accounts/{w.agency.id}/{rest}",
                            headers=bearer(w.other_token))
        assert answer.status_code == 404, rest
        assert answer.content_type.startswith("application/problem+json")


def test_bad_filters_are_422(client, w):
    answer = client.get(f"/api/v1/accounts/{w.agency.id}/webhook-events?type=nope",
                        headers=bearer(w.token))
    assert answer.status_code == 422


def test_an_api_change_is_delivered_signed_end_to_end(client, session, w):
    receiver = Receiver()
    try:
        made = webhooks.create(session, w.sub, w.owner, receiver.url, "", ["account.paused"],
                               allow_private=True)
        session.commit()
        writer = f.api_key(session, w.agency, w.owner, scopes=("read", "write"), role=Role.OWNER)
        answer = client.post(f"/api/v1/accounts/{w.sub.id}/pause-swapping",
                             headers=bearer(writer))
        assert answer.status_code == 200, answer.get_json()
        run = webhooks.deliver_due(session, timeout=2, allow_private=True)
        # The sub-account's endpoint got it; the agency's (hooks.example.com, no such
        # receiver) is to be retried.
        assert (run.succeeded, run.retried) == (1, 1)
        [(headers, body)] = receiver.received
        event = webhooks.verify(body, headers["Portal-Signature"], made.secret)
        assert event["type"] == "account.paused" and event["account_id"] == w.sub.id
        assert json.loads(body)["data"]["status"] == "swapping_paused"
    finally:
        receiver.close()


def test_a_scheduled_statement_is_an_event_whose_pdf_path_gives_that_statement(client, session,
                                                                             w):
    """statement.ready also for the schedules' statements (sent by email, not stored): its
    pdf_path makes the same period's statement again, with a read key."""
    from portal import jobs
    from portal.models.webhooks import WebhookEvent
    from portal.services import statements

    statements.add_schedule(session, w.agency, w.owner, "monthly", "books@northwind.test")
    session.commit()
    assert jobs.statement_schedules(session) == 1
    [payload] = session.scalars(db_select(WebhookEvent.payload).where(
        WebhookEvent.type == "statement.ready"))
    statement = json.loads(payload)["data"]["statement"]
    assert (statement["source"], statement["period_from"], statement["period_to"]) == (
        "schedule", "2026-11-01", "2026-11-30")
    answer = client.get(statement["pdf_path"], headers=bearer(w.token))
    assert answer.status_code == 200 and answer.mimetype == "application/pdf"
    assert answer.data.startswith(b"%PDF")
    assert client.get(statement["pdf_path"], headers=bearer(w.other_token)).status_code == 404
