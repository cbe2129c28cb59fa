"""Fixtures: an app on a migrated database (SQLite file, or TEST_DATABASE_URL), built once
per run and lent to every test, a client, sign-in helpers, and a database emptied after every
test (and the app and process put back as they were: tests/isolation.py)."""

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import g, request_started
from jinja2 import BytecodeCache
from sqlalchemy import delete, event
from werkzeug.serving import make_server

from portal import clock, create_app
from portal.extensions import db
from tests.isolation import AppState, ProcessState

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


class _CompiledTemplates(BytecodeCache):
    """Compiled templates kept in memory for the whole run, for every app the run builds (the
    shared one, those of `own_app` tests, the browser tests' server). Jinja checks each
    template's source checksum, so a changed template is compiled afresh."""

    def __init__(self):
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket):
        if bucket.key in self._code:
            bucket.bytecode_from_string(self._code[bucket.key])

    def dump_bytecode(self, bucket):
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _CompiledTemplates()


def make_app(database_url, **overrides):
    # The sandbox's card API allows 30 POSTs per address in 10 minutes; every test posts
    # from 127.0.0.1 (tests/web/test_sandbox.py sets it low to test the limit itself).
    config = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url,
              "SECRET_KEY": "test-secret", "SANDBOX_RATE_LIMIT": 100_000}
    config.update(overrides)
    app = create_app(config)
    app.jinja_env.bytecode_cache = _COMPILED
    return app


@contextmanager
def serving(app, name: str = "live-server") -> Iterator[str]:
    """`app` served on 127.0.0.1 (a free port, threaded) while the block runs: its base URL.
    Its database connections are closed afterwards."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
        with app.app_context():
            db.engine.dispose()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "own_app: the `app` fixture builds a new app for this test instead of "
                   "lending the run's shared one (the test adds routes or hooks to it)")


@pytest.fixture(scope="session")
def _schema(database_url):
    """Build the schema once per run with the real migrations (so they are tested too)."""
    from flask_migrate import downgrade, upgrade

    app = make_app(database_url)
    with app.app_context():
        downgrade(revision="base")
        upgrade()
    yield
    with app.app_context():
        db.engine.dispose()


def _fresh_g(sender, **extra):
    g._get_current_object().__dict__.clear()


# What create_app set for the whole process once the shared app was built (tests/isolation.py).
_process_reference: list[ProcessState] = []


@pytest.fixture(autouse=True)
def _process_state():
    """After every test, the process as the shared app left it: logging, sealing keys, the
    services' hooks ... (a test or an app it made may have changed them), the clock
    unfrozen."""
    before = ProcessState()
    yield
    (_process_reference[0] if _process_reference else before).restore()
    clock.freeze(None)


_LEAKED_SETTINGS: list[str] = []


def _watch_connection_settings(app) -> None:
    """The pool keeps its connections for the whole run, so a test that changes a
    connection's own settings (SQLite's busy_timeout) would hand them to later tests: a
    300 ms busy_timeout left on one made a 50-thread test fail "database is locked" far
    from its cause. Each connection going back to the pool is checked and put right, and
    the test that changed it fails (app fixture)."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "sqlite":
        return
    expected = int(app.config["SQLITE_BUSY_TIMEOUT_MS"])

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection, _record):
        if dbapi_connection is None:
            return
        value = dbapi_connection.execute("PRAGMA busy_timeout").fetchone()[0]
        if value != expected:
            dbapi_connection.execute(f"PRAGMA busy_timeout={expected}")
            _LEAKED_SETTINGS.append(f"busy_timeout={value} (the app's is {expected})")


@pytest.fixture(scope="session")
def _shared_app(database_url, _schema):
    """The run's app, built once (create_app costs ~65 ms; ~1,800 tests per database)."""
    app = make_app(database_url)
    _watch_connection_settings(app)
    request_started.connect(_fresh_g, app, weak=False)
    _process_reference.append(ProcessState())
    yield app, AppState(app)
    _process_reference.clear()
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def app(request, database_url, _shared_app):
    """The app on the test database, emptied after the test, with what a new app would have
    (tests/isolation.py puts the config, extensions and Jinja globals back after each test).
    A test marked `own_app` gets a new app of its own instead (to add routes to it).

    The fixture keeps an application context pushed for the whole test, so the test client's
    requests would share it (and `g`: Flask-Login's cached user, Flask-WTF's CSRF token,
    g.account) instead of pushing their own. Each request gets a fresh `g`, as in production.
    """
    own = request.node.get_closest_marker("own_app") is not None
    if own:
        app = make_app(database_url)
        request_started.connect(_fresh_g, app, weak=False)
    else:
        app, state = _shared_app
    with app.app_context():
        yield app
        db.session.rollback()
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(delete(table))
        db.session.commit()
        db.session.remove()
        if own:
            db.engine.dispose()
    if own:
        request_started.disconnect(_fresh_g, app)
        return
    changed = state.restore(app)
    if _LEAKED_SETTINGS:
        leaked = ", ".join(_LEAKED_SETTINGS)
        _LEAKED_SETTINGS.clear()
        pytest.fail(f"{request.node.nodeid} left a pooled connection with {leaked}: "
                    "put it back before the connection returns to the pool", pytrace=False)
    if changed:
        pytest.fail(f"{request.node.nodeid} changed the shared app ({', '.join(changed)}), "
                    "which later tests would inherit: mark it @pytest.mark.own_app",
                    pytrace=False)


@pytest.fixture
def session(app):
    return db.session


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token(client, path="/login") -> str:
    page = client.get(path, follow_redirects=True).get_data(as_text=True)
    match = CSRF_RE.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


class Auth:
    def __init__(self, client):
        self.client = client

    def login(self, email, password=None, **headers):
        from tests.factories import PASSWORD

        token = csrf_token(self.client, "/login")
        return self.client.post("/login", data={
            "email": email, "password": PASSWORD if password is None else password,
            "csrf_token": token}, headers=headers)

    def logout(self):
        token = csrf_token(self.client, "/")
        return self.client.post("/logout", data={"csrf_token": token})


@pytest.fixture
def auth(client):
    return Auth(client)


HX = {"HX-Request": "true"}
