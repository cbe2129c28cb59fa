"""Every benchmark in bench/ runs to the end at a tiny size, so a broken benchmark fails CI.

Each script runs as `make bench` would run it, in a subprocess (so a broken import, argument or
seed fails here too), on the suite's database: TEST_DATABASE_URL is set to it (the migrated
SQLite file, or PostgreSQL under scripts/with-postgres.sh), so the benchmarks seed the real
schema, constraints and all. The scripts are reports that exit 0 whatever their figures; this
checks that each one printed its ratio lines against its baseline, and that the checks it
makes of its own data and answers passed (the pages it timed showed what they claim, the
money is consistent, the two ways give the same bytes). The speed targets are not judged at
this size: the figures are the benchmarks' business, at their full size (bench/README.md).
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench"
# The load test's own files (`make loadtest` runs them; they are no benchmark of their own).
LOAD_TEST = re.compile(r"^(loadtest.*|locustfile|smtp_sink)\.py$")

RATIO = r"\d+\.\d+x"
NEVER = ("PROBLEM", "MISMATCH", "Traceback")

# script: (tiny-size arguments, [(pattern, how many lines match it)], lines that must appear)
SMOKE = {
    "accounts_list.py": (
        # Over 25 live sub-accounts in the small agency, so its first page is not its last.
        ["--small", "30", "--subs", "60", "--repeat", "2", "--warmup", "0"],
        [(rf"^(PASS|FAIL): \([abcd]\) .+: \d+\.\d+ms = {RATIO} baseline \(target", 4),
         (r"^(PASS|FAIL): \([abcd]\) .+: \d+ queries at 60 subs, \d+ at 30 ", 4),
         (rf"^  \(e'\) rows only, minimal template .* {RATIO} ", 1)],
        ["(a) /accounts/"],
    ),
    "billing_logs.py": (
        ["--rows", "1000", "--neighbours", "20", "--repeat", "2", "--warmup", "1",
         "--csv-repeat", "1"],
        [(rf"^(PASS|FAIL): \([a-f]\) .+ = {RATIO} baseline [PF] ", 6),
         (rf"^info: \((g|P\+|F\+)\) .+ = {RATIO} baseline ", 3),
         (r"^(PASS|FAIL): CSV export of 1,000 rows: [\d,]+ rows/s", 1)],
        ["ledger.check: no mismatch",
         "PASS: CSV row counts equal the matching entries; the last row's balance_after is "
         "the account's balance"],
    ),
    "usage_ingest.py": (
        # $7.20 a posting, recharged below $10 to $30: a recharge every ~3 postings.
        ["--postings", "12", "--threads", "2", "--repeat", "1", "--threshold", "10",
         "--amount", "30"],
        [(rf"^info: sequential: ON \d+ postings/s, OFF \d+ postings/s: recharge ON costs "
          rf"{RATIO}", 1),
         (rf"^info: 2 threads: .+: {RATIO}; threads vs sequential: ON {RATIO}, OFF {RATIO}",
          1),
         (r"^PASS: recharge ON  sequential: recharges made [1-9]\d* vs predicted", 1),
         (r"^PASS: recharge (ON |OFF) (sequential|2 threads): 0 failed postings; every "
          r"posting recorded once", 4)],
        ["ALL CHECKS PASS"],
    ),
    # issue 18 (M): the batch endpoint under gunicorn, partitioned and mixed, against the
    # single posting; one batch profiled; the money checks.
    "usage_ingest.py --batch": (
        ["--tiny"],
        [(rf"^info: \((B|M)\) [\d,]+ events/s = {RATIO} baseline \(S\) [\d,]+ events/s$", 2),
         (r"^  \(S\) single posting, baseline: 40 postings", 1),
         (r"^One batch profiled in-process \(HTTP 200; 200 events", 1)],
        ["PASS: ledger.check: no mismatch; every balance_after the running sum; every event "
         "stored once and debited once", "ALL CHECKS PASS"],
    ),
    "statement_pdf.py": (
        # The statement as it is against the old per-posting layout (O), in the same run
        # (issue 17); the busiest account's whole history (3) against WeasyPrint alone.
        ["--lines", "20", "--big-lines", "30", "--repeat", "1", "--big-repeat", "0",
         "--old-repeat", "0", "--warmup", "0", "--jobs-limit", "10"],
        [(rf"^(PASS|FAIL): \(a1\) 20 entries, .+ pages\) = {RATIO} baseline \(O1\)", 1),
         (rf"^(PASS|FAIL|info): \(a2\) 30 entries, .+ pages\) = {RATIO} baseline \(O2\)", 1),
         (rf"^(PASS|FAIL|info): \(a3\) \d+ entries, .+ pages\) = {RATIO} baseline \(W3\)",
          1),
         (rf"^(PASS|FAIL): \((a1|s1)\) 20 entries, .+ = {RATIO} WeasyPrint alone \(W1\)", 2),
         (r"^info: \((O1|O2)\) the old per-posting layout of .+ = \d+\.\d+x, \d+ pages$", 2),
         # issue 17 (J): the big ones through the jobs (202, then the build, then served)
         (r"^(PASS|FAIL): \((j2|j3)\) [\d,]+ entries through the jobs \(over 10\): the route "
          r"answers 202 in \d+\.\d+s, serves the ready file in \d+\.\d+s .+ the jobs build it "
          r"in \d+\.\d+s, \d+ pages$", 2)],
        ["ledger.check: no mismatch",
         "PASS: the PDFs of (a1), (s1), (W1) have the same",
         "PASS: the PDFs of (a2), (s2), (W2) have the same",
         "PASS: the PDFs of (a3), (s3), (W3) have the same"],
    ),
    "versions.py": (
        ["--saves", "10", "--rounds", "2", "--versions", "1000", "--subs", "3",
         "--repeat", "2", "--warmup", "0", "--purge-versions", "1000"],
        [(rf"^  write (phone|name|merge|status|usage) .+: {RATIO} the time per save", 5),
         (rf"^  read  \((a|b|b\+|c|d|e)\) +.+ = +{RATIO} B;", 6),
         (r"^  purge [\d,]+ of 1,000 ", 1)],
        ["(B)   baseline: support page"],
    ),
    "pages.py": (
        # gunicorn and wrk for 1 s per case: the five pages and their bare routes, once.
        ["--seconds", "1", "--rounds", "1", "--warmup", "0", "--calls", "20"],
        [(rf"^info: \([a-e]\) .+ req/s, p99 .+ = {RATIO} bare; \d+ SQL statements$", 5),
         (r"^  \([a-e]\) /\S* +HTTP 200, ", 5)],
        ["Responses (sanity check):"],
    ),
    "privacy_export.py": (
        ["--small", "1000", "--calls", "2000"],
        [(rf"^    (json|csv) +[\d,]+ calls: time {RATIO}, RSS growth .+ = \d+\.\d+x$", 4),
         (r"^  PASS  (json|csv) at [\d,]+ calls: the same bytes as the whole document$", 4),
         (r"^  PASS  (json|csv): streamed RSS growth at 2,000 calls under", 2),
         (r"^  PASS  (json|csv): tracemalloc peak flat from 1,000 to 2,000 calls", 2)],
        [],
    ),
}


def test_every_benchmark_has_a_smoke_run():
    scripts = {p.name for p in BENCH.glob("*.py") if not LOAD_TEST.match(p.name)}
    assert scripts == {name.split()[0] for name in SMOKE}, \
        "give each bench/ script a tiny run in SMOKE"


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_the_benchmark_runs_to_the_end_at_a_tiny_size(script, database_url, app):
    """`app` for the migrated schema, and for emptying the tables afterwards whatever the
    benchmark left (each empties what it wrote when it finishes)."""
    arguments, counted, present = SMOKE[script]
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["TEST_DATABASE_URL"] = database_url
    started = time.perf_counter()
    script, *options = script.split()  # "usage_ingest.py --batch": a second mode
    done = subprocess.run([sys.executable, f"bench/{script}", *options, *arguments], cwd=ROOT,
                          env=env,
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"({_dialect(database_url)})" in done.stdout, done.stdout  # the suite's database
    for pattern, count in counted:
        found = re.findall(pattern, done.stdout, re.M)
        assert len(found) == count, f"{len(found)} lines match {pattern!r}:\n{done.stdout}"
    for line in present:
        assert line in done.stdout, done.stdout
    for word in NEVER:
        assert word not in output, output
    print(f"{script}: {time.perf_counter() - started:.1f}s")


def _dialect(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"
