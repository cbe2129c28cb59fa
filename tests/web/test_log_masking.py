"""No billing-link token in any log line (portal/logmask.py): the portal's log (the 500
handler, Flask's "Exception on <path>"), the development server's access log and gunicorn's
access log (gunicorn.conf.py, as `make run` serves) say `/billing-link/<token>`."""

import io
import logging
import os
import runpy
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from werkzeug.serving import make_server

import portal.models  # noqa: F401  (first: billing_links.models needs portal.models loaded)
from billing_links import views as link_views
from portal import logconfig, logmask
from tests.web import link_world as lw

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "gunicorn"
SERVER_KEY = "s" * 48  # gunicorn's app and this test's app sign links with the same key
MASKED = "/billing-link/<token>"


@pytest.fixture
def w(app, session):
    lw.configure(app)
    app.config["BILLING_LINK_SECRET_KEYS"] = [SERVER_KEY]
    return lw.build(session)


@pytest.fixture
def link(session, w):
    """A live link's path, and its token."""
    url = lw.issue(session, w)
    return lw.path_of(url), lw.token_of(url)


@pytest.fixture
def portal_log(app):
    """What the portal's log handler writes (stderr in production), as text."""
    stream = io.StringIO()
    logconfig.handler().setStream(stream)
    return stream


@pytest.fixture
def any_handler():
    """A plain handler on the root logger, as any logging setup could add: it must see the
    records masked too."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


# --- the filter ------------------------------------------------------------------------------

def _record(msg, args=(), exc_info=None, name="portal"):
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, exc_info)


def test_the_filter_masks_the_message_its_arguments_and_tracebacks():
    masking = logmask.MaskTokens()
    token = "Ijk0YWJjIg.aBcD_e-f.9xYz"
    record = _record("unhandled error on %s", (f"/billing-link/{token}",))
    assert masking.filter(record) is True
    assert record.getMessage() == "unhandled error on /billing-link/<token>"

    # gunicorn's access log: one dict of request atoms
    record = _record('%(h)s "%(r)s" %(s)s "%(f)s"', ({
        "h": "127.0.0.1", "r": f"POST /billing-link/{token}?x=1 HTTP/1.1", "s": "500",
        "f": f"https://portal.example/billing-link/{token}"},))
    masking.filter(record)
    assert record.getMessage() == ('127.0.0.1 "POST /billing-link/<token>?x=1 HTTP/1.1" 500 '
                                   '"https://portal.example/billing-link/<token>"')

    try:
        raise RuntimeError(f"could not open /billing-link/{token}")
    except RuntimeError:
        import sys

        record = _record("boom", exc_info=sys.exc_info())
    masking.filter(record)
    text = logging.Formatter().format(record)
    assert token not in text
    assert "RuntimeError: could not open /billing-link/<token>" in text

    # other paths, and the route's own page, are left alone; a % in a masked line stays
    record = _record("GET %s and %s", ("/accounts/12/billing/", "/billing-link/"))
    masking.filter(record)
    assert record.getMessage() == "GET /accounts/12/billing/ and /billing-link/"
    record = _record("100%% of /billing-link/%s", (token,))
    masking.filter(record)
    assert logging.Formatter().format(record) == "100% of /billing-link/<token>"


@pytest.mark.own_app  # adds a test-only route
def test_every_route_with_a_token_argument_is_covered(app):
    assert "/billing-link/" in logmask.token_routes(app)
    assert "/billing-link/" in logmask.MaskTokens().prefixes

    @app.get("/invitations/<string(length=43):token>/accept")
    def accept(token):  # a future one-time link
        return token

    masking = logmask.install(logmask.MaskTokens(), app)
    assert masking.mask("GET /invitations/abc.DEF-ghi/accept") == (
        "GET /invitations/<token>/accept")


# --- the portal's own log -----------------------------------------------------------------------

def test_a_billing_link_request_that_fails_logs_the_route_not_the_token(
        app, client, link, portal_log, any_handler, caplog, monkeypatch):
    path, token = link
    app.config["PROPAGATE_EXCEPTIONS"] = False  # the 500 page, as in production

    def broken(*args, **kwargs):
        raise RuntimeError(f"the gateway choked on {path}")

    monkeypatch.setattr(link_views.link_service, "open_link", broken)
    caplog.set_level(logging.INFO)
    for response in (lw.Customer(app).open(path), lw.Customer(app).pay(path)):
        assert response.status_code == 500

    written = portal_log.getvalue()
    assert "unhandled error on /billing-link/<token>" in written  # the route is logged
    assert f"RuntimeError: the gateway choked on {MASKED}" in written
    for text in (written, any_handler.getvalue(), caplog.text):
        assert "/billing-link/" in text
        assert token not in text
        assert token[:20] not in text


def test_the_development_servers_access_log_masks_the_token(app, link, caplog):
    """`flask run` and the browser tests' server log each request through Werkzeug."""
    path, token = link
    caplog.set_level(logging.INFO, logger="werkzeug")
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}{path}",
                                    timeout=30) as response:
            assert response.status == 200
            assert "Set up billing" in response.read().decode()
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
    access = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any(f'"GET {MASKED} HTTP/1.1" 200' in line for line in access), access
    assert token not in caplog.text


