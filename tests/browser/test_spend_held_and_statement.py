"""Issue 17, round two (S2), in Chromium at 1280 and 390 px: Where the money goes on Billing
Settings beside a stopped auto recharge (the next recharge is held, not dated), and the
statement as a page (its screen stylesheet is its own file since the PDF stopped reading it);
axe on both. Screenshots: test-artifacts/i17-s2-*.png."""

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from portal import clock
from tests.browser.conftest import axe, goto, shots
from tests.browser.test_billing import open_billing, section
from tests.browser.test_guardrails import stopped  # noqa: F401 (the fixture)

pytestmark = pytest.mark.browser


def test_the_held_recharge_and_the_statement_page_pass_axe(page: Page, session, stopped,  # noqa: F811
                                                             sign_in, screenshot):
    problems: list[str] = []
    sign_in("dana@example.test")
    open_billing(page)
    expect(page.get_by_test_id("spend-chart")).to_be_visible()  # loaded after the page
    expect(page.get_by_test_id("next-recharge")).to_have_text(
        "None for now: auto recharge stopped after declined cards. It starts again when a "
        "payment succeeds or a card is added")
    section(page, "Balance Auto Recharge Settings").scroll_into_view_if_needed()
    shots(page, screenshot, "i17-s2-billing-held", problems)
    for width in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width[0], "height": width[1]})
        for region in ("#spend", "#auto-recharge", "#recent-alerts"):
            assert axe(page, region) == [], (region, width)

    today = clock.now().date()
    goto(page, f"/accounts/{stopped.id}/billing/statements/view"
               f"?from={today - timedelta(days=30)}&to={today}", heading="Statement")
    expect(page.get_by_test_id("usage-by-day")).to_be_visible()
    expect(page.get_by_role("link", name="Download postings (CSV)")).to_be_visible()
    shots(page, screenshot, "i17-s2-statement", problems)
    for width in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width[0], "height": width[1]})
        assert axe(page) == [], width
    # the phone reads each usage cell with its item's name (statement-screen.css)
    page.set_viewport_size({"width": 390, "height": 844})
    label = page.get_by_test_id("usage-by-day").locator("tbody td[data-label]").first
    assert "Minutes (min): " in label.evaluate(
        "(td) => getComputedStyle(td, '::before').content")
    assert problems == []
