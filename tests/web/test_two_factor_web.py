"""Two-factor sign-in through the real /login form, the account setting that requires it,
signing out other sessions, the inactivity timeout, asking for the password again before
payment methods and closing, the recent sign-ins table, CSRF and login on /security."""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from sqlalchemy import func, select

from portal import clock, rules
from portal.errors import ValidationFailed
from portal.models import AccountStatus, PaymentMethod, Role, SigninAttempt
from portal.services import security
from tests import factories as f
from tests.conftest import HX, csrf_token
from tests.web.billing_world import card_form
from tests.web.conftest import sign_in_as
from tests.web.lifecycle_world import post, token
from tests.web.pages import body, login_location, shown, table_rows

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
STEP = timedelta(seconds=rules.TOTP_STEP_SECONDS)
BAD_CODE = ("That code didn't work. Enter the 6-digit code your authenticator app shows now, "
            "or one of your recovery codes.")
TOO_LONG = "That sign-in took too long. Enter your email and password again."
IDLE = ("You were signed out after 30 minutes without activity. Sign in again to "
        "continue.")
REAUTH = "For your security, enter your password again to continue."
NOT_FIRST = "Turn on two-factor sign-in for yourself first, so you are not locked out."
SECRET_RE = re.compile(r'data-testid="totp-secret">([A-Z2-7 ]+)<')


def code_at(moment: datetime, secret: str = SECRET) -> str:
    return pyotp.TOTP(secret).at(moment)


def wrong_code(moment: datetime, secret: str = SECRET) -> str:
    near = {code_at(moment + STEP * k, secret) for k in range(-3, 4)}
    return next(c for c in (f"{n:06d}" for n in range(1, 10**6, 7919)) if c not in near)


def shown_secret(html: str) -> str:
    """The key as the setup page shows it (maybe in groups), as the app would take it."""
    return SECRET_RE.search(html).group(1).replace(" ", "")


def flash(category: str, message: str) -> str:
    return f'<p class="flash flash-{category}" role="status">{shown(message)}</p>'


def field_error(name: str, message: str) -> str:
    return f'<p class="field-error" id="{name}-error">{shown(message)}</p>'


def enable(session, user, secret: str = SECRET, at: datetime = T0 - timedelta(minutes=10)):
    security.set_secret(user, secret)
    codes = security.confirm_setup(session, user, code_at(at, secret), now=at)
    session.flush()
    return codes


def login(client, email, password=f.PASSWORD, next_url=None, headers=None):
    data = {"email": email, "password": password, "csrf_token": csrf_token(client)}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/login", data=data, headers=headers or {})


def enter_code(client, code, headers=None):
    return post(client, "/login/two-factor", {"code": code}, headers=headers)


def home(account) -> str:
    return f"/accounts/{account.id}/"


def reaches(client, account) -> bool:
    return client.get(home(account)).status_code == 200


@pytest.fixture
def world(session):
    """Acme Plumbing: admin pat (two-factor on), admin ada and role-user vic (both without).
    Rival Shop: another tenant (admin rex)."""
    from types import SimpleNamespace

    clock.freeze(T0)
    w = SimpleNamespace()
    w.pat = f.user(session, email="pat@example.test", name="Pat")
    w.ada = f.user(session, email="ada@example.test", name="Ada")
    w.vic = f.user(session, email="vic@example.test", name="Vic")
    w.rex = f.user(session, email="rex@example.test", name="Rex")
    w.acme = f.standalone(session, "Acme Plumbing", admin=w.pat)
    f.member(session, w.ada, w.acme, Role.ADMIN)
    f.member(session, w.vic, w.acme, Role.USER)
    w.rival = f.standalone(session, "Rival Shop", admin=w.rex)
    w.codes = enable(session, w.pat)
    session.commit()
    return w


def attempts(session, **where):
    query = select(SigninAttempt).order_by(SigninAttempt.id)
    for key, value in where.items():
        query = query.where(getattr(SigninAttempt, key) == value)
    session.expire_all()
    return session.scalars(query).all()


# --- the second step ------------------------------------------------------------------------

