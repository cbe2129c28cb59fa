"""Configure → Tracking Sources, Call Queues and Presets through the test client: lists,
forms and their 422s, "Save as Preset", "Apply a preset" (htmx and without JavaScript),
roles, tenancy, CSRF and the versions each change writes."""

import json

import pytest
from sqlalchemy import select

from portal.models import CallQueue, Preset, PresetKind, TrackingSource, Version
from portal.services import presets
from tests.conftest import HX
from tests.web.conftest import sign_in_as
from tests.web.lifecycle_world import ADMINS_ONLY, post
from tests.web.pages import (
    NOT_FOUND,
    assert_fragment,
    assert_full_page,
    body,
    login_location,
    shown,
    table_rows,
)

SOURCE = presets.KINDS[PresetKind.TRACKING_SOURCE]
QUEUE = presets.KINDS[PresetKind.CALL_QUEUE]
GOOGLE = {"name": "Google Ads", "channel": "Google Ads", "referrer_contains": "google.com",
          "landing_param": "utm_source=google", "swap_numbers": "on"}
DESK = {"name": "Front desk", "distribution": "round_robin", "ring_seconds": "20",
        "max_wait_minutes": "5", "voicemail": "on"}


def url(account, rest):
    return f"/accounts/{account.id}/{rest}"


def versions(session, account, record_type):
    session.expire_all()
    return [(v.record_label, v.action, json.loads(v.changes_json), v.actor_label)
            for v in session.scalars(select(Version).where(
                Version.account_id == account.id, Version.record_type == record_type)
                .order_by(Version.id))]


@pytest.fixture
def data(session, w):
    """On Solo Shop: a tracking source, a call queue and a preset of each kind; on Rival
    Shop, its own."""
    d = {
        "source": presets.create_record(session, w.solo, SOURCE, GOOGLE),
        "queue": presets.create_record(session, w.solo, QUEUE, DESK),
        "source_preset": presets.create_preset(session, w.solo, "tracking_source", {
            "name": "Paid search", "channel": "Bing Ads", "landing_param": "utm_medium=cpc"}),
        "queue_preset": presets.create_preset(session, w.solo, "call_queue", {
            "name": "Busy season", "distribution": "simultaneous", "ring_seconds": "30",
            "max_wait_minutes": "10", "announce_position": "on"}),
        "rival_source": presets.create_record(session, w.rival, SOURCE,
                                              {**GOOGLE, "name": "Rival source"}),
        "rival_queue": presets.create_record(session, w.rival, QUEUE,
                                             {**DESK, "name": "Rival queue"}),
        "rival_preset": presets.create_preset(session, w.rival, "call_queue", {
            **DESK, "name": "Rival preset", "ring_seconds": "99"}),
    }
    session.commit()
    return d


# --------------------------------------------------------------------------- lists

def test_the_lists_and_the_nav(client, w, data):
    sign_in_as(client, w.sam)
    html = assert_full_page(client.get(url(w.solo, "tracking-sources")))
    assert 'aria-current="page">Tracking Sources</a>' in html
    assert [r.cells[:2] for r in table_rows(html)] == [[
        "Google Ads", "Channel: Google Ads · Referrer contains: google.com · Landing page "
        "parameter: utm_source=google · Swap numbers: Yes"]]
    assert "Rival source" not in html
    assert 'data-testid="versions-tracking_source"' in html
    assert ">Save as Preset</a>" in html

    html = assert_full_page(client.get(url(w.solo, "call-queues")))
    assert 'aria-current="page">Call Queues</a>' in html
    assert [r.cells[:2] for r in table_rows(html)] == [[
        "Front desk", "Distribution: Round robin · Ring: 20 seconds · Longest wait: 5 minutes "
        "· Voicemail: Yes · Announce position: No"]]
    assert 'data-testid="versions-call_queue"' in html

    html = assert_full_page(client.get(url(w.solo, "presets")))
    assert 'aria-current="page">Presets</a>' in html
    assert [r.cells[0] for r in table_rows(html)] == ["Paid search", "Busy season"]
    assert "Rival preset" not in html
    assert 'data-testid="versions-preset"' in html


