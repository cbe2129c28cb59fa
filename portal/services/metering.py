"""Usage events in batches (issue 18, M): `POST /api/v1/usage/batches`.

A batch holds 1 to 1,000 events `{id, account, item, quantity, timestamp}`. Each event is
accepted, reported as a duplicate or refused on its own, never the whole batch:

- refused: not an object; an id that is no usage key (usage.valid_key); an account the API
  key does not reach ("account not found", whether it exists or not: nothing leaks) or one
  that is canceled (usage.refusal); an unknown item; a quantity outside 1 to 1,000,000; a
  timestamp that is no ISO 8601 time with a timezone, or outside the window (rules.py:
  35 days back, 5 minutes ahead); the same account and id earlier in the same batch.
- duplicate: the metered account already accepted an event with this id, in any batch
  before (UNIQUE(account_id, event_id) on usage_events: once, forever).
- accepted: stored in usage_events and debited.

The money: one ledger entry per paying account, metered account and item in the batch
("Usage: 1,284 minutes (37 events)", naming the sub-account when its agency pays, as
usage.post does; an agency paying for three sub-accounts gets an entry for each, so
statements, budgets and Billing Logs see whose usage it was), priced by the same rules as a
single posting (usage.price), each with its own idempotency key derived from the batch's
events: the same events can never be debited twice, a crash-retry included. The events
point at their entry.

Everything is one transaction, in this order (`receive`):

1. the events checked by hand (a marshmallow schema per event is slow for 1,000; the
   OpenAPI document still describes them, blueprints/api_v1/usage.py);
2. the accounts' money locks, as `ledger.lock_payer` takes them but for the whole batch in
   two statements, each in id order so concurrent batches never wait on each other in a
   cycle: every agency involved (payers, and metered agencies) first, then the other
   metered accounts (FOR NO KEY UPDATE on PostgreSQL; BEGIN IMMEDIATE on SQLite). Who pays
   and whether the account is canceled are read under those locks;
3. the duplicates looked up (one SELECT; under the locks no other batch inserts events for
   these accounts meanwhile);
4. the balances moved with one UPDATE ... RETURNING for every payer, the entries inserted
   in one statement (each entry's balance_after the running balance), the events inserted
   pointing at them (INSERT ... ON CONFLICT DO NOTHING ... RETURNING: a conflict here would
   mean a lock was skipped: the batch fails rather than debit an event twice);
5. once per payer, not per event: the billing pause (ledger), the low-balance alert
   (alerts.balance_moved, from the balance before the batch to after it), the auto recharge
   (charges.start_recharge; the view runs it after the commit); once per sub-account with
   a budget: budgets.usage_counted with the batch's total.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, select, text, tuple_, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from portal import rules
from portal.clock import now as clock_now
from portal.errors import ValidationFailed
from portal.models import (
    Account,
    AccountKind,
    AccountStatus,
    BillingMode,
    BillingSettings,
    Budget,
    Cause,
    Charge,
    LedgerEntry,
    LedgerKind,
    UsageEvent,
    User,
)
from portal.services import alerts, budgets, charges, ledger, usage
from portal.transactions import begin_write

MAX_EVENTS = rules.MAX_USAGE_BATCH_EVENTS
MAX_AGE = timedelta(days=rules.USAGE_EVENT_MAX_AGE_DAYS)
MAX_AHEAD = timedelta(seconds=rules.USAGE_EVENT_MAX_AHEAD_SECONDS)
MAX_ID = 2**31 - 1
ITEM_ORDER = {name: n for n, name in enumerate(usage.ITEMS)}

# Why an event was refused: a stable code, and the sentence the answer carries.
NOT_AN_OBJECT = "not_an_object"
BAD_ID = "invalid_id"
ACCOUNT_NOT_FOUND = "account_not_found"
ACCOUNT_CANCELED = "account_canceled"
UNKNOWN_ITEM = "unknown_item"
BAD_QUANTITY = "invalid_quantity"
BAD_TIMESTAMP = "invalid_timestamp"
OUTSIDE_WINDOW = "timestamp_outside_window"
REPEATED = "repeated_in_batch"
CODES = (NOT_AN_OBJECT, BAD_ID, ACCOUNT_NOT_FOUND, ACCOUNT_CANCELED, UNKNOWN_ITEM,
         BAD_QUANTITY, BAD_TIMESTAMP, OUTSIDE_WINDOW, REPEATED)


@dataclass(frozen=True)
class Refused:
    id: str | None  # the event's id when it was a string
    index: int  # its place in the batch, from 0
    code: str
    reason: str
    field: str  # "id", "account", "item", "quantity", "timestamp" or "" (the event)

    def as_json(self) -> dict:
        return {"id": self.id, "index": self.index, "code": self.code,
                "reason": self.reason, "field": self.field}


@dataclass(frozen=True)
class Event:
    index: int
    id: str
    account_id: int
    item: str
    quantity: int
    occurred_at: datetime


@dataclass(frozen=True)
class Debit:
    """A ledger entry the batch wrote."""

    entry_id: int
    account_id: int  # whose balance paid: the agency's for agency billing
    for_account_id: int  # the metered account
    item: str
    quantity: int
    events: int
    amount_cents: int  # debited (positive)
    balance_after_cents: int

    def as_json(self) -> dict:
        return {"id": self.entry_id, "account_id": self.account_id,
                "for_account_id": self.for_account_id, "item": self.item,
                "quantity": self.quantity, "events": self.events,
                "amount_cents": self.amount_cents,
                "balance_after_cents": self.balance_after_cents}


@dataclass
class Batch:
    batch: str  # the batch's id (derived from its accepted events; "" when none)
    received: int
    accepted: list[Event] = field(default_factory=list)
    duplicates: list[Event] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    entries: list[Debit] = field(default_factory=list)
    recharges: list[Charge] = field(default_factory=list)  # started: run them after commit

    def as_json(self, recharged: list[Charge] | None = None) -> dict:
        """The answer (read before the commit; `recharged`: the recharges as run after it)."""
        ran = recharged if recharged is not None else self.recharges
        return {
            "batch": self.batch,
            "received": self.received,
            "counts": {"accepted": len(self.accepted), "duplicates": len(self.duplicates),
                       "refused": len(self.refused)},
            "accepted": [e.id for e in self.accepted],
            "duplicates": [e.id for e in self.duplicates],
            "refused": [r.as_json() for r in self.refused],
            "entries": [d.as_json() for d in self.entries],
            "recharges": [{"id": c.id, "account_id": c.account_id,
                           "status": c.status.value, "amount_cents": c.amount_cents}
                          for c in ran],
        }


# ----------------------------------------------------------------------------- checking

def events_of(body) -> list:
    """The request's event list, or ValidationFailed (a 422 for the whole request)."""
    if not isinstance(body, dict) or "events" not in body:
        raise ValidationFailed({"events": "Send a JSON object: {\"events\": [{\"id\": ..., "
                                          "\"account\": ..., \"item\": ..., \"quantity\": ..., "
                                          "\"timestamp\": ...}, ...]}."})
    events = body["events"]
    if not isinstance(events, list):
        raise ValidationFailed({"events": "Must be a list of events."})
    if not 1 <= len(events) <= MAX_EVENTS:
        raise ValidationFailed({"events": f"Send from 1 to {MAX_EVENTS:,} events a request "
                                          f"(this one has {len(events):,})."})
    return events


