"""Browser-test fixtures: the app served on loopback in a background thread, Debian's
Chromium driven by pytest-playwright, and helpers to sign in and take screenshots.

Each test builds its data with tests/factories.py through the `session` fixture and commits
before the browser acts: the server thread reads the same database (a SQLite file, or
PostgreSQL with TEST_DATABASE_URL) through its own app and connections.

Waiting, the one rule: a test acts on a page only once it is the page the test expects and
htmx has processed it. Under load a click lands seconds before its answer, and the next
click would hit the page being left (the agency's menu, not the sub-account's), or a link
htmx hasn't wired yet (its plain href: the no-JavaScript page). So:

- a navigation (a link, a submit, Enter, an HX-Redirect, back, reload) goes through
  `click_and_wait(page, link, url=..., heading=...)`, `goto(page, path, ...)` or
  `with navigation(page, url=..., heading=...):`, which wait until the page in front was
  replaced, has the address and/or <h1> given, and htmx has settled;
- an htmx swap goes through `click_and_swap(page, button)` or `with htmx_swap(page):`, which
  wait until that swap has settled, and the test then expects the swapped content;
- no sleeps: every wait is for a state of the page.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from re import Pattern

import pytest
from axe_playwright_python.base import AXE_SCRIPT
from playwright.sync_api import Locator, Page, expect

from tests.conftest import make_app, serving
from tests.factories import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 5_000  # everything here answers in milliseconds; fail fast when it doesn't


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch options, on Debian's Chromium (no browser download here)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. "
                    "Install it with `apt-get install chromium` (make test does).", pytrace=False)
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": [*browser_type_launch_args.get("args", []), *CHROMIUM_ARGS],
    }


@dataclass
class LiveServer:
    url: str


@pytest.fixture(scope="session")
def live_server(database_url, _schema):
    """The app on 127.0.0.1, a free port, threaded, for the whole run."""
    with serving(make_app(database_url)) as url:
        yield LiveServer(url=url)


@pytest.fixture(scope="session")
def base_url(live_server):
    """pytest-playwright gives every context this base URL: page.goto("/login")."""
    return live_server.url


@pytest.fixture(autouse=True)
def _data_outlives_the_page(app):
    """Set `app` up before `page`, so it is torn down (the tables emptied) only after the
    browser context is closed and no request of this test can still be in flight."""


@pytest.fixture
def page(page: Page) -> Page:
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    page.add_init_script(COUNT_SETTLES)
    return page


# What the console may say without failing a test, each with why (regexes over the text).
# HTTP statuses are judged from the responses instead (below): Chromium logs "Failed to load
# resource: the server responded with a status of 422" for every 4xx/5xx.
CONSOLE_ALLOWED: list[tuple[str, str]] = [
    (r"^Failed to load resource: the server responded with a status of \d{3}",
     "an HTTP status, judged from the response itself"),
    (r"^Applying inline style violates .*'sha256-47DEQpj8HBSa\+/TImW\+5JCeuQeRkm5NMpJWZG3hSuFU='",
     "an empty style attribute (that hash is the empty string's): Playwright's screenshots leave "
     'style="" on inputs (hiding the caret), and htmx copies it onto the input it swaps in'),
]


@pytest.fixture(autouse=True)
def _no_console_errors(request):
    """Every browser test fails on a console error (console.error, a CSP refusal), an
    uncaught exception in the page (pageerror), in any page of its context (a receipt opened
    in a new tab too), or on a response the design never gives: a 5xx, or a 4xx for an asset
    (a script, a stylesheet, an image). A page or an htmx answer may be a 4xx by design (422
    for bad input, 404, 403); the test asserts those."""
    if "page" not in request.fixturenames:
        yield
        return
    page = request.getfixturevalue("page")
    seen: list[str] = []

    def console(message) -> None:
        if message.type != "error":
            return
        if any(re.search(pattern, message.text) for pattern, _ in CONSOLE_ALLOWED):
            return
        where = message.location.get("url") or (message.page.url if message.page else "")
        seen.append(f"console.error at {where}: {message.text}")

    def response(answer) -> None:
        kind = answer.request.resource_type
        if answer.status >= 500 or (answer.status >= 400
                                    and kind not in ("document", "xhr", "fetch")):
            seen.append(f"HTTP {answer.status} for the {kind} {answer.url}")

    page.context.on("console", console)
    page.context.on("weberror", lambda error: seen.append(
        f"uncaught in {error.page.url if error.page else '?'}: {error.error}"))
    page.context.on("response", response)
    yield
    if seen:
        pytest.fail("the browser reported:\n" + "\n".join(seen), pytrace=False)


@pytest.fixture
def sign_in(page: Page):
    """sign_in(email): the sign-in form filled and sent; returns once the account's page is
    in front and settled."""

    def _sign_in(email: str, password: str = PASSWORD) -> Page:
        goto(page, "/login", heading="Sign in")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        click_and_wait(page, page.get_by_role("button", name="Sign in"))
        expect(page.get_by_test_id("current-account")).to_be_visible()
        return page

    return _sign_in


@pytest.fixture(scope="session")
def screenshot():
    """screenshot(page, "name"): test-artifacts/name.png, the whole page."""
    ARTIFACTS.mkdir(exist_ok=True)

    def _screenshot(page: Page, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled")
        # Playwright's screenshot leaves style="" on the focused field (hiding its caret);
        # htmx would copy that attribute across the next swap, which the page's
        # Content-Security-Policy refuses (a console error). Not the app's doing: undo it.
        page.evaluate(UNDO_SCREENSHOT)
        return path

    return _screenshot


# ----------------------------------------------------------------------------- screenshots

UNDO_SCREENSHOT = """() => document.querySelectorAll('[style=""]')
  .forEach((element) => element.removeAttribute("style"))"""
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def sideways(page: Page) -> int:
    """How far the page scrolls sideways, in px (0: it fits the screen)."""
    return page.evaluate("document.documentElement.scrollWidth - "
                         "document.documentElement.clientWidth")


def shots(page: Page, screenshot, name: str, problems: list[str]) -> None:
    """test-artifacts/<name>-desktop.png (1280 px) and <name>-phone.png (390 px), with the
    `screenshot` fixture; a page wider than the screen goes on `problems` (asserted at the
    end of the test)."""
    original = page.viewport_size
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        screenshot(page, f"{name}-{label}")
        extra = sideways(page)
        if extra > 0:
            problems.append(f"{name} ({label}): the page scrolls sideways by {extra}px")
    page.set_viewport_size(original)


# ----------------------------------------------------------------------------- axe-core

# axe's default rules (WCAG 2.0-2.2 A and AA, and its best practices) and the rules it marks
# experimental, which include label-content-name-mismatch (an accessible name that drops the
# visible label). Not the AAA rules (7:1 contrast): the bar is AA. Only violations come back.
# Not into iframes: the one iframe (the dev outbox's sandboxed mail) is an email, not a page.
RUN_AXE = """([context]) => axe.run(context ? {include: [context]} : document, {
  resultTypes: ["violations"], iframes: false,
  rules: Object.fromEntries(axe.getRules(["experimental"]).map((r) => [r.ruleId, {enabled: true}])),
}).then((r) => r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
  nodes: v.nodes.map((n) => ({target: n.target.join(" "), summary: n.failureSummary}))})))"""

def axe(page: Page, context: str | None = None) -> list[dict]:
    """axe-core's violations on the page in front (or inside `context`, a selector)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SCRIPT)
    return page.evaluate(RUN_AXE, [context])


