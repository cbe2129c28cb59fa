"""Billing Settings → Where the money goes (issue 17) in Chromium: the section loads into
Billing Settings, switches between 30 and 90 days in place, its table holds the chart's
numbers; the agency's spend by sub-account; Settings → Accounts sorted by this month's
spend. Screenshots in light and dark mode, on a desktop and a phone
(test-artifacts/i17-spend-*.png), and axe on each state."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from portal import clock
from portal.models import BillingMode, User
from portal.services import usage
from tests import factories as f
from tests.browser.conftest import (
    axe,
    click_and_swap,
    goto,
    htmx_settled,
    open_menu,
    shots,
)

pytestmark = pytest.mark.browser
EMAIL = "spender@example.test"
HEADING = re.compile("Where the money goes")


@pytest.fixture
def agency_id(session):
    owner = f.user(session, email=EMAIL, name="Sam Spender")
    agency = f.agency(session, "Northwind Agency", owner=owner)
    now = datetime.now(UTC)
    f.funds(session, agency, 300_000, when=now - timedelta(days=95))
    subs = [f.sub(session, agency, "Bayside Dental"), f.sub(session, agency, "Harbor Law"),
            f.sub(session, agency, "Northside Plumbing with a Rather Long Name"),
            f.sub(session, agency, "Quiet Cafe")]
    own = f.sub(session, agency, "Oak Street Vet", billing=BillingMode.CUSTOMER)
    f.funds(session, own, 20_000, when=now - timedelta(days=95))
    for ago in range(88, -1, -1):
        when = now - timedelta(days=ago, hours=1)
        for i, sub in enumerate(subs[:3]):
            items = {"minutes": 40 + (ago * 7 + i * 13) % 90}
            if ago % 6 == i:
                items["transcriptions"] = 25
            if ago % 15 == 0 and i == 0:
                items["numbers"] = 2
            if ago % 9 == 1:
                items["enhanced_caller_id"] = 3 + i
            with clock.at(when):
                usage.post(session, sub, items, f"b-{ago}-{i}")
        if ago % 3 == 0:
            with clock.at(when):
                usage.post(session, own, {"minutes": 30, "encrypted_recording": 20}, f"o-{ago}")
    f.recharge_settings(session, agency, "300", "900")  # after the usage: no recharge due
    session.commit()
    return agency.id


def wait_for_spend(page: Page) -> None:
    expect(page.get_by_test_id("spend-chart")).to_be_visible()
    htmx_settled(page)


def check_axe(page: Page, state: str, problems: list[str]) -> None:
    for v in axe(page):
        problems.append(f"{state}: {v['id']} ({v['impact']}): {v['help']}: "
                        + "; ".join(n["target"] for n in v["nodes"][:5]))


def test_where_the_money_goes(page: Page, session, agency_id, sign_in, screenshot):
    problems: list[str] = []
    sign_in(EMAIL)
    open_menu(page, "Billing Settings", "Northwind Agency")
    wait_for_spend(page)  # loaded after the page
    spend = page.locator("#spend")
    expect(spend.get_by_role("heading", name=re.compile("Spend per day, last 30 days"))) \
        .to_be_visible()
    expect(page.get_by_test_id("next-recharge")) \
        .to_contain_text("when the balance falls below $300.00")
    expect(page.get_by_test_id("next-fee")).to_contain_text("from the balance")
    check_axe(page, "Billing Settings (light, desktop)", problems)

    click_and_swap(page, spend.get_by_role("link", name="Last 90 days"))
    expect(page.locator("#spend").get_by_role("heading", name=re.compile("last 90 days"))) \
        .to_be_visible()
    assert re.search(r"/billing/$", page.url)  # in place: the address stays

    # The table holds the chart's numbers.
    page.get_by_text("The numbers, day by day").click()
    bars = page.eval_on_selector_all(
        "[data-testid=spend-chart] rect[data-cents]",
        "els => els.map(e => [e.dataset.day, e.dataset.item, +e.dataset.cents])")
    cells = page.eval_on_selector_all(
        "[data-testid=spend-table] tbody td[data-cents]",
        "els => els.filter(e => +e.dataset.cents > 0).map(e => "
        "[e.closest('tr').dataset.day, e.dataset.item, +e.dataset.cents])")
    assert sorted(map(tuple, bars)) == sorted(map(tuple, cells)) and len(bars) > 89

    # The page of its own, in light and dark, on a desktop and a phone.
    goto(page, f"/accounts/{agency_id}/billing/spend?days=90", heading=HEADING)
    page.get_by_text("The numbers, day by day").click()
    expect(page.get_by_test_id("spend-by-sub")).to_contain_text("Bayside Dental")
    shots(page, screenshot, "i17-spend-light", problems)
    check_axe(page, "Spend (light, desktop)", problems)
    session.execute(update(User).where(User.email == EMAIL).values(dark_mode=True))
    session.commit()
    goto(page, f"/accounts/{agency_id}/billing/spend?days=30", heading=HEADING)
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.emulate_media(color_scheme="dark")
    shots(page, screenshot, "i17-spend-dark", problems)
    check_axe(page, "Spend (dark, desktop)", problems)
    page.set_viewport_size({"width": 390, "height": 844})
    check_axe(page, "Spend (dark, phone)", problems)
    page.set_viewport_size({"width": 1280, "height": 900})

    # Settings → Accounts: spend this month, sorted by it.
    session.execute(update(User).where(User.email == EMAIL).values(dark_mode=False))
    session.commit()
    page.emulate_media(color_scheme="light")
    goto(page, f"/accounts/{agency_id}/sub-accounts", heading=re.compile("Accounts"))
    header = page.get_by_test_id("spend-header")
    click_and_swap(page, header.get_by_role("link"))
    expect(header).to_have_attribute("aria-sort", "descending")
    names = page.locator("#results table tbody tr td:first-child")
    expect(names.last).to_have_text("Quiet Cafe")  # spent nothing
    shots(page, screenshot, "i17-spend-accounts", problems)
    check_axe(page, "Accounts sorted by spend (light, desktop)", problems)
    assert not problems, "\n".join(problems)
