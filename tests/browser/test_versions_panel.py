"""Versions panels and Change History in the browser.

An owner changes something on a feature page (Account Settings → Pause number swapping;
Billing Settings → Critical Billing Phone Number), opens the page's Versions panel (a
<details> whose rows htmx loads when it is opened) and sees who changed what, "before →
after"; Settings → Change History lists the same change, the Record filter swaps the results
in place and puts ?type= in the address; past VERSIONS_PER_PAGE (50) the pager swaps too.
"""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import insert

from portal import clock
from portal.models import Role, Version
from tests import factories as f
from tests.browser.conftest import (
    account_url,
    click_and_swap,
    click_and_wait,
    goto,
    htmx_swap,
    open_menu,
    shots,
)

pytestmark = pytest.mark.browser

OWNER, OWNER_NAME = "olivia@example.test", "Olivia Owner"
ACCOUNT = "Harbor Dental"
PHONE_NUMBER = "+14155550134"


@pytest.fixture
def owner(session):
    """Olivia, owner of the standalone account Harbor Dental (active)."""
    user = f.user(session, email=OWNER, name=OWNER_NAME)
    account = f.standalone(session, ACCOUNT)
    f.member(session, user, account, Role.OWNER)
    session.commit()
    return account


# ----------------------------------------------------------------------------- helpers

def heading(page: Page):
    return page.get_by_role("heading", level=1)


def nav_to(page: Page, name: str) -> None:
    open_menu(page, name, ACCOUNT)


def rows(container):
    return container.locator("tbody tr")


def history_rows(page: Page):
    return page.get_by_test_id("change-history").locator("tbody tr")


# ----------------------------------------------------------------------------- the flows

def test_account_status_change_in_the_versions_panel_and_change_history(
        page: Page, owner, sign_in, screenshot):
    problems: list[str] = []
    sign_in(OWNER)
    expect(heading(page)).to_have_text(f"Account Settings · {ACCOUNT}")
    expect(page.get_by_test_id("account-status")).to_have_text("Active")

    click_and_wait(page, page.get_by_role("button", name="Pause number swapping", exact=True),
                   url=account_url(), heading=f"Account Settings · {ACCOUNT}")
    expect(page.get_by_role("status")).to_have_text(
        "Number swapping is paused. Calls still connect.")
    expect(page.get_by_test_id("account-status")).to_have_text("Swapping paused")

    # The Versions panel, closed until opened; opened with the keyboard (Enter on its
    # summary), its rows loaded by htmx.
    panel = page.get_by_test_id("versions-account")
    summary = panel.locator("summary")
    expect(summary).to_have_text("Versions")
    expect(panel).not_to_have_attribute("open", "")
    page.evaluate("window.notReloaded = true")
    summary.focus()
    with htmx_swap(page), page.expect_response(
            re.compile(r"/history/versions\?type=account&id=\d+$")) as answer:
        page.keyboard.press("Enter")
    assert answer.value.request.headers.get("hx-request") == "true"
    expect(panel).to_have_attribute("open", "")
    table = panel.locator(".versions-list table")
    version = rows(table)
    expect(version).to_have_count(1)
    cells = version.first.locator("td")
    expect(cells.nth(0)).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    expect(cells.nth(1)).to_have_text(OWNER_NAME)
    expect(cells.nth(2)).to_have_text(f"{ACCOUNT} changed")
    expect(cells.nth(3).get_by_role("listitem")).to_have_text(["Status: Active → Swapping paused"])
    assert page.evaluate("window.notReloaded") is True
    shots(page, screenshot, "versions-panel-account-open", problems)

    # Enter again closes it; opened again it loads afresh, the same one version.
    page.keyboard.press("Enter")
    expect(panel).not_to_have_attribute("open", "")
    with htmx_swap(page):
        page.keyboard.press("Enter")
    expect(panel).to_have_attribute("open", "")
    expect(rows(table)).to_have_count(1)

    # Settings → Change History: the same change, among the setup's own versions.
    nav_to(page, "Change History")
    status_row = history_rows(page).filter(has_text="Active → Swapping paused")
    expect(status_row).to_have_count(1)
    expect(status_row.locator("td").nth(1)).to_have_text(OWNER_NAME)
    expect(status_row.locator("td").nth(2)).to_have_text(f"Account settings: {ACCOUNT} changed")
    # The setup's own version too: Olivia made owner (outside a request: "System").
    expect(history_rows(page).filter(has_text=f"User role: {OWNER_NAME}")).to_contain_text(
        "System")
    shots(page, screenshot, "change-history", problems)

    # The Record filter: swapped in place, ?type= in the address.
    page.evaluate("window.notReloaded = true")
    page.get_by_label("Record").select_option(label="Account settings")
    click_and_swap(page, page.get_by_role("button", name="Filter"))
    expect(page).to_have_url(re.compile(r"[?&]type=account(&|$)"))
    expect(history_rows(page)).to_have_count(1)
    expect(history_rows(page).first).to_contain_text("Active → Swapping paused")
    expect(page.locator("#results")).to_contain_text("Changes 1–1 of 1")
    expect(page.locator("#results")).to_have_count(1)  # replaced, not nested
    assert page.evaluate("window.notReloaded") is True

    # A record type with no versions: none match.
    page.get_by_label("Record").select_option(label="Tracking number")
    click_and_swap(page, page.get_by_role("button", name="Filter"))
    expect(page).to_have_url(re.compile(r"[?&]type=tracking_number(&|$)"))
    expect(page.locator("#results")).to_contain_text("No changes match.")
    expect(page.get_by_test_id("change-history")).to_have_count(0)

    # The filtered address, opened afresh, keeps the filter chosen.
    goto(page, re.sub(r"type=[a-z_]+", "type=account", page.url),
         heading=f"Change History · {ACCOUNT}")
    expect(page.get_by_label("Record")).to_have_value("account")
    expect(history_rows(page)).to_have_count(1)
    assert not problems, "UI problems along the way:\n" + "\n".join(problems)


