"""Settings → Change History (/accounts/<id>/history/) and the Versions panels: who may read
it, what a row shows, the filters (user, record type, dates, sub-accounts) and their 422s,
pagination, the htmx fragment, one record's versions, and the panels on the feature pages."""

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from sqlalchemy import delete, select

from portal import clock, versioning
from portal.models import Call, Cause, LedgerKind, Role, TrackingNumber, Version
from portal.services import ledger, numbers
from tests import factories as f
from tests.conftest import HX
from tests.web.conftest import sign_in_as
from tests.web.lifecycle_world import post
from tests.web.pages import (
    NOT_FOUND,
    assert_fragment,
    assert_full_page,
    body,
    login_location,
    pager_links,
    query,
    shown,
    table_rows,
    text,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
T3 = datetime(2026, 11, 22, 8, 15, tzinfo=UTC)
T4 = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)

ROLE_REFUSED = shown("Only the account's owners and admins can do that.")


def at(moment: datetime, user=None):
    """Changes made at `moment` by `user` (the system when None)."""
    clock.freeze(moment)
    return versioning.acting_as(user.id if user else None, user.name if user else "System")


@pytest.fixture
def w(session):
    """Acme Plumbing (admin Ann, role-user Vic), Rival Shop (admin Rex), Northwind Agency
    (owner Avery, role-user Stu) with Bayside Dental (its own admin Bea). Versions (the
    setup's own removed) of Acme Plumbing:

    - T1 Ann renames it; T2 Ann adds a tracking number; T3 Vic changes his name;
    - T4 the ledger pauses it for billing (the system).

    Of Northwind Agency: T2 Avery renames it. Of Bayside Dental: T3 Bea renames it.
    """
    clock.freeze(NOW)
    users = {key: f.user(session, f"{key}@example.test", name=name) for key, name in (
        ("ann", "Ann Admin"), ("vic", "Vic User"), ("rex", "Rex Rival"),
        ("avery", "Avery Owner"), ("stu", "Stu Staff"), ("bea", "Bea Bayside"))}
    w = SimpleNamespace(**users)
    w.solo = f.standalone(session, "Acme Plumbing", admin=w.ann)
    f.member(session, w.vic, w.solo, Role.USER)
    w.rival = f.standalone(session, "Rival Shop", admin=w.rex)
    w.agency = f.agency(session, "Northwind Agency", owner=w.avery)
    f.member(session, w.stu, w.agency, Role.USER)
    w.bayside = f.sub(session, w.agency, "Bayside Dental")
    f.member(session, w.bea, w.bayside, Role.ADMIN)
    session.commit()
    session.execute(delete(Version))
    session.commit()

    with at(T1, w.ann):
        w.solo.name = "Acme Plumbing Co"
        session.commit()
    with at(T2, w.ann):
        w.number = numbers.add(session, w.solo, "+14155550101", "Google Ads")
        session.commit()
    with at(T3, w.vic):
        w.vic.name = "Victor User"
        session.commit()
    with at(T4):
        ledger.post(session, w.solo, LedgerKind.USAGE, -500, "Calls", "usage-1", Cause.USAGE)
        session.commit()
    with at(T2, w.avery):
        w.agency.name = "Northwind Agency LLC"
        session.commit()
    with at(T3, w.bea):
        w.bayside.name = "Bayside Dental Care"
        session.commit()
    with at(T1, w.rex):
        w.rival.name = "Rival Shop Inc"
        session.commit()
    clock.freeze(NOW)
    return w


def history_url(account, **args) -> str:
    return f"/accounts/{account.id}/history/" + (f"?{urlencode(args)}" if args else "")


def versions_url(account, **args) -> str:
    return f"/accounts/{account.id}/history/versions?{urlencode(args)}"


def cells(html: str) -> list[list[str]]:
    return [r.cells for r in table_rows(html)]