def parse_time(value) -> datetime | None:
    """An ISO 8601 time with a timezone ("2026-12-03T21:30:00Z", "...+01:00"), in UTC."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):  # year 1 at +01:00
        return None


def check(raw_events: list, now: datetime) -> tuple[list[Event], list[Refused]]:
    """Each event's fields, by hand; the account's reach and state are checked later."""
    valid, refused = [], []
    earliest, latest = now - MAX_AGE, now + MAX_AHEAD
    seen: set[tuple[int, str]] = set()
    for index, raw in enumerate(raw_events):
        if not isinstance(raw, dict):
            refused.append(Refused(None, index, NOT_AN_OBJECT, "An event is an object: {id, "
                                   "account, item, quantity, timestamp}.", ""))
            continue
        event_id = raw.get("id")
        shown = event_id if isinstance(event_id, str) else None

        def refuse(code: str, reason: str, field_name: str,
                   _index=index, _shown=shown) -> None:
            refused.append(Refused(_shown[:80] if _shown else _shown, _index, code, reason,
                                   field_name))

        if not usage.valid_key(event_id):
            refuse(BAD_ID, f"An event id is {usage.KEY_RULE}.", "id")
            continue
        account_id = raw.get("account")
        if not isinstance(account_id, int) or isinstance(account_id, bool):
            refuse(ACCOUNT_NOT_FOUND, "The account is its id, a whole number: 2, not \"2\".",
                   "account")
            continue
        if not 1 <= account_id <= MAX_ID:
            refuse(ACCOUNT_NOT_FOUND, "Account not found.", "account")
            continue
        item = raw.get("item")
        if not isinstance(item, str) or item not in ITEM_ORDER:
            refuse(UNKNOWN_ITEM, f"Unknown item. Known: {', '.join(usage.ITEMS)}.", "item")
            continue
        quantity = raw.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool) \
                or not 1 <= quantity <= rules.MAX_USAGE_QUANTITY:
            refuse(BAD_QUANTITY, f"A whole number from 1 to {rules.MAX_USAGE_QUANTITY:,}.",
                   "quantity")
            continue
        occurred_at = parse_time(raw.get("timestamp"))
        if occurred_at is None:
            refuse(BAD_TIMESTAMP, "An ISO 8601 time with a timezone, e.g. "
                                  "2026-12-03T21:30:00Z.", "timestamp")
            continue
        if not earliest <= occurred_at <= latest:
            refuse(OUTSIDE_WINDOW, f"Usage is taken from {rules.USAGE_EVENT_MAX_AGE_DAYS} days "
                                   f"back to {rules.USAGE_EVENT_MAX_AHEAD_SECONDS // 60} "
                                   "minutes ahead.", "timestamp")
            continue
        if (account_id, event_id) in seen:
            refuse(REPEATED, "The same id for the same account earlier in this batch.", "id")
            continue
        seen.add((account_id, event_id))
        valid.append(Event(index, event_id, account_id, item, quantity, occurred_at))
    return valid, refused


# ----------------------------------------------------------------------------- locking

@dataclass(frozen=True)
class Metered:
    """A metered account as read under its lock: what the batch needs of it (the rules of
    usage.refusal and usage.description read its name and state), without an ORM object
    for each of a batch's hundred accounts."""

    id: int
    name: str
    kind: AccountKind
    parent_id: int | None
    status: AccountStatus
    billing_mode: BillingMode

    @property
    def is_sub(self) -> bool:
        return self.kind == AccountKind.SUB

    @property
    def is_canceled(self) -> bool:
        return self.status == AccountStatus.CANCELED

    @property
    def paid_by_agency(self) -> bool:
        return self.is_sub and self.billing_mode == BillingMode.AGENCY


