"""Tracking Sources, Call Queues and the Presets that configure them.

Every member reads the lists; owners and admins create, edit and delete records and presets,
save a record's settings as a preset, and apply a preset on a new record's form.

Both kinds of record have the same views, registered once per kind below:
/tracking-sources (endpoints presets.sources, presets.source_new, ...) and /call-queues
(presets.queues, presets.queue_new, ...).
"""

from flask import abort, g, request, url_for

from portal.blueprints.presets import bp
from portal.blueprints.views import admin_required, back, confirmed, submit
from portal.extensions import db
from portal.models import PresetKind
from portal.rendering import render
from portal.services import presets
from portal.services.inputs import to_id
from portal.services.presets import KINDS, Kind

ID = "<id:record_id>"
DELETE = "presets/delete.html"
SAVE_PRESET = "presets/save_preset.html"
NOT_CONFIRMED = {"": "Deleting needs the confirmation: nothing was changed."}


def _kind(kind: str) -> Kind:
    return KINDS[PresetKind(kind)]


def _id(raw: str) -> int:
    """A preset id from the query string; anything else is not found."""
    preset_id = to_id(raw)
    if preset_id is None:
        abort(404)
    return preset_id


# ----------------------------------------------------------------------------- records

def records_index(kind: str):
    k = _kind(kind)
    return render("presets/records.html", k=k, items=presets.records(db.session, g.account, k),
                  settings_of=presets.settings_of, describe=presets.describe)


def _record_form(k: Kind, record, form, errors, status=200, applied=None):
    return render("presets/record_form.html", "record_form", status=status, k=k, record=record,
                  form=form, errors=errors, applied=applied,
                  choices=presets.list_presets(db.session, g.account, k.kind) if record is None
                  else [], channels=presets.CHANNELS, distributions=presets.DISTRIBUTIONS)


@admin_required
def record_new(kind: str):
    """New Tracking Source / New Call Queue; ?preset=<id> fills the form from a preset."""
    k = _kind(kind)
    if request.method == "GET":
        applied = None
        form = dict(k.defaults)
        if request.args.get("preset"):
            preset_id = _id(request.args["preset"])
            applied = presets.get_preset(db.session, g.account, preset_id, k.kind)
            form = presets.apply_preset(db.session, g.account, k, preset_id)
        form["name"] = request.args.get("name", "")[:presets.NAME_MAX]
        return _record_form(k, None, form, {}, applied=applied)
    return submit(lambda: presets.create_record(db.session, g.account, k, request.form),
                  lambda errors: _record_form(k, None, request.form, errors, 422),
                  lambda record: back(url_for(f"{k.endpoint}s"),
                                      f"Added the {k.noun} {record.name}."))


@admin_required
def record_edit(kind: str, record_id: int):
    k = _kind(kind)
    record = presets.get_record(db.session, g.account, k, record_id)
    if request.method == "GET":
        form = {**presets.settings_of(k, record), "name": record.name}
        return _record_form(k, record, form, {})
    return submit(
        lambda: presets.update_record(db.session, g.account, k, record_id, request.form),
        lambda errors: _record_form(k, presets.get_record(db.session, g.account, k, record_id),
                                    request.form, errors, 422),
        lambda record: back(url_for(f"{k.endpoint}s"), f"Saved the {k.noun} {record.name}."))


@admin_required
def record_delete(kind: str, record_id: int):
    k = _kind(kind)
    record = presets.get_record(db.session, g.account, k, record_id)
    context = {"title": f"Delete the {k.noun} {record.name}?",
               "action": url_for(f"{k.endpoint}_delete", record_id=record.id),
               "back": url_for(f"{k.endpoint}s"),
               "note": "Presets saved from it are kept."}
    if request.method == "GET":
        return render(DELETE, "dialog", errors={}, **context)
    if not confirmed(request.form):
        return render(DELETE, "dialog", status=422, **context, errors=NOT_CONFIRMED)
    name = record.name
    presets.delete_record(db.session, g.account, k, record_id)
    db.session.commit()
    return back(url_for(f"{k.endpoint}s"), f"Deleted the {k.noun} {name}.")


