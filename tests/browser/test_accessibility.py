"""Accessibility (issue 14, item 12), checked by a tool nobody here wrote: axe-core (4.12, as
bundled by axe-playwright-python) on every page a signed-out visitor, an agency owner, a
sub-account's admin and a standalone account's admin can open, and on every dialog those
pages open, in light and dark mode, at 1280 and 390 px. Any violation of any impact fails,
named by its page state (role, theme, width, page, dialog), rule, impact and elements. The
rules: axe's defaults (WCAG 2.0-2.2 A and AA, best practices) and its experimental ones
(label-content-name-mismatch, p-as-heading, ...); not the AAA ones (7:1 contrast).
One test per role and theme (its id names those; its message, each page state and rule).

Then the keyboard: every dialog the pages open is reached with Tab, opened with Enter, keeps
Tab and Shift+Tab inside itself, closes with Escape and gives focus back to its opener.

Dark mode is each user's setting (the header's "Dark mode" button; the page's data-theme),
which the test switches on for the dark runs; the browser's prefers-color-scheme is emulated
to match (the signed-out pages have no setting of their own: they are light either way).

axe-core is injected with page.evaluate, which the page's Content-Security-Policy does not
govern (the DevTools protocol runs it), so the policy stays as strict as served.

On the demo data (`make run`), with one billing-link request pending (Bayside Dental), a
two-factor user, and a new owner who has a set-password link. Each role signs in once; the
pages are visited in one browser page. Dialogs are found on each page (every link or button
that loads one into #dialog-slot), so a dialog added later is checked without a change here.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from flask import current_app
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

import billing_links
import portal.models  # noqa: F401  (first: billing_links.models needs portal.models loaded)
from billing_links import service as link_service
from portal import sealing
from portal.cli import demo
from portal.mail import notices
from portal.models import (
    Account,
    Charge,
    ChargeStatus,
    NumberStatus,
    OutboxMessage,
    PaymentMethod,
    TrackingNumber,
    User,
)
from portal.services import auth
from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    axe,
    click_and_swap,
    click_and_wait,
    goto,
    htmx_settled,
    shots,
)

pytestmark = pytest.mark.browser

AGENCY_OWNER, SUB_ADMIN, SOLO_ADMIN = "agency@demo.test", "cedar@demo.test", "solo@demo.test"
TWO_FACTOR_USER = "sub@demo.test"
WIDTHS = (("1280px", DESKTOP), ("390px", PHONE))
# What opens a dialog: a link or button that loads it into #dialog-slot.
OPENERS = "a[hx-get][hx-target='#dialog-slot'], button[hx-get][hx-target='#dialog-slot']"


# ----------------------------------------------------------------------------- the data

@pytest.fixture
def world(session):
    demo.seed(session, calls_per_account=3)
    session.commit()
    accounts = {a.name: a for a in session.scalars(select(Account))}
    users = {u.email: u for u in session.scalars(select(User))}
    northwind, bayside = accounts["Northwind Agency"], accounts["Bayside Dental"]
    current_app.config["BILLING_LINK_RATE_LIMIT"] = 1000
    request, url = link_service.request_removal(
        session, billing_links.settings(current_app), northwind, bayside,
        users[AGENCY_OWNER], "customer@bayside.example", "25.00", "Please set up billing.")
    notices.link_request(session, northwind, bayside, request, url)
    # The sub-account's user signs in with an authenticator code: the second step's page.
    secret = pyotp.random_base32()
    users[TWO_FACTOR_USER].totp_secret = sealing.seal(secret)
    users[TWO_FACTOR_USER].totp_enabled_at = datetime.now(UTC) - timedelta(days=1)
    # A new owner without a password yet, and the link to set one.
    newcomer = auth.user_for_email(session, "newcomer@demo.test")
    session.commit()
    token = auth.password_link_token(current_app.config["SECRET_KEY"], newcomer)

    def charge(account: Account, status: ChargeStatus) -> int:
        return session.scalar(select(Charge.id).where(
            Charge.account_id == account.id, Charge.status == status).order_by(Charge.id))

    def method(account: Account) -> int:
        return session.scalar(select(PaymentMethod.id).where(
            PaymentMethod.account_id == account.id).order_by(PaymentMethod.id))

    solo, cedar = accounts["Solo Plumbing"], accounts["Cedar Law Group"]
    # Two of the standalone account's numbers released two days ago: Restore and Restore all.
    for number in session.scalars(select(TrackingNumber).where(
            TrackingNumber.account_id == solo.id).order_by(TrackingNumber.id).limit(2)):
        number.status = NumberStatus.RELEASED
        number.released_at = datetime.now(UTC) - timedelta(days=2)
    session.commit()
    message = session.scalar(select(OutboxMessage.id).where(
        OutboxMessage.kind == "billing_link"))
    caller = session.scalar(select(portal.models.Call.caller_number).where(
        portal.models.Call.account_id == solo.id))
    return {
        "n": northwind.id, "bayside": bayside.id, "cedar": cedar.id, "solo": solo.id,
        "oak": accounts["Oak Street Bakery"].id, "harbor": accounts["Harbor Fitness"].id,
        "n_charge": charge(northwind, ChargeStatus.SUCCEEDED),
        "solo_charge": charge(solo, ChargeStatus.SUCCEEDED),
        "solo_failed": charge(solo, ChargeStatus.FAILED),
        "n_method": method(northwind), "solo_method": method(solo),
        "cedar_method": method(cedar),
        "link": "/billing-link/" + url.rsplit("/", 1)[1], "message": message,
        "secret": secret, "password_link": f"/set-password/{token}", "caller": caller,
    }


# ----------------------------------------------------------------------------- the pages

@dataclass
class State:
    """A page to open (its path; None: stay on the page in front), a name for the report,
    and optionally what to do on it before checking (open the switcher, send a form, ...)."""
    name: str
    path: str | None
    then: Callable[[Page], None] | None = None
    dialogs: bool = True  # open every dialog it offers
    status: int | None = None  # an error page's status
    shot: str | None = None  # screenshots: test-artifacts/i14-12-<shot>-<theme>-desktop.png
    only: str | None = None  # what `then` opened (a selector), checked alone: the rest of the
    # page is the state before


def open_switcher(page: Page) -> None:
    click_and_swap(page, page.get_by_test_id("current-account"))
    expect(page.locator(".switcher-panel")).to_be_visible()


def open_filter(page: Page) -> None:
    page.locator("details.filter-panel > summary").first.click()
    expect(page.locator("details.filter-panel[open] .panel").first).to_be_visible()


def new_card_with_errors(page: Page) -> None:
    """New Credit Card, saved empty: refused in the processor's frame (issue 16: nothing is
    posted), each of its fields marked with its error."""
    dialog = open_dialog(page, page.get_by_role("link", name="New Credit Card"))
    card = dialog.frame_locator("iframe[title='Secure card entry']")
    # The processor's frame loads after the dialog: Save only once its fields are there (a
    # Save before that, on a busy machine, was checked by nothing and marked nothing).
    expect(card.get_by_label("Card number")).to_be_visible()
    dialog.get_by_role("button", name="Save").click()
    expect(card.locator("[aria-invalid=true]").first).to_be_visible()


def send_empty_support_request(page: Page) -> None:
    """A request sent with nothing chosen: the form again with its errors."""
    click_and_wait(page, page.get_by_role("button", name="Send request"), url=re.compile(".*"))
    expect(page.locator("[aria-invalid=true]").first).to_be_visible()


def send_support_request(page: Page) -> None:
    """A request sent: the page again with its success message."""
    page.get_by_label("What is it about?").select_option("other")
    page.get_by_label("Message").fill("Please call me about my numbers.")
    click_and_wait(page, page.get_by_role("button", name="Send request"), url=re.compile(".*"))
    expect(page.locator(".flash").first).to_be_visible()


def wrong_password(page: Page) -> None:
    page.get_by_label("Email").fill(AGENCY_OWNER)
    page.get_by_label("Password").fill("not-the-password")
    click_and_swap(page, page.get_by_role("button", name="Sign in"))
    expect(page.locator(".form-error, [role=alert]").first).to_be_visible()


def pay_nothing(page: Page) -> None:
    """The billing link's form sent empty: the processor's frame marks its empty fields (the
    form is not posted without a card), each with its error."""
    page.get_by_label("Payment amount ($)").fill("")
    page.get_by_role("button", name="Pay and set up billing").click()
    card = page.frame_locator("iframe[title='Secure card entry']")
    expect(card.locator("[aria-invalid=true]").first).to_be_visible()


def pay(page: Page) -> None:
    """The billing link paid with the sandbox's test card: the thank-you page."""
    card = page.frame_locator("iframe[title='Secure card entry']")  # the processor's frame
    card.get_by_label("Name on card").fill("Bea Bayside")
    card.get_by_label("Card number").fill("4242424242424242")
    card.get_by_label("Expiry (MM/YY)").fill(f"08/{(datetime.now(UTC).year + 2) % 100:02d}")
    card.get_by_label("Security code (CVC)").fill("123")
    click_and_wait(page, page.get_by_role("button", name="Pay and set up billing"),
                   url=re.compile(r"/billing-link/"))


