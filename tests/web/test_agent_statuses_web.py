"""Configure → Agent Statuses and the header's "your status" form, through the test client:
pages and fragments, 422s with their messages, roles, tenancy, CSRF, and the versions each
change writes."""

import json

import pytest
from sqlalchemy import select

from portal.models import AgentStatus, Membership, Version
from portal.services import agents
from tests.conftest import HX
from tests.web.conftest import sign_in_as
from tests.web.lifecycle_world import ADMINS_ONLY, READ_ONLY, post
from tests.web.pages import (
    NOT_FOUND,
    assert_fragment,
    assert_full_page,
    body,
    login_location,
    shown,
    table_rows,
)


def url(account, rest=""):
    return f"/accounts/{account.id}/agent-statuses/{rest}"


def statuses(session, account):
    session.expire_all()
    return [(s.name, s.color, s.available) for s in agents.list_statuses(session, account)]


def my_status(session, user, account):
    session.expire_all()
    return session.scalar(select(Membership.agent_status).where(
        Membership.user_id == user.id, Membership.account_id == account.id))


def versions(session, account):
    session.expire_all()
    return [(v.record_type, v.record_label, v.action, json.loads(v.changes_json), v.actor_label)
            for v in session.scalars(select(Version).where(
                Version.account_id == account.id, Version.record_type == "agent_status")
                .order_by(Version.id))]


@pytest.fixture
def lunch(session, w):
    lunch = agents.add(session, w.solo, "Lunch", "#f59e0b")
    training = agents.add(session, w.solo, "Training", "#1e88e5", True)
    session.commit()
    return lunch, training


# --------------------------------------------------------------------------- the page

def test_the_page_lists_built_in_statuses_then_custom_ones_in_order(client, w, lunch):
    sign_in_as(client, w.sam)
    response = client.get(url(w.solo))
    assert response.status_code == 200
    html = assert_full_page(response)
    assert [r.cells[:4] for r in table_rows(html)][:5] == [
        ["Online", "#2e7d32", "Yes", "Built in"],
        ["Away", "#b26a00", "No", "Built in"],
        ["Offline", "#6b7280", "No", "Built in"],
        ["Lunch", "#f59e0b", "No", "Custom"],
        ["Training", "#1e88e5", "Yes", "Custom"],
    ]
    assert 'aria-current="page">Agent Statuses</a>' in html
    assert '<span class="navhead">Configure</span>' in html
    assert '<form id="status-add-form"' in html
    assert 'data-testid="versions-agent_status"' in html
    # the first custom status can't go up, the last can't go down
    assert f'aria-label="Move {lunch[0].name} up" title="Move up"\n' in html
    assert 'aria-label="Move Lunch up" title="Move up"\n                      disabled' in html
    assert 'aria-label="Move Training down" title="Move down"\n                      disabled' \
        in html


def test_sign_in_is_needed(client, w):
    response = client.get(url(w.solo))
    assert response.status_code == 302
    assert login_location(response) == ("/login", url(w.solo))
    response = client.get(url(w.solo), headers=HX)
    assert response.status_code == 401
    assert login_location(response)[0] == "/login"
    assert post(client, url(w.solo, "mine"), {"status": "away"}).status_code == 302


def test_a_member_with_the_user_role_sees_the_list_but_cannot_manage_it(client, session, w,
                                                                        lunch):
    sign_in_as(client, w.viewer)
    html = body(client.get(url(w.solo)))
    assert "Lunch" in html
    assert 'status-add-form' not in html
    assert "versions-agent_status" not in html
    assert f'href="{url(w.solo, f"{lunch[0].id}/edit")}"' not in html
    for path, data in [("", {"name": "Break", "color": "#000000"}),
                       (f"{lunch[0].id}/edit", {"name": "Break", "color": "#000000"}),
                       (f"{lunch[0].id}/delete", {"confirm": "yes"}),
                       (f"{lunch[0].id}/move", {"direction": "down"})]:
        response = post(client, url(w.solo, path), data)
        assert response.status_code == 403, path
        assert shown(ADMINS_ONLY) in body(response)
    for path in (f"{lunch[0].id}/edit", f"{lunch[0].id}/delete"):
        assert client.get(url(w.solo, path)).status_code == 403
    assert statuses(session, w.solo) == [("Lunch", "#f59e0b", False),
                                         ("Training", "#1e88e5", True)]
    # the two statuses' creations, and nothing from the refused posts
    assert len(versions(session, w.solo)) == 2


