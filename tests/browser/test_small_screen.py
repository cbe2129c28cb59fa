"""On a phone-sized screen the header's switcher stays on screen and nothing scrolls sideways."""

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests import factories as f

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 800}


@pytest.fixture
def agency_owner(session):
    owner = f.user(session, email="owner@example.test")
    agency = f.agency(session, "Northwind Marketing & Growth Partners International", owner=owner)
    sub = f.sub(session, agency, "Bayside Family Dental and Orthodontics of the Bay Area")
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

    page.get_by_test_id("current-account").click()
    panel = page.locator(".switcher-panel")
    expect(panel.get_by_role("link", name="Bayside Family Dental")).to_be_visible()
    box = panel.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    screenshot(page, "phone-switcher-open")

    panel.get_by_role("link", name="Bayside Family Dental").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Call History").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Call History")
    expect(page.locator("#results tbody tr")).to_have_count(3)
    assert page_width(page) <= PHONE["width"]  # the table scrolls inside itself
    screenshot(page, "phone-call-history")
