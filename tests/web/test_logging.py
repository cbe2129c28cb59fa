"""Logging (portal/logconfig.py), set up by create_app: the level from LOG_LEVEL, one line
per event, and the request's id on every line logged while it is handled (taken from a
well-formed X-Request-ID, else made) and in the response's X-Request-ID header."""

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from portal import logconfig
from tests.conftest import make_app

ROOT = Path(__file__).resolve().parent.parent.parent
GENERATED = re.compile(r"[0-9a-f]{32}")
LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
                  r"\S+ request_id=\S+ .*")


@pytest.fixture
def logged(app):
    """What the portal's log handler writes during the test, as text."""
    stream = io.StringIO()
    logconfig.handler().setStream(stream)
    return stream


@pytest.fixture
def chatty(app):
    """A test-only route that logs through several loggers, one message over three lines."""

    @app.get("/test-only/chatty")
    def chatty_view():
        logging.getLogger("portal.test").info("first\nsecond line\r\nthird")
        logging.getLogger("some.library").warning("from a library")
        app.logger.error("from the app's logger")
        return "ok"

    return "/test-only/chatty"


def lines(stream) -> list[str]:
    return stream.getvalue().splitlines()


@pytest.mark.own_app  # adds a test-only route
def test_every_line_of_a_request_names_its_id_which_the_response_returns(client, logged,
                                                                         chatty):
    response = client.get(chatty, headers={"X-Request-ID": "req-42.a_B:9"})
    assert response.headers["X-Request-ID"] == "req-42.a_B:9"
    out = lines(logged)
    assert len(out) == 3  # three events, three lines
    assert all(" request_id=req-42.a_B:9 " in line for line in out)
    assert all(LINE.fullmatch(line) for line in out), out


@pytest.mark.own_app  # adds a test-only route
def test_without_a_request_id_one_is_made_for_each_request(client, logged, chatty):
    first = client.get(chatty).headers["X-Request-ID"]
    second = client.get(chatty).headers["X-Request-ID"]
    assert GENERATED.fullmatch(first) and GENERATED.fullmatch(second) and first != second
    out = lines(logged)
    assert [line.count(f"request_id={first} ") for line in out] == [1, 1, 1, 0, 0, 0]
    assert [line.count(f"request_id={second} ") for line in out] == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("given", [
    "",
    "has space",
    'quote"d',
    "x" * 129,
    "new\\nline",
    "é-accent",
    "semi;colon",
])
@pytest.mark.own_app  # adds a test-only route
def test_a_malformed_request_id_is_replaced(client, logged, chatty, given):
    response = client.get(chatty, headers={"X-Request-ID": given})
    made = response.headers["X-Request-ID"]
    assert GENERATED.fullmatch(made)
    assert all(f" request_id={made} " in line for line in lines(logged))
    if given:
        assert given not in logged.getvalue()


def test_every_response_has_the_header_pages_redirects_and_errors(client):
    for path in ("/login", "/", "/nowhere", "/static/portal.css"):
        response = client.get(path, headers={"X-Request-ID": "abc123"})
        assert response.headers["X-Request-ID"] == "abc123", path


@pytest.mark.own_app  # adds a test-only route
def test_a_message_cannot_forge_a_log_line(client, logged, chatty):
    client.get(chatty, headers={"X-Request-ID": "r1"})
    assert lines(logged)[0].endswith(" first\\nsecond line\\r\\nthird")


@pytest.mark.own_app  # adds a test-only route
def test_a_traceback_is_one_line_with_the_request_id(app, client, logged):
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/test-only/boom")
    def boom():
        raise RuntimeError("secret internal detail")

    response = client.get("/test-only/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "boom-1"
    out = lines(logged)
    assert out, "the error was not logged"
    assert all(LINE.fullmatch(line) and " request_id=boom-1 " in line for line in out)
    # One event, one line: the 500 handler's, with the traceback (Flask's own
    # "Exception on ..." line would be a second one for the same error).
    [logged] = [line for line in out if "secret internal detail" in line]
    assert " ERROR portal request_id=boom-1 unhandled error on /test-only/boom\\n" in logged
    assert "Traceback (most recent call last):" in logged
    assert logged.endswith("RuntimeError: secret internal detail")


def test_lines_outside_a_request_say_so(app, logged):
    logging.getLogger("portal.jobs").warning("a job ran")
    assert lines(logged) == [lines(logged)[0]]
    assert " WARNING portal.jobs request_id=- a job ran" in lines(logged)[0]


@pytest.mark.parametrize("value,level", [
    (None, logging.INFO), ("", logging.INFO), ("DEBUG", logging.DEBUG),
    ("warning", logging.WARNING), (" ERROR ", logging.ERROR), ("CRITICAL", logging.CRITICAL),
])
def test_the_level_comes_from_log_level(database_url, _schema, value, level):
    app = make_app(database_url, LOG_LEVEL=value)
    assert logging.getLogger().level == level
    if level > logging.INFO:
        stream = io.StringIO()
        logconfig.handler().setStream(stream)
        with app.app_context():
            logging.getLogger("portal.x").info("below the level")
        assert stream.getvalue() == ""


@pytest.mark.parametrize("value", ["LOUD", "20", "info,debug"])
def test_an_unknown_level_stops_the_app_from_starting(database_url, _schema, value):
    with pytest.raises(ValueError, match="LOG_LEVEL must be one of DEBUG, INFO, WARNING, "
                                         "ERROR, CRITICAL"):
        make_app(database_url, LOG_LEVEL=value)


def test_the_level_is_read_from_the_environment():
    """LOG_LEVEL in the environment (as gunicorn and `make run` see it), in a process of its
    own: Config reads the environment when it is imported."""
    code = ("import logging; from portal import create_app; "
            "create_app({'SQLALCHEMY_DATABASE_URI': 'sqlite://'}); "
            "print(logging.getLevelName(logging.getLogger().level)); "
            "logging.getLogger('portal').warning('hidden'); "
            "logging.getLogger('portal').error('shown')")
    env = {**os.environ, "LOG_LEVEL": "error", "SECRET_KEY": "x" * 64}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ERROR"
    assert "hidden" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if "shown" in line]
    assert LINE.fullmatch(line) and " ERROR portal request_id=- shown" in line


def test_one_handler_however_many_apps_are_made(database_url, _schema):
    for _ in range(3):
        make_app(database_url)
    ours = [h for h in logging.getLogger().handlers if h is logconfig.handler()]
    assert len(ours) == 1
    assert sum(type(h).__name__ == "_PortalHandler" for h in logging.getLogger().handlers) == 1


@pytest.mark.own_app  # configure() adds an after_request hook to the app
def test_filters_given_to_configure_run_on_every_line(app):
    """The hook masking filters (portal/logmask.py) use: configure(app, filters=[...])."""

    class Mask(logging.Filter):
        def filter(self, record):
            record.msg = str(record.msg).replace("s3cret", "***")
            return True

    stream = io.StringIO()
    logconfig.configure(app, filters=[Mask()], stream=stream)
    with app.test_request_context("/", headers={"X-Request-ID": "m1"}):
        logging.getLogger("portal").warning("token s3cret")
    assert stream.getvalue().rstrip("\n").endswith(" request_id=m1 token ***")