def open_receipt(page: Page) -> None:
    """The thank-you page's receipt link."""
    href = page.get_by_test_id("receipt-link").first.get_attribute("href")
    goto(page, href)
    expect(page.get_by_role("heading", level=1)).to_have_text("Receipt")


def open_phone_menu(page: Page) -> None:
    """On a phone the main menu folds behind "Menu": opened (it stays open at 1280 px, where
    it always shows)."""
    page.set_viewport_size(PHONE)
    page.get_by_role("navigation", name="Main").locator("summary").click()
    expect(page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Billing Settings")).to_be_visible()
    page.set_viewport_size(DESKTOP)


def save_recharge_that_charges(page: Page) -> None:
    """Auto recharge saved with a threshold above the balance: the dialog that asks before
    charging."""
    page.get_by_label("When the balance falls below ($)").fill("9000")
    page.get_by_label("Recharge the balance up to ($)").fill("9500")
    click_and_swap(page, page.get_by_role("button", name="Save recharge settings"))
    expect(page.locator("#dialog-slot dialog[open]")).to_be_visible()


def make_declining_card_primary(page: Page) -> None:
    """The pencil on the card that declined, Primary, Save: the warning dialog."""
    dialog = open_dialog(page, page.get_by_role("link", name="Edit Visa ending 0341"))
    dialog.get_by_role("radio", name=re.compile(r"^Primary\b")).check()
    click_and_swap(page, dialog.get_by_role("button", name="Save"))
    expect(page.get_by_role("dialog", name="Make Visa ending 0341 Primary?")).to_be_visible()


def agency_pages(w) -> list[State]:
    n, b, c, oak = w["n"], w["bayside"], w["cedar"], w["oak"]
    today = datetime.now(UTC).date()
    start = today - timedelta(days=30)
    base = f"/accounts/{n}"
    return [
        State("Account Settings", f"{base}/"),
        State("Account Settings, the switcher open", f"{base}/", open_switcher, dialogs=False,
              only=".switcher"),
        State("Account Settings, the phone menu open", f"{base}/", open_phone_menu,
              dialogs=False, shot="phone-menu", only="nav.mainnav"),
        State("Accounts", f"{base}/sub-accounts", shot="accounts"),
        State("Accounts, the filter open", f"{base}/sub-accounts", open_filter, dialogs=False,
              only="details.filter-panel"),
        State("Accounts, canceled", f"{base}/sub-accounts?status=canceled"),
        State("Billing of a sub-account (request pending)", f"{base}/sub-accounts/{b}/billing"),
        State("Billing of a customer-billed sub-account", f"{base}/sub-accounts/{c}/billing"),
        State("Sub-account: Account Settings", f"/accounts/{b}/"),
        State("Sub-account: Account Settings, paused", f"/accounts/{w['harbor']}/"),
        State("Sub-account: Account Settings, canceled", f"/accounts/{oak}/"),
        State("Sub-account: Close (page)", f"/accounts/{b}/close"),
        State("Sub-account: Transfer", f"/accounts/{c}/transfer"),
        State("Sub-account: Billing Settings (agency-billed)", f"/accounts/{b}/billing/"),
        State("Sub-account: released numbers", f"/accounts/{oak}/numbers/released"),
        State("Parent Settings", f"{base}/parent"),
        State("Cancel Agency (page)", f"{base}/parent/cancel"),
        State("Cancel Agency: review", f"{base}/parent/cancel/review"),
        State("Billing Settings", f"{base}/billing/", shot="billing-settings"),
        State("Billing Settings: New Credit Card saved empty", f"{base}/billing/",
              new_card_with_errors, dialogs=False, shot="new-card-errors"),
        State("Payment Methods: new card (page)", f"{base}/billing/payment-methods/new-card"),
        State("Payment History", f"{base}/billing/payments"),
        State("Receipt", f"{base}/billing/payments/{w['n_charge']}"),
        State("Billing Logs", f"{base}/billing/logs"),
        State("Where the money goes (90 days)", f"{base}/billing/spend?days=90"),  # issue 17
        State("Statements (page)", f"{base}/billing/statements"),
        State("Statement", f"{base}/billing/statements/view?from={start}&to={today}"),
        State("Tracking Numbers", f"{base}/numbers/"),
        State("Call History", f"{base}/calls/"),
        State("Agent Statuses", f"{base}/agent-statuses/"),
        State("Change History", f"{base}/history/"),
        State("Versions", f"{base}/history/versions?type=account"),
        State("GDPR Tools", f"{base}/privacy/"),
        State("Developers", f"{base}/developers/"),  # issue 18: API keys (the demo's key)
        State("Account Security", f"{base}/security/"),
        State("Support", f"{base}/support/"),
        State("Support: a request with errors", f"{base}/support/", send_empty_support_request,
              dialogs=False),
        State("Support: a request sent", f"{base}/support/", send_support_request,
              dialogs=False, shot="support-sent"),
        State("Plans", f"{base}/plan/"),
        State("Security", "/security/"),
        State("Security: two-factor", "/security/two-factor"),
        State("Security: confirm password", "/security/confirm-password"),
        State("Dev outbox", "/dev/outbox"),
        State("Dev outbox: a message", f"/dev/outbox/{w['message']}"),
        State("Error: another account's page", f"/accounts/{w['solo']}/", status=404),
    ]


def sub_admin_pages(w) -> list[State]:
    base = f"/accounts/{w['cedar']}"
    return [
        State("Account Settings", f"{base}/"),
        State("Billing Settings", f"{base}/billing/"),
        State("Payment Methods: edit (page)",
              f"{base}/billing/payment-methods/{w['cedar_method']}/edit"),
        State("Payment History", f"{base}/billing/payments"),
        State("Billing Logs", f"{base}/billing/logs"),
        State("Where the money goes", f"{base}/billing/spend"),  # issue 17
        State("Tracking Numbers", f"{base}/numbers/"),
        State("Call History", f"{base}/calls/"),
        State("Change History", f"{base}/history/"),
        State("Agent Statuses", f"{base}/agent-statuses/"),
        State("Account Security", f"{base}/security/"),
        State("Support", f"{base}/support/"),
        State("Plans", f"{base}/plan/"),
        State("Error: the agency's page", f"/accounts/{w['n']}/billing/", status=404),
    ]


def solo_pages(w) -> list[State]:
    s = w["solo"]
    base = f"/accounts/{s}"
    return [
        State("Account Settings", f"{base}/"),
        State("Close account (page)", f"{base}/close"),
        State("Billing Settings", f"{base}/billing/"),
        State("Billing Settings: a recharge save that charges now", f"{base}/billing/",
              save_recharge_that_charges, dialogs=False, shot="recharge-confirm"),
        State("Billing Settings: a declining card made Primary", f"{base}/billing/",
              make_declining_card_primary, dialogs=False),
        State("Payment Methods: remove (page)",
              f"{base}/billing/payment-methods/{w['solo_method']}/remove"),
        State("Payment History", f"{base}/billing/payments"),
        State("Receipt", f"{base}/billing/payments/{w['solo_charge']}"),
        State("Receipt of a declined payment", f"{base}/billing/payments/{w['solo_failed']}"),
        State("Billing Logs", f"{base}/billing/logs"),
        State("Where the money goes", f"{base}/billing/spend"),  # issue 17
        State("Tracking Numbers", f"{base}/numbers/"),
        State("Released numbers", f"{base}/numbers/released"),
        State("Call History", f"{base}/calls/"),
        State("Tracking Sources", f"{base}/tracking-sources"),
        State("Tracking Sources: new", f"{base}/tracking-sources/new"),
        State("Call Queues", f"{base}/call-queues"),
        State("Call Queues: new", f"{base}/call-queues/new"),
        State("Presets", f"{base}/presets"),
        State("Presets: new", f"{base}/presets/new?kind=call_queue"),
        State("Agent Statuses", f"{base}/agent-statuses/"),
        State("Change History", f"{base}/history/"),
        State("GDPR Tools: one caller", f"{base}/privacy/?number={w['caller']}"),
        State("Plans", f"{base}/plan/"),
        State("Plans: confirm (page)", f"{base}/plan/confirm?plan=Starter"),
    ]


def signed_out_pages(w) -> list[State]:
    return [
        State("Sign in", "/login"),
        State("Sign in: a wrong password", "/login", wrong_password, shot="sign-in-error"),
        State("Set password", w["password_link"]),
        State("Set password, a bad link", "/set-password/not-a-token", status=410),
        State("Billing link", w["link"]),
        State("Billing link: the form sent empty", w["link"], pay_nothing),
        State("Billing link: paid, the thank-you page", w["link"], pay, shot="link-paid"),
        State("Billing link: the receipt", None, open_receipt, dialogs=False),
        State("Billing link, a bad link", "/billing-link/not-a-token", status=404),
        State("Error: no such page", "/no/such/page", status=404),
    ]


# ----------------------------------------------------------------------------- axe

@dataclass
class Report:
    role: str
    theme: str
    found: list[str] = field(default_factory=list)
    states: int = 0
    wide: list[str] = field(default_factory=list)  # pages wider than the screen (shots())
    dialogs: set[str] = field(default_factory=set)  # the kinds of dialog checked so far

    def check(self, page: Page, where: str, context: str | None = None) -> None:
        """axe at both widths; the page (or dialog) stays open between them."""
        for width, size in WIDTHS:
            page.set_viewport_size(size)
            self.states += 1
            for v in axe(page, context):
                targets = "; ".join(
                    f"{n['target']} ({(n['summary'] or '').splitlines()[-1].strip()[:160]})"
                    for n in v["nodes"][:4])
                more = f" and {len(v['nodes']) - 4} more" if len(v["nodes"]) > 4 else ""
                self.found.append(
                    f"[{self.role} · {self.theme} · {width}] {where}: {v['id']} ({v['impact']})"
                    f" {v['help']}: {targets}{more}")
        page.set_viewport_size(DESKTOP)


def dialog_openers(page: Page, seen: set[str] | None = None) -> list[Locator]:
    """One opener per kind of dialog on the page (the first row's Edit, not every row's),
    each visible at the desktop width; none of a kind in `seen` (added to it)."""
    seen, openers = set() if seen is None else seen, []
    for opener in page.locator(OPENERS).all():
        kind = re.sub(r"/\d+", "/N", (opener.get_attribute("hx-get") or "").split("?")[0])
        if kind in seen or not opener.is_visible():
            continue
        seen.add(kind)
        openers.append(opener)
    return openers


def open_dialog(page: Page, opener: Locator) -> Locator:
    click_and_swap(page, opener)
    dialog = page.locator("#dialog-slot dialog[open]")
    expect(dialog).to_be_visible()
    return dialog


def close_dialog(page: Page, dialog: Locator) -> None:
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)


