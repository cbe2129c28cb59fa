"""GDPR redaction from Call History: the row's Redact button asks first (hx-confirm, the
browser's own dialog); dismissed, nothing changes; accepted, the caller's name and number
give way to "Redacted", on the same filtered list. Change History records the redaction
without the values. Also: screenshots of GDPR Tools and Account Security."""

import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from playwright.sync_api import Page, expect

from tests import factories as f
from tests.browser.conftest import click_and_swap, htmx_settled, navigation, open_menu, shots

pytestmark = pytest.mark.browser

ADMIN = "dana@example.test"
ACCOUNT = "Harbor Dental"
CONFIRM = ("Remove this caller's name, number and notes from the call for good? This can't be "
           "undone.")


@pytest.fixture
def calls(session):
    """Harbor Dental (admin Dana) with three calls on 1–3 March 2026 from three callers."""
    user = f.user(session, email=ADMIN, name="Dana Diaz")
    account = f.standalone(session, ACCOUNT, admin=user)
    made = [f.call(session, account, datetime(2026, 3, day, 9, tzinfo=UTC), caller_name=name,
                   caller_number=number)
            for day, name, number in ((1, "Pat Caller", "+12025550101"),
                                      (2, "Robin Private", "+12025550102"),
                                      (3, "Sam Keeps", "+12025550103"))]
    session.commit()
    return SimpleNamespace(account=account, ids=[c.id for c in made])


# ----------------------------------------------------------------------------- helpers

def nav_to(page: Page, name: str) -> None:
    """The main menu's link `name` → its page of Harbor Dental."""
    open_menu(page, name, ACCOUNT)


def call_row(page: Page, started: str):
    return page.locator("#results tbody tr").filter(
        has=page.locator("td:first-child", has_text=started))


def redact_button(page: Page, started: str):
    return page.get_by_role("button", name=f"Redact the call of {started}")


# ----------------------------------------------------------------------------- the flow

def test_redact_a_call_from_call_history(page: Page, calls, sign_in):
    sign_in(ADMIN)
    nav_to(page, "Call History")
    # The range 2–3 March: the redaction comes back to it.
    page.get_by_label("From").fill("2026-03-02")
    page.get_by_label("To").fill("2026-03-03")
    click_and_swap(page, page.get_by_role("button", name="Filter"))
    expect(page).to_have_url(re.compile(r"from=2026-03-02&to=2026-03-03"))
    expect(page.locator("#results tbody tr")).to_have_count(2)
    row = call_row(page, "2026-03-02 09:00")
    expect(row).to_contain_text("Robin Private")
    expect(row).to_contain_text("+12025550102")

    # Dismissed: no request, nothing changes.
    messages: list[str] = []
    redacts: list[str] = []
    page.on("request", lambda r: redacts.append(r.url) if "/redact" in r.url else None)

    def dismiss(dialog):
        messages.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    redact_button(page, "2026-03-02 09:00").click()
    expect(row).to_contain_text("Robin Private")
    htmx_settled(page)  # nothing was sent
    assert messages == [CONFIRM]
    assert redacts == []

    # Accepted: the row says Redacted, the others keep their callers.
    def accept(dialog):
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    # Back on the filtered list it was sent from.
    with navigation(page, url=re.compile(r"/calls/\?from=2026-03-02&to=2026-03-03$"),
                    heading=f"Call History · {ACCOUNT}"):
        redact_button(page, "2026-03-02 09:00").click()
    expect(page.get_by_role("status")).to_have_text(
        "The caller's name, number and notes were removed from that call.")
    row = call_row(page, "2026-03-02 09:00")
    expect(row.locator("td").nth(1)).to_have_text("Redacted")
    expect(row).not_to_contain_text("Robin Private")
    expect(row).not_to_contain_text("+12025550102")
    expect(redact_button(page, "2026-03-02 09:00")).to_have_count(0)
    expect(call_row(page, "2026-03-03 09:00")).to_contain_text("Sam Keeps")
    expect(redact_button(page, "2026-03-03 09:00")).to_be_visible()
    assert messages == [CONFIRM, CONFIRM]
    assert len(redacts) == 1, redacts
    expect(page.get_by_label("From")).to_have_value("2026-03-02")
    expect(page.locator("#results tbody tr")).to_have_count(2)

    # Change History: the redaction, by Dana, the fields named and no values.
    nav_to(page, "Change History")
    page.get_by_label("Record").select_option(label="Call")
    click_and_swap(page, page.get_by_role("button", name="Filter"))
    expect(page).to_have_url(re.compile(r"[?&]type=call(&|$)"))
    version = page.get_by_test_id("change-history").locator("tbody tr")
    expect(version).to_have_count(1)
    expect(version.locator("td").nth(1)).to_have_text("Dana Diaz")
    expect(version.locator("td").nth(2)).to_have_text(f"Call: Call #{calls.ids[1]} redacted")
    expect(version.locator("td").nth(3)).to_contain_text("Caller name: removed (not kept)")
    expect(version).not_to_contain_text("Robin")
    expect(version).not_to_contain_text("0102")


def test_gdpr_tools_and_account_security_pages(page: Page, calls, sign_in, screenshot):
    problems: list[str] = []
    sign_in(ADMIN)
    nav_to(page, "GDPR Tools")
    page.get_by_label("Caller number").fill("+1 202 555 0102")
    click_and_swap(page, page.get_by_role("button", name="Find"))
    expect(page.get_by_test_id("caller-count")).to_have_text(
        f"1 call from +12025550102 on {ACCOUNT}.")
    expect(page.get_by_role("button", name="Erase this caller's data")).to_be_visible()
    shots(page, screenshot, "gdpr-tools", problems)

    nav_to(page, "Account Security Features")
    expect(page.get_by_role("checkbox", name=re.compile("Require two-factor sign-in"))
           ).not_to_be_checked()
    shots(page, screenshot, "account-security", problems)
    assert not problems, "UI problems along the way:\n" + "\n".join(problems)