# ----------------------------------------------------------------------------- waiting

# Loaded, and htmx (where the page has it and JavaScript runs) has processed the page and has
# no request, swap or settle under way. htmx processes new content as it settles (~20 ms
# after the swap): until then the new elements keep the class htmx-added.
SETTLED = """() => document.readyState === "complete" && (
  !matchMedia("(scripting: enabled)").matches
  || !document.querySelector("script[src*='/htmx-']")
  || (window.htmx && !document.querySelector(
       ".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added")))"""

# Every page counts the swaps htmx has settled, for htmx_swap() (not subject to the page's
# Content-Security-Policy: Playwright injects it).
COUNT_SETTLES = """document.addEventListener("htmx:afterSettle", () => {
  window.__htmxSettles = (window.__htmxSettles || 0) + 1; });"""

# The page in front is marked (a property, not an attribute: htmx's history snapshot copies
# attributes), and is gone once every <main> on screen is a new one.
MARK_LEFT = "() => document.querySelectorAll('main').forEach((m) => { m.__left = true; })"
LEFT = "() => ![...document.querySelectorAll('main')].some((m) => m.__left)"


def htmx_settled(page: Page) -> None:
    """Wait until the page has loaded and htmx has swapped, settled and processed the new
    content: before that a link's hx-get isn't wired yet, and Enter follows its href (the
    no-JavaScript page). A page without htmx (the billing-link page, a receipt) or without
    JavaScript is settled once loaded.

    Not wait_for_load_state("networkidle"): Playwright fires it once per document, so after
    an htmx swap it returns at once without waiting for anything; and when a swap adds an
    iframe (the outbox's sandboxed mail) it sometimes never fires again (a 5 s timeout).
    htmx marks its own requests (htmx-request), which is what matters here."""
    page.wait_for_function(SETTLED)


