"""Tracking sources and call queues (minimal records), and the presets that configure them.

A preset is named settings for one kind of record: the record's settings fields without its
name, validated by the same rules as the record and stored as JSON. Applying one fills a new
record's form; "Save as Preset" copies an existing record's settings into a new one.
"""

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import rules
from portal.errors import NotFound, ValidationFailed
from portal.models import Account, CallQueue, Preset, PresetKind, TrackingSource
from portal.models import presets as presets_models
from portal.services.inputs import clean_name, flag, has_control, to_int
from portal.transactions import lock_account

CHANNELS = ("Direct", "Google Ads", "Google Organic", "Bing Ads", "Facebook", "Email",
            "Referral", "Custom")
DISTRIBUTIONS = presets_models.DISTRIBUTIONS  # declared with the model (Change History too)
NAME_MAX = rules.RECORD_NAME_MAX
MATCH_TEXT_MAX = rules.MATCH_TEXT_MAX
RING_SECONDS = rules.CALL_QUEUE_RING_SECONDS
MAX_WAIT_MINUTES = rules.CALL_QUEUE_MAX_WAIT_MINUTES
# name=value, like utm_source=google: printable ASCII, no spaces, "&", "#" or a second "="
# (one parameter of a URL); used with fullmatch
_PARAM = re.compile(r"[A-Za-z0-9_.~-]+=[!-~]+")


def _whole(value: Any, bounds: tuple[int, int], field: str, message: str,
           errors: dict) -> int | None:
    number = to_int(value, max_digits=4)  # (JSON true is not a number of seconds)
    if number is not None and bounds[0] <= number <= bounds[1]:
        return number
    errors[field] = message
    return None


