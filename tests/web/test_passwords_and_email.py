"""Issue 15 (passwords and email): "Forgot password?" (a one-time reset link for an hour,
the same answer for every email, throttled), Change password and Change email on the user's
own security page, and the password rules with their reasons."""

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock, rules
from portal.models import OutboxMessage, SigninAttempt, User
from portal.services import auth
from tests import factories as f
from tests.conftest import HX, csrf_token
from tests.web.conftest import sign_in_as
from tests.web.pages import body as raw_body

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NEW = "a fresh long passphrase"
# The CSRF token (a form field, and the X-CSRFToken header htmx sends from <body>): signed
# with a timestamp, so two pages a second apart carry different ones.
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="[^"]*"|value="[^"]*"[^>]*name="csrf_token"'
                     r'|"X-CSRFToken": "[^"]*"')


@pytest.fixture
def pat(session):
    clock.freeze(T0)
    u = f.user(session, email="pat@example.test", name="Pat Lee")
    account = f.standalone(session, "Acme Plumbing", admin=u)
    session.commit()
    return u, account


def body(response) -> str:
    """The page, its entities decoded (a reason reads "can't", not "can&#39;t")."""
    return html.unescape(raw_body(response))


def ask_reset(client, email, address="198.51.100.4", **headers):
    return client.post("/forgot-password", data={"email": email,
                                                 "csrf_token": csrf_token(client)},
                       headers=headers, environ_base={"REMOTE_ADDR": address})


def mails(session, kind, to=None):
    query = select(OutboxMessage).where(OutboxMessage.kind == kind)
    if to is not None:
        query = query.where(OutboxMessage.to_address == to)
    return list(session.scalars(query.order_by(OutboxMessage.id)))


def link_in(message, path):
    return re.search(rf"http://[^\s]+({path}/[^\s]+)", message.text_body).group(1)


def reset_link(session, to="pat@example.test"):
    return link_in(mails(session, "password_reset", to)[-1], "/reset-password")


def post_new_password(client, link, password, again=None):
    return client.post(link, data={"password": password,
                                   "again": password if again is None else again,
                                   "csrf_token": csrf_token(client)})


def can_sign_in(session, email, password):
    try:
        auth.sign_in(session, email, password, address="192.0.2.99")
    except Exception:  # noqa: BLE001 - any refusal
        session.rollback()
        return False
    session.rollback()  # the recorded attempt is not part of the test
    return True


def signed_in(client) -> bool:
    response = client.get("/security/")
    return response.status_code == 200


# --- "Forgot password?" -------------------------------------------------------------------

def test_the_sign_in_page_links_to_forgot_password(client):
    page = body(client.get("/login"))
    assert 'href="/forgot-password"' in page and "Forgot password?" in page
    assert client.get("/forgot-password").status_code == 200


def test_a_reset_link_sets_a_new_password_once_signs_out_everywhere_and_tells_the_user(
        app, client, session, pat):
    user, _account = pat
    elsewhere = sign_in_as(app.test_client(), user)  # another browser, signed in
    assert signed_in(elsewhere)
    response = ask_reset(client, "  PAT@example.test ")
    assert response.status_code == 200
    assert "If pat@example.test belongs to a user here" in body(response)
    [mail] = mails(session, "password_reset")
    assert mail.to_address == "pat@example.test"
    link = reset_link(session)
    page = client.get(link)
    assert page.status_code == 200 and "Choose a new password" in body(page)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"

    response = post_new_password(client, link, NEW)
    assert response.status_code == 303 and response.location == "/login"
    session.expire_all()
    assert can_sign_in(session, "pat@example.test", NEW)
    assert not can_sign_in(session, "pat@example.test", f.PASSWORD)
    assert not signed_in(elsewhere)  # every other session ended
    [told] = mails(session, "password_changed", "pat@example.test")
    assert told.subject == "Your password was reset"

    # used: the same link no longer opens, nor sets a password
    assert client.get(link).status_code == 410
    again = post_new_password(client, link, "another long passphrase")
    assert again.status_code == 410 and auth.RESET_PROBLEM in body(again)
    session.expire_all()
    assert can_sign_in(session, "pat@example.test", NEW)


