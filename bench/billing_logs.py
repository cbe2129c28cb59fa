"""Benchmark Billing Settings → Billing Logs (/accounts/<id>/billing/logs and /logs.csv).

    .venv/bin/python bench/billing_logs.py [--rows 200000] [--repeat 100] [--warmup 10]
                                           [--csv-repeat 3] [--show-sql] [--profile CASE]

Builds a throwaway database (a temporary SQLite file, or DATABASE_URL when set) with one
account holding --rows ledger entries (bulk inserted: usage postings, auto recharges,
monthly plan fees and sales tax, a few payments, refunds and adjustments, increasing
created_at over a year, balance_after consistent and the cached balance equal to the sum, so
`ledger.check` passes) and a small neighbouring account, signs the owner in through the
Flask test client and measures:

  (a) a filtered page      ?kind=usage&from=...&to=...        htmx partial (HX-Request)
  (b) the same             as a full page
  (c) a text search        ?q=transcription (many matches)     htmx partial
  (d) the same             as a full page
  (e) a text search        ?q=R-000nnnnn (a receipt: 1 match)  htmx partial
  (f) the same             as a full page
  (g) a deep page          (a) with &page=200                  htmx partial (no target)

against baselines: bare routes on the same app that render the same 50 rows from a Python
list (no database, no login), the "results" block with jinja2_fragments' render_block for
the partials (P) and the whole template with render_template for the full pages (F). For
reference, (P+) and (F+) render the same from the list after what every account page does
first (the signed-in user loaded, the account and role read): the floor of any such page.
Time is the median of time.perf_counter around client.get (server time through the WSGI
stack, no network), the cases interleaved in a shuffled order each round. SQL statements per
request are counted with a "before_cursor_execute" listener (its "SQL time" is execute()
only: SQLite does most of a scan in fetchall, so it under-reports there), and the page
query's plan is printed (EXPLAIN QUERY PLAN / EXPLAIN).

Then the CSV export (/logs.csv, streamed): the newest quarter, half and all of the entries
(date filters), consumed chunk by chunk (client.get(..., buffered=False)), for rows/s and for
the peak memory growth during the export (tracemalloc, in a separate run since it slows
Python down; and the resident set size sampled at every chunk).

It is a report, not a test: it prints PASS/FAIL lines against the targets (ratio <= 2.0 for
the pages, >= 50,000 rows/s for the whole export, memory not growing with the row count) and
exits 0.
"""

import argparse
import cProfile
import csv
import gc
import io
import os
import pstats
import random
import re
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from accounts_list import PASSWORD, QueryCounter, database_url, sign_in  # noqa: E402
from flask import abort, g, render_template  # noqa: E402
from flask_login import current_user  # noqa: E402
from jinja2_fragments.flask import render_block  # noqa: E402
from sqlalchemy import func, insert, inspect, select  # noqa: E402
from werkzeug.datastructures import MultiDict  # noqa: E402

from portal import create_app  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import (  # noqa: E402
    LEDGER_LABELS,
    Account,
    AccountKind,
    BillingMode,
    Cause,
    LedgerEntry,
    LedgerKind,
    Membership,
    Role,
    User,
)
from portal.services import access, billing_logs, ledger, lifecycle, usage  # noqa: E402
from portal.services.auth import hash_password  # noqa: E402
from portal.services.billing_logs import LogPage  # noqa: E402
from portal.services.money import dollars  # noqa: E402

TARGET_RATIO = 2.0
TARGET_ROWS_PER_SECOND = 50_000
# "Memory does not grow with the row count": the peak at all the rows at most this much
# above the peak at a quarter of them (25%, and never less than 1 MiB of slack).
MEMORY_SLACK = 0.25
MEMORY_SLACK_BYTES = 1 << 20
MIN_ROWS_FOR_MEMORY = 10_000
HX = {"HX-Request": "true"}
ROW_RE = re.compile(r"<tr>\s*<td[ >]")
CELLS_RE = re.compile(r"<tr>\s*<td[^>]*>[^<]*</td>\s*<td[^>]*>([^<]*)</td>\s*<td[^>]*>([^<]*)</td>")
MiB = 1 << 20

