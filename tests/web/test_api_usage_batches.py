"""POST /api/v1/usage/batches (issue 18 M) and the single posting on v1,
POST /api/v1/accounts/{id}/usage: accepted, duplicate and refused events, one ledger entry
per payer, metered account and item, recharges, alerts and budgets once per batch."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.models import (
    AccountStatus,
    Alert,
    AlertKind,
    BillingMode,
    BudgetAlert,
    Charge,
    ChargePurpose,
    ChargeStatus,
    LedgerEntry,
    LedgerKind,
    SandboxCharge,
    UsageEvent,
)
from portal.services import alerts, budgets, ledger
from tests import factories as f
from tests.web.api_problems import PROBLEM_JSON

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
STAMP = "2026-11-23T11:00:00Z"
URL = "/api/v1/usage/batches"


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def ev(event_id, account, item="minutes", quantity=1, timestamp=STAMP):
    return {"id": event_id, "account": account, "item": item, "quantity": quantity,
            "timestamp": timestamp}


def count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def usage_entries(session, account_id):
    return session.scalars(select(LedgerEntry).where(
        LedgerEntry.account_id == account_id, LedgerEntry.kind == LedgerKind.USAGE)
        .order_by(LedgerEntry.id)).all()


@pytest.fixture(autouse=True)
def frozen():
    clock.freeze(NOW)
    yield
    clock.freeze(None)


@pytest.fixture
def harbor(session):
    account = f.standalone(session, "Harbor Dental")
    f.funds(session, account, 100_00)
    session.commit()
    return account


@pytest.fixture
def token(session, harbor):
    return f.api_key(session, harbor, scopes=("metering",))


def post(client, token, events):
    return client.post(URL, json={"events": events}, headers=auth(token))


# --------------------------------------------------------------- accepted, duplicates, refused

def test_each_event_is_accepted_or_refused_on_its_own(client, session, harbor, token):
    other = f.standalone(session, "Not Yours")
    session.commit()
    events = [
        ev("e1", harbor.id, "minutes", 12),
        ev("e2", harbor.id, "minutes", 8),
        ev("e3", harbor.id, "transcriptions", 5),
        ev("bad id!", harbor.id),
        ev("e4", other.id),
        ev("e5", 999_999),
        ev("e6", harbor.id, "faxes"),
        ev("e7", harbor.id, "minutes", 0),
        ev("e8", harbor.id, "minutes", 1_000_001),
        ev("e9", harbor.id, timestamp="2026-11-23T11:00:00"),  # no timezone
        ev("e10", harbor.id, timestamp=(NOW - timedelta(days=36)).isoformat()),
        ev("e11", harbor.id, timestamp=(NOW + timedelta(minutes=6)).isoformat()),
        ev("e1", harbor.id, "minutes", 1),  # repeated in the batch
        "not an object",
        ev("e12", harbor.id, "minutes", True),
        ev("e13", str(harbor.id)),
        ev("e14", harbor.id, timestamp=(NOW - timedelta(days=34)).isoformat()),
    ]
    response = post(client, token, events)
    assert response.status_code == 207
    body = response.get_json()
    assert body["accepted"] == ["e1", "e2", "e3", "e14"]
    assert body["duplicates"] == []
    refused = {r["index"]: (r["id"], r["code"], r["field"]) for r in body["refused"]}
    assert refused == {
        3: ("bad id!", "invalid_id", "id"),
        4: ("e4", "account_not_found", "account"),
        5: ("e5", "account_not_found", "account"),
        6: ("e6", "unknown_item", "item"),
        7: ("e7", "invalid_quantity", "quantity"),
        8: ("e8", "invalid_quantity", "quantity"),
        9: ("e9", "invalid_timestamp", "timestamp"),
        10: ("e10", "timestamp_outside_window", "timestamp"),
        11: ("e11", "timestamp_outside_window", "timestamp"),
        12: ("e1", "repeated_in_batch", "id"),
        13: (None, "not_an_object", ""),
        14: ("e12", "invalid_quantity", "quantity"),
        15: ("e13", "account_not_found", "account"),
    }
    assert body["counts"] == {"accepted": 4, "duplicates": 0, "refused": 13}
    assert body["received"] == 17
    # The unreachable account and the missing one read the same: nothing leaks.
    assert body["refused"][1]["reason"] == body["refused"][2]["reason"] == "Account not found."
    # One entry per item: 21 minutes (3 events), 5 transcriptions (1 event).
    entries = usage_entries(session, harbor.id)
    assert [(e.description, e.amount_cents) for e in entries] == [
        ("Usage: 21 minutes (3 events)", -21 * 5),
        ("Usage: 5 transcription minutes (1 event)", -5 * 3)]
    assert [(d["item"], d["quantity"], d["events"], d["amount_cents"])
            for d in body["entries"]] == [("minutes", 21, 3, 105), ("transcriptions", 5, 1, 15)]
    assert entries[-1].balance_after_cents == 100_00 - 120
    session.refresh(harbor)
    assert harbor.balance_cents == 100_00 - 120
    stored = session.scalars(select(UsageEvent).order_by(UsageEvent.id)).all()
    assert {(e.event_id, e.ledger_entry_id) for e in stored} == {
        ("e1", entries[0].id), ("e2", entries[0].id), ("e14", entries[0].id),
        ("e3", entries[1].id)}
    assert all(e.batch == body["batch"] for e in stored)
    assert not ledger.check(session)


def test_a_canceled_account_refuses_its_events_only(client, session, harbor):
    agency = f.agency(session, "Northwind Agency")
    live = f.sub(session, agency, "Live Dental")
    gone = f.sub(session, agency, "Gone Dental", status=AccountStatus.CANCELED,
                 canceled_at=NOW - timedelta(days=3))
    f.funds(session, agency, 50_00)
    session.commit()
    token = f.api_key(session, agency, scopes=("metering",))
    response = post(client, token, [ev("a", gone.id), ev("b", live.id)])
    assert response.status_code == 207
    body = response.get_json()
    assert body["accepted"] == ["b"]
    assert body["refused"] == [{"id": "a", "index": 0, "code": "account_canceled",
                                "reason": "Gone Dental is canceled: it takes no usage.",
                                "field": "account"}]


def test_a_retried_batch_debits_nothing_twice(client, session, harbor, token):
    events = [ev(f"call-{n}", harbor.id, "minutes", 10) for n in range(20)]
    first = post(client, token, events)
    assert first.status_code == 200
    assert first.get_json()["counts"] == {"accepted": 20, "duplicates": 0, "refused": 0}
    again = post(client, token, events + [ev("call-new", harbor.id, "minutes", 1)])
    assert again.status_code == 200
    body = again.get_json()
    assert body["accepted"] == ["call-new"]
    assert body["duplicates"] == [f"call-{n}" for n in range(20)]
    assert [d["quantity"] for d in body["entries"]] == [1]
    session.refresh(harbor)
    assert harbor.balance_cents == 100_00 - 200 * 5 - 5
    assert count(session, UsageEvent) == 21
    assert len(usage_entries(session, harbor.id)) == 2
    # Nothing new at all: no entry, no batch id.
    third = post(client, token, events[:3]).get_json()
    assert third["accepted"] == [] and third["entries"] == [] and third["batch"] == ""
    assert len(usage_entries(session, harbor.id)) == 2


def test_an_event_id_is_per_account(client, session):
    agency = f.agency(session, "Northwind Agency")
    one, two = f.sub(session, agency, "One"), f.sub(session, agency, "Two")
    f.funds(session, agency, 50_00)
    session.commit()
    token = f.api_key(session, agency, scopes=("metering",))
    body = post(client, token, [ev("same", one.id), ev("same", two.id)]).get_json()
    assert body["accepted"] == ["same", "same"]
    body = post(client, token, [ev("same", two.id)]).get_json()
    assert body["duplicates"] == ["same"]


# --------------------------------------------------------------- who pays

def test_one_entry_per_payer_and_item_naming_the_sub_account(client, session):
    agency = f.agency(session, "Northwind Agency")
    bayside = f.sub(session, agency, "Bayside Dental")  # agency billing
    cove = f.sub(session, agency, "Cove Clinic")  # agency billing
    own = f.sub(session, agency, "Own Pay Dental", billing=BillingMode.CUSTOMER)
    f.funds(session, agency, 100_00)
    f.funds(session, own, 20_00)
    session.commit()
    token = f.api_key(session, agency, scopes=("metering",))
    events = [ev("b1", bayside.id, "minutes", 10), ev("b2", bayside.id, "minutes", 20),
              ev("b3", bayside.id, "enhanced_caller_id", 2),
              ev("c1", cove.id, "minutes", 5),
              ev("o1", own.id, "minutes", 7), ev("o2", own.id, "minutes", 3)]
    response = post(client, token, events)
    assert response.status_code == 200, response.get_json()
    on_agency = usage_entries(session, agency.id)
    assert [(e.description, e.amount_cents, e.for_account_id) for e in on_agency] == [
        ("Usage (Bayside Dental): 30 minutes (2 events)", -150, bayside.id),
        ("Usage (Bayside Dental): 2 enhanced caller ID lookups (1 event)", -30, bayside.id),
        ("Usage (Cove Clinic): 5 minutes (1 event)", -25, cove.id)]
    # The running balance: each entry's balance_after follows the one before.
    assert [e.balance_after_cents for e in on_agency] == [100_00 - 150, 100_00 - 180,
                                                          100_00 - 205]
    on_own = usage_entries(session, own.id)
    assert [(e.description, e.amount_cents, e.for_account_id) for e in on_own] == [
        ("Usage: 10 minutes (2 events)", -50, None)]
    assert not usage_entries(session, bayside.id)
    assert {(d["account_id"], d["for_account_id"]) for d in response.get_json()["entries"]} == {
        (agency.id, bayside.id), (agency.id, cove.id), (own.id, own.id)}
    assert not ledger.check(session)


def test_a_sub_accounts_key_reaches_only_itself(client, session):
    agency = f.agency(session, "Northwind Agency")
    one, two = f.sub(session, agency, "One"), f.sub(session, agency, "Two")
    f.funds(session, agency, 50_00)
    session.commit()
    token = f.api_key(session, one, scopes=("metering",))
    body = post(client, token, [ev("x", one.id), ev("y", two.id), ev("z", agency.id)]).get_json()
    assert body["accepted"] == ["x"]
    assert [r["code"] for r in body["refused"]] == ["account_not_found"] * 2
    # Agency billing: the agency pays for its sub-account's key too.
    assert usage_entries(session, agency.id)[0].for_account_id == one.id


# --------------------------------------------------------------- once per batch

def test_a_recharge_is_started_once_per_batch(client, session, harbor, token):
    f.card(session, harbor)
    f.recharge_settings(session, harbor, "10", "50")
    ledger.post(session, harbor, LedgerKind.USAGE, -88_00, "Usage before", "before",
                ledger.Cause.USAGE)
    session.commit()  # $12 left
    events = [ev(f"m{n}", harbor.id, "minutes", 10) for n in range(100)]  # 100 x $0.50
    response = post(client, token, events)
    assert response.status_code == 200
    body = response.get_json()
    assert [(r["status"], r["amount_cents"]) for r in body["recharges"]] == [
        ("succeeded", 50_00 - (12_00 - 50_00))]
    assert count(session, Charge, Charge.purpose == ChargePurpose.RECHARGE) == 1
    assert count(session, Charge, Charge.status == ChargeStatus.SUCCEEDED) == 1
    session.refresh(harbor)
    assert harbor.balance_cents == 50_00
    assert not ledger.check(session)


def test_a_low_balance_alert_is_told_once_per_batch(client, session, harbor, token):
    alerts.set_low_balance(session, harbor, "99")
    session.commit()
    events = [ev(f"m{n}", harbor.id, "minutes", 10) for n in range(10)]  # $5 in all
    post(client, token, events)
    assert count(session, Alert, Alert.kind == AlertKind.LOW_BALANCE) == 1
    post(client, token, [ev("more", harbor.id, "minutes", 10)])
    assert count(session, Alert, Alert.kind == AlertKind.LOW_BALANCE) == 1  # still below


def test_a_budget_threshold_alert_is_told_once_per_batch(client, session):
    owner = f.user(session)
    agency = f.agency(session, "Northwind Agency", owner=owner)
    bayside = f.sub(session, agency, "Bayside Dental")
    f.funds(session, agency, 100_00)
    budgets.set_budget(session, bayside, owner, 10_00, [50, 80, 100])
    session.commit()
    token = f.api_key(session, agency, scopes=("metering",))
    # 18 events of 10 minutes: $9.00, past 50% and 80% in one batch.
    events = [ev(f"m{n}", bayside.id, "minutes", 10) for n in range(18)]
    assert post(client, token, events).status_code == 200
    told = session.scalars(select(BudgetAlert.threshold).where(
        BudgetAlert.account_id == bayside.id).order_by(BudgetAlert.threshold)).all()
    assert told == [50, 80]
    assert budgets.standing(session, bayside).spent_cents == 9_00
    assert count(session, Alert, Alert.kind == AlertKind.BUDGET,
                 Alert.account_id == agency.id) == 2
    post(client, token, [ev("last", bayside.id, "minutes", 20)])  # $1 more: 100%
    told = session.scalars(select(BudgetAlert.threshold).where(
        BudgetAlert.account_id == bayside.id).order_by(BudgetAlert.threshold)).all()
    assert told == [50, 80, 100]


def test_a_batch_that_overdraws_pauses_the_account_for_billing(client, session, harbor, token):
    events = [ev(f"m{n}", harbor.id, "numbers", 1) for n in range(40)]  # 40 x $3
    assert post(client, token, events).status_code == 200
    session.refresh(harbor)
    assert harbor.balance_cents == 100_00 - 120_00
    assert harbor.status == AccountStatus.BILLING_PAUSED


# --------------------------------------------------------------- the request as a whole

@pytest.mark.parametrize("body", [
    {}, {"events": []}, {"events": "x"}, {"events": None}, [], "text", 12,
    {"events": [ev(str(n), 1) for n in range(1001)]},
])
def test_a_request_without_1_to_1000_events_is_422(client, session, token, body):
    response = client.post(URL, json=body, headers=auth(token))
    assert response.status_code == 422
    assert response.content_type == PROBLEM_JSON
    assert "events" in response.get_json()["errors"]


def test_no_json_is_422(client, session, token):
    response = client.post(URL, data="{nope", headers={**auth(token),
                                                       "Content-Type": "application/json"})
    assert response.status_code == 422


def test_a_body_over_the_size_limit_is_413(app, client, session, token):
    big = b'{"events": [' + b" " * (app.config["MAX_CONTENT_LENGTH"] + 10) + b"]}"
    response = client.post(URL, data=big, headers={**auth(token),
                                                   "Content-Type": "application/json"})
    assert response.status_code == 413


def test_the_metering_scope_is_needed(client, session, harbor):
    token = f.api_key(session, harbor, scopes=("read", "write"))
    response = post(client, token, [ev("a", harbor.id)])
    assert response.status_code == 403
    response = client.post(f"/api/v1/accounts/{harbor.id}/usage",
                           json={"idempotency_key": "k", "items": {"minutes": 1}},
                           headers=auth(token))
    assert response.status_code == 403


def test_the_document_describes_both_endpoints(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    batch = doc["paths"]["/api/v1/usage/batches"]["post"]
    assert {"200", "207"} <= set(batch["responses"])
    schema = batch["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/UsageBatch"}
    events = doc["components"]["schemas"]["UsageBatch"]["properties"]["events"]
    assert events["maxItems"] == 1000
    assert "/api/v1/accounts/{account_id}/usage" in doc["paths"]


# --------------------------------------------------------------- the single posting on v1

def test_an_id_with_a_final_newline_is_refused_not_a_second_event(client, session, harbor,
                                                                   token):
    """A regular expression's "$" also matches before a final "\n": "call-1\n" was a new
    event (debited again), and on PostgreSQL an 80-character id plus "\n" overflowed the
    column and failed the whole batch (500)."""
    assert post(client, token, [ev("call-1", harbor.id)]).status_code == 200
    response = post(client, token, [ev("call-1\n", harbor.id), ev("x" * 80 + "\n", harbor.id),
                                    ev("call-2", harbor.id)])
    assert response.status_code == 207
    body = response.get_json()
    assert body["accepted"] == ["call-2"]
    assert [(r["index"], r["code"]) for r in body["refused"]] == [(0, "invalid_id"),
                                                                  (1, "invalid_id")]
    assert count(session, UsageEvent) == 2
    url = f"/api/v1/accounts/{harbor.id}/usage"
    statuses = [client.post(url, json={"idempotency_key": key, "items": {"minutes": 1}},
                            headers=auth(token)).status_code for key in ("k", "k\n")]
    assert statuses == [201, 422]
    # call-1's batch, call-2's, and "k" once
    assert [e.amount_cents for e in usage_entries(session, harbor.id)] == [-5, -5, -5]


def test_the_single_posting_on_v1(client, session, harbor, token):
    url = f"/api/v1/accounts/{harbor.id}/usage"
    body = {"idempotency_key": "k1", "items": {"minutes": 12, "transcriptions": 2}}
    first = client.post(url, json=body, headers=auth(token))
    assert first.status_code == 201
    assert first.get_json()["amount_cents"] == 12 * 5 + 2 * 3
    again = client.post(url, json=body, headers=auth(token))
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert [e.description for e in usage_entries(session, harbor.id)] == [
        "Usage: 12 minutes, 2 transcription minutes"]
    bad = client.post(url, json={"idempotency_key": "k2", "items": {"faxes": 1}},
                      headers=auth(token))
    assert bad.status_code == 422
    other = f.standalone(session, "Not Yours")
    session.commit()
    response = client.post(f"/api/v1/accounts/{other.id}/usage", json=body,
                           headers=auth(token))
    assert response.status_code == 404


def test_the_single_posting_on_v1_refuses_a_canceled_account(client, session):
    agency = f.agency(session, "Northwind Agency")
    gone = f.sub(session, agency, "Gone Dental", status=AccountStatus.CANCELED,
                 canceled_at=NOW - timedelta(days=3))
    session.commit()
    token = f.api_key(session, agency, scopes=("metering",))
    response = client.post(f"/api/v1/accounts/{gone.id}/usage",
                           json={"idempotency_key": "k", "items": {"minutes": 1}},
                           headers=auth(token))
    assert response.status_code == 409


# --------------------------------------------------------------- concurrency, over HTTP

def test_eight_senders_post_overlapping_batches_at_once(app, session):
    """8 clients post overlapping batches for an agency's sub-accounts at the same moment
    (auto recharge on): every event is accepted by one request and reported as a duplicate
    by the others, debited once; the ledger is consistent; every recharge charged once."""
    from tests.threads import at_once

    agency = f.agency(session, "Northwind Agency")
    subs = [f.sub(session, agency, f"Sub {n}") for n in range(3)]
    own = f.sub(session, agency, "Own Pay", billing=BillingMode.CUSTOMER)
    for payer in (agency, own):
        f.card(session, payer)
        f.recharge_settings(session, payer, "10", "50")
        f.funds(session, payer, 15_00)
    session.commit()
    token = f.api_key(session, agency, scopes=("metering",))
    ids = [s.id for s in (*subs, own)]
    pool = [ev(f"e{n}", ids[n % 4], "minutes", 20 + n % 5) for n in range(100)]

    def sender(i):
        response = app.test_client().post(URL, json={"events": pool[i * 8: i * 8 + 40]},
                                          headers=auth(token))
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    answers = at_once(8, sender)
    sent = pool[:96]
    accepted = sorted(i for a in answers for i in a["accepted"])
    assert accepted == sorted(e["id"] for e in sent)
    assert sum(a["counts"]["duplicates"] for a in answers) == 8 * 40 - 96
    session.expire_all()
    debited = -session.scalar(select(func.sum(LedgerEntry.amount_cents)).where(
        LedgerEntry.kind == LedgerKind.USAGE))
    assert debited == sum(e["quantity"] * 5 for e in sent)
    assert ledger.check(session) == []
    recharges = session.scalars(select(Charge).where(
        Charge.purpose == ChargePurpose.RECHARGE)).all()
    assert recharges and all(c.status == ChargeStatus.SUCCEEDED for c in recharges)
    assert len(recharges) >= sum(len(a["recharges"]) for a in answers)  # + ones credits start
    charged = session.scalar(select(func.count()).select_from(SandboxCharge))
    assert charged == len(recharges)  # each charged once
    assert count(session, LedgerEntry, LedgerEntry.kind == LedgerKind.RECHARGE) == len(recharges)
