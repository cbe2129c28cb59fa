"""Configure → Agent Statuses, Call Queues with Presets, and Change Plan in the browser.

Agent Statuses: an owner adds a custom status with the keyboard, moves it up and down with
its buttons (htmx swaps the list; focus stays on a move button), sets it as their own
status in the page header, and deletes it (the confirmation dialog): the header falls back
to Online. Presets: a call queue's settings saved with "Save as Preset" fill in New Call
Queue's form through "Apply a preset". Change Plan: a standalone account upgrades through
the confirmation dialog; an agency with an active sub-account is told why it can't leave
the Agency plan, with no button to confirm.
"""

import re

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from portal.models import Account, AgentStatus, CallQueue, Membership, Preset, Role
from portal.services import agents, presets
from tests import factories as f
from tests.browser.conftest import (
    account_url,
    click_and_swap,
    click_and_wait,
    htmx_swap,
    navigation,
    open_menu,
    shots,
)

pytestmark = pytest.mark.browser

OWNER, OWNER_NAME = "olivia@example.test", "Olivia Owner"
ACCOUNT = "Harbor Dental"
AGENCY_OWNER = "ada@example.test"
AGENCY = "Northwind Agency"

LUNCH_COLOR, LUNCH_RGB = "#e91e63", "rgb(233, 30, 99)"
ONLINE_RGB = "rgb(46, 125, 50)"  # #2e7d32
BUILT_IN = ["Online", "Away", "Offline"]


@pytest.fixture
def owner(session):
    """Olivia, owner of the standalone account Harbor Dental (Pro), which has one custom
    agent status already: Training."""
    user = f.user(session, email=OWNER, name=OWNER_NAME)
    account = f.standalone(session, ACCOUNT, plan="Pro")
    f.member(session, user, account, Role.OWNER)
    agents.add(session, account, "Training", "#1e88e5", True)
    session.commit()
    return account


@pytest.fixture
def agency_owner(session):
    """Ada, owner of Northwind Agency (Agency plan) with one active sub-account."""
    user = f.user(session, email=AGENCY_OWNER, name="Ada Agency")
    agency = f.agency(session, AGENCY, owner=user)
    f.sub(session, agency, "Bayside Dental")
    session.commit()
    return agency


# ----------------------------------------------------------------------------- helpers

def heading(page: Page):
    return page.get_by_role("heading", level=1)


def nav_to(page: Page, name: str, account: str = ACCOUNT) -> None:
    open_menu(page, name, account)


# The pages a click leads to (HX-Redirect after a dialog's or a form's success).
STATUSES = {"url": account_url("agent-statuses/"), "heading": f"Agent Statuses · {ACCOUNT}"}
QUEUES = {"url": account_url("call-queues"), "heading": f"Call Queues · {ACCOUNT}"}
NEW_QUEUE = {"url": account_url("call-queues/new"), "heading": f"New Call Queue · {ACCOUNT}"}


def fresh(session, statement):
    """Read what the server committed, then end the read (SQLite: no lock kept)."""
    session.rollback()
    try:
        return session.scalars(statement).all()
    finally:
        session.rollback()


def status_names(page: Page) -> Locator:
    return page.get_by_test_id("agent-statuses").locator("tbody tr td:first-child")


def header_status(page: Page) -> Locator:
    return page.locator("#my-status")


# ----------------------------------------------------------------------------- agent statuses