def test_the_password_alone_does_not_sign_a_two_factor_user_in(client, session, world):
    response = login(client, "pat@example.test")
    assert response.status_code == 303
    assert response.location == "/login/two-factor"
    page = client.get(home(world.acme))
    assert page.status_code == 302
    assert login_location(page) == ("/login", home(world.acme))
    form = client.get("/login/two-factor")
    assert form.status_code == 200
    assert '<form id="code-form"' in body(form)

    response = enter_code(client, code_at(T0))
    assert response.status_code == 303
    assert response.location == "/"
    assert reaches(client, world.acme)
    good = attempts(session, succeeded=True)
    assert [(a.step, a.user_id) for a in good] == [("password", world.pat.id),
                                                   ("totp", world.pat.id)]


def test_a_user_without_two_factor_is_signed_in_by_the_password(client, world):
    response = login(client, "ada@example.test")
    assert response.status_code == 303 and response.location == "/"
    assert reaches(client, world.acme)


def test_htmx_sign_in_of_a_two_factor_user_goes_to_the_code_page(client, world):
    response = login(client, "pat@example.test", headers=HX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/login/two-factor"


def test_a_wrong_code_is_422_with_the_message_and_recorded_as_failed(client, session, world):
    login(client, "pat@example.test")
    response = enter_code(client, wrong_code(T0))
    assert response.status_code == 422
    assert field_error("code", BAD_CODE) in body(response)
    assert not reaches(client, world.acme)
    failed = attempts(session, succeeded=False)
    assert [(a.step, a.email, a.user_id) for a in failed] == [
        ("code", "pat@example.test", None)]
    # Still pending: the right code signs in afterwards.
    assert enter_code(client, code_at(T0)).status_code == 303
    assert reaches(client, world.acme)


def test_a_wrong_code_as_htmx_returns_only_the_form(client, world):
    login(client, "pat@example.test")
    response = enter_code(client, wrong_code(T0), headers=HX)
    assert response.status_code == 422
    html = body(response).strip()
    assert html.startswith('<form id="code-form"') and "<html" not in html


def test_the_same_code_cannot_sign_in_twice(client, app, world):
    login(client, "pat@example.test")
    assert enter_code(client, code_at(T0)).status_code == 303
    other = app.test_client()
    login(other, "pat@example.test")
    response = enter_code(other, code_at(T0))
    assert response.status_code == 422
    assert field_error("code", BAD_CODE) in body(response)
    clock.freeze(T0 + STEP)
    assert enter_code(other, code_at(T0 + STEP)).status_code == 303


def test_five_failures_of_password_and_code_together_are_throttled(client, session, world):
    for _ in range(2):
        assert login(client, "pat@example.test", "wrong").status_code == 422
    assert login(client, "pat@example.test").status_code == 303
    for _ in range(3):
        assert enter_code(client, wrong_code(T0)).status_code == 422
    assert len(attempts(session, succeeded=False)) == rules.SIGNIN_MAX_FAILURES_PER_EMAIL
    response = enter_code(client, code_at(T0))  # even the right code
    assert response.status_code == 429
    assert "Too many sign-in attempts. Try again in 15 minutes." in body(response)
    assert not reaches(client, world.acme)
    # The pending sign-in is over: back to the password.
    assert client.get("/login/two-factor").location == "/login"
    assert login(client, "pat@example.test").status_code == 429


def test_a_pending_sign_in_expires_after_five_minutes(client, world):
    login(client, "pat@example.test")
    token(client)
    later = T0 + rules.TWO_FACTOR_PENDING + timedelta(seconds=1)
    clock.freeze(later)
    response = enter_code(client, code_at(later))
    assert response.status_code == 303
    assert response.location == "/login"
    assert flash("info", TOO_LONG) in body(client.get("/login"))
    assert not reaches(client, world.acme)
    assert client.get("/login/two-factor").location == "/login"


def test_a_pending_sign_in_at_exactly_five_minutes_still_works(client, world):
    login(client, "pat@example.test")
    token(client)
    later = T0 + rules.TWO_FACTOR_PENDING
    clock.freeze(later)
    assert enter_code(client, code_at(later)).status_code == 303
    assert reaches(client, world.acme)


def test_a_pending_sign_in_ends_when_other_sessions_are_signed_out(client, app, world):
    login(client, "pat@example.test")
    token(client)
    elsewhere = sign_in_as(app.test_client(), world.pat)
    assert post(elsewhere, "/security/sign-out-others").status_code == 303
    response = enter_code(client, code_at(T0))
    assert response.location == "/login"
    assert not reaches(client, world.acme)


def test_a_recovery_code_signs_in_once(client, app, session, world):
    login(client, "pat@example.test")
    response = enter_code(client, world.codes[0].upper())
    assert response.status_code == 303
    assert response.location == "/"
    assert reaches(client, world.acme)
    assert [a.succeeded for a in attempts(session, step="recovery")] == [True]

    again = app.test_client()
    login(again, "pat@example.test")
    response = enter_code(again, world.codes[0])
    assert response.status_code == 422
    assert field_error("code", BAD_CODE) in body(response)
    assert not reaches(again, world.acme)
    assert security.recovery_codes_left(session, world.pat) == 9


@pytest.mark.parametrize("spent,left", [(0, "9 recovery codes left."),
                                        (8, "1 recovery code left.")])
def test_signing_in_with_a_recovery_code_flashes_how_many_are_left(client, session, world,
                                                                   spent, left):
    for code in world.codes[:spent]:
        security.verify(session, world.pat, code)
    session.commit()
    login(client, "pat@example.test")
    response = enter_code(client, world.codes[spent])
    assert response.status_code == 303
    html = body(client.get(response.location, follow_redirects=True))
    assert flash("info", "You signed in with a recovery code; it can't be used again. "
                         + left) in html


@pytest.mark.parametrize("step", ["totp", "recovery"])
def test_next_is_kept_through_both_steps(client, world, step):
    target = f"/accounts/{world.acme.id}/calls/?from=2026-11-01"
    response = login(client, "pat@example.test", next_url=target)
    assert response.location == "/login/two-factor"
    code = code_at(T0) if step == "totp" else world.codes[1]
    response = enter_code(client, code)
    assert response.status_code == 303
    assert response.location == target


def test_an_unsafe_next_is_dropped(client, world):
    login(client, "pat@example.test", next_url="//evil.test/steal")
    assert enter_code(client, code_at(T0)).location == "/"


# --- an account that requires two-factor sign-in -------------------------------------------

REQUIRE = "/accounts/{}/security/require-two-factor"


def test_an_admin_without_two_factor_cannot_require_it(client, session, world):
    sign_in_as(client, world.ada)
    response = post(client, REQUIRE.format(world.acme.id), {"require_two_factor": "on"})
    assert response.status_code == 422
    assert field_error("require_two_factor", NOT_FIRST) in body(response)
    session.expire_all()
    assert not world.acme.require_two_factor


def test_a_role_user_cannot_change_the_setting(client, session, world):
    sign_in_as(client, world.vic)
    response = post(client, REQUIRE.format(world.acme.id), {"require_two_factor": "on"})
    assert response.status_code == 403
    session.expire_all()
    assert not world.acme.require_two_factor


def test_requiring_it_sends_other_members_to_set_it_up(client, app, session, world):
    admin = sign_in_as(app.test_client(), world.pat)
    response = post(admin, REQUIRE.format(world.acme.id), {"require_two_factor": "on"})
    assert response.status_code == 303
    assert response.location == f"/accounts/{world.acme.id}/security/"
    overview = body(admin.get(response.location))
    assert flash("success", "Every user must now sign in with a second factor.") in overview
    assert "Ada, Vic" in overview  # who will be asked
    session.expire_all()
    assert world.acme.require_two_factor

    sign_in_as(client, world.vic)
    calls = f"/accounts/{world.acme.id}/calls/"
    response = client.get(calls)
    assert response.status_code == 303
    assert target(response) == ("/security/two-factor", calls)
    partial = client.get(calls, headers=HX)
    assert partial.headers["HX-Redirect"] == response.location
    assert partial.status_code == 204

    setup = client.get(response.location)
    assert setup.status_code == 200
    html = body(setup)
    assert flash("info", "Acme Plumbing requires two-factor sign-in. Set it up to "
                         "continue.") in html
    assert "<svg" in html
    secret = shown_secret(html)
    assert f'name="next" value="{calls}"' in html

    done = post(client, "/security/two-factor", {"code": code_at(T0, secret),
                                                 "next": calls})
    assert done.status_code == 200
    assert 'data-testid="recovery-codes"' in body(done)
    assert len(re.findall(r"<li><code>[a-z2-9]{5}-[a-z2-9]{5}</code></li>", body(done))) == 10
    assert "no-store" in done.headers["Cache-Control"]
    assert f'href="{calls}"' in body(done)
    assert client.get(calls).status_code == 200
    assert "Ada" in body(admin.get(f"/accounts/{world.acme.id}/security/"))


def test_a_wrong_setup_code_shows_the_page_again(client, session, world):
    sign_in_as(client, world.vic)
    secret = shown_secret(body(client.get("/security/two-factor")))
    response = post(client, "/security/two-factor", {"code": wrong_code(T0, secret)})
    assert response.status_code == 422
    html = body(response)
    assert field_error("code", "That code doesn't match. Check the app's clock and enter "
                               "the code it shows now.") in html
    assert shown_secret(html) == secret
    session.expire_all()
    assert not world.vic.has_two_factor


def test_the_setup_page_is_not_cached(client, world):
    """It shows the authenticator secret: as secret as the recovery codes (no-store)."""
    sign_in_as(client, world.vic)
    response = client.get("/security/two-factor")
    assert response.status_code == 200
    assert "no-store" in response.headers.get("Cache-Control", "")


def test_a_member_without_two_factor_is_sent_to_set_it_up_after_signing_in(client, session,
                                                                          world):
    world.acme.require_two_factor = True
    session.commit()
    response = login(client, "vic@example.test")
    assert response.status_code == 303
    assert response.location == "/security/two-factor"
    html = body(client.get(response.location))
    assert flash("info", "An account you belong to requires two-factor sign-in. Set it up "
                         "to continue.") in html


def test_the_agency_requiring_it_covers_its_sub_accounts(client, app, session, world):
    agency = f.agency(session, "Northwind Agency", owner=world.pat)
    sub = f.sub(session, agency, "Bayside Dental")
    f.member(session, world.ada, sub, Role.ADMIN)
    session.commit()
    owner = sign_in_as(app.test_client(), world.pat)
    assert post(owner, REQUIRE.format(agency.id),
                {"require_two_factor": "on"}).status_code == 303
    sign_in_as(client, world.ada)
    response = client.get(home(sub))
    assert response.status_code == 303
    assert response.location.startswith("/security/two-factor?next=")
    # The sub-account can't turn it off while the agency requires it.
    enable(session, world.ada, secret=pyotp.random_base32())
    session.commit()
    response = post(client, REQUIRE.format(sub.id), {})
    assert response.status_code == 422
    assert field_error("require_two_factor", "The agency requires it for every sub-account: "
                                             "change it there.") in body(response)


def test_two_factor_cannot_be_turned_off_while_required(client, session, world):
    world.acme.require_two_factor = True
    session.commit()
    sign_in_as(client, world.pat)
    response = post(client, "/security/two-factor/off", {"password": f.PASSWORD})
    assert response.status_code == 403
    assert shown("Acme Plumbing requires two-factor sign-in: it can't be turned off while "
                 "you are a member.") in body(response)
    session.expire_all()
    assert world.pat.has_two_factor


def test_turning_it_off_needs_the_password(client, session, world):
    sign_in_as(client, world.pat)
    response = post(client, "/security/two-factor/off", {"password": "wrong"})
    assert response.status_code == 422
    assert field_error("password", "That password is not correct.") in body(response)
    response = post(client, "/security/two-factor/off", {"password": f.PASSWORD})
    assert response.status_code == 303
    session.expire_all()
    assert not world.pat.has_two_factor and world.pat.totp_secret is None


def test_new_recovery_codes_from_the_overview(client, session, world):
    sign_in_as(client, world.pat)
    overview = body(client.get("/security/"))
    assert 'data-testid="two-factor-status">On' in overview
    assert "10 unused recovery codes left." in overview
    response = post(client, "/security/recovery-codes", {"password": f.PASSWORD})
    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]
    new = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", body(response))
    assert len(new) == 10 and not set(new) & set(world.codes)
    with pytest.raises(ValidationFailed):
        security.verify(session, world.pat, world.codes[0])
    assert security.verify(session, world.pat, new[0]) == "recovery"


