"""Issue 14, items 1 and 10, walked in Chromium.

Item 1: after an htmx filter, back, forward and reload always show controls that match the
rows (the filter form is drawn and swapped with its results), Export to CSV exports what the
controls show, and no history restore throws (the browser suite fails any test on a console
error: tests/browser/conftest.py).

Item 10: adding a card, making a payment, sending a statement and saving a recurring schedule
swap the sections they changed and keep the reader's place (no reload, no jump to the top),
and their success message looks like a success (its colour and mark, role="status").
"""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from playwright.sync_api import Page, expect

from portal.models import Cause, LedgerKind
from portal.services import ledger, usage
from portal.services.gateway import SandboxGateway
from tests import factories as f
from tests.browser.conftest import (
    ARTIFACTS,
    TIMEOUT_MS,
    account_url,
    click_and_swap,
    goto,
    htmx_swap,
    navigation,
    open_menu,
    shots,
)
from tests.web.billing_world import processor_card

pytestmark = pytest.mark.browser

ACTIVE = ["Bayside Dental", "Harbor Law", "Northside Plumbing"]
CANCELED = ["Closed Clinic", "Old Harbor Cafe"]
EXP_YEAR = str(datetime.now(UTC).year + 3)


# ----------------------------------------------------------------------------- item 1

@pytest.fixture
def agency_owner(session):
    owner = f.user(session, email="owner@example.test")
    agency = f.agency(session, "Northwind Agency", owner=owner)
    for name in ACTIVE:
        f.sub(session, agency, name)
    for name in CANCELED:
        f.sub(session, agency, name, canceled_at=datetime.now(UTC) - timedelta(days=20))
    session.commit()
    return SimpleNamespace(email="owner@example.test", id=agency.id)


def expect_accounts(page: Page, status: str, label: str, q: str, rows: list[str]) -> None:
    """The controls (Show, the search box) and the rows and count drawn from them agree."""
    results = page.locator("#results")
    expect(results.locator("table tbody tr td:first-child")).to_have_text(rows)
    expect(page.get_by_label("Show")).to_have_value(status)
    expect(page.get_by_label("Show").locator("option:checked")).to_have_text(label)
    expect(page.get_by_label("Search by name")).to_have_value(q)
    count = f"{label}{f' matching “{q}”' if q else ''}: 1–{len(rows)} of {len(rows)}"
    expect(results).to_contain_text(count)


def history_step(page: Page, step: str, url: re.Pattern[str], heading: str) -> None:
    """back / forward / reload, and wait for the page htmx (or the server) restored."""
    with navigation(page, url=url, heading=heading):
        {"back": page.go_back, "forward": page.go_forward, "reload": page.reload}[step]()


def test_accounts_back_forward_and_reload_keep_the_filter_with_its_rows(
        page: Page, agency_owner, sign_in, screenshot):
    sign_in(agency_owner.email)
    open_menu(page, "Accounts", "Northwind Agency")
    heading = "Accounts · Northwind Agency"
    expect_accounts(page, "active", "Active sub-accounts", "", ACTIVE)

    page.get_by_text("Filter", exact=True).click()
    with htmx_swap(page):
        page.get_by_label("Show").select_option(label="Canceled sub-accounts")
    expect_accounts(page, "canceled", "Canceled sub-accounts", "", CANCELED)
    # the Filter panel the reader opened stays open across the swap
    expect(page.locator("#account-filter-panel")).to_have_attribute("open", "")
    with htmx_swap(page):
        page.get_by_label("Search by name").fill("harbor")
    expect_accounts(page, "canceled", "Canceled sub-accounts", "harbor", ["Old Harbor Cafe"])
    expect(page).to_have_url(re.compile(r"status=canceled&q=harbor$"))

    canceled = re.compile(r"/sub-accounts\?status=canceled&q=$")
    searched = re.compile(r"/sub-accounts\?status=canceled&q=harbor$")
    first = re.compile(r"/sub-accounts$")
    history_step(page, "back", canceled, heading)
    expect_accounts(page, "canceled", "Canceled sub-accounts", "", CANCELED)
    history_step(page, "back", first, heading)
    expect_accounts(page, "active", "Active sub-accounts", "", ACTIVE)
    history_step(page, "forward", canceled, heading)
    expect_accounts(page, "canceled", "Canceled sub-accounts", "", CANCELED)
    shots(page, screenshot, "i14-01-accounts-forward", problems := [])
    history_step(page, "forward", searched, heading)
    expect_accounts(page, "canceled", "Canceled sub-accounts", "harbor", ["Old Harbor Cafe"])
    history_step(page, "reload", searched, heading)
    expect_accounts(page, "canceled", "Canceled sub-accounts", "harbor", ["Old Harbor Cafe"])
    history_step(page, "back", canceled, heading)
    expect_accounts(page, "canceled", "Canceled sub-accounts", "", CANCELED)
    shots(page, screenshot, "i14-01-accounts-back-after-reload", problems)
    assert problems == []