def visit(page: Page, state: State) -> None:
    response = goto(page, state.path, url=re.compile(".*"))
    expected = state.status or 200
    assert response.status == expected, f"{state.name} ({state.path}): {response.status}"
    expect(page.locator("h1, dialog h2").first).to_be_visible()


def walk(page: Page, report: Report, states: list[State], screenshot) -> None:
    for state in states:
        if state.path is not None:
            visit(page, state)
        if state.then:
            state.then(page)
        report.check(page, f"{state.name} ({state.path or page.url})", state.only)
        if state.shot:
            shots(page, screenshot, f"i14-12-{state.shot}-{report.theme}", report.wide)
        if not state.dialogs:
            continue
        for opener in dialog_openers(page, report.dialogs):
            label = (opener.get_attribute("aria-label") or opener.inner_text()).strip()
            dialog = open_dialog(page, opener)
            title = dialog.locator("h2").first.inner_text()
            report.check(page, f"{state.name} ({state.path}) › “{label}” dialog “{title}”",
                         "#dialog-slot dialog[open]")
            close_dialog(page, dialog)


def sign_in(page: Page, email: str) -> None:
    goto(page, "/login", heading="Sign in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(demo.PASSWORD)
    click_and_wait(page, page.get_by_role("button", name="Sign in"), url=re.compile(".*"))


def set_theme(page: Page, theme: str) -> None:
    """The signed-in user's dark mode on or off (the header's button), and the browser's
    preference to match."""
    page.emulate_media(color_scheme=theme)
    current = page.locator("html").get_attribute("data-theme")
    if current != theme:
        button = "Dark mode" if theme == "dark" else "Light mode"
        click_and_wait(page, page.get_by_role("button", name=button), url=re.compile(".*"))
    expect(page.locator("html")).to_have_attribute("data-theme", theme)


ROLES = {
    "signed out": (None, signed_out_pages),
    "agency owner": (AGENCY_OWNER, agency_pages),
    "sub-account admin": (SUB_ADMIN, sub_admin_pages),
    "solo admin": (SOLO_ADMIN, solo_pages),
}


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("role", list(ROLES))
def test_axe_finds_nothing(page: Page, world, role: str, theme: str, screenshot):
    email, pages = ROLES[role]
    report = Report(role, theme)
    page.set_viewport_size(DESKTOP)
    page.emulate_media(color_scheme=theme)
    if email:
        sign_in(page, email)
        set_theme(page, theme)
    walk(page, report, pages(world), screenshot)
    if not email:  # the second step of a two-factor sign-in
        sign_in(page, TWO_FACTOR_USER)
        expect(page).to_have_url(re.compile(r"/login/two-factor$"))
        report.check(page, "Two-factor sign-in (/login/two-factor)")
    assert report.states > 0
    assert not report.found, (f"{len(report.found)} axe violations in {report.states} page "
                              "states:\n" + "\n".join(report.found))
    assert not report.wide, "\n".join(report.wide)


def test_the_check_finds_a_violation_under_the_policy(page: Page, world):
    """axe runs under the pages' Content-Security-Policy and reports what it should: an image
    without a text alternative and a link whose aria-label drops its visible text, put on the
    sign-in page."""
    goto(page, "/login", heading="Sign in")
    assert "script-src 'self'" in page.evaluate(
        "() => fetch('/login').then((r) => r.headers.get('content-security-policy'))")
    page.evaluate("""() => document.querySelector("main").insertAdjacentHTML("beforeend",
        '<img src="data:,"><a href="/login" aria-label="Preset">Save as Preset</a>')""")
    found = {v["id"]: v for v in axe(page)}
    assert set(found) == {"image-alt", "label-content-name-mismatch"}, found


# ----------------------------------------------------------------------------- keyboard

FOCUS_INSIDE = "(d) => d.contains(document.activeElement) && document.hasFocus()"


def tab_to(page: Page, target: Locator, limit: int = 250) -> int:
    """Tab from the top of the page until `target` has focus; the number of presses."""
    handle = target.element_handle()
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); "
                  "window.scrollTo(0, 0); }")
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("(el) => document.activeElement === el", handle):
            return presses
    raise AssertionError(f"{limit} presses of Tab never reached {target}")


