"""Versions of settings records: one mechanism for every model.

A model is versioned by declaring its Specs next to its columns, as the class attribute
`__versioned__` (portal/models/*): which fields a version records, how the record is named,
and whose account it belongs to. install() registers every mapped model's specs; two session
hooks then write the versions, in the same transaction as the change, so no view or service
writes one itself:

- after_flush: the unit of work's inserts, updates and deletes (attribute history);
- do_orm_execute: ORM-enabled UPDATE/DELETE statements (the conditional updates the
  lifecycle, ledger and billing-link services use), read before and after.

Fields are an allow-list. A field whose name looks secret (password, token, secret, hash,
cvc, card number) can't be registered, so a version never holds one; personal data that is
redacted (a caller's name and number) is a "hidden" field: the version names the field and
never its values.
"""

import enum
import json
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from portal.clock import now as clock_now

# A field is refused when one of its words (split on "_") is one of these, or it names a
# card number: "password_hash", "gateway_token", "totp_secret", "cvc", "pan", "card_number".
FORBIDDEN_WORDS = {"password", "passwd", "token", "secret", "hash", "cvc", "cvv", "pan"}


def looks_secret(name: str) -> bool:
    words = set(name.lower().replace(".", "_").split("_"))
    singular = {w[:-2] if w.endswith("es") else w[:-1] if w.endswith("s") else w
                for w in words}
    return bool(FORBIDDEN_WORDS & (words | singular)) or "card_number" in name.lower() \
        or "cardnumber" in name.lower()

CREATED, CHANGED, DELETED, REDACTED = "created", "changed", "deleted", "redacted"

# Who the versions written now are by: (user id, label). The app installs a provider that
# reads the signed-in user; outside a request (the scheduled jobs) it is the system.
SYSTEM = (None, "System")
_actor_provider: Callable[[], tuple[int | None, str]] = lambda: SYSTEM  # noqa: E731
_actor_override: ContextVar[tuple[int | None, str] | None] = ContextVar("version_actor",
                                                                          default=None)


def set_actor_provider(provider: Callable[[], tuple[int | None, str]]) -> None:
    global _actor_provider
    _actor_provider = provider


class acting_as:  # noqa: N801  (used as a context manager)
    """Attribute the versions written inside the block to this actor (tests, commands)."""

    def __init__(self, user_id: int | None, label: str):
        self.actor = (user_id, label)

    def __enter__(self):
        self._token = _actor_override.set(self.actor)

    def __exit__(self, *_exc):
        _actor_override.reset(self._token)


def current_actor() -> tuple[int | None, str]:
    return _actor_override.get() or _actor_provider()


@dataclass(frozen=True)
class Spec:
    record_type: str  # a key of RECORD_TYPES
    fields: tuple[str, ...]
    label: Callable[[Any, dict[str, Any]], str]  # (connection, values) -> name
    # The account ids a version is filed under, from the record's values (a user's versions
    # are filed under every account they belong to).
    accounts: Callable[[Any, dict[str, Any]], list[int]] = field(
        default=lambda _conn, v: [v["account_id"]])
    hidden: tuple[str, ...] = ()
    actions: frozenset[str] = frozenset({CREATED, CHANGED, DELETED, REDACTED})
    defaults: dict[str, Any] = field(default_factory=dict)  # filled in by register()
    # How Change History words this record's fields and stored values, as its pages do
    # ({"kind": "Kind"}, {"distribution": {"simultaneous": "Ring all agents at once"}}); a
    # JSON settings key is "settings.<key>". Over FIELD_LABELS and VALUE_LABELS below.
    labels: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)


RECORD_TYPES = {
    "account": "Account settings",
    "billing_mode": "Billing mode",
    "billing_settings": "Billing settings",
    "recharge_settings": "Recharge settings",
    "payment_method": "Payment method",
    "billing_recipient": "Billing email recipient",
    "statement_schedule": "Statement schedule",
    "tracking_number": "Tracking number",
    "agent_status": "Agent status",
    "preset": "Preset",
    "tracking_source": "Tracking source",
    "call_queue": "Call queue",
    "user": "User",
    "membership": "User role",
    "call": "Call",
    "bulk_action": "Bulk action",  # issue 17 (K): Settings → Accounts
    "budget": "Budget",  # issue 17 (B): a sub-account's monthly budget
    "api_key": "API key",  # issue 18 (K): Settings → Developers
}

