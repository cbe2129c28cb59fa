"""On a phone-sized screen the header's switcher stays on screen and nothing scrolls sideways."""

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests import factories as f
from tests.browser.conftest import account_url, click_and_swap, click_and_wait, open_menu

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 800}
SUB = "Bayside Family Dental and Orthodontics of the Bay Area"


@pytest.fixture
def agency_owner(session):
    owner = f.user(session, email="owner@example.test")
    agency = f.agency(session, "Northwind Marketing & Growth Partners International", owner=owner)
    sub = f.sub(session, agency, SUB)
    f.calls(session, sub, 3, start=datetime(2026, 3, 1, tzinfo=UTC), step=timedelta(hours=1),
            caller_name="Patricia Longname-Caller")
    session.commit()
    return "owner@example.test"


def page_width(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


@pytest.mark.browser_context_args(viewport=PHONE)
def test_switcher_and_tables_fit_a_phone_screen(page: Page, agency_owner, sign_in, screenshot):
    sign_in(agency_owner)
    assert page_width(page) <= PHONE["width"]

    click_and_swap(page, page.get_by_test_id("current-account"))  # opened, it lists them
    panel = page.locator(".switcher-panel")
    expect(panel.get_by_role("link", name="Bayside Family Dental")).to_be_visible()
    box = panel.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    screenshot(page, "phone-switcher-open")

    click_and_wait(page, panel.get_by_role("link", name="Bayside Family Dental"),
                   url=account_url(), heading=f"Account Settings · {SUB}")
    open_menu(page, "Call History", SUB)
    expect(page.locator("#results tbody tr")).to_have_count(3)
    assert page_width(page) <= PHONE["width"]  # the table scrolls inside itself
    screenshot(page, "phone-call-history")
