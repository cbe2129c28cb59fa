"""Issue 18 E2: /api/v1 auto recharge, guardrails, the low-balance alert, budgets and alerts,
over Billing Settings' services: the same parsing and messages, a save that would charge
asks first (409) and charges only what it showed, the budget set by the agency only, and
another tenant's key sees nothing (404)."""
# ruff: noqa: F811  (the `aw` fixture, imported, is each test's argument)

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.models import Alert, BillingSettings, Charge, ChargeStatus, LedgerEntry
from portal.models.budgets import Budget
from portal.services import billing
from tests import factories as f
from tests.web.api_billing_world import NOW, assert_problem, aw, call, snapshot  # noqa: F401
from tests.web.billing_world import AGENCY_BILLED, card

SETTINGS = {"enabled": True, "threshold_cents": 1000, "amount_cents": 5000,
            "monthly_cap_cents": 150000, "daily_limit": 3, "low_balance_alert_cents": 2000}


def settings_row(session, account):
    session.expire_all()
    row = session.get(BillingSettings, account.id)
    return None if row is None else (
        row.recharge_threshold_cents, row.recharge_amount_cents, row.recharge_cap_cents,
        row.recharge_daily_limit, row.low_balance_cents)


# ------------------------------------------------------------------------ auto recharge

def test_get_and_put_auto_recharge(client, session, aw):
    got = call(client, aw, "GET", f"/accounts/{aw.solo.id}/auto-recharge")
    assert got.status_code == 200
    assert got.get_json() == {"enabled": False, "threshold_cents": None, "amount_cents": None,
                              "monthly_cap_cents": None, "daily_limit": 5,
                              "low_balance_alert_cents": None, "low_balance_below": False}
    put = call(client, aw, "PUT", f"/accounts/{aw.solo.id}/auto-recharge", json=SETTINGS)
    assert put.status_code == 200, put.get_json()
    body = put.get_json()
    assert body["message"] == ("Saved: when the balance falls below $10.00, the Primary "
                               "method is charged to bring it back up to $50.00.")
    assert body["recharge"] is None  # no card: nothing to charge
    assert body["settings"] == {"enabled": True, "threshold_cents": 1000, "amount_cents": 5000,
                                "monthly_cap_cents": 150000, "daily_limit": 3,
                                "low_balance_alert_cents": 2000, "low_balance_below": True}
    assert settings_row(session, aw.solo) == (1000, 5000, 150000, 3, 2000)
    # Absent: unchanged; null cap: no cap; enabled false: off.
    put = call(client, aw, "PUT", f"/accounts/{aw.solo.id}/auto-recharge",
               json={"threshold_cents": 1500, "amount_cents": 6000, "monthly_cap_cents": None})
    assert put.status_code == 200
    assert settings_row(session, aw.solo) == (1500, 6000, None, 3, 2000)
    put = call(client, aw, "PUT", f"/accounts/{aw.solo.id}/auto-recharge",
               json={"enabled": False, "low_balance_alert_cents": None})
    assert put.get_json()["message"] == "Auto recharge is off."
    assert settings_row(session, aw.solo) == (None, None, None, 3, None)


def test_a_save_that_would_charge_asks_first_then_charges_what_it_showed(client, session, aw):
    visa = card(session, aw.solo)
    before = snapshot(session)
    asked = call(client, aw, "PUT", f"/accounts/{aw.solo.id}/auto-recharge", json=SETTINGS)
    body = assert_problem(asked, 409, "Saving charges $50.00 to Visa ending 4242 now, to "
                                      "bring the balance to $50.00.")
    assert body["charge"] == {"amount_cents": 5000, "payment_method_id": visa.id,
                              "payment_method": "Visa ending 4242", "balance_cents": 0,
                              "target_cents": 5000, "confirmation": f"5000:{visa.id}"}
    assert snapshot(session) == before  # nothing saved
    stale = call(client, aw, "PUT", f"/accounts/{aw.solo.id}/auto-recharge",
                 json={**SETTINGS, "confirm_charge": f"4000:{visa.id}"})
    assert stale.status_code == 409 and snapshot(session) == before
    done = call(client, aw, "PUT", f"/accounts/{aw.solo.id}/auto-recharge",
                json={**SETTINGS, "confirm_charge": body["charge"]["confirmation"]})
    assert done.status_code == 200, done.get_json()
    recharge = done.get_json()["recharge"]
    assert (recharge["purpose"], recharge["status"], recharge["amount_cents"]) == (
        "recharge", "succeeded", 5000)
    session.expire_all()
    entries = session.scalars(select(LedgerEntry).where(
        LedgerEntry.account_id == aw.solo.id)).all()
    assert [(e.kind.value, e.amount_cents, e.balance_after_cents) for e in entries] == [
        ("recharge", 5000, 5000)]
    assert session.scalar(select(Charge.status)) == ChargeStatus.SUCCEEDED


