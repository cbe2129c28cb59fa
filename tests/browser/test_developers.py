"""Settings → Developers in the browser (issue 18 K): an agency owner opens Developers from
the menu, creates an API key (the token shown once, with its warning), sees it listed by its
hint only, calls the API with it, revokes it behind the confirmation dialog, and the key
stops working. axe on the page, the token page and the dialog; screenshots desktop and phone
(test-artifacts/i18-developers-*.png), dark mode too; the API reference renders from our
own files (test-artifacts/i18-api-docs.png)."""

import re

import pytest
from playwright.sync_api import expect

from tests import factories as f
from tests.browser.conftest import (
    ARTIFACTS,
    account_url,
    axe,
    click_and_wait,
    goto,
    htmx_swap,
    navigation,
    shots,
)

pytestmark = pytest.mark.browser

OWNER = "olive@harbor.test"
AGENCY = "Harbor Agency"
TOKEN = re.compile(r"^apk_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}$")


@pytest.fixture
def world(session):
    owner = f.user(session, OWNER, name="Olive Owner")
    agency = f.agency(session, AGENCY, owner=owner)
    f.sub(session, agency, "Bayside Dental")
    session.commit()
    return agency.id


def test_an_owner_creates_a_key_sees_it_once_and_revokes_it(page, sign_in, screenshot, world,
                                                              base_url):
    problems: list[str] = []
    sign_in(OWNER)
    goto(page, f"/accounts/{world}/", heading=f"Account Settings · {AGENCY}")
    menu = page.get_by_role("navigation", name="Main")
    click_and_wait(page, menu.get_by_role("link", name="Developers", exact=True),
                   url=account_url("developers/"), heading=f"Developers · {AGENCY}")
    expect(page.get_by_test_id("no-keys")).to_be_visible()
    expect(page.get_by_role("link", name="API reference")).to_have_attribute(
        "href", "/api/v1/docs")
    assert axe(page) == []
    shots(page, screenshot, "i18-developers-empty", problems)

    # Create: a name missing is the form again, with the error
    click_and_wait(page, page.get_by_role("button", name="Create API key"),
                   heading=f"Developers · {AGENCY}")
    expect(page.locator("#name-error")).to_contain_text("Give the key a name")
    page.get_by_label("Name").fill("Billing sync")
    write = "Write: every change its role may make in the portal"
    page.get_by_role("checkbox", name=write).check()
    page.get_by_label("Acts as").select_option("owner")
    click_and_wait(page, page.get_by_role("button", name="Create API key"),
                   heading=f"API key created · {AGENCY}")
    expect(page.get_by_test_id("shown-once")).to_contain_text("won't be shown again")
    token = page.get_by_test_id("token").inner_text().strip()
    assert TOKEN.match(token), token
    # focus starts at the page's heading (the token is right below it), and Copy key copies
    expect(page.get_by_role("heading", level=1)).to_be_focused()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy key").click()
    expect(page.locator("#token-copied")).to_have_text("Copied.")
    assert page.evaluate("() => navigator.clipboard.readText()") == token
    assert axe(page) == []
    shots(page, screenshot, "i18-developers-token", problems)

    who = page.request.get(f"{base_url}/api/v1/key",
                           headers={"Authorization": f"Bearer {token}"})
    assert who.status == 200 and who.json()["name"] == "Billing sync"

    click_and_wait(page, page.get_by_role("link", name="Done"),
                   url=account_url("developers/"), heading=f"Developers · {AGENCY}")
    keys = page.get_by_test_id("api-keys")
    expect(keys).to_contain_text("Billing sync")
    expect(keys).to_contain_text("read, write")
    expect(keys).to_contain_text("Owner")
    assert token not in page.content()
    assert "_".join(token.split("_")[:2]) + "_…" in keys.inner_text()
    shots(page, screenshot, "i18-developers-list", problems)

    # Revoke: the dialog, keyboard-reachable, then the key stops
    with htmx_swap(page):
        page.get_by_role("link", name="Revoke the key Billing sync").click()
    dialog = page.get_by_role("dialog", name="Revoke the API key “Billing sync”?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("link", name="Keep it")).to_be_focused()
    assert axe(page, "dialog") == []
    screenshot(page, "i18-developers-revoke-dialog")
    click_and_wait(page, dialog.get_by_role("button", name="Revoke"),
                   url=account_url("developers/"), heading=f"Developers · {AGENCY}")
    flash = page.locator(".flash")
    expect(flash).to_contain_text("Revoked the API key “Billing sync”")
    expect(flash).to_be_focused()  # its Revoke link is gone: focus goes to what happened
    expect(keys).to_contain_text("Revoked")
    expect(page.get_by_role("link", name="Revoke the key Billing sync")).to_have_count(0)
    gone = page.request.get(f"{base_url}/api/v1/key",
                            headers={"Authorization": f"Bearer {token}"})
    assert gone.status == 401

    # Dark mode
    click_and_wait(page, page.get_by_role("button", name="Dark mode"),
                   url=account_url("developers/"), heading=f"Developers · {AGENCY}")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert axe(page) == []
    shots(page, screenshot, "i18-developers-dark", problems)
    assert problems == []


def test_the_token_is_never_kept_in_the_tabs_history(page, sign_in, world):
    """Leaving the token page by a menu link and pressing Back shows the keys' list, not the
    token again: htmx's history cache (sessionStorage) never holds the page."""
    sign_in(OWNER)
    goto(page, f"/accounts/{world}/developers/", heading=f"Developers · {AGENCY}")
    page.get_by_label("Name").fill("Nightly sync")
    click_and_wait(page, page.get_by_role("button", name="Create API key"),
                   heading=f"API key created · {AGENCY}")
    token = page.get_by_test_id("token").inner_text().strip()
    assert TOKEN.match(token), token
    click_and_wait(page, page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Change History"), url=account_url("history/"),
        heading=f"Change History · {AGENCY}")
    assert token not in page.evaluate("() => JSON.stringify(sessionStorage)")
    with navigation(page, account_url("developers/"), f"Developers · {AGENCY}"):
        page.go_back()
    expect(page.get_by_test_id("api-keys")).to_contain_text("Nightly sync")
    assert token not in page.content()
    assert token not in page.evaluate("() => JSON.stringify(sessionStorage)")


def test_the_api_reference_renders_from_our_own_files(page, base_url):
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(request.url.split("/")[2]))
    goto(page, "/api/v1/docs")
    expect(page.get_by_role("heading", name="Account portal API (v1)")).to_be_visible(
        timeout=20_000)
    expect(page.get_by_text("Payment methods").first).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)  # the first screen only: the whole reference is tall
    page.screenshot(path=str(ARTIFACTS / "i18-api-docs.png"), timeout=30_000)
    assert hosts == {base_url.split("/")[2]}
