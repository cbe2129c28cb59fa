"""Benchmark five signed-in pages under gunicorn, against a bare Flask route (issue 13).

    .venv/bin/python bench/pages.py [--seconds 10] [--rounds 3] [--warmup 2]
                                    [--connections 8] [--workers 2] [--calls 300] [--show-sql]

Seeds the demo data (what `flask seed-demo` seeds; --calls calls per account) into a
throwaway database (a temporary SQLite file migrated with the real migrations, or
DATABASE_URL / TEST_DATABASE_URL when set: then it must be empty, and is emptied again at the
end), starts gunicorn as `make run` does (`-c gunicorn.conf.py --workers 2`, access log on,
to a file here) on a free loopback port, signs in as the demo agency's owner and runs `wrk`
(`--connections` connections, one wrk thread, `--latency`) for `--seconds` against each of

  (a) Account Settings   /accounts/<agency>/
  (b) Accounts           /accounts/<agency>/sub-accounts
  (c) Billing Settings   /accounts/<agency>/billing/
  (d) Billing Logs       /accounts/<agency>/billing/logs
  (e) Call History       /accounts/<agency>/calls/

and against a bare route served by the same gunicorn process: a tiny separate Flask app
mounted under /bare (werkzeug's DispatcherMiddleware, no login, no database, none of the
portal's hooks) that renders as many table rows as the page showed (the <tr>s of its
<tbody>s) from a Python list through one Jinja template, with a url_for per row. Page and
bare route alternate (page first in odd rounds, bare first in even ones). Printed per page:
requests/s and p99 of each (median over the rounds), the ratio page/bare in requests/s, and
the SQL statements the page runs (counted in this process through the Flask test client on
the same database, with a "before_cursor_execute" listener).

It is a report: "info:" lines with the ratios, exit 0 (2 if wrk is missing or the database
is not empty). Needs `wrk` (make system-test-deps installs it).
"""

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from flask import Flask, render_template  # noqa: E402
from jinja2 import DictLoader  # noqa: E402
from sqlalchemy import event, func, inspect, select  # noqa: E402

from portal import create_app  # noqa: E402
from portal.cli import demo  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import Account, AccountKind  # noqa: E402

AGENCY_OWNER = "agency@demo.test"
PAGES = [
    ("a", "Account Settings", "/"),
    ("b", "Accounts", "/sub-accounts"),
    ("c", "Billing Settings", "/billing/"),
    ("d", "Billing Logs", "/billing/logs"),
    ("e", "Call History", "/calls/"),
]
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
TBODY_RE = re.compile(r"<tbody[^>]*>(.*?)</tbody>", re.S)
TR_RE = re.compile(r"<tr[\s>]")
H1_RE = re.compile(r"<h1[^>]*>(.*?)</h1>", re.S)

# --------------------------------------------------------------------------- the bare app

