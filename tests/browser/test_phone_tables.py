"""Issue 14, item 2 and part of item 11: the portal on a phone (390 x 844).

Every table reads as one block per row with each cell labelled, its amounts whole and its
actions (Edit, the pencil, Remove, Receipt, Restore...) on screen without scrolling sideways;
filters stack with their labels; the Accounts filter panel never covers the result count;
the New Credit Card dialog's Expiry and CVC labels sit on one line each, above fields that
line up; the main menu folds behind a "Menu" toggle that works with the keyboard and without
JavaScript; and each of the two security pages has one name, the same in its link and its
heading.

On the demo data (as `make run` has it), plus a pending billing request, a restorable
released number and a support request, so that every kind of row and action is on screen.
Screenshots: test-artifacts/i14-02-*-desktop.png and -phone.png (the `shots` helper).
"""

import re
from datetime import timedelta

import pytest
from flask import current_app
from playwright.sync_api import Page, expect
from sqlalchemy import select

import billing_links
import portal.models  # noqa: F401  (first: billing_links.models needs portal.models loaded)
from billing_links import service as link_service
from portal.cli import demo
from portal.clock import now
from portal.mail import notices
from portal.models import Account, Charge, ChargeStatus, NumberStatus, User
from portal.services import numbers, statements, support
from tests.browser.conftest import (
    ARTIFACTS,
    DESKTOP,
    PHONE,
    account_url,
    click_and_swap,
    click_and_wait,
    goto,
    shots,
    sideways,
)

pytestmark = pytest.mark.browser

AGENCY_OWNER, SOLO_ADMIN = "agency@demo.test", "solo@demo.test"


@pytest.fixture
def world(session):
    demo.seed(session, calls_per_account=6)
    session.commit()
    accounts = {a.name: a for a in session.scalars(select(Account))}
    owner = session.scalar(select(User).where(User.email == AGENCY_OWNER))
    northwind, bayside = accounts["Northwind Agency"], accounts["Bayside Dental"]
    solo = accounts["Solo Plumbing"]
    current_app.config["BILLING_LINK_RATE_LIMIT"] = 1000
    request, url = link_service.request_removal(  # Accounts: Resend / Cancel request
        session, billing_links.settings(current_app), northwind, bayside, owner,
        "customer@bayside.example", "25.00", "Please set up billing.")
    notices.link_request(session, northwind, bayside, request, url)  # the outbox's row
    restorable = numbers.add(session, northwind, "+14155550199", "Spring campaign")
    restorable.status, restorable.released_at = NumberStatus.RELEASED, now() - timedelta(days=2)
    support.request(session, northwind, owner, "other", "Can the invoices show our PO number?")
    solo_admin = session.scalar(select(User).where(User.email == SOLO_ADMIN))
    statements.add_schedule(session, solo, solo_admin, "monthly",  # Printable Statements' list
                            "accounts-payable-and-bookkeeping@solo-plumbing.example")
    session.commit()
    charge = session.scalar(select(Charge).where(
        Charge.account_id == solo.id, Charge.status == ChargeStatus.SUCCEEDED).order_by(Charge.id))
    return {"northwind": northwind.id, "solo": solo.id, "charge": charge.id}


