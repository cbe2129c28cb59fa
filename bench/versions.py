"""Benchmark versions (portal/versioning.py): the hooks' cost on writes, Change History, purge.

    .venv/bin/python bench/versions.py [--saves 1000] [--rounds 10] [--versions 200000]
                                       [--subs 40] [--repeat 10] [--warmup 2]
                                       [--purge-versions 200000] [--quick] [--show-sql]
                                       [--profile CASE] [--disk]
    scripts/with-postgres.sh .venv/bin/python bench/versions.py          (PostgreSQL)

Database: DATABASE_URL when set (as the other benchmarks), else TEST_DATABASE_URL (what
scripts/with-postgres.sh sets), else a temporary SQLite file. It must be empty; the tables
made here are dropped at the end. The SQLite file is made in /dev/shm (memory) unless
--disk: a commit's flush to disk (several ms, and very variable on a VM) would drown the
hooks' cost, as scripts/with-postgres.sh turns fsync and synchronous_commit off for the same
reason. Everything else about the connection is the app's (create_app's pragmas).

1. Write overhead. The same saves, one transaction (commit) each, with the versioning hooks
   installed (ON) and with the two session hooks removed (OFF: `event.remove(Session,
   "after_flush", versioning._after_flush)` and "do_orm_execute" likewise, re-added
   afterwards), in interleaved blocks (--saves split into --rounds blocks of each, the two
   blocks of a round back to back, alternating which goes first), so a change of the
   machine's load or of the database file over the run falls on both:

     phone   billing.set_critical_phone, alternating two numbers    (after_flush: 1 version)
     name    Account.name set through the ORM, alternating two names (after_flush: 1 version)
     merge   two phone saves in one transaction (a flush each): the second version is an
             UPDATE of the first (after_flush: 1 version, then merged)
     status  lifecycle.pause_swapping / resume alternating: a Core conditional UPDATE on
             Account.status (do_orm_execute: reads the rows before and after, 1 version)
     usage   usage.post of 3 minutes, a new idempotency key each: the ledger's balance UPDATE
             touches no versioned field (do_orm_execute returns at once; after_flush sees a
             LedgerEntry only): 0 versions, the ratio should be ~1

   Saves/s each way (saves / time of all blocks of the mode); ON/OFF time: the median over
   the rounds of (ON block time / OFF block time), with the time it adds per save; the same
   ratio of this process's CPU time (on SQLite all of the work, on PostgreSQL the client's
   side only: less disturbed by other load on the machine); SQL statements per save each
   way; the versions written per save (counted, so the OFF run is known to write none).
   The "set" attribute listeners versioning.register adds (active_history) stay in both
   runs: they are not session hooks.

2. Change History (GET /accounts/<agency>/history/, the owner signed in through the Flask
   test client) with --versions versions for one agency spread over 120 days (the
   retention), bulk inserted: a tenth on the agency itself, the rest over --subs
   sub-accounts, plus a standalone neighbour's. Cases: the first page; a filtered page (type
   + a 30-day range); "include sub-accounts" (subs=1) first page and filtered; a deep page
   with sub-accounts (info). Baseline: GET /accounts/<agency>/support/, the cheapest signed-in
   page of the same account on the same layout: sign-in, tenancy (access.account_for) and
   base.html, plus two indexed lookups on empty tables (support requests, released numbers),
   so (case - baseline) is what the history page adds. Median of --repeat requests per case,
   interleaved in a shuffled order each round; (b+) is (b) as the filter form sends it (htmx,
   the "results" block). Then every SQL statement of each page is run again alone, as the
   page sent it (median of --repeat/3 runs, at least 3): the count(*) the pager needs, the
   page of rows, the user filter's actors, the sub-account names; with the query plans
   (EXPLAIN QUERY PLAN on SQLite, EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL; a plan seen
   before is not repeated).
   --profile CASE: cProfile of 20 requests of a case.

3. Purge: the versions are replaced by --purge-versions new ones, about half of them past
   retention (agency and sub-accounts over 240 days, 120 kept; standalone accounts over 14
   days, 7 kept); history.purge + commit is timed (rows/s), then a second purge that finds
   nothing (the daily job's usual cost). The DELETE statements' plans are printed.

A report, not a test: ratios against baselines measured in the same run, no thresholds
asserted; exits 0.
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import re
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import accounts_list  # noqa: E402
from accounts_list import PASSWORD, database_url, sign_in  # noqa: E402
from billing_logs import Counter  # noqa: E402
from sqlalchemy import delete, event, func, inspect, or_, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from portal import create_app, rules, versioning  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import (  # noqa: E402
    Account,
    AccountKind,
    BillingMode,
    Membership,
    Role,
    User,
    Version,
)
from portal.services import billing, history, lifecycle, usage  # noqa: E402
from portal.services.auth import hash_password  # noqa: E402

HOOKS = (("after_flush", versioning._after_flush),
         ("do_orm_execute", versioning._do_orm_execute))
PHONES = ("+14155550134", "+14155550199")
MERGE_PHONES = ("+14155550111", "+14155550122", "+14155550133", "+14155550144")
ROW_RE = re.compile(r"<tr><td>")
TOTAL_RE = re.compile(r"Changes \d+–\d+ of (\d+)")
FILTER_TYPE = "tracking_number"


def pick_database(tmpdir: str) -> tuple[str, bool]:
    """(url, is_temporary): DATABASE_URL, else TEST_DATABASE_URL (scripts/with-postgres.sh),
    else a temporary SQLite file."""
    if not os.environ.get("DATABASE_URL") and os.environ.get("TEST_DATABASE_URL"):
        return os.environ["TEST_DATABASE_URL"], False
    return database_url(tmpdir)


@contextmanager
def hooks_removed():
    """The two session hooks off (the end-of-transaction bookkeeping stays)."""
    for name, fn in HOOKS:
        event.remove(Session, name, fn)
    try:
        yield
    finally:
        for name, fn in HOOKS:
            event.listen(Session, name, fn)
        assert all(event.contains(Session, name, fn) for name, fn in HOOKS)


def hooks_installed():
    return all(event.contains(Session, name, fn) for name, fn in HOOKS)


def explain(engine, statement: str, parameters, analyze: bool = True) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            return [row[-1] for row in rows]
        prefix = "EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN "
        rows = conn.exec_driver_sql(prefix + statement, parameters).all()
        conn.rollback()
        return [row[0] for row in rows]


# =========================================================================== 1. writes

def seed_writers(session, password_hash: str) -> dict:
    owner = User(email="owner-writes@bench.test", name="Bench Writer",
                 password_hash=password_hash)
    accounts = {key: Account(name=f"Bench {key.capitalize()} Co", kind=AccountKind.STANDALONE,
                             plan="Pro", billing_mode=BillingMode.CUSTOMER)
                for key in ("phone", "name", "merge", "status", "usage")}
    session.add_all([owner, *accounts.values()])
    session.flush()
    for account in accounts.values():
        session.add(Membership(user_id=owner.id, account_id=account.id, role=Role.OWNER))
    # Never runs out (no billing pause, no recharge: auto recharge is off).
    accounts["usage"].balance_cents = 10**12
    session.flush()
    return {"owner": owner.id, **{key: a.id for key, a in accounts.items()}}


def step_phone(s, ids, i):
    account = s.get(Account, ids["phone"])
    billing.set_critical_phone(s, account, PHONES[i % 2])
    s.commit()


def step_name(s, ids, i):
    account = s.get(Account, ids["name"])
    account.name = f"Bench Name Co {'AB'[i % 2]}"
    s.commit()


def step_merge(s, ids, i):
    account = s.get(Account, ids["merge"])
    billing.set_critical_phone(s, account, MERGE_PHONES[(2 * i + 1) % 4])
    billing.set_critical_phone(s, account, MERGE_PHONES[(2 * i + 2) % 4])
    s.commit()


def step_status(s, ids, i):
    account = s.get(Account, ids["status"])
    actor = s.get(User, ids["owner"])
    (lifecycle.pause_swapping if i % 2 == 0 else lifecycle.resume)(s, account, actor)
    s.commit()


def step_usage(s, ids, i):
    account = s.get(Account, ids["usage"])
    usage.post(s, account, {"minutes": 3}, f"bench-usage-{i:07d}")
    s.commit()


WRITE_CASES = (
    ("phone", "billing.set_critical_phone (after_flush)", step_phone),
    ("name", "Account.name via the ORM (after_flush)", step_name),
    ("merge", "2 phone saves in 1 transaction (merged)", step_merge),
    ("status", "pause_swapping/resume (do_orm_execute)", step_status),
    ("usage", "usage.post (balance UPDATE, not versioned)", step_usage),
)


class WriteCase:
    def __init__(self, key, label, step, ids):
        self.key, self.label, self.step, self.ids = key, label, step, ids
        self.i = 0  # a counter over both modes, so each save changes the value
        # Per timed block: (wall seconds, this process's CPU seconds, saves).
        self.blocks: dict[str, list[tuple[float, float, int]]] = {"on": [], "off": []}
        self.versions = {"on": 0, "off": 0}
        self.statements = {"on": 0, "off": 0}

    def versions_now(self, s) -> int:
        return s.scalar(select(func.count()).select_from(Version)
                        .where(Version.account_id == self.ids[self.key]))

    def block(self, s, mode: str, n: int, time_it: bool = True) -> None:
        before = self.versions_now(s)
        s.commit()
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            self.step(s, self.ids, self.i)
            self.i += 1
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        if time_it:
            self.blocks[mode].append((elapsed, cpu, n))
            self.versions[mode] += self.versions_now(s) - before
            s.commit()

    def saves(self, mode: str) -> int:
        return sum(n for _, _, n in self.blocks[mode])

    def rate(self, mode: str) -> float:
        """Saves per second over all the mode's blocks."""
        return self.saves(mode) / sum(wall for wall, _, _ in self.blocks[mode])

    @property
    def ratio(self) -> float:
        """Time per save with the hooks / without: the median over the rounds of the two
        blocks run back to back (robust to the machine's load changing during the run)."""
        return statistics.median(on[0] / off[0] for on, off
                                 in zip(self.blocks["on"], self.blocks["off"], strict=True))

    @property
    def cpu_ratio(self) -> float:
        """This process's CPU time per save, ON / OFF (SQLite: all the work; PostgreSQL:
        the client's side only)."""
        return (sum(cpu for _, cpu, _ in self.blocks["on"])
                / sum(cpu for _, cpu, _ in self.blocks["off"]))

    @property
    def extra_ms(self) -> float:
        """Wall time per save added by the hooks (median paired blocks)."""
        return statistics.median((on[0] - off[0]) / on[2] for on, off
                                 in zip(self.blocks["on"], self.blocks["off"], strict=True)
                                 ) * 1000