def test_typing_while_the_search_is_on_its_way_is_kept(page: Page, agency_owner, sign_in):
    """The search box is swapped with the rows it searched for; what the reader typed while
    that search was on its way stays in the box, and is searched for in turn."""
    sign_in(agency_owner.email)
    open_menu(page, "Accounts", "Northwind Agency")
    search = page.get_by_label("Search by name")
    held = []
    page.route(re.compile(r"/sub-accounts\?status=active&q=a$"), lambda route: held.append(route))
    with page.expect_request(re.compile(r"q=a$")):
        search.fill("a")
    search.press("y")  # typed while the search for "a" is held
    with htmx_swap(page):
        held[0].continue_()
    expect(search).to_have_value("ay")
    expect(search).to_be_focused()
    expect_accounts(page, "active", "Active sub-accounts", "ay", ["Bayside Dental"])
    expect(page).to_have_url(re.compile(r"q=ay$"))


@pytest.fixture
def with_logs(session):
    """Harbor Dental: an opening credit, 6 minutes postings, 3 transcription postings."""
    user = f.user(session, email="dana@example.test", name="Dana Reyes")
    account = f.standalone(session, "Harbor Dental", admin=user)
    ledger.post(session, account, LedgerKind.ADJUSTMENT, 100_00, "Opening credit",
                "adjustment:opening", Cause.USER)
    for i in range(6):
        usage.post(session, account, {"minutes": 10}, key=f"minutes-{i}")
    for i in range(3):
        usage.post(session, account, {"transcriptions": 20}, key=f"transcriptions-{i}")
    session.commit()
    return SimpleNamespace(email="dana@example.test", id=account.id)


def expect_logs(page: Page, q: str, kind: str, descriptions: list[str]) -> None:
    expect(page.get_by_role("searchbox", name="Search")).to_have_value(q)
    expect(page.get_by_label("Kind")).to_have_value(kind)
    rows = page.get_by_test_id("billing-logs").locator("tbody tr")
    expect(rows.locator("td:nth-child(3)")).to_have_text(descriptions)
    export = page.get_by_role("link", name="Export to CSV")
    expect(export).to_have_attribute("href", re.compile(rf"\?q={q}&kind={kind}&"))


def export_descriptions(page: Page) -> list[str]:
    with page.expect_download() as download:
        page.get_by_role("link", name="Export to CSV").click()
    text = open(download.value.path(), encoding="utf-8").read()
    return [row["description"] for row in csv.DictReader(io.StringIO(text))]


def test_billing_logs_back_forward_and_reload_keep_the_search_and_the_export(
        page: Page, with_logs, sign_in, screenshot):
    sign_in(with_logs.email)
    heading = "Billing Logs · Harbor Dental"
    goto(page, f"/accounts/{with_logs.id}/billing/logs", heading=heading)
    minutes, transcriptions = ["Usage: 10 minutes"] * 6, ["Usage: 20 transcription minutes"] * 3
    everything = transcriptions + minutes + ["Opening credit"]
    expect_logs(page, "", "", everything)

    with htmx_swap(page):
        page.get_by_label("Kind").select_option(label="Usage")
    expect_logs(page, "", "usage", transcriptions + minutes)
    with htmx_swap(page):
        page.get_by_role("searchbox", name="Search").fill("transcription")
    expect_logs(page, "transcription", "usage", transcriptions)

    usage_only = re.compile(r"/billing/logs\?q=&kind=usage&from=&to=$")
    searched = re.compile(r"/billing/logs\?q=transcription&kind=usage&from=&to=$")
    history_step(page, "back", usage_only, heading)
    expect_logs(page, "", "usage", transcriptions + minutes)
    # Export to CSV exports what the controls show (the issue: it exported the hidden search)
    assert export_descriptions(page) == list(reversed(transcriptions + minutes))
    history_step(page, "back", re.compile(r"/billing/logs$"), heading)
    expect_logs(page, "", "", everything)
    history_step(page, "forward", usage_only, heading)
    expect_logs(page, "", "usage", transcriptions + minutes)
    history_step(page, "forward", searched, heading)
    expect_logs(page, "transcription", "usage", transcriptions)
    shots(page, screenshot, "i14-01-billing-logs-forward", problems := [])
    history_step(page, "reload", searched, heading)
    expect_logs(page, "transcription", "usage", transcriptions)
    assert export_descriptions(page) == transcriptions

    # A control changed but not applied yet (a date needs Apply): the export follows the
    # controls as shown, not the filter the rows were drawn from.
    page.get_by_label("Kind").evaluate("k => { k.value = 'adjustment'; }")  # no change event
    assert export_descriptions(page) == []  # no transcription adjustment
    assert problems == []