def test_an_unknown_email_gets_the_same_answer_and_no_mail(client, session, pat):
    known = ask_reset(client, "pat@example.test")
    unknown = ask_reset(client, "nobody@example.test")
    assert known.status_code == unknown.status_code == 200

    def shape(response, email):
        return CSRF_RE.sub("", body(response)).replace(email, "EMAIL")

    assert shape(known, "pat@example.test") == shape(unknown, "nobody@example.test")
    # and the same for htmx
    hx_known = ask_reset(client, "pat@example.test", **HX)
    hx_unknown = ask_reset(client, "nobody@example.test", **HX)
    assert hx_known.status_code == hx_unknown.status_code == 200
    assert shape(hx_known, "pat@example.test") == shape(hx_unknown, "nobody@example.test")
    assert [m.to_address for m in mails(session, "password_reset")] == ["pat@example.test"] * 2


def test_a_reset_link_expires_after_an_hour(client, session, pat):
    ask_reset(client, "pat@example.test")
    link = reset_link(session)
    clock.freeze(T0 + rules.PASSWORD_RESET_TTL - timedelta(seconds=1))
    assert client.get(link).status_code == 200
    clock.freeze(T0 + rules.PASSWORD_RESET_TTL + timedelta(seconds=1))
    response = client.get(link)
    assert response.status_code == 410 and auth.RESET_PROBLEM in body(response)
    assert post_new_password(client, link, NEW).status_code == 410
    session.expire_all()
    assert can_sign_in(session, "pat@example.test", f.PASSWORD)


def test_a_newer_link_retires_the_older_one(client, session, pat):
    ask_reset(client, "pat@example.test")
    first = reset_link(session)
    clock.freeze(T0 + timedelta(minutes=1))
    ask_reset(client, "pat@example.test")
    second = reset_link(session)
    assert first != second
    assert client.get(first).status_code == 410
    assert client.get(second).status_code == 200


def test_a_link_dies_when_the_password_changes_another_way(client, session, pat):
    user, _account = pat
    ask_reset(client, "pat@example.test")
    link = reset_link(session)
    signed = sign_in_as(client, user)
    response = signed.post("/security/password", data={
        "current": f.PASSWORD, "password": NEW, "again": NEW,
        "csrf_token": csrf_token(signed, "/security/")})
    assert response.status_code == 303
    assert client.get(link).status_code == 410


def test_a_link_dies_after_a_newer_sign_in(client, session, pat):
    ask_reset(client, "pat@example.test")
    link = reset_link(session)
    auth.sign_in(session, "pat@example.test", f.PASSWORD, address="192.0.2.1")
    session.commit()
    assert client.get(link).status_code == 410


def test_asking_is_throttled_per_email_the_same_for_unknown_ones(client, session, pat):
    for email in ("pat@example.test", "nobody@example.test"):
        for _ in range(rules.PASSWORD_RESET_MAX_PER_EMAIL):
            assert ask_reset(client, email).status_code == 200
        response = ask_reset(client, email)
        assert response.status_code == 429
        assert "Too many password reset requests. Try again in 60 minutes." in body(response)
    assert len(mails(session, "password_reset")) == rules.PASSWORD_RESET_MAX_PER_EMAIL
    # asking is not a failed sign-in: the password still signs in
    assert can_sign_in(session, "pat@example.test", f.PASSWORD)
    clock.freeze(T0 + rules.PASSWORD_RESET_WINDOW + timedelta(seconds=1))
    assert ask_reset(client, "pat@example.test").status_code == 200


def test_asking_is_throttled_per_address(client, session, pat):
    for n in range(rules.PASSWORD_RESET_MAX_PER_ADDRESS):
        assert ask_reset(client, f"someone{n}@example.test", address="192.0.2.50") \
            .status_code == 200
    assert ask_reset(client, "pat@example.test", address="192.0.2.50").status_code == 429
    assert mails(session, "password_reset") == []
    assert ask_reset(client, "pat@example.test", address="192.0.2.51").status_code == 200


def test_a_bad_address_is_refused_with_a_reason_and_nothing_recorded(client, session, pat):
    response = ask_reset(client, "not an email")
    assert response.status_code == 422
    assert "Enter the email address you sign in with." in body(response)
    assert session.scalar(select(func.count()).select_from(SigninAttempt)) == 0


def test_a_forged_or_cut_link_is_refused(client, session, pat):
    ask_reset(client, "pat@example.test")
    link = reset_link(session)
    assert client.get(link[:-3]).status_code == 410
    assert client.get("/reset-password/not-a-token").status_code == 410


