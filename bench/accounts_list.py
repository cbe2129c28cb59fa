"""Benchmark Settings → Accounts (/accounts/<agency_id>/sub-accounts) against a bare Flask page.

    .venv/bin/python bench/accounts_list.py [--subs 5000] [--small 50] [--repeat 200]
                                            [--warmup 20] [--show-sql] [--profile]

Builds a throwaway database (a temporary SQLite file, or DATABASE_URL when set) with two
agencies, one with --small sub-accounts and one with --subs, signs their owners in through
the Flask test client and measures, per agency:

  (a) the full page             /accounts/<id>/sub-accounts
  (b) a search                  ?q=dental&status=all
  (c) a filter, a later page    ?status=canceled&page=3
  (d) the htmx fragment         (a) with the header HX-Request: true

against (e), a bare route on the same app that renders the same page template with the
same 25 rows from a Python list (no database, no login, anonymous client). (e') renders only
the rows in a minimal template, for reference: the chrome (header, navigation, filter form)
costs about as much as the rows. Time is the median of time.perf_counter
around client.get (server time through the WSGI stack, no network). SQL statements per
request are counted with a "before_cursor_execute" listener on db.engine.

It is a report, not a test: it prints PASS/FAIL lines against the targets (ratio <= 2.0,
<= 6 queries per page, query count independent of the number of sub-accounts) and exits 0.
"""

import argparse
import cProfile
import io
import os
import pstats
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from types import SimpleNamespace  # noqa: E402

from flask import g, render_template  # noqa: E402
from sqlalchemy import event, func, insert, inspect, select  # noqa: E402

from portal import create_app  # noqa: E402
from portal.blueprints.accounts.routes import index_context  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import (  # noqa: E402
    Account,
    AccountKind,
    AccountStatus,
    BillingMode,
    Membership,
    NumberStatus,
    Role,
    TrackingNumber,
    User,
)
from portal.services.accounts import SubAccountFilter, SubAccountRow  # noqa: E402
from portal.services.auth import hash_password  # noqa: E402
from portal.services.paging import Page  # noqa: E402

TARGET_RATIO = 2.0
TARGET_QUERIES = 6
PASSWORD = "bench horse battery staple"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
ROW_RE = re.compile(r"<tr>\s*<td>")
HX = {"HX-Request": "true"}

TRADES = ("Dental", "Plumbing", "Roofing", "Law Group", "HVAC", "Auto Repair", "Veterinary")
# Canceled every 10th; the rest mostly active, a few paused or stopped.
LIVE_STATUSES = (
    [AccountStatus.ACTIVE] * 6
    + [AccountStatus.SWAPPING_PAUSED, AccountStatus.CALLS_STOPPED, AccountStatus.BILLING_PAUSED]
)

SCENARIOS = (  # key, label, query string, headers
    ("a", "full page", "", {}),
    ("b", "search q=dental&status=all", "?q=dental&status=all", {}),
    ("c", "status=canceled&page=3", "?status=canceled&page=3", {}),
    ("d", "htmx fragment (HX-Request)", "", HX),
)

BASELINE_SOURCE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Baseline</title></head>
<body><table class="list"><tbody>
{% for r in rows %}<tr>
  <td>{{ r.name }}</td>
  <td><span class="badge badge-{{ r.status }}">{{ r.status_label }}</span></td>
  <td>Balance from: {{ r.billing_mode }}</td>
  <td class="num">{{ r.number_count }}</td>
  <td><a href="{{ url_for('accounts.show', account_id=r.id) }}">Edit</a></td>