# --------------------------------------------------------------------------- add

def test_adding_a_status_writes_a_version(client, session, w):
    sign_in_as(client, w.sam)
    response = post(client, url(w.solo), {"name": " Lunch ", "color": "#F59E0B",
                                          "available": "on"})
    assert response.status_code == 303
    assert response.location == url(w.solo)
    assert statuses(session, w.solo) == [("Lunch", "#f59e0b", True)]
    assert '<p class="flash flash-success" role="status">Added the status Lunch.</p>' in body(
        client.get(response.location))
    assert versions(session, w.solo) == [
        ("agent_status", "Lunch", "created",
         {"name": [None, "Lunch"], "color": [None, "#f59e0b"], "available": [None, True],
          "position": [None, 0]}, "Sam")]


def test_an_htmx_add_answers_with_a_redirect(client, session, w):
    sign_in_as(client, w.sam)
    response = post(client, url(w.solo), {"name": "Lunch", "color": "#f59e0b"}, headers=HX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == url(w.solo)


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_a_bad_status_is_shown_beside_its_field(client, session, w, lunch, headers):
    sign_in_as(client, w.sam)
    for data, field, message in [
        ({"name": "", "color": "#000000"}, "name", "Enter the status name."),
        ({"name": "x" * 41, "color": "#000000"}, "name",
         "The status name is at most 40 characters."),
        ({"name": "away", "color": "#000000"}, "name",
         "There is already a status named away: choose another name."),
        ({"name": "LUNCH", "color": "#000000"}, "name",
         "There is already a status named LUNCH: choose another name."),
        ({"name": "Break", "color": "blue"}, "color", "Choose a color (#rrggbb, like #1e88e5)."),
        ({"name": "Break"}, "color", "Choose a color (#rrggbb, like #1e88e5)."),
    ]:
        response = post(client, url(w.solo), data, headers=headers)
        assert response.status_code == 422, data
        html = assert_fragment(response, '<form id="status-add-form"') if headers \
            else assert_full_page(response)
        assert f'<p class="field-error" id="{field}-error">{shown(message)}</p>' in html, data
        assert 'aria-invalid="true"' in html
    assert len(statuses(session, w.solo)) == 2
    assert len(versions(session, w.solo)) == 2  # the fixture's two


def test_the_fifty_first_status_is_refused(client, session, w):
    for i in range(agents.MAX_CUSTOM_STATUSES):
        agents.add(session, w.solo, f"S{i}", "#000000")
    session.commit()
    sign_in_as(client, w.sam)
    response = post(client, url(w.solo), {"name": "Too many", "color": "#000000"})
    assert response.status_code == 422
    assert ('<p class="form-error" role="alert">An account can have at most 50 custom '
            "statuses. Delete one before adding another.</p>") in body(response)
    assert "50 of 50 custom statuses." in body(response)


# --------------------------------------------------------------------------- edit

def test_the_pencil_opens_the_edit_dialog(client, w, lunch):
    sign_in_as(client, w.sam)
    html = assert_fragment(client.get(url(w.solo, f"{lunch[0].id}/edit"), headers=HX),
                           '<dialog class="confirm"')
    assert 'value="Lunch"' in html and 'value="#f59e0b"' in html
    assert " open>" not in html  # portal.js opens it as a modal
    page = assert_full_page(client.get(url(w.solo, f"{lunch[0].id}/edit")))
    assert 'aria-labelledby="edit-status-h" open>' in page  # without JavaScript: a page


def test_editing_a_status_writes_its_before_and_after(client, session, w, lunch):
    sign_in_as(client, w.sam)
    response = post(client, url(w.solo, f"{lunch[0].id}/edit"),
                    {"name": "Lunch break", "color": "#f59e0b", "available": "on"}, headers=HX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == url(w.solo)
    assert statuses(session, w.solo)[0] == ("Lunch break", "#f59e0b", True)
    assert versions(session, w.solo)[-1] == (
        "agent_status", "Lunch break", "changed",
        {"name": ["Lunch", "Lunch break"], "available": [False, True]}, "Sam")


def test_a_bad_edit_is_shown_in_the_dialog(client, session, w, lunch):
    sign_in_as(client, w.sam)
    response = post(client, url(w.solo, f"{lunch[0].id}/edit"),
                    {"name": "Training", "color": "#f59e0b"}, headers=HX)
    assert response.status_code == 422
    html = assert_fragment(response, '<dialog class="confirm"')
    assert ('<p class="field-error" id="name-error">There is already a status named Training: '
            "choose another name.</p>") in html
    assert statuses(session, w.solo)[0] == ("Lunch", "#f59e0b", False)


# --------------------------------------------------------------------------- delete

def test_deleting_needs_the_confirmation_and_moves_its_users_to_online(client, session, w,
                                                                      lunch):
    key = f"custom:{lunch[0].id}"
    agents.set_current(session, w.viewer, w.solo, key)
    agents.set_current(session, w.sam, w.solo, key)
    session.commit()
    sign_in_as(client, w.sam)
    dialog = body(client.get(url(w.solo, f"{lunch[0].id}/delete"), headers=HX))
    assert ('<p data-testid="users-on-status">2 users have this status now: they go back to '
            "Online.</p>") in dialog
    response = post(client, url(w.solo, f"{lunch[0].id}/delete"), {}, headers=HX)
    assert response.status_code == 422
    assert ('<p class="form-error" role="alert">Deleting needs the confirmation: nothing was '
            "changed.</p>") in body(response)
    assert len(statuses(session, w.solo)) == 2

    response = post(client, url(w.solo, f"{lunch[0].id}/delete"), {"confirm": "yes"})
    assert response.status_code == 303
    assert statuses(session, w.solo) == [("Training", "#1e88e5", True)]
    assert my_status(session, w.viewer, w.solo) == "online"
    assert my_status(session, w.sam, w.solo) == "online"
    assert ("Deleted the status Lunch. The 2 users on it are Online now."
            in body(client.get(response.location)))
    assert versions(session, w.solo)[-1] == (
        "agent_status", "Lunch", "deleted",
        {"name": ["Lunch", None], "color": ["#f59e0b", None], "available": [False, None],
         "position": [0, None]}, "Sam")


# --------------------------------------------------------------------------- move

def test_moving_answers_htmx_with_the_list_and_keeps_focus_on_the_button(client, session, w,
                                                                        lunch):
    sign_in_as(client, w.sam)
    training = lunch[1]
    response = post(client, url(w.solo, f"{training.id}/move"), {"direction": "up"},
                    headers=HX)
    assert response.status_code == 200
    html = assert_fragment(response, '<div id="status-list">')
    assert [r.cells[0] for r in table_rows(html)][3:] == ["Training", "Lunch"]
    # Training is first now: "up" is disabled, so focus goes to its "down" button
    assert ('aria-label="Move Training down" title="Move down"\n                       '
            "autofocus>") in html
    assert json.loads(response.headers["HX-Trigger"]) == {"agent-statuses-changed": training.id}
    assert [name for name, *_ in statuses(session, w.solo)] == ["Training", "Lunch"]
    assert sorted(versions(session, w.solo)[2:]) == [  # one flush: in no particular order
        ("agent_status", "Lunch", "changed", {"position": [0, 1]}, "Sam"),
        ("agent_status", "Training", "changed", {"position": [1, 0]}, "Sam"),
    ]


def test_moving_without_javascript_redirects_to_the_row(client, session, w, lunch):
    sign_in_as(client, w.sam)
    response = post(client, url(w.solo, f"{lunch[0].id}/move"), {"direction": "down"})
    assert response.status_code == 303
    assert response.location == url(w.solo) + f"#status-{lunch[0].id}"
    response = post(client, url(w.solo, f"{lunch[0].id}/move"), {"direction": "down"})
    assert response.status_code == 422
    assert ('<p class="form-error" role="alert">Lunch is already the last custom status.</p>'
            in body(response))


# --------------------------------------------------------------------------- tenancy, CSRF

def test_another_accounts_statuses_are_not_found(client, session, w, lunch):
    theirs = agents.add(session, w.rival, "Rival break", "#000000")
    session.commit()
    sign_in_as(client, w.sam)
    for path in (f"{theirs.id}/edit", f"{theirs.id}/delete"):
        response = client.get(url(w.solo, path))
        assert response.status_code == 404, path
        assert NOT_FOUND in body(response)
    for path, data in [(f"{theirs.id}/edit", {"name": "Mine", "color": "#000000"}),
                       (f"{theirs.id}/delete", {"confirm": "yes"}),
                       (f"{theirs.id}/move", {"direction": "up"})]:
        assert post(client, url(w.solo, path), data).status_code == 404, path
    # and the other account's page itself
    assert client.get(url(w.rival)).status_code == 404
    assert post(client, url(w.rival), {"name": "X", "color": "#000000"}).status_code == 404
    assert session.get(AgentStatus, theirs.id).name == "Rival break"
    assert "Rival break" not in body(client.get(url(w.solo)))


def test_every_form_needs_the_csrf_token(client, session, w, lunch):
    sign_in_as(client, w.sam)
    for path, data in [("", {"name": "Break", "color": "#000000"}),
                       (f"{lunch[0].id}/edit", {"name": "Break", "color": "#000000"}),
                       (f"{lunch[0].id}/delete", {"confirm": "yes"}),
                       (f"{lunch[0].id}/move", {"direction": "down"}),
                       ("mine", {"status": "away"})]:
        response = post(client, url(w.solo, path), data, csrf=False)
        assert response.status_code == 400, path
        assert "The form was out of date." in body(response)
    assert len(statuses(session, w.solo)) == 2
    assert my_status(session, w.sam, w.solo) == "online"


# --------------------------------------------------------------------------- the header

def test_the_header_form_is_on_account_pages_with_every_status(client, w, lunch):
    sign_in_as(client, w.viewer)
    html = body(client.get(f"/accounts/{w.solo.id}/numbers/"))
    assert (f'<form id="my-status" class="inline my-status" method="post" '
            f'action="{url(w.solo, "mine")}"') in html
    assert f'<input type="hidden" name="next" value="/accounts/{w.solo.id}/numbers/">' in html
    assert '<label for="my-status-select" class="visually-hidden">Your status</label>' in html
    assert ('<option value="online" selected>Online</option><option value="away" >Away</option>'
            '<option value="offline" >Offline</option>'
            f'<option value="custom:{lunch[0].id}" >Lunch</option>'
            f'<option value="custom:{lunch[1].id}" >Training</option>') in html
    assert 'fill="#2e7d32" aria-hidden="true" focusable="false" data-testid="my-status-dot"' in html
    assert '<button type="submit" class="link">Set</button>' in html
    # not on a page without an account
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert 'id="my-status"' not in body(response)


def test_a_user_sets_their_own_status_without_javascript(client, session, w, lunch):
    sign_in_as(client, w.viewer)  # role "user": may set their own status
    response = post(client, url(w.solo, "mine"),
                    {"status": f"custom:{lunch[0].id}", "next": f"/accounts/{w.solo.id}/calls/"})
    assert response.status_code == 303
    assert response.location == f"/accounts/{w.solo.id}/calls/"
    assert my_status(session, w.viewer, w.solo) == f"custom:{lunch[0].id}"
    html = body(client.get(response.location))
    assert "Your status on Solo Shop is Lunch." in html
    assert f'<option value="custom:{lunch[0].id}" selected>Lunch</option>' in html
    assert 'fill="#f59e0b" aria-hidden="true" focusable="false" data-testid="my-status-dot"' in html
    # the same user's membership on another account is untouched
    assert my_status(session, w.viewer, w.closed) == "online"
    # an address elsewhere is not followed
    response = post(client, url(w.solo, "mine"), {"status": "away", "next": "//evil.example/"})
    assert response.location == url(w.solo)


def test_the_header_form_with_htmx_swaps_itself(client, session, w, lunch):
    sign_in_as(client, w.viewer)
    response = post(client, url(w.solo, "mine"), {"status": "away", "next": "/x"}, headers=HX)
    assert response.status_code == 200
    html = assert_fragment(response, '<span id="my-status-slot"')
    assert '<option value="away" selected>Away</option>' in html
    assert '<span class="muted small" role="status">Status: Away</span>' in html
    assert '<input type="hidden" name="next" value="/x">' in html
    # Only the header shows the user's own status, and it is what was swapped: no event for
    # other parts of the page (nothing listened to the agent-status-changed once sent).
    assert "HX-Trigger" not in response.headers
    assert my_status(session, w.viewer, w.solo) == "away"


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_a_status_of_another_account_or_nonsense_is_refused(client, session, w, lunch,
                                                           headers):
    theirs = agents.add(session, w.rival, "Rival break", "#000000")
    session.commit()
    sign_in_as(client, w.viewer)
    for value in (f"custom:{theirs.id}", "busy", "custom:99999999999999"):
        response = post(client, url(w.solo, "mine"), {"status": value}, headers=headers)
        assert response.status_code == 422, value
        html = assert_fragment(response, '<span id="my-status-slot"') if headers \
            else assert_full_page(response)
        assert ('<p class="field-error" id="status-error">Choose one of this '
                f"account{shown(chr(39))}s statuses.</p>") in html
    assert my_status(session, w.viewer, w.solo) == "online"


def test_someone_reaching_a_sub_account_through_the_agency_has_no_status_there(client,
                                                                             session, w):
    sign_in_as(client, w.avery)  # the agency's owner: no membership on Bayside Dental
    html = body(client.get(f"/accounts/{w.bayside.id}/"))
    assert 'id="my-status"' not in html
    response = post(client, url(w.bayside, "mine"), {"status": "away"})
    assert response.status_code == 403
    assert "Set your status on an account you are a member of." in body(response)
    # on the agency itself, where the owner is a member, the form is there
    assert 'id="my-status"' in body(client.get(f"/accounts/{w.agency.id}/"))
    # and a sub-account's own admin sets theirs
    sign_in_as(client, w.bea)
    assert post(client, url(w.bayside, "mine"), {"status": "away"}).status_code == 303
    assert my_status(session, w.bea, w.bayside) == "away"


def test_a_canceled_account_has_no_status_form_and_refuses_changes(client, session, w):
    sign_in_as(client, w.sam)
    html = body(client.get(url(w.closed)))
    assert 'id="my-status"' not in html
    # the page is readable, with no controls that would only be refused (as Change Plan)
    assert "Statuses" in html and 'status-add-form' not in html
    response = post(client, url(w.closed, "mine"), {"status": "away"})
    assert response.status_code == 403
    assert shown(READ_ONLY.format("Closed Shop")) in body(response)
    response = post(client, url(w.closed), {"name": "Break", "color": "#000000"})
    assert response.status_code == 403


def test_the_header_form_is_drawn_again_when_the_statuses_change(client, session, w):
    """The header's slot listens for agent-statuses-changed (which a move answers: see the
    move test) and GETs its form again; the GET keeps the page to return to."""
    sign_in_as(client, w.sam)
    html = body(client.get(f"/accounts/{w.solo.id}/"))
    assert 'hx-trigger="agent-statuses-changed from:body"' in html
    response = client.get(f"/accounts/{w.solo.id}/agent-statuses/mine",
                          query_string={"next": f"/accounts/{w.solo.id}/"}, headers=HX)
    fragment = assert_fragment(response, '<span id="my-status-slot"')
    assert f'name="next" value="/accounts/{w.solo.id}/"' in fragment
    # without htmx it is the Agent Statuses page
    plain = client.get(f"/accounts/{w.solo.id}/agent-statuses/mine")
    assert plain.status_code == 302 and plain.location.endswith("/agent-statuses/")