def test_sign_in_is_needed(client, w):
    for path in ("tracking-sources", "call-queues", "presets", "tracking-sources/new"):
        response = client.get(url(w.solo, path))
        assert response.status_code == 302, path
        assert login_location(response) == ("/login", url(w.solo, path))


def test_the_user_role_reads_the_lists_but_cannot_manage(client, session, w, data):
    sign_in_as(client, w.viewer)
    html = body(client.get(url(w.solo, "tracking-sources")))
    assert "Google Ads" in html
    assert "Save as Preset" not in html and "New Tracking Source" not in html
    assert "versions-tracking_source" not in html
    assert "Busy season" in body(client.get(url(w.solo, "presets")))
    s, q, p = data["source"].id, data["queue"].id, data["queue_preset"].id
    for path in ("tracking-sources/new", f"tracking-sources/{s}/edit",
                 f"tracking-sources/{s}/delete", f"tracking-sources/{s}/save-preset",
                 "call-queues/new", f"call-queues/{q}/edit", "presets/new?kind=call_queue",
                 f"presets/{p}/edit", f"presets/{p}/delete"):
        assert client.get(url(w.solo, path)).status_code == 403, path
    for path, form in [("tracking-sources/new", GOOGLE),
                       (f"tracking-sources/{s}/edit", GOOGLE),
                       (f"tracking-sources/{s}/delete", {"confirm": "yes"}),
                       (f"tracking-sources/{s}/save-preset", {"name": "Mine"}),
                       ("call-queues/new", DESK), (f"call-queues/{q}/delete", {"confirm": "yes"}),
                       ("presets/new", {**DESK, "kind": "call_queue"}),
                       (f"presets/{p}/edit", DESK), (f"presets/{p}/delete", {"confirm": "yes"})]:
        response = post(client, url(w.solo, path), form)
        assert response.status_code == 403, path
        assert shown(ADMINS_ONLY) in body(response)
    session.expire_all()
    assert len(presets.records(session, w.solo, SOURCE)) == 1
    assert len(presets.list_presets(session, w.solo)) == 2


# --------------------------------------------------------------------------- records