METERED_COLUMNS = (Account.id, Account.name, Account.kind, Account.parent_id, Account.status,
                   Account.billing_mode)


def _lock(session: Session, ids, whole: bool = True) -> list:
    """Lock these accounts in id order (PostgreSQL: FOR NO KEY UPDATE, as lock_payer), read
    afresh: Account objects (whole), else Metered rows."""
    if not ids:
        return []
    query = (select(Account) if whole else select(*METERED_COLUMNS)) \
        .where(Account.id.in_(sorted(ids))).order_by(Account.id)
    if session.connection().dialect.name == "postgresql":
        query = query.with_for_update(key_share=True)
    if whole:
        return list(session.scalars(query.execution_options(populate_existing=True)))
    return [Metered(*row) for row in session.execute(query)]


def _metered(account: Account) -> Metered:
    return Metered(account.id, account.name, account.kind, account.parent_id, account.status,
                   account.billing_mode)


def lock_accounts(session: Session, owner: Account, account_ids: set[int]
                  ) -> dict[int, tuple[Metered, Account]]:
    """The accounts the key's owner reaches among `account_ids`, locked, with their payers:
    {id: (account, payer)}. Agencies first (in id order), then the rest (in id order); the
    payers are Account objects (the billing pause, alerts and recharges take them)."""
    begin_write(session)
    reach = (Account.id == owner.id)
    if owner.kind == AccountKind.AGENCY:
        reach = reach | (Account.parent_id == owner.id)
    rows = session.execute(select(Account.id, Account.parent_id, Account.kind)
                           .where(Account.id.in_(sorted(account_ids)), reach)).all()
    agencies = {parent for _id, parent, _kind in rows if parent is not None}
    agencies |= {id_ for id_, _parent, kind in rows if kind == AccountKind.AGENCY}
    whole = {a.id: a for a in _lock(session, agencies)}
    metered = {a.id: _metered(a) for a in whole.values()}
    metered.update((m.id, m) for m in _lock(session, {r[0] for r in rows} - agencies, False))
    own_payers = {m.id for m in metered.values() if m.id not in whole and not m.paid_by_agency}
    if own_payers:
        whole.update((a.id, a) for a in session.scalars(
            select(Account).where(Account.id.in_(sorted(own_payers)))
            .execution_options(populate_existing=True)))
    found = {}
    for id_, _parent, _kind in rows:
        account = metered[id_]
        if not (account.id == owner.id or owner.kind == AccountKind.AGENCY
                and account.parent_id == owner.id):
            continue  # moved out of the agency while we waited
        payer = whole.get(account.parent_id if account.paid_by_agency else account.id)
        if payer is None:  # moved to another agency while we waited (rare): lock it now
            payer = _lock(session, {account.parent_id})[0]
            whole[payer.id] = payer
        found[id_] = (account, payer)
    return found