</tr>{% endfor %}
</tbody></table></body></html>
"""


# --------------------------------------------------------------------------- setup

def database_url(tmpdir: str) -> tuple[str, bool]:
    """(url, is_temporary): DATABASE_URL when set (normalised like portal.config), else
    TEST_DATABASE_URL (what scripts/with-postgres.sh sets), else a fresh SQLite file in
    tmpdir."""
    if os.environ.get("DATABASE_URL"):
        from portal.config import _database_url

        return _database_url(), False
    if os.environ.get("TEST_DATABASE_URL"):
        return os.environ["TEST_DATABASE_URL"], False
    return f"sqlite:///{Path(tmpdir) / 'bench.sqlite3'}", True


def seed_agency(session, label: str, n_subs: int, numbers: Iterator[int], password_hash: str,
                rng: random.Random) -> dict:
    """An agency with n_subs sub-accounts (bulk inserted), 1-3 numbers each, and an owner."""
    now = datetime.now(UTC)
    owner = User(email=f"owner-{label}@bench.test", name=f"Owner {label}",
                 password_hash=password_hash)
    agency = Account(name=f"Bench Agency {label}", kind=AccountKind.AGENCY, plan="Agency",
                     billing_mode=BillingMode.CUSTOMER)
    session.add_all([owner, agency])
    session.flush()
    session.add(Membership(user_id=owner.id, account_id=agency.id, role=Role.OWNER))

    # Names in shuffled order, so the name order is not the insertion (id) order.
    names = [f"Client {i:05d} {TRADES[i % len(TRADES)]}" for i in range(1, n_subs + 1)]
    rng.shuffle(names)
    rows = []
    for i, name in enumerate(names, start=1):
        canceled = i % 10 == 0
        rows.append({
            "name": name, "kind": AccountKind.SUB, "parent_id": agency.id, "plan": "Agency",
            "status": AccountStatus.CANCELED if canceled else LIVE_STATUSES[i % 9],
            "billing_mode": BillingMode.AGENCY if i % 3 else BillingMode.CUSTOMER,
            "canceled_at": now - timedelta(days=i % 400) if canceled else None,
            "created_at": now - timedelta(days=500), "updated_at": now,
        })
    if rows:
        session.execute(insert(Account), rows)
    sub_ids = session.scalars(
        select(Account.id).where(Account.parent_id == agency.id).order_by(Account.id)
    ).all()

    number_rows = []
    for i, sub_id in enumerate(sub_ids):
        for k in range(1 + i % 3):  # 1 to 3 numbers each
            released = (i + k) % 4 == 3  # about a quarter released
            number_rows.append({
                "account_id": sub_id, "number": f"+1415{next(numbers):07d}",
                "label": f"Line {k + 1}",
                "status": NumberStatus.RELEASED if released else NumberStatus.ACTIVE,
                "released_at": now - timedelta(days=1) if released else None,
                "created_at": now - timedelta(days=400),
            })
    if number_rows:
        session.execute(insert(TrackingNumber), number_rows)
    session.flush()
    canceled = sum(1 for r in rows if r["status"] == AccountStatus.CANCELED)
    dental = sum(1 for r in rows if "dental" in r["name"].lower())
    return {"label": label, "agency_id": agency.id, "email": owner.email, "subs": n_subs,
            "canceled": canceled, "dental": dental, "numbers": len(number_rows),
            "active_numbers": sum(1 for r in number_rows if r["status"] == NumberStatus.ACTIVE)}


def baseline_rows(session, agency_id: int, per_page: int) -> list[dict]:
    """The same rows as page 1 of (a), as plain dicts (read once, at setup)."""
    count = (
        select(func.count())
        .where(TrackingNumber.account_id == Account.id,
               TrackingNumber.status == NumberStatus.ACTIVE)
        .correlate(Account).scalar_subquery()
    )
    result = session.execute(
        select(Account, count)
        .where(Account.parent_id == agency_id, Account.status != AccountStatus.CANCELED)
        .order_by(Account.name, Account.id).limit(per_page)
    ).all()
    return [{"id": a.id, "name": a.name, "status": a.status.value,
             "status_label": a.status_label, "billing_mode": a.billing_mode.value,
             "number_count": n} for a, n in result]


def add_baseline_routes(app, rows: list[dict], agency_id: int, per_page: int) -> None:
    """(e): the same page template, the same 25 rows, from a Python list: no database, no
    login. (e'): only the rows, in a minimal template compiled once."""
    compiled = app.jinja_env.from_string(BASELINE_SOURCE)
    statuses = {s.value: s for s in AccountStatus}
    items = [
        SubAccountRow(id=r["id"], name=r["name"], status=statuses[r["status"]],
                      billing_mode=BillingMode(r["billing_mode"]), canceled_at=None,
                      number_count=r["number_count"])
        for r in rows
    ]
    page = Page(items=items, total=4500, number=1, per_page=per_page)
    agency = SimpleNamespace(id=agency_id, name="Agency large", is_agency=True, is_sub=False,
                             is_canceled=False, parent_id=None, parent=None)
    access = SimpleNamespace(is_admin=True, via_agency=False, role="owner")
    user = SimpleNamespace(is_authenticated=True, dark_mode=False, email="owner@bench.test")

    def baseline():
        g.account, g.access = agency, access
        # The view's own context (index_context), with what the view would have read: no
        # billing request is pending in this data.
        return render_template(
            "accounts/index.html", current_user=user,
            **index_context(page, q="", status=SubAccountFilter.ACTIVE, errors={},
                            pending={}))

    def baseline_rows_only():
        # render_template accepts a Template: Flask's whole render path (context
        # processors, signals), without recompiling the source on every request.
        return render_template(compiled, rows=rows)

    app.add_url_rule("/bench-baseline", "bench_baseline", baseline)
    app.add_url_rule("/bench-baseline-rows", "bench_baseline_rows", baseline_rows_only)


def sign_in(client, email: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    match = CSRF_RE.search(page)
    if not match:
        raise SystemExit("no csrf_token field on /login")
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "csrf_token": match.group(1)})
    if response.status_code not in (302, 303):
        raise SystemExit(f"sign-in as {email} failed: HTTP {response.status_code}")