def expect_page(page: Page, url: str | Pattern[str] | None = None,
                heading: str | Pattern[str] | None = None) -> None:
    """The page in front has this address (a path on the live server, or a pattern) and/or
    this <h1> (the whole text, or a pattern), and has settled."""
    if url is not None:
        page.wait_for_url(url)
    if heading is not None:
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    htmx_settled(page)


@contextmanager
def navigation(page: Page, url: str | Pattern[str] | None = None,
               heading: str | Pattern[str] | None = None) -> Iterator[None]:
    """`with navigation(page, url=..., heading=...): <the action>`: the action leads to
    another page (or the same one again, after a post); wait until the page in front was
    replaced, then expect_page(). Boosted links and forms, HX-Redirect, plain links, the
    history and reload all replace <main>."""
    page.evaluate(MARK_LEFT)
    yield
    page.wait_for_function(LEFT)
    expect_page(page, url, heading)


def click_and_wait(page: Page, target: Locator, url: str | Pattern[str] | None = None,
                   heading: str | Pattern[str] | None = None) -> None:
    """Click a link or a submit button that leads to a page, and wait for that page."""
    with navigation(page, url, heading):
        target.click()


def goto(page: Page, path: str, url: str | Pattern[str] | None = None,
         heading: str | Pattern[str] | None = None):
    """page.goto(path), then wait for the page: at `url` if it redirects, else at `path`."""
    response = page.goto(path)
    expect_page(page, path if url is None else url, heading)
    return response


@contextmanager
def htmx_swap(page: Page) -> Iterator[None]:
    """`with htmx_swap(page): <the action>`: the action makes htmx swap part of the page
    (a region, a row, a dialog in #dialog-slot); wait until that swap has settled. The test
    then expects the swapped content."""
    before = page.evaluate("() => window.__htmxSettles || 0")
    yield
    page.wait_for_function("(n) => (window.__htmxSettles || 0) > n", arg=before)
    htmx_settled(page)


def click_and_swap(page: Page, target: Locator) -> None:
    """Click what makes htmx swap part of the page, and wait until the swap has settled."""
    with htmx_swap(page):
        target.click()


# The main menu: each link → its page's address under /accounts/<id>/, and its <h1> before
# " · <account name>".
MENU = {
    "Account Settings": ("", "Account Settings"),
    "Accounts": ("sub-accounts", "Accounts"),
    "Parent Settings": ("parent", "Parent Settings"),
    "Billing Settings": ("billing/", "Billing Settings"),
    "Change History": ("history/", "Change History"),
    "GDPR Tools": ("privacy/", "GDPR Tools and Redaction"),
    "Support": ("support/", "Support requests"),
    "Account Security Features": ("security/", "Account Security Features"),
    "Tracking Numbers": ("numbers/", "Tracking Numbers"),
    "Agent Statuses": ("agent-statuses/", "Agent Statuses"),
    "Tracking Sources": ("tracking-sources", "Tracking Sources"),
    "Call Queues": ("call-queues", "Call Queues"),
    "Presets": ("presets", "Presets"),
    "Call History": ("calls/", "Call History"),
}


def account_url(tail: str = "") -> Pattern[str]:
    """The address of an account's page: /accounts/<id>/<tail>, nothing after."""
    return re.compile(rf"/accounts/\d+/{re.escape(tail)}$")


def open_menu(page: Page, link: str, account: str) -> None:
    """Main menu → `link`; wait for that page of `account` (its address and its <h1>). From
    a sub-account, Accounts leads to the agency's list: `account` is the agency then."""
    tail, title = MENU[link]
    menu = page.get_by_role("navigation", name="Main")
    toggle = menu.locator("details.menu:not([open]) > summary")
    if toggle.is_visible():  # a phone: the menu is folded behind "Menu"
        toggle.click()
    click_and_wait(page, menu.get_by_role("link", name=link, exact=True),
                   url=account_url(tail), heading=f"{title} · {account}")