# --- sign out all other sessions ------------------------------------------------------------

def test_sign_out_all_other_sessions(app, world):
    mine, other = app.test_client(), app.test_client()
    for c in (mine, other):
        sign_in_as(c, world.pat)
        assert reaches(c, world.acme)
    response = post(mine, "/security/sign-out-others")
    assert response.status_code == 303
    assert response.location == "/security/"
    assert flash("success", "Every other session is signed out. This one stays signed "
                            "in.") in body(mine.get("/security/"))
    page = other.get(home(world.acme))
    assert page.status_code == 302
    assert login_location(page)[0] == "/login"
    assert reaches(mine, world.acme)
    # The kept session is still recent: no password asked for the payment method form.
    assert mine.get(f"/accounts/{world.acme.id}/billing/payment-methods/new-card"
                    ).status_code == 200


def test_sign_out_others_after_a_real_sign_in(app, world):
    mine, other = app.test_client(), app.test_client()
    for c in (mine, other):
        login(c, "ada@example.test")
        assert reaches(c, world.acme)
    assert post(mine, "/security/sign-out-others").status_code == 303
    assert not reaches(other, world.acme)
    assert reaches(mine, world.acme)
    # Signing in again works, under the new version.
    login(other, "ada@example.test")
    assert reaches(other, world.acme)


