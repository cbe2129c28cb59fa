"""Tracking sources, call queues and presets: strict validation with exact messages, presets
validated like their records, saved from a record, applied to a new record's form, and
another account's records and presets out of reach."""

import json

import pytest

from portal.errors import NotFound, ValidationFailed
from portal.models import CallQueue, Preset, PresetKind, TrackingSource
from portal.services import presets
from tests import factories as f

SOURCE = presets.KINDS[PresetKind.TRACKING_SOURCE]
QUEUE = presets.KINDS[PresetKind.CALL_QUEUE]
GOOD_SOURCE = {"name": "Google Ads", "channel": "Google Ads", "referrer_contains": "google.com",
               "landing_param": "utm_source=google", "swap_numbers": "on"}
GOOD_QUEUE = {"name": "Front desk", "distribution": "most_idle", "ring_seconds": "25",
              "max_wait_minutes": "10", "voicemail": "on"}
RING = "Ring time must be a whole number of seconds from 5 to 120."
WAIT = "Longest wait must be a whole number of minutes from 1 to 60."
PARAM = "Enter the landing page parameter as name=value, like utm_source=google."


@pytest.fixture
def w(session):
    admin = f.user(session)
    solo = f.standalone(session, "Solo Shop", admin=admin)
    other = f.standalone(session, "Other Shop", admin=admin)
    session.commit()
    return solo, other


def test_a_tracking_source_is_created_with_clean_values(session, w):
    solo, _ = w
    source = presets.create_record(session, solo, SOURCE, {**GOOD_SOURCE, "name": "  Google  Ads "})
    assert isinstance(source, TrackingSource)
    assert (source.account_id, source.name, source.channel, source.referrer_contains,
            source.landing_param, source.swap_numbers) == (
        solo.id, "Google Ads", "Google Ads", "google.com", "utm_source=google", True)
    unchecked = presets.create_record(session, solo, SOURCE,
                                      {"name": "Direct", "channel": "Direct"})
    assert (unchecked.referrer_contains, unchecked.landing_param, unchecked.swap_numbers) == (
        "", "", False)


def test_a_call_queue_is_created_with_whole_numbers(session, w):
    solo, _ = w
    queue = presets.create_record(session, solo, QUEUE, GOOD_QUEUE)
    assert isinstance(queue, CallQueue)
    assert (queue.name, queue.distribution, queue.ring_seconds, queue.max_wait_minutes,
            queue.voicemail, queue.announce_position) == (
        "Front desk", "most_idle", 25, 10, True, False)


@pytest.mark.parametrize("change,errors", [
    ({"name": ""}, {"name": "Enter the tracking source name."}),
    ({"name": "x" * 81}, {"name": "The tracking source name is at most 80 characters."}),
    ({"name": "google ads"},
     {"name": "There is already a tracking source named google ads: choose another name."}),
    ({"channel": "Myspace"}, {"channel": "Choose a channel from the list."}),
    ({"channel": ""}, {"channel": "Choose a channel from the list."}),
    ({"referrer_contains": "google .com"},
     {"referrer_contains": "The referrer text can't contain spaces, like google.com."}),
    ({"referrer_contains": "g" * 121},
     {"referrer_contains": "The referrer text is at most 120 characters."}),
    ({"landing_param": "utm_source"}, {"landing_param": PARAM}),
    ({"landing_param": "utm_source="}, {"landing_param": PARAM}),
    ({"landing_param": "=google"}, {"landing_param": PARAM}),
    ({"landing_param": "utm_source=google&utm_medium=cpc"}, {"landing_param": PARAM}),
    ({"landing_param": "utm source=google"}, {"landing_param": PARAM}),
    ({"landing_param": "a=" + "b" * 119},
     {"landing_param": "The landing page parameter is at most 120 characters."}),
    ({"channel": "Custom", "referrer_contains": "", "landing_param": ""},
     {"referrer_contains": "A Custom source needs a referrer text or a landing page parameter "
                           "to recognize its visitors."}),
    ({"name": "", "channel": "Nope"}, {"name": "Enter the tracking source name.",
                                       "channel": "Choose a channel from the list."}),
])
def test_bad_tracking_sources_are_refused(session, w, change, errors):
    solo, _ = w
    presets.create_record(session, solo, SOURCE, GOOD_SOURCE)
    with pytest.raises(ValidationFailed) as e:
        presets.create_record(session, solo, SOURCE, {**GOOD_SOURCE, "name": "Bing", **change})
    assert e.value.errors == errors
    assert len(presets.records(session, solo, SOURCE)) == 1