def test_creating_editing_and_deleting_a_tracking_source_writes_versions(client, session, w):
    sign_in_as(client, w.sam)
    response = post(client, url(w.solo, "tracking-sources/new"), GOOGLE)
    assert response.status_code == 303
    assert response.location == url(w.solo, "tracking-sources")
    assert "Added the tracking source Google Ads." in body(client.get(response.location))
    [source] = presets.records(session, w.solo, SOURCE)

    edit = body(client.get(url(w.solo, f"tracking-sources/{source.id}/edit")))
    assert 'value="utm_source=google"' in edit
    assert 'data-testid="versions-tracking_source"' in edit
    response = post(client, url(w.solo, f"tracking-sources/{source.id}/edit"),
                    {**GOOGLE, "landing_param": "gclid=1", "swap_numbers": ""})
    assert response.status_code == 303

    response = post(client, url(w.solo, f"tracking-sources/{source.id}/delete"), {})
    assert response.status_code == 422
    assert "Deleting needs the confirmation: nothing was changed." in body(response)
    response = post(client, url(w.solo, f"tracking-sources/{source.id}/delete"),
                    {"confirm": "yes"})
    assert response.status_code == 303
    session.expire_all()
    assert presets.records(session, w.solo, SOURCE) == []
    assert versions(session, w.solo, "tracking_source") == [
        ("Google Ads", "created", {"name": [None, "Google Ads"], "channel": [None, "Google Ads"],
                                   "referrer_contains": [None, "google.com"],
                                   "landing_param": [None, "utm_source=google"],
                                   "swap_numbers": [None, True]}, "Sam"),
        ("Google Ads", "changed", {"landing_param": ["utm_source=google", "gclid=1"],
                                   "swap_numbers": [True, False]}, "Sam"),
        ("Google Ads", "deleted", {"name": ["Google Ads", None],
                                   "channel": ["Google Ads", None],
                                   "referrer_contains": ["google.com", None],
                                   "landing_param": ["gclid=1", None],
                                   "swap_numbers": [False, None]}, "Sam"),
    ]


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_bad_call_queues_are_shown_beside_their_fields(client, session, w, headers):
    sign_in_as(client, w.sam)
    for form, field, message in [
        ({"ring_seconds": "200"}, "ring_seconds",
         "Ring time must be a whole number of seconds from 5 to 120."),
        ({"ring_seconds": "4.5"}, "ring_seconds",
         "Ring time must be a whole number of seconds from 5 to 120."),
        ({"max_wait_minutes": "0"}, "max_wait_minutes",
         "Longest wait must be a whole number of minutes from 1 to 60."),
        ({"distribution": "lottery"}, "distribution",
         "Choose how calls are distributed to agents."),
        ({"name": " "}, "name", "Enter the call queue name."),
    ]:
        response = post(client, url(w.solo, "call-queues/new"), {**DESK, **form},
                        headers=headers)
        assert response.status_code == 422, form
        html = assert_fragment(response, '<div id="record-form">') if headers \
            else assert_full_page(response)
        assert f'<p class="field-error" id="{field}-error">{message}</p>' in html, form
        assert 'value="Front desk"' in html or field == "name"  # what was typed stays
    assert presets.records(session, w.solo, QUEUE) == []
    assert versions(session, w.solo, "call_queue") == []


def test_a_bad_tracking_source_edit_keeps_the_record(client, session, w, data):
    sign_in_as(client, w.sam)
    s = data["source"]
    response = post(client, url(w.solo, f"tracking-sources/{s.id}/edit"),
                    {**GOOGLE, "channel": "Custom", "referrer_contains": "",
                     "landing_param": "not a param"})
    assert response.status_code == 422
    assert ('<p class="field-error" id="landing_param-error">Enter the landing page parameter '
            "as name=value, like utm_source=google.</p>") in body(response)
    session.expire_all()
    assert session.get(TrackingSource, s.id).channel == "Google Ads"


# --------------------------------------------------------------------------- presets

def test_applying_a_preset_fills_the_new_form(client, w, data):
    sign_in_as(client, w.sam)
    p = data["queue_preset"]
    html = assert_full_page(client.get(url(w.solo, "call-queues/new")))
    assert '<label for="preset">Apply a preset</label>' in html
    assert f'<option value="{p.id}" >Busy season</option>' in html
    assert "Rival preset" not in html
    assert 'value="20"' in html  # the defaults

    # htmx: the form block again, filled (and the name typed so far kept)
    response = client.get(url(w.solo, f"call-queues/new?preset={p.id}&name=Holiday+desk"),
                          headers=HX)
    html = assert_fragment(response, '<div id="record-form">')
    assert f'<option value="{p.id}" selected>Busy season</option>' in html
    assert "Applied the preset Busy season: review the settings and save." in html
    assert '<option value="simultaneous" selected>Ring all agents at once</option>' in html
    assert 'name="ring_seconds" type="number" min="5" max="120" step="1" inputmode="numeric" ' \
           'value="30"' in html
    assert 'value="10"' in html
    assert '<input type="checkbox" name="announce_position" checked>' in html
    assert '<input type="checkbox" name="voicemail" >' in html
    assert 'value="Holiday desk"' in html
    # without JavaScript: the same as a whole page
    assert_full_page(client.get(url(w.solo, f"call-queues/new?preset={p.id}")))