@pytest.mark.parametrize(("password", "again", "reason"), [
    ("short pass", None, "Choose a password of at least 12 characters (this one has 10)."),
    ("qwerty123456", None, "That is one of the 10,000 most common passwords"),
    ("PAT@example.test", None, "Your password can't be your email address."),
    (NEW, "a fresh long passphrasE", "The two passwords are not the same."),
])
def test_a_refused_new_password_says_why_and_changes_nothing(client, session, pat, password,
                                                             again, reason):
    ask_reset(client, "pat@example.test")
    link = reset_link(session)
    response = post_new_password(client, link, password, again)
    assert response.status_code == 422
    assert reason in body(response)
    session.expire_all()
    assert can_sign_in(session, "pat@example.test", f.PASSWORD)
    assert client.get(link).status_code == 200  # still usable


def test_reset_without_the_csrf_token_is_refused(client, session, pat):
    ask_reset(client, "pat@example.test")
    link = reset_link(session)
    client.get(link)
    response = client.post(link, data={"password": NEW, "again": NEW})
    assert response.status_code == 400
    session.expire_all()
    assert can_sign_in(session, "pat@example.test", f.PASSWORD)


# --- Change password ----------------------------------------------------------------------

def change_password(client, current, password, again=None):
    return client.post("/security/password", data={
        "current": current, "password": password,
        "again": password if again is None else again,
        "csrf_token": csrf_token(client, "/security/")})


def test_change_password_needs_the_current_one(client, session, pat):
    user, _account = pat
    sign_in_as(client, user)
    response = change_password(client, "not the password", NEW)
    assert response.status_code == 422
    assert "That password is not correct." in body(response)
    response = change_password(client, "", NEW)
    assert response.status_code == 422 and "Enter your password." in body(response)
    session.expire_all()
    assert can_sign_in(session, "pat@example.test", f.PASSWORD)
    # the wrong one counts toward the sign-in throttle
    assert session.scalar(select(func.count()).select_from(SigninAttempt).where(
        SigninAttempt.step == "reauth", SigninAttempt.succeeded.is_(False))) == 2
    assert mails(session, "password_changed") == []


def test_change_password_keeps_this_session_ends_the_others_and_tells_the_user(
        app, client, session, pat):
    user, _account = pat
    sign_in_as(client, user)
    elsewhere = sign_in_as(app.test_client(), user)
    response = change_password(client, f.PASSWORD, NEW)
    assert response.status_code == 303 and response.location == "/security/"
    assert signed_in(client)
    assert not signed_in(elsewhere)
    session.expire_all()
    assert can_sign_in(session, "pat@example.test", NEW)
    [told] = mails(session, "password_changed", "pat@example.test")
    assert told.subject == "Your password was changed"


@pytest.mark.parametrize(("password", "reason"), [
    ("tooshort", "Choose a password of at least 12 characters (this one has 8)."),
    ("1qaz2wsx3edc", "That is one of the 10,000 most common passwords"),
    ("pat@example.test", "Your password can't be your email address."),
    (f.PASSWORD, "That is your current password. Choose a new one."),
])
def test_change_password_refuses_with_the_reason(client, session, pat, password, reason):
    user, _account = pat
    sign_in_as(client, user)
    response = change_password(client, f.PASSWORD, password)
    assert response.status_code == 422
    assert reason in body(response)
    session.expire_all()
    assert can_sign_in(session, "pat@example.test", f.PASSWORD)


def test_change_password_needs_sign_in_and_the_csrf_token(client, session, pat):
    user, _account = pat
    response = client.post("/security/password", data={"current": f.PASSWORD,
                                                       "password": NEW, "again": NEW})
    assert response.status_code in (302, 303, 400)
    sign_in_as(client, user)
    response = client.post("/security/password", data={"current": f.PASSWORD,
                                                       "password": NEW, "again": NEW})
    assert response.status_code == 400
    session.expire_all()
    assert can_sign_in(session, "pat@example.test", f.PASSWORD)


# --- Change email -------------------------------------------------------------------------

def change_email(client, email, password=f.PASSWORD):
    return client.post("/security/email", data={
        "email": email, "password": password, "csrf_token": csrf_token(client, "/security/")})


