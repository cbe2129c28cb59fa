"""A 1,000,000-row Call History CSV streamed to the end by a real gunicorn, configured by
gunicorn.conf.py as `make run` serves.

gunicorn's default sync worker is killed by the arbiter once a request has kept it busy for
`timeout` seconds (30 by default): a long export was cut off around 555,000 rows, after a
200, so the client saw a truncated file. gunicorn.conf.py runs gthread workers, whose
`timeout` is a heartbeat from the worker's main loop, not a limit on a response.

The test lowers the timeout to TIMEOUT seconds, and the client reads like one on a slow
connection: after the first megabyte it stops reading for 2 x TIMEOUT + 1 seconds (the server
fills the socket's buffers and blocks sending, as it does for a slow download), so the
response outlives the timeout on any machine, however fast it streams the rest; --preload
loads the app before the worker forks, so the worker's boot does not count against that short
timeout. With the sync worker this stream is cut off after TIMEOUT seconds.

gunicorn gets a listening socket the test made (fd://): a free loopback port with no race
and no wait for the server to start listening (the request waits in the backlog). The calls
are in a SQLite file of the test's own, or in the suite's PostgreSQL database under
scripts/with-postgres.sh (where the export reads through a server-side cursor). It takes
45-60 s on a busy 2-CPU machine, so it is marked `slow` (`make test` runs it; `-m "not slow"`
leaves it out).
"""

import http.client
import os
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from sqlalchemy import delete, text

from portal.extensions import db
from portal.services.calls import CSV_HEADER
from tests import factories as f
from tests.conftest import CSRF_RE, make_app

ROOT = Path(__file__).resolve().parent.parent.parent
GUNICORN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "gunicorn"
ROWS = 1_000_000
TIMEOUT = 4
FIRST_CALL = datetime(2025, 1, 1, tzinfo=UTC)
EMAIL = "export-admin@example.test"

SEED = {
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) "
              "INSERT INTO calls (account_id, caller_number, caller_name, called_number, "
              "started_at, duration_seconds, source, notes) "
              "SELECT :account, printf('+1202555%04d', i % 10000), 'Pat Caller', "
              "'+14155550000', datetime(:first + i, 'unixepoch') || '.000000', 60 + i % 600, "
              "'Google Ads', '' FROM n",
    "postgresql": "INSERT INTO calls (account_id, caller_number, caller_name, called_number, "
                  "started_at, duration_seconds, source, notes) "
                  "SELECT :account, '+1202555' || lpad((i % 10000)::text, 4, '0'), "
                  "'Pat Caller', '+14155550000', to_timestamp(:first + i), 60 + i % 600, "
                  "'Google Ads', '' FROM generate_series(1, :rows) AS i",
}


def seed(app, rows: int) -> int:
    """The account (an admin signs in) with `rows` calls, one a second, inserted by one SQL
    statement; returns the account's id."""
    with app.app_context():
        admin = f.user(db.session, email=EMAIL)
        account = f.standalone(db.session, "Big Caller Co", admin=admin)
        db.session.commit()
        db.session.execute(text(SEED[db.engine.dialect.name]), {
            "rows": rows, "account": account.id, "first": int(FIRST_CALL.timestamp())})
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("ANALYZE calls"))
            db.session.commit()
        account_id = account.id
        db.session.remove()
    return account_id


def empty(app) -> None:
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(delete(table))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


def expected_row(i: int) -> bytes:
    started = (FIRST_CALL + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{started},+1202555{i % 10000:04d},Pat Caller,+14155550000,{60 + i % 600}," \
           "Google Ads".encode()


def sign_in(opener, base: str) -> None:
    page = opener.open(base + "/login", timeout=60).read().decode()
    token = CSRF_RE.search(page).group(1)
    form = urllib.parse.urlencode({"email": EMAIL, "password": f.PASSWORD,
                                   "csrf_token": token}).encode()
    with opener.open(base + "/login", data=form, timeout=60) as response:
        assert response.url.rstrip("/") != base + "/login", "the sign-in failed"


@pytest.mark.slow
def test_a_million_row_call_export_streams_to_the_end(tmp_path, database_url, _schema):
    if database_url.startswith("sqlite"):
        # A file of its own, thrown away with tmp_path: deleting a million rows from the
        # suite's file (secure_delete) would cost more than the export.
        url = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
        app = make_app(url)
        with app.app_context():
            db.create_all()
    else:
        url, app = database_url, make_app(database_url)
    try:
        _stream_a_million_rows(tmp_path, url, app)
    finally:
        empty(app) if url == database_url else dispose(app)


def dispose(app) -> None:
    with app.app_context():
        db.engine.dispose()


def _stream_a_million_rows(tmp_path, url: str, app) -> None:
    t0 = time.perf_counter()
    account_id = seed(app, ROWS)
    seeded = time.perf_counter() - t0

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    log = tmp_path / "gunicorn.log"
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": os.urandom(32).hex(),
           "LOG_LEVEL": "WARNING"}
    env.pop("FLASK_DEBUG", None)
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            [str(GUNICORN), "-c", "gunicorn.conf.py", "--workers", "1",
             "--timeout", str(TIMEOUT), "--preload", "--no-control-socket",
             "--bind", f"fd://{listener.fileno()}",
             "wsgi:app"],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            pass_fds=[listener.fileno()])
    listener.close()  # gunicorn holds it now
    lines, first, tail = 0, b"", b""
    truncated = None
    try:
        base = f"http://127.0.0.1:{port}"
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        sign_in(opener, base)
        t1 = time.perf_counter()
        with opener.open(f"{base}/accounts/{account_id}/calls/export.csv",
                         timeout=120) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/csv")
            try:
                while block := response.read(1 << 20):
                    if not first:
                        first = block[:block.index(b"\n") + 1]
                        # a slow client: the response must outlive the worker timeout
                        time.sleep(2 * TIMEOUT + 1)
                    lines += block.count(b"\n")
                    tail = (tail + block)[-200:]
            except (http.client.IncompleteRead, ConnectionError) as e:
                truncated = e
        streamed = time.perf_counter() - t1
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    served = log.read_text()
    print(f"\nseeded {ROWS:,} calls in {seeded:.1f}s; streamed {lines:,} lines in "
          f"{streamed:.1f}s ({lines / streamed:,.0f} lines/s)")

    assert truncated is None, f"cut off after {lines:,} lines: {truncated!r}\n{served[-2000:]}"
    assert "WORKER TIMEOUT" not in served
    assert re.search(r"Using worker: gthread", served), served[-2000:]
    assert first == ",".join(CSV_HEADER).encode() + b"\r\n"
    assert lines == ROWS + 1  # the header and every call
    assert tail.endswith(b"\r\n" + expected_row(ROWS) + b"\r\n")
    # The stream outlived the timeout many times over: a per-request limit would have cut it.
    assert streamed > 2 * TIMEOUT


def test_make_run_serves_with_the_same_configuration():
    """`make run` starts gunicorn with gunicorn.conf.py, whose workers stream for as long as
    a response takes (gthread), with a heartbeat timeout."""
    from gunicorn.config import Config

    makefile = (ROOT / "Makefile").read_text()
    [command] = [line for line in makefile.splitlines() if "bin/gunicorn" in line]
    assert "-c gunicorn.conf.py" in command
    config = Config()
    for name, value in __import__("runpy").run_path(str(ROOT / "gunicorn.conf.py")).items():
        if name in config.settings:
            config.set(name, value)
    assert config.worker_class_str == "gthread"
    assert config.threads >= 2
    assert config.timeout >= 30