SOLO_ROWS = [
    ["2026-11-23 11:00:00", "System", "Account settings: Acme Plumbing Co changed",
     "Status: Active → Billing paused"],
    ["2026-11-22 08:15:00", "Vic User", "User: Victor User changed",
     "Name: Vic User → Victor User"],
    ["2026-11-21 10:30:00", "Ann Admin", "Tracking number: +14155550101 created",
     "Label: Google Ads Number: +14155550101 Status: Active"],
    ["2026-11-20 09:00:00", "Ann Admin", "Account settings: Acme Plumbing Co changed",
     "Name: Acme Plumbing → Acme Plumbing Co"],
]


# --------------------------------------------------------------- who may read it

def test_signed_out_is_sent_to_sign_in(client, w):
    response = client.get(history_url(w.solo))
    assert response.status_code == 302
    assert login_location(response) == ("/login", f"/accounts/{w.solo.id}/history/")
    partial = client.get(history_url(w.solo), headers=HX)
    assert partial.status_code == 401
    assert login_location(partial)[0] == "/login"
    response = client.get(versions_url(w.solo, type="account", id=w.solo.id))
    assert response.status_code == 302
    assert login_location(response)[0] == "/login"


def test_an_admin_sees_every_version_of_the_account_newest_first(client, w):
    sign_in_as(client, w.ann)
    response = client.get(history_url(w.solo))
    assert response.status_code == 200
    html = assert_full_page(response)
    assert "<h1>Change History" in html
    assert "kept 7 days" in html
    assert cells(html) == SOLO_ROWS
    assert "Changes 1–4 of 4" in html
    assert "Include sub-accounts" not in html  # not an agency
    assert re.search(rf'href="/accounts/{w.solo.id}/history/"\s+aria-current="page">'
                     r"Change History</a>", html)
    for other in ("Rival Shop Inc", "Northwind Agency LLC", "Bayside Dental Care"):
        assert other not in html


def test_a_change_made_through_a_page_names_the_signed_in_user(client, session, w):
    sign_in_as(client, w.ann)
    response = post(client, f"/accounts/{w.solo.id}/billing/critical-phone",
                    {"phone": "+1 415 555 0134"}, headers=HX)
    assert response.status_code == 200
    html = body(client.get(history_url(w.solo, type="billing_settings")))
    [row] = cells(html)
    assert row == ["2026-11-23 12:00:00", "Ann Admin", "Billing settings: Billing settings created",
                   "Country: US Critical billing phone number: +14155550134 "
                   "Opt-in direct charge: No"]


def test_a_role_user_is_refused(client, w):
    sign_in_as(client, w.vic)
    response = client.get(history_url(w.solo))
    assert response.status_code == 403
    assert ROLE_REFUSED in body(response)
    assert "Acme Plumbing Co changed" not in body(response)
    response = client.get(versions_url(w.solo, type="account", id=w.solo.id))
    assert response.status_code == 403
    assert "Name:" not in body(response)
    # ... and the menu doesn't offer it.
    assert "Change History" not in body(client.get(f"/accounts/{w.solo.id}/"))
    sign_in_as(client, w.stu)  # a role user of the agency
    assert client.get(history_url(w.agency)).status_code == 403
    assert client.get(history_url(w.agency, subs="1")).status_code == 403


def test_another_tenant_gets_not_found(client, w):
    sign_in_as(client, w.rex)
    for url in (history_url(w.solo), versions_url(w.solo, type="account", id=w.solo.id)):
        response = client.get(url)
        assert response.status_code == 404
        assert NOT_FOUND in body(response)