def run_writes(app, engine, ids: dict, args) -> list[WriteCase]:
    cases = [WriteCase(key, label, step, ids) for key, label, step in WRITE_CASES]
    per_block = max(1, args.saves // args.rounds)
    with app.app_context():
        s = db.session
        assert hooks_installed()
        warmup = min(20, per_block)
        for case in cases:
            # Warm-up both ways (the settings row created, statements compiled and cached).
            case.block(s, "on", warmup, time_it=False)
            with hooks_removed():
                case.block(s, "off", warmup, time_it=False)
            for mode, ctx in (("on", _nothing), ("off", hooks_removed)):
                with ctx(), Counter(engine) as counter:
                    case.step(s, ids, case.i)
                    case.i += 1
                    counter.reset()
                    case.step(s, ids, case.i)
                    case.i += 1
                    case.statements[mode] = len(counter.statements)
            for r in range(args.rounds):
                for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
                    if mode == "on":
                        case.block(s, mode, per_block)
                    else:
                        with hooks_removed():
                            case.block(s, mode, per_block)
        assert hooks_installed()
        db.session.remove()
    return cases


@contextmanager
def _nothing():
    yield


# =========================================================================== 2. history

def version_rows(rng: random.Random, n: int, account_ids: list[int], weights: list[float],
                 actors: list[tuple[int | None, str]], start: datetime,
                 end: datetime) -> list[dict]:
    """n versions, oldest first, with realistic record types, labels and changes."""
    span = (end - start).total_seconds()
    offsets = sorted(rng.random() * span for _ in range(n))
    statuses = ("Available", "On a call", "Lunch", "Wrap-up", "Training")
    rows = []
    for offset in offsets:
        at = start + timedelta(seconds=offset)
        account_id = rng.choices(account_ids, weights)[0]
        roll = rng.random()
        if roll < 0.30:
            number = f"+1415555{rng.randint(0, 9999):04d}"
            record_type, record_id, label = "tracking_number", rng.randint(1, 5000), number
            action = rng.choice(("created", "changed", "changed", "deleted"))
            changes = ({"label": [f"Campaign {rng.randint(1, 40)}",
                                  f"Campaign {rng.randint(1, 40)}"]}
                       if action == "changed" else {"number": [None, number]}
                       if action == "created" else {"number": [number, None]})
        elif roll < 0.50:
            record_id = rng.randint(1, 10**6)
            record_type, label, action = "call", f"Call #{record_id}", "redacted"
            changes = {"caller_name": [None, None], "caller_number": [None, None]}
        elif roll < 0.62:
            record_type, record_id = "agent_status", rng.randint(1, 500)
            label, action = rng.choice(statuses), "changed"
            changes = {"color": ["#22aa55", "#aa2255"], "position": [rng.randint(1, 5),
                                                                     rng.randint(1, 5)]}
        elif roll < 0.72:
            record_type, record_id = "preset", rng.randint(1, 800)
            label, action = f"Preset {record_id}", rng.choice(("created", "changed"))
            changes = {"settings_json": ['{"ring": 20}', '{"ring": 30}']}
        elif roll < 0.80:
            record_type, record_id = "tracking_source", rng.randint(1, 300)
            label, action = f"Source {record_id}", "changed"
            changes = {"referrer_contains": ["google", "bing"]}
        elif roll < 0.88:
            record_type, record_id = "call_queue", rng.randint(1, 300)
            label, action = f"Queue {record_id}", "changed"
            changes = {"ring_seconds": [20, 30], "max_wait_minutes": [5, 10]}
        elif roll < 0.93:
            record_type, record_id = "billing_settings", account_id
            label, action = "Billing settings", "changed"
            changes = {"critical_phone": list(PHONES)}
        elif roll < 0.96:
            record_type, record_id = "recharge_settings", account_id
            label, action = "Balance Auto Recharge Settings", "changed"
            changes = {"recharge_threshold_cents": [5000, 10000],
                       "recharge_amount_cents": [20000, 30000]}
        elif roll < 0.98:
            record_type, record_id = "payment_method", rng.randint(1, 2000)
            label, action = "Visa ending 4242", rng.choice(("created", "changed"))
            changes = {"exp_year": [2027, 2029]}
        else:
            record_type, record_id = "membership", rng.randint(1, 2000)
            label, action = f"User {record_id}", "created"
            changes = {"role": [None, "admin"]}
        actor = actors[0] if rng.random() < 0.3 else rng.choice(actors[1:])
        rows.append({"account_id": account_id, "record_type": record_type,
                     "record_id": record_id, "record_label": label, "action": action,
                     "changes_json": json.dumps(changes, sort_keys=True),
                     "actor_id": actor[0], "actor_label": actor[1], "at": at})
    return rows


def bulk_insert(session, rows: list[dict]) -> None:
    for chunk in range(0, len(rows), 20_000):
        session.execute(Version.__table__.insert(), rows[chunk:chunk + 20_000])


def seed_history(session, args, password_hash: str, rng: random.Random, now: datetime) -> dict:
    owner = User(email="owner-history@bench.test", name="Bench Owner",
                 password_hash=password_hash)
    admins = [User(email=f"admin{i}-history@bench.test", name=f"Admin {i}",
                   password_hash=password_hash) for i in range(1, 6)]
    agency = Account(name="Bench History Agency", kind=AccountKind.AGENCY, plan="Agency",
                     billing_mode=BillingMode.CUSTOMER)
    neighbour = Account(name="Bench Neighbour Co", kind=AccountKind.STANDALONE, plan="Pro",
                        billing_mode=BillingMode.CUSTOMER)
    session.add_all([owner, *admins, agency, neighbour])
    session.flush()
    session.add(Membership(user_id=owner.id, account_id=agency.id, role=Role.OWNER))
    for admin in admins:
        session.add(Membership(user_id=admin.id, account_id=agency.id, role=Role.ADMIN))
    subs = [Account(name=f"Client {i:03d}", kind=AccountKind.SUB, parent_id=agency.id,
                    plan="Agency",
                    billing_mode=BillingMode.AGENCY if i % 2 else BillingMode.CUSTOMER)
            for i in range(1, args.subs + 1)]
    session.add_all(subs)
    session.flush()
    sub_ids = [a.id for a in subs]
    actors = [versioning.SYSTEM, (owner.id, owner.name), *((a.id, a.name) for a in admins)]
    start = now - rules.VERSION_RETENTION_AGENCY + timedelta(minutes=10)
    end = now - timedelta(minutes=1)
    ids = [agency.id, *sub_ids]
    weights = [0.1] + [0.9 / len(sub_ids)] * len(sub_ids)
    t0 = time.perf_counter()
    rows = version_rows(rng, args.versions, ids, weights, actors, start, end)
    bulk_insert(session, rows)
    neighbour_rows = version_rows(rng, 2_000, [neighbour.id], [1.0], actors[:2],
                                  now - timedelta(days=7) + timedelta(minutes=10), end)
    bulk_insert(session, neighbour_rows)
    return {"agency": agency.id, "subs": sub_ids, "email": owner.email,
            "neighbour": neighbour.id, "insert_seconds": time.perf_counter() - t0,
            "own": sum(r["account_id"] == agency.id for r in rows), "all": len(rows)}


class Case(accounts_list.Case):
    """accounts_list's timed page request, with what the Change History checks need."""

    def __init__(self, key, label, client, url, expected_total=None, target=True,
                 headers=None):
        super().__init__(key, label, client, url, headers or {})
        self.expected_total, self.target = expected_total, target
        self.statements: list[tuple[str, object]] = []
        self.baseline = None

    @property
    def tag(self) -> str:
        return f"({self.key})".ljust(5)

    @property
    def ratio(self) -> float:
        return self.median_ms / self.baseline.median_ms


def check(case: Case, per_page: int) -> str:
    body = case.get().get_data(as_text=True)
    rows = len(ROW_RE.findall(body))
    problems = []
    if case.expected_total is not None:
        match = TOTAL_RE.search(body)
        total = int(match.group(1)) if match else None
        if total != case.expected_total:
            problems.append(f"total {total}, expected {case.expected_total}")
        if case.key != "e" and rows != min(per_page, case.expected_total):
            problems.append(f"{rows} rows, expected {min(per_page, case.expected_total)}")
        if case.headers and ("<html" in body or 'id="results"' not in body):
            problems.append("not an htmx fragment")
        if "subs=1" in case.url and "<th scope=\"col\">Account</th>" not in body:
            problems.append("no Account column")
    return f"{rows} rows, {len(body):,} bytes" + (f"  PROBLEM: {'; '.join(problems)}"
                                                   if problems else "")


def statement_kind(statement: str) -> str:
    flat = " ".join(statement.split()).lower()
    if "from versions" in flat and "count(*)" in flat:
        return "count(*)"
    if flat.startswith("select versions.") and "limit" in flat:
        return "page rows"
    if "from users" in flat and "versions" in flat:
        return "actors (user filter)"
    if "from accounts" in flat and "parent_id" in flat and "memberships" not in flat:
        return "sub-account names"
    if "from users" in flat:
        return "signed-in user"
    if "from accounts" in flat and "memberships" in flat:
        return "tenancy (account, role)"
    return "other: " + flat[:40]


def time_statement(engine, statement: str, parameters, repeat: int) -> float:
    times = []
    with engine.connect() as conn:
        for _ in range(repeat):
            started = time.perf_counter()
            conn.exec_driver_sql(statement, parameters).all()
            times.append(time.perf_counter() - started)
        conn.rollback()
    return statistics.median(times) * 1000


def expected_total(session, info, record_type=None, window=None, subs=False) -> int:
    ids = [info["agency"], *info["subs"]] if subs else [info["agency"]]
    query = select(func.count()).select_from(Version).where(Version.account_id.in_(ids))
    if record_type:
        query = query.where(Version.record_type == record_type)
    if window:
        query = query.where(Version.at >= datetime.combine(window[0], datetime.min.time(), UTC),
                            Version.at < datetime.combine(window[1] + timedelta(days=1),
                                                          datetime.min.time(), UTC))
    return session.scalar(query)


def run_history(app, engine, info, args, now) -> dict:
    agency = info["agency"]
    window = ((now - timedelta(days=60)).date(), (now - timedelta(days=31)).date())
    filtered = {"type": FILTER_TYPE, "from": window[0].isoformat(),
                "to": window[1].isoformat()}
    per_page = app.config["VERSIONS_PER_PAGE"]
    with app.app_context():
        s = db.session
        totals = {
            "a": expected_total(s, info),
            "b": expected_total(s, info, FILTER_TYPE, window),
            "c": expected_total(s, info, subs=True),
            "d": expected_total(s, info, FILTER_TYPE, window, subs=True),
        }
        totals["e"] = totals["c"]
        totals["b+"] = totals["b"]
        db.session.remove()
    deep = min(100, -(-totals["e"] // per_page))  # page 100, or the last one of fewer

    client = app.test_client()
    sign_in(client, info["email"])
    base = f"/accounts/{agency}/history/"
    baseline = Case("B", "baseline: support page (signed in, same layout)", client,
                    f"/accounts/{agency}/support/", target=False)
    cases = [
        Case("a", "first page (the agency's own)", client, base, totals["a"]),
        Case("b", f"type={FILTER_TYPE} + 30 days", client, f"{base}?{urlencode(filtered)}",
             totals["b"]),
        Case("b+", "the same, htmx partial (the filter form)", client,
             f"{base}?{urlencode(filtered)}", totals["b"], headers={"HX-Request": "true"}),
        Case("c", "include sub-accounts, first page", client, f"{base}?subs=1", totals["c"]),
        Case("d", "include sub-accounts + type + 30 days", client,
             f"{base}?{urlencode({**filtered, 'subs': '1'})}", totals["d"]),
        Case("e", f"include sub-accounts, page {deep}", client,
             f"{base}?subs=1&page={deep}", totals["e"], target=False),
    ]
    for case in cases:
        case.baseline = baseline
    everything = [*cases, baseline]

    print(f"\n2. Change History: {info['all']:,} versions for agency id={agency} over "
          f"{rules.VERSION_RETENTION_AGENCY.days} days ({info['own']:,} its own, the rest on "
          f"{len(info['subs'])} sub-accounts) + 2,000 on a neighbour; bulk inserted in "
          f"{info['insert_seconds']:.1f}s; {per_page} per page")
    print("  Responses (sanity check):")
    for case in everything:
        print(f"  {case.tag} {case.url[:80]:<80} {check(case, per_page)}")

    with Counter(engine) as counter:
        for case in everything:
            case.get().get_data()  # warm
            counter.reset()
            case.get().get_data()
            case.statements = list(zip(counter.statements, counter.parameters, strict=True))

    for _ in range(args.warmup):
        for case in everything:
            case.timed()
    order = list(everything)
    shuffle = random.Random(7).shuffle
    for _ in range(args.repeat):
        shuffle(order)
        for case in order:
            case.times.append(case.timed())

    print(f"\n  Median server time per request ({args.repeat} each, interleaved; ratio = "
          f"median / baseline B {baseline.median_ms:.2f} ms)")
    header = (f"  {'case':<48} {'matching':>9} {'median':>9} {'p90':>9} {'ratio':>7} "
              f"{'+ over B':>9} {'SQL':>4}")
    print(header)
    print("  " + "-" * (len(header) - 2))
    for case in everything:
        p90 = statistics.quantiles(case.times, n=10)[-1] * 1000
        ratio = f"{case.ratio:>6.2f}x" if case is not baseline else "      -"
        extra = (f"{case.median_ms - baseline.median_ms:>7.2f}ms" if case is not baseline
                 else "        -")
        matching = f"{case.expected_total:,}" if case.expected_total is not None else "-"
        print(f"  {case.tag} {case.label:<43} {matching:>9} {case.median_ms:>7.2f}ms "
              f"{p90:>7.2f}ms {ratio} {extra} {len(case.statements):>4}")

    alone = max(3, args.repeat // 3)
    print(f"\n  Each SQL statement of the page run alone (median of {alone} runs, ms):")
    kinds = ["count(*)", "page rows", "actors (user filter)", "sub-account names"]
    print(f"  {'case':<5}" + "".join(f"{k:>22}" for k in kinds) + f"{'all SQL of the page':>22}")
    breakdown = {}
    for case in everything:
        per_kind = {}
        total = 0.0
        for statement, parameters in case.statements:
            ms = time_statement(engine, statement, parameters, alone)
            total += ms
            kind = statement_kind(statement)
            per_kind[kind] = per_kind.get(kind, 0.0) + ms
        breakdown[case.key] = (per_kind, total)
        print(f"  {case.tag} " + "".join(
            f"{per_kind[k]:>20.2f}ms" if k in per_kind else f"{'-':>22}" for k in kinds)
            + f"{total:>20.2f}ms")

    print("\n  Query plans:")
    seen = set()
    for case in cases:
        for statement, parameters in case.statements:
            kind = statement_kind(statement)
            if kind not in kinds[:3]:
                continue
            plan = explain(engine, statement, parameters)
            signature = (kind, tuple(re.sub(r"\d+(\.\d+)?", "#", line) for line in plan))
            if signature in seen:
                print(f"  ({case.key}) {kind}: same plan as above")
                continue
            seen.add(signature)
            print(f"  ({case.key}) {kind}:\n      " + "\n      ".join(plan))
    if args.show_sql:
        for case in everything:
            print(f"\n  SQL of ({case.key}) {case.url}:")
            for i, (statement, parameters) in enumerate(case.statements, 1):
                print(f"    {i}. " + " ".join(statement.split()) + f"   {parameters}")
    if args.profile:
        profile(next(c for c in everything if c.key == args.profile), 20)
    return {"cases": cases, "baseline": baseline, "breakdown": breakdown}


def profile(case: Case, requests: int, top: int = 35) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        case.get().get_data()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    print(f"\n=== cProfile, {requests} x {case.url} (cumulative) ===")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


# =========================================================================== 3. purge

def run_purge(app, engine, info, ids, args, now) -> dict:
    rng = random.Random(11)
    actors = [versioning.SYSTEM, (None, "Bench Admin")]
    with app.app_context():
        s = db.session
        t0 = time.perf_counter()
        s.execute(delete(Version))
        s.commit()
        cleared = time.perf_counter() - t0
        grouped = [info["agency"], *info["subs"]]
        individual = [info["neighbour"], *(ids[k] for k in ("phone", "name", "merge",
                                                            "status", "usage"))]
        n_grouped = args.purge_versions * 9 // 10
        rows = version_rows(rng, n_grouped, grouped, [1.0] * len(grouped), actors,
                            now - 2 * rules.VERSION_RETENTION_AGENCY, now)
        rows += version_rows(rng, args.purge_versions - n_grouped, individual,
                             [1.0] * len(individual), actors,
                             now - 2 * rules.VERSION_RETENTION_INDIVIDUAL, now)
        rows.sort(key=lambda r: r["at"])
        t0 = time.perf_counter()
        bulk_insert(s, rows)
        s.commit()
        seeded = time.perf_counter() - t0
        _analyze(engine)
        expected = s.scalar(select(func.count()).select_from(Version).where(or_(
            Version.account_id.in_(grouped) & (Version.at < now - rules.VERSION_RETENTION_AGENCY),
            Version.account_id.in_(individual)
            & (Version.at < now - rules.VERSION_RETENTION_INDIVIDUAL))))
        s.commit()

        with Counter(engine) as counter:
            t0 = time.perf_counter()
            removed = history.purge(s, now=now)
            s.commit()
            seconds = time.perf_counter() - t0
            statements = [(st, p) for st, p in zip(counter.statements, counter.parameters,
                                                   strict=True) if st.lstrip().upper()
                          .startswith("DELETE")]
        left = s.scalar(select(func.count()).select_from(Version))
        t0 = time.perf_counter()
        again = history.purge(s, now=now)
        s.commit()
        idle = time.perf_counter() - t0
        db.session.remove()

    print(f"\n3. Purge: {len(rows):,} versions (90% on the agency and its sub-accounts over "
          f"{2 * rules.VERSION_RETENTION_AGENCY.days} days, 10% on {len(individual)} standalone "
          f"accounts over {2 * rules.VERSION_RETENTION_INDIVIDUAL.days} days), bulk inserted "
          f"in {seeded:.1f}s (the table emptied first in {cleared:.1f}s)")
    print(f"  history.purge + commit: {removed:,} removed (expected {expected:,}) in "
          f"{seconds:.2f}s = {removed / seconds:,.0f} rows/s; {left:,} left")
    print(f"  second purge (nothing expired): {again} removed in {idle * 1000:.1f} ms")
    for statement, parameters in statements:
        print("  plan: " + " ".join(statement.split()) + "\n      " + "\n      ".join(
            explain(engine, statement, parameters, analyze=False)))
    return {"removed": removed, "expected": expected, "seconds": seconds, "idle": idle,
            "total": len(rows), "left": left, "again": again}


def _analyze(engine) -> None:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE")


# =========================================================================== main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--saves", type=int, default=1000, help="timed saves per case and mode")
    parser.add_argument("--rounds", type=int, default=10,
                        help="interleaved blocks per mode (the saves split between them)")
    parser.add_argument("--versions", type=int, default=200_000,
                        help="versions of the agency for Change History")
    parser.add_argument("--subs", type=int, default=40, help="sub-accounts of the agency")
    parser.add_argument("--repeat", type=int, default=10, help="timed requests per case")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests per case")
    parser.add_argument("--purge-versions", type=int, default=200_000,
                        help="versions in the table before the purge (about half expired)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 200 saves, 20,000 versions, 5 requests per case")
    parser.add_argument("--show-sql", action="store_true", help="print each page's SQL")
    parser.add_argument("--profile", metavar="CASE", default="",
                        help="cProfile 20 requests of a Change History case (a, b, b+, c...)")
    parser.add_argument("--disk", action="store_true",
                        help="the SQLite file in the system's temporary directory (on disk: "
                             "every commit flushed) instead of /dev/shm")
    args = parser.parse_args()
    if args.quick:
        args.saves, args.versions, args.purge_versions = 200, 20_000, 20_000
        args.repeat, args.warmup = 5, 1
    if args.subs < 1 or args.versions < 1000 or args.rounds < 1 or args.repeat < 2:
        parser.error("--subs >= 1, --versions >= 1000, --rounds >= 1, --repeat >= 2")
    started = time.perf_counter()
    now = datetime.now(UTC).replace(microsecond=0)

    shm = "/dev/shm" if os.path.isdir("/dev/shm") and not args.disk else None
    with tempfile.TemporaryDirectory(prefix="bench-versions-", dir=shm) as tmpdir:
        url, temporary = pick_database(tmpdir)
        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
                          "WTF_CSRF_ENABLED": True, "SECRET_KEY": "bench-secret"})
        with app.app_context():
            engine = db.engine
            created_schema = not inspect(engine).has_table("accounts")
            if not temporary and not created_schema:
                if db.session.scalar(select(func.count()).select_from(Account)):
                    print(f"{engine.url!r} already holds accounts; point it at an empty "
                          "database.")
                    return 2
            db.create_all()
            password_hash = hash_password(PASSWORD)
            ids = seed_writers(db.session, password_hash)
            db.session.commit()
            db.session.remove()
        try:
            return run(app, engine, ids, password_hash, args, now, started)
        finally:
            with app.app_context():
                if temporary or created_schema:
                    db.drop_all()
                else:
                    for table in reversed(db.metadata.sorted_tables):
                        db.session.execute(table.delete())
                    db.session.commit()
                db.engine.dispose()


def run(app, engine, ids, password_hash, args, now, started) -> int:
    print("Versions benchmark")
    print(f"  database: {engine.url.render_as_string(hide_password=True)} "
          f"({engine.dialect.name}); {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")

    # ------------------------------------------------------------------ 1
    t0 = time.perf_counter()
    writes = run_writes(app, engine, ids, args)
    print(f"\n1. Write overhead: {args.saves:,} saves per case and mode (commit each) in "
          f"{args.rounds} interleaved blocks per mode; ON = hooks installed, OFF = "
          f"after_flush and do_orm_execute removed ({time.perf_counter() - t0:.1f}s)")
    header = (f"  {'case':<46} {'ON saves/s':>10} {'OFF saves/s':>11} {'ON/OFF time':>11} "
              f"{'+ms/save':>8} {'CPU ON/OFF':>10} {'SQL ON, OFF':>11} "
              f"{'versions/save ON, OFF':>21}")
    print(header)
    print("  " + "-" * (len(header) - 2))
    for case in writes:
        per = (f"{case.versions['on'] / case.saves('on'):.2f}, "
               f"{case.versions['off'] / case.saves('off'):.2f}")
        sql = f"{case.statements['on']}, {case.statements['off']}"
        print(f"  {case.key:<7}{case.label:<39} {case.rate('on'):>10,.0f} "
              f"{case.rate('off'):>11,.0f} {case.ratio:>10.2f}x {case.extra_ms:>+8.3f} "
              f"{case.cpu_ratio:>9.2f}x {sql:>11} {per:>21}")

    # ------------------------------------------------------------------ 2
    with app.app_context():
        t0 = time.perf_counter()
        info = seed_history(db.session, args, password_hash, random.Random(42), now)
        db.session.commit()
        info["insert_seconds"] = time.perf_counter() - t0
        db.session.remove()
    _analyze(engine)
    reads = run_history(app, engine, info, args, now)

    # ------------------------------------------------------------------ 3
    purged = run_purge(app, engine, info, ids, args, now)

    # ------------------------------------------------------------------ summary
    print(f"\nSummary ({engine.dialect.name})")
    for case in writes:
        print(f"  write {case.key:<7} {case.rate('on'):>7,.0f} saves/s with the hooks, "
              f"{case.rate('off'):>7,.0f} without: {case.ratio:.2f}x the time per save "
              f"({case.extra_ms:+.3f} ms), CPU {case.cpu_ratio:.2f}x")
    baseline = reads["baseline"]
    print(f"  read  baseline (B) support page {baseline.median_ms:.2f} ms")
    for case in reads["cases"]:
        per_kind, _ = reads["breakdown"][case.key]
        print(f"  read  {case.tag} {case.label:<40} {case.median_ms:>8.2f} ms = "
              f"{case.ratio:>5.2f}x B; count(*) alone {per_kind.get('count(*)', 0):.2f} ms, "
              f"actors {per_kind.get('actors (user filter)', 0):.2f} ms")
    print(f"  purge {purged['removed']:,} of {purged['total']:,} in {purged['seconds']:.2f}s = "
          f"{purged['removed'] / purged['seconds']:,.0f} rows/s; idle purge "
          f"{purged['idle'] * 1000:.1f} ms")
    print(f"\n(total run {time.perf_counter() - started:.1f}s; a report: exit code 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