# ----------------------------------------------------------------------------- receiving

def receive(session: Session, owner: Account, body, *, api_key_id: int | None = None,
            actor: User | None = None, now: datetime | None = None) -> Batch:
    """Check, store and debit one batch in the caller's transaction (the caller commits, then
    runs `Batch.recharges` with charges.run_recharge). ValidationFailed only for the request
    as a whole (no event list, or more than 1,000)."""
    raw_events = events_of(body)
    now = now or clock_now()
    valid, refused = check(raw_events, now)
    batch = Batch("", len(raw_events), refused=refused)
    if not valid:
        return _sorted(batch)
    found = lock_accounts(session, owner, {e.account_id for e in valid})
    takes = []
    for event in valid:
        pair = found.get(event.account_id)
        if pair is None:
            refused.append(Refused(event.id, event.index, ACCOUNT_NOT_FOUND,
                                   "Account not found.", "account"))
        elif (why := usage.refusal(pair[0])) is not None:
            refused.append(Refused(event.id, event.index, ACCOUNT_CANCELED, why, "account"))
        else:
            takes.append(event)
    if not takes:
        return _sorted(batch)
    known = _known(session, takes)
    for event in takes:
        (batch.duplicates if (event.account_id, event.id) in known
         else batch.accepted).append(event)
    if batch.accepted:
        # The entries are stamped under the payers' locks (taken by lock_accounts), not
        # when the batch arrived: their times then follow the order batches are applied in.
        _debit(session, batch, found, api_key_id, actor, max(now, clock_now()))
    return _sorted(batch)


def _sorted(batch: Batch) -> Batch:
    batch.refused.sort(key=lambda r: r.index)
    return batch