def test_a_sub_accounts_admin_cant_read_the_agencys_history(client, w):
    sign_in_as(client, w.bea)
    for url in (history_url(w.agency), history_url(w.agency, subs="1"),
                versions_url(w.agency, type="account", id=w.agency.id),
                versions_url(w.agency, type="account", id=w.bayside.id)):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "Northwind Agency LLC changed" not in body(response)
    # Their own sub-account's history, kept as long as the agency's.
    response = client.get(history_url(w.bayside))
    assert response.status_code == 200
    assert cells(body(response)) == [
        ["2026-11-22 08:15:00", "Bea Bayside", "Account settings: Bayside Dental Care changed",
         "Name: Bayside Dental → Bayside Dental Care"]]
    assert "kept 120 days (as its agency's)" in body(response)
    # ... and no sub-accounts to include.
    response = client.get(history_url(w.bayside, subs="1"))
    assert response.status_code == 422
    assert shown("Only an agency's history can include sub-accounts.") in body(response)


def test_the_agency_includes_its_sub_accounts_only_when_asked(client, w):
    sign_in_as(client, w.avery)
    html = body(client.get(history_url(w.agency)))
    assert "Include sub-accounts" in html
    assert cells(html) == [
        ["2026-11-21 10:30:00", "Avery Owner", "Account settings: Northwind Agency LLC changed",
         "Name: Northwind Agency → Northwind Agency LLC"]]
    assert '<th scope="col">Account</th>' not in html

    response = client.get(history_url(w.agency, subs="1"))
    assert response.status_code == 200
    html = body(response)
    assert '<th scope="col">Account</th>' in html
    assert cells(html) == [
        ["2026-11-22 08:15:00", "Bea Bayside", "Bayside Dental Care",
         "Account settings: Bayside Dental Care changed",
         "Name: Bayside Dental → Bayside Dental Care"],
        ["2026-11-21 10:30:00", "Avery Owner", "Northwind Agency LLC",
         "Account settings: Northwind Agency LLC changed",
         "Name: Northwind Agency → Northwind Agency LLC"]]
    assert 'name="subs" value="1" checked' in html
    # Another agency's, or a standalone's, versions never come along.
    assert "Acme Plumbing" not in html and "Rival Shop" not in html
    # The agency's admin reads the sub-account's own history too.
    assert cells(body(client.get(history_url(w.bayside))))[0][1] == "Bea Bayside"


# --------------------------------------------------------------- filters

def test_filter_by_user(client, w):
    sign_in_as(client, w.ann)
    html = body(client.get(history_url(w.solo, user=w.ann.id)))
    assert cells(html) == [SOLO_ROWS[2], SOLO_ROWS[3]]
    assert f'<option value="{w.ann.id}" selected>Ann Admin</option>' in html
    # The choices: the users with a version kept, by name.
    assert f'<option value="{w.vic.id}" >Victor User</option>' in html
    assert cells(body(client.get(history_url(w.solo, user=w.vic.id)))) == [SOLO_ROWS[1]]
    # Someone with no version here: nothing, not someone else's.
    assert cells(body(client.get(history_url(w.solo, user=w.rex.id)))) == []


def test_filter_by_record_type(client, w):
    sign_in_as(client, w.ann)
    html = body(client.get(history_url(w.solo, type="tracking_number")))
    assert cells(html) == [SOLO_ROWS[2]]
    assert '<option value="tracking_number" selected>Tracking number</option>' in html
    assert cells(body(client.get(history_url(w.solo, type="account")))) == [
        SOLO_ROWS[0], SOLO_ROWS[3]]
    html = body(client.get(history_url(w.solo, type="preset")))
    assert cells(html) == []
    assert "No changes match." in html


def test_filter_by_dates_both_ends_inclusive_utc(client, w):
    sign_in_as(client, w.ann)
    assert cells(body(client.get(history_url(w.solo, **{"from": "2026-11-22"})))) == \
        SOLO_ROWS[:2]
    assert cells(body(client.get(history_url(w.solo, to="2026-11-21")))) == SOLO_ROWS[2:]
    html = body(client.get(history_url(w.solo, **{"from": "2026-11-21", "to": "2026-11-22"})))
    assert cells(html) == SOLO_ROWS[1:3]
    assert 'value="2026-11-21"' in html and 'value="2026-11-22"' in html
    assert cells(body(client.get(history_url(w.solo, **{"from": "2026-11-23",
                                                         "to": "2026-11-23"})))) == [
        SOLO_ROWS[0]]