# --- the inactivity timeout ---------------------------------------------------------------

def test_signed_out_after_thirty_minutes_without_a_request(client, world):
    login(client, "ada@example.test")
    assert reaches(client, world.acme)
    clock.freeze(T0 + timedelta(minutes=30, seconds=1))
    response = client.get(home(world.acme))
    assert response.status_code == 302
    assert login_location(response) == ("/login", home(world.acme))
    assert flash("info", IDLE) in body(client.get("/login"))
    assert not reaches(client, world.acme)


def test_still_signed_in_at_exactly_thirty_minutes(client, world):
    login(client, "ada@example.test")
    clock.freeze(T0 + timedelta(minutes=30))
    assert reaches(client, world.acme)
    # That request counts as activity: the timer starts again from it.
    clock.freeze(T0 + timedelta(minutes=55))
    assert reaches(client, world.acme)


def test_an_idle_partial_request_gets_401_and_hx_redirect(client, world):
    sign_in_as(client, world.ada)
    clock.freeze(T0 + timedelta(minutes=31))
    calls = f"/accounts/{world.acme.id}/calls/"
    response = client.get(calls, headers=HX)
    assert response.status_code == 401
    assert login_location(response) == ("/login", calls)
    assert not reaches(client, world.acme)


def test_the_idle_timeout_follows_the_app_config(client, app, world):
    app.config["SESSION_IDLE_TIMEOUT"] = timedelta(minutes=5)
    sign_in_as(client, world.ada)
    clock.freeze(T0 + timedelta(minutes=5, seconds=1))
    response = client.get(home(world.acme))
    assert login_location(response)[0] == "/login"
    assert "signed out after 5 minutes" in body(client.get("/login"))