THRESHOLD_CENTS = 50_000  # the seeded account's auto recharge: below $500, back to $2,000
RECHARGE_TO_CENTS = 200_000
PLAN = "Agency"
STATE, TAX_BPS = "CA", 725


class Entry(NamedTuple):
    """A row of the page, as the baselines hold it."""

    id: int
    created_at: datetime
    kind: LedgerKind
    description: str
    amount_cents: int
    balance_after_cents: int


# --------------------------------------------------------------------------- seeding

def usage_items(rng: random.Random) -> dict[str, int]:
    """One metering batch: minutes always, the extras now and then."""
    minutes = rng.randint(1, 90)
    items = {"minutes": minutes}
    if rng.random() < 0.3:
        items["transcriptions"] = rng.randint(1, minutes)
    if rng.random() < 0.2:
        items["enhanced_caller_id"] = rng.randint(1, 12)
    if rng.random() < 0.1:
        items["encrypted_recording"] = rng.randint(1, minutes)
    if rng.random() < 0.002:
        items["numbers"] = rng.randint(1, 5)
    return items


def seed_ledger(session, account_id: int, n: int, start: datetime, end: datetime,
                rng: random.Random, receipts: list[int]) -> dict:
    """n ledger entries for one account, bulk inserted, oldest first, as the services would
    have posted them. `receipts` numbers the charges (shared between accounts)."""
    step = (end - start) / n
    rows: list[dict] = []
    kinds: dict[LedgerKind, int] = {}
    balance = 0
    month_usage: dict[str, int] = {}
    month = None
    times: list[datetime] = []

    def add(when, kind, amount, description, key, cause, cause_ref=""):
        nonlocal balance
        balance += amount
        rows.append({"account_id": account_id, "kind": kind, "amount_cents": amount,
                     "balance_after_cents": balance, "description": description[:200],
                     "cause": cause, "cause_ref": cause_ref[:64], "idempotency_key": key,
                     "created_at": when})
        kinds[kind] = kinds.get(kind, 0) + 1
        times.append(when)

    def charge(when, kind, amount):
        receipts.append(len(receipts) + 1)
        charge_id = receipts[-1]
        label = "Auto recharge" if kind == LedgerKind.RECHARGE else "Payment"
        add(when, kind, amount, f"{label}: Visa ending 4242 (R-{charge_id:08d})",
            f"charge:{charge_id}", Cause.CHARGE, str(charge_id))

    def recharge_if_low(when):
        if balance < THRESHOLD_CENTS and len(rows) < n:
            charge(when, LedgerKind.RECHARGE, RECHARGE_TO_CENTS - balance)

    i = 0
    while len(rows) < n:
        # Strictly increasing: each slot gets a time inside its own step.
        when = start + step * len(rows) + step * rng.uniform(0.05, 0.9)
        when = when.replace(microsecond=0) if step > timedelta(seconds=2) else when
        if not rows:
            charge(when, LedgerKind.PAYMENT, RECHARGE_TO_CENTS)
            continue
        label = f"{when:%Y-%m}"
        if month is not None and label != month and len(rows) + 2 <= n:
            first = when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            fee = 29_900
            add(when, LedgerKind.PLAN_FEE, -fee, f"Plan fee: {PLAN}, {first:%B %Y}",
                f"plan-fee:{label}", Cause.JOB)
            prior_usage = month_usage.get(month, 0)
            tax = prior_usage * TAX_BPS // 10_000
            if tax:
                prior = datetime.strptime(month, "%Y-%m")
                add(when, LedgerKind.TAX, -tax,
                    f"Sales tax ({STATE} {TAX_BPS / 100:.2f}%) on {prior:%B %Y} usage of "
                    f"{dollars(prior_usage)}", f"tax:{month}", Cause.JOB)
            recharge_if_low(when)
            month = label
            continue
        month = label
        roll = rng.random()
        if roll < 0.0004:
            charge(when, LedgerKind.PAYMENT, rng.choice((5_000, 10_000, 25_000, 50_000)))
        elif roll < 0.0007:
            amount = rng.randint(100, 5_000)
            add(when, LedgerKind.REFUND, amount,
                f"Refund: duplicate minutes billed on {when - timedelta(days=2):%Y-%m-%d}",
                f"refund:{i}", Cause.USER)
        elif roll < 0.0009:
            amount = rng.choice((-1, 1)) * rng.randint(100, 2_000)
            add(when, LedgerKind.ADJUSTMENT, amount,
                "Adjustment: courtesy credit" if amount > 0 else "Adjustment: late usage",
                f"adjustment:{i}", Cause.USER)
        else:
            items = usage_items(rng)
            cost = usage.price(items)
            month_usage[label] = month_usage.get(label, 0) + cost
            key = f"meter-{i:08d}"
            add(when, LedgerKind.USAGE, -cost, f"Usage: {usage.describe(items)}",
                usage.key_for(account_id, key), Cause.USAGE, key)
            recharge_if_low(when)
        i += 1
    for chunk in range(0, len(rows), 20_000):
        session.execute(insert(LedgerEntry), rows[chunk:chunk + 20_000])
    session.execute(Account.__table__.update().where(Account.id == account_id)
                    .values(balance_cents=balance))
    return {"balance": balance, "kinds": kinds, "times": times}