@pytest.mark.parametrize("change,errors", [
    ({"distribution": "random"}, {"distribution": "Choose how calls are distributed to "
                                                  "agents."}),
    ({"ring_seconds": "4"}, {"ring_seconds": RING}),
    ({"ring_seconds": "121"}, {"ring_seconds": RING}),
    ({"ring_seconds": "20.5"}, {"ring_seconds": RING}),
    ({"ring_seconds": "-5"}, {"ring_seconds": RING}),
    ({"ring_seconds": ""}, {"ring_seconds": RING}),
    ({"ring_seconds": "²0"}, {"ring_seconds": RING}),
    ({"ring_seconds": "99999999999999999999"}, {"ring_seconds": RING}),
    ({"max_wait_minutes": "0"}, {"max_wait_minutes": WAIT}),
    ({"max_wait_minutes": "61"}, {"max_wait_minutes": WAIT}),
    ({"max_wait_minutes": "ten"}, {"max_wait_minutes": WAIT}),
    ({"ring_seconds": "1", "max_wait_minutes": "99"},
     {"ring_seconds": RING, "max_wait_minutes": WAIT}),
])
def test_bad_call_queues_are_refused(session, w, change, errors):
    solo, _ = w
    with pytest.raises(ValidationFailed) as e:
        presets.create_record(session, solo, QUEUE, {**GOOD_QUEUE, **change})
    assert e.value.errors == errors
    assert presets.records(session, solo, QUEUE) == []


@pytest.mark.parametrize("ring,wait", [("5", "1"), ("120", "60"), (" 30 ", "7")])
def test_the_limits_themselves_are_allowed(session, w, ring, wait):
    solo, _ = w
    queue = presets.create_record(session, solo, QUEUE, {**GOOD_QUEUE, "ring_seconds": ring,
                                                         "max_wait_minutes": wait})
    assert (queue.ring_seconds, queue.max_wait_minutes) == (int(ring), int(wait))


def test_update_and_delete_a_record(session, w):
    solo, _ = w
    queue = presets.create_record(session, solo, QUEUE, GOOD_QUEUE)
    presets.create_record(session, solo, QUEUE, {**GOOD_QUEUE, "name": "Sales"})
    presets.update_record(session, solo, QUEUE, queue.id, {**GOOD_QUEUE, "name": "FRONT DESK",
                                                          "ring_seconds": "60"})
    assert (queue.name, queue.ring_seconds, queue.voicemail) == ("FRONT DESK", 60, True)
    with pytest.raises(ValidationFailed) as e:
        presets.update_record(session, solo, QUEUE, queue.id, {**GOOD_QUEUE, "name": "sales"})
    assert e.value.errors == {
        "name": "There is already a call queue named sales: choose another name."}
    presets.delete_record(session, solo, QUEUE, queue.id)
    assert [q.name for q in presets.records(session, solo, QUEUE)] == ["Sales"]


def test_another_accounts_records_and_presets_are_not_found(session, w):
    solo, other = w
    theirs = presets.create_record(session, other, SOURCE, GOOD_SOURCE)
    preset = presets.create_preset(session, other, "tracking_source",
                                   {**GOOD_SOURCE, "name": "Theirs"})
    for action in (
        lambda: presets.get_record(session, solo, SOURCE, theirs.id),
        lambda: presets.update_record(session, solo, SOURCE, theirs.id, GOOD_SOURCE),
        lambda: presets.delete_record(session, solo, SOURCE, theirs.id),
        lambda: presets.save_as_preset(session, solo, SOURCE, theirs.id, "Stolen"),
        lambda: presets.get_preset(session, solo, preset.id),
        lambda: presets.apply_preset(session, solo, SOURCE, preset.id),
        lambda: presets.update_preset(session, solo, preset.id, GOOD_SOURCE),
        lambda: presets.delete_preset(session, solo, preset.id),
    ):
        with pytest.raises(NotFound):
            action()
    assert session.get(TrackingSource, theirs.id).name == "Google Ads"
    assert session.get(Preset, preset.id).name == "Theirs"
    assert presets.list_presets(session, solo) == []


def test_a_preset_keeps_only_the_settings_fields_as_json(session, w):
    solo, _ = w
    preset = presets.create_preset(session, solo, PresetKind.CALL_QUEUE, {
        **GOOD_QUEUE, "name": "Busy season", "account_id": "999", "id": "5", "extra": "x"})
    assert (preset.account_id, preset.kind, preset.name) == (
        solo.id, PresetKind.CALL_QUEUE, "Busy season")
    assert json.loads(preset.settings_json) == {
        "distribution": "most_idle", "ring_seconds": 25, "max_wait_minutes": 10,
        "voicemail": True, "announce_position": False}


