"""Issue 14, items 6 and 11 (H5): a canceled account's Billing Settings read-only; a refused
htmx request answered with a message in place, never a page swapped into a section;
Restore all released numbers; statement presets; the PDF link without a CSRF token."""

import re
from datetime import timedelta

import pytest

from portal import clock
from portal.models import NumberStatus, TrackingNumber
from tests import factories as f
from tests.conftest import HX
from tests.web import billing_world as world
from tests.web.billing_world import READ_ONLY, build, section, snapshot, url
from tests.web.conftest import sign_in_as
from tests.web.lifecycle_world import NOW, post
from tests.web.pages import NOT_FOUND, assert_full_page, body, shown, text

FORM_OR_CONTROL = re.compile(r"<(form|input|select|textarea|button)\b")


@pytest.fixture
def bw(session):
    clock.freeze(NOW)
    return build(session)


def hx(target: str) -> dict:
    """An htmx request aimed at the element with that id (what htmx sends as HX-Target)."""
    return {**HX, "HX-Target": target}


def assert_message_in_place(response, status: int, message: str) -> str:
    """The refusal as a message retargeted to the page's message region: no page, no card,
    no heading to swap into a section."""
    html = body(response)
    assert response.status_code == status
    assert response.headers["HX-Retarget"] == "#messages"
    assert response.headers["HX-Reswap"] == "innerHTML"
    assert html.strip().startswith('<p class="flash flash-error" role="alert"')
    for page_part in ("<html", "<header", "<main", "<section", "<h1", "card"):
        assert page_part not in html, page_part
    assert message in html
    return html


# --- item 6: a canceled account's Billing Settings --------------------------------------------

def test_a_canceled_accounts_billing_settings_show_no_edit_control_and_say_why(client, bw):
    sign_in_as(client, bw.ann)
    html = assert_full_page(client.get(url(bw.closed)))
    assert shown("Billing Settings are read-only: Closed Shop is canceled.") in html
    assert f'href="/accounts/{bw.closed.id}/#status">reactivate it</a>' in html
    main = html[html.index('<main id="main">'):html.index("</main>")]
    # the settings still read: the card, recharge state, the payment history's links
    assert "Visa ending 4242" in section(main, "payment-methods")
    assert "Auto recharge is off." in section(main, "auto-recharge")
    assert "No payments can be made while the account is canceled." in main
    # and nothing to edit: no form, field or button in any section, no New/Edit/Remove link
    for sid in ("payment-methods", "auto-recharge", "critical-phone", "make-payment",
                "direct-charge", "service-address"):
        assert not FORM_OR_CONTROL.search(section(main, sid)), sid
    for gone in ("New Credit Card", "New ACH", "/edit", "/remove", "Save",
                 # nor advice to act: the pencil, a recharge suggestion, a pause warning
                 "Use the pencil", "recharge-suggestion", "the account is paused"):
        assert gone not in main, gone


def test_an_active_accounts_billing_settings_keep_their_controls(client, bw):
    sign_in_as(client, bw.ann)
    html = assert_full_page(client.get(url(bw.solo)))
    assert "read-only" not in html
    for sid in ("auto-recharge", "critical-phone", "service-address", "direct-charge"):
        assert "<form" in section(html, sid), sid
    assert "New Credit Card" in html


# --- a refused htmx request: a message in place, one route per kind of refusal -------------

def test_a_refused_section_save_is_a_message_not_a_page_in_the_section(client, session, bw):
    """NotAllowed (403): saving a section of a canceled account."""
    sign_in_as(client, bw.ann)
    before = snapshot(session)
    response = post(client, url(bw.closed, "critical-phone"), {"phone": "+14155550134"},
                    headers=hx("critical-phone"))
    html = assert_message_in_place(response, 403, shown(READ_ONLY.format("Closed Shop")))
    assert "<strong>Not allowed.</strong>" in html
    assert "data-dismiss" in html
    assert snapshot(session) == before