def test_change_email_is_confirmed_from_the_new_address_and_the_old_one_is_told(
        app, client, session, pat):
    user, _account = pat
    sign_in_as(client, user)
    response = change_email(client, "Pat.New@Example.test")
    assert response.status_code == 303
    session.expire_all()
    assert session.get(User, user.id).email == "pat@example.test"  # not yet
    [confirm] = mails(session, "email_change")
    assert confirm.to_address == "pat.new@example.test"
    link = link_in(confirm, "/security/email")

    stranger = app.test_client()  # the link is the proof: no sign-in needed
    page = stranger.get(link)
    assert page.status_code == 200 and "pat.new@example.test" in body(page)
    session.expire_all()
    assert session.get(User, user.id).email == "pat@example.test"  # a GET changes nothing
    response = stranger.post(link, data={"csrf_token": csrf_token(stranger, link)})
    assert response.status_code == 303
    session.expire_all()
    assert session.get(User, user.id).email == "pat.new@example.test"
    [told] = mails(session, "email_changed")
    assert told.to_address == "pat@example.test"
    assert "pat.new@example.test" in told.text_body
    assert can_sign_in(session, "pat.new@example.test", f.PASSWORD)
    assert not can_sign_in(session, "pat@example.test", f.PASSWORD)
    # used: the link no longer works
    assert stranger.get(link).status_code == 410


def test_change_email_needs_the_password_and_a_free_valid_address(client, session, pat):
    user, account = pat
    f.user(session, email="taken@example.test")
    session.commit()
    sign_in_as(client, user)
    for email, password, reason in (
        ("new@example.test", "wrong password", "That password is not correct."),
        ("not an email", f.PASSWORD, "Enter the new email address, like name@example.com."),
        ("pat@example.test", f.PASSWORD, "That is already your email address."),
        ("taken@example.test", f.PASSWORD, "Another user signs in with that email address."),
    ):
        response = change_email(client, email, password)
        assert response.status_code == 422, email
        assert reason in body(response)
    assert mails(session, "email_change") == []


def test_an_email_change_link_expires_and_dies_if_the_address_is_taken_meanwhile(
        app, client, session, pat):
    user, _account = pat
    sign_in_as(client, user)
    change_email(client, "later@example.test")
    link = link_in(mails(session, "email_change")[-1], "/security/email")
    opener = app.test_client()  # whoever reads the new mailbox, not signed in
    clock.freeze(T0 + rules.EMAIL_CHANGE_TTL - timedelta(seconds=1))
    assert opener.get(link).status_code == 200
    clock.freeze(T0 + rules.EMAIL_CHANGE_TTL + timedelta(seconds=1))
    assert opener.get(link).status_code == 410
    clock.freeze(T0 + timedelta(minutes=1))
    f.user(session, email="later@example.test")
    session.commit()
    response = opener.post(link, data={"csrf_token": csrf_token(opener, link)})
    assert response.status_code == 409
    assert "Another user signs in with that email address now." in body(response)
    session.expire_all()
    assert session.get(User, user.id).email == "pat@example.test"
    assert mails(session, "email_changed") == []


def test_two_racing_resets_with_one_link_set_one_password(app, client, session, pat):
    """Both requests opened the link before either set a password: only the first sets it
    (the UPDATE is conditional on the hash the link was opened with); the second is told the
    link is used, changes nothing and sends no second email."""
    from sqlalchemy.orm import Session

    from portal.errors import NotFound
    from portal.extensions import db

    user, _account = pat
    ask_reset(client, "pat@example.test")
    token = reset_link(session).rsplit("/", 1)[1]
    key = app.config["SECRET_KEY"]
    second = auth.user_for_reset(session, key, token)  # request B opens the link ...
    session.expunge(second)  # ... and keeps the user as it read it
    session.commit()
    with Session(db.engine) as other:  # request A opens it too and sets a password first
        first = auth.user_for_reset(other, key, token)
        auth.reset_password(other, first, NEW, NEW)
        other.commit()
    with pytest.raises(NotFound) as e:
        auth.reset_password(session, second, "another long passphrase",
                            "another long passphrase")
    assert e.value.message == auth.RESET_PROBLEM
    session.rollback()
    assert can_sign_in(session, "pat@example.test", NEW)
    assert not can_sign_in(session, "pat@example.test", "another long passphrase")
    assert len(mails(session, "password_changed")) == 1