def _debit(session: Session, batch: Batch, found: dict[int, tuple[Metered, Account]],
           api_key_id: int | None, actor: User | None, now: datetime) -> None:
    events = batch.accepted
    digest = hashlib.sha256()
    for event in sorted(events, key=lambda e: (e.account_id, e.id)):
        digest.update(f"{event.account_id}\x1f{event.id}\x1e".encode())
    batch.batch = digest.hexdigest()[:32]

    # One entry per (payer, metered account, item): quantities and event counts.
    groups: dict[tuple[int, int, str], list[int]] = {}
    for event in events:
        payer = found[event.account_id][1]
        group = groups.setdefault((payer.id, event.account_id, event.item), [0, 0])
        group[0] += event.quantity
        group[1] += 1
    order = sorted(groups, key=lambda g: (g[0], g[1], ITEM_ORDER[g[2]]))
    amounts = {g: usage.price({g[2]: groups[g][0]}) for g in order}
    totals: dict[int, int] = {}
    for g in order:
        totals[g[0]] = totals.get(g[0], 0) + amounts[g]

    # The balances, one statement: each payer's debit total.
    accounts = Account.__table__
    moved = {row[0]: (row[1], row[2]) for row in session.execute(
        update(accounts).where(accounts.c.id.in_(sorted(totals)))
        .values(balance_cents=accounts.c.balance_cents
                - case(totals, value=accounts.c.id, else_=0))
        .returning(accounts.c.id, accounts.c.balance_cents, accounts.c.status))}
    payers = {found[a][1].id: found[a][1] for a in {g[1] for g in order}}
    running = {pid: moved[pid][0] + totals[pid] for pid in totals}  # the balance before
    before = dict(running)
    rows = []
    for g in order:
        payer_id, account_id, item = g
        quantity, count = groups[g]
        running[payer_id] -= amounts[g]
        account = found[account_id][0]
        on_behalf = payer_id != account_id
        rows.append({
            "account_id": payer_id, "kind": LedgerKind.USAGE, "amount_cents": -amounts[g],
            "balance_after_cents": running[payer_id],
            "description": usage.description(
                account, on_behalf, {item: quantity},
                f" ({count:,} event{'' if count == 1 else 's'})")[:200],
            "for_account_id": account_id if on_behalf else None, "cause": Cause.USAGE,
            "cause_ref": batch.batch, "actor_id": actor.id if actor else None,
            "idempotency_key": f"usage-batch:{batch.batch}:{account_id}:{item}",
            "created_at": now})
    ids = _insert_entries(session, rows)
    entry_of = {}
    for g, row in zip(order, rows, strict=True):
        entry_id = ids[row["idempotency_key"]]
        entry_of[(g[1], g[2])] = entry_id
        batch.entries.append(Debit(entry_id, g[0], g[1], g[2], groups[g][0], groups[g][1],
                                   amounts[g], row["balance_after_cents"]))

    inserted = _insert_events(session, events, entry_of, batch.batch, api_key_id, now)
    if inserted != len(events):  # pragma: no cover - only if a writer skipped the locks
        raise RuntimeError("usage events were inserted by another batch under our locks")

    # Once per payer and per batch: the billing pause, the low-balance alert, the recharge.
    settings = {s.account_id: s for s in session.scalars(
        select(BillingSettings).where(BillingSettings.account_id.in_(sorted(payers))))}
    last_entry = {d.account_id: d.entry_id for d in batch.entries}
    for payer_id in sorted(payers):
        payer = payers[payer_id]
        after, status = moved[payer_id]
        session.expire(payer, ["balance_cents", "status"])
        ledger._billing_pause(session, payer, after, status, actor, now)
        own = settings.get(payer_id)
        if own is None:
            continue
        if own.low_balance_cents is not None and after < own.low_balance_cents:
            alerts.balance_moved(session, payer, before[payer_id], after,
                                 str(last_entry[payer_id]), now)
        if own.recharge_cap_month or (own.recharge_threshold_cents is not None
                                      and after < own.recharge_threshold_cents):
            charge = charges.start_recharge(session, payer, balance=after)
            if charge is not None:
                batch.recharges.append(charge)

    # Once per sub-account with a budget: the batch's usage against it.
    spent: dict[int, int] = {}
    for g in order:
        if found[g[1]][0].is_sub:
            spent[g[1]] = spent.get(g[1], 0) + amounts[g]
    if spent:
        for sub_id in session.scalars(select(Budget.account_id)
                                      .where(Budget.account_id.in_(sorted(spent)))):
            budgets.usage_counted(session, found[sub_id][1], sub_id, spent[sub_id], now)


# ----------------------------------------------------------------------------- statements
# Three statements carry the batch's rows. On PostgreSQL each sends its rows as a few arrays
# (unnest): one short statement whatever the batch's size, where a multi-row VALUES of
# 1,000 rows has 9,000 placeholders that the driver rewrites on every call (it caches only
# short statements: that rewriting was half of a batch's time). The ids, items, numbers and
# times go as one comma-separated text each (string_to_array: none of them holds a comma,
# usage.valid_key), which the driver sends as it is, where a list of 1,000 strings is
# quoted element by element. SQLite takes the same
# statements as SQLAlchemy writes them (a multi-row VALUES; its driver rewrites nothing).

def _postgres(session: Session) -> bool:
    return session.connection().dialect.name == "postgresql"


def _known(session: Session, events: list[Event]) -> set[tuple[int, str]]:
    """The (account, id) pairs among `events` accepted before."""
    if _postgres(session):
        # LATERAL ... LIMIT 1: one probe of the unique index per event, whatever the
        # planner guesses of the table's size (never a scan of every event ever taken).
        rows = session.execute(text(
            "SELECT t.a, t.e FROM unnest(CAST(string_to_array(:accounts, ',') AS INTEGER[]),"
            " string_to_array(:ids, ',')) AS t(a, e)"
            " CROSS JOIN LATERAL (SELECT 1 FROM usage_events u WHERE u.account_id = t.a"
            " AND u.event_id = t.e LIMIT 1) AS found"),
            {"accounts": _joined(e.account_id for e in events),
             "ids": _joined(e.id for e in events)})
    else:
        rows = session.execute(
            select(UsageEvent.account_id, UsageEvent.event_id)
            .where(tuple_(UsageEvent.account_id, UsageEvent.event_id)
                   .in_([(e.account_id, e.id) for e in events])))
    return {(account_id, event_id) for account_id, event_id in rows}


