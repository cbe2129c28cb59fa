"""Issue 17 (G) through the pages: Balance Auto Recharge Settings' guardrails (the monthly
cap and the daily limit: saved, bad input refused beside its field), each stop shown with its
reason and how to clear it, the Low-Balance Alert section, Recent alerts, and the
low-balance alert once per crossing under 20 concurrent usage postings.

CSRF, roles, tenants, signed-out and canceled accounts for POST billing/low-balance-alert are
in tests/web/test_billing_settings.py (billing_posts lists it with every billing post)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.models import (
    Alert,
    AlertKind,
    BillingSettings,
    LedgerEntry,
    OutboxMessage,
    Role,
)
from portal.services import alerts, billing
from tests import factories as f
from tests.conftest import HX
from tests.threads import at_once
from tests.web.billing_world import (
    DECLINED,
    build,
    card,
    field_error,
    flash,
    post,
    section,
    snapshot,
    tag,
    url,
)
from tests.web.conftest import sign_in_as
from tests.web.pages import assert_fragment, assert_full_page, body, shown, text

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
AUTH = {"Authorization": "Bearer test-usage-token"}


@pytest.fixture
def bw(app, session):
    clock.freeze(NOW - timedelta(hours=1))
    return build(session)


def usage(client, account_id, key, minutes):
    response = client.post(f"/api/accounts/{account_id}/usage", headers=AUTH,
                           json={"idempotency_key": key, "items": {"minutes": minutes}})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# --------------------------------------------------------------- the settings form

def test_the_guardrails_are_saved_and_shown(client, session, bw):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "auto-recharge"),
                    {"threshold": "20", "amount": "100", "cap": "$1,500", "daily_limit": "3"},
                    headers=HX)
    assert response.status_code == 200
    html = assert_fragment(response, '<section class="card" id="auto-recharge"')
    assert 'value="1500.00"' in tag(html, "cap")
    assert 'value="3"' in tag(html, "daily_limit")
    assert ("This month (UTC): $0.00 recharged of the $1,500.00 cap. Today: 0 of at most 3 "
            "recharges.") in text(html)
    row = session.get(BillingSettings, bw.solo.id)
    session.refresh(row)
    assert (row.recharge_cap_cents, row.recharge_daily_limit) == (150000, 3)
    # blank cap: no cap
    post(client, url(bw.solo, "auto-recharge"),
         {"threshold": "20", "amount": "100", "cap": "", "daily_limit": "5"})
    session.refresh(row)
    assert (row.recharge_cap_cents, row.recharge_daily_limit) == (None, 5)


@pytest.mark.parametrize("field, value, message", [
    ("cap", "-1", "The monthly cap must be more than zero."),
    ("cap", "ten", "The monthly cap must be a dollar amount, like 25 or 25.00."),
    ("cap", "1000000.01", "The monthly cap can be at most $1,000,000.00."),
    ("daily_limit", "0", "Enter how many recharges a day: a whole number from 1 to 50."),
    ("daily_limit", "99", "Enter how many recharges a day: a whole number from 1 to 50."),
    ("daily_limit", "three", "Enter how many recharges a day: a whole number from 1 to 50."),
])
def test_bad_guardrails_are_refused_beside_the_field(client, session, bw, field, value,
                                                     message):
    sign_in_as(client, bw.ann)
    before = snapshot(session)
    form = {"threshold": "20", "amount": "100", "cap": "", "daily_limit": "5", field: value}
    for headers in (HX, {}):
        response = post(client, url(bw.solo, "auto-recharge"), form, headers=headers)
        assert response.status_code == 422, headers
        html = (assert_fragment(response, '<section class="card" id="auto-recharge"')
                if headers else section(assert_full_page(response), "auto-recharge"))
        assert field_error(field, message) in html
        assert f'aria-describedby="{field}-error"' in tag(html, field)
        assert f'value="{shown(value)}"' in tag(html, field)  # as typed
        assert 'class="flash' not in html
        assert snapshot(session) == before


def test_a_stop_after_three_declines_is_shown_with_how_to_clear_it(client, session, bw):
    card(session, bw.solo, DECLINED)
    billing.set_auto_recharge(session, bw.solo, "10", "50")
    f.funds(session, bw.solo, 2000)
    clerk = f.user(session, "clerk@example.test")
    f.member(session, clerk, bw.solo, Role.BILLING)
    session.commit()
    clock.freeze(NOW)
    account_id = bw.solo.id
    for n, minutes in enumerate((300, 20, 20)):  # $20 -> $5, $4, $3: three recharges declined
        assert usage(client, account_id, f"b{n}", minutes)["recharge"]["status"] == "failed"
    sign_in_as(client, bw.ann)
    html = assert_full_page(client.get(url(bw.solo)))
    stop = section(html, "auto-recharge")
    assert 'data-testid="recharge-stop" data-reason="declines"' in stop
    assert ("Auto recharge stopped: declined cards. The last 3 recharges were declined "
            "(stopped Nov 23, 12:00 UTC), so we stopped trying.") in text(stop)
    assert ("It starts again when a payment succeeds or a card is added: make a payment "
            "below, or add a card under Payment Methods.") in text(stop)
    listed = section(html, "recent-alerts")
    assert "Auto recharge stopped" in text(listed)
    # a billing user (Role.BILLING) of the account sees the same page
    sign_in_as(client, clerk)
    assert 'data-reason="declines"' in body(client.get(url(bw.solo)))
    # the recipients (the admin; a standalone account's owners and admins) were told
    assert ("ann@example.test", "Auto recharge stopped for Acme Plumbing: cards declined") in \
        session.execute(select(OutboxMessage.to_address, OutboxMessage.subject).where(
            OutboxMessage.kind == "alert")).all()
    # a new card clears it
    clock.freeze(NOW + timedelta(minutes=5))
    card(session, bw.solo)
    session.commit()
    sign_in_as(client, bw.ann)
    assert 'data-testid="recharge-stop"' not in body(client.get(url(bw.solo)))


def test_the_monthly_cap_stop_is_shown(client, session, bw):
    card(session, bw.solo)
    billing.set_auto_recharge(session, bw.solo, "10", "50", cap="45")
    f.funds(session, bw.solo, 2000)
    session.commit()
    clock.freeze(NOW)
    assert usage(client, bw.solo.id, "a", 300)["recharge"]["amount_cents"] == 4500
    assert usage(client, bw.solo.id, "b", 900)["recharge"] is None  # $5: held back
    sign_in_as(client, bw.ann)
    html = assert_full_page(client.get(url(bw.solo)))
    stop = section(html, "auto-recharge")
    assert 'data-reason="cap"' in stop
    assert ("Monthly recharge cap reached. $45.00 was recharged in November 2026, the cap of "
            "$45.00: no more recharges this month.") in text(stop)
    assert "Recharges resume on December 1 (00:00 UTC), or raise or remove the cap below." \
        in text(stop)
    assert "Monthly recharge cap reached" in text(section(html, "recent-alerts"))


# --------------------------------------------------------------- the low-balance alert

def test_the_low_balance_alert_is_saved_refused_and_turned_off(client, session, bw):
    sign_in_as(client, bw.ann)
    before = snapshot(session)
    for headers in (HX, {}):
        response = post(client, url(bw.solo, "low-balance-alert"), {"low_balance": "12.345"},
                        headers=headers)
        assert response.status_code == 422
        html = (assert_fragment(response, '<section class="card" id="low-balance"')
                if headers else section(assert_full_page(response), "low-balance"))
        assert field_error("low_balance", "The alert amount can't have fractions of a cent: "
                                          "use at most two decimals.") in html
        assert 'value="12.345"' in tag(html, "low_balance")
    assert snapshot(session) == before
    response = post(client, url(bw.solo, "low-balance-alert"), {"low_balance": "25"},
                    headers=HX)
    html = assert_fragment(response, '<section class="card" id="low-balance"')
    assert flash("success", "Saved: the billing contacts are emailed when the balance drops "
                            "below $25.00. It is below that now: the next drop below it is "
                            "told.") in html  # Acme's balance is $0.00
    assert 'value="25.00"' in tag(html, "low_balance")
    response = post(client, url(bw.solo, "low-balance-alert"), {"low_balance": "25",
                                                                 "enabled": "off"})
    assert response.status_code == 303
    assert flash("success", "The low-balance alert is off.") in body(client.get(
        response.location))
    session.expire_all()
    assert session.get(BillingSettings, bw.solo.id).low_balance_cents is None


def test_recent_alerts_list_the_accounts_own(client, session, bw):
    sign_in_as(client, bw.ann)
    html = body(client.get(url(bw.solo)))
    assert "No alerts yet." in text(section(html, "recent-alerts"))
    alerts.send(session, bw.rival, AlertKind.LOW_BALANCE, "rival:1", "Rival alert", "s")
    alerts.send(session, bw.solo, AlertKind.LOW_BALANCE, "solo:1", "Acme alert", "s",
                now=NOW)
    session.commit()
    listed = text(section(body(client.get(url(bw.solo))), "recent-alerts"))
    assert "Nov 23, 2026 12:00 Low balance Acme alert" in listed
    assert "Rival" not in listed


# --------------------------------------------------------------- concurrency

POSTINGS = 20


def _post_at_once(app, account_id, minutes):
    def metering_client(i):
        response = app.test_client().post(f"/api/accounts/{account_id}/usage", headers=AUTH,
                                          json={"idempotency_key": f"c-{i:02d}",
                                                "items": {"minutes": minutes}})
        assert response.status_code == 201, response.get_json()

    at_once(POSTINGS, metering_client)


def _crossings(session, account_id, limit):
    """Down-crossings of `limit` in the ledger's order: what the alerts must match."""
    balances = session.scalars(select(LedgerEntry.balance_after_cents).where(
        LedgerEntry.account_id == account_id).order_by(LedgerEntry.id)).all()
    before = [0, *balances[:-1]]
    return sum(1 for b, a in zip(before, balances, strict=True) if b >= limit > a)