def test_custom_agent_status_added_moved_set_in_the_header_and_deleted(
        page: Page, owner, session, sign_in, screenshot):
    problems: list[str] = []
    sign_in(OWNER)
    header = header_status(page)
    expect(header.get_by_label("Your status")).to_have_value("online")
    expect(header.get_by_test_id("my-status-dot")).to_have_css("fill", ONLINE_RGB)

    nav_to(page, "Agent Statuses")
    expect(page.get_by_role("link", name="Agent Statuses")).to_have_attribute(
        "aria-current", "page")
    expect(status_names(page)).to_have_text([*BUILT_IN, "Training"])

    # Add "Lunch" with the keyboard: type the name, Tab through color and the checkbox
    # (left unchecked: not available) to "Add status", Enter.
    add = page.get_by_role("region", name="Add a status")
    name = add.get_by_label("Name")
    name.focus()
    page.keyboard.type("Lunch")
    page.keyboard.press("Tab")
    color = add.get_by_label("Color")
    expect(color).to_be_focused()
    color.fill(LUNCH_COLOR)  # a color picker: its value set directly
    expect(color).to_be_focused()
    page.keyboard.press("Tab")
    expect(add.get_by_role("checkbox", name=re.compile("Counts as available"))).to_be_focused()
    page.keyboard.press("Tab")
    expect(add.get_by_role("button", name="Add status")).to_be_focused()
    with navigation(page, **STATUSES):  # added: the page again, with the flash
        page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Added")).to_have_text(
        "Added the status Lunch.")
    expect(status_names(page)).to_have_text([*BUILT_IN, "Training", "Lunch"])
    lunch_row = page.get_by_test_id("agent-statuses").locator("tbody tr").filter(
        has_text="Lunch")
    expect(lunch_row.locator("td")).to_have_text(
        ["Lunch", LUNCH_COLOR, "No", "Custom", re.compile("Delete")])
    expect(page.locator("#status-list")).to_contain_text(
        f"2 of {agents.MAX_CUSTOM_STATUSES} custom statuses.")
    # The header's select lists it too, after the built-in ones.
    expect(header.get_by_label("Your status").locator("option")).to_have_text(
        [*BUILT_IN, "Training", "Lunch"])
    shots(page, screenshot, "agent-statuses", problems)

    # Up with its button (Enter): the list swapped in place; Lunch is first now, so focus
    # moves to its "down" button ("up" is disabled).
    page.evaluate("window.notReloaded = true")
    up = page.get_by_role("button", name="Move Lunch up")
    up.focus()
    with htmx_swap(page):
        page.keyboard.press("Enter")
    expect(status_names(page)).to_have_text([*BUILT_IN, "Lunch", "Training"])
    expect(page.get_by_role("button", name="Move Lunch up")).to_be_disabled()
    down = page.get_by_role("button", name="Move Lunch down")
    expect(down).to_be_focused()
    # Enter again, on the focused button: back down; focus on its "up" button.
    with htmx_swap(page):
        page.keyboard.press("Enter")
    expect(status_names(page)).to_have_text([*BUILT_IN, "Training", "Lunch"])
    expect(page.get_by_role("button", name="Move Lunch down")).to_be_disabled()
    expect(page.get_by_role("button", name="Move Lunch up")).to_be_focused()
    assert page.evaluate("window.notReloaded") is True
    assert [s.name for s in fresh(session, select(AgentStatus).where(
        AgentStatus.account_id == owner.id).order_by(AgentStatus.position, AgentStatus.id))
    ] == ["Training", "Lunch"]

    # The header: choose Lunch, "Set"; the form is swapped in place and says so.
    header.get_by_label("Your status").select_option(label="Lunch")
    click_and_swap(page, header.get_by_role("button", name="Set"))
    header = header_status(page)
    expect(header.get_by_role("status")).to_have_text("Status: Lunch")
    expect(header.get_by_test_id("my-status-dot")).to_have_css("fill", LUNCH_RGB)
    expect(header.get_by_label("Your status").locator("option:checked")).to_have_text("Lunch")
    assert page.evaluate("window.notReloaded") is True

    # It persists after a reload.
    with navigation(page, **STATUSES):
        page.reload()
    header = header_status(page)
    expect(header.get_by_label("Your status").locator("option:checked")).to_have_text("Lunch")
    expect(header.get_by_test_id("my-status-dot")).to_have_css("fill", LUNCH_RGB)

    # Delete it: the confirmation dialog says Olivia is on it; she goes back to Online.
    page.get_by_role("link", name="Delete Lunch").focus()
    with htmx_swap(page):
        page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Delete the status Lunch?")
    expect(dialog).to_be_visible()
    assert dialog.evaluate("d => d.matches(':modal')")
    expect(dialog.get_by_test_id("users-on-status")).to_have_text(
        "1 user has this status now: it goes back to Online.")
    expect(dialog.get_by_role("link", name="Keep it")).to_be_focused()
    click_and_wait(page, dialog.get_by_role("button", name="Delete"), **STATUSES)
    expect(page.get_by_role("status").filter(has_text="Deleted")).to_have_text(
        "Deleted the status Lunch. The 1 user on it is Online now.")
    expect(status_names(page)).to_have_text([*BUILT_IN, "Training"])
    header = header_status(page)
    expect(header.get_by_label("Your status")).to_have_value("online")
    expect(header.get_by_label("Your status").locator("option")).to_have_text(
        [*BUILT_IN, "Training"])
    expect(header.get_by_test_id("my-status-dot")).to_have_css("fill", ONLINE_RGB)
    assert fresh(session, select(Membership.agent_status).where(
        Membership.account_id == owner.id)) == ["online"]
    assert not problems, "UI problems along the way:\n" + "\n".join(problems)