BARE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<link rel="stylesheet" href="/static/portal.css"></head>
<body><main><h1>{{ title }}</h1>
<table><thead><tr><th>Name</th><th>When</th><th>Kind</th><th>Amount</th></tr></thead>
<tbody>{% for row in rows %}
<tr><td><a href="{{ url_for('row', row_id=row.id) }}">{{ row.name }}</a></td>
<td>{{ row.when }}</td><td>{{ row.kind }}</td><td>{{ row.amount }}</td></tr>{% endfor %}
</tbody></table></main></body></html>
"""


def bare_app() -> Flask:
    """The baseline: a Flask app rendering n rows from a list, nothing else."""
    app = Flask("bare")
    app.jinja_loader = DictLoader({"rows.html": BARE_TEMPLATE})  # compiled once, cached
    rows = [{"id": i, "name": f"Row {i}", "when": f"2026-11-{1 + i % 28:02d} 10:{i % 60:02d}",
             "kind": ("usage", "payment", "refund")[i % 3], "amount": f"${i * 1.25:,.2f}"}
            for i in range(1, 1001)]

    @app.get("/rows/<int:n>")
    def rows_page(n: int):
        return render_template("rows.html", title=f"{n} rows", rows=rows[:n])

    @app.get("/row/<int:row_id>")
    def row(row_id: int):
        return str(row_id)

    return app


def serve():
    """gunicorn's application (`pages:serve()`): the portal as wsgi.py builds it, with the
    bare app mounted at /bare in the same process."""
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    portal = create_app()
    portal.wsgi_app = DispatcherMiddleware(portal.wsgi_app, {"/bare": bare_app()})
    return portal


# --------------------------------------------------------------------------- helpers

def database_url(tmpdir: str) -> tuple[str, bool]:
    if os.environ.get("DATABASE_URL"):
        from portal.config import _database_url

        return _database_url(), False
    if os.environ.get("TEST_DATABASE_URL"):
        return os.environ["TEST_DATABASE_URL"], False
    return f"sqlite:///{Path(tmpdir) / 'pages.sqlite3'}", True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rows_of(html: str) -> int:
    return sum(len(TR_RE.findall(body)) for body in TBODY_RE.findall(html))


class Browser:
    """A signed-in session over HTTP (urllib, cookies kept)."""

    def __init__(self, base: str):
        self.base = base
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[int, str]:
        with self.opener.open(self.base + path, timeout=30) as response:
            return response.status, response.read().decode()

    def sign_in(self, email: str, password: str) -> None:
        _, page = self.get("/login")
        token = CSRF_RE.search(page)
        if not token:
            raise SystemExit("PROBLEM: no csrf_token field on /login")
        data = urllib.parse.urlencode({"email": email, "password": password,
                                       "csrf_token": token.group(1)}).encode()
        with self.opener.open(self.base + "/login", data=data, timeout=30) as response:
            if "/login" in response.url:
                raise SystemExit(f"PROBLEM: sign-in as {email} failed")

    @property
    def cookie(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)


UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk(url: str, seconds: float, connections: int, cookie: str = "") -> dict:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
               "--timeout", "10s"]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    out = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    requests = re.search(r"(\d+) requests in", out)
    if not rate or not p99 or not requests:
        raise SystemExit(f"PROBLEM: wrk's output not understood:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(rate.group(1)), "p99": float(p99.group(1)) * UNIT[p99.group(2)],
            "requests": int(requests.group(1)), "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}


# --------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per run")
    parser.add_argument("--rounds", type=int, default=3, help="page/bare pairs per page")
    parser.add_argument("--warmup", type=int, default=2, help="wrk seconds per case first")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--calls", type=int, default=300, help="demo calls per account")
    parser.add_argument("--show-sql", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk (make system-test-deps)")
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmpdir:
        url, temporary = database_url(tmpdir)
        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
                          "WTF_CSRF_ENABLED": True, "SECRET_KEY": "bench-secret"})
        with app.app_context():
            engine = db.engine
            created_schema = not inspect(engine).has_table("accounts")
            if created_schema:
                from flask_migrate import upgrade

                upgrade()
            elif db.session.scalar(select(func.count()).select_from(Account)):
                print(f"{engine.url!r} already holds accounts; point it at an empty database.")
                return 2
            t0 = time.perf_counter()
            demo.seed(db.session, calls_per_account=args.calls)
            db.session.commit()
            if engine.dialect.name == "postgresql":
                with engine.connect() as conn:
                    conn.exec_driver_sql("ANALYZE")
            agency_id = db.session.scalar(select(Account.id).where(
                Account.kind == AccountKind.AGENCY, Account.name == "Northwind Agency"))
            seeded = time.perf_counter() - t0
            db.session.remove()
        try:
            return run(app, engine, url, tmpdir, agency_id, args, seeded, started)
        finally:
            with app.app_context():
                if temporary:
                    db.drop_all()
                else:  # the tables were there and empty (or made here): empty them again
                    for table in reversed(db.metadata.sorted_tables):
                        db.session.execute(table.delete())
                    db.session.commit()
                db.engine.dispose()


def sql_per_page(app, engine, agency_id: int) -> dict[str, list[str]]:
    """The statements of each page, signed in through the test client (second request of
    each, so nothing first-time is counted)."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"email": AGENCY_OWNER, "password": demo.PASSWORD,
                                "csrf_token": CSRF_RE.search(page).group(1)})
    statements: list[str] = []

    def count(conn, cursor, statement, *rest):
        statements.append(" ".join(statement.split()))

    found = {}
    for key, _, path in PAGES:
        client.get(f"/accounts/{agency_id}{path}")
        event.listen(engine, "before_cursor_execute", count)
        try:
            statements.clear()
            response = client.get(f"/accounts/{agency_id}{path}")
            response.get_data()
        finally:
            event.remove(engine, "before_cursor_execute", count)
        if response.status_code != 200:
            print(f"PROBLEM: ({key}) {path}: HTTP {response.status_code} in process")
        found[key] = list(statements)
    return found