FIELD_LABELS = {
    "recharge_threshold_cents": "Threshold",
    "recharge_amount_cents": "Recharge amount",
    "recharge_cap_cents": "Monthly recharge cap",  # issue 17
    "recharge_daily_limit": "Recharges a day, at most",
    "low_balance_cents": "Low-balance alert below",
    "critical_phone": "Critical billing phone number",
    "direct_charge": "Opt-in direct charge",
    "require_two_factor": "Require two-factor sign-in",
    "auto_redact": "Automatic redaction",
    "billing_mode": "Balance from",
    "last4": "Last 4",
    "exp_month": "Expiry month",
    "exp_year": "Expiry year",
    "region": "State",
    "postal_code": "ZIP",
    "address_line1": "Address line 1",
    "address_line2": "Address line 2",
    "removed_at": "Removed",
    "released_at": "Released",
    "two_factor": "Two-factor sign-in",
    "ring_seconds": "Ring (seconds)",
    "max_wait_minutes": "Longest wait (minutes)",
    "settings": "Settings",
    "totp_enabled_at": "Two-factor sign-in on since",
    "kind": "Kind",
}

# Stored values as the pages word them (statuses, roles, billing mode).
VALUE_LABELS = {
    "active": "Active", "swapping_paused": "Swapping paused", "calls_stopped": "Calls stopped",
    "billing_paused": "Billing paused", "canceled": "Canceled", "released": "Released",
    "budget_paused": "Calls paused: budget reached",  # issue 17 (B)
    "primary": "Primary", "backup": "Backup", "other": "Other",
    "owner": "Owner", "admin": "Admin", "user": "User",
    "agency": "agency", "customer": "customer",
}
_LABELLED_FIELDS = {"status", "role", "billing_mode"}

_SPECS: dict[type, list[Spec]] = {}
_BY_TYPE: dict[str, Spec] = {}  # record_type -> its spec (the wording of its versions)


def register(model: type, spec: Spec) -> None:
    for name in spec.fields:
        if looks_secret(name):
            raise ValueError(f"{model.__name__}.{name} looks secret: it can't be versioned")
    for column in getattr(getattr(model, "__table__", None), "columns", ()):
        default = column.default
        if column.key in spec.fields and default is not None and default.is_scalar:
            spec.defaults[column.key] = _plain(default.arg)
    _SPECS.setdefault(model, []).append(spec)
    _BY_TYPE[spec.record_type] = spec
    # Load a field's old value before it is overwritten, even when it was expired (after a
    # commit): a version needs its "before".
    for name in spec.fields:
        event.listen(getattr(model, name), "set", _noop, active_history=True)


def _noop(_target, value, _old, _initiator):
    return value


def specs_for(model: type) -> list[Spec]:
    return _SPECS.get(model, [])


def field_label(name: str, record_type: str | None = None) -> str:
    """A version's field as the pages name it: the record's own wording (its Spec's
    labels), else the shared one."""
    spec = _BY_TYPE.get(record_type or "")
    if spec is not None and name in spec.labels:
        return spec.labels[name]
    if "." in name:  # a key of a JSON settings field
        stem, key = name.split(".", 1)
        return f"{field_label(stem, record_type)}: {field_label(key).lower()}"
    return FIELD_LABELS.get(name, name.replace("_", " ").capitalize())


def value_label(name: str, value: Any, record_type: str | None = None) -> Any:
    """A stored value as the pages word it ("simultaneous" -> "Ring all agents at once")."""
    spec = _BY_TYPE.get(record_type or "")
    if spec is not None and isinstance(value, str) and value in spec.values.get(name, {}):
        return spec.values[name][value]
    if name in _LABELLED_FIELDS and isinstance(value, str):
        return VALUE_LABELS.get(value, value)
    return value


# --- values -------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _column_values(obj) -> dict[str, Any]:
    state = inspect(obj)
    values = {}
    for attr in state.mapper.column_attrs:
        loaded = state.dict.get(attr.key, None)
        values[attr.key] = loaded
    return values


def _json_fields(values: dict | None) -> dict | None:
    """A JSON settings field as its own fields ("settings_json" -> "settings.<key>"), so a
    version of a preset says which setting changed, not that a blob did."""
    if values is None:
        return None
    out = dict(values)
    for name in [n for n in values if n.endswith("_json")]:
        try:
            parsed = json.loads(values[name] or "{}")
        except (TypeError, ValueError):
            continue
        if isinstance(parsed, dict):
            del out[name]
            stem = name.removesuffix("_json")
            out.update({f"{stem}.{key}": value for key, value in parsed.items()
                        if not looks_secret(str(key))})
    return out