def test_the_header_select_follows_a_move_without_a_reload(page: Page, owner, sign_in):
    """Moving a custom status reorders the list in place (htmx); the header's status
    select on the same page should list the statuses in the new order too.

    Found by this test (fixed): the move's HX-Trigger agent-statuses-changed had no
    listener; the header's slot now listens and draws its form again."""
    sign_in(OWNER)
    nav_to(page, "Agent Statuses")
    page.get_by_role("region", name="Add a status").get_by_label("Name").fill("Lunch")
    click_and_wait(page, page.get_by_role("button", name="Add status"), **STATUSES)
    expect(status_names(page)).to_have_text([*BUILT_IN, "Training", "Lunch"])

    # The list is swapped, and its HX-Trigger has the header's form drawn again.
    click_and_swap(page, page.get_by_role("button", name="Move Lunch up"))
    expect(status_names(page)).to_have_text([*BUILT_IN, "Lunch", "Training"])
    expect(header_status(page).get_by_label("Your status").locator("option")).to_have_text(
        [*BUILT_IN, "Lunch", "Training"])


# ----------------------------------------------------------------------------- presets

QUEUE_SETTINGS = {"distribution": "most_idle", "ring_seconds": 45, "max_wait_minutes": 12,
                  "voicemail": False, "announce_position": True}


def queue_settings(queue: CallQueue) -> dict:
    return {field: getattr(queue, field) for field in QUEUE_SETTINGS}


