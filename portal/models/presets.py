"""Tracking sources and call queues (minimal records) and the presets that configure them."""

import enum
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import now
from portal.extensions import db
from portal.models.accounts import _enum
from portal.models.types import UTCDateTime
from portal.versioning import Spec, by_name


class PresetKind(enum.StrEnum):
    TRACKING_SOURCE = "tracking_source"
    CALL_QUEUE = "call_queue"

    @property
    def is_tracking_source(self) -> bool:
        return self is PresetKind.TRACKING_SOURCE


# How the pages word the stored values (the forms' choices, the lists, Change History).
KIND_LABELS = {PresetKind.TRACKING_SOURCE.value: "Tracking source",
               PresetKind.CALL_QUEUE.value: "Call queue"}
DISTRIBUTIONS = {
    "round_robin": "Round robin",
    "simultaneous": "Ring all agents at once",
    "most_idle": "Longest idle agent first",
}
QUEUE_LABELS = {"distribution": "Distribution", "ring_seconds": "Ring (seconds)",
                "max_wait_minutes": "Longest wait (minutes)", "voicemail": "Voicemail",
                "announce_position": "Announce position"}
SOURCE_LABELS = {"channel": "Channel", "referrer_contains": "Referrer contains",
                 "landing_param": "Landing page parameter", "swap_numbers": "Swap numbers"}


class TrackingSource(db.Model):
    __tablename__ = "tracking_sources"
    __versioned__ = (Spec("tracking_source", ("name", "channel", "referrer_contains",
                                              "landing_param", "swap_numbers"), label=by_name,
                          labels=SOURCE_LABELS),)
    __table_args__ = (Index("ix_tracking_sources_account_name", "account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(80))
    # How a visit is matched to this source.
    channel: Mapped[str] = mapped_column(String(24))  # see presets.CHANNELS
    referrer_contains: Mapped[str] = mapped_column(String(120), default="")
    landing_param: Mapped[str] = mapped_column(String(120), default="")
    swap_numbers: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class CallQueue(db.Model):
    __tablename__ = "call_queues"
    __versioned__ = (Spec("call_queue", ("name", "distribution", "ring_seconds",
                                         "max_wait_minutes", "voicemail", "announce_position"),
                          label=by_name, labels=QUEUE_LABELS,
                          values={"distribution": DISTRIBUTIONS}),)
    __table_args__ = (Index("ix_call_queues_account_name", "account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str] = mapped_column(String(80))
    distribution: Mapped[str] = mapped_column(String(24))  # a key of DISTRIBUTIONS
    ring_seconds: Mapped[int] = mapped_column(Integer, default=20)
    max_wait_minutes: Mapped[int] = mapped_column(Integer, default=5)
    voicemail: Mapped[bool] = mapped_column(Boolean, default=True)
    announce_position: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class Preset(db.Model):
    """Named settings for one kind of record; applying one fills a new record's form."""

    __tablename__ = "presets"
    __versioned__ = (Spec(
        "preset", ("kind", "name", "settings_json"), label=by_name,
        labels={**{f"settings.{k}": v for k, v in {**SOURCE_LABELS, **QUEUE_LABELS}.items()},
                "kind": "Kind"},
        values={"kind": KIND_LABELS, "settings.distribution": DISTRIBUTIONS}),)
    __table_args__ = (Index("ix_presets_account_kind_name", "account_id", "kind", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[PresetKind] = mapped_column(_enum(PresetKind))
    name: Mapped[str] = mapped_column(String(80))
    settings_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    @property
    def settings(self) -> dict[str, Any]:
        return json.loads(self.settings_json or "{}")
