"""Benchmark the GDPR caller export (/accounts/<id>/privacy/export.json and .csv): streamed
against the export built whole in memory (the code before it was streamed), in the same run.

    .venv/bin/python bench/privacy_export.py [--calls 300000] [--small 30000]

Builds a throwaway database (a temporary SQLite file, or DATABASE_URL / TEST_DATABASE_URL
when set, as the other benchmarks do) with one account whose one caller made --small calls and
another caller --calls calls (bulk inserted), then exports each caller's calls as JSON and as
CSV two ways:

  streamed   the real route, signed in (Flask test client, consumed chunk by chunk)
  whole      the baseline: a bare route on the same app returning the same document built
             in memory first (a list of every call, then json.dumps / csv.DictWriter), as the
             export did before

Each case runs in a process of its own, so one case's memory does not hide another's: the
resident set size's peak above the process's size just before the request (ru_maxrss, the
way the issue measured a worker going from 137 MB to 1,041 MB), the time, the bytes and their
SHA-256 (the two ways must give the same bytes). The streamed cases are then run once more
under tracemalloc for the peak of Python allocations during the export.

It is a report, not a test: it prints the figures, the ratios streamed / whole, and PASS/FAIL
lines for the targets (the same bytes; the streamed export's memory flat from --small to
--calls, tracemalloc peak within 1.5x + 256 KiB; its RSS growth under a tenth of the whole
export's at --calls) and exits 0. The suite runs it at a tiny size
(tests/unit/test_bench_smoke.py, with every other benchmark).
"""

import argparse
import csv
import gc
import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from accounts_list import PASSWORD, database_url, sign_in  # noqa: E402
from flask import request  # noqa: E402
from sqlalchemy import func, insert, inspect, select  # noqa: E402

from portal import clock, create_app  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import Account, Call, Role, TrackingNumber, User  # noqa: E402
from portal.services import accounts, privacy  # noqa: E402
from portal.services.auth import hash_password  # noqa: E402
from portal.services.calls import _csv_safe  # noqa: E402

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
EMAIL = "admin@bench.test"
SMALL_CALLER, LARGE_CALLER = "+14155550001", "+14155550002"
MiB = 1024 * 1024
FLAT_FACTOR, FLAT_SLACK = 1.5, 256 * 1024
RSS_SHARE = 0.1


# --------------------------------------------------------------------------- the baseline

def whole_rows(session, account, number) -> list[dict]:
    """Every call of the caller as a dict, all at once (the export before it was streamed)."""
    labels = {number_id: label for number_id, label in session.execute(
        select(TrackingNumber.id, TrackingNumber.label)
        .where(TrackingNumber.account_id == account.id))}
    return [{
        "call_id": c.id,
        "started_at_utc": c.started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "caller_number": c.caller_number, "caller_name": c.caller_name, "notes": c.notes,
        "called_number": c.called_number,
        "tracking_number_label": labels.get(c.tracking_number_id, ""),
        "source": c.source, "duration_seconds": c.duration_seconds,
    } for c in privacy.caller_calls(session, account, number)]


def whole_json(session, account, number) -> str:
    return json.dumps({"caller_number": number, "account": account.name,
                       "exported_at_utc": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "calls": whole_rows(session, account, number)}, indent=2)


def whole_csv(session, account, number) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=privacy.EXPORT_FIELDS)
    writer.writeheader()
    for row in whole_rows(session, account, number):
        writer.writerow({k: _csv_safe(v) if k in privacy.FREE_TEXT else v
                         for k, v in row.items()})
    return buffer.getvalue()


# --------------------------------------------------------------------------- setup