def test_a_preset_of_another_account_or_kind_is_not_applied(client, w, data):
    sign_in_as(client, w.sam)
    for preset in (data["rival_preset"].id, data["source_preset"].id, "abc", "99999999999"):
        response = client.get(url(w.solo, f"call-queues/new?preset={preset}"))
        assert response.status_code == 404, preset
        assert NOT_FOUND in body(response)
        assert "Rival preset" not in body(response)


def test_a_new_record_from_an_applied_preset(client, session, w, data):
    sign_in_as(client, w.sam)
    settings = data["source_preset"].settings
    form = {**settings, "name": "Bing", "swap_numbers": "on" if settings["swap_numbers"] else ""}
    assert post(client, url(w.solo, "tracking-sources/new"), form).status_code == 303
    session.expire_all()
    made = [r for r in presets.records(session, w.solo, SOURCE) if r.name == "Bing"][0]
    assert presets.settings_of(SOURCE, made) == settings


def test_save_as_preset_copies_a_records_settings(client, session, w, data):
    sign_in_as(client, w.sam)
    q = data["queue"]
    dialog = assert_fragment(client.get(url(w.solo, f"call-queues/{q.id}/save-preset"),
                                        headers=HX), '<dialog class="confirm"')
    assert 'value="Front desk"' in dialog  # the record's name, to change
    response = post(client, url(w.solo, f"call-queues/{q.id}/save-preset"),
                    {"name": "Busy season"}, headers=HX)
    assert response.status_code == 422
    assert ('<p class="field-error" id="name-error">There is already a call queue preset named '
            "Busy season: choose another name.</p>") in body(response)
    response = post(client, url(w.solo, f"call-queues/{q.id}/save-preset"),
                    {"name": "Standard desk"})
    assert response.status_code == 303
    session.expire_all()
    preset = session.scalar(select(Preset).where(Preset.name == "Standard desk"))
    assert (preset.account_id, preset.kind) == (w.solo.id, PresetKind.CALL_QUEUE)
    assert preset.settings == {"distribution": "round_robin", "ring_seconds": 20,
                               "max_wait_minutes": 5, "voicemail": True,
                               "announce_position": False}
    # a preset's settings are versioned one by one ("settings.<field>")
    assert versions(session, w.solo, "preset")[-1] == (
        "Standard desk", "created",
        {"kind": [None, "call_queue"], "name": [None, "Standard desk"],
         "settings.distribution": [None, "round_robin"], "settings.ring_seconds": [None, 20],
         "settings.max_wait_minutes": [None, 5], "settings.voicemail": [None, True],
         "settings.announce_position": [None, False]}, "Sam")


def test_a_preset_from_scratch_edited_and_deleted(client, session, w):
    sign_in_as(client, w.sam)
    html = assert_full_page(client.get(url(w.solo, "presets/new?kind=tracking_source")))
    assert '<input type="hidden" name="kind" value="tracking_source">' in html
    assert 'name="referrer_contains"' in html and 'name="ring_seconds"' not in html
    assert client.get(url(w.solo, "presets/new?kind=phone_tree")).status_code == 404
    response = post(client, url(w.solo, "presets/new"),
                    {"kind": "tracking_source", "name": "Email blast", "channel": "Email",
                     "landing_param": "utm_medium=email"})
    assert response.status_code == 303
    assert response.location == url(w.solo, "presets")
    session.expire_all()
    [preset] = presets.list_presets(session, w.solo)
    response = post(client, url(w.solo, f"presets/{preset.id}/edit"),
                    {"name": "Email blast", "channel": "Email", "landing_param": "utm_medium=x",
                     "swap_numbers": "on"})
    assert response.status_code == 303
    response = post(client, url(w.solo, f"presets/{preset.id}/delete"), {"confirm": "yes"})
    assert response.status_code == 303
    session.expire_all()
    assert presets.list_presets(session, w.solo) == []
    assert versions(session, w.solo, "preset") == [
        ("Email blast", "created", {"kind": [None, "tracking_source"],
                                    "name": [None, "Email blast"],
                                    "settings.channel": [None, "Email"],
                                    "settings.landing_param": [None, "utm_medium=email"],
                                    "settings.swap_numbers": [None, False]}, "Sam"),
        ("Email blast", "changed", {"settings.landing_param": ["utm_medium=email",
                                                               "utm_medium=x"],
                                    "settings.swap_numbers": [False, True]}, "Sam"),
        ("Email blast", "deleted", {"kind": ["tracking_source", None],
                                    "name": ["Email blast", None],
                                    "settings.channel": ["Email", None],
                                    "settings.landing_param": ["utm_medium=x", None],
                                    "settings.swap_numbers": [True, None]}, "Sam"),
    ]


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_a_bad_preset_is_shown_with_the_records_messages(client, session, w, headers):
    sign_in_as(client, w.sam)
    response = post(client, url(w.solo, "presets/new"),
                    {**DESK, "kind": "call_queue", "name": "", "max_wait_minutes": "90"},
                    headers=headers)
    assert response.status_code == 422
    html = assert_fragment(response, '<form id="preset-form"') if headers \
        else assert_full_page(response)
    assert ('<p class="field-error" id="name-error">Enter the call queue preset name.</p>'
            in html)
    assert ('<p class="field-error" id="max_wait_minutes-error">Longest wait must be a whole '
            "number of minutes from 1 to 60.</p>") in html
    assert presets.list_presets(session, w.solo) == []