def seed(session, n: int, neighbours: int, rng: random.Random) -> dict:
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=365)
    owner = User(email="owner-logs@bench.test", name="Bench Owner",
                 password_hash=hash_password(PASSWORD))
    account = Account(name="Bench Logs Co", kind=AccountKind.STANDALONE, plan=PLAN,
                      billing_mode=BillingMode.CUSTOMER, created_at=start - timedelta(days=30))
    other = Account(name="Neighbour Co", kind=AccountKind.STANDALONE, plan=PLAN,
                    billing_mode=BillingMode.CUSTOMER, created_at=start - timedelta(days=30))
    session.add_all([owner, account, other])
    session.flush()
    session.add(Membership(user_id=owner.id, account_id=account.id, role=Role.OWNER))
    receipts: list[int] = []
    seeded = seed_ledger(session, account.id, n, start, now - timedelta(minutes=5), rng,
                         receipts)
    seed_ledger(session, other.id, neighbours, start, now - timedelta(minutes=5), rng,
                receipts)
    session.flush()
    return {"account_id": account.id, "email": owner.email, "start": start, **seeded}


# --------------------------------------------------------------------------- baselines

def add_baseline_routes(app, rows: list[Entry], args: MultiDict, account_id: int) -> None:
    """The same 50 rows from a list: the "results" block (P), the whole page (F)."""
    entries = LogPage(items=rows, number=1, per_page=len(rows), has_next=True)
    account = SimpleNamespace(id=account_id, name="Bench Logs Co", is_agency=False,
                              is_sub=False, is_canceled=False, parent_id=None, parent=None)
    role = SimpleNamespace(is_admin=True, via_agency=False, role="owner")
    user = SimpleNamespace(is_authenticated=True, dark_mode=False, email="owner@bench.test")
    context = {"entries": entries, "args": args, "errors": {}, "kinds": LEDGER_LABELS,
               "labels": LEDGER_LABELS}

    def partial():
        g.account, g.access = account, role  # for url_for's account_id
        return render_block("billing/logs.html", "results", **context)

    def full():
        g.account, g.access = account, role
        return render_template("billing/logs.html", current_user=user, **context)

    def signed_in():
        """What every account page costs before its own query: the session's user loaded,
        the account and the user's role on it (tenancy.load_account's query)."""
        if not current_user.is_authenticated:
            abort(401)
        g.access = access.account_for(db.session, current_user, account_id)
        g.account = g.access.account
        lifecycle.check_open(g.account)

    def floor_partial():
        signed_in()
        return render_block("billing/logs.html", "results", **context)

    def floor_full():
        signed_in()
        return render_template("billing/logs.html", **context)

    app.add_url_rule("/bench-baseline-partial", "bench_baseline_partial", partial)
    app.add_url_rule("/bench-baseline-full", "bench_baseline_full", full)
    app.add_url_rule("/bench-floor-partial", "bench_floor_partial", floor_partial)
    app.add_url_rule("/bench-floor-full", "bench_floor_full", floor_full)