# --- gunicorn, as `make run` serves -------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorns_access_log_masks_the_token(app, database_url, link):
    """gunicorn started with gunicorn.conf.py, as `make run` starts it: a link opened (200),
    a tampered one (404), a POST without the form's token (400) with the link as referer:
    its access log names the route and never a token."""
    path, token = link
    port = _free_port()
    env = {**os.environ, "SECRET_KEY": SERVER_KEY, "BILLING_LINK_SECRET_KEYS": SERVER_KEY,
           "DATABASE_URL": database_url, "BILLING_LINK_RATE_LIMIT": "1000"}
    env.pop("FLASK_DEBUG", None)
    server = subprocess.Popen(
        [str(GUNICORN), "-c", "gunicorn.conf.py", "--workers", "1",
         "--bind", f"127.0.0.1:{port}", "--access-logfile", "-", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = []
        for line in server.stderr:  # the master listens before any worker starts
            started.append(line)
            if "Listening at" in line:
                break
        assert any("Listening at" in line for line in started), "".join(started)

        base = f"http://127.0.0.1:{port}"
        tampered = path[:-4] + ("AAAA" if not path.endswith("AAAA") else "BBBB")
        statuses = []
        for url, data, headers in (
                (base + path, None, {}),
                (base + tampered, None, {}),
                (base + path, b"amount=25.00", {"Referer": base + path})):
            request = urllib.request.Request(url, data=data, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as e:
                statuses.append(e.code)
        assert statuses == [200, 404, 400]
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)

    access = [line for line in out.splitlines() if "billing-link" in line]
    assert len(access) == 3, out
    assert f'"GET {MASKED} HTTP/1.1" 200' in access[0]
    assert f'"GET {MASKED} HTTP/1.1" 404' in access[1]
    assert f'"POST {MASKED} HTTP/1.1" 400' in access[2]
    assert f'"{base}{MASKED}"' in access[2]  # the referer too
    everything = out + err + "".join(started)
    assert token not in everything
    assert tampered.rsplit("/", 1)[1] not in everything


def test_gunicorn_conf_gives_gunicorn_the_masking_logger_even_without_the_app(tmp_path):
    """gunicorn.conf.py alone masks the access log (the app also masks gunicorn's loggers
    once it is loaded in the worker: the test above would pass on either)."""
    from gunicorn.config import Config

    for name in ("gunicorn.access", "gunicorn.error"):  # what an app in this process added
        logger = logging.getLogger(name)
        for f in [f for f in logger.filters if isinstance(f, logmask.MaskTokens)]:
            logger.removeFilter(f)
    cfg = Config()
    for name, value in runpy.run_path(str(ROOT / "gunicorn.conf.py")).items():
        if name in cfg.settings:
            cfg.set(name, value)
    assert cfg.logger_class is logmask.MaskedGunicornLogger
    access_file, error_file = tmp_path / "access.log", tmp_path / "error.log"
    cfg.set("accesslog", str(access_file))
    cfg.set("errorlog", str(error_file))
    glog = cfg.logger_class(cfg)
    token = "IjA3MGYwNThk.axBZvw.1XLDcfHfgRc6EK3se"

    class Response:
        status, sent, headers = "200 OK", 1234, []

    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/billing-link/{token}",
               "PATH_INFO": f"/billing-link/{token}", "SERVER_PROTOCOL": "HTTP/1.1",
               "REMOTE_ADDR": "203.0.113.7", "HTTP_REFERER": f"https://x.example/billing-link/{token}"}
    glog.access(Response(), [], environ, timedelta(milliseconds=12))
    glog.error("worker failed on /billing-link/%s", token)
    for name in ("gunicorn.access", "gunicorn.error"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
    written = access_file.read_text()
    assert f'"GET {MASKED} HTTP/1.1" 200 1234 "https://x.example{MASKED}"' in written
    assert f"worker failed on {MASKED}" in error_file.read_text()
    assert token not in written + error_file.read_text()


def test_every_one_time_link_of_the_app_is_masked(app):
    """Each route whose path carries a token (billing and task links, their receipts,
    invitations, password reset, set password, email change) logs as <token>: a route
    added with another argument name would show here."""
    import re

    masking = logmask.MaskTokens(logmask.token_routes(app) | set(logmask.TOKEN_ROUTES))
    secret = "SECRETsecret123"
    checked = []
    for rule in app.url_map.iter_rules():
        if not any("token" in name for name in rule.arguments):
            continue
        path = re.sub(r"<[^>]+>", secret, rule.rule)
        assert secret not in masking.mask(f"GET {path} HTTP/1.1"), rule.rule
        checked.append(rule.rule)
    for prefix in ("/billing-link/", "/task-link/", "/invitations/", "/reset-password/",
                   "/security/email/"):
        assert any(r.startswith(prefix) for r in checked), prefix