def test_save_a_call_queue_as_a_preset_and_apply_it_on_a_new_one(
        page: Page, owner, session, sign_in, screenshot):
    problems: list[str] = []
    sign_in(OWNER)
    nav_to(page, "Call Queues")

    # New Call Queue "Front desk", every setting changed from the defaults.
    click_and_wait(page, page.get_by_role("link", name="New Call Queue"), **NEW_QUEUE)
    expect(page.get_by_text("No call queue presets yet")).to_be_visible()
    form = page.locator("#record-settings")
    expect(form.get_by_label("Distribution")).to_have_value("round_robin")
    expect(form.get_by_label(re.compile("^Ring each agent"))).to_have_value("20")
    form.get_by_label("Name").fill("Front desk")
    form.get_by_label("Distribution").select_option("most_idle")
    form.get_by_label(re.compile("^Ring each agent")).fill("45")
    form.get_by_label(re.compile("^Longest wait")).fill("12")
    form.get_by_role("checkbox", name=re.compile("Voicemail")).uncheck()
    form.get_by_role("checkbox", name=re.compile("Announce position")).check()
    click_and_wait(page, form.get_by_role("button", name="Add call queue"), **QUEUES)
    expect(page.get_by_role("status").filter(has_text="Added")).to_have_text(
        "Added the call queue Front desk.")

    # Save as Preset: the dialog asks the name (Front desk's, selected to replace).
    click_and_swap(page, page.get_by_role("link", name="Save as Preset: Front desk"))
    dialog = page.get_by_role("dialog", name="Save Front desk as a preset")
    expect(dialog).to_be_visible()
    name = dialog.get_by_label("Preset name")
    expect(name).to_have_value("Front desk")
    expect(name).to_be_focused()
    name.fill("Busy season")
    click_and_wait(page, dialog.get_by_role("button", name="Save as Preset"), **QUEUES)
    expect(page.get_by_role("status").filter(has_text="preset")).to_have_text(
        "Saved the settings of Front desk as the preset Busy season. "
        "Apply it on New Call Queue.")
    (preset,) = fresh(session, select(Preset).where(Preset.account_id == owner.id))
    assert (preset.name, preset.settings) == ("Busy season", QUEUE_SETTINGS)

    # New Call Queue → Apply a preset → Busy season: the form swapped in, filled in.
    click_and_wait(page, page.get_by_role("link", name="New Call Queue"), **NEW_QUEUE)
    page.evaluate("window.notReloaded = true")
    form = page.locator("#record-settings")
    expect(form.get_by_label("Distribution")).to_have_value("round_robin")
    with htmx_swap(page):
        page.get_by_label("Apply a preset").select_option(label="Busy season")
    expect(page.locator("#record-form").get_by_role("status")).to_have_text(
        "Applied the preset Busy season: review the settings and save.")
    form = page.locator("#record-settings")
    expect(form.get_by_label("Distribution")).to_have_value("most_idle")
    expect(form.get_by_label(re.compile("^Ring each agent"))).to_have_value("45")
    expect(form.get_by_label(re.compile("^Longest wait"))).to_have_value("12")
    expect(form.get_by_role("checkbox", name=re.compile("Voicemail"))).not_to_be_checked()
    expect(form.get_by_role("checkbox", name=re.compile("Announce position"))).to_be_checked()
    expect(form.get_by_label("Name")).to_have_value("")
    expect(page.get_by_label("Apply a preset").locator("option:checked")).to_have_text(
        "Busy season")
    expect(page).to_have_url(re.compile(rf"/call-queues/new\?preset={preset.id}(&|$)"))
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("#record-form")).to_have_count(1)  # replaced, not nested
    shots(page, screenshot, "new-call-queue-preset-applied", problems)

    # A name, save: the new queue has the preset's settings.
    form.get_by_label("Name").fill("Overflow")
    click_and_wait(page, form.get_by_role("button", name="Add call queue"), **QUEUES)
    expect(page.get_by_role("status").filter(has_text="Added")).to_have_text(
        "Added the call queue Overflow.")
    rows = page.get_by_test_id("records").locator("tbody tr")
    expect(rows.locator("td:first-child")).to_have_text(["Front desk", "Overflow"])
    expect(rows.filter(has_text="Overflow").locator("td").nth(1)).to_have_text(
        "Distribution: Longest idle agent first · Ring: 45 seconds · Longest wait: 12 minutes"
        " · Voicemail: No · Announce position: Yes")
    queues = fresh(session, select(CallQueue).where(CallQueue.account_id == owner.id)
                   .order_by(CallQueue.name))
    assert {q.name: queue_settings(q) for q in queues} == {
        "Front desk": QUEUE_SETTINGS, "Overflow": QUEUE_SETTINGS}
    assert not problems, "UI problems along the way:\n" + "\n".join(problems)


def test_a_name_typed_before_applying_a_preset_is_kept(page: Page, owner, session, sign_in):
    """The "Apply a preset" form includes the Name field (hx-include), so a name already
    typed survives the swap; going back to "None" brings the default settings back."""
    presets.create_preset(session, owner, "call_queue", {"name": "Busy season",
                                                         **QUEUE_SETTINGS})
    session.commit()
    sign_in(OWNER)
    nav_to(page, "Call Queues")
    click_and_wait(page, page.get_by_role("link", name="New Call Queue"), **NEW_QUEUE)
    page.locator("#record-settings").get_by_label("Name").fill("Evening line")
    with htmx_swap(page):
        page.get_by_label("Apply a preset").select_option(label="Busy season")
    form = page.locator("#record-settings")
    expect(form.get_by_label(re.compile("^Ring each agent"))).to_have_value("45")
    expect(form.get_by_label("Name")).to_have_value("Evening line")

    with htmx_swap(page):
        page.get_by_label("Apply a preset").select_option(label="None (default settings)")
    expect(page.locator("#record-form").get_by_role("status")).to_have_count(0)
    form = page.locator("#record-settings")
    expect(form.get_by_label(re.compile("^Ring each agent"))).to_have_value("20")
    expect(form.get_by_label("Distribution")).to_have_value("round_robin")
    expect(form.get_by_label("Name")).to_have_value("Evening line")