def sign_in(page: Page, email: str) -> None:
    goto(page, "/login", heading="Sign in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(demo.PASSWORD)
    click_and_wait(page, page.get_by_role("button", name="Sign in"))
    expect(page.get_by_test_id("current-account")).to_be_visible()


# What a table must be on a phone, measured in the page: the problems found (empty: fine).
# - each row a block, each cell with text labelled (data-label), except the row's first
#   cell (its title) and a cell of actions (.actions);
# - each link and button in it on screen, not cut by the table or anything else;
# - each amount (.num) whole: not wider than its cell, inside the screen.
TABLE_PROBLEMS = """(table) => {
  const vw = document.documentElement.clientWidth;
  const problems = [];
  const name = table.dataset.testid
    || table.closest("section, main")?.querySelector("h2, h1")?.textContent.trim();
  for (const tr of table.tBodies[0]?.rows || []) {
    const cells = [...tr.cells];
    if (cells.length < 2) continue;  // "No payments yet."
    if (getComputedStyle(tr).display !== "block")
      problems.push(`${name}: a row is a table row, not a block`);
    cells.forEach((td, i) => {
      if (i === 0 || td.classList.contains("actions") || !td.innerText.trim()) return;
      if (!td.dataset.label)
        problems.push(`${name}: cell "${td.innerText.trim().slice(0, 30)}" has no data-label`);
    });
  }
  for (const el of table.querySelectorAll("a, button")) {
    // The header row is folded away on a phone (each cell carries its label); a sortable
    // column's sort is offered above the table too (the Accounts list's "Sort:" line).
    if (el.closest("thead") && getComputedStyle(el.closest("thead")).display === "none") continue;
    el.scrollIntoView({block: "center", inline: "nearest"});
    const r = el.getBoundingClientRect();
    const label = el.getAttribute("aria-label") || el.textContent.trim();
    if (!r.width || !r.height) { problems.push(`${name}: "${label}" is hidden`); continue; }
    if (r.left < 0 || r.right > vw + 0.5) {
      problems.push(`${name}: "${label}" is off screen`
                    + ` (${Math.round(r.left)}-${Math.round(r.right)}px)`);
      continue;
    }
    const first = el.getClientRects()[0];  // a link that wraps: its first line
    const hit = document.elementFromPoint(first.left + first.width / 2,
                                          first.top + first.height / 2);
    if (!hit || !(el === hit || el.contains(hit)))
      problems.push(`${name}: "${label}" is covered or clipped`);
  }
  for (const td of table.querySelectorAll("td.num")) {
    const r = td.getBoundingClientRect();
    if (td.scrollWidth > td.clientWidth + 0.5 || r.left < 0 || r.right > vw + 0.5)
      problems.push(`${name}: amount "${td.textContent.trim()}" is cut`
                    + ` (${td.scrollWidth} in ${td.clientWidth}px)`);
  }
  return problems;
}"""

# Each visible filter label sits straight above its field.
FILTER_PROBLEMS = """(form) => {
  const problems = [];
  for (const label of form.querySelectorAll("label[for]")) {
    const l = label.getBoundingClientRect();
    if (l.width <= 1) continue;  // visually hidden (the field has a placeholder)
    const f = document.getElementById(label.htmlFor).getBoundingClientRect();
    if (f.top < l.bottom - 1 || f.top - l.bottom > 12 || Math.abs(f.left - l.left) > 4)
      problems.push(`${form.id}: "${label.textContent.trim()}" is not above its field`
                    + ` (label ${Math.round(l.left)},${Math.round(l.bottom)};`
                    + ` field ${Math.round(f.left)},${Math.round(f.top)})`);
  }
  return problems;
}"""


# An amount: not wider than its box, and inside the screen.
WHOLE = """(el) => { const r = el.getBoundingClientRect();
  return el.scrollWidth <= el.clientWidth + 0.5 && r.left >= 0
         && r.right <= document.documentElement.clientWidth + 0.5; }"""


def table_problems(page: Page) -> list[str]:
    found = []
    for table in page.locator("main table.list, #dialog-slot table.list").all():
        found += table.evaluate(TABLE_PROBLEMS)
    return found


def check_page(page: Page, screenshot, path: str, name: str, heading: str | re.Pattern,
               problems: list[str], rows: int = 1) -> None:
    """Open `path` on the phone; every table on it passes, nothing scrolls sideways; then the
    screenshots (desktop and phone)."""
    goto(page, path, heading=heading)
    if page.locator("[data-testid=spend-slot]").count():  # Billing Settings' spend section
        expect(page.locator("[data-testid=spend]")).to_be_visible()  # loaded after the page
    # A table folded in a disclosure (the spend numbers) is checked open.
    page.evaluate("() => document.querySelectorAll('main details').forEach("
                  "d => { if (d.querySelector('table.list')) d.open = true; })")
    tables = page.locator("main table.list")
    expect(tables.first).to_be_visible()
    assert page.locator("main table.list tbody tr").count() >= rows, f"{name}: no rows"
    problems += [f"{name}: {p}" for p in dict.fromkeys(table_problems(page))]
    for form in page.locator("main form.toolbar").all():
        problems += form.evaluate(FILTER_PROBLEMS)
    if (extra := sideways(page)) > 0:
        problems.append(f"{name}: the page scrolls sideways by {extra}px")
    page.evaluate("window.scrollTo(0, 0)")
    shots(page, screenshot, f"i14-02-{name}", problems)


@pytest.mark.browser_context_args(viewport=PHONE)
def test_every_table_reads_as_blocks_on_a_phone(page: Page, world, screenshot):
    n, s = world["northwind"], world["solo"]
    problems: list[str] = []

    sign_in(page, AGENCY_OWNER)
    agency = "Northwind Agency"
    for path, name, title in [
        (f"/accounts/{n}/sub-accounts", "accounts", "Accounts"),
        (f"/accounts/{n}/billing/", "billing-settings-agency", "Billing Settings"),
        (f"/accounts/{n}/billing/payments", "payment-history", "Account Payment History"),
        (f"/accounts/{n}/billing/logs", "billing-logs", "Billing Logs"),
        (f"/accounts/{n}/calls/", "call-history", "Call History"),
        (f"/accounts/{n}/history/", "change-history", "Change History"),
        (f"/accounts/{n}/history/versions?type=agent_status", "versions", None),
        (f"/accounts/{n}/numbers/", "numbers", "Tracking Numbers"),
        (f"/accounts/{n}/numbers/released", "released-numbers", "Released Numbers"),
        (f"/accounts/{n}/agent-statuses/", "agent-statuses", "Agent Statuses"),
        (f"/accounts/{n}/support/", "support", "Support requests"),
        (f"/accounts/{n}/plan/", "plans", "Change Plan"),
        (f"/accounts/{n}/", "account-settings", "Account Settings"),
        (f"/accounts/{n}/parent/cancel/review", "agency-cancel-review", None),
    ]:
        heading = re.compile(".") if title is None else f"{title} · {agency}"
        check_page(page, screenshot, path, name, heading, problems)
    check_page(page, screenshot, "/security/", "sign-in-security",
               f"Your sign-in security · {AGENCY_OWNER}", problems)
    check_page(page, screenshot, "/dev/outbox", "outbox", re.compile("Outbox"), problems)

    # The Accounts list with a filter chosen: the open filter panel leaves the count readable.
    goto(page, f"/accounts/{n}/sub-accounts?status=canceled")
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        panel = page.locator(".filter-panel .panel").bounding_box()
        count = page.locator("#results > p").first
        expect(count).to_contain_text("Canceled")
        p, c = panel, count.bounding_box()
        apart = (p["y"] + p["height"] <= c["y"] or c["y"] + c["height"] <= p["y"]
                 or p["x"] + p["width"] <= c["x"] or c["x"] + c["width"] <= p["x"])
        if not apart:
            problems.append(f"accounts ({size['width']}px): the filter panel covers the count")
    shots(page, screenshot, "i14-11-accounts-filter-open", problems)

    # Solo Plumbing: three cards (a declining one), a failed payment, presets and records.
    click_and_wait(page, page.get_by_role("button", name="Sign out"), url="/login",
                   heading="Sign in")
    sign_in(page, SOLO_ADMIN)
    solo = "Solo Plumbing"
    for path, name, title in [
        (f"/accounts/{s}/billing/", "billing-settings", "Billing Settings"),
        (f"/accounts/{s}/billing/payments", "payment-history-solo", "Account Payment History"),
        (f"/accounts/{s}/presets", "presets", "Presets"),
        (f"/accounts/{s}/tracking-sources", "tracking-sources", "Tracking Sources"),
        (f"/accounts/{s}/call-queues", "call-queues", "Call Queues"),
    ]:
        check_page(page, screenshot, path, name, f"{title} · {solo}", problems)

    # The printable receipt and statement these tables lead to fit the phone too, amounts whole.
    today = now().date()
    for path, name in [
        (f"/accounts/{s}/billing/payments/{world['charge']}", "receipt"),
        (f"/accounts/{s}/billing/statements/view?from={today - timedelta(days=60)}&to={today}",
         "statement"),
    ]:
        goto(page, path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        if (extra := sideways(page)) > 0:
            problems.append(f"{name}: the page scrolls sideways by {extra}px")
        for amount in page.locator("td.num, p.total strong").all():
            if not amount.evaluate(WHOLE):
                problems.append(f"{name}: amount {amount.inner_text()!r} is cut")
        shots(page, screenshot, f"i14-02-{name}", problems)

    # Printable Statements (a dialog): its schedules' Remove on screen, nothing wider than it.
    goto(page, f"/accounts/{s}/billing/", heading=f"Billing Settings · {solo}")
    click_and_swap(page, page.get_by_role("link", name="Printable Statements"))
    dialog = page.locator("dialog[open]")
    remove = dialog.get_by_role("button", name=re.compile("^Remove the monthly schedule"))
    remove.scroll_into_view_if_needed()
    box = remove.bounding_box()
    if not (box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]):
        problems.append(f"statements dialog: Remove is off screen ({box})")
    if not dialog.evaluate("d => d.scrollWidth <= d.clientWidth"):
        problems.append("statements dialog: scrolls sideways")
    if (extra := sideways(page)) > 0:
        problems.append(f"statements dialog: the page scrolls sideways by {extra}px")
    page.screenshot(path=str(ARTIFACTS / "i14-02-statements-dialog-phone.png"),
                    animations="disabled")

    # Amounts on Payment History: each whole, e.g. "$164.12", not "$164.".
    goto(page, f"/accounts/{s}/billing/payments")
    amounts = page.get_by_test_id("payments").locator("td.num")
    for cell in amounts.all():
        text = cell.inner_text()
        assert re.fullmatch(r"-?\$[\d,]+\.\d\d", text.split(":")[-1].strip()), text
    assert not problems, "\n".join(problems)


@pytest.mark.browser_context_args(viewport=PHONE)
def test_the_phone_menu_folds_behind_a_toggle(page: Page, world, screenshot):
    """The menu takes one line until opened; Enter on the toggle opens it; a link in it
    leads to its page; on a desktop the menu is always open and the toggle hidden."""
    n = world["northwind"]
    sign_in(page, AGENCY_OWNER)
    goto(page, f"/accounts/{n}/billing/", heading="Billing Settings · Northwind Agency")
    menu = page.get_by_role("navigation", name="Main")
    toggle = page.locator("details.menu > summary")
    expect(toggle).to_be_visible()
    expect(toggle).to_contain_text("Billing Settings")  # where you are, while folded
    expect(menu.get_by_role("link", name="Call History")).to_be_hidden()
    main_top = page.locator("main h1").bounding_box()["y"]
    assert main_top < 200, f"the page's heading starts {main_top:.0f}px down"
    screenshot(page, "i14-11-phone-menu-folded")

    toggle.focus()
    page.keyboard.press("Enter")
    expect(menu.get_by_role("link", name="Call History")).to_be_visible()
    screenshot(page, "i14-11-phone-menu-open")
    for link in menu.get_by_role("link").all():
        box = link.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], link
    click_and_wait(page, menu.get_by_role("link", name="Call History"),
                   url=account_url("calls/"), heading="Call History · Northwind Agency")
    expect(page.locator("details.menu")).not_to_have_attribute("open", "")  # folded again

    page.set_viewport_size(DESKTOP)
    expect(page.locator("details.menu > summary")).to_be_hidden()
    expect(menu.get_by_role("link", name="Billing Settings")).to_be_visible()
    click_and_wait(page, menu.get_by_role("link", name="Billing Settings"),
                   url=account_url("billing/"), heading="Billing Settings · Northwind Agency")
    problems: list[str] = []
    shots(page, screenshot, "i14-11-menu", problems)
    assert not problems, problems