def keyboard_walk(page: Page, where: str, problems: list[str], seen: set[str]) -> int:
    """Every dialog on the page (of a kind not in `seen`): Tab to its opener, Enter,
    Tab/Shift+Tab stay inside, Escape closes it and focus is back on the opener. Returns how
    many dialogs."""
    count = 0
    for opener in dialog_openers(page, seen):
        count += 1
        label = (opener.get_attribute("aria-label") or opener.inner_text()).strip()
        name = f"{where} › “{label}”"
        tab_to(page, opener)
        with_swap = page.evaluate("() => window.__htmxSettles || 0")
        page.keyboard.press("Enter")
        page.wait_for_function("(n) => (window.__htmxSettles || 0) > n", arg=with_swap)
        htmx_settled(page)
        dialog = page.locator("#dialog-slot dialog[open]")
        expect(dialog).to_be_visible()
        if not dialog.evaluate("(d) => d.matches(':modal')"):
            problems.append(f"{name}: the dialog is not modal")
        if not dialog.evaluate(FOCUS_INSIDE):
            problems.append(f"{name}: focus is not in the dialog once it opens")
        stops = dialog.evaluate(
            "(d) => [...d.querySelectorAll('a[href], button, input:not([type=hidden]), select,"
            " textarea, [tabindex]:not([tabindex=\"-1\"])')].filter((e) => !e.disabled"
            " && e.getClientRects().length).length")
        for key in ("Tab", "Shift+Tab"):
            for i in range(stops + 2):  # around the dialog and past its ends
                page.keyboard.press(key)
                if not dialog.evaluate(FOCUS_INSIDE):
                    left = page.evaluate("() => document.activeElement ? "
                                         "document.activeElement.outerHTML.slice(0, 80) : null")
                    problems.append(f"{name}: {key} ×{i + 1} left the dialog (focus on {left})")
                    break
        page.keyboard.press("Escape")
        if dialog.count():
            expect(dialog).to_have_count(0)
        if not opener.evaluate("(el) => document.activeElement === el"):
            now = page.evaluate("() => document.activeElement ? "
                                "document.activeElement.outerHTML.slice(0, 80) : null")
            problems.append(f"{name}: after Escape focus is not back on the opener ({now})")
    return count