def test_critical_phone_number_in_the_billing_versions_panel(
        page: Page, owner, sign_in, screenshot):
    problems: list[str] = []
    sign_in(OWNER)
    nav_to(page, "Billing Settings")

    section = page.locator("#critical-phone")
    section.get_by_label("Mobile number (with country code)").fill(PHONE_NUMBER)
    click_and_swap(page, section.get_by_role("button", name="Save phone number"))
    section = page.locator("#critical-phone")
    expect(section.get_by_role("status")).to_have_text(
        f"Critical billing texts go to {PHONE_NUMBER}.")

    panel = page.get_by_test_id("versions-billing_settings")
    summary = panel.locator("summary")
    expect(summary).to_have_text("Versions of phone, address and direct charge")
    click_and_swap(page, summary)
    version = rows(panel.locator(".versions-list table"))
    expect(version).to_have_count(1)
    cells = version.first.locator("td")
    expect(cells.nth(1)).to_have_text(OWNER_NAME)
    expect(cells.nth(2)).to_have_text(re.compile(r"Billing settings\s+(created|changed)"))
    expect(cells.nth(3).get_by_role("listitem").filter(has_text="Critical billing phone")
           ).to_have_text(re.compile(rf"Critical billing phone number:\s+(— → )?"
                                     rf"{re.escape(PHONE_NUMBER)}"))
    panel.scroll_into_view_if_needed()
    shots(page, screenshot, "versions-panel-billing-open", problems)

    # Change History, filtered to billing settings from the panel's own link.
    click_and_wait(page, panel.get_by_role("link", name="All changes in Change History"),
                   url=re.compile(r"/history/\?(.*&)?type=billing_settings(&|$)"),
                   heading=f"Change History · {ACCOUNT}")
    expect(page.get_by_label("Record")).to_have_value("billing_settings")
    expect(history_rows(page)).to_have_count(1)
    expect(history_rows(page).first).to_contain_text(OWNER_NAME)
    expect(history_rows(page).first).to_contain_text(PHONE_NUMBER)
    assert not problems, "UI problems along the way:\n" + "\n".join(problems)


def test_a_panel_opened_before_a_change_shows_the_change_when_reopened(
        page: Page, owner, sign_in):
    """The panel loads once (hx-trigger "toggle once"); a change saved on the same page by
    htmx (the rest of the page stays) should still show when the panel is looked at again."""
    sign_in(OWNER)
    nav_to(page, "Billing Settings")
    panel = page.get_by_test_id("versions-billing_settings")
    click_and_swap(page, panel.locator("summary"))
    expect(panel).to_contain_text("No versions kept for this record.")

    section = page.locator("#critical-phone")
    section.get_by_label("Mobile number (with country code)").fill(PHONE_NUMBER)
    click_and_swap(page, section.get_by_role("button", name="Save phone number"))
    expect(page.locator("#critical-phone").get_by_role("status")).to_contain_text(PHONE_NUMBER)

    panel.locator("summary").click()  # closed
    click_and_swap(page, panel.locator("summary"))  # and opened again: loaded afresh
    expect(panel).to_contain_text(PHONE_NUMBER)


def test_change_history_pages_past_fifty_in_place_keeping_the_filter(
        page: Page, owner, session, sign_in):
    """55 account versions (inserted as rows) and one of another record type."""
    now = clock.now()
    session.execute(insert(Version), [
        {"account_id": owner.id, "record_type": "account", "record_id": owner.id,
         "record_label": ACCOUNT, "action": "changed",
         "changes_json": f'{{"name": ["{ACCOUNT} {i}", "{ACCOUNT} {i + 1}"]}}',
         "actor_label": OWNER_NAME, "at": now - timedelta(minutes=60 - i)}
        for i in range(55)])
    session.commit()
    sign_in(OWNER)
    nav_to(page, "Change History")
    page.get_by_label("Record").select_option("account")
    click_and_swap(page, page.get_by_role("button", name="Filter"))
    results = page.locator("#results")
    expect(results).to_contain_text("Changes 1–50 of 55")
    expect(history_rows(page)).to_have_count(50)
    expect(history_rows(page).first).to_contain_text(f"{ACCOUNT} 54 → {ACCOUNT} 55")
    page.evaluate("window.notReloaded = true")

    click_and_swap(page, page.get_by_role("link", name="Next →"))
    expect(results).to_contain_text("Changes 51–55 of 55")
    expect(page.locator("#results")).to_have_count(1)
    expect(history_rows(page)).to_have_count(5)
    expect(history_rows(page).last).to_contain_text(f"{ACCOUNT} 0 → {ACCOUNT} 1")
    expect(page).to_have_url(re.compile(r"type=account"))
    expect(page).to_have_url(re.compile(r"page=2"))

    click_and_swap(page, page.get_by_role("link", name="← Previous"))
    expect(results).to_contain_text("Changes 1–50 of 55")
    assert page.evaluate("window.notReloaded") is True