def _changes(spec: Spec, before: dict | None, after: dict | None) -> dict[str, list]:
    changes = {}
    names = list(spec.fields)
    json_names = [n for n in spec.fields if n.endswith("_json")]
    if json_names:
        before, after = _json_fields(before), _json_fields(after)
        names = [n for n in names if n not in json_names]
        for values in (before, after):
            for key in values or {}:
                if any(key.startswith(n.removesuffix("_json") + ".") for n in json_names) \
                        and key not in names:
                    names.append(key)
    for name in names:
        old = _plain(before.get(name)) if before is not None else None
        new = _plain(after.get(name)) if after is not None else None
        if before is not None and after is not None and old == new:
            continue
        if before is None and new in (None, ""):
            continue  # a new record's empty fields say nothing
        if after is None and old in (None, ""):
            continue
        changes[name] = [None, None] if name in spec.hidden else [old, new]
    return changes


def _row(spec: Spec, conn, action: str, before: dict | None, after: dict | None,
         actor: tuple[int | None, str], at: datetime) -> list[dict]:
    changes = _changes(spec, before, after)
    if not changes:
        return []  # nothing this spec records changed
    if action == CREATED and all(spec.defaults.get(name, object()) == pair[1]
                                 for name, pair in changes.items()):
        return []  # created with nothing but defaults (a settings row made for another
        # section): its first real change is its first version
    if action == CHANGED and spec.hidden and set(changes) <= set(spec.hidden) and all(
            not (after or {}).get(name) for name in changes):
        action = REDACTED  # personal data removed, nothing put in its place
    if action not in spec.actions:
        return []
    if "user_id" in changes:  # a membership's or recipient's user, by name
        changes["user"] = [user_name(conn, v) if v is not None else None
                           for v in changes.pop("user_id")]
    values = after if after is not None else before
    record_id = values.get("id") if "id" in values else values.get("account_id")
    return [
        {"account_id": account_id, "record_type": spec.record_type, "record_id": record_id,
         "record_label": spec.label(conn, values)[:200], "action": action,
         "changes_json": json.dumps(changes, sort_keys=True), "actor_id": actor[0],
         "actor_label": actor[1][:160], "at": at}
        for account_id in spec.accounts(conn, values) if account_id is not None
    ]


_TX_KEY = "versions_this_transaction"


def _insert(session: Session, conn, rows: list[dict]) -> None:
    """Write the versions. A record changed twice in one transaction (a service that flushes
    between steps) gets one version, from its first "before" to its last "after": the
    steps in between are not changes anyone made."""
    if not rows:
        return
    from portal.models import Version

    table = Version.__table__
    written = session.info.setdefault(_TX_KEY, {})
    for row in rows:
        key = (row["account_id"], row["record_type"], row["record_id"])
        earlier = written.get(key)
        if earlier is not None and earlier["action"] != DELETED:
            merged = _merge(earlier, row)
            if merged is None:
                conn.execute(table.delete().where(table.c.id == earlier["id"]))
                del written[key]
                continue
            done = conn.execute(table.update().where(table.c.id == earlier["id"]).values(
                action=merged["action"], changes_json=json.dumps(merged["changes"],
                                                                 sort_keys=True),
                record_label=row["record_label"], at=row["at"])).rowcount
            if done == 1:
                written[key] = {**earlier, **merged}
                continue
            # The earlier version was rolled back with its savepoint: write this one afresh.
        new_id = conn.execute(table.insert().returning(table.c.id), row).scalar_one()
        written[key] = {"id": new_id, "action": row["action"],
                        "changes": json.loads(row["changes_json"])}


def _merge(earlier: dict, row: dict) -> dict | None:
    """Two versions of one record in one transaction as one; None when they cancel out."""
    first, then = earlier["action"], row["action"]
    if first == CREATED and then == DELETED:
        return None
    changes = {name: list(pair) for name, pair in earlier["changes"].items()}
    for name, (old, new) in json.loads(row["changes_json"]).items():
        changes[name] = [changes[name][0], new] if name in changes else [old, new]
    if then == DELETED:
        action = DELETED
    elif first in (CREATED, REDACTED):
        action = first
    else:
        action = then
    if action == CHANGED:
        changes = {k: v for k, v in changes.items() if v[0] != v[1]}
        if not changes:
            return None
    return {"action": action, "changes": changes}


def _forget(session: Session, *_args) -> None:
    session.info.pop(_TX_KEY, None)


def _transaction_ended(session: Session, transaction) -> None:
    """The merging lasts one outermost transaction; a savepoint's release doesn't end it
    (its rollback does: see after_rollback)."""
    if transaction.parent is None:
        _forget(session)


# --- the unit of work ---------------------------------------------------------------------