@pytest.mark.parametrize("args, message", [
    ({"user": "abc"}, "Choose a user from the list."),
    ({"user": "-1"}, "Choose a user from the list."),
    ({"user": "1234567890"}, "Choose a user from the list."),
    ({"user": "١٢"}, "Choose a user from the list."),  # Arabic-Indic digits
    ({"type": "password"}, "Choose a record type from the list."),
    ({"from": "2026-13-01"}, "From must be a date like 2026-11-23."),
    ({"to": "yesterday"}, "To must be a date like 2026-11-23."),
    ({"from": "2026-11-23", "to": "2026-11-22"}, "To must be on or after From."),
    ({"subs": "1"}, "Only an agency's history can include sub-accounts."),
    ({"page": "0"}, "Page must be 1 or more."),
    ({"page": "x"}, "Page must be a whole number."),
])
def test_bad_filters_are_422_with_the_message(client, w, args, message):
    sign_in_as(client, w.ann)
    response = client.get(history_url(w.solo, **args))
    assert response.status_code == 422
    html = body(response)
    assert f'<p class="form-error" role="alert">{shown(message)}</p>' in html
    assert cells(html) == []
    partial = client.get(history_url(w.solo, **args), headers=HX)
    assert partial.status_code == 422
    assert shown(message) in assert_fragment(partial, '<div id="results">')


def test_several_bad_filters_show_every_message(client, w):
    sign_in_as(client, w.ann)
    response = client.get(history_url(w.solo, user="x", type="nope", to="never"))
    assert response.status_code == 422
    page = text(body(response))
    for message in ("Choose a user from the list.", "Choose a record type from the list.",
                    "To must be a date like 2026-11-23."):
        assert message in page


# --------------------------------------------------------------- pagination and htmx

def test_pages_keep_the_filters_in_their_links(app, client, session, w):
    app.config["VERSIONS_PER_PAGE"] = 2
    for i in range(3):  # three more of Ann's, on T2's day
        with at(T2 + timedelta(minutes=i + 1), w.ann):
            w.number.label = f"Label {i}"
            session.commit()
    clock.freeze(NOW)
    sign_in_as(client, w.ann)
    filters = {"user": str(w.ann.id), "type": "tracking_number", "from": "2026-11-21",
               "to": "2026-11-21"}
    html = body(client.get(history_url(w.solo, **filters)))
    assert [r[3] for r in cells(html)] == ["Label: Label 1 → Label 2",
                                           "Label: Label 0 → Label 1"]
    assert "Changes 1–2 of 4" in html and "Page 1 of 2" in html
    links = pager_links(html)
    assert set(links) == {"next"}
    assert links["next"].startswith(f"/accounts/{w.solo.id}/history/?")
    assert query(links["next"]) == {**filters, "page": "2"}

    response = client.get(links["next"], headers=HX)
    html = assert_fragment(response, '<div id="results">')
    assert [r[3] for r in cells(html)] == [
        "Label: Google Ads → Label 0",
        "Label: Google Ads Number: +14155550101 Status: Active"]
    assert "Changes 3–4 of 4" in html
    links = pager_links(html)
    assert set(links) == {"prev"}
    assert query(links["prev"]) == {**filters, "page": "1"}


def test_the_include_sub_accounts_filter_is_kept_in_the_pager(app, client, w):
    app.config["VERSIONS_PER_PAGE"] = 1
    sign_in_as(client, w.avery)
    html = body(client.get(history_url(w.agency, subs="1")))
    assert query(pager_links(html)["next"]) == {"subs": "1", "page": "2"}
    html = body(client.get(pager_links(html)["next"]))
    assert cells(html)[0][2] == "Northwind Agency LLC"


