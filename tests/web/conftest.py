"""Web-test fixtures on top of tests/conftest.py."""

import pytest


def sign_in_as(client, user):
    """Put a user in the client's session the way Flask-Login keeps it, without the
    sign-in form: scrypt makes each real sign-in cost ~0.2 s, and only tests/web/test_auth.py
    is about signing in. Everything after the session (loader, tenancy, views) is real."""
    from portal import clock

    with client.session_transaction() as s:
        s["_user_id"] = user.get_id()
        s["_fresh"] = True
        # As a real sign-in leaves them: the password was just given, the session is active.
        s["auth_at"] = s["seen_at"] = clock.now().timestamp()
    return client


def keep_active(client):
    """The clock jumped (days) while the user was signed in: a real session would have timed
    out for inactivity; this one was "used" just now and its password given just now."""
    from portal import clock

    with client.session_transaction() as s:
        s["auth_at"] = s["seen_at"] = clock.now().timestamp()
    return client


@pytest.fixture
def sign_in(client):
    """sign_in(user): the `client` fixture, signed in as `user`."""
    return lambda user: sign_in_as(client, user)


@pytest.fixture
def w(session):
    """The account-lifecycle world (tests/web/lifecycle_world.py), the clock frozen at its
    NOW for the whole test."""
    from portal import clock
    from tests.web.lifecycle_world import NOW, build

    clock.freeze(NOW)
    return build(session)


def bearer(token: str | None, **more) -> dict:
    """Issue 18: the headers of an /api/v1 request with this API key (none for None)."""
    return {**({"Authorization": f"Bearer {token}"} if token else {}), **more}


@pytest.fixture(autouse=True)
def requests_start_afresh(request):
    """(For the /api/v1 tests, test_api_*.py: the others hold objects across requests.)"""
    if not request.module.__name__.rpartition(".")[2].startswith("test_api_"):
        yield
        return
    yield from _start_afresh(request.getfixturevalue("app"))


def _start_afresh(app):
    """As in production, where a request's session starts empty: every object the test
    holds is expired when a request starts, so a view that lazy-loads a relationship
    (Account.parent is raise_on_sql) fails here too."""
    from flask import request_started

    from portal.extensions import db

    def expire(_sender, **_extra):
        db.session.expire_all()

    request_started.connect(expire, app)
    yield
    request_started.disconnect(expire, app)