def _after_flush(session: Session, _context) -> None:
    if not _SPECS:
        return
    work = []
    for obj in session.new:
        for spec in specs_for(type(obj)):
            if CREATED in spec.actions:
                work.append((spec, CREATED, None, _column_values(obj)))
    for obj in session.dirty:
        specs = specs_for(type(obj))
        if not specs or not session.is_modified(obj, include_collections=False):
            continue
        after = _column_values(obj)
        before = dict(after)
        state = inspect(obj)
        for attr in state.mapper.column_attrs:
            history = state.attrs[attr.key].history
            if history.added or history.deleted:
                before[attr.key] = history.deleted[0] if history.deleted else None
                after[attr.key] = history.added[0] if history.added else None
        for spec in specs:
            if spec.actions & {CHANGED, REDACTED}:
                work.append((spec, CHANGED, before, after))
    for obj in session.deleted:
        for spec in specs_for(type(obj)):
            if DELETED in spec.actions:
                state = inspect(obj)
                before = _column_values(obj)
                for attr in state.mapper.column_attrs:
                    history = state.attrs[attr.key].history
                    if history.deleted:
                        before[attr.key] = history.deleted[0]
                work.append((spec, DELETED, before, None))
    if not work:
        return
    conn = session.connection()
    actor, at = current_actor(), clock_now()
    rows = []
    for spec, action, before, after in work:
        rows.extend(_row(spec, conn, action, before, after, actor, at))
    _insert(session, conn, rows)


# --- ORM-enabled UPDATE and DELETE statements ---------------------------------------------

def _updated_names(statement) -> set[str]:
    names = set()
    for key in getattr(statement, "_values", None) or {}:
        names.add(getattr(key, "key", None) or getattr(key, "name", None) or str(key))
    for key, _value in getattr(statement, "_ordered_values", None) or ():
        names.add(getattr(key, "key", None) or str(key))
    return names


def _do_orm_execute(state) -> Any:
    if not (state.is_update or state.is_delete) or state.bind_mapper is None:
        return None
    specs = specs_for(state.bind_mapper.class_)
    if not specs:
        return None
    if state.is_update:
        touched = _updated_names(state.statement)
        specs = [s for s in specs if touched & set(s.fields) and s.actions & {CHANGED, REDACTED}]
    else:
        specs = [s for s in specs if DELETED in s.actions]
    if not specs:
        return None
    table = state.bind_mapper.local_table
    (pk,) = table.primary_key.columns
    from portal.transactions import begin_write

    # The rows are read in the statement's own write transaction (held: FOR UPDATE on
    # PostgreSQL, BEGIN IMMEDIATE on SQLite), so no other writer gets between the read of the
    # "before" and the change.
    begin_write(state.session)
    conn = state.session.connection()
    query = select(*table.c)
    if state.statement.whereclause is not None:
        query = query.where(state.statement.whereclause)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()  # the rows the statement will change, held
    before_rows = {row[pk.key]: dict(row) for row in conn.execute(query).mappings()}
    result = state.invoke_statement()
    if not before_rows:
        return result
    after_rows = {}
    if state.is_update:
        after_rows = {row[pk.key]: dict(row) for row in conn.execute(
            select(*table.c).where(pk.in_(list(before_rows)))).mappings()}
    actor, at = current_actor(), clock_now()
    rows = []
    for record_id, before in before_rows.items():
        after = after_rows.get(record_id)
        for spec in specs:
            if state.is_update and after is not None:
                rows.extend(_row(spec, conn, CHANGED, before, after, actor, at))
            elif state.is_delete:
                rows.extend(_row(spec, conn, DELETED, before, None, actor, at))
    _insert(state.session, conn, rows)
    return result


def install() -> None:
    """Listen on every Session (idempotent) and register the versioned models."""
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "do_orm_execute", _do_orm_execute)
        event.listen(Session, "after_transaction_end", _transaction_ended)
        event.listen(Session, "after_rollback", _forget)
    if not _SPECS:
        _register_models()


# --- what is versioned: each model's __versioned__, and the helpers its specs use ---------

def _register_models() -> None:
    import portal.models  # noqa: F401  (every model mapped, billing_links' too)
    from portal.extensions import db

    for mapper in sorted(db.Model.registry.mappers, key=lambda m: m.class_.__name__):
        for spec in mapper.class_.__dict__.get("__versioned__", ()):
            register(mapper.class_, spec)


def by_name(_conn, values: dict) -> str:
    return values["name"]


def own_account(_conn, values: dict) -> list[int]:
    """An account's versions are filed under the account itself."""
    return [values["id"]]


def user_accounts(conn, values: dict) -> list[int]:
    """A user's versions are filed under every account they belong to."""
    from portal.models import Membership

    return list(conn.execute(select(Membership.account_id)
                             .where(Membership.user_id == values["id"])).scalars())


def user_name(conn, user_id: int) -> str:
    from portal.models import User

    name = conn.execute(select(User.name).where(User.id == user_id)).scalar()
    return name or f"User #{user_id}"


def by_user_name(conn, values: dict) -> str:
    """A membership or a billing-email recipient: its user's name."""
    return user_name(conn, values["user_id"])