def test_the_low_balance_alert_goes_once_under_20_concurrent_postings(app, session):
    clock.freeze(NOW)
    owner = f.user(session, "owner@example.test")
    account = f.standalone(session, "Harbor Dental")
    f.member(session, owner, account, Role.OWNER)
    f.funds(session, account, 3000)  # $30; twenty $1 postings take it to $10
    alerts.set_low_balance(session, account, "20")
    account_id = account.id
    session.commit()
    _post_at_once(app, account_id, 20)
    session.expire_all()
    assert session.scalar(select(func.sum(LedgerEntry.amount_cents)).where(
        LedgerEntry.account_id == account_id)) == 1000
    low = session.scalars(select(Alert).where(Alert.kind == AlertKind.LOW_BALANCE.value)).all()
    assert len(low) == 1 == _crossings(session, account_id, 2000)
    assert low[0].message.startswith("The balance dropped below $20.00: it is $19.00 (")
    assert session.scalars(select(OutboxMessage.to_address).where(
        OutboxMessage.kind == "alert")).all() == ["owner@example.test"]
    assert session.get(BillingSettings, account_id).low_balance_below is True


def test_with_auto_recharge_each_crossing_is_told_once(app, session):
    """Recharges lift the balance back above the alert amount while postings arrive: every
    drop below it in the ledger's order is one alert, none twice."""
    clock.freeze(NOW - timedelta(hours=1))
    owner = f.user(session, "owner@example.test")
    account = f.standalone(session, "Harbor Dental")
    f.member(session, owner, account, Role.OWNER)
    f.card(session, account)
    f.recharge_settings(session, account, "10", "20")
    f.funds(session, account, 2000)
    alerts.set_low_balance(session, account, "15")
    account_id = account.id
    session.commit()
    clock.freeze(NOW)
    _post_at_once(app, account_id, 40)  # $2 each: $40 of usage against $20 and recharges
    session.expire_all()
    crossings = _crossings(session, account_id, 1500)
    low = session.scalar(select(func.count()).select_from(Alert).where(
        Alert.kind == AlertKind.LOW_BALANCE.value))
    assert crossings >= 1
    assert low == crossings
    assert session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.kind == "alert")) == crossings


def test_change_history_names_the_guardrails(client, session, bw):
    sign_in_as(client, bw.ann)
    post(client, url(bw.solo, "auto-recharge"),
         {"threshold": "20", "amount": "100", "cap": "500", "daily_limit": "3"})
    post(client, url(bw.solo, "low-balance-alert"), {"low_balance": "40"})
    from portal.versioning import field_label

    assert [field_label(name) for name in ("recharge_cap_cents", "recharge_daily_limit",
                                           "low_balance_cents")] == [
        "Monthly recharge cap", "Recharges a day, at most", "Low-balance alert below"]
    html = body(client.get(f"/accounts/{bw.solo.id}/history/"))
    assert "Monthly recharge cap" in text(html) and "$500.00" in text(html)