def seed(session, small: int, large: int) -> int:
    admin = User(email=EMAIL, name="Bench Admin", password_hash=hash_password(PASSWORD))
    session.add(admin)
    session.flush()
    account = accounts.create_standalone(session, "Bench Caller Co", "Pro")
    accounts.add_member(session, admin, account, Role.ADMIN)
    number = TrackingNumber(account_id=account.id, number="+14155550000", label="Main line")
    session.add(number)
    session.flush()
    start = NOW - timedelta(days=365)
    for caller, count in ((SMALL_CALLER, small), (LARGE_CALLER, large)):
        for low in range(0, count, 10_000):
            session.execute(insert(Call), [{
                "account_id": account.id, "caller_number": caller,
                "caller_name": f"Pat Caller {i % 97}", "called_number": "+14155550000",
                "started_at": start + timedelta(seconds=i * 30),
                "duration_seconds": 30 + i % 900, "source": "Google Ads",
                "tracking_number_id": number.id if i % 2 else None,
                "notes": "Asked for a quote on the kitchen; call back after 5 pm.",
            } for i in range(low, min(count, low + 10_000))])
    session.commit()
    return account.id


# --------------------------------------------------------------------------- measuring

def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_rss_peak() -> bool:
    """Linux: set the process's peak RSS (VmHWM) back to its RSS now."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_peak_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def consume(client, url: str, trace: bool) -> dict:
    """GET url and take the body chunk by chunk: time, size, SHA-256, and the memory."""
    gc.collect()
    if trace:
        tracemalloc.start()
        tracemalloc.reset_peak()
        traced_start = tracemalloc.get_traced_memory()[0]
    rss_start = rss_bytes()
    if not reset_rss_peak():
        raise SystemExit("/proc/self/clear_refs is not writable: can't measure the RSS peak")
    started = time.perf_counter()
    response = client.get(url, buffered=False)
    if response.status_code != 200:
        raise SystemExit(f"{url}: HTTP {response.status_code}")
    digest, nbytes, chunks = hashlib.sha256(), 0, 0
    try:
        for chunk in response.response:
            chunk = chunk.encode() if isinstance(chunk, str) else chunk
            digest.update(chunk)
            nbytes += len(chunk)
            chunks += 1
    finally:
        response.close()
    seconds = time.perf_counter() - started
    result = {"seconds": seconds, "nbytes": nbytes, "chunks": chunks,
              "sha256": digest.hexdigest(), "rss_growth": rss_peak_bytes() - rss_start}
    if trace:
        result["traced_peak"] = tracemalloc.get_traced_memory()[1] - traced_start
        tracemalloc.stop()
    return result


def make_app(url: str):
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
                       "WTF_CSRF_ENABLED": True, "SECRET_KEY": "bench-secret-" + "x" * 40})


def whole_child(args) -> int:
    """The baseline for one format, small then large caller, in this process of its own (so
    its memory does not hide the other format's): one JSON line of figures."""
    app = make_app(args.db)
    clock.freeze(NOW)

    def whole(fmt: str):
        account = db.session.get(Account, args.account)
        number = request.args["number"]
        if fmt == "json":
            return app.response_class(whole_json(db.session, account, number),
                                      mimetype="application/json")
        return app.response_class(whole_csv(db.session, account, number), mimetype="text/csv")

    app.add_url_rule("/bench-whole/<fmt>", "bench_whole", whole)
    client = app.test_client()
    results = [consume(client, f"/bench-whole/{args.child}?number=%2B{caller[1:]}", False)
               for caller in (SMALL_CALLER, LARGE_CALLER)]
    print(json.dumps(results))
    return 0


# --------------------------------------------------------------------------- the run

def run_whole(args, url: str, account_id: int, fmt: str) -> list[dict]:
    command = [sys.executable, __file__, "--child", fmt, "--db", url,
               "--account", str(account_id)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the whole {fmt} export failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300_000, help="calls of the large caller")
    parser.add_argument("--small", type=int, default=30_000, help="calls of the small caller")
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument("--child", choices=["json", "csv"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--account", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return whole_child(args)
    if not 0 < args.small < args.calls:
        parser.error("--small must be at least 1 and below --calls")
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench-privacy-") as tmpdir:
        url, temporary = database_url(tmpdir)
        app = make_app(url)
        with app.app_context():
            engine = db.engine
            created_schema = not inspect(engine).has_table("accounts")
            if not temporary and not created_schema:
                if db.session.scalar(select(func.count()).select_from(Account)):
                    print(f"the database {engine.url!r} already holds accounts; "
                          "point DATABASE_URL at an empty database.")
                    return 2
            db.create_all()
            t0 = time.perf_counter()
            account_id = seed(db.session, args.small, args.calls)
            seeded = time.perf_counter() - t0
            print("GDPR caller export benchmark")
            print(f"  database: {engine.url.render_as_string(hide_password=True)} "
                  f"({engine.dialect.name}); seeded {args.small + args.calls:,} calls in "
                  f"{seeded:.1f}s")
            db.session.remove()
        try:
            clock.freeze(NOW)
            client = app.test_client()
            sign_in(client, EMAIL)
            results = {}
            for fmt in ("json", "csv"):
                for caller, count in ((SMALL_CALLER, args.small), (LARGE_CALLER, args.calls)):
                    url_ = f"/accounts/{account_id}/privacy/export.{fmt}?number=%2B{caller[1:]}"
                    results[fmt, "streamed", count] = consume(client, url_, trace=False)
                    if not args.no_trace:
                        results[fmt, "streamed", count]["traced_peak"] = consume(
                            client, url_, trace=True)["traced_peak"]
            for fmt in ("json", "csv"):
                small, large = run_whole(args, url, account_id, fmt)
                results[fmt, "whole", args.small] = small
                results[fmt, "whole", args.calls] = large
            return report(args, results, started)
        finally:
            clock.freeze(None)
            with app.app_context():
                if temporary or created_schema:
                    db.drop_all()
                else:
                    for table in reversed(db.metadata.sorted_tables):
                        db.session.execute(table.delete())
                    db.session.commit()
                db.engine.dispose()


def report(args, results: dict, started: float) -> int:
    print(f"\n  {'format':<6} {'calls':>9} {'way':<9} {'seconds':>8} {'calls/s':>9} "
          f"{'MB':>7} {'chunks':>6} {'RSS peak +':>10} {'traced peak +':>13}")
    for (fmt, way, count), r in results.items():
        traced = f"{r['traced_peak'] / MiB:>11.2f}MB" if "traced_peak" in r else f"{'-':>13}"
        print(f"  {fmt:<6} {count:>9,} {way:<9} {r['seconds']:>8.2f} "
              f"{count / r['seconds']:>9,.0f} {r['nbytes'] / MiB:>7.1f} {r['chunks']:>6} "
              f"{r['rss_growth'] / MiB:>8.1f}MB {traced}")
    print("\n  ratios streamed / whole (same calls, same run):")
    checks = []
    for fmt in ("json", "csv"):
        for count in (args.small, args.calls):
            s, w = results[fmt, "streamed", count], results[fmt, "whole", count]
            print(f"    {fmt:<4} {count:>9,} calls: time {s['seconds'] / w['seconds']:.2f}x, "
                  f"RSS growth {s['rss_growth'] / MiB:.1f} / {w['rss_growth'] / MiB:.1f} MB = "
                  f"{s['rss_growth'] / max(w['rss_growth'], 1):.3f}x")
            checks.append((f"{fmt} at {count:,} calls: the same bytes as the whole document",
                           s["sha256"] == w["sha256"] and s["nbytes"] == w["nbytes"]))
        s_large = results[fmt, "streamed", args.calls]
        w_large = results[fmt, "whole", args.calls]
        checks.append((f"{fmt}: streamed RSS growth at {args.calls:,} calls under "
                       f"{RSS_SHARE:.0%} of the whole export's",
                       s_large["rss_growth"] < RSS_SHARE * max(w_large["rss_growth"], 1)
                       or s_large["rss_growth"] < 2 * MiB))
        if not args.no_trace and args.small >= 2 * privacy.EXPORT_BATCH:
            small = results[fmt, "streamed", args.small]["traced_peak"]
            large = s_large["traced_peak"]
            checks.append((f"{fmt}: tracemalloc peak flat from {args.small:,} to "
                           f"{args.calls:,} calls ({small / MiB:.2f} -> {large / MiB:.2f} MB, "
                           f"<= {FLAT_FACTOR}x + {FLAT_SLACK // 1024} KiB)",
                           large <= FLAT_FACTOR * small + FLAT_SLACK))
    print()
    for label, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {label}")
    print(f"\n  total {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