def test_call_history_back_and_forward_keep_the_dates_with_their_calls(page: Page, session,
                                                                        sign_in):
    user = f.user(session, email="cal@example.test")
    account = f.standalone(session, "Cedar Dental", admin=user)
    f.calls(session, account, 5, start=datetime(2026, 3, 1, 9, tzinfo=UTC),
            step=timedelta(days=1))  # 1–5 March 2026, 09:00 UTC
    session.commit()
    sign_in("cal@example.test")
    open_menu(page, "Call History", "Cedar Dental")
    heading = "Call History · Cedar Dental"
    started = page.locator("#results tbody tr td:first-child")

    def expect_calls(start: str, end: str, days: list[int]) -> None:
        expect(page.get_by_label("From")).to_have_value(start)
        expect(page.get_by_label("To")).to_have_value(end)
        expect(started).to_have_text([f"2026-03-0{d} 09:00" for d in days])
        expect(page.get_by_role("link", name="Export CSV")).to_have_attribute(
            "href", re.compile(rf"\?from={start}&to={end}$"))

    page.get_by_label("From").fill("2026-03-02")
    page.get_by_label("To").fill("2026-03-03")
    click_and_swap(page, page.get_by_role("button", name="Filter"))
    expect_calls("2026-03-02", "2026-03-03", [3, 2])
    page.get_by_label("To").fill("2026-03-04")
    click_and_swap(page, page.get_by_role("button", name="Filter"))
    expect_calls("2026-03-02", "2026-03-04", [4, 3, 2])
    history_step(page, "back", re.compile(r"from=2026-03-02&to=2026-03-03$"), heading)
    expect_calls("2026-03-02", "2026-03-03", [3, 2])
    history_step(page, "back", account_url("calls/"), heading)
    expect_calls("", "", [5, 4, 3, 2, 1])
    history_step(page, "forward", re.compile(r"from=2026-03-02&to=2026-03-03$"), heading)
    expect_calls("2026-03-02", "2026-03-03", [3, 2])
    history_step(page, "reload", re.compile(r"from=2026-03-02&to=2026-03-03$"), heading)
    expect_calls("2026-03-02", "2026-03-03", [3, 2])


def test_payment_history_pages_back_and_forward(page: Page, session, sign_in):
    """Payment History's pager pushes its URL too: back and forward show the page named."""
    user = f.user(session, email="pat@example.test")
    account = f.standalone(session, "Pine Dental", admin=user)
    method = f.card(session, account)
    from portal.services import charges
    for i in range(30):
        charge = charges.pay(session, account, user, str(method.id), f"{25 + i}.00",
                             charges.new_form_key())
        charges.attempt(session, SandboxGateway(), charge)
    session.commit()
    sign_in("pat@example.test")
    heading = "Account Payment History · Pine Dental"
    goto(page, f"/accounts/{account.id}/billing/payments", heading=heading)
    results = page.locator("#results")
    per_page = page.get_by_test_id("payments").locator("tbody tr").count()
    expect(results).to_contain_text(f"Payments 1–{per_page} of 30")
    click_and_swap(page, page.get_by_role("link", name="Next →"))
    expect(results).to_contain_text(f"Payments {per_page + 1}–")
    history_step(page, "back", account_url("billing/payments"), heading)
    expect(results).to_contain_text(f"Payments 1–{per_page} of 30")
    expect(page.get_by_text("Page 1 of", exact=False)).to_be_visible()
    history_step(page, "forward", re.compile(r"/billing/payments\?page=2$"), heading)
    expect(results).to_contain_text(f"Payments {per_page + 1}–")
    expect(page.get_by_text("Page 2 of", exact=False)).to_be_visible()


# ----------------------------------------------------------------------------- item 10