# --------------------------------------------------------------------------- tenancy, CSRF

def test_another_accounts_records_and_presets_are_not_found(client, session, w, data):
    sign_in_as(client, w.sam)
    rs, rq, rp = data["rival_source"].id, data["rival_queue"].id, data["rival_preset"].id
    for path in (f"tracking-sources/{rs}/edit", f"tracking-sources/{rs}/delete",
                 f"tracking-sources/{rs}/save-preset", f"call-queues/{rq}/edit",
                 f"presets/{rp}/edit", f"presets/{rp}/delete"):
        response = client.get(url(w.solo, path))
        assert response.status_code == 404, path
        assert "Rival" not in body(response)
    for path, form in [(f"tracking-sources/{rs}/edit", GOOGLE),
                       (f"tracking-sources/{rs}/delete", {"confirm": "yes"}),
                       (f"tracking-sources/{rs}/save-preset", {"name": "Stolen"}),
                       (f"call-queues/{rq}/delete", {"confirm": "yes"}),
                       (f"presets/{rp}/edit", DESK),
                       (f"presets/{rp}/delete", {"confirm": "yes"})]:
        assert post(client, url(w.solo, path), form).status_code == 404, path
    assert client.get(url(w.rival, "tracking-sources")).status_code == 404
    assert client.get(url(w.rival, "presets")).status_code == 404
    session.expire_all()
    assert session.get(TrackingSource, rs).name == "Rival source"
    assert session.get(CallQueue, rq).name == "Rival queue"
    assert session.get(Preset, rp).name == "Rival preset"
    assert not session.scalar(select(Preset).where(Preset.name == "Stolen"))


def test_every_form_needs_the_csrf_token(client, session, w, data):
    sign_in_as(client, w.sam)
    s, p = data["source"].id, data["queue_preset"].id
    for path, form in [("tracking-sources/new", {**GOOGLE, "name": "New"}),
                       (f"tracking-sources/{s}/edit", GOOGLE),
                       (f"tracking-sources/{s}/delete", {"confirm": "yes"}),
                       (f"tracking-sources/{s}/save-preset", {"name": "X"}),
                       ("presets/new", {**DESK, "kind": "call_queue"}),
                       (f"presets/{p}/delete", {"confirm": "yes"})]:
        response = post(client, url(w.solo, path), form, csrf=False)
        assert response.status_code == 400, path
    session.expire_all()
    assert len(presets.records(session, w.solo, SOURCE)) == 1
    assert len(presets.list_presets(session, w.solo)) == 2