def test_an_htmx_request_gets_the_results_with_the_filter_they_were_drawn_from(client, w):
    """The fragment holds the filter form too, drawn from the same filter (issue 14)."""
    sign_in_as(client, w.ann)
    response = client.get(history_url(w.solo, type="account"), headers=HX)
    assert response.status_code == 200
    html = assert_fragment(response, '<div id="results">')
    assert html.count('id="history-filters"') == 1
    assert '<option value="account" selected>' in html
    assert cells(html) == [SOLO_ROWS[0], SOLO_ROWS[3]]


# --------------------------------------------------------------- one record's versions

def test_a_records_versions_as_a_page_and_as_the_panel(client, w):
    sign_in_as(client, w.ann)
    url = versions_url(w.solo, type="account", id=w.solo.id)
    response = client.get(url)
    assert response.status_code == 200
    html = assert_full_page(response)
    assert "Versions <span class=\"muted\">· Account settings</span>" in html
    expected = [[r[0], r[1], r[2].removeprefix("Account settings: "), r[3]]
                for r in (SOLO_ROWS[0], SOLO_ROWS[3])]
    assert cells(html) == expected

    partial = client.get(url, headers=HX)
    html = assert_fragment(partial,
                           f'<div class="versions-list" id="versions-account-{w.solo.id}">')
    assert cells(html) == expected
    assert "Kept 7 days." in html
    assert f'href="/accounts/{w.solo.id}/history/?type=account"' in html


def test_the_tracking_numbers_panel_lists_every_numbers_versions(client, session, w):
    other = numbers.add(session, w.solo, "+14155550102", "Flyer")
    session.commit()
    sign_in_as(client, w.ann)
    html = body(client.get(versions_url(w.solo, type="tracking_number"), headers=HX))
    assert [r[2] for r in cells(html)] == ["+14155550102 created", "+14155550101 created"]
    html = body(client.get(versions_url(w.solo, type="tracking_number", id=other.id),
                           headers=HX))
    assert [r[2] for r in cells(html)] == ["+14155550102 created"]


def test_the_versions_endpoint_is_scoped_to_the_account_in_the_url(client, w):
    sign_in_as(client, w.ann)
    # Rival Shop's account versions exist, but not on Acme Plumbing.
    html = body(client.get(versions_url(w.solo, type="account", id=w.rival.id), headers=HX))
    assert cells(html) == []
    assert "No versions kept for this record." in html
    assert "Rival" not in html


@pytest.mark.parametrize("record_type", ["nope", "", "Account", "password_hash",
                                         '"><script>alert(1)</script>'])
def test_an_unknown_record_type_is_422(client, w, record_type):
    sign_in_as(client, w.ann)
    response = client.get(versions_url(w.solo, type=record_type, id=w.solo.id))
    assert response.status_code == 422
    assert '<p class="form-error" role="alert">Unknown record type.</p>' in body(response)
    assert "<script>alert(1)</script>" not in body(response)
    partial = client.get(versions_url(w.solo, type=record_type), headers=HX)
    assert partial.status_code == 422
    assert "Unknown record type." in assert_fragment(partial, '<div class="versions-list"')


# --------------------------------------------------------------- the panels on feature pages

def panels(html: str) -> set[str]:
    return set(re.findall(r'data-testid="versions-([a-z_]+)"', html))


def test_account_settings_has_the_account_panel_for_admins(client, w):
    sign_in_as(client, w.ann)
    html = body(client.get(f"/accounts/{w.solo.id}/"))
    assert panels(html) == {"account"}
    assert f'hx-get="/accounts/{w.solo.id}/history/versions?type=account&amp;id={w.solo.id}"' \
        in html
    sign_in_as(client, w.vic)
    assert panels(body(client.get(f"/accounts/{w.solo.id}/"))) == set()


def test_a_sub_accounts_settings_also_have_the_billing_mode_panel(client, w):
    sign_in_as(client, w.avery)
    html = body(client.get(f"/accounts/{w.bayside.id}/"))
    assert panels(html) == {"account", "billing_mode"}