@pytest.mark.parametrize("sent, errors", [
    ({"threshold_cents": 0, "amount_cents": 5000},
     {"threshold_cents": "The threshold must be more than zero."}),
    ({"threshold_cents": 5000, "amount_cents": 5000},
     {"amount_cents": "The recharge amount must be more than the threshold ($50.00): the "
                      "balance is recharged up to it."}),
    ({"threshold_cents": 1000, "amount_cents": 1_000_001, "daily_limit": 0,
      "low_balance_alert_cents": -5},
     {"amount_cents": "The recharge amount can be at most $10,000.00.",
      "daily_limit": "Enter how many recharges a day: a whole number from 1 to 50.",
      "low_balance_alert_cents": "The alert amount must be more than zero."}),
    ({"amount_cents": 5000}, {"threshold_cents": "The threshold is required."}),
])
def test_bad_settings_are_422_with_every_message_and_nothing_changed(client, session, aw,
                                                                     sent, errors):
    before = snapshot(session)
    response = call(client, aw, "PUT", f"/accounts/{aw.solo.id}/auto-recharge", json=sent)
    assert_problem(response, 422, "; ".join(errors.values()), errors)
    assert snapshot(session) == before


def test_a_string_or_fraction_for_cents_is_refused_by_the_schema(client, session, aw):
    response = call(client, aw, "PUT", f"/accounts/{aw.solo.id}/auto-recharge",
                    json={"threshold_cents": "10.00", "amount_cents": 50.5})
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"threshold_cents", "amount_cents"}


def test_agency_billed_sub_account_has_no_settings_of_its_own(client, session, aw):
    for method in ("GET", "PUT"):
        response = call(client, aw, method, f"/accounts/{aw.bayside.id}/auto-recharge",
                        key="agency", json=SETTINGS if method == "PUT" else None)
        assert_problem(response, 403, AGENCY_BILLED.format("Bayside Dental"))
    assert_problem(call(client, aw, "GET", f"/accounts/{aw.bayside.id}/guardrails",
                        key="agency"), 403, AGENCY_BILLED.format("Bayside Dental"))
    # Harbor Law pays its own bills: its agency's key sets them.
    response = call(client, aw, "PUT", f"/accounts/{aw.harbor.id}/auto-recharge",
                    key="agency", json=SETTINGS)
    assert response.status_code == 200
    assert settings_row(session, aw.harbor) == (1000, 5000, 150000, 3, 2000)


def test_a_read_key_cannot_save(client, session, aw):
    before = snapshot(session)
    response = call(client, aw, "PUT", f"/accounts/{aw.solo.id}/auto-recharge", key="read",
                    json=SETTINGS)
    assert_problem(response, 403, "This API key does not have the write scope.")
    assert snapshot(session) == before


@pytest.mark.parametrize("method, path", [
    ("GET", "auto-recharge"), ("PUT", "auto-recharge"), ("GET", "guardrails"),
    ("GET", "budget"), ("PUT", "budget"), ("DELETE", "budget"), ("GET", "alerts"),
])
def test_another_tenants_key_gets_404(client, session, aw, method, path):
    before = snapshot(session)
    for account in (aw.solo, aw.bayside, aw.harbor):
        body = {"auto-recharge": SETTINGS, "budget": {"amount_cents": 1000}}[path] \
            if method == "PUT" else None
        response = call(client, aw, method, f"/accounts/{account.id}/{path}", key="rival",
                        json=body)
        assert_problem(response, 404, "No such account, or this key does not reach it.")
    assert snapshot(session) == before


# ---------------------------------------------------------------------------- guardrails

def test_guardrails_say_why_recharge_stopped_and_how_to_clear_it(client, session, aw):
    ok = call(client, aw, "GET", f"/accounts/{aw.solo.id}/guardrails")
    assert ok.get_json() == {"stopped": False, "stop": None, "recharged_this_month_cents": 0,
                             "recharges_today": 0, "declines_in_a_row": 0}
    f.recharge_settings(session, aw.solo)
    billing.settings_for(session, aw.solo).recharge_stopped_at = NOW - timedelta(hours=2)
    session.commit()
    body = call(client, aw, "GET", f"/accounts/{aw.solo.id}/guardrails").get_json()
    assert body["stopped"] is True and body["declines_in_a_row"] == 3
    assert body["stop"] == {
        "reason": "declines", "title": "Auto recharge stopped: declined cards",
        "detail": "The last 3 recharges were declined (stopped Nov 23, 10:00 UTC), so we "
                  "stopped trying.",
        "clear": "It starts again when a payment succeeds or a card is added: make a "
                 "payment below, or add a card under Payment Methods."}