def test_a_refused_dialog_request_answers_a_dialog(client, bw):
    """NotFound (404) for a dialog's request: a dialog saying so, swapped into the slot."""
    sign_in_as(client, bw.ann)
    response = client.get(url(bw.solo, "payment-methods/999999/edit"),
                          headers=hx("dialog-slot"))
    html = body(response)
    assert response.status_code == 404
    assert "HX-Retarget" not in response.headers
    assert html.strip().startswith('<dialog class="confirm" aria-labelledby="refusal-h"')
    assert '<h2 id="refusal-h">Page not found</h2>' in html
    assert NOT_FOUND in html
    assert "<html" not in html and "<main" not in html


def test_a_not_found_section_request_is_a_message(client, bw):
    """NotFound (404) for a section's request (another tenant's account)."""
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.rival, "critical-phone"), {"phone": "+14155550134"},
                    headers=hx("critical-phone"))
    assert_message_in_place(response, 404, NOT_FOUND)


def test_an_expired_form_is_a_message(client, session, bw):
    """Validation of the request itself (400, the CSRF check) through the error handler."""
    sign_in_as(client, bw.ann)
    before = snapshot(session)
    response = post(client, url(bw.solo, "critical-phone"), {"phone": "+14155550134"},
                    csrf=False, headers=hx("critical-phone"))
    assert_message_in_place(response, 400, "The form was out of date.")
    assert snapshot(session) == before


def test_a_role_users_refusal_is_a_message(client, bw):
    """403 from the role rule (the role matrix), on a section."""
    sign_in_as(client, bw.vic)
    response = post(client, url(bw.solo, "service-address"), world.ADDRESS,
                    headers=hx("service-address"))
    assert_message_in_place(response, 403, shown(world.BILLING_ONLY))


def test_a_full_page_refusal_is_still_the_error_page(client, bw):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.closed, "critical-phone"), {"phone": "+14155550134"})
    assert response.status_code == 403
    html = assert_full_page(response)
    assert "<h1>Not allowed</h1>" in html
    assert "HX-Retarget" not in response.headers
    assert '<div id="messages" class="messages"></div>' in html


def test_a_boosted_refusal_is_the_whole_page(client, bw):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.closed, "critical-phone"), {"phone": "+14155550134"},
                    headers={**HX, "HX-Boosted": "true"})
    assert response.status_code == 403
    assert "<h1>Not allowed</h1>" in assert_full_page(response)


# --- item 11: Restore all released numbers ----------------------------------------------------

@pytest.fixture
def released(session, w):
    """Solo Shop's released numbers: Old flyer (3 days, from the world), Exactly 14 (14 days),
    Fifteen days (too old: ask support) and Taken (10 days, active on Rival Shop now)."""
    from portal.services import numbers

    r = {"old": w.old_number,
         "edge": f.number(session, w.solo, label="Exactly 14",
                          released_at=NOW - timedelta(days=14)),
         "past": f.number(session, w.solo, label="Fifteen days",
                          released_at=NOW - timedelta(days=15)),
         "taken": f.number(session, w.solo, label="Taken", released_at=NOW - timedelta(days=10))}
    numbers.add(session, w.rival, r["taken"].number, "Theirs now")
    session.commit()
    return r


def statuses(session, account):
    session.expire_all()
    return {n.label: n.status for n in session.query(TrackingNumber).filter_by(
        account_id=account.id)}


def test_released_numbers_offer_restore_all_when_more_than_one_can_be_restored(client, w,
                                                                               released):
    sign_in_as(client, w.sam)
    html = assert_full_page(client.get(f"/accounts/{w.solo.id}/numbers/released"))
    link = f"/accounts/{w.solo.id}/numbers/released/restore-all"
    assert (f'<a class="button" href="{link}" hx-get="{link}" hx-target="#dialog-slot" '
            'hx-push-url="false">Restore all (3)</a>') in html