# --------------------------------------------------------------------------- measuring

class Counter(QueryCounter):
    """QueryCounter that also keeps the parameters (for EXPLAIN)."""

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        super()._before(conn, cursor, statement, parameters, context, executemany)
        self.parameters.append(parameters)

    def reset(self):
        super().reset()
        self.parameters = []


class Case:
    def __init__(self, key, label, client, url, headers, target=True, expect=None):
        self.key, self.label, self.client, self.url = key, label, client, url
        self.headers, self.target, self.expect = headers, target, expect
        self.partial = bool(headers)
        self.times: list[float] = []
        self.queries: list[int] = []
        self.db_seconds: list[float] = []
        self.statements: list[tuple[str, object]] = []
        self.baseline: Case | None = None

    def get(self):
        return self.client.get(self.url, headers=self.headers)

    def timed(self) -> float:
        started = time.perf_counter()
        response = self.client.get(self.url, headers=self.headers)
        response.get_data()
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"{self.url}: HTTP {response.status_code}")
        return elapsed

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times) * 1000

    @property
    def ratio(self) -> float:
        return self.median_ms / self.baseline.median_ms


def check_response(case: Case) -> str:
    """Sanity checks, so the timings are of the pages they claim to be."""
    response = case.get()
    body = response.get_data(as_text=True)
    problems = []
    if response.status_code != 200:
        problems.append(f"HTTP {response.status_code}")
    rows = len(ROW_RE.findall(body))
    if case.partial and ("<html" in body or 'id="results"' not in body):
        problems.append("not a fragment")
    if not case.partial and "<html" not in body:
        problems.append("not a full page")
    if case.expect is not None:
        expected_rows, must_contain = case.expect
        if rows != expected_rows:
            problems.append(f"{rows} rows, expected {expected_rows}")
        cells = CELLS_RE.findall(body)
        if must_contain and any(must_contain.lower() not in (k + " " + d).lower()
                                for k, d in cells):
            problems.append(f"rows without {must_contain!r}")
    return f"{rows} rows, {len(body):,} bytes" + (f"  PROBLEM: {', '.join(problems)}"
                                                   if problems else "")


def explain(engine, statement: str, parameters) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            return [row[-1] for row in rows]
        rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
        return [row[0] for row in rows]


