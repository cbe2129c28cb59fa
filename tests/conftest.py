"""Fixtures: an app on a migrated database (SQLite file, or TEST_DATABASE_URL), a client,
sign-in helpers, and a database emptied after every test."""

import os
import re

import pytest
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
    app = make_app(database_url)
    with app.app_context():
        yield app
        db.session.rollback()
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(delete(table))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
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
