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
