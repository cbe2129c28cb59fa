"""Issue 14, items 6, 9 and 11 (H5), walked in Chromium with screenshots:

- a canceled account's Billing Settings read-only, with the reason;
- a refused htmx request (the account canceled while its page was open) answers a message
  in place, the section left as it was;
- the activity log words billing events fully;
- Restore all released numbers, with one confirmation;
- Change History words kinds and distributions as the pages do;
- the statement presets fill the range and the Download PDF link (no CSRF token in it).
"""

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from portal.models import Account, EventKind, PresetKind
from portal.services import lifecycle, presets
from tests import factories as f
from tests.browser.conftest import (
    account_url,
    click_and_swap,
    click_and_wait,
    goto,
    open_menu,
    shots,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def shop(session):
    """Harbor Dental (admin dana): a Visa, auto recharge, two numbers released 2 and 4 days
    ago and one 20 days ago, a call queue; Closed Shop (admin dana too): canceled 3 days ago,
    with a Visa."""
    now = datetime.now(UTC)
    dana = f.user(session, email="dana@example.test", name="Dana")
    account = f.standalone(session, "Harbor Dental", admin=dana)
    f.card(session, account)
    f.recharge_settings(session, account)
    released = [f.number(session, account, label=label, released_at=now - timedelta(days=d))
                for label, d in (("Website", 2), ("Google Ads", 4), ("Old flyer", 20))]
    presets.create_record(session, account, presets.KINDS[PresetKind.CALL_QUEUE], {
        "name": "Front desk", "distribution": "simultaneous", "ring_seconds": 20,
        "max_wait_minutes": 5, "voicemail": True})
    session.commit()
    return SimpleNamespace(email=dana.email, account=account, released=released, dana=dana)


@pytest.fixture
def closed(session, shop):
    """Closed Shop (admin dana too): canceled 3 days ago, with a Visa."""
    account = f.standalone(session, "Closed Shop", admin=shop.dana)
    f.card(session, account)
    lifecycle.close(session, account, shop.dana, now=datetime.now(UTC) - timedelta(days=3))
    session.commit()
    return account


def test_canceled_billing_settings_are_read_only_and_a_refusal_stays_in_place(
        page: Page, session, shop, closed, sign_in, screenshot):
    problems: list[str] = []
    sign_in(shop.email)
    goto(page, f"/accounts/{closed.id}/billing/", heading="Billing Settings · Closed Shop")
    main = page.locator("main")
    expect(page.get_by_test_id("read-only")).to_contain_text(
        "Billing Settings are read-only: Closed Shop is canceled.")
    expect(page.get_by_test_id("canceled-banner")).to_be_visible()
    expect(page.get_by_test_id("payment-methods")).to_contain_text("Visa ending 4242")
    for control in ("textbox", "combobox", "checkbox"):
        expect(main.get_by_role(control)).to_have_count(0)
    for name in ("New Credit Card", "New ACH", "Save phone number", "Make a Payment",
                 "Save service address", "Remove"):
        expect(main.get_by_role("button", name=name)).to_have_count(0)
        expect(main.get_by_role("link", name=name)).to_have_count(0)
    shots(page, screenshot, "i14-06-canceled-billing-read-only", problems)

    # An open page whose account is canceled meanwhile: saving a section is refused, and the
    # refusal is a message in place, not the error page inside the section.
    goto(page, f"/accounts/{shop.account.id}/billing/",
         heading="Billing Settings · Harbor Dental")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    lifecycle.close(session, session.merge(shop.account), session.merge(shop.dana))
    session.commit()
    section = page.locator("#critical-phone")
    section.get_by_label("Mobile number (with country code)").fill("+14155550134")
    click_and_swap(page, section.get_by_role("button", name="Save phone number"))
    refusal = page.locator("#messages").get_by_role("alert")
    expect(refusal).to_contain_text("Not allowed. Harbor Dental is canceled: you can read and "
                                    "export its data, but not change it.")
    expect(refusal).to_be_in_viewport()  # sticky: where the reader is
    expect(section.get_by_role("heading", name="Critical Billing Phone Number")).to_be_visible()
    expect(section.get_by_role("button", name="Save phone number")).to_be_visible()
    expect(main.get_by_role("heading", level=1)).to_have_count(1)
    expect(page.locator("main .error-page")).to_have_count(0)
    page.screenshot(path="test-artifacts/i14-06-refusal-in-place-desktop.png",
                    animations="disabled")  # the viewport: where the reader is
    refusal.get_by_role("button", name="Dismiss").click()
    expect(refusal).to_have_count(0)
    assert not problems, problems


def test_activity_log_words_billing_events(page: Page, session, sign_in, screenshot):
    now = datetime.now(UTC)
    avery = f.user(session, email="avery@example.test", name="Avery")
    agency = f.agency(session, "Northwind Agency", owner=avery)
    f.sub(session, agency, "Cedar Law")
    lifecycle.record(session, agency, EventKind.BILLING_LINK_SENT, avery,
                     now - timedelta(days=2), account="Cedar Law", account_id=2,
                     email="pat@cedar.test", amount_cents=8000)
    lifecycle.record(session, agency, EventKind.BILLING_MODE_CHANGED, None,
                     now - timedelta(days=1), account="Cedar Law", account_id=2,
                     billing="customer", paid_cents=8000, email="pat@cedar.test")
    session.commit()
    problems: list[str] = []
    sign_in("avery@example.test")
    open_menu(page, "Parent Settings", "Northwind Agency")
    activity = page.get_by_role("region", name="Activity")
    expect(activity).to_contain_text("Emailed pat@cedar.test a link to take Cedar Law off "
                                     "agency billing (starting balance $80.00)")
    expect(activity).to_contain_text("Took Cedar Law off agency billing: pat@cedar.test pays "
                                     "(paid $80.00 as the opening balance)")
    expect(activity).not_to_contain_text("(to )")
    activity.scroll_into_view_if_needed()
    shots(page, screenshot, "i14-09-activity-wording", problems)
    assert not problems, problems


def test_restore_all_released_numbers(page: Page, shop, sign_in, screenshot):
    problems: list[str] = []
    sign_in(shop.email)
    open_menu(page, "Tracking Numbers", "Harbor Dental")
    click_and_wait(page, page.get_by_role("link", name="Released Numbers"),
                   url=account_url("numbers/released"), heading="Released Numbers · Harbor Dental")
    click_and_swap(page, page.get_by_role("link", name="Restore all (2)"))
    dialog = page.get_by_role("dialog", name="Restore all released numbers?")
    expect(dialog).to_be_visible()
    website, ads, old = (n.number for n in shop.released)
    expect(dialog.get_by_test_id("to-restore").get_by_role("listitem")).to_have_count(2)
    expect(dialog.get_by_test_id("to-restore")).to_contain_text(website)
    expect(dialog.get_by_test_id("to-restore")).to_contain_text(ads)
    expect(dialog.get_by_test_id("not-restored")).to_have_text(
        re.compile(re.escape(old) + r": Released more than 14 days ago\."))
    page.screenshot(path="test-artifacts/i14-11-restore-all-confirm-desktop.png",
                    animations="disabled")
    click_and_wait(page, dialog.get_by_role("button", name="Restore 2 numbers"),
                   url=account_url("numbers/released"), heading="Released Numbers · Harbor Dental")
    expect(page.get_by_role("status").filter(has_text="Restored 2 numbers")).to_have_text(
        re.compile(r"Restored 2 numbers on Harbor Dental: \+1\d+, \+1\d+\.$"))
    expect(page.locator("main .flash-error")).to_have_text(
        f"{old} was released more than 14 days ago: ask support.")
    expect(page.locator("main table tbody tr")).to_have_count(1)
    expect(page.get_by_role("link", name=re.compile("Restore all"))).to_have_count(0)
    shots(page, screenshot, "i14-11-restore-all-done", problems)
    assert not problems, problems


def test_change_history_words_values(page: Page, shop, sign_in, screenshot):
    problems: list[str] = []
    sign_in(shop.email)
    open_menu(page, "Change History", "Harbor Dental")
    table = page.get_by_test_id("change-history")
    expect(table).to_contain_text("Ring all agents at once")
    expect(table).to_contain_text("Longest wait (minutes)")
    expect(table).not_to_contain_text("simultaneous")
    expect(table).not_to_contain_text("call_queue")
    shots(page, screenshot, "i14-11-change-history-wording", problems)
    assert not problems, problems


def test_statement_presets_fill_the_range_and_the_pdf_link(page: Page, shop, sign_in,
                                                           screenshot):
    sign_in(shop.email)
    open_menu(page, "Billing Settings", "Harbor Dental")
    click_and_swap(page, page.get_by_role("link", name="Printable Statements"))
    dialog = page.get_by_role("dialog", name="Printable Statements")
    expect(dialog).to_be_visible()
    today = datetime.now(UTC).date()
    start = today.replace(day=1)
    expect(dialog.get_by_label("From", exact=True)).to_have_value(start.isoformat())
    expect(dialog.get_by_role("link", name="This month")).to_have_attribute("aria-current", "true")
    click_and_swap(page, dialog.get_by_role("link", name="Last month"))
    last_end = start - timedelta(days=1)
    last_start = last_end.replace(day=1)
    expect(dialog.get_by_label("From", exact=True)).to_have_value(last_start.isoformat())
    expect(dialog.get_by_label("To", exact=True)).to_have_value(last_end.isoformat())
    expect(dialog.get_by_role("link", name="Last month")).to_have_attribute("aria-current", "true")
    pdf = dialog.get_by_role("link", name="Download PDF")
    expect(pdf).to_have_attribute("href", re.compile(
        rf"/statements\.pdf\?from={last_start.isoformat()}&to={last_end.isoformat()}$"))
    page.screenshot(path="test-artifacts/i14-11-statement-presets-desktop.png",
                    animations="disabled")
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path="test-artifacts/i14-11-statement-presets-phone.png",
                    animations="disabled")
    page.set_viewport_size({"width": 1280, "height": 720})
    # a date typed by hand moves the link too
    with page.expect_response(re.compile(r"/billing/statements\?")):
        dialog.get_by_label("From", exact=True).fill(last_start.replace(day=2).isoformat())
        dialog.get_by_label("From", exact=True).dispatch_event("change")
    expect(pdf).to_have_attribute("href", re.compile(
        rf"from={last_start.replace(day=2).isoformat()}&to={last_end.isoformat()}$"))
    assert "csrf" not in (pdf.get_attribute("href") or "")
    expect(dialog.locator('.presets a[aria-current="true"]')).to_have_count(0)  # no preset now