def test_billing_settings_has_its_three_panels(client, w):
    sign_in_as(client, w.ann)
    response = client.get(f"/accounts/{w.solo.id}/billing/")
    assert response.status_code == 200
    assert panels(body(response)) == {"payment_method", "recharge_settings",
                                      "billing_settings"}


def test_tracking_numbers_has_the_panel_for_admins_not_for_role_users(client, w):
    sign_in_as(client, w.ann)
    html = body(client.get(f"/accounts/{w.solo.id}/numbers/"))
    assert panels(html) == {"tracking_number"}
    assert f'href="/accounts/{w.solo.id}/history/versions?type=tracking_number"' in html
    sign_in_as(client, w.vic)
    response = client.get(f"/accounts/{w.solo.id}/numbers/")
    assert response.status_code == 200
    assert panels(body(response)) == set()
    assert "versions" not in body(response).lower().replace("versions.css", "")


def test_a_switch_paid_on_the_public_billing_link_page_is_by_the_customer(app, client,
                                                                           session, w):
    from tests.web import link_world

    link_world.configure(app)
    url = link_world.issue(session, w, sub=w.bayside, actor=w.avery)
    response = link_world.Customer(app).pay(url)
    assert response.status_code in (200, 303), body(response)[:500]
    sign_in_as(client, w.avery)
    html = body(client.get(history_url(w.bayside, type="billing_mode")))
    assert cells(html) == [
        ["2026-11-23 12:00:00", "Customer (billing link)",
         "Billing mode: Bayside Dental Care changed", "Balance from: agency → customer"]]
    # On the agency's history, with its sub-accounts, named by account.
    html = body(client.get(history_url(w.agency, subs="1", type="billing_mode")))
    assert [r[:3] for r in cells(html)] == [
        ["2026-11-23 12:00:00", "Customer (billing link)", "Bayside Dental Care"]]
    # The card: brand and last 4, never the number.
    html = body(client.get(history_url(w.bayside, type="payment_method")))
    assert "Visa ending 4242" in html
    assert link_world.VISA not in html


# --------------------------------------------------------------- redaction

def test_a_redacted_call_shows_the_fields_removed_never_the_values(client, session, w):
    call = Call(account_id=w.solo.id, caller_number="+12025550188", caller_name="Pat Caller",
                called_number="+14155550101", started_at=NOW - timedelta(hours=2),
                duration_seconds=60, source="Google Ads", notes="Asked about 12 Elm St")
    session.add(call)
    session.commit()
    with at(NOW, w.ann):
        call.caller_name = call.caller_number = call.notes = ""
        session.commit()
    sign_in_as(client, w.ann)
    html = body(client.get(history_url(w.solo, type="call")))
    assert cells(html) == [[
        "2026-11-23 12:00:00", "Ann Admin", f"Call: Call #{call.id} redacted",
        "Caller name: removed (not kept) Caller number: removed (not kept) "
        "Notes: removed (not kept)"]]
    for value in ("Pat Caller", "+12025550188", "Elm St"):
        assert value not in html
    assert session.scalar(select(Call.caller_name).where(Call.id == call.id)) == ""


def test_labels_and_values_are_escaped(client, session, w):
    with at(NOW, w.ann):
        session.get(TrackingNumber, w.number.id).label = "<script>alert(1)</script>"
        session.commit()
    sign_in_as(client, w.ann)
    html = body(client.get(history_url(w.solo, type="tracking_number")))
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize("raw", ["abc", "-1", "0", "99999999999", "1\x00"])
def test_a_versions_panel_with_a_nonsense_record_id_says_so(client, w, raw):
    """Once silently widened to every record of the type; now a 422 with the message."""
    sign_in_as(client, w.ann)
    response = client.get(f"/accounts/{w.solo.id}/history/versions",
                          query_string={"type": "account", "id": raw})
    assert response.status_code == 422
    assert "Unknown record." in response.get_data(as_text=True)
