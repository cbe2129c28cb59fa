"""Issue 17 (G), walked in Chromium by the labels a user clicks, with screenshots at 1280 and
390 px (test-artifacts/i17-guardrails-*.png): auto recharge stopped after three declined
recharges, shown with its reason and how to clear it, and in Recent alerts; the monthly cap
and the daily limit set on Balance Auto Recharge Settings (a bad limit refused beside its
field); the Low-Balance Alert saved."""

import pytest
from playwright.sync_api import Page, expect

from portal.models import Cause, LedgerKind
from portal.services import billing, ledger, usage
from portal.services.gateway import SandboxGateway
from tests import factories as f
from tests.browser.conftest import axe, click_and_swap, shots
from tests.browser.test_billing import card, flash, open_billing, section

pytestmark = pytest.mark.browser

DECLINES = "4000000000000341"  # saves fine, every charge is declined


@pytest.fixture
def stopped(session):
    """Harbor Dental (Dana is its admin): a Primary that declines, auto recharge below $10 up
    to $50, and three recharges declined in a row (usage took $20 to $5, $4, $3)."""
    dana = f.user(session, email="dana@example.test", name="Dana Reyes")
    account = f.standalone(session, "Harbor Dental", admin=dana)
    card(session, account, DECLINES)
    billing.set_auto_recharge(session, account, "10", "50")
    ledger.post(session, account, LedgerKind.PAYMENT, 2000, "Opening payment", "open-1",
                Cause.USER)
    session.commit()
    gateway = SandboxGateway()
    for n, minutes in enumerate((300, 20, 20)):
        received = usage.post_and_recharge(session, gateway, account, {"minutes": minutes},
                                           f"batch-{n}")
        assert received.recharge.status.value == "failed"
    return account


def test_a_stopped_auto_recharge_says_why_and_how_to_clear_it(page: Page, session, stopped,
                                                              sign_in, screenshot):
    problems: list[str] = []
    sign_in("dana@example.test")
    open_billing(page)
    recharge = section(page, "Balance Auto Recharge Settings")
    stop = recharge.get_by_test_id("recharge-stop")
    expect(stop).to_contain_text("Auto recharge stopped: declined cards. The last 3 recharges "
                                 "were declined")
    expect(stop.get_by_test_id("recharge-stop-clear")).to_have_text(
        "It starts again when a payment succeeds or a card is added: make a payment below, or "
        "add a card under Payment Methods.")
    alerts = section(page, "Recent alerts")
    expect(alerts.get_by_role("row")).to_have_count(2)  # the header and the alert
    expect(alerts).to_contain_text("Auto recharge stopped: 3 recharges in a row were declined")
    recharge.scroll_into_view_if_needed()
    shots(page, screenshot, "i17-guardrails-stopped", problems)
    for region in ("#auto-recharge", "#low-balance", "#recent-alerts"):
        assert axe(page, region) == [], region

    # The guardrails: a daily limit of 0 is refused beside its field, nothing saved.
    recharge.get_by_label("Monthly recharge cap ($, optional)").fill("300")
    recharge.get_by_label("Recharges a day, at most").fill("0")
    click_and_swap(page, recharge.get_by_role("button", name="Save recharge settings"))
    recharge = section(page, "Balance Auto Recharge Settings")
    limit = recharge.get_by_label("Recharges a day, at most")
    expect(limit).to_have_attribute("aria-invalid", "true")
    expect(recharge.locator("#daily_limit-error")).to_have_text(
        "Enter how many recharges a day: a whole number from 1 to 50.")
    expect(limit).to_have_value("0")
    shots(page, screenshot, "i17-guardrails-refused", problems)
    assert axe(page, "#auto-recharge") == []

    limit.fill("3")
    click_and_swap(page, recharge.get_by_role("button", name="Save recharge settings"))
    recharge = section(page, "Balance Auto Recharge Settings")
    expect(flash(page, "Saved: when the balance falls below $10.00")).to_be_visible()
    expect(recharge.get_by_test_id("recharge-guard-figures")).to_have_text(
        "This month (UTC): $0.00 recharged of the $300.00 cap. Today: 3 of at most 3 "
        "recharges.")

    # The low-balance alert, saved in its own section.
    low = section(page, "Low-Balance Alert")
    low.get_by_label("Email me when the balance drops below ($)").fill("25")
    click_and_swap(page, low.get_by_role("button", name="Save alert"))
    low = section(page, "Low-Balance Alert")
    expect(low.get_by_role("status")).to_have_text(
        "Saved: the billing contacts are emailed when the balance drops below $25.00. It is "
        "below that now: the next drop below it is told.")
    expect(low.get_by_test_id("low-balance-below")).to_be_visible()
    low.scroll_into_view_if_needed()
    shots(page, screenshot, "i17-guardrails-saved", problems)
    assert axe(page, "#low-balance") == []
    assert problems == []
