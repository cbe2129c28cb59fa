"""/api/v1/accounts: the list's filters, one account as Account Settings shows it, and the
Status actions (pause, stop, resume, close, reactivate) over lifecycle's services: the
state changes, the events and emails the pages make, 422 without the confirmation, 409 for
a state that forbids it, 403 for an admin key closing, 404 across tenants."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from portal import clock
from portal.models import (
    Account,
    AccountEvent,
    AccountStatus,
    EventKind,
    NumberStatus,
    OutboxMessage,
    Role,
    TrackingNumber,
    Version,
)
from tests import factories as f
from tests.web.api_problems import PROBLEM_JSON, problem
from tests.web.conftest import bearer

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CONFIRM_MESSAGE = 'Send {"confirm": true}: nothing was changed.'


@pytest.fixture(autouse=True)
def _clock():
    clock.freeze(NOW)




@pytest.fixture
def world(session):
    """An agency (owner Olive) with two sub-accounts, a standalone account of another
    tenant, each with a key."""
    olive = f.user(session, "olive@example.test", name="Olive Owner")
    agency = f.agency(session, "Harbor Agency", owner=olive)
    bay = f.sub(session, agency, "Bayside Dental")
    cove = f.sub(session, agency, "Cove Bakery")
    f.number(session, bay)
    f.number(session, bay)
    other = f.standalone(session, "Other Co")
    session.commit()
    return {"olive": olive, "agency": agency, "bay": bay, "cove": cove, "other": other,
            "key": f.api_key(session, agency, olive),
            "other_key": f.api_key(session, other)}


def status_of(session, account) -> AccountStatus:
    session.expire_all()
    return session.get(Account, account.id).status


def assert_problem(response, status, detail, errors=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    assert response.get_json() == problem(status, detail, errors)


# --------------------------------------------------------------- reading

def test_list_filters_by_kind_status_and_name(client, session, world):
    world["cove"].status = AccountStatus.CANCELED
    world["cove"].canceled_at = NOW
    session.commit()
    headers = bearer(world["key"])

    def names(query):
        response = client.get(f"/api/v1/accounts{query}", headers=headers)
        assert response.status_code == 200, response.get_json()
        return [row["name"] for row in response.get_json()["data"]]

    assert names("") == ["Cove Bakery", "Bayside Dental", "Harbor Agency"]
    assert names("?kind=sub") == ["Cove Bakery", "Bayside Dental"]
    assert names("?kind=agency") == ["Harbor Agency"]
    assert names("?status=canceled") == ["Cove Bakery"]
    assert names("?status=active&kind=sub") == ["Bayside Dental"]
    assert names("?q=DENT") == ["Bayside Dental"]
    assert names("?q=100%25") == []  # a wildcard is a character


def test_list_refuses_an_unknown_filter_value(client, world):
    response = client.get("/api/v1/accounts?kind=parent", headers=bearer(world["key"]))
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"kind"}


def test_one_account_as_account_settings_shows_it(client, world):
    response = client.get(f"/api/v1/accounts/{world['bay'].id}", headers=bearer(world["key"]))
    assert response.status_code == 200
    data = response.get_json()
    assert data["name"] == "Bayside Dental"
    assert data["kind"] == "sub"
    assert data["agency_name"] == "Harbor Agency"
    assert data["parent_id"] == world["agency"].id
    assert data["billing_mode"] == "agency"
    assert data["plan"] == "Agency"
    assert data["status"] == "active" and data["status_label"] == "Active"
    assert data["balance_cents"] == 0
    assert data["active_numbers"] == 2
    assert data["actions"] == ["pause-swapping", "stop-calls", "close"]
    assert data["reactivate_until"] is None and data["balance_kept_until"] is None


def test_another_tenants_account_is_not_found(client, session, world):
    for path in ("", "/pause-swapping", "/stop-calls", "/resume", "/reactivate"):
        method = client.get if not path else client.post
        response = method(f"/api/v1/accounts/{world['bay'].id}{path}",
                          headers=bearer(world["other_key"]))
        assert_problem(response, 404, "No such account, or this key does not reach it.")
    response = client.post(f"/api/v1/accounts/{world['bay'].id}/close",
                           headers=bearer(world["other_key"]), json={"confirm": True})
    assert_problem(response, 404, "No such account, or this key does not reach it.")
    assert status_of(session, world["bay"]) == AccountStatus.ACTIVE


def test_a_sub_accounts_key_does_not_reach_its_sibling_or_agency(client, session, world):
    key = f.api_key(session, world["bay"])
    for target in (world["cove"], world["agency"]):
        response = client.post(f"/api/v1/accounts/{target.id}/pause-swapping",
                               headers=bearer(key))
        assert response.status_code == 404
    assert status_of(session, world["cove"]) == AccountStatus.ACTIVE


# --------------------------------------------------------------- pause, stop, resume

def test_pause_stop_resume(client, session, world):
    bay, headers = world["bay"], bearer(world["key"])
    response = client.post(f"/api/v1/accounts/{bay.id}/pause-swapping", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["status"] == "swapping_paused"
    assert response.get_json()["actions"] == ["resume", "stop-calls", "close"]
    assert status_of(session, bay) == AccountStatus.SWAPPING_PAUSED

    response = client.post(f"/api/v1/accounts/{bay.id}/stop-calls", headers=headers)
    assert response.get_json()["status"] == "calls_stopped"
    response = client.post(f"/api/v1/accounts/{bay.id}/resume", headers=headers)
    assert response.get_json()["status"] == "active"
    assert status_of(session, bay) == AccountStatus.ACTIVE

    events = session.scalars(select(AccountEvent).where(AccountEvent.account_id == bay.id)
                             .order_by(AccountEvent.id)).all()
    assert [e.kind for e in events] == [EventKind.SWAPPING_PAUSED, EventKind.CALLS_STOPPED,
                                        EventKind.RESUMED]
    assert {e.actor_id for e in events} == {world["olive"].id}  # the key's maker


def test_a_sub_account_is_answered_without_its_agency_loaded(client, session, world):
    # As in production: nothing of the test's own in the session (Account.parent is
    # raise_on_sql: the agency's name is read, not lazy-loaded).
    bay_id, headers = world["bay"].id, bearer(world["key"])
    session.expunge_all()
    response = client.post(f"/api/v1/accounts/{bay_id}/pause-swapping", headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["agency_name"] == "Harbor Agency"
    session.expunge_all()
    response = client.get(f"/api/v1/accounts/{bay_id}", headers=headers)
    assert response.get_json()["agency_name"] == "Harbor Agency"


def test_change_history_names_the_key(client, session, world):
    from portal.models import ApiKey

    bay = world["bay"]
    client.post(f"/api/v1/accounts/{bay.id}/pause-swapping", headers=bearer(world["key"]))
    key_name = session.scalar(select(ApiKey.name).where(ApiKey.account_id ==
                                                        world["agency"].id))
    version = session.scalar(select(Version).where(Version.account_id == bay.id,
                                                   Version.record_type == "account"))
    assert version.changes["status"] == ["active", "swapping_paused"]
    assert version.actor_label == f"API key “{key_name}”"
    assert version.actor_id == world["olive"].id


@pytest.mark.parametrize("start, path, detail", [
    (AccountStatus.SWAPPING_PAUSED, "pause-swapping",
     "Can't pause number swapping for Bayside Dental: number swapping is already paused."),
    (AccountStatus.CALLS_STOPPED, "stop-calls",
     "Can't stop incoming calls for Bayside Dental: incoming calls are already stopped."),
    (AccountStatus.ACTIVE, "resume", "Can't resume Bayside Dental: it is active."),
    (AccountStatus.BILLING_PAUSED, "resume",
     "Bayside Dental is paused for billing: its balance is below zero. A payment that brings "
     "it to zero or more lifts the pause."),
])
def test_a_state_that_forbids_the_action_is_409(client, session, world, start, path, detail):
    bay = world["bay"]
    bay.status = start
    session.commit()
    response = client.post(f"/api/v1/accounts/{bay.id}/{path}", headers=bearer(world["key"]))
    assert_problem(response, 409, detail)
    assert status_of(session, bay) == start


def test_an_agency_is_paused_one_sub_account_at_a_time(client, session, world):
    response = client.post(f"/api/v1/accounts/{world['agency'].id}/pause-swapping",
                           headers=bearer(world["key"]))
    assert_problem(response, 409, "An agency is paused or stopped one sub-account at a time.")


def test_a_read_only_key_cant_pause(client, session, world):
    key = f.api_key(session, world["agency"], world["olive"], scopes=("read",))
    response = client.post(f"/api/v1/accounts/{world['bay'].id}/pause-swapping",
                           headers=bearer(key))
    assert_problem(response, 403, "This API key does not have the write scope.")
    assert status_of(session, world["bay"]) == AccountStatus.ACTIVE


def test_a_canceled_account_is_read_only(client, session, world):
    bay = world["bay"]
    bay.status, bay.canceled_at = AccountStatus.CANCELED, NOW - timedelta(days=1)
    session.commit()
    response = client.post(f"/api/v1/accounts/{bay.id}/pause-swapping",
                           headers=bearer(world["key"]))
    assert_problem(response, 409, "Bayside Dental is canceled: you can read and export its "
                                  "data, but not change it. Reactivate it to make changes.")
    data = client.get(f"/api/v1/accounts/{bay.id}", headers=bearer(world["key"])).get_json()
    assert data["actions"] == ["reactivate"]
    assert data["reactivate_until"] == "2027-01-31T12:00:00+00:00"  # 60 days after Dec 2
    assert data["balance_kept_until"] == "2027-03-02T12:00:00+00:00"  # 90 days


def test_an_account_closed_for_good_is_gone(client, session, world):
    bay = world["bay"]
    bay.status, bay.canceled_at = AccountStatus.CANCELED, NOW - timedelta(days=61)
    session.commit()
    response = client.get(f"/api/v1/accounts/{bay.id}", headers=bearer(world["key"]))
    assert response.status_code == 410
    assert response.get_json()["detail"].startswith("Bayside Dental was closed on")


# --------------------------------------------------------------- close

def close(client, account, key, body=None):
    return client.post(f"/api/v1/accounts/{account.id}/close", headers=bearer(key),
                       json={"confirm": True} if body is None else body)


def test_close_releases_the_numbers_and_emails_the_owners(client, session, world):
    bay = world["bay"]
    numbers = sorted(n.number for n in session.scalars(select(TrackingNumber).where(
        TrackingNumber.account_id == bay.id)))
    response = close(client, bay, world["key"])
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    assert data["status"] == "canceled"
    assert sorted(data["released_numbers"]) == numbers
    assert data["active_numbers"] == 0
    assert data["actions"] == ["reactivate"]
    assert status_of(session, bay) == AccountStatus.CANCELED
    assert set(session.scalars(select(TrackingNumber.status).where(
        TrackingNumber.account_id == bay.id))) == {NumberStatus.RELEASED}
    assert status_of(session, world["agency"]) == AccountStatus.ACTIVE
    assert status_of(session, world["cove"]) == AccountStatus.ACTIVE
    mail = session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "account_closed")).all()
    assert [m.to_address for m in mail] == ["olive@example.test"]
    assert mail[0].subject == "Bayside Dental is closed"


@pytest.mark.parametrize("body, errors", [
    ({}, {"confirm": CONFIRM_MESSAGE}),
    ({"confirm": False}, {"confirm": CONFIRM_MESSAGE}),
    ({"confirm": "maybe"}, {"confirm": "Not a valid boolean."}),
])
def test_close_needs_the_confirmation(client, session, world, body, errors):
    response = close(client, world["bay"], world["key"], body)
    detail = "Some fields are not valid: " + "; ".join(f"{k}: {v}" for k, v in errors.items())
    assert_problem(response, 422, detail, errors)
    assert status_of(session, world["bay"]) == AccountStatus.ACTIVE
    assert session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "account_closed")).all() == []


def test_an_admin_key_cant_close(client, session, world):
    key = f.api_key(session, world["agency"], world["olive"], role=Role.ADMIN)
    response = close(client, world["bay"], key)
    assert_problem(response, 403, "Only the account's owners can close or cancel it.")
    assert status_of(session, world["bay"]) == AccountStatus.ACTIVE


def test_closing_twice_is_409_and_an_agency_isnt_closed_here(client, session, world):
    assert close(client, world["bay"], world["key"]).status_code == 200
    assert_problem(close(client, world["bay"], world["key"]), 409,
                   "Bayside Dental is already canceled.")
    assert_problem(close(client, world["agency"], world["key"]), 409,
                   "An agency is canceled from Parent Settings, with all its sub-accounts.")
    assert status_of(session, world["agency"]) == AccountStatus.ACTIVE


# --------------------------------------------------------------- reactivate

def test_reactivate_within_60_days(client, session, world):
    bay = world["bay"]
    assert close(client, bay, world["key"]).status_code == 200
    clock.freeze(NOW + timedelta(days=59))
    response = client.post(f"/api/v1/accounts/{bay.id}/reactivate",
                           headers=bearer(world["key"]))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "active"
    assert status_of(session, bay) == AccountStatus.ACTIVE
    assert session.scalar(select(OutboxMessage.to_address).where(
        OutboxMessage.kind == "account_reactivated")) == "olive@example.test"


def test_reactivate_refusals(client, session, world):
    bay = world["bay"]
    headers = bearer(world["key"])
    assert_problem(client.post(f"/api/v1/accounts/{bay.id}/reactivate", headers=headers),
                   409, "Bayside Dental is not canceled.")
    bay.status, bay.canceled_at = AccountStatus.CANCELED, NOW - timedelta(days=60, seconds=1)
    session.commit()
    response = client.post(f"/api/v1/accounts/{bay.id}/reactivate", headers=headers)
    assert response.status_code == 410  # closed for good: the data is gone
    assert status_of(session, bay) == AccountStatus.CANCELED


def test_an_admin_key_may_reactivate(client, session, world):
    bay = world["bay"]
    bay.status, bay.canceled_at = AccountStatus.CANCELED, NOW - timedelta(days=3)
    session.commit()
    key = f.api_key(session, world["agency"], world["olive"], role=Role.ADMIN)
    response = client.post(f"/api/v1/accounts/{bay.id}/reactivate", headers=bearer(key))
    assert response.status_code == 200
    assert status_of(session, bay) == AccountStatus.ACTIVE


# --------------------------------------------------------------- retries, the document

def test_a_retried_pause_with_the_same_idempotency_key_pauses_once(client, session, world):
    bay = world["bay"]
    headers = {**bearer(world["key"]), "Idempotency-Key": "pause-bay-1"}
    first = client.post(f"/api/v1/accounts/{bay.id}/pause-swapping", headers=headers)
    again = client.post(f"/api/v1/accounts/{bay.id}/pause-swapping", headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert session.scalars(select(AccountEvent.kind).where(
        AccountEvent.account_id == bay.id)).all() == [EventKind.SWAPPING_PAUSED]
    # without the key, the second pause is the service's refusal
    response = client.post(f"/api/v1/accounts/{bay.id}/pause-swapping",
                           headers=bearer(world["key"]))
    assert response.status_code == 409


def test_the_document_describes_every_operation(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    base = "/api/v1/accounts/{account_id}"
    expected = {
        "/api/v1/accounts": {"get"}, base: {"get"},
        **{f"{base}/{action}": {"post"} for action in (
            "pause-swapping", "stop-calls", "resume", "close", "reactivate",
            "billing-mode/remove-from-agency-billing", "billing-mode/add-to-agency-billing",
            "billing-mode/billing-requests/{request_id}/resend",
            "billing-mode/billing-requests/{request_id}/cancel",
            "invitations/{invitation_id}/resend")},
        f"{base}/billing-mode/billing-requests": {"get"},
        f"{base}/users": {"get"}, f"{base}/users/{{user_id}}": {"patch", "delete"},
        f"{base}/invitations": {"get", "post"},
        f"{base}/invitations/{{invitation_id}}": {"delete"},
        f"{base}/history": {"get"},
    }
    for path, methods in expected.items():
        operations = {m: op for m, op in doc["paths"][path].items() if m != "parameters"}
        assert set(operations) == methods, path
        for op in operations.values():
            assert op["summary"] and op["description"], path
            success = [code for code in op["responses"] if code.startswith("2")]
            assert success, path
