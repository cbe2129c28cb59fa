"""Web-test fixtures on top of tests/conftest.py."""

import pytest


def sign_in_as(client, user):
    """Put a user in the client's session the way Flask-Login keeps it, without the
    sign-in form: scrypt makes each real sign-in cost ~0.2 s, and only tests/web/test_auth.py
    is about signing in. Everything after the session (loader, tenancy, views) is real."""
    with client.session_transaction() as s:
        s["_user_id"] = user.get_id()
        s["_fresh"] = True
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