def clean_tracking_source(data: Mapping[str, Any]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    channel = str(data.get("channel") or "").strip()
    if channel not in CHANNELS:
        errors["channel"] = "Choose a channel from the list."
    referrer = str(data.get("referrer_contains") or "").strip()
    if len(referrer) > MATCH_TEXT_MAX:
        errors["referrer_contains"] = (f"The referrer text is at most {MATCH_TEXT_MAX} "
                                       "characters.")
    elif any(c.isspace() for c in referrer) or has_control(referrer):
        errors["referrer_contains"] = "The referrer text can't contain spaces, like google.com."
    param = str(data.get("landing_param") or "").strip()
    if len(param) > MATCH_TEXT_MAX:
        errors["landing_param"] = (f"The landing page parameter is at most {MATCH_TEXT_MAX} "
                                   "characters.")
    elif param and (not _PARAM.fullmatch(param) or any(c in param for c in "&#")
                   or param.count("=") != 1):
        errors["landing_param"] = ("Enter the landing page parameter as name=value, like "
                                   "utm_source=google.")
    if channel == "Custom" and not referrer and not param and not errors:
        errors["referrer_contains"] = ("A Custom source needs a referrer text or a landing "
                                       "page parameter to recognize its visitors.")
    if errors:
        raise ValidationFailed(errors)
    return {"channel": channel, "referrer_contains": referrer, "landing_param": param,
            "swap_numbers": flag(data.get("swap_numbers"))}


def clean_call_queue(data: Mapping[str, Any]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    distribution = str(data.get("distribution") or "").strip()
    if distribution not in DISTRIBUTIONS:
        errors["distribution"] = "Choose how calls are distributed to agents."
    ring = _whole(data.get("ring_seconds"), RING_SECONDS, "ring_seconds",
                  "Ring time must be a whole number of seconds from "
                  f"{RING_SECONDS[0]} to {RING_SECONDS[1]}.", errors)
    wait = _whole(data.get("max_wait_minutes"), MAX_WAIT_MINUTES, "max_wait_minutes",
                  "Longest wait must be a whole number of minutes from "
                  f"{MAX_WAIT_MINUTES[0]} to {MAX_WAIT_MINUTES[1]}.", errors)
    if errors:
        raise ValidationFailed(errors)
    return {"distribution": distribution, "ring_seconds": ring, "max_wait_minutes": wait,
            "voicemail": flag(data.get("voicemail")),
            "announce_position": flag(data.get("announce_position"))}


@dataclass(frozen=True)
class Kind:
    """One kind of record a preset configures."""

    kind: PresetKind
    model: type
    fields: tuple[str, ...]  # its settings: everything but the name
    clean: Callable[[Mapping[str, Any]], dict[str, Any]]
    noun: str  # "tracking source"
    name: str  # "Tracking Source": in titles, "New Tracking Source"
    title: str  # "Tracking Sources"
    endpoint: str  # the views' endpoint prefix: "presets.source"
    defaults: dict[str, Any]  # a new record's form

    @property
    def label(self) -> str:
        """"Tracking source": the noun at the start of a sentence."""
        return self.noun[0].upper() + self.noun[1:]


KINDS = {
    PresetKind.TRACKING_SOURCE: Kind(
        kind=PresetKind.TRACKING_SOURCE, model=TrackingSource,
        fields=("channel", "referrer_contains", "landing_param", "swap_numbers"),
        clean=clean_tracking_source, noun="tracking source", name="Tracking Source",
        title="Tracking Sources", endpoint="presets.source",
        defaults={"channel": "Direct", "referrer_contains": "", "landing_param": "",
                  "swap_numbers": True}),
    PresetKind.CALL_QUEUE: Kind(
        kind=PresetKind.CALL_QUEUE, model=CallQueue,
        fields=("distribution", "ring_seconds", "max_wait_minutes", "voicemail",
                "announce_position"),
        clean=clean_call_queue, noun="call queue", name="Call Queue", title="Call Queues",
        endpoint="presets.queue",
        defaults={"distribution": "round_robin", "ring_seconds": 20, "max_wait_minutes": 5,
                  "voicemail": True, "announce_position": False}),
}


def kind_of(value: str | PresetKind) -> Kind:
    try:
        return KINDS[PresetKind(value)]
    except ValueError:
        raise ValidationFailed({"kind": "Choose a tracking source or a call queue."}) from None


def settings_of(kind: Kind, record) -> dict[str, Any]:
    """A record's settings (no name), as a preset stores them."""
    return {name: getattr(record, name) for name in kind.fields}


def _validate(kind: Kind, noun: str, data: Mapping[str, Any], taken: list[str]
              ) -> tuple[str, dict[str, Any]]:
    """The name and the settings, with every field's error at once."""
    errors: dict[str, str] = {}
    name = settings = None
    try:
        name = clean_name(data.get("name"), "name", noun, NAME_MAX, set(taken))
    except ValidationFailed as e:
        errors.update(e.errors)
    try:
        settings = kind.clean(data)
    except ValidationFailed as e:
        errors.update(e.errors)
    if errors:
        raise ValidationFailed(errors)
    return name, settings


# ----------------------------------------------------------------------------- records

def records(session: Session, account: Account, kind: Kind) -> list:
    return list(session.scalars(select(kind.model).where(kind.model.account_id == account.id)
                                .order_by(kind.model.name, kind.model.id)))


def get_record(session: Session, account: Account, kind: Kind, record_id: int):
    record = session.scalar(select(kind.model).where(kind.model.id == record_id,
                                                     kind.model.account_id == account.id))
    if record is None:
        raise NotFound(f"{kind.label} not found.")
    return record


def _record_names(session: Session, account: Account, kind: Kind,
                  except_id: int | None = None) -> list[str]:
    query = select(kind.model.name).where(kind.model.account_id == account.id)
    if except_id is not None:
        query = query.where(kind.model.id != except_id)
    return list(session.scalars(query))


def create_record(session: Session, account: Account, kind: Kind, data: Mapping[str, Any]):
    lock_account(session, account.id)
    name, settings = _validate(kind, kind.noun, data, _record_names(session, account, kind))
    record = kind.model(account_id=account.id, name=name, **settings)
    session.add(record)
    session.flush()
    return record


def update_record(session: Session, account: Account, kind: Kind, record_id: int,
                  data: Mapping[str, Any]):
    lock_account(session, account.id)
    record = get_record(session, account, kind, record_id)
    name, settings = _validate(kind, kind.noun, data,
                               _record_names(session, account, kind, except_id=record.id))
    record.name = name
    for field, value in settings.items():
        setattr(record, field, value)
    session.flush()
    return record


def delete_record(session: Session, account: Account, kind: Kind, record_id: int) -> None:
    record = get_record(session, account, kind, record_id)
    session.delete(record)
    session.flush()


# ----------------------------------------------------------------------------- presets

def list_presets(session: Session, account: Account,
                 kind: PresetKind | None = None) -> list[Preset]:
    query = select(Preset).where(Preset.account_id == account.id)
    if kind is not None:
        query = query.where(Preset.kind == kind)
    return list(session.scalars(query.order_by(Preset.kind, Preset.name, Preset.id)))


def get_preset(session: Session, account: Account, preset_id: int,
               kind: PresetKind | None = None) -> Preset:
    """The account's preset (of that kind): another account's is not found."""
    query = select(Preset).where(Preset.id == preset_id, Preset.account_id == account.id)
    if kind is not None:
        query = query.where(Preset.kind == kind)
    preset = session.scalar(query)
    if preset is None:
        raise NotFound("Preset not found.")
    return preset


def _preset_names(session: Session, account: Account, kind: PresetKind,
                  except_id: int | None = None) -> list[str]:
    query = select(Preset.name).where(Preset.account_id == account.id, Preset.kind == kind)
    if except_id is not None:
        query = query.where(Preset.id != except_id)
    return list(session.scalars(query))


def _store(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True)


def create_preset(session: Session, account: Account, kind: PresetKind | str,
                  data: Mapping[str, Any]) -> Preset:
    """A preset from scratch: its name and the kind's settings fields."""
    k = kind_of(kind)
    lock_account(session, account.id)
    name, settings = _validate(k, f"{k.noun} preset", data,
                               _preset_names(session, account, k.kind))
    preset = Preset(account_id=account.id, kind=k.kind, name=name,
                    settings_json=_store(settings))
    session.add(preset)
    session.flush()
    return preset


def update_preset(session: Session, account: Account, preset_id: int,
                  data: Mapping[str, Any]) -> Preset:
    lock_account(session, account.id)
    preset = get_preset(session, account, preset_id)
    k = KINDS[preset.kind]
    name, settings = _validate(k, f"{k.noun} preset", data,
                               _preset_names(session, account, k.kind, except_id=preset.id))
    preset.name = name
    stored = _store(settings)
    if stored != preset.settings_json:
        preset.settings_json = stored
    session.flush()
    return preset


def delete_preset(session: Session, account: Account, preset_id: int) -> None:
    session.delete(get_preset(session, account, preset_id))
    session.flush()


def save_as_preset(session: Session, account: Account, kind: Kind, record_id: int,
                   name: str) -> Preset:
    """"Save as Preset": a new preset with a record's settings."""
    record = get_record(session, account, kind, record_id)
    return create_preset(session, account, kind.kind, {**settings_of(kind, record), "name": name})


def apply_preset(session: Session, account: Account, kind: Kind, preset_id: int
                 ) -> dict[str, Any]:
    """A new record's form values from one of the account's presets of that kind: its
    settings over the defaults (only the kind's settings fields; never a name)."""
    preset = get_preset(session, account, preset_id, kind.kind)
    stored = preset.settings
    return {**kind.defaults, **{f: stored[f] for f in kind.fields if f in stored}}


def describe(kind: Kind, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The settings as (label, value) pairs, for the lists."""
    if kind.kind == PresetKind.TRACKING_SOURCE:
        return [("Channel", settings.get("channel") or "—"),
                ("Referrer contains", settings.get("referrer_contains") or "—"),
                ("Landing page parameter", settings.get("landing_param") or "—"),
                ("Swap numbers", "Yes" if settings.get("swap_numbers") else "No")]
    return [("Distribution", DISTRIBUTIONS.get(settings.get("distribution"), "—")),
            ("Ring", f"{settings.get('ring_seconds')} seconds"),
            ("Longest wait", f"{settings.get('max_wait_minutes')} minutes"),
            ("Voicemail", "Yes" if settings.get("voicemail") else "No"),
            ("Announce position", "Yes" if settings.get("announce_position") else "No")]