def run(app, engine, url, tmpdir, agency_id, args, seeded, started) -> int:
    print("Signed-in pages under gunicorn against a bare Flask route")
    print(f"  database: {engine.url.render_as_string(hide_password=True)} "
          f"({engine.dialect.name}); demo seeded in {seeded:.1f}s ({args.calls} calls/account)")
    sql = sql_per_page(app, engine, agency_id)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL",)}
    env.update({"DATABASE_URL": url, "SECRET_KEY": secrets.token_hex(32),
                "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "bench")])})
    log = open(Path(tmpdir) / "gunicorn.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py",
         "--workers", str(args.workers), "--bind", f"127.0.0.1:{port}",
         "--access-logfile", "-", "pages:serve()"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/bare/rows/1", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.1)
        if server.poll() is not None:
            log.flush()
            print("PROBLEM: gunicorn did not start:\n" + (Path(tmpdir) / "gunicorn.log")
                  .read_text()[-3000:])
            return 1
        print(f"  gunicorn: -c gunicorn.conf.py --workers {args.workers} on {base} (pid "
              f"{server.pid}); wrk -t1 -c{args.connections} -d{args.seconds}s, "
              f"{args.rounds} round(s), page and bare route alternating")
        browser = Browser(base)
        browser.sign_in(AGENCY_OWNER, demo.PASSWORD)

        results = {}
        print("\nResponses (sanity check):")
        for key, _label, path in PAGES:
            status, html = browser.get(f"/accounts/{agency_id}{path}")
            heading = H1_RE.search(html)
            heading = " ".join(re.sub(r"<[^>]+>", "", heading.group(1)).split()) if heading \
                else "?"
            rows = rows_of(html)
            ok = status == 200 and "Sign out" in html
            print(f"  ({key}) {path:<16} HTTP {status}, {len(html):>7,} bytes, {rows:>3} rows, "
                  f"h1 {heading!r}" + ("" if ok else "  PROBLEM: not the signed-in page"))
            results[key] = {"rows": rows, "page": [], "bare": []}
        for key, _, _ in PAGES:
            status, html = browser.get(f"/bare/rows/{results[key]['rows']}")
            if status != 200 or rows_of(html) != results[key]["rows"]:
                print(f"  PROBLEM: bare route for ({key}) gave {rows_of(html)} rows")

        # Warm-up: both workers, every template (--warmup 0: the GETs above only).
        for key, _, path in PAGES if args.warmup else ():
            wrk(f"{base}/accounts/{agency_id}{path}", args.warmup, args.connections,
                browser.cookie)
            wrk(f"{base}/bare/rows/{results[key]['rows']}", args.warmup, args.connections)

        for round_ in range(args.rounds):
            for key, _, path in PAGES:
                # Refresh the cookie (the session's last-seen time is re-signed every minute).
                browser.get(f"/accounts/{agency_id}{path}")
                page_url = f"{base}/accounts/{agency_id}{path}"
                bare_url = f"{base}/bare/rows/{results[key]['rows']}"
                order = [("page", page_url, browser.cookie), ("bare", bare_url, "")]
                if round_ % 2:
                    order.reverse()
                for kind, target, cookie in order:
                    result = wrk(target, args.seconds, args.connections, cookie)
                    if result["non2xx"] or result["socket_errors"]:
                        print(f"  PROBLEM: ({key}) {kind}: {result['non2xx']} non-2xx, "
                              f"socket errors {result['socket_errors'] or 0}")
                    results[key][kind].append(result)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()

    print(f"\nRequests/s and p99 (median of {args.rounds} run(s) each; ratio = page req/s / "
          "bare req/s)")
    header = (f"  {'page':<22} {'rows':>4} {'req/s':>8} {'p99':>9} {'bare req/s':>10} "
              f"{'bare p99':>9} {'ratio':>6} {'SQL':>4}")
    print(header)
    print("  " + "-" * (len(header) - 2))
    lines = []
    for key, label, _path in PAGES:
        r = results[key]
        rps = statistics.median(x["rps"] for x in r["page"])
        p99 = statistics.median(x["p99"] for x in r["page"])
        bare = statistics.median(x["rps"] for x in r["bare"])
        bare_p99 = statistics.median(x["p99"] for x in r["bare"])
        ratio = rps / bare if bare else 0.0
        print(f"  ({key}) {label:<18} {r['rows']:>4} {rps:>8,.0f} {p99:>7.1f}ms {bare:>10,.0f} "
              f"{bare_p99:>7.1f}ms {ratio:>5.2f}x {len(sql[key]):>4}")
        lines.append(f"info: ({key}) {label}: {rps:,.0f} req/s, p99 {p99:.1f}ms vs bare "
                     f"{bare:,.0f} req/s, p99 {bare_p99:.1f}ms ({r['rows']} rows) = {ratio:.2f}x "
                     f"bare; {len(sql[key])} SQL statements")
    print("\nSQL statements per page (signed in, in process):")
    for key, label, _ in PAGES:
        print(f"  ({key}) {label}: {len(sql[key])}")
        if args.show_sql:
            for i, statement in enumerate(sql[key], 1):
                print(f"      {i}. {statement[:200]}")
    print()
    for line in lines:
        print(line)
    print(f"\n(total run {time.perf_counter() - started:.1f}s; exit code 0: this is a report)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