@admin_required
def record_save_preset(kind: str, record_id: int):
    """"Save as Preset": asks the preset's name, then copies the record's settings."""
    k = _kind(kind)
    record = presets.get_record(db.session, g.account, k, record_id)
    if request.method == "GET":
        return render(SAVE_PRESET, "dialog", k=k, record=record, form={"name": record.name},
                      errors={})

    def invalid(errors):
        return render(SAVE_PRESET, "dialog", status=422, k=k, form=request.form, errors=errors,
                      record=presets.get_record(db.session, g.account, k, record_id))

    return submit(
        lambda: presets.save_as_preset(db.session, g.account, k, record_id,
                                       request.form.get("name", "")),
        invalid,
        lambda preset: back(url_for(f"{k.endpoint}s"),
                            f"Saved the settings of {record.name} as the preset "
                            f"{preset.name}. Apply it on New {k.name}."))


for _kind_value, (_slug, _name) in {PresetKind.TRACKING_SOURCE: ("tracking-sources", "source"),
                                    PresetKind.CALL_QUEUE: ("call-queues", "queue")}.items():
    _defaults = {"kind": _kind_value.value}
    bp.add_url_rule(f"/{_slug}", f"{_name}s", records_index, defaults=_defaults)
    bp.add_url_rule(f"/{_slug}/new", f"{_name}_new", record_new, defaults=_defaults,
                    methods=["GET", "POST"])
    bp.add_url_rule(f"/{_slug}/{ID}/edit", f"{_name}_edit", record_edit, defaults=_defaults,
                    methods=["GET", "POST"])
    bp.add_url_rule(f"/{_slug}/{ID}/delete", f"{_name}_delete", record_delete,
                    defaults=_defaults, methods=["GET", "POST"])
    bp.add_url_rule(f"/{_slug}/{ID}/save-preset", f"{_name}_save_preset", record_save_preset,
                    defaults=_defaults, methods=["GET", "POST"])


# ----------------------------------------------------------------------------- presets

def _preset_form(k: Kind, preset, form, errors, status=200):
    return render("presets/preset_form.html", "preset_form", status=status, k=k,
                  preset=preset, form=form, errors=errors, channels=presets.CHANNELS,
                  distributions=presets.DISTRIBUTIONS)


@bp.get("/presets")
def presets_index():
    """Presets, by kind of record."""
    items = presets.list_presets(db.session, g.account)
    groups = [(k, [p for p in items if p.kind == k.kind]) for k in KINDS.values()]
    return render("presets/index.html", groups=groups, describe=presets.describe)


@bp.route("/presets/new", methods=["GET", "POST"])
@admin_required
def preset_new():
    """A preset from scratch: ?kind=tracking_source or call_queue."""
    raw = request.values.get("kind", "")
    if raw not in {kind.value for kind in KINDS}:
        abort(404)
    k = _kind(raw)
    if request.method == "GET":
        return _preset_form(k, None, {**k.defaults, "name": ""}, {})
    return submit(lambda: presets.create_preset(db.session, g.account, k.kind, request.form),
                  lambda errors: _preset_form(k, None, request.form, errors, 422),
                  lambda preset: back(url_for("presets.presets_index"),
                                      f"Added the {k.noun} preset {preset.name}."))


@bp.route("/presets/<id:preset_id>/edit", methods=["GET", "POST"])
@admin_required
def preset_edit(preset_id: int):
    preset = presets.get_preset(db.session, g.account, preset_id)
    k = KINDS[preset.kind]
    if request.method == "GET":
        form = {**k.defaults, **presets.apply_preset(db.session, g.account, k, preset_id),
                "name": preset.name}
        return _preset_form(k, preset, form, {})
    return submit(
        lambda: presets.update_preset(db.session, g.account, preset_id, request.form),
        lambda errors: _preset_form(k, presets.get_preset(db.session, g.account, preset_id),
                                    request.form, errors, 422),
        lambda preset: back(url_for("presets.presets_index"),
                            f"Saved the {k.noun} preset {preset.name}."))


@bp.route("/presets/<id:preset_id>/delete", methods=["GET", "POST"])
@admin_required
def preset_delete(preset_id: int):
    preset = presets.get_preset(db.session, g.account, preset_id)
    k = KINDS[preset.kind]
    context = {"title": f"Delete the {k.noun} preset {preset.name}?",
               "action": url_for("presets.preset_delete", preset_id=preset.id),
               "back": url_for("presets.presets_index"),
               "note": f"{k.title} configured with it keep their settings."}
    if request.method == "GET":
        return render(DELETE, "dialog", errors={}, **context)
    if not confirmed(request.form):
        return render(DELETE, "dialog", status=422, **context, errors=NOT_CONFIRMED)
    name = preset.name
    presets.delete_preset(db.session, g.account, preset_id)
    db.session.commit()
    return back(url_for("presets.presets_index"), f"Deleted the {k.noun} preset {name}.")
