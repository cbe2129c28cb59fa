"""The load test (bench/loadtest.sh, `make loadtest`) runs end to end at a tiny size: two
gunicorn instances on one database with the jobs looping beside each, 5 simulated users for
20 seconds, then the figures and the money checks. So a broken load test (the harness, the
seed, the orchestration or the checks) fails the suite, and so does a 5xx or a money-check
violation under concurrent use of two instances.

On both databases, in the suite's half for each: on PostgreSQL (scripts/with-postgres.sh sets
TEST_DATABASE_URL) in a database of its own created on that server and dropped afterwards; on
SQLite on a new file of its own (the embedded default's setup: `make loadtest DB=sqlite`),
so both instances and both jobs loops write one SQLite file. It takes 40-80 s on a busy 2-CPU
machine, so it is marked `slow`.
"""

import csv
import os
import re
import secrets
import signal
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent.parent
CHECKS = ("ledger", "usage keys", "charges", "refunds", "outbox", "agency-billed sub-accounts")


@pytest.fixture
def loadtest_database(database_url):
    if database_url.startswith("sqlite"):
        yield "sqlite"  # bench/loadtest.sh: a new file in the run's folder
        return
    name = f"portal_loadtest_{secrets.token_hex(4)}"
    server = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield database_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        server.dispose()


@pytest.mark.slow
def test_the_load_test_passes_at_a_tiny_size(tmp_path, loadtest_database):
    out = tmp_path / "loadtest"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "TEST_DATABASE_URL", "FLASK_DEBUG")}
    env.update(LOADTEST_DATABASE_URL=loadtest_database, LOADTEST_USERS="5",
               LOADTEST_SPAWN_RATE="5", LOADTEST_DURATION="20s", LOADTEST_WORKERS="1",
               LOADTEST_JOBS_INTERVAL="3", LOADTEST_OUT=str(out))
    # Its own process group: on a timeout every server, loop and Locust goes with it.
    run = subprocess.Popen(["bash", "bench/loadtest.sh"], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    try:
        output, _ = run.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGTERM)
        output, _ = run.communicate(timeout=60)
        pytest.fail("the load test did not finish in 400 s:\n" + output[-5000:])
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()

    assert run.returncode == 0, output[-8000:]
    assert "loadtest: PASS" in output
    assert "load: PASS" in output
    assert "ledger check: every balance equals the sum of its entries" in output
    for check in CHECKS:
        assert re.search(rf"^PASS {check}: ", output, re.M), (check, output[-5000:])
    assert "money checks: all pass" in output
    # The figures: requests and p50/p95/p99 per kind of request, and no failure at all.
    with (out / "locust_stats.csv").open() as f:
        stats = {row["Name"]: row for row in csv.DictReader(f)}
    for kind in ("sign in", "usage (new key)", "billing settings"):
        assert int(stats[kind]["Request Count"]) > 0, kind
    assert stats["Aggregated"]["Failure Count"] == "0", output[-5000:]
    assert re.search(r"^POST usage \(new key\)\s+\d+\s+0\s+[\d,]+\s+[\d,]+\s+[\d,]+",
                     output, re.M), output
    assert re.search(r"^failures: 0 5xx or connection errors", output, re.M)
    if loadtest_database == "sqlite":  # the two instances wrote one file
        assert f"on sqlite (logs in {out})" in output
        assert (out / "portal.sqlite3").stat().st_size > 0