@pytest.mark.browser_context_args(viewport=PHONE, java_script_enabled=False)
def test_the_phone_menu_opens_without_javascript(page: Page, world):
    n = world["northwind"]
    page.goto("/login")
    page.get_by_label("Email").fill(AGENCY_OWNER)
    page.get_by_label("Password").fill(demo.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(account_url())
    page.goto(f"/accounts/{n}/calls/")
    menu = page.get_by_role("navigation", name="Main")
    expect(menu.get_by_role("link", name="Presets")).to_be_hidden()
    page.locator("details.menu > summary").click()
    expect(menu.get_by_role("link", name="Presets")).to_be_visible()
    menu.get_by_role("link", name="Presets").click()
    page.wait_for_url(account_url("presets"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Presets · Northwind Agency")


def test_each_security_page_has_one_name(page: Page, world):
    """The header's link to your own sign-in security and the menu's link to the account's
    security features each carry their page's heading, and nothing is called just
    "Security" or "Account Security"."""
    n = world["northwind"]
    sign_in(page, AGENCY_OWNER)
    goto(page, f"/accounts/{n}/", heading="Account Settings · Northwind Agency")
    chrome = page.locator("header.topbar, nav.mainnav")
    for text in ("Security", "Account Security"):
        expect(chrome.get_by_role("link", name=text, exact=True)).to_have_count(0)
    click_and_wait(page, page.get_by_role("banner").get_by_role(
        "link", name="Your sign-in security", exact=True),
        url="/security/", heading=f"Your sign-in security · {AGENCY_OWNER}")
    expect(page).to_have_title("Your sign-in security · Account Portal")
    goto(page, f"/accounts/{n}/")
    click_and_wait(page, page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Account Security Features", exact=True),
        url=account_url("security/"), heading="Account Security Features · Northwind Agency")
    expect(page).to_have_title("Account Security Features · Account Portal")
    expect(page.get_by_role("link", name="Your sign-in security")).to_have_count(2)  # header, body


@pytest.mark.parametrize("width", [1280, 390], ids=["desktop", "phone"])
def test_the_card_dialog_labels_sit_on_one_line_above_aligned_fields(page: Page, world, width):
    s = world["solo"]
    page.set_viewport_size({"width": width, "height": 844})
    sign_in(page, SOLO_ADMIN)
    goto(page, f"/accounts/{s}/billing/", heading="Billing Settings · Solo Plumbing")
    click_and_swap(page, page.get_by_role("link", name="New Credit Card"))
    dialog = page.locator("dialog[open]")
    expect(dialog).to_be_visible()
    # the fields are the processor's, in its frame (issue 16): the same layout rules there
    form = dialog.frame_locator("iframe[title='Secure card entry']")
    labels = ("Name on card", "Card number", "Expiry (MM/YY)", "Security code (CVC)")
    for text in labels:
        label = form.locator("label", has_text=text)
        # the frame's stylesheet may still be on its way on a busy machine ("normal"
        # until it applies): wait for it rather than measure an unstyled label
        expect(label).to_have_css("line-height", re.compile(r"^[\d.]+px$"))
        lines = label.evaluate("l => l.getBoundingClientRect().height"
                               " / parseFloat(getComputedStyle(l).lineHeight)")
        assert lines < 1.5, f"{text}: its label wraps ({lines:.1f} lines)"
        lb, fb = label.bounding_box(), form.get_by_label(text).bounding_box()
        gap = fb["y"] - (lb["y"] + lb["height"])
        assert 0 <= gap <= 8 and abs(fb["x"] - lb["x"]) <= 2, (text, lb, fb)
    # expiry and CVC side by side share their top on a desktop; on a phone the CVC goes
    # under the expiry
    expiry, cvc = (form.get_by_label(t).bounding_box() for t in labels[2:])
    if width >= 1280:
        assert abs(cvc["y"] - expiry["y"]) < 1, (expiry, cvc)
    else:
        assert cvc["y"] >= expiry["y"] + expiry["height"], (expiry, cvc)
    # what the user sees with the modal open: the viewport
    page.screenshot(path=str(ARTIFACTS / f"i14-11-card-dialog-{width}.png"), animations="disabled")
