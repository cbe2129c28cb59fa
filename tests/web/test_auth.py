"""Sign in, sign out, throttling, `next`, unauthenticated requests and the session cookie."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock, rules
from portal.models import SigninAttempt
from tests import factories as f
from tests.conftest import HX, Auth, csrf_token
from tests.web.pages import assert_fragment, body, login_location

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ADDRESS = "203.0.113.7"
INCORRECT = '<p class="form-error" role="alert">Incorrect email or password.</p>'


def form_error(message: str) -> str:
    return f'<p class="form-error" role="alert">{message}</p>'


def post_login(client, email, password, next_url=None, headers=None, address="127.0.0.1"):
    data = {"email": email, "password": password, "csrf_token": csrf_token(client)}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/login", data=data, headers=headers or {},
                       environ_base={"REMOTE_ADDR": address})


def signed_in(client) -> bool:
    response = client.get("/")
    return not (response.status_code == 302 and response.location.startswith("/login"))


@pytest.fixture
def pat(session):
    u = f.user(session, email="pat@example.test")
    account = f.standalone(session, "Acme Plumbing", admin=u)
    session.commit()
    return u, account


# --- signing in ---------------------------------------------------------------------------

def test_sign_in_redirects_to_home_with_303(client, auth, pat):
    response = auth.login("pat@example.test")
    assert response.status_code == 303
    assert response.location == "/"
    assert client.get("/").location == f"/accounts/{pat[1].id}/"


def test_sign_in_email_is_case_insensitive_and_trimmed(client, auth, pat):
    assert auth.login("  PAT@Example.TEST ").status_code == 303
    assert signed_in(client)


def test_htmx_sign_in_answers_with_hx_redirect_not_a_redirect(client, auth, pat):
    response = auth.login("pat@example.test", **HX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/"


@pytest.mark.parametrize("email", ["pat@example.test", "nobody@example.test"])
def test_wrong_password_or_unknown_email_get_the_same_message(client, pat, email):
    response = post_login(client, email, "not-the-password")
    assert response.status_code == 422
    html = body(response)
    assert INCORRECT in html
    assert "not-the-password" not in html  # the password is never echoed back
    assert f'value="{email}"' in html  # the email is kept in the form
    assert not signed_in(client)


@pytest.mark.parametrize("email", [
    "pat@example.test\x00",  # PostgreSQL refuses NUL in a string: once a 500 there
    "p" * 300 + "@example.test",  # longer than any stored email: once a 500 on PostgreSQL
])
def test_emails_no_account_can_have_are_incorrect(client, pat, email):
    response = post_login(client, email, f.PASSWORD)
    assert response.status_code == 422
    assert INCORRECT in body(response)
    assert not signed_in(client)


def test_failed_sign_in_as_htmx_returns_only_the_form(client, pat):
    response = post_login(client, "pat@example.test", "wrong", headers=HX)
    assert response.status_code == 422
    html = assert_fragment(response, '<form id="login-form"')
    assert INCORRECT in html


@pytest.mark.parametrize("email,password,field,message", [
    ("", "whatever", "email", "Enter your email address."),
    ("   ", "whatever", "email", "Enter your email address."),
    ("pat@example.test", "", "password", "Enter your password."),
])
def test_missing_fields(client, pat, email, password, field, message):
    response = post_login(client, email, password)
    assert response.status_code == 422
    html = body(response)
    assert f'<p class="field-error" id="{field}-error">{message}</p>' in html
    assert f'aria-describedby="{field}-error"' in html
    assert "Incorrect email or password." not in html


def test_missing_both_fields_shows_both_messages(client, pat):
    html = body(post_login(client, "", ""))
    assert '<p class="field-error" id="email-error">Enter your email address.</p>' in html
    assert '<p class="field-error" id="password-error">Enter your password.</p>' in html


# --- throttling ---------------------------------------------------------------------------

def test_sign_in_is_throttled_per_email_until_the_window_passes(client, pat):
    for minute in range(rules.SIGNIN_MAX_FAILURES_PER_EMAIL):
        clock.freeze(T0 + timedelta(minutes=minute))
        assert post_login(client, "pat@example.test", "wrong").status_code == 422

    clock.freeze(T0 + timedelta(minutes=5))
    response = post_login(client, "pat@example.test", f.PASSWORD)  # the right password
    assert response.status_code == 429
    assert form_error("Too many sign-in attempts. Try again in 10 minutes.") in body(response)
    assert not signed_in(client)

    clock.freeze(T0 + timedelta(minutes=14, seconds=30))
    response = post_login(client, "pat@example.test", f.PASSWORD)
    assert response.status_code == 429
    assert form_error("Too many sign-in attempts. Try again in 1 minute.") in body(response)

    clock.freeze(T0 + rules.SIGNIN_WINDOW + timedelta(seconds=1))
    response = post_login(client, "pat@example.test", f.PASSWORD)
    assert response.status_code == 303
    assert signed_in(client)


def test_email_throttle_does_not_lock_out_other_emails(client, session, pat):
    other = f.user(session, email="sam@example.test")
    session.commit()
    clock.freeze(T0)
    for _ in range(rules.SIGNIN_MAX_FAILURES_PER_EMAIL):
        post_login(client, "pat@example.test", "wrong")
    assert post_login(client, "pat@example.test", f.PASSWORD).status_code == 429
    assert post_login(client, other.email, f.PASSWORD).status_code == 303


def test_sign_in_is_throttled_per_address_across_emails(client, session, pat):
    clock.freeze(T0)
    for i in range(rules.SIGNIN_MAX_FAILURES_PER_ADDRESS):
        response = post_login(client, f"guess{i}@example.test", "wrong", address=ADDRESS)
        assert response.status_code == 422
    recorded = session.scalar(select(func.count()).select_from(SigninAttempt).where(
        SigninAttempt.address == ADDRESS, SigninAttempt.succeeded.is_(False)))
    assert recorded == rules.SIGNIN_MAX_FAILURES_PER_ADDRESS

    # pat never failed, but this address did too often: refused even with the right password
    response = post_login(client, "pat@example.test", f.PASSWORD, address=ADDRESS)
    assert response.status_code == 429
    assert form_error("Too many sign-in attempts. Try again in 15 minutes.") in body(response)

    # the same person from another address gets in
    response = post_login(client, "pat@example.test", f.PASSWORD, address="198.51.100.9")
    assert response.status_code == 303


# --- signing out --------------------------------------------------------------------------

def test_sign_out_signs_out(client, auth, pat):
    auth.login("pat@example.test")
    response = auth.logout()
    assert response.status_code == 303
    assert response.location == "/login"
    assert "You have signed out." in body(client.get("/login"))
    assert client.get(f"/accounts/{pat[1].id}/").status_code == 302


def _cookie(client, name="session"):
    cookie = client.get_cookie(name)
    assert cookie is not None, f"no {name} cookie"
    return cookie.value


def test_a_copied_cookie_does_not_open_the_account_after_sign_out(app, client, auth, pat):
    """The session cookie is signed, not stored: sign-out must end it on the server, or a
    copy taken before (a shared computer, a stolen cookie) keeps working."""
    auth.login("pat@example.test")
    assert client.get(f"/accounts/{pat[1].id}/").status_code == 200
    copied = _cookie(client)

    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get(f"/accounts/{pat[1].id}/").status_code == 200  # the copy works...

    assert auth.logout().status_code == 303
    response = thief.get(f"/accounts/{pat[1].id}/")  # ...until the owner signs out
    assert response.status_code == 302
    assert login_location(response) == ("/login", f"/accounts/{pat[1].id}/")
    partial = thief.get(f"/accounts/{pat[1].id}/", headers=HX)
    assert partial.status_code == 401
    assert "Acme Plumbing" not in body(thief.get("/", follow_redirects=True))


def test_signing_in_again_after_sign_out_works_and_old_copies_stay_dead(app, client, auth, pat):
    auth.login("pat@example.test")
    copied = _cookie(client)
    auth.logout()
    assert auth.login("pat@example.test").status_code == 303
    assert signed_in(client)
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert not signed_in(thief)


def test_sign_out_ends_the_users_sessions_on_other_devices_too(app, client, auth, pat):
    """One version per user (no session table): signing out anywhere signs out everywhere,
    as the README says."""
    auth.login("pat@example.test")
    laptop = app.test_client()
    Auth(laptop).login("pat@example.test")
    assert signed_in(laptop)
    auth.logout()
    assert not signed_in(laptop)


def test_a_refused_sign_out_ends_nothing(app, client, auth, session, pat):
    auth.login("pat@example.test")
    version = pat[0].session_version
    assert client.post("/logout").status_code == 400  # no CSRF token
    session.expire_all()
    assert pat[0].session_version == version


def test_sign_out_needs_post(client, auth, pat):
    auth.login("pat@example.test")
    assert client.get("/logout").status_code == 405
    assert signed_in(client)


def test_sign_out_needs_the_csrf_token(client, auth, pat):
    auth.login("pat@example.test")
    response = client.post("/logout")
    assert response.status_code == 400
    assert "Your session expired" in body(response)
    assert signed_in(client)


# --- next -----------------------------------------------------------------------------------

def test_next_same_site_path_is_followed(client, pat):
    target = f"/accounts/{pat[1].id}/calls/?from=2026-11-01"
    page = body(client.get("/login", query_string={"next": target}))
    assert f'name="next" value="{target}"' in page
    response = post_login(client, "pat@example.test", f.PASSWORD, next_url=target)
    assert response.status_code == 303
    assert response.location == target


@pytest.mark.parametrize("target", [
    "//evil.example", "https://evil.example/x", "/\\evil.example", "javascript:alert(1)",
])
def test_next_to_another_site_is_ignored(client, pat, target):
    page = body(client.get("/login", query_string={"next": target}))
    assert 'name="next"' not in page
    response = post_login(client, "pat@example.test", f.PASSWORD, next_url=target)
    assert response.status_code == 303
    assert response.location == "/"


# --- not signed in --------------------------------------------------------------------------

def test_full_page_request_redirects_to_sign_in_with_next(client, pat):
    path = f"/accounts/{pat[1].id}/calls/?from=2026-11-01"
    response = client.get(path)
    assert response.status_code == 302
    assert login_location(response) == ("/login", path)
    # and signing in from there lands back on the page
    follow = post_login(client, "pat@example.test", f.PASSWORD, next_url=path)
    assert follow.location == path
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", [
    "/accounts/{id}/calls/?from=2026-11-01", "/accounts/{id}/", "/switch?q=acme",
])
def test_htmx_partial_request_gets_401_with_hx_redirect(client, pat, path):
    path = path.format(id=pat[1].id)
    response = client.get(path, headers=HX)
    assert response.status_code == 401
    assert "Location" not in response.headers
    assert login_location(response) == ("/login", path)
    assert body(response) == ""


def test_boosted_request_when_signed_out_gets_the_redirect(client, pat):
    response = client.get(f"/accounts/{pat[1].id}/", headers={**HX, "HX-Boosted": "true"})
    assert response.status_code == 302
    assert login_location(response)[0] == "/login"


def test_unknown_account_when_signed_out_also_asks_to_sign_in(client, pat):
    response = client.get("/accounts/999999/")
    assert response.status_code == 302
    assert login_location(response) == ("/login", "/accounts/999999/")


# --- session cookie -------------------------------------------------------------------------

def _session_cookie(response) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


def test_session_cookie_is_httponly_and_samesite_lax(app, auth, pat):
    assert app.config["SESSION_COOKIE_SECURE"] is False
    cookie = _session_cookie(auth.login("pat@example.test"))
    attributes = [part.strip() for part in cookie.split(";")]
    assert "HttpOnly" in attributes
    assert "SameSite=Lax" in attributes
    assert "Secure" not in attributes


def test_session_cookie_is_secure_when_configured(app, auth, pat):
    app.config["SESSION_COOKIE_SECURE"] = True
    cookie = _session_cookie(auth.login("pat@example.test"))
    attributes = [part.strip() for part in cookie.split(";")]
    assert {"Secure", "HttpOnly", "SameSite=Lax"} <= set(attributes)


def test_sign_in_starts_a_new_session(client, auth, pat):
    """No session fixation: whatever the session held before sign-in is gone after it."""
    client.get("/login")
    with client.session_transaction() as s:
        s["planted"] = "by-someone-else"
    auth.login("pat@example.test")
    with client.session_transaction() as s:
        assert "planted" not in s
        assert s["_user_id"] == pat[0].get_id()