# --------------------------------------------------------------------------- measuring

class QueryCounter:
    """Counts (and times) SQL statements on the engine while attached."""

    def __init__(self, engine):
        self.engine = engine
        self.statements: list[str] = []
        self.seconds = 0.0
        self._started = 0.0

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append(statement)
        self._started = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        self.seconds += time.perf_counter() - self._started

    def reset(self):
        self.statements, self.seconds = [], 0.0

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        self.reset()
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


class Case:
    def __init__(self, key, label, client, url, headers, size=None):
        self.key, self.label, self.client, self.url = key, label, client, url
        self.headers, self.size = headers, size
        self.times: list[float] = []
        self.queries: list[int] = []
        self.db_seconds: list[float] = []
        self.statements: list[str] = []

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


def check_response(case: Case, info: dict | None) -> str:
    """Sanity checks, so the timings are of the pages they claim to be."""
    response = case.get()
    body = response.get_data(as_text=True)
    problems = []
    if response.status_code != 200:
        problems.append(f"HTTP {response.status_code}")
    rows = len(ROW_RE.findall(body))
    if case.key == "d":
        if "<html" in body or 'id="results"' not in body:
            problems.append("not a fragment")
    elif case.key in "abc" and "<html" not in body:
        problems.append("not a full page")
    if case.key == "b" and rows and body.count("Dental") < rows:
        problems.append("search rows that are not Dental")
    if info is not None:
        expected = {"a": min(25, info["subs"] - info["canceled"]),
                    "b": min(25, info["dental"]),
                    "c": max(0, min(25, info["canceled"] - 50)),
                    "d": min(25, info["subs"] - info["canceled"])}[case.key]
        if rows != expected:
            problems.append(f"{rows} rows, expected {expected}")
    else:
        expected = 25
        if rows != expected:
            problems.append(f"{rows} rows, expected {expected}")
    return f"{rows} rows, {len(body):,} bytes" + (f"  PROBLEM: {', '.join(problems)}"
                                                   if problems else "")


def profile(case: Case, requests: int, top: int = 35) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        case.get().get_data()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    print(f"\n=== cProfile, {requests} x {case.url} (cumulative) ===")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


