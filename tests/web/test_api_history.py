"""/api/v1/accounts/<id>/history: Change History's entries over the API, filtered as the page
filters (user, type, from/to, an agency's sub-accounts), newest first with a cursor; a change
made through the API names its key; 422 with the page's messages; 404 across tenants."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from portal import clock
from portal.models import ApiKey, Role, Version
from tests import factories as f
from tests.web.api_problems import PROBLEM_JSON, problem
from tests.web.conftest import bearer

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def w(session):
    clock.freeze(NOW)
    olive = f.user(session, "olive@example.test", name="Olive Owner")
    agency = f.agency(session, "Harbor Agency", owner=olive)
    bay = f.sub(session, agency, "Bayside Dental")
    solo = f.standalone(session, "Solo Co", owner=olive)
    session.commit()
    return {"olive": olive, "agency": agency, "bay": bay, "solo": solo,
            "key": f.api_key(session, agency, olive),
            "solo_key": f.api_key(session, solo, olive)}




def history(client, account, key, query=""):
    response = client.get(f"/api/v1/accounts/{account.id}/history{query}", headers=bearer(key))
    return response


def assert_problem(response, status, detail, errors=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    assert response.get_json() == problem(status, detail, errors)


def test_a_change_through_the_api_names_its_key(client, session, w):
    bay = w["bay"]
    assert client.post(f"/api/v1/accounts/{bay.id}/pause-swapping",
                       headers=bearer(w["key"])).status_code == 200
    response = history(client, bay, w["key"], "?type=account")
    assert response.status_code == 200, response.get_json()
    newest = response.get_json()["data"][0]
    key_name = session.scalar(select(ApiKey.name).where(ApiKey.account_id == w["agency"].id))
    assert newest["actor_label"] == f"API key “{key_name}”"
    assert newest["actor_id"] == w["olive"].id
    assert newest["record_type"] == "account" and newest["record_id"] == bay.id
    assert newest["record_type_label"] == "Account settings"
    assert newest["action"] == "changed"
    assert newest["at"] == "2026-12-03T12:00:00+00:00"
    status = next(c for c in newest["changes"] if c["field"] == "status")
    assert status == {"field": "status", "label": "Status", "before": "active",
                      "after": "swapping_paused"}


def test_filters_as_the_page(client, session, w):
    bay, agency = w["bay"], w["agency"]
    for path in ("pause-swapping", "resume"):
        client.post(f"/api/v1/accounts/{bay.id}/{path}", headers=bearer(w["key"]))
    every = history(client, agency, w["key"], "?subs=true&limit=100").get_json()["data"]
    own = history(client, agency, w["key"], "?limit=100").get_json()["data"]
    assert {v["account_id"] for v in every} == {agency.id, bay.id}
    assert {v["account_id"] for v in own} == {agency.id}
    assert [v["id"] for v in every] == sorted((v["id"] for v in every), reverse=True)

    by_olive = history(client, bay, w["key"], f"?user={w['olive'].id}").get_json()["data"]
    assert len(by_olive) == 2 and {v["actor_id"] for v in by_olive} == {w["olive"].id}
    by_nobody = history(client, bay, w["key"], "?user=999999").get_json()["data"]
    assert by_nobody == []

    day = NOW.date()
    assert len(history(client, bay, w["key"],
                       f"?type=account&from={day}&to={day}").get_json()["data"]) >= 2
    later = (day + timedelta(days=1)).isoformat()
    assert history(client, bay, w["key"], f"?from={later}").get_json()["data"] == []


@pytest.mark.parametrize("query, errors", [
    ("?type=bogus", {"type": "Choose a record type from the list."}),
    ("?user=abc", {"user": "Choose a user from the list."}),
    ("?from=2026-13-01", {"from": "From must be a date like 2026-11-23."}),
    ("?from=2026-12-03&to=2026-12-01", {"to": "To must be on or after From."}),
    ("?subs=true", {"subs": "Only an agency's history can include sub-accounts."}),
])
def test_bad_filters_are_422_with_the_pages_messages(client, w, query, errors):
    response = history(client, w["solo"], w["solo_key"], query)
    assert_problem(response, 422, "; ".join(errors.values()), errors)


def test_the_cursor_pages_newest_first(client, session, w):
    bay = w["bay"]
    for path in ("pause-swapping", "resume", "stop-calls"):
        client.post(f"/api/v1/accounts/{bay.id}/{path}", headers=bearer(w["key"]))
    ids = session.scalars(select(Version.id).where(Version.account_id == bay.id)
                          .order_by(Version.id.desc())).all()
    seen, cursor = [], ""
    while True:
        page = history(client, bay, w["key"], f"?limit=2{cursor}").get_json()
        seen += [v["id"] for v in page["data"]]
        if not page["has_more"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == ids
    assert_problem(history(client, bay, w["key"], "?cursor=nonsense"), 422,
                   "Not a cursor from this list: send next_cursor from the page before, or "
                   "none for the first.",
                   {"cursor": "Not a cursor from this list: send next_cursor from the page "
                              "before, or none for the first."})


def test_another_tenants_key_finds_nothing(client, session, w):
    other = f.standalone(session, "Other Co")
    session.commit()
    key = f.api_key(session, other)
    assert_problem(history(client, w["bay"], key), 404,
                   "No such account, or this key does not reach it.")
    assert_problem(history(client, w["solo"], key), 404,
                   "No such account, or this key does not reach it.")


def test_an_admin_key_with_read_scope_reads_it(client, session, w):
    key = f.api_key(session, w["solo"], w["olive"], scopes=("read",), role=Role.ADMIN)
    assert history(client, w["solo"], key).status_code == 200
    metering = f.api_key(session, w["solo"], w["olive"], scopes=("metering",))
    assert_problem(history(client, w["solo"], metering), 403,
                   "This API key does not have the read scope.")