def rss_bytes() -> int:
    """The resident set size now (Linux), else the peak so far."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Export(NamedTuple):
    rows: int
    nbytes: int
    chunks: int
    seconds: float
    rss_growth: int  # peak resident set size during the export, above the start
    traced_peak: int | None  # tracemalloc's peak above the start (traced runs only)
    last_line: bytes


def export(client, url: str, trace: bool = False) -> Export:
    gc.collect()
    if trace:
        tracemalloc.stop()  # a clean start, whatever an interrupted run left
        tracemalloc.start()
        tracemalloc.reset_peak()
        traced_start = tracemalloc.get_traced_memory()[0]
    rss_start = rss_peak = rss_bytes()
    started = time.perf_counter()
    response = client.get(url, buffered=False)
    if response.status_code != 200:
        raise SystemExit(f"{url}: HTTP {response.status_code}")
    newlines = nbytes = chunks = 0
    tail = b""
    try:
        for chunk in response.response:
            if isinstance(chunk, str):
                chunk = chunk.encode()
            if not chunk:
                continue
            chunks += 1
            nbytes += len(chunk)
            newlines += chunk.count(b"\n")
            tail = (tail + chunk)[-300:]
            rss_peak = max(rss_peak, rss_bytes())
    finally:
        response.close()
    seconds = time.perf_counter() - started
    traced = None
    if trace:
        traced = tracemalloc.get_traced_memory()[1] - traced_start
        tracemalloc.stop()
    last = tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
    return Export(newlines - 1, nbytes, chunks, seconds, rss_peak - rss_start, traced, last)


def profile(case: Case, requests: int, top: int = 30) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        case.get().get_data()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    print(f"\n=== cProfile, {requests} x {case.url} (cumulative) ===")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


# --------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="ledger entries")
    parser.add_argument("--neighbours", type=int, default=2_000,
                        help="ledger entries of a second account")
    parser.add_argument("--repeat", type=int, default=100, help="timed requests per case")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per case")
    parser.add_argument("--csv-repeat", type=int, default=3, help="timed exports per size")
    parser.add_argument("--show-sql", action="store_true", help="print the SQL of each case")
    parser.add_argument("--profile", metavar="CASE", default="",
                        help="cProfile 200 requests of a case (a to g, P, F)")
    args = parser.parse_args()
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench-billing-logs-") as tmpdir:
        url, temporary = database_url(tmpdir)
        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
                          "WTF_CSRF_ENABLED": True, "SECRET_KEY": "bench-secret"})
        per_page = app.config["BILLING_LOGS_PER_PAGE"]

        # Setup in its own app context, popped before any request (see accounts_list.py).
        with app.app_context():
            engine = db.engine
            created_schema = not inspect(engine).has_table("accounts")
            if not temporary and not created_schema:
                if db.session.scalar(select(func.count()).select_from(Account)):
                    print(f"DATABASE_URL {engine.url!r} already holds accounts; "
                          "point it at an empty database.")
                    return 2
            db.create_all()
            t0 = time.perf_counter()
            info = seed(db.session, args.rows, args.neighbours, random.Random(42))
            db.session.commit()
            if engine.dialect.name == "postgresql":
                with engine.connect() as conn:
                    conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                        "VACUUM ANALYZE")
            info["seconds"] = time.perf_counter() - t0
            info["mismatches"] = ledger.check(db.session)
            info["per_page"] = per_page
            db.session.remove()

        try:
            return run(app, engine, info, args, started)
        finally:
            with app.app_context():
                if temporary or created_schema:
                    db.drop_all()
                else:  # the tables were there and empty: empty them again
                    for table in reversed(db.metadata.sorted_tables):
                        db.session.execute(table.delete())
                    db.session.commit()
                db.engine.dispose()


def scenario_urls(app, engine, info) -> dict:
    """The filters of the cases, and what each should show (rows, a word in each row)."""
    account_id, start, per_page = info["account_id"], info["start"], info["per_page"]
    window = (date.fromordinal(start.date().toordinal() + 90),
              date.fromordinal(start.date().toordinal() + 270))
    with app.app_context():
        rare = db.session.scalar(
            select(LedgerEntry.description).where(
                LedgerEntry.account_id == account_id, LedgerEntry.kind == LedgerKind.RECHARGE)
            .order_by(LedgerEntry.id).offset(
                info["kinds"].get(LedgerKind.RECHARGE, 1) // 2).limit(1))
        receipt = re.search(r"R-\d{8}", rare).group(0)
        account = db.session.get(Account, account_id)
        counts = {}
        for name, values in (("filter", {"kind": "usage", "from": window[0].isoformat(),
                                         "to": window[1].isoformat()}),
                             ("common", {"q": "transcription"}),
                             ("rare", {"q": receipt})):
            log_filter = billing_logs.parse_filter(MultiDict(values))
            counts[name] = (values, db.session.scalar(
                select(func.count()).select_from(LedgerEntry)
                .where(*log_filter.conditions(account))))
        db.session.remove()
    base = f"/accounts/{account_id}/billing/logs"
    filter_args, filter_count = counts["filter"]
    common_args, common_count = counts["common"]
    rare_args, rare_count = counts["rare"]
    deep = 200
    return {
        "base": base, "filter_args": filter_args, "filter_count": filter_count,
        "common_count": common_count, "rare_count": rare_count, "receipt": receipt,
        "scenarios": (
            ("a", "filter kind+dates, partial", f"{base}?{urlencode(filter_args)}", HX, True,
             (min(per_page, filter_count), "Usage")),
            ("b", "filter kind+dates, full page", f"{base}?{urlencode(filter_args)}", {},
             True, (min(per_page, filter_count), "Usage")),
            ("c", "search q=transcription, partial", f"{base}?{urlencode(common_args)}", HX,
             True, (min(per_page, common_count), "transcription")),
            ("d", "search q=transcription, full", f"{base}?{urlencode(common_args)}", {},
             True, (min(per_page, common_count), "transcription")),
            ("e", f"search q={receipt}, partial", f"{base}?{urlencode(rare_args)}", HX, True,
             (min(per_page, rare_count), receipt)),
            ("f", f"search q={receipt}, full", f"{base}?{urlencode(rare_args)}", {}, True,
             (min(per_page, rare_count), receipt)),
            ("g", f"filter, page {deep} (OFFSET {(deep - 1) * per_page:,}), partial",
             f"{base}?{urlencode({**filter_args, 'page': deep})}", HX, False,
             (max(0, min(per_page, filter_count - (deep - 1) * per_page)), "Usage")),
        ),
    }


def run(app, engine, info, args, started) -> int:
    account_id, per_page = info["account_id"], info["per_page"]
    urls = scenario_urls(app, engine, info)

    # The baselines' rows: the 50 rows of (a), read once, held as plain tuples.
    with app.app_context():
        log_filter = billing_logs.parse_filter(MultiDict(urls["filter_args"]))
        page = billing_logs.page(db.session, db.session.get(Account, account_id), log_filter,
                                 1, per_page)
        rows = [Entry(*row) for row in page.items]
        db.session.remove()
    add_baseline_routes(app, rows, MultiDict(urls["filter_args"]), account_id)

    print("Billing Logs benchmark")
    print(f"  database: {engine.url.render_as_string(hide_password=True)} "
          f"({engine.dialect.name})")
    kinds = ", ".join(f"{LEDGER_LABELS[k].lower()} {n:,}"
                      for k, n in sorted(info["kinds"].items(), key=lambda kv: -kv[1]))
    print(f"  account id={account_id}: {args.rows:,} ledger entries ({kinds}), "
          f"{info['times'][0]:%Y-%m-%d} to {info['times'][-1]:%Y-%m-%d}; "
          f"a neighbour with {args.neighbours:,}")
    print(f"  balance {dollars(info['balance'])}; ledger.check: "
          + ("no mismatch" if not info["mismatches"] else f"MISMATCH {info['mismatches']}"))
    print(f"  matching: filter {urls['filter_count']:,}, q=transcription "
          f"{urls['common_count']:,}, q={urls['receipt']} {urls['rare_count']:,}")
    print(f"  seeded in {info['seconds']:.1f}s; {per_page} rows per page; {args.warmup} warm-up "
          f"+ {args.repeat} timed requests per case, interleaved")

    client = app.test_client()
    sign_in(client, info["email"])
    anonymous = app.test_client()
    base_p = Case("P", "baseline: results block from a list", anonymous,
                  "/bench-baseline-partial", HX, expect=(len(rows), "Usage"))
    base_f = Case("F", "baseline: full page from a list", anonymous,
                  "/bench-baseline-full", {}, expect=(len(rows), "Usage"))
    floor_p = Case("P+", "floor: signed in + tenancy, block from a list", client,
                   "/bench-floor-partial", HX, target=False, expect=(len(rows), "Usage"))
    floor_f = Case("F+", "floor: signed in + tenancy, page from a list", client,
                   "/bench-floor-full", {}, target=False, expect=(len(rows), "Usage"))
    floor_p.baseline, floor_f.baseline = base_p, base_f
    cases = []
    for key, label, url, headers, target, expect in urls["scenarios"]:
        case = Case(key, label, client, url, headers, target, expect)
        case.baseline = base_p if case.partial else base_f
        cases.append(case)
    everything = cases + [floor_p, floor_f, base_p, base_f]

    print("\nResponses (sanity check):")
    for case in everything:
        print(f"  ({case.key}) {case.url[:78]:<78} {check_response(case)}")

    with Counter(engine) as counter:
        for _ in range(3):
            for case in everything:
                counter.reset()
                case.get().get_data()
                case.queries.append(len(counter.statements))
                case.db_seconds.append(counter.seconds)
                case.statements = list(zip(counter.statements, counter.parameters,
                                           strict=True))

    print("\nQuery plans of the page query:")
    for case in cases:
        if not case.partial:
            continue
        page_sql = [(s, p) for s, p in case.statements if "FROM ledger_entries" in s]
        for statement, parameters in page_sql:
            plan = explain(engine, statement, parameters)
            print(f"  ({case.key}) " + "\n      ".join(plan))

    for _ in range(args.warmup):
        for case in everything:
            case.timed()
    order = list(everything)
    shuffle = random.Random(7).shuffle
    for _ in range(args.repeat):
        shuffle(order)
        for case in order:
            case.times.append(case.timed())

    print("\nMedian server time per request (ratio = median / its baseline: "
          f"P {base_p.median_ms:.2f} ms for partials, F {base_f.median_ms:.2f} ms for full "
          "pages)")
    header = (f"  {'case':<50} {'median':>9} {'p90':>9} {'ratio':>6} {'queries':>7} "
              f"{'SQL time':>9}")
    print(header)
    print("  " + "-" * (len(header) - 2))
    for case in everything:
        p90 = statistics.quantiles(case.times, n=10)[-1] * 1000
        ratio = f"{case.ratio:>5.2f}x" if case.baseline else "     -"
        print(f"  ({case.key}) {case.label:<46} {case.median_ms:>7.2f}ms {p90:>7.2f}ms "
              f"{ratio} {_counts(case):>7} {statistics.median(case.db_seconds) * 1000:>7.2f}ms")

    if args.show_sql:
        for case in cases:
            print(f"\nSQL of ({case.key}) {case.url}:")
            for i, (statement, parameters) in enumerate(case.statements, 1):
                print(f"  {i}. " + " ".join(statement.split()) + f"   {parameters}")

    exports = run_exports(app, engine, client, info, args)

    # ------------------------------------------------------------------ verdicts
    print(f"\nSummary ({args.rows:,} ledger entries; targets: ratio <= {TARGET_RATIO}, CSV >= "
          f"{TARGET_ROWS_PER_SECOND:,} rows/s, CSV memory flat)")
    failures = 0
    for case in cases:
        if not case.target:
            print(f"info: ({case.key}) {case.label}: {case.median_ms:.2f}ms = "
                  f"{case.ratio:.2f}x baseline {case.baseline.key} (no target), "
                  f"{_counts(case)} queries")
            continue
        ok = case.ratio <= TARGET_RATIO
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'}: ({case.key}) {case.label}: {case.median_ms:.2f}ms "
              f"= {case.ratio:.2f}x baseline {case.baseline.key} {case.baseline.median_ms:.2f}ms "
              f"(target <= {TARGET_RATIO}x), {_counts(case)} queries")
    for floor in (floor_p, floor_f):
        print(f"info: ({floor.key}) {floor.label}: {floor.median_ms:.2f}ms = {floor.ratio:.2f}x "
              f"baseline {floor.baseline.key}, {_counts(floor)} queries: the cost of any signed-in "
              "account page before its own query")
    print("info: above that floor: " + ", ".join(
        f"({c.key}) +{c.median_ms - (floor_p if c.partial else floor_f).median_ms:.2f}ms"
        for c in cases))
    full = exports["sizes"][-1]
    rate = full["rows"] / full["seconds"]
    ok = rate >= TARGET_ROWS_PER_SECOND
    failures += not ok
    print(f"{'PASS' if ok else 'FAIL'}: CSV export of {full['rows']:,} rows: {rate:,.0f} rows/s "
          f"({full['seconds']:.2f}s, {full['nbytes'] / MiB:.1f} MB; target >= "
          f"{TARGET_ROWS_PER_SECOND:,} rows/s)")
    quarter = exports["sizes"][0]
    # The export reads 2,000-row batches: with fewer than a few of them at the smallest size,
    # the peak is still climbing to its plateau and says nothing about growth.
    judged = quarter["rows"] >= MIN_ROWS_FOR_MEMORY
    for what, key in (("tracemalloc peak", "traced"), ("RSS growth", "rss")):
        allowed = max(quarter[key] * (1 + MEMORY_SLACK), quarter[key] + MEMORY_SLACK_BYTES)
        ok = full[key] <= allowed
        failures += judged and not ok
        figures = " / ".join(f"{s[key] / MiB:.2f} MB at {s['rows']:,}" for s in exports["sizes"])
        verdict = ("PASS" if ok else "FAIL") if judged else "info"
        print(f"{verdict}: CSV memory ({what}): {figures} (target: at {full['rows']:,} rows "
              f"<= {allowed / MiB:.2f} MB, i.e. not growing with rows"
              + (")" if judged else f"; not judged below {MIN_ROWS_FOR_MEMORY:,} rows at the "
                 "smallest size)"))
    ok = exports["rows_ok"]
    failures += not ok
    print(f"{'PASS' if ok else 'FAIL'}: CSV row counts equal the matching entries; the last "
          "row's balance_after is the account's balance")
    print(f"\n{'ALL TARGETS MET' if not failures else f'{failures} TARGET(S) MISSED'} "
          f"(total run {time.perf_counter() - started:.1f}s; exit code 0: this is a report)")

    if args.profile:
        profile(next(c for c in everything if c.key == args.profile), 200)
    return 0


def run_exports(app, engine, client, info, args) -> dict:
    """The CSV export at a quarter, half and all of the rows (newest first by date)."""
    account_id, times = info["account_id"], info["times"]
    base = f"/accounts/{account_id}/billing/logs.csv"
    targets = []
    n = len(times)
    for share in (4, 2):
        since = times[n - n // share].date()
        targets.append((f"{base}?{urlencode({'from': since.isoformat()})}",
                        {"from": since.isoformat()}))
    targets.append((base, {}))

    with app.app_context():
        account = db.session.get(Account, account_id)
        expected = [db.session.scalar(
            select(func.count()).select_from(LedgerEntry).where(
                *billing_logs.parse_filter(MultiDict(values)).conditions(account)))
            for _, values in targets]
        db.session.remove()

    # Warm-up (imports, first chunks), then the statements of the whole export.
    export(client, targets[0][0])
    with Counter(engine) as counter:
        export(client, targets[-1][0])
        csv_queries = len(counter.statements)
        csv_sql = [(s, p) for s, p in zip(counter.statements, counter.parameters, strict=True)
                   if "FROM ledger_entries" in s]

    sizes = []
    rows_ok = True
    for (url, _), want in zip(targets, expected, strict=True):
        runs = [export(client, url) for _ in range(max(1, args.csv_repeat))]
        traced = export(client, url, trace=True)
        seconds = statistics.median(r.seconds for r in runs)
        rows_ok &= all(r.rows == want for r in runs + [traced])
        sizes.append({"url": url, "rows": runs[0].rows, "expected": want, "seconds": seconds,
                      "nbytes": runs[0].nbytes, "chunks": runs[0].chunks,
                      "rss": max(r.rss_growth for r in runs), "traced": traced.traced_peak,
                      "traced_seconds": traced.seconds, "last": runs[0].last_line})
    last_balance = next(csv.reader([sizes[-1]["last"].decode()]))[4]
    rows_ok &= last_balance == f"{info['balance'] / 100:.2f}"

    print(f"\nCSV export ({base}, streamed, consumed chunk by chunk; {args.csv_repeat} timed runs"
          f" per size + 1 under tracemalloc; {csv_queries} SQL statements per export)")
    print(f"  {'rows':>9} {'expected':>9} {'median':>8} {'rows/s':>9} {'MB':>6} {'chunks':>6} "
          f"{'RSS peak +':>10} {'traced peak +':>13}")
    for s in sizes:
        print(f"  {s['rows']:>9,} {s['expected']:>9,} {s['seconds']:>7.2f}s "
              f"{s['rows'] / s['seconds']:>9,.0f} {s['nbytes'] / MiB:>6.1f} {s['chunks']:>6} "
              f"{s['rss'] / MiB:>8.2f}MB {s['traced'] / MiB:>11.2f}MB")
    print(f"  last row of the whole export: {sizes[-1]['last'].decode()}")
    for statement, parameters in csv_sql:
        print("  plan of the whole export: " + "\n      ".join(
            explain(engine, statement, parameters)))
    return {"sizes": sizes, "rows_ok": rows_ok}


def _counts(case: Case) -> str:
    lo, hi = min(case.queries), max(case.queries)
    return str(hi) if lo == hi else f"{lo}-{hi}"


if __name__ == "__main__":
    sys.exit(main())