# --- the password again before payment methods and closing --------------------------------

NEW_CARD = "/accounts/{}/billing/payment-methods/new-card"


def target(response) -> tuple[str, str | None]:
    """(path, next) of a redirect."""
    parts = urlsplit(response.headers.get("HX-Redirect") or response.location)
    return parts.path, parse_qs(parts.query).get("next", [None])[0]


def confirm_location(next_url: str) -> tuple[str, str]:
    return "/security/confirm-password", next_url


def test_an_old_sign_in_gives_the_password_again_for_a_new_card(client, session, world):
    sign_in_as(client, world.ada)
    token(client)
    clock.freeze(T0 + timedelta(minutes=16))
    path = NEW_CARD.format(world.acme.id)
    response = client.get(path)
    assert response.status_code == 303
    assert target(response) == confirm_location(path)
    page = body(client.get(response.location))
    assert flash("info", REAUTH) in page
    assert f'name="next" value="{path}"' in page

    wrong = post(client, "/security/confirm-password", {"password": "wrong", "next": path})
    assert wrong.status_code == 422
    assert field_error("password", "That password is not correct.") in body(wrong)
    failed = attempts(session, succeeded=False)
    assert [(a.step, a.email) for a in failed] == [("reauth", "ada@example.test")]
    assert client.get(path).status_code == 303  # still asked

    right = post(client, "/security/confirm-password", {"password": f.PASSWORD,
                                                        "next": path})
    assert right.status_code == 303
    assert right.location == path
    assert client.get(path).status_code == 200
    added = post(client, path, card_form())  # issue 16: the processor's pm id
    assert added.status_code == 303
    assert session.scalar(select(func.count()).select_from(PaymentMethod)) == 1


