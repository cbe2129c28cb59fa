"""Issue 18 (W), walked in Chromium by the labels a user clicks, with screenshots at 1280 and
390 px (test-artifacts/i18-webhooks-*.png) and axe: the owner adds an endpoint (a bad URL
refused beside its field first; the form sent with Enter), copies the secret shown once,
sends a test event that the jobs deliver signed to a real receiver, sees it in the delivery
log, redelivers it, and deletes the endpoint through its confirmation dialog."""

import re

import pytest
from playwright.sync_api import Page, expect

from portal.services import webhooks
from tests import factories as f
from tests.browser.conftest import (
    axe,
    click_and_swap,
    click_and_wait,
    goto,
    navigation,
    shots,
)
from tests.browser.test_billing import flash
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.browser


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def check_axe(page: Page, problems: list[str]) -> None:
    for v in axe(page, "main"):
        problems.append(f"{v['id']} ({v['impact']}): {v['help']}: "
                        + "; ".join(n["target"] for n in v["nodes"][:5]))


def test_add_test_event_log_redeliver_delete(page: Page, session, sign_in, screenshot,
                                             receiver):
    problems: list[str] = []
    account = f.standalone(session, "Harbor Dental",
                           owner=f.user(session, "olive@harbor.test", name="Olive Owner"))
    session.commit()
    sign_in("olive@harbor.test")
    goto(page, f"/accounts/{account.id}/developers/webhooks", heading=re.compile("Webhooks"))
    expect(page.get_by_test_id("no-endpoints")).to_have_text("No webhook endpoints yet.")
    expect(page.get_by_label("All events")).to_be_checked()

    # A bad URL is refused beside its field, as typed.
    url = page.get_by_label("URL", exact=True)
    url.fill("ftp://files.example.com/")
    click_and_swap(page, page.get_by_role("button", name="Add endpoint"))
    url = page.get_by_label("URL", exact=True)
    expect(url).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#url-error")).to_have_text(
        "The URL must start with https:// (or http://).")
    expect(url).to_have_value("ftp://files.example.com/")
    check_axe(page, problems)

    # Keyboard: the corrected URL, a description, Enter sends the form.
    url.fill(receiver.url)
    page.get_by_label("Description (optional)").fill("Billing sync")
    with navigation(page, heading=re.compile("Webhook endpoint added")):
        page.get_by_label("Description (optional)").press("Enter")
    expect(page.get_by_test_id("shown-secret")).to_be_in_viewport()
    secret = page.get_by_test_id("secret").inner_text().strip()
    assert re.fullmatch(r"whsec_[A-Za-z0-9_-]{30,}", secret)
    expect(page.get_by_text("Copy this signing secret now")).to_be_visible()
    shots(page, screenshot, "i18-webhooks-secret", problems)
    check_axe(page, problems)

    click_and_wait(page, page.get_by_role("link", name="Done"), heading=re.compile("Webhooks"))
    expect(page.get_by_test_id("secret")).to_have_count(0)  # shown once
    endpoints = page.get_by_test_id("webhook-endpoints")
    expect(endpoints).to_contain_text(receiver.url)
    expect(endpoints).to_contain_text("All events")

    click_and_wait(page, page.get_by_role("button", name=f"Send test event to {receiver.url}"))
    expect(flash(page, "A test event (ping) is queued")).to_be_visible()
    log = page.get_by_test_id("webhook-deliveries")
    expect(log).to_contain_text("ping")
    expect(log).to_contain_text("Pending")

    # The jobs' step delivers it, signed with the secret shown.
    run = webhooks.deliver_due(session, timeout=5, allow_private=True)
    assert run.succeeded == 1
    [(headers, body)] = receiver.received
    assert webhooks.verify(body, headers["Portal-Signature"], secret)["type"] == "ping"
    goto(page, f"/accounts/{account.id}/developers/webhooks", heading=re.compile("Webhooks"))
    log = page.get_by_test_id("webhook-deliveries")
    expect(log).to_contain_text("Succeeded")
    expect(log.locator("td[data-label='Last answer']")).to_have_text("200")
    shots(page, screenshot, "i18-webhooks-log", problems)
    check_axe(page, problems)

    click_and_wait(page, page.get_by_role("button", name=re.compile(r"^Redeliver ping")))
    expect(flash(page, "will be sent again")).to_be_visible()
    expect(page.get_by_test_id("webhook-deliveries")).to_contain_text("Pending")
    assert webhooks.deliver_due(session, timeout=5, allow_private=True).succeeded == 1
    assert len(receiver.received) == 2

    # Rotate: its dialog first, then the new secret on its own page, in view
    page.get_by_role("link", name=f"Rotate secret of {receiver.url}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("keeps signing beside it for 24 hours")
    click_and_wait(page, dialog.get_by_role("button", name="Rotate secret"),
                   heading=re.compile("New signing secret"))
    expect(page.get_by_test_id("secret")).to_be_in_viewport()
    rotated = page.get_by_test_id("secret").inner_text().strip()
    assert rotated != secret and rotated.startswith("whsec_")
    click_and_wait(page, page.get_by_role("link", name="Done"), heading=re.compile("Webhooks"))
    expect(page.get_by_test_id("webhook-endpoints")).to_contain_text(
        "Rotating: the previous secret also signs until")

    # Delete: the dialog first ("Keep it" changes nothing), then Delete.
    page.get_by_role("link", name=f"Delete {receiver.url}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete the endpoint")
    check_axe(page, problems)
    click_and_wait(page, dialog.get_by_role("button", name="Delete"))
    expect(flash(page, "Deleted the endpoint")).to_be_visible()
    expect(page.get_by_test_id("no-endpoints")).to_be_visible()
    shots(page, screenshot, "i18-webhooks-deleted", problems)
    assert problems == []