def enter_and_swap(page: Page) -> None:
    """Enter on what has focus, which makes htmx swap; wait until it has settled."""
    before = page.evaluate("() => window.__htmxSettles || 0")
    page.keyboard.press("Enter")
    page.wait_for_function("(n) => (window.__htmxSettles || 0) > n", arg=before)
    htmx_settled(page)


def focused(page: Page) -> str:
    return page.evaluate("() => document.activeElement ? "
                         "document.activeElement.outerHTML.slice(0, 120) : 'nothing'")


def test_focus_goes_back_after_a_dialog_is_redrawn_or_its_opener_replaced(page: Page, world):
    """A dialog sent back with its errors is a new dialog, and a card saved redraws the
    Payment Methods section with the opener in it: Escape, and the save, still leave focus
    on the "New Credit Card" link (the one on the page now), with the keyboard only."""
    sign_in(page, SOLO_ADMIN)
    visit(page, State("Billing Settings", f"/accounts/{world['solo']}/billing/"))
    opener = page.get_by_role("link", name="New Credit Card")
    dialog = page.locator("#dialog-slot dialog[open]")

    # Sent empty: the dialog again, with errors; Escape closes it, focus on the opener.
    tab_to(page, opener)
    enter_and_swap(page)
    expect(dialog).to_be_visible()
    tab_to_in(page, dialog.get_by_role("button", name="Save"))
    # issue 16: the processor's frame refuses it in place (no redraw), said in the dialog
    page.keyboard.press("Enter")
    expect(dialog.locator("[data-card-entry-error]")).to_be_visible()
    assert dialog.evaluate(FOCUS_INSIDE), focused(page)
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    assert opener.evaluate("(el) => document.activeElement === el"), focused(page)

    # Saved: the dialog closes, the section is redrawn; focus on its New Credit Card link.
    tab_to(page, opener)
    enter_and_swap(page)
    expect(dialog).to_be_visible()
    frame = dialog.frame_locator("iframe[title='Secure card entry']")  # the processor's
    expiry = f"09/{(datetime.now(UTC).year + 2) % 100:02d}"
    for label, text in (("Name on card", "Sam Solo"), ("Card number", "5105105105105100"),
                        ("Expiry (MM/YY)", expiry), ("Security code (CVC)", "321")):
        frame.get_by_label(label, exact=True).focus()
        page.keyboard.type(text)
    tab_to_in(page, dialog.get_by_role("button", name="Save"))
    page.keyboard.press("Enter")
    expect(dialog).to_have_count(0)
    htmx_settled(page)
    expect(page.get_by_text("Mastercard ending 5100").first).to_be_visible()
    assert opener.evaluate("(el) => document.activeElement === el"), focused(page)


def tab_to_in(page: Page, target: Locator, limit: int = 40) -> None:
    """Tab (inside an open dialog) until `target` has focus."""
    handle = target.element_handle()
    for _ in range(limit):
        if page.evaluate("(el) => document.activeElement === el", handle):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{limit} presses of Tab never reached {target}")


def test_every_dialog_works_with_the_keyboard(page: Page, world):
    """Agency owner and solo admin: each page with dialogs, each dialog by keyboard only."""
    problems: list[str] = []
    dialogs = 0
    seen: set[str] = set()  # each kind of dialog once
    page.set_viewport_size(DESKTOP)
    for email, states in ((AGENCY_OWNER, agency_pages(world)), (SOLO_ADMIN, solo_pages(world))):
        sign_in(page, email)
        for state in states:
            if not state.dialogs or state.status or state.then or state.path is None:
                continue
            visit(page, state)
            dialogs += keyboard_walk(page, f"{email} {state.name} ({state.path})", problems,
                                     seen)
        click_and_wait(page, page.get_by_role("button", name="Sign out"), url="/login")
    assert dialogs >= 10, dialogs
    assert not problems, "\n".join(problems)
