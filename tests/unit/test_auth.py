from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import rules
from portal.errors import NotFound, TooManyAttempts, ValidationFailed
from portal.models import SigninAttempt
from portal.services import auth
from tests import factories as f

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_password_is_hashed_with_scrypt_not_stored(session):
    u = f.user(session, password="s3cret-pass")
    assert "s3cret-pass" not in u.password_hash
    assert u.password_hash.startswith("scrypt:")


def test_production_hashes_passwords_at_scrypts_full_cost(database_url, _schema):
    """The suite hashes cheaply (TestingConfig); a production app at Werkzeug's scrypt
    default, N=2**15, r=8, p=1, and so does the unknown-email check's dummy hash. (The
    suite's cheap method is put back after the test: tests/isolation.py.)"""
    from portal import create_app
    from portal.config import Config, TestingConfig

    assert Config.PASSWORD_HASH_METHOD == "scrypt:32768:8:1"
    assert TestingConfig.PASSWORD_HASH_METHOD != Config.PASSWORD_HASH_METHOD
    production = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "p" * 64})
    assert not production.testing
    with production.app_context():
        assert auth.hash_password("s3cret-pass").startswith("scrypt:32768:8:1$")
        assert auth._dummy_hash().startswith("scrypt:32768:8:1$")
        production.extensions["sqlalchemy"].engines[None].dispose()


def test_the_suite_hashes_cheaply_but_still_with_scrypt(session):
    u = f.user(session, password="cheap-in-tests")
    assert u.password_hash.startswith("scrypt:128:8:1$")
    assert auth._dummy_hash().startswith("scrypt:128:8:1$")


def test_sign_in_is_case_insensitive_on_email_and_records_the_attempt(session):
    u = f.user(session, email="pat@example.test")
    assert auth.sign_in(session, " PAT@Example.test ", f.PASSWORD, "10.0.0.1", now=T0) is u
    attempt = session.scalar(select(SigninAttempt))
    assert (attempt.email, attempt.succeeded, attempt.user_id) == ("pat@example.test", True, u.id)


@pytest.mark.parametrize("email,password,errors", [
    ("", "x", {"email": "Enter your email address."}),
    ("a@b.test", "", {"password": "Enter your password."}),
    ("", "", {"email": "Enter your email address.", "password": "Enter your password."}),
])
def test_missing_fields(session, email, password, errors):
    with pytest.raises(ValidationFailed) as e:
        auth.sign_in(session, email, password, "10.0.0.1", now=T0)
    assert e.value.errors == errors


@pytest.mark.parametrize("email", ["pat@example.test", "nobody@example.test"])
def test_wrong_password_and_unknown_email_get_the_same_message(session, email):
    f.user(session, email="pat@example.test")
    with pytest.raises(ValidationFailed) as e:
        auth.sign_in(session, email, "wrong", "10.0.0.1", now=T0)
    assert e.value.errors == {"": "Incorrect email or password."}


def test_throttled_per_email_after_the_limit_until_the_window_passes(session):
    f.user(session, email="pat@example.test")
    for i in range(rules.SIGNIN_MAX_FAILURES_PER_EMAIL):
        with pytest.raises(ValidationFailed):
            auth.sign_in(session, "pat@example.test", "wrong", f"10.0.0.{i}",
                         now=T0 + timedelta(minutes=i))
    with pytest.raises(TooManyAttempts) as e:
        auth.sign_in(session, "pat@example.test", f.PASSWORD, "10.9.9.9",
                     now=T0 + timedelta(minutes=5))
    # the oldest failure (T0) leaves the window at T0+15 min: 10 minutes to wait
    assert e.value.message == "Too many sign-in attempts. Try again in 10 minutes."
    later = T0 + rules.SIGNIN_WINDOW + timedelta(seconds=1)
    assert auth.sign_in(session, "pat@example.test", f.PASSWORD, "10.9.9.9", now=later)


def test_throttled_per_address_across_emails(session):
    f.user(session, email="victim@example.test")
    for i in range(rules.SIGNIN_MAX_FAILURES_PER_ADDRESS):
        with pytest.raises(ValidationFailed):
            auth.sign_in(session, f"guess{i}@example.test", "wrong", "203.0.113.7", now=T0)
    with pytest.raises(TooManyAttempts):
        auth.sign_in(session, "victim@example.test", f.PASSWORD, "203.0.113.7", now=T0)
    # another address is not affected
    assert auth.sign_in(session, "victim@example.test", f.PASSWORD, "198.51.100.1", now=T0)


def test_refused_attempts_are_not_recorded(session):
    f.user(session, email="pat@example.test")
    for _ in range(rules.SIGNIN_MAX_FAILURES_PER_EMAIL):
        with pytest.raises(ValidationFailed):
            auth.sign_in(session, "pat@example.test", "wrong", "10.0.0.1", now=T0)
    with pytest.raises(TooManyAttempts):
        auth.sign_in(session, "pat@example.test", "wrong", "10.0.0.1", now=T0)
    count = session.scalar(select(func.count()).select_from(SigninAttempt))
    assert count == rules.SIGNIN_MAX_FAILURES_PER_EMAIL


def test_load_user_checks_the_session_version(session):
    u = f.user(session)
    assert auth.load_user(session, u.get_id()) is u
    u.session_version += 1
    assert auth.load_user(session, f"{u.id}:1") is None
    assert auth.load_user(session, "garbage") is None
    assert auth.load_user(session, f"{u.id}") is None


# --- a new owner's set-password link (a transfer to an email without a user) ---------------

KEY = "test-secret-key"


def test_a_user_made_for_an_email_sets_a_password_once_from_the_link(session):
    made = auth.user_for_email(session, "new@example.test")
    session.commit()
    token = auth.password_link_token(KEY, made)
    assert auth.user_for_password_link(session, KEY, token) == made
    with pytest.raises(ValidationFailed) as e:
        auth.set_password(session, made, "short", "short", "Nia New")
    assert e.value.errors == {"password": "Choose a password of at least 12 characters "
                                          "(this one has 5)."}
    with pytest.raises(ValidationFailed) as e:
        auth.set_password(session, made, "long enough 1", "long enough 2", "Nia\x00New")
    assert e.value.errors == {"name": "Your name can't contain control characters or line "
                                      "breaks.",
                              "again": "The two passwords are not the same."}
    version = made.session_version
    auth.set_password(session, made, "long enough 1", "long enough 1", "  Nia   New ")
    session.commit()
    assert (made.name, made.session_version) == ("Nia New", version + 1)
    assert auth.has_password(made)
    assert auth.sign_in(session, "new@example.test", "long enough 1", "10.0.0.1", now=T0) == made
    # used: the password hash changed, so the same link no longer opens
    with pytest.raises(NotFound) as e:
        auth.user_for_password_link(session, KEY, token)
    assert e.value.message == auth.LINK_PROBLEM


def test_a_set_password_link_is_refused_when_tampered_expired_or_for_a_user_with_one(session):
    made = auth.user_for_email(session, "new@example.test")
    has_one = f.user(session, email="pat@example.test")
    session.commit()
    token = auth.password_link_token(KEY, made)
    for bad, max_age in [(token[:-2] + "xx", None), (token + "x", None), ("", None),
                         (auth.password_link_token("another key", made), None),
                         (auth.password_link_token(KEY, has_one), None),
                         (token, timedelta(seconds=-1))]:
        with pytest.raises(NotFound):
            auth.user_for_password_link(session, KEY, bad, max_age=max_age)
    assert auth.user_for_password_link(session, KEY, token) == made