# ------------------------------------------------------------------------------- budgets

def test_the_agency_sets_gets_and_removes_a_budget(client, session, aw):
    path = f"/accounts/{aw.bayside.id}/budget"
    none = call(client, aw, "GET", path, key="agency")
    assert none.get_json() == {"amount_cents": None, "thresholds": [50, 80, 100],
                               "pause_calls": False, "spent_cents": 0, "left_cents": None,
                               "percent": None, "reached": False, "alerted": [],
                               "editable": True}
    put = call(client, aw, "PUT", path, key="agency",
               json={"amount_cents": 25000, "thresholds": [25, 90], "pause_calls": True})
    assert put.status_code == 200, put.get_json()
    assert put.get_json() == {"amount_cents": 25000, "thresholds": [25, 90],
                              "pause_calls": True, "spent_cents": 0, "left_cents": 25000,
                              "percent": 0, "reached": False, "alerted": [],
                              "editable": True}
    session.expire_all()
    row = session.get(Budget, aw.bayside.id)
    assert (row.amount_cents, row.thresholds, row.pause_calls) == (25000, [25, 90], True)
    gone = call(client, aw, "DELETE", path, key="agency")
    assert gone.status_code == 204
    session.expire_all()
    assert session.get(Budget, aw.bayside.id) is None


def test_only_the_agency_sets_a_budget(client, session, aw):
    before = snapshot(session)
    path = f"/accounts/{aw.harbor.id}/budget"
    assert call(client, aw, "GET", path, key="harbor").get_json()["editable"] is False
    for method in ("PUT", "DELETE"):
        response = call(client, aw, method, path, key="harbor", json={"amount_cents": 100}
                        if method == "PUT" else None)
        assert_problem(response, 403, "Only the agency's owners and admins can set a "
                                      "sub-account's budget.")
    assert_problem(call(client, aw, "GET", f"/accounts/{aw.solo.id}/budget"), 404,
                   "Budgets are set on an agency's sub-accounts.")
    assert snapshot(session) == before


@pytest.mark.parametrize("sent, errors", [
    ({"amount_cents": 0}, {"amount_cents": "The budget must be more than zero."}),
    ({"amount_cents": 100_000_001},
     {"amount_cents": "The budget can be at most $1,000,000.00."}),
    ({"amount_cents": -5, "thresholds": [0, 150]},
     {"amount_cents": "The budget must be more than zero.",
      "thresholds": "Alert percentages are from 1 to 100 (0 is not)."}),
    ({"amount_cents": 100, "thresholds": [10, 20, 30, 40, 50, 60]},
     {"thresholds": "At most 5 alert percentages (6 were given)."}),
])
def test_bad_budgets_are_422_with_the_pages_messages(client, session, aw, sent, errors):
    before = snapshot(session)
    response = call(client, aw, "PUT", f"/accounts/{aw.bayside.id}/budget", key="agency",
                    json=sent)
    assert_problem(response, 422, "; ".join(errors.values()), errors)
    assert snapshot(session) == before
    assert session.get(Budget, aw.bayside.id) is None


# -------------------------------------------------------------------------------- alerts

def test_alerts_newest_first_by_cursor(client, session, aw):
    for n in range(3):
        session.add(Alert(account_id=aw.solo.id, kind="low_balance", message=f"Alert {n}",
                          key=f"test:{n}", created_at=NOW - timedelta(minutes=3 - n)))
    session.add(Alert(account_id=aw.rival.id, kind="low_balance", message="Rival's",
                      key="test:rival", created_at=NOW))
    session.commit()
    first = call(client, aw, "GET", f"/accounts/{aw.solo.id}/alerts?limit=2").get_json()
    assert [a["message"] for a in first["data"]] == ["Alert 2", "Alert 1"]
    assert first["has_more"] is True and first["data"][0]["label"] == "Low balance"
    rest = call(client, aw, "GET", f"/accounts/{aw.solo.id}/alerts?limit=2"
                f"&cursor={first['next_cursor']}").get_json()
    assert [a["message"] for a in rest["data"]] == ["Alert 0"]
    assert rest["has_more"] is False and rest["next_cursor"] is None