def test_the_demo_dates_agree_with_its_history(page: Page, session, sign_in, screenshot):
    """Item 9: on the demo, a canceled sub-account was created long before it was closed,
    and its numbers were there before today."""
    from portal.cli import demo

    demo.seed(session, calls_per_account=3)
    session.commit()
    problems: list[str] = []
    today = datetime.now(UTC).date()
    sign_in("agency@demo.test", demo.PASSWORD)
    oak = session.scalar(select(Account).where(Account.name == "Oak Street Bakery"))
    goto(page, f"/accounts/{oak.id}/", heading="Account Settings · Oak Street Bakery")
    created = page.locator("dt:text-is('Created') + dd").inner_text().strip()
    first_event = page.get_by_role("region", name="Activity").locator("tbody tr td").first
    expect(first_event).to_be_visible()
    assert created < first_event.inner_text().strip()[:10] < today.isoformat()
    shots(page, screenshot, "i14-09-demo-account-created", problems)
    goto(page, f"/accounts/{demo_agency_id(session)}/numbers/",
         heading="Tracking Numbers · Northwind Agency")
    for since in page.locator("main table tbody tr td:nth-child(3)").all_inner_texts():
        assert since.strip() < today.isoformat(), since
    shots(page, screenshot, "i14-09-demo-numbers-since", problems)
    assert not problems, problems


def demo_agency_id(session) -> int:
    return session.scalar(select(Account.id).where(Account.name == "Northwind Agency"))