def test_a_sign_in_exactly_fifteen_minutes_old_is_still_recent(client, world):
    sign_in_as(client, world.ada)
    clock.freeze(T0 + rules.REAUTH_AFTER)
    assert client.get(NEW_CARD.format(world.acme.id)).status_code == 200
    clock.freeze(T0 + rules.REAUTH_AFTER + timedelta(seconds=1))
    assert client.get(NEW_CARD.format(world.acme.id)).status_code == 303


def test_a_post_with_an_old_sign_in_adds_no_card(client, session, world):
    sign_in_as(client, world.ada)
    token(client)
    clock.freeze(T0 + timedelta(minutes=16))
    billing = f"/accounts/{world.acme.id}/billing/"
    response = post(client, NEW_CARD.format(world.acme.id), card_form(),
                    headers={"Referer": f"http://localhost{billing}"})
    assert response.status_code == 303
    assert target(response) == confirm_location(billing)
    assert session.scalar(select(func.count()).select_from(PaymentMethod)) == 0


def test_closing_with_an_old_sign_in_changes_nothing(client, session, world):
    f.member(session, world.rex, world.acme, Role.OWNER)  # only an owner closes (issue 15)
    session.commit()
    sign_in_as(client, world.rex)
    token(client)
    clock.freeze(T0 + timedelta(minutes=20))
    close = f"/accounts/{world.acme.id}/close"
    response = post(client, close, {"confirm": "yes"},
                    headers={"Referer": f"http://localhost{close}"})
    assert response.status_code == 303
    assert target(response) == confirm_location(close)
    session.expire_all()
    assert world.acme.status == AccountStatus.ACTIVE
    assert target(client.get(close)) == confirm_location(close)

    back = post(client, "/security/confirm-password", {"password": f.PASSWORD,
                                                       "next": close})
    assert back.location == close
    assert client.get(close).status_code == 200
    assert post(client, close, {"confirm": "yes"}).status_code == 303
    session.expire_all()
    assert world.acme.status == AccountStatus.CANCELED


def test_the_agency_cancel_views_ask_for_the_password_too(client, session, world):
    agency = f.agency(session, "Northwind Agency", owner=world.ada)
    session.commit()
    sign_in_as(client, world.ada)
    clock.freeze(T0 + timedelta(minutes=16))
    for path in ("parent/cancel",):
        response = client.get(f"/accounts/{agency.id}/{path}")
        assert response.status_code == 303
        assert response.location.startswith("/security/confirm-password?next=")


def test_confirm_password_does_not_redirect_off_site(client, world):
    sign_in_as(client, world.ada)
    response = post(client, "/security/confirm-password", {"password": f.PASSWORD,
                                                           "next": "//evil.test/"})
    assert response.status_code == 303
    assert response.location == "/"


def test_wrong_passwords_again_count_toward_the_throttle(client, world):
    sign_in_as(client, world.ada)
    for _ in range(rules.SIGNIN_MAX_FAILURES_PER_EMAIL):
        assert post(client, "/security/confirm-password",
                    {"password": "wrong"}).status_code == 422
    response = post(client, "/security/confirm-password", {"password": f.PASSWORD})
    assert response.status_code == 303
    assert response.location == "/login"
    assert not reaches(client, world.acme)


# --- recent sign-ins ------------------------------------------------------------------------

def test_the_recent_sign_ins_table_lists_the_attempts(client, world):
    login(client, "pat@example.test", "wrong")
    clock.freeze(T0 + timedelta(seconds=5))
    login(client, "pat@example.test")
    clock.freeze(T0 + timedelta(seconds=10))
    enter_code(client, wrong_code(T0))
    clock.freeze(T0 + STEP)
    enter_code(client, code_at(T0 + STEP))
    html = body(client.get("/security/"))
    assert 'data-testid="recent-signins"' in html
    rows = [r.cells[:4] for r in table_rows(html)]
    assert rows == [
        ["2026-11-23 12:00:30", "Authenticator code", "Succeeded", "127.0.0.1"],
        ["2026-11-23 12:00:10", "Code", "Failed", "127.0.0.1"],
        ["2026-11-23 12:00:05", "Password", "Succeeded", "127.0.0.1"],
        ["2026-11-23 12:00:00", "Password", "Failed", "127.0.0.1"],
    ]
    assert all(r.cells[4].startswith("Werkzeug") for r in table_rows(html))