@pytest.fixture
def customer(session):
    """Harbor Dental with a Visa (Primary) and a balance of $0.00; Dana is its admin."""
    user = f.user(session, email="dana@example.test", name="Dana Reyes")
    account = f.standalone(session, "Harbor Dental", admin=user)
    processor_card(session, account, "4242424242424242", "Dana Reyes", exp_month=12,
                   exp_year=int(EXP_YEAR))  # as New Credit Card saves it (committed)
    return SimpleNamespace(email="dana@example.test", id=account.id)


def section(page: Page, name: str):
    return page.get_by_role("region", name=name)


def scroll_to(page: Page, locator, at_least: int = 150) -> int:
    """Scroll so the section's top is near the top of the screen, as a reader does; the
    page's scroll position then."""
    locator.evaluate("el => window.scrollTo(0, el.getBoundingClientRect().top + "
                     "window.scrollY - 80)")
    y = page.evaluate("window.scrollY")
    assert y >= at_least, f"the page should scroll this far down (scrollY {y})"
    page.evaluate("window.notReloaded = true")
    return y


def expect_place_kept(page: Page, before: int) -> None:
    """No reload, and the reader was not thrown back to the top."""
    assert page.evaluate("window.notReloaded") is True, "the page was reloaded"
    after = page.evaluate("window.scrollY")
    assert after > 0, "the page jumped to the top"
    assert abs(after - before) < 150, f"the page moved from {before} to {after}px"


