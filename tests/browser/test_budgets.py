"""Issue 17 (B), walked in Chromium by the labels a user clicks, with screenshots at 1280 and
390 px (test-artifacts/i17-budget-*.png): the agency's owner sets a sub-account's budget on
its Billing Settings (a bad amount refused beside its field first), usage reaches it, the
alerts are in the agency's Recent alerts, the sub-account's calls are paused, and
Settings → Accounts shows the budget used."""

import re

import pytest
from playwright.sync_api import Page, expect

from portal.models import BillingMode
from portal.services import usage
from tests import factories as f
from tests.browser.conftest import axe, click_and_swap, goto, shots
from tests.browser.test_billing import flash, section

pytestmark = pytest.mark.browser


@pytest.fixture
def agency(session):
    """Northwind Agency (Avery owns it, $100 on its balance), Bayside Dental on agency billing
    and Harbor Law on customer billing."""
    avery = f.user(session, email="avery@example.test", name="Avery Stone")
    agency = f.agency(session, "Northwind Agency", owner=avery)
    f.funds(session, agency, 100_00)
    bayside = f.sub(session, agency, "Bayside Dental", billing=BillingMode.AGENCY)
    harbor = f.sub(session, agency, "Harbor Law", billing=BillingMode.CUSTOMER)
    f.funds(session, harbor, 50_00)
    session.commit()
    return agency, bayside, harbor


def check_axe(page: Page, region: str, problems: list[str]) -> None:
    for v in axe(page, region):
        problems.append(f"{region}: {v['id']} ({v['impact']}): {v['help']}: "
                        + "; ".join(n["target"] for n in v["nodes"][:5]))


def test_a_budget_set_reached_told_and_paused(page: Page, session, agency, sign_in,
                                              screenshot):
    problems: list[str] = []
    northwind, bayside, harbor = agency
    sign_in("avery@example.test")
    goto(page, f"/accounts/{bayside.id}/billing/", heading=re.compile("Billing Settings"))
    budget = section(page, "Budget")
    expect(budget.get_by_test_id("no-budget")).to_contain_text("No budget: set one")
    expect(budget.get_by_label("Email alerts at (% of the budget)")).to_have_value("50, 80, 100")

    # A bad amount is refused beside its field, as typed.
    budget.get_by_label("Monthly budget ($)").fill("ten")
    click_and_swap(page, budget.get_by_role("button", name="Save budget"))
    budget = section(page, "Budget")
    amount = budget.get_by_label("Monthly budget ($)")
    expect(amount).to_have_attribute("aria-invalid", "true")
    expect(budget.locator("#amount-error")).to_have_text(
        "The budget must be a dollar amount, like 25 or 25.00.")
    expect(amount).to_have_value("ten")
    budget.scroll_into_view_if_needed()
    shots(page, screenshot, "i17-budget-refused", problems)
    check_axe(page, "#budget", problems)

    amount.fill("10")
    budget.get_by_label("Email alerts at (% of the budget)").fill("50, 100")
    budget.get_by_label("Pause calls when the budget is reached").check()
    click_and_swap(page, budget.get_by_role("button", name="Save budget"))
    budget = section(page, "Budget")
    expect(flash(page, "Saved: Bayside Dental's budget is $10.00 a month, with alerts at 50%, "
                       "100%; calls pause when it is reached.")).to_be_visible()
    expect(budget.get_by_test_id("budget-standing")).to_have_text(
        "$0.00 of $10.00 used this month (0%); $10.00 left.")
    budget.scroll_into_view_if_needed()
    shots(page, screenshot, "i17-budget-saved", problems)
    check_axe(page, "#budget", problems)

    # The metering posts $6.00, then $4.00: 50%, then the budget reached and calls paused.
    usage.post(session, bayside, {"minutes": 120}, "b-1")
    session.commit()
    usage.post(session, bayside, {"minutes": 80}, "b-2")
    session.commit()

    goto(page, f"/accounts/{northwind.id}/billing/", heading=re.compile("Billing Settings"))
    alerts = section(page, "Recent alerts")
    expect(alerts.get_by_role("row")).to_have_count(3)  # the header and two alerts
    expect(alerts).to_contain_text("Bayside Dental reached its monthly budget of $10.00: "
                                   "$10.00 spent this month.")
    expect(alerts).to_contain_text("Bayside Dental used 50% of its monthly budget of $10.00: "
                                   "$6.00 spent this month.")
    alerts.scroll_into_view_if_needed()
    shots(page, screenshot, "i17-budget-alerts", problems)
    check_axe(page, "#recent-alerts", problems)

    goto(page, f"/accounts/{bayside.id}/billing/", heading=re.compile("Billing Settings"))
    budget = section(page, "Budget")
    expect(budget.get_by_test_id("budget-paused")).to_contain_text(
        "Calls paused: budget reached")
    expect(budget.get_by_test_id("budget-standing")).to_contain_text(
        "$10.00 of $10.00 used this month (100%). Budget reached")
    budget.scroll_into_view_if_needed()
    shots(page, screenshot, "i17-budget-paused", problems)
    check_axe(page, "#budget", problems)

    goto(page, f"/accounts/{northwind.id}/sub-accounts", heading=re.compile("Accounts"))
    expect(page.get_by_test_id(f"budget-{bayside.id}")).to_have_text("$10.00 / $10.00 (100%)")
    expect(page.get_by_test_id(f"budget-{harbor.id}")).to_have_text("No budget")
    shots(page, screenshot, "i17-budget-accounts", problems)
    assert problems == []