# --------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subs", type=int, default=5000, help="sub-accounts, large agency")
    parser.add_argument("--small", type=int, default=50, help="sub-accounts, small agency")
    parser.add_argument("--repeat", type=int, default=200, help="timed requests per case")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests per case")
    parser.add_argument("--show-sql", action="store_true", help="print the SQL of each case")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile 200 requests of (a) on the large agency")
    args = parser.parse_args()
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench-accounts-") as tmpdir:
        url, temporary = database_url(tmpdir)
        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
                          "WTF_CSRF_ENABLED": True, "SECRET_KEY": "bench-secret"})
        per_page = app.config["ACCOUNTS_PER_PAGE"]

        # Setup in its own app context, popped before any request: a request reuses an
        # app context that is already pushed, and with it the Flask-SQLAlchemy session
        # and its identity map, which would hide queries (the user load, for one).
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
            password_hash = hash_password(PASSWORD)
            rng = random.Random(42)
            numbers = iter(range(1, 10_000_000))
            small = seed_agency(db.session, "small", args.small, numbers, password_hash, rng)
            large = seed_agency(db.session, "large", args.subs, numbers, password_hash, rng)
            rows = baseline_rows(db.session, large["agency_id"], per_page)
            db.session.commit()
            if engine.dialect.name == "postgresql":
                # Autovacuum would analyze the fresh tables soon; the planner needs it now.
                with engine.connect() as conn:
                    conn.exec_driver_sql("ANALYZE")
            seeded = time.perf_counter() - t0
            db.session.remove()
        add_baseline_routes(app, rows, large["agency_id"], per_page)

        try:
            return run(app, engine, url, small, large, args, seeded, started, per_page)
        finally:
            with app.app_context():
                if temporary or created_schema:
                    db.drop_all()
                else:  # the tables were there and empty: empty them again
                    for table in reversed(db.metadata.sorted_tables):
                        db.session.execute(table.delete())
                    db.session.commit()
                db.engine.dispose()