def test_recent_sign_ins_show_only_the_users_own(client, world):
    login(client, "rex@example.test", "wrong")
    sign_in_as(client, world.ada)
    rows = table_rows(body(client.get("/security/")))
    assert [r.cells for r in rows] == [["No sign-ins recorded."]]


# --- CSRF and login -----------------------------------------------------------------------

@pytest.mark.parametrize("path,data", [
    ("/login/two-factor", {"code": "123456"}),
    ("/security/two-factor", {"code": "123456"}),
    ("/security/two-factor/off", {"password": f.PASSWORD}),
    ("/security/recovery-codes", {"password": f.PASSWORD}),
    ("/security/sign-out-others", {}),
    ("/security/confirm-password", {"password": f.PASSWORD}),
    ("/accounts/{acme}/security/require-two-factor", {"require_two_factor": "on"}),
])
def test_posts_without_the_csrf_token_are_400(client, session, world, path, data):
    sign_in_as(client, world.pat)
    version = world.pat.session_version
    response = post(client, path.format(acme=world.acme.id), data, csrf=False)
    assert response.status_code == 400
    session.expire_all()
    assert world.pat.session_version == version
    assert world.pat.has_two_factor and not world.acme.require_two_factor


@pytest.mark.parametrize("path", ["/security/", "/security/two-factor",
                                  "/security/confirm-password"])
def test_security_pages_need_a_sign_in(client, world, path):
    response = client.get(path)
    assert response.status_code == 302
    assert login_location(response) == ("/login", path)
    partial = client.get(path, headers=HX)
    assert partial.status_code == 401
    assert login_location(partial) == ("/login", path)


def test_the_account_security_overview(client, world):
    sign_in_as(client, world.vic)
    html = body(client.get(f"/accounts/{world.acme.id}/security/"))
    assert "Account Security Features" in html
    assert "Not required on this account." in html
    assert 'name="require_two_factor"' not in html  # not an admin
    assert client.get(f"/accounts/{world.rival.id}/security/").status_code == 404


# --- review findings: odd states end in a clear page, never a 500 ----------------------------

def test_confirming_a_setup_that_is_not_in_progress_starts_one(client, session, world):
    """A stale setup tab (two-factor turned off elsewhere): once a 500 in drawing the QR
    code of no key; now back to the setup page with a fresh key."""
    sign_in_as(client, world.ada)
    response = post(client, "/security/two-factor", {"code": "123456"})
    assert response.status_code == 303
    assert response.location.startswith("/security/two-factor")
    page = body(client.get(response.location))
    assert "Start again: scan a new QR code." in page
    assert len(shown_secret(page)) == 32


@pytest.mark.parametrize("pending", [
    "junk", [1, 2], {"uid": "abc", "v": 1, "at": 0.0}, {"uid": {"x": 1}, "v": 1, "at": 0.0},
    {"uid": 10**30, "v": 1, "at": 0.0}, {"uid": 1, "v": 1, "at": "yesterday"},
])
def test_a_pending_sign_in_that_is_not_ours_starts_over(client, world, pending):
    """Only a forged cookie holds these (the session is signed), but they must not 500."""
    with client.session_transaction() as s:
        s["two_factor_pending"] = pending
    response = client.get("/login/two-factor")
    assert response.status_code == 303 and response.location == "/login"


@pytest.mark.parametrize("key,value,expected", [
    ("seen_at", "abc", "/login"),  # not a time we wrote: signed out
    ("auth_at", "abc", "/security/confirm-password"),  # not recent: asked again
])
def test_session_times_that_are_not_numbers_are_treated_safely(client, world, key, value,
                                                              expected):
    sign_in_as(client, world.ada)
    with client.session_transaction() as s:
        s[key] = value
    response = client.get(f"/accounts/{world.acme.id}/billing/payment-methods/new-card")
    assert response.status_code in (302, 303)
    assert response.location.startswith(expected)


@pytest.mark.parametrize("path", ["/security/two-factor", "/security/two-factor/off",
                                  "/security/recovery-codes", "/security/sign-out-others",
                                  "/security/confirm-password"])
def test_security_posts_need_a_sign_in(client, world, path):
    response = post(client, path, {"password": f.PASSWORD, "code": "123456"})
    assert response.status_code == 302 and response.location.startswith("/login")