def viewport_shot(page: Page, name: str) -> None:
    """What the reader sees where they are: test-artifacts/<name>.png, the viewport."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), animations="disabled")


def rgb(color: str) -> tuple[float, float, float]:
    """A computed CSS colour (rgb(...), or color(srgb ...) from color-mix) as 0..1 floats."""
    if color.startswith("color(srgb"):
        return tuple(float(v) for v in color[len("color(srgb "):-1].split()[:3])
    return tuple(int(v) / 255 for v in re.findall(r"[\d.]+", color)[:3])


def contrast(a: tuple, b: tuple) -> float:
    def luminance(c):
        r, g, b = (v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in c)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def expect_success(page: Page, message, text: str | re.Pattern[str]) -> None:
    """The message says `text` as a status, with the success colour and mark, unlike an
    informational note, its text readable (contrast 4.5:1 at least)."""
    expect(message).to_have_text(text)
    expect(message).to_have_attribute("role", "status")
    style = message.evaluate("""m => {
      const s = getComputedStyle(m), mark = getComputedStyle(m, '::before');
      const root = getComputedStyle(document.documentElement);
      return {edge: s.borderLeftColor, color: s.color, background: s.backgroundColor,
              mark: mark.content, markColor: mark.color,
              ok: root.getPropertyValue('--ok').trim(),
              accent: root.getPropertyValue('--accent').trim()};
    }""")
    ok = tuple(int(style["ok"][i:i + 2], 16) / 255 for i in (1, 3, 5))
    assert rgb(style["edge"]) == pytest.approx(ok, abs=0.01), style
    assert "✓" in style["mark"], style
    assert rgb(style["markColor"]) == pytest.approx(ok, abs=0.01), style
    assert style["edge"] != style["accent"]
    assert contrast(rgb(style["color"]), rgb(style["background"])) >= 4.5, style
    assert contrast(rgb(style["markColor"]), rgb(style["background"])) >= 3, style


def test_a_card_a_payment_a_statement_and_a_schedule_keep_the_readers_place(
        page: Page, customer, sign_in, screenshot):
    sign_in(customer.email)
    open_menu(page, "Billing Settings", "Harbor Dental")
    page.set_viewport_size({"width": 1280, "height": 600})

    # Add a card: the Payment Methods section and Make a Payment's choices, in place.
    methods = section(page, "Payment Methods")
    before = scroll_to(page, methods, at_least=100)
    click_and_swap(page, methods.get_by_role("link", name="New Credit Card"))
    dialog = page.get_by_role("dialog", name="New Credit Card")
    from tests.browser.test_billing import fill_card  # the processor's frame (issue 16)

    fill_card(dialog, "Lee Roe", "5555555555554444", month="3", year=EXP_YEAR)
    click_and_swap(page, dialog.get_by_role("button", name="Save"))
    expect(dialog).to_have_count(0)
    expect_place_kept(page, before)
    expect(methods.get_by_test_id("payment-methods").locator("tbody tr td:first-child")
           ).to_have_text(["Visa ending 4242", "Mastercard ending 4444"])
    expect_success(page, methods.get_by_role("status"), re.compile(
        r"^Mastercard ending 4444, expires 03/\d{4} was added: use the pencil"))
    expect(section(page, "Make a Payment").get_by_label("Pay with").locator("option")
           ).to_have_text(["Visa ending 4242 (Primary)", "Mastercard ending 4444"])
    viewport_shot(page, "i14-10-card-added")

    # Make a payment: the form again (empty), the balance and the payment history, in place.
    payment = section(page, "Make a Payment")
    before = scroll_to(page, payment)
    payment.get_by_label("Amount ($)").fill("40")
    click_and_swap(page, payment.get_by_role("button", name="Make a Payment"))
    expect_place_kept(page, before)
    expect_success(page, payment.get_by_role("status"), re.compile(
        r"^Thank you: \$40\.00 was charged to Visa ending 4242\. Receipt R-\d{8} is in the "
        r"payment history\.$"))
    expect(payment.get_by_label("Amount ($)")).to_have_value("")
    expect(page.get_by_test_id("balance")).to_have_text("$40.00")
    history = section(page, "Account Payment History")
    expect(history.get_by_test_id("payments").locator("tbody tr td:nth-child(4)")
           ).to_have_text(["$40.00"])
    viewport_shot(page, "i14-10-payment")

    # Send a statement, then save a recurring schedule: the dialog answers, the page stays.
    before = scroll_to(page, history)
    click_and_swap(page, history.get_by_role("link", name="Printable Statements"))
    statements = page.get_by_role("dialog", name="Printable Statements")
    # Sending renders the PDF (WeasyPrint, imported with the first one): seconds under load,
    # past the suite's 5 s. Only this wait is longer.
    page.set_default_timeout(30_000)
    click_and_swap(page, statements.get_by_role("button", name="Send Statement"))
    page.set_default_timeout(TIMEOUT_MS)
    expect_success(page, statements.get_by_role("status"), re.compile(
        r"^The statement for .* was sent to dana@example\.test\.$"))
    expect_place_kept(page, before)
    click_and_swap(page, statements.get_by_role("button", name="Save recurring schedule"))
    expect_success(page, statements.get_by_role("status"),
                   "Saved: the monthly statement will be emailed to dana@example.test.")
    expect(statements.get_by_test_id("schedules")).to_contain_text(
        "Monthly to dana@example.test")
    viewport_shot(page, "i14-10-schedule")
    statements.get_by_role("link", name="Close").click()
    expect(statements).to_have_count(0)
    expect_place_kept(page, before)
    shots(page, screenshot, "i14-10-billing-settings-after", problems := [])
    assert problems == []


def test_without_javascript_each_action_is_a_post_and_a_redirect(browser, base_url, customer):
    """The same actions with JavaScript off: a full POST, a 303 to Billing Settings, the
    message a success there."""
    context = browser.new_context(java_script_enabled=False, base_url=base_url)
    page = context.new_page()
    try:
        page.goto("/login")
        page.get_by_label("Email").fill(customer.email)
        page.get_by_label("Password").fill(f.PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(account_url(""))
        page.goto(f"/accounts/{customer.id}/billing/")
        payment = section(page, "Make a Payment")
        payment.get_by_label("Amount ($)").fill("25")
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            payment.get_by_role("button", name="Make a Payment").click()
        assert posted.value.status == 303
        page.wait_for_url(account_url("billing/"))
        message = page.locator(".flash-success")
        expect(message).to_have_text(re.compile(r"^Thank you: \$25\.00 was charged"))
        expect(page.get_by_test_id("balance")).to_have_text("$25.00")
    finally:
        context.close()


def test_enter_in_the_amount_pays_once_and_leaves_the_field_empty(page: Page, customer,
                                                                   sign_in):
    """The field the reader pressed Enter in is drawn again empty after the payment: only a
    filter's search box keeps what was typed across a swap, a payment is never sent again."""
    sign_in(customer.email)
    open_menu(page, "Billing Settings", "Harbor Dental")
    payment = section(page, "Make a Payment")
    amount = payment.get_by_label("Amount ($)")
    amount.fill("25")
    with htmx_swap(page):
        amount.press("Enter")
    expect_success(page, payment.get_by_role("status"), re.compile(r"^Thank you: \$25\.00 "))
    expect(amount).to_have_value("")
    expect(page.get_by_test_id("balance")).to_have_text("$25.00")
    expect(section(page, "Account Payment History").get_by_test_id("payments")
           .locator("tbody tr")).to_have_count(1)