def _insert_entries(session: Session, rows: list[dict]) -> dict[str, int]:
    """The batch's ledger entries, in `rows`' order (so their ids follow their running
    balance_after); their ids by idempotency key."""
    if not _postgres(session):
        entries = LedgerEntry.__table__
        return {key: id_ for id_, key in session.execute(
            entries.insert().returning(entries.c.id, entries.c.idempotency_key), rows)}
    first = rows[0]
    result = session.execute(text(
        "INSERT INTO ledger_entries (account_id, kind, amount_cents, balance_after_cents,"
        " description, for_account_id, cause, cause_ref, actor_id, idempotency_key,"
        " created_at)"
        " SELECT t.account_id, :kind, t.amount, t.after, t.description, t.for_account,"
        " :cause, :cause_ref, :actor, t.key, :created_at"
        " FROM unnest(CAST(:accounts AS INTEGER[]), CAST(:amounts AS BIGINT[]),"
        " CAST(:afters AS BIGINT[]), CAST(:descriptions AS VARCHAR[]),"
        " CAST(:for_accounts AS INTEGER[]), CAST(:keys AS VARCHAR[]))"
        " WITH ORDINALITY AS t(account_id, amount, after, description, for_account, key, n)"
        " ORDER BY t.n"
        " RETURNING id, idempotency_key"), {
        "kind": LedgerKind.USAGE.value, "cause": Cause.USAGE.value,
        "cause_ref": first["cause_ref"], "actor": first["actor_id"],
        "created_at": first["created_at"],
        "accounts": [r["account_id"] for r in rows],
        "amounts": [r["amount_cents"] for r in rows],
        "afters": [r["balance_after_cents"] for r in rows],
        "descriptions": [r["description"] for r in rows],
        "for_accounts": [r["for_account_id"] for r in rows],
        "keys": [r["idempotency_key"] for r in rows]})
    return {key: id_ for id_, key in result}


def _insert_events(session: Session, events: list[Event], entry_of: dict, batch: str,
                   api_key_id: int | None, now: datetime) -> int:
    """INSERT ... ON CONFLICT (account_id, event_id) DO NOTHING ... RETURNING: how many
    were new."""
    if _postgres(session):
        return len(session.execute(text(
            "INSERT INTO usage_events (account_id, event_id, item, quantity, occurred_at,"
            " received_at, batch, api_key_id, ledger_entry_id)"
            " SELECT t.a, t.e, t.i, t.q, t.o, :received, :batch, :key, t.l"
            " FROM unnest(CAST(string_to_array(:accounts, ',') AS INTEGER[]),"
            " string_to_array(:ids, ','), string_to_array(:items, ','),"
            " CAST(string_to_array(:quantities, ',') AS INTEGER[]),"
            " CAST(string_to_array(:times, ',') AS TIMESTAMPTZ[]),"
            " CAST(string_to_array(:entries, ',') AS INTEGER[]))"
            " AS t(a, e, i, q, o, l)"
            " ON CONFLICT (account_id, event_id) DO NOTHING RETURNING id"), {
            "received": now, "batch": batch, "key": api_key_id,
            "accounts": _joined(e.account_id for e in events),
            "ids": _joined(e.id for e in events), "items": _joined(e.item for e in events),
            "quantities": _joined(e.quantity for e in events),
            "times": _joined(e.occurred_at.isoformat() for e in events),
            "entries": _joined(entry_of[(e.account_id, e.item)] for e in events)}).all())
    table = UsageEvent.__table__
    return len(session.execute(
        sqlite_insert(table).on_conflict_do_nothing(index_elements=["account_id", "event_id"])
        .returning(table.c.id),
        [{"account_id": e.account_id, "event_id": e.id, "item": e.item,
          "quantity": e.quantity, "occurred_at": e.occurred_at, "received_at": now,
          "batch": batch, "api_key_id": api_key_id,
          "ledger_entry_id": entry_of[(e.account_id, e.item)]} for e in events]).all())


def _joined(values) -> str:
    return ",".join(map(str, values))