def test_restore_all_confirms_what_will_be_restored_and_what_cannot(client, w, released):
    sign_in_as(client, w.sam)
    response = client.get(f"/accounts/{w.solo.id}/numbers/released/restore-all",
                          headers=hx("dialog-slot"))
    assert response.status_code == 200
    html = body(response)
    assert html.strip().startswith('<dialog class="confirm" aria-labelledby="restore-all-h"')
    to_restore = html[html.index('data-testid="to-restore"'):html.index("</ul>")]
    for key in ("old", "edge", "taken"):
        assert released[key].number in to_restore, key
    assert released["past"].number not in to_restore
    assert (f"<li>{released['past'].number}: Released more than 14 days ago.</li>") in html
    assert '<input type="hidden" name="confirm" value="yes">' in html
    assert ">Restore 3 numbers</button>" in html


def test_restore_all_restores_each_it_may_and_says_why_not_for_the_others(client, session, w,
                                                                           released):
    sign_in_as(client, w.sam)
    page = f"/accounts/{w.solo.id}/numbers/released"
    response = post(client, f"{page}/restore-all", {"confirm": "yes"})
    assert response.status_code == 303 and response.location == page
    assert statuses(session, w.solo) == {
        "Main line": NumberStatus.ACTIVE, "Google Ads": NumberStatus.ACTIVE,
        "Old flyer": NumberStatus.ACTIVE, "Exactly 14": NumberStatus.ACTIVE,
        "Fifteen days": NumberStatus.RELEASED, "Taken": NumberStatus.RELEASED}
    html = body(client.get(page))
    restored = sorted([released["old"].number, released["edge"].number])
    # what was restored as a success, what was not (and why) apart, as an error
    [done] = re.findall(r'<p class="flash flash-success" role="status">([^<]+)</p>', html)
    assert done == f"Restored 2 numbers on Solo Shop: {', '.join(n for n in restored)}." or \
        done == f"Restored 2 numbers on Solo Shop: {', '.join(reversed(restored))}."
    [not_done] = re.findall(r'<p class="flash flash-error" role="status">([^<]+)</p>', html)
    assert not_done == shown(
        f"{released['taken'].number} is in use by another account now; it can't be restored. "
        f"{released['past'].number} was released more than 14 days ago: ask support.")
    from portal.models import EventKind
    from portal.services import lifecycle
    events = [e for e in lifecycle.events(session, w.solo) if e.kind == EventKind.NUMBER_RESTORED]
    assert sorted(e.details["number"] for e in events) == restored


def test_restore_all_needs_the_confirmation_and_an_admin_of_an_active_account(client, session,
                                                                              w, released):
    page = f"/accounts/{w.solo.id}/numbers/released"
    before = statuses(session, w.solo)
    sign_in_as(client, w.sam)
    response = post(client, f"{page}/restore-all", {}, headers=hx("dialog-slot"))
    assert response.status_code == 422
    assert "Restoring needs the confirmation: nothing was changed." in body(response)
    sign_in_as(client, w.viewer)
    assert post(client, f"{page}/restore-all", {"confirm": "yes"}).status_code == 403
    sign_in_as(client, w.sam)
    closed = post(client, f"/accounts/{w.closed.id}/numbers/released/restore-all",
                  {"confirm": "yes"})
    assert closed.status_code == 403
    assert statuses(session, w.solo) == before
    assert statuses(session, w.closed)["Closed line"] == NumberStatus.RELEASED


# --- item 11: statement presets and the Download PDF link ------------------------------------

PRESETS = [("This month", "2026-11-01", "2026-11-23"),
           ("Last month", "2026-10-01", "2026-10-31"),
           ("Last quarter", "2026-07-01", "2026-09-30"),
           ("Year to date", "2026-01-01", "2026-11-23")]


