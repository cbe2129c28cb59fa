"""Issue 17 (J), in Chromium at 1280 and 390 px: a statement past the size limit asked for
with Download PDF answers "being prepared"; the jobs step makes it (called directly here);
the page's status (htmx, every 5 s) turns into the Download link, and the Printable
Statements dialog lists it; axe on both. Screenshots: test-artifacts/i17-prepared-*.png."""

import pytest
from playwright.sync_api import Page, expect

from portal import clock, jobs, rules
from portal.models import Cause, LedgerKind
from portal.services import ledger
from tests import factories as f
from tests.browser.conftest import axe, goto, shots

pytestmark = pytest.mark.browser


@pytest.fixture
def busy(session, monkeypatch):
    """Harbor Dental (Dana its admin) with four payments this month; the limit lowered to 3
    (the live server runs in this process: it reads the same rules)."""
    dana = f.user(session, email="dana@example.test", name="Dana Reyes")
    account = f.standalone(session, "Harbor Dental", admin=dana)
    for n in range(4):
        ledger.post(session, account, LedgerKind.PAYMENT, 1000 + n, f"Payment {n}", f"p-{n}",
                    Cause.USER)
    session.commit()
    monkeypatch.setattr(rules, "STATEMENT_SYNC_MAX_ENTRIES", 3)
    return account


def test_a_big_statement_is_prepared_then_downloaded(page: Page, session, busy, sign_in,
                                                     screenshot):
    problems: list[str] = []
    sign_in("dana@example.test")
    today = clock.now().date()
    start = today.replace(day=1)
    period = f"{start:%b %-d, %Y} – {today:%b %-d, %Y}"
    response = goto(page, f"/accounts/{busy.id}/billing/statements.pdf?from={start}&to={today}",
                    heading=f"Statement for {period}")
    assert response.status == 202
    status = page.get_by_test_id("statement-file-status")
    expect(status).to_contain_text(f"Your statement for {period} is being prepared.")
    expect(status).to_contain_text("emailed to dana@example.test")
    expect(status.get_by_role("link", name="Refresh")).to_be_visible()
    shots(page, screenshot, "i17-prepared-pending", problems)
    for width in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width[0], "height": width[1]})
        assert axe(page) == [], width

    assert jobs.prepare_statements(session) == 1
    # the poll (every 5 s) swaps in the Download link
    download = status.get_by_role("link", name="Download the statement (PDF)")
    expect(download).to_be_visible(timeout=12_000)
    expect(status).to_contain_text(f"Your statement for {period} is ready: 1 page.")
    shots(page, screenshot, "i17-prepared-ready", problems)
    for width in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width[0], "height": width[1]})
        assert axe(page) == [], width
    got = page.request.get(download.get_attribute("href"))
    assert got.status == 200 and got.headers["content-type"] == "application/pdf"
    assert got.body().startswith(b"%PDF-")

    # listed in Payment History → Printable Statements (the page without JavaScript's dialog)
    goto(page, f"/accounts/{busy.id}/billing/statements")
    expect(page.get_by_role("heading", name="Printable Statements")).to_be_visible()
    listed = page.get_by_test_id("statement-files")
    expect(listed).to_contain_text(f"{period}: Ready")
    expect(listed.get_by_role("link", name=f"Download the statement for {period}")).to_be_visible()
    shots(page, screenshot, "i17-prepared-list", problems)
    for width in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width[0], "height": width[1]})
        assert axe(page) == [], width
    assert problems == []