def run(app, engine, url, small, large, args, seeded, started, per_page) -> int:
    print("Settings → Accounts benchmark")
    print(f"  database: {engine.url.render_as_string(hide_password=True)} "
          f"({engine.dialect.name})")
    for info in (small, large):
        print(f"  agency {info['label']:<5} id={info['agency_id']}: {info['subs']:>5} subs "
              f"({info['canceled']} canceled, {info['dental']} dental), "
              f"{info['numbers']} numbers ({info['active_numbers']} active)")
    print(f"  seeded in {seeded:.2f}s; {per_page} rows per page; "
          f"{args.warmup} warm-up + {args.repeat} timed requests per case, interleaved")

    cases: list[Case] = []
    for info in (small, large):
        client = app.test_client()
        sign_in(client, info["email"])
        base = f"/accounts/{info['agency_id']}/sub-accounts"
        for key, label, query, headers in SCENARIOS:
            cases.append(Case(key, label, client, base + query, headers, size=info["subs"]))
    anonymous = app.test_client()
    baseline = Case("e", "baseline: same page from a list", anonymous, "/bench-baseline", {})
    baseline_str = Case("e'", "rows only, minimal template", anonymous,
                        "/bench-baseline-rows", {})
    cases += [baseline, baseline_str]

    print("\nResponses (sanity check):")
    for case in cases:
        info = small if case.size == small["subs"] else large
        info = info if case.size is not None else None
        print(f"  ({case.key}) {case.url:<58} {check_response(case, info)}")

    # Queries: count (and time) the SQL of each request, a few times each.
    with QueryCounter(engine) as counter:
        for _ in range(5):
            for case in cases:
                counter.reset()
                case.get().get_data()
                case.queries.append(len(counter.statements))
                case.db_seconds.append(counter.seconds)
                case.statements = counter.statements

    # Timing: warm-up, then rounds over every case in a shuffled order each round, so
    # drift (CPU frequency, GC, other load) spreads over all cases alike.
    for _ in range(args.warmup):
        for case in cases:
            case.timed()
    order = list(cases)
    shuffle = random.Random(7).shuffle
    for _ in range(args.repeat):
        shuffle(order)
        for case in order:
            case.times.append(case.timed())

    base_ms = baseline.median_ms
    by_key = {(c.key, c.size): c for c in cases}
    print(f"\nMedian server time per request (ratio = median / baseline (e) {base_ms:.2f} ms)")
    header = (f"  {'case':<36} {'subs':>5} {'median':>9} {'p90':>9} {'ratio':>6} "
              f"{'queries':>7} {'SQL time':>9}")
    print(header)
    print("  " + "-" * (len(header) - 2))
    for case in cases:
        p90 = statistics.quantiles(case.times, n=10)[-1] * 1000
        size = "" if case.size is None else str(case.size)
        key = f"({case.key})"
        print(f"  {key:<4} {case.label:<31} {size:>5} {case.median_ms:>7.2f}ms "
              f"{p90:>7.2f}ms {case.median_ms / base_ms:>5.2f}x {max(case.queries):>7} "
              f"{statistics.median(case.db_seconds) * 1000:>7.2f}ms")

    print(f"\nQueries per request: {small['subs']} vs {large['subs']} sub-accounts")
    print(f"  {'case':<34} {small['subs']:>6} {large['subs']:>6}")
    for key, label, _, _ in SCENARIOS:
        a, b = by_key[(key, small["subs"])], by_key[(key, large["subs"])]
        print(f"  ({key}) {label:<30} {_counts(a):>6} {_counts(b):>6}")

    if args.show_sql:
        for case in cases:
            if case.size == large["subs"] or case.size is None:
                print(f"\nSQL of ({case.key}) {case.url}:")
                for i, statement in enumerate(case.statements, 1):
                    print(f"  {i}. " + " ".join(statement.split()))

    print("\nSummary (large agency, "
          f"{large['subs']} sub-accounts; targets: ratio <= {TARGET_RATIO}, "
          f"queries <= {TARGET_QUERIES} and no more at {large['subs']} than at {small['subs']})")
    print(f"  {'case':<34} {'median':>9} {'ratio':>6} {'queries':>11}  verdict")
    # "Not growing": no case at the large size needs more queries than the most any case
    # needs at the small size (a last page skips its count, so small results may need fewer).
    small_max = max(max(by_key[(k, small["subs"])].queries) for k, *_ in SCENARIOS)
    failures = 0
    for key, label, _, _ in SCENARIOS:
        a, b = by_key[(key, small["subs"])], by_key[(key, large["subs"])]
        ratio = b.median_ms / base_ms
        queries_ok = max(b.queries) <= TARGET_QUERIES and max(b.queries) <= small_max
        verdicts = [("PASS" if ratio <= TARGET_RATIO else "FAIL") + " ratio",
                    ("PASS" if queries_ok else "FAIL") + " queries"]
        failures += sum(v.startswith("FAIL") for v in verdicts)
        print(f"  ({key}) {label:<30} {b.median_ms:>7.2f}ms {ratio:>5.2f}x "
              f"{_counts(a) + ' vs ' + _counts(b):>11}  {', '.join(verdicts)}")
    print(f"  (e) baseline                       {base_ms:>7.2f}ms  1.00x "
          f"{max(baseline.queries):>11}")
    print(f"      (e' only the 25 rows in a minimal template: "
          f"{baseline_str.median_ms:.2f}ms; against it the ratios would be "
          + ", ".join(f"({k}) {by_key[(k, large['subs'])].median_ms / baseline_str.median_ms:.2f}x"
                      for k, *_ in SCENARIOS) + ")")
    print()
    for key, label, _, _ in SCENARIOS:
        a, b = by_key[(key, small["subs"])], by_key[(key, large["subs"])]
        ratio = b.median_ms / base_ms
        print(f"{'PASS' if ratio <= TARGET_RATIO else 'FAIL'}: ({key}) {label}: "
              f"{b.median_ms:.2f}ms = {ratio:.2f}x baseline (target <= {TARGET_RATIO}x)")
    for key, label, _, _ in SCENARIOS:
        a, b = by_key[(key, small["subs"])], by_key[(key, large["subs"])]
        ok = max(b.queries) <= TARGET_QUERIES and max(b.queries) <= small_max
        print(f"{'PASS' if ok else 'FAIL'}: ({key}) {label}: {_counts(b)} queries at "
              f"{large['subs']} subs, {_counts(a)} at {small['subs']} "
              f"(target <= {TARGET_QUERIES}, not growing)")
    print(f"\n{'ALL TARGETS MET' if not failures else f'{failures} TARGET(S) MISSED'} "
          f"(total run {time.perf_counter() - started:.1f}s; exit code 0: this is a report)")

    if args.profile:
        profile(by_key[("a", large["subs"])], 200)
    return 0


def _counts(case: Case) -> str:
    """The query count, or min-max when it varied between requests."""
    lo, hi = min(case.queries), max(case.queries)
    return str(hi) if lo == hi else f"{lo}-{hi}"


if __name__ == "__main__":
    sys.exit(main())