# ----------------------------------------------------------------------------- change plan

def plan_rows(page: Page) -> Locator:
    return page.get_by_test_id("plans").locator("tbody tr")


def plan_page(account: str) -> dict:
    return {"url": account_url("plan/"), "heading": f"Change Plan · {account}"}


def test_change_plan_from_pro_to_performance(page: Page, owner, session, sign_in, screenshot):
    problems: list[str] = []
    sign_in(OWNER)
    expect(heading(page)).to_have_text(f"Account Settings · {ACCOUNT}")
    click_and_wait(page, page.get_by_role("link", name="Change Plan"), **plan_page(ACCOUNT))
    expect(page.get_by_test_id("current-plan")).to_have_text("Pro: $179.00 a month.")
    current = plan_rows(page).and_(page.locator("[aria-current=true]"))
    expect(current.locator("td:first-child")).to_have_text("Pro")
    shots(page, screenshot, "change-plan", problems)

    click_and_swap(page, page.get_by_role("link", name="Choose Performance"))
    dialog = page.get_by_role("dialog", name="Upgrade to Performance?")
    expect(dialog).to_be_visible()
    assert dialog.evaluate("d => d.matches(':modal')")
    expect(dialog.get_by_role("paragraph").first).to_have_text(
        "From Pro ($179.00 a month) to Performance ($499.00 a month).")
    expect(dialog.get_by_role("link", name="Keep Pro")).to_be_visible()
    shots(page, screenshot, "change-plan-confirm", problems)

    click_and_wait(page, dialog.get_by_role("button", name="Change to Performance"),
                   **plan_page(ACCOUNT))
    expect(page.get_by_role("status").filter(has_text="Your plan")).to_have_text(
        "Your plan is now Performance ($499.00 a month), from the next monthly plan fee.")
    expect(dialog).to_have_count(0)
    expect(page.get_by_test_id("current-plan")).to_have_text(
        "Performance: $499.00 a month.")
    expect(current.locator("td:first-child")).to_have_text("Performance")
    expect(current.locator("td").nth(2)).to_have_text("Current plan")
    expect(plan_rows(page).filter(has_text="Pro").locator("td").nth(2)).to_have_text(
        "Downgrade")
    assert fresh(session, select(Account.plan).where(Account.id == owner.id)) == [
        "Performance"]
    assert not problems, "UI problems along the way:\n" + "\n".join(problems)


def test_an_agency_with_an_active_sub_account_cannot_choose_pro(
        page: Page, agency_owner, session, sign_in, screenshot):
    problems: list[str] = []
    sign_in(AGENCY_OWNER)
    nav_to(page, "Account Settings", AGENCY)
    click_and_wait(page, page.get_by_role("link", name="Change Plan"), **plan_page(AGENCY))
    expect(page.get_by_test_id("current-plan")).to_have_text("Agency: $299.00 a month.")
    expect(page.locator(".note")).to_contain_text("It has 1 active sub-account")

    click_and_swap(page, page.get_by_role("link", name="Choose Pro"))
    dialog = page.get_by_role("dialog", name="Downgrade to Pro?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("alert")).to_contain_text(
        f"{AGENCY} still has 1 active sub-account: leaving the Agency plan")
    expect(dialog.get_by_role("button")).to_have_count(0)
    expect(dialog.get_by_role("link", name="Back to the plans")).to_be_focused()
    shots(page, screenshot, "change-plan-refused", problems)

    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(page.get_by_test_id("current-plan")).to_have_text("Agency: $299.00 a month.")
    assert fresh(session, select(Account.plan).where(Account.id == agency_owner.id)) == [
        "Agency"]
    assert not problems, "UI problems along the way:\n" + "\n".join(problems)