def test_another_tenants_admin_cannot_require_two_factor(client, session, world):
    enable(session, world.rex, secret=SECRET)
    session.commit()
    sign_in_as(client, world.rex)
    response = post(client, f"/accounts/{world.acme.id}/security/require-two-factor",
                    {"require_two_factor": "on"})
    assert response.status_code == 404
    session.expire_all()
    assert not world.acme.require_two_factor


# --- every password check is throttled with sign-in (issue 12) ------------------------------

PASSWORD_POSTS = ["/security/recovery-codes", "/security/two-factor/off",
                  "/security/confirm-password"]
TOO_MANY = "Too many sign-in attempts. Try again in 15 minutes."


@pytest.mark.parametrize("path", PASSWORD_POSTS)
def test_wrong_passwords_inside_a_session_are_throttled_like_sign_in(client, session, world,
                                                                      path):
    """POST /security/recovery-codes took 30 wrong passwords in a row: each is now a failed
    attempt counted with sign-in's, and past the limit the session ends (even the right
    password is refused), as the sign-in form would refuse it."""
    sign_in_as(client, world.pat)
    for _ in range(rules.SIGNIN_MAX_FAILURES_PER_EMAIL):
        response = post(client, path, {"password": "wrong"})
        assert response.status_code == 422
        assert field_error("password", "That password is not correct.") in body(response)
    response = post(client, path, {"password": f.PASSWORD})
    assert (response.status_code, response.location) == (303, "/login")
    assert flash("error", TOO_MANY) in body(client.get("/login"))
    assert not reaches(client, world.acme)
    session.expire_all()
    assert world.pat.has_two_factor  # nothing was changed
    assert security.recovery_codes_left(session, world.pat) == 10
    assert [(a.step, a.succeeded) for a in attempts(session, email="pat@example.test")] == [
        ("reauth", False)] * rules.SIGNIN_MAX_FAILURES_PER_EMAIL
    # and the sign-in form counts them too
    response = login(client, "pat@example.test")
    assert response.status_code == 429
    assert shown(TOO_MANY) in body(response)


def test_password_checks_and_sign_in_share_one_count(client, app, world):
    """Two wrong at the sign-in form, then wrong ones in a session: the limit is reached
    across all of them."""
    for _ in range(2):
        assert login(app.test_client(), "pat@example.test", "wrong").status_code == 422
    sign_in_as(client, world.pat)
    for path in PASSWORD_POSTS:
        assert post(client, path, {"password": "wrong"}).status_code == 422
    response = post(client, "/security/recovery-codes", {"password": f.PASSWORD})
    assert (response.status_code, response.location) == (303, "/login")


# --- showing the setup page changes nothing (issue 12) --------------------------------------

def test_opening_the_setup_page_writes_nothing(client, session, world):
    """The first GET /security/two-factor used to write a pending secret on the user: a GET
    changes nothing now; the secret being set up lives in the signed session (sealed) until
    a code from it is confirmed."""
    from portal.models import Version

    sign_in_as(client, world.vic)
    versions = session.scalar(select(func.count()).select_from(Version))
    first = shown_secret(body(client.get("/security/two-factor")))
    again = shown_secret(body(client.get("/security/two-factor")))
    assert first == again  # the same key while the setup goes on (the app scanned it)
    session.expire_all()
    assert world.vic.totp_secret is None and not world.vic.has_two_factor
    assert session.scalar(select(func.count()).select_from(Version)) == versions
    with client.session_transaction() as s:
        assert first not in repr(dict(s))  # sealed, not in clear in the cookie
    done = post(client, "/security/two-factor", {"code": code_at(T0, first)})
    assert done.status_code == 200
    session.expire_all()
    assert world.vic.has_two_factor and security.secret_of(world.vic) == first
    with client.session_transaction() as s:
        assert "two_factor_setup" not in s


def test_another_session_gets_its_own_key_and_a_stale_one_starts_over(client, app, world):
    sign_in_as(client, world.vic)
    mine = shown_secret(body(client.get("/security/two-factor")))
    other = sign_in_as(app.test_client(), world.vic)
    theirs = shown_secret(body(other.get("/security/two-factor")))
    assert theirs != mine
    # a code from the other session's key does not set up this one
    response = post(client, "/security/two-factor", {"code": code_at(T0, theirs)})
    assert response.status_code == 422
    assert shown_secret(body(response)) == mine
    assert post(client, "/security/two-factor",
                {"code": code_at(T0, mine)}).status_code == 200