def test_a_preset_is_validated_like_its_record(session, w):
    solo, _ = w
    with pytest.raises(ValidationFailed) as e:
        presets.create_preset(session, solo, "call_queue",
                              {**GOOD_QUEUE, "name": "", "ring_seconds": "500"})
    assert e.value.errors == {"name": "Enter the call queue preset name.", "ring_seconds": RING}
    with pytest.raises(ValidationFailed) as e:
        presets.create_preset(session, solo, "tracking_source",
                              {**GOOD_SOURCE, "name": "Paid", "landing_param": "nope"})
    assert e.value.errors == {"landing_param": PARAM}
    with pytest.raises(ValidationFailed) as e:
        presets.create_preset(session, solo, "phone_tree", {"name": "x"})
    assert e.value.errors == {"kind": "Choose a tracking source or a call queue."}
    assert presets.list_presets(session, solo) == []


def test_preset_names_are_unique_per_kind(session, w):
    solo, _ = w
    presets.create_preset(session, solo, "call_queue", {**GOOD_QUEUE, "name": "Standard"})
    presets.create_preset(session, solo, "tracking_source", {**GOOD_SOURCE, "name": "Standard"})
    with pytest.raises(ValidationFailed) as e:
        presets.create_preset(session, solo, "call_queue", {**GOOD_QUEUE, "name": "standard"})
    assert e.value.errors == {
        "name": "There is already a call queue preset named standard: choose another name."}


def test_save_as_preset_copies_the_records_settings(session, w):
    solo, _ = w
    source = presets.create_record(session, solo, SOURCE, GOOD_SOURCE)
    preset = presets.save_as_preset(session, solo, SOURCE, source.id, " Paid  search ")
    assert (preset.kind, preset.name) == (PresetKind.TRACKING_SOURCE, "Paid search")
    assert preset.settings == {"channel": "Google Ads", "referrer_contains": "google.com",
                               "landing_param": "utm_source=google", "swap_numbers": True}
    with pytest.raises(ValidationFailed) as e:
        presets.save_as_preset(session, solo, SOURCE, source.id, "")
    assert e.value.errors == {"name": "Enter the tracking source preset name."}


def test_applying_a_preset_gives_a_new_records_form_values(session, w):
    solo, _ = w
    queue = presets.create_record(session, solo, QUEUE, {**GOOD_QUEUE, "announce_position": "on"})
    preset = presets.save_as_preset(session, solo, QUEUE, queue.id, "Copy")
    values = presets.apply_preset(session, solo, QUEUE, preset.id)
    assert values == {"distribution": "most_idle", "ring_seconds": 25, "max_wait_minutes": 10,
                      "voicemail": True, "announce_position": True}
    # the values make a valid record, named by the user
    made = presets.create_record(session, solo, QUEUE, {**values, "name": "Second desk"})
    assert presets.settings_of(QUEUE, made) == presets.settings_of(QUEUE, queue)
    # a preset of the other kind is not applied to this one
    source_preset = presets.create_preset(session, solo, "tracking_source",
                                          {**GOOD_SOURCE, "name": "S"})
    with pytest.raises(NotFound):
        presets.apply_preset(session, solo, QUEUE, source_preset.id)


def test_applying_a_preset_with_missing_fields_falls_back_to_the_defaults(session, w):
    solo, _ = w
    preset = Preset(account_id=solo.id, kind=PresetKind.CALL_QUEUE, name="Old",
                    settings_json=json.dumps({"ring_seconds": 45, "name": "Sneaky"}))
    session.add(preset)
    session.flush()
    assert presets.apply_preset(session, solo, QUEUE, preset.id) == {
        **QUEUE.defaults, "ring_seconds": 45}


def test_update_and_delete_a_preset(session, w):
    solo, _ = w
    preset = presets.create_preset(session, solo, "tracking_source", {**GOOD_SOURCE, "name": "P"})
    presets.update_preset(session, solo, preset.id, {"name": "Facebook", "channel": "Facebook"})
    assert (preset.name, preset.settings) == ("Facebook", {
        "channel": "Facebook", "referrer_contains": "", "landing_param": "",
        "swap_numbers": False})
    presets.delete_preset(session, solo, preset.id)
    assert presets.list_presets(session, solo) == []


@pytest.mark.parametrize("field,value", [
    ("name", "Front\x00desk"), ("name", "Front\x07desk"),
    ("referrer_contains", "google\x00.com"), ("landing_param", "a=b\x00c"),
    ("landing_param", "utm_source=goo gle"), ("landing_param", "a=b&c=d"),
])
def test_control_characters_and_bad_parameters_are_refused_not_stored(session, field, value):
    """Review finding: NUL got through to PostgreSQL (a 500) and into presets' JSON."""
    from portal.errors import ValidationFailed
    from portal.services import presets

    account = f.standalone(session, "Ctl Shop")
    session.commit()
    data = {"name": "Front desk", "channel": "Referral", "referrer_contains": "google.com",
            "landing_param": "", "swap_numbers": "on", field: value}
    with pytest.raises(ValidationFailed) as e:
        presets.create_record(session, account, presets.KINDS[presets.PresetKind.TRACKING_SOURCE],
                              data)
    assert field in e.value.errors
