"""Fixtures: an app on a migrated database (SQLite file, or TEST_DATABASE_URL), a client,
sign-in helpers, and a database emptied after every test."""

import os
import re

import pytest
from flask import g, request_started
from jinja2 import BytecodeCache
from sqlalchemy import delete

from portal import clock, create_app
from portal.extensions import db

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


class _CompiledTemplates(BytecodeCache):
    """Compiled templates kept in memory for the whole run: every test builds a new app, and
    compiling the same templates again for each one was most of a test's time. Jinja checks
    each template's source checksum, so a changed template is compiled afresh."""

    def __init__(self):
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket):
        if bucket.key in self._code:
            bucket.bytecode_from_string(self._code[bucket.key])

    def dump_bytecode(self, bucket):
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _CompiledTemplates()


def make_app(database_url, **overrides):
    config = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url,
              "SECRET_KEY": "test-secret"}
    config.update(overrides)
    return create_app(config)


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


@pytest.fixture
def app(database_url, _schema):
    """A fresh app on the test database, emptied afterwards.

    The fixture keeps an application context pushed for the whole test, so the test client's
    requests would share it (and `g`: Flask-Login's cached user, Flask-WTF's CSRF token,
    g.account) instead of pushing their own. Each request gets a fresh `g`, as in production.
    """
    app = make_app(database_url)
    app.jinja_env.bytecode_cache = _COMPILED

    def fresh_g(sender, **extra):
        g._get_current_object().__dict__.clear()

    request_started.connect(fresh_g, app, weak=False)
    with app.app_context():
        yield app
        db.session.rollback()
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(delete(table))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    request_started.disconnect(fresh_g, app)
    clock.freeze(None)


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
