"""Browser-test fixtures: the app served on loopback in a background thread, Debian's
Chromium driven by pytest-playwright, and helpers to sign in and take screenshots.

Each test builds its data with tests/factories.py through the `session` fixture and commits
before the browser acts: the server thread reads the same database (a SQLite file, or
PostgreSQL with TEST_DATABASE_URL) through its own app and connections.
"""

import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from werkzeug.serving import make_server

from tests.conftest import make_app
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
    app = make_app(database_url)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield LiveServer(url=f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()
    with app.app_context():
        from portal.extensions import db

        db.engine.dispose()


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
    return page


@pytest.fixture
def sign_in(page: Page):
    """sign_in(email): the sign-in form filled and sent; returns once the account shows."""

    def _sign_in(email: str, password: str = PASSWORD) -> Page:
        page.goto("/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
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
        return path

    return _screenshot


def htmx_settled(page: Page) -> None:
    """Wait until htmx has swapped, settled and processed the new content: before that a
    link's hx-get isn't wired yet, and Enter follows its href (the no-JavaScript page)."""
    page.wait_for_load_state("networkidle")
    page.wait_for_function(
        "() => window.htmx && !document.querySelector("
        "'.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')")