def test_the_statement_dialog_offers_presets_that_fill_the_range(client, bw):
    sign_in_as(client, bw.ann)
    base = url(bw.solo, "statements")
    html = body(client.get(base, headers=hx("dialog-slot")))
    links = re.findall(r'<a class="button small" href="([^"]+)" hx-get="\1" hx-target="#st-period" '
                       r'hx-select="#st-period" hx-select-oob="#st-pdf,#st-csv"\s+'
                       r'hx-swap="outerHTML" '
                       r'hx-push-url="false" ?(aria-current="true")?>([^<]+)</a>', html)
    assert [(label, href) for href, _current, label in links] == [
        (label, f"{base}?from={start}&amp;to={end}") for label, start, end in PRESETS]
    assert [label for _h, current, label in links if current] == ["This month"]  # the default
    # a preset asked again: its range in the fields, marked current, and in the PDF link
    response = client.get(base, query_string={"from": "2026-10-01", "to": "2026-10-31"},
                          headers=hx("st-period"))
    assert response.status_code == 200
    page = body(response)
    assert 'name="from" value="2026-10-01"' in page and 'name="to" value="2026-10-31"' in page
    assert re.search(r'aria-current="true">Last month</a>', page)
    assert (f'id="st-pdf" class="button" href="{url(bw.solo, "statements.pdf")}'
            '?from=2026-10-01&amp;to=2026-10-31"') in page
    # and the postings CSV beside it (issue 17), swapped in with it
    assert (f'id="st-csv" class="button" href="{url(bw.solo, "statements.csv")}'
            '?from=2026-10-01&amp;to=2026-10-31" download') in page
    # without JavaScript the preset link opens the dialog as a page with that range
    full = assert_full_page(client.get(base, query_string={"from": "2026-07-01",
                                                           "to": "2026-09-30"}))
    assert 'name="from" value="2026-07-01"' in full


def test_download_pdf_is_a_get_without_a_token_that_changes_nothing(client, session, bw):
    sign_in_as(client, bw.ann)
    page = body(client.get(url(bw.solo, "statements"), headers=hx("dialog-slot")))
    [href] = re.findall(r'id="st-pdf" class="button" href="([^"]+)"', page)
    assert "csrf" not in href
    before = snapshot(session)
    response = client.get(href.replace("&amp;", "&"))
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert snapshot(session) == before


def test_a_canceled_accounts_statements_download_only(client, bw):
    sign_in_as(client, bw.ann)
    html = body(client.get(url(bw.closed, "statements"), headers=hx("dialog-slot")))
    assert "Download PDF</a>" in html
    assert "Send Statement" not in html and "Save recurring schedule" not in html


# --- item 11: Change History words fields and values as the pages do --------------------------

def test_change_history_words_kinds_and_distributions(client, session, w):
    from portal.models import PresetKind
    from portal.services import presets

    queue = presets.KINDS[PresetKind.CALL_QUEUE]
    presets.create_record(session, w.solo, queue, {
        "name": "Front desk", "distribution": "simultaneous", "ring_seconds": 20,
        "max_wait_minutes": 5, "voicemail": True})
    presets.create_preset(session, w.solo, PresetKind.CALL_QUEUE, {
        "name": "Busy season", "distribution": "most_idle", "ring_seconds": 30,
        "max_wait_minutes": 10, "voicemail": True, "announce_position": True})
    session.commit()
    sign_in_as(client, w.sam)
    html = body(client.get(f"/accounts/{w.solo.id}/history/"))
    changes = text(html)
    for raw in ("call_queue", "simultaneous", "most_idle", "Settings: distribution",
                "Max wait minutes", "Kind: call"):
        assert raw not in changes, raw
    assert "Distribution : Ring all agents at once" in changes
    assert "Kind : Call queue" in changes
    assert "Distribution : Longest idle agent first" in changes
    assert "Longest wait (minutes) : 10" in changes
    assert "Announce position : Yes" in changes


@pytest.mark.own_app  # adds a test-only route
def test_an_unhandled_validation_refusal_is_a_message_or_the_page(app, client):
    """ValidationFailed that no view caught (422, the DomainError handler): a message in
    place for htmx, the error page for a full request."""
    from portal.errors import ValidationFailed

    @app.post("/test-only/invalid")
    def invalid():
        raise ValidationFailed({"amount": "The amount is required."})

    app.config["WTF_CSRF_ENABLED"] = False
    response = client.post("/test-only/invalid", headers=hx("make-payment"))
    assert_message_in_place(response, 422, "The amount is required.")
    full = client.post("/test-only/invalid")
    assert full.status_code == 422
    assert "<h1>That didn&#39;t work</h1>" in assert_full_page(full, nav=False)
