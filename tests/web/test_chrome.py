"""Every page whole or as its htmx fragment, dark mode, CSRF and the error pages."""

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from portal.extensions import db
from portal.models import User
from tests import factories as f
from tests.conftest import CSRF_RE, HX, csrf_token
from tests.web.conftest import sign_in_as
from tests.web.pages import NOT_FOUND, assert_fragment, assert_full_page, body, shown

BOOSTED = {**HX, "HX-Boosted": "true"}
# htmx sends both headers when the back button misses its history cache
HISTORY_RESTORE = {**HX, "HX-History-Restore-Request": "true"}


@pytest.fixture
def world(session):
    owner = f.user(session, email="owner@example.test")
    agency = f.agency(session, "Northwind Agency", owner=owner)
    sub = f.sub(session, agency, "Bayside Dental")
    f.number(session, sub, label="Main line")
    f.call(session, sub, datetime(2026, 11, 20, 9, 30, tzinfo=UTC), caller_name="Ada Caller")
    session.commit()
    return {"owner": owner, "agency": agency, "sub": sub}


# (path, root element of the block an htmx request gets, or None: the page has no block)
ACCOUNT_PAGES = [
    ("/accounts/{agency}/", None),
    ("/accounts/{agency}/sub-accounts", '<div id="results">'),
    ("/accounts/{sub}/", None),
    ("/accounts/{sub}/calls/", '<div id="results">'),
    ("/accounts/{sub}/numbers/", None),
]


def _path(template, world):
    return template.format(agency=world["agency"].id, sub=world["sub"].id)


@pytest.mark.parametrize("template,root", ACCOUNT_PAGES)
def test_account_pages_full_page(client, world, template, root):
    sign_in_as(client, world["owner"])
    response = client.get(_path(template, world))
    assert response.status_code == 200
    html = assert_full_page(response)
    assert 'aria-current="page"' in html


@pytest.mark.parametrize("template,root", [p for p in ACCOUNT_PAGES if p[1]])
def test_account_pages_htmx_fragment(client, world, template, root):
    sign_in_as(client, world["owner"])
    response = client.get(_path(template, world), headers=HX)
    assert response.status_code == 200
    assert_fragment(response, root)


@pytest.mark.parametrize("template,root", [p for p in ACCOUNT_PAGES if not p[1]])
def test_pages_without_a_block_answer_htmx_with_the_whole_page(client, world, template, root):
    sign_in_as(client, world["owner"])
    response = client.get(_path(template, world), headers=HX)
    assert response.status_code == 200
    assert_full_page(response)


@pytest.mark.parametrize("headers", [BOOSTED, HISTORY_RESTORE], ids=["boosted", "history"])
@pytest.mark.parametrize("template,root", [p for p in ACCOUNT_PAGES if p[1]])
def test_boosted_and_history_restore_requests_get_the_full_page(client, world, template, root,
                                                                 headers):
    sign_in_as(client, world["owner"])
    response = client.get(_path(template, world), headers=headers)
    assert response.status_code == 200
    html = assert_full_page(response)
    assert root in html


def test_switcher_full_page_and_fragment(client, world):
    sign_in_as(client, world["owner"])
    full = client.get("/switch?q=")
    assert full.status_code == 200
    html = assert_full_page(full, nav=False)  # not inside an account: no account nav
    assert "<h1>Switch account</h1>" in html
    fragment = assert_fragment(client.get("/switch?q=", headers=HX), '<ul class="switch-list"')
    assert "Bayside Dental" in fragment
    assert_full_page(client.get("/switch?q=", headers=BOOSTED), nav=False)
    assert_full_page(client.get("/switch?q=", headers=HISTORY_RESTORE), nav=False)


def test_login_page_full_and_fragment(client):
    html = assert_full_page(client.get("/login"), nav=False)
    assert "<h1>Sign in</h1>" in html
    assert "Sign out" not in html
    fragment = assert_fragment(client.get("/login", headers=HX), '<form id="login-form"')
    assert 'name="csrf_token"' in fragment
    assert_full_page(client.get("/login", headers=BOOSTED), nav=False)
    assert_full_page(client.get("/login", headers=HISTORY_RESTORE), nav=False)


def test_home_without_an_account(client, session):
    u = f.user(session, email="lonely@example.test")
    session.commit()
    sign_in_as(client, u)
    response = client.get("/")
    assert response.status_code == 200
    html = assert_full_page(response, nav=False)
    assert "<h1>No account yet</h1>" in html
    assert "lonely@example.test" in html


def test_home_goes_to_the_last_account_used(client, world):
    sign_in_as(client, world["owner"])
    assert client.get("/").location == f"/accounts/{world['agency'].id}/"  # agency first
    client.get(f"/accounts/{world['sub'].id}/numbers/")
    assert client.get("/").location == f"/accounts/{world['sub'].id}/"


def test_full_page_shows_who_is_signed_in_and_the_current_account(client, world):
    sign_in_as(client, world["owner"])
    html = body(client.get(f"/accounts/{world['sub'].id}/"))
    assert 'title="Signed in as owner@example.test"' in html
    assert 'data-testid="current-account">Bayside Dental<' in html
    assert f'href="/accounts/{world["sub"].id}/calls/"' in html


# --- dark mode ----------------------------------------------------------------------------

def _dark_mode(session, user) -> bool:
    session.rollback()  # read what is committed, nothing a request left unsaved
    return session.get(User, user.id).dark_mode


def test_dark_mode_is_set_and_shown(client, session, world):
    owner = world["owner"]
    sign_in_as(client, owner)
    page = f"/accounts/{world['sub'].id}/numbers/"
    assert 'data-theme="light"' in body(client.get(page))
    token = csrf_token(client, page)
    response = client.post("/preferences/dark-mode",
                           data={"dark_mode": "on", "next": page, "csrf_token": token})
    assert response.status_code == 303
    assert response.location == page
    assert _dark_mode(session, owner) is True
    html = body(client.get(page))
    assert '<html lang="en" data-theme="dark">' in html
    assert "Light mode</button>" in html

    client.post("/preferences/dark-mode",
                data={"dark_mode": "off", "next": page, "csrf_token": token})
    assert _dark_mode(session, owner) is False
    assert 'data-theme="light"' in body(client.get(page))


def test_dark_mode_is_per_user(app, client, session, world):
    other = f.user(session, email="other@example.test")
    f.member(session, other, world["sub"])
    session.commit()
    sign_in_as(client, world["owner"])
    client.post("/preferences/dark-mode",
                data={"dark_mode": "on", "csrf_token": csrf_token(client, "/")})
    second = sign_in_as(app.test_client(), other)
    page = f"/accounts/{world['sub'].id}/"
    assert 'data-theme="light"' in body(second.get(page))
    assert 'data-theme="dark"' in body(client.get(page))
    assert _dark_mode(session, other) is False


def test_dark_mode_ignores_a_next_on_another_site(client, world):
    sign_in_as(client, world["owner"])
    response = client.post("/preferences/dark-mode", data={
        "dark_mode": "on", "next": "//evil.example/", "csrf_token": csrf_token(client, "/")})
    assert response.status_code == 303
    assert response.location == "/"


# --- CSRF ---------------------------------------------------------------------------------

def test_post_without_csrf_token_is_refused_and_changes_nothing(client, session, world):
    sign_in_as(client, world["owner"])
    client.get("/")  # a session with a CSRF token exists
    response = client.post("/preferences/dark-mode", data={"dark_mode": "on"})
    assert response.status_code == 400
    html = assert_full_page(response, nav=False)
    assert "<h1>Your session expired</h1>" in html
    assert _dark_mode(session, world["owner"]) is False


def test_post_with_a_wrong_csrf_token_is_refused(client, session, world):
    sign_in_as(client, world["owner"])
    client.get("/")
    response = client.post("/preferences/dark-mode",
                           data={"dark_mode": "on", "csrf_token": "forged"})
    assert response.status_code == 400
    assert "Your session expired" in body(response)
    assert _dark_mode(session, world["owner"]) is False


def test_csrf_token_in_the_htmx_header_is_accepted(client, session, world):
    sign_in_as(client, world["owner"])
    token = csrf_token(client, "/")
    page = f"/accounts/{world['agency'].id}/"
    response = client.post("/preferences/dark-mode", data={"dark_mode": "on", "next": page},
                           headers={**HX, "X-CSRFToken": token})
    assert response.status_code == 204  # a partial request is sent on with HX-Redirect
    assert response.headers["HX-Redirect"] == page
    assert _dark_mode(session, world["owner"]) is True


def test_the_page_puts_the_csrf_token_in_htmx_headers(client, world):
    """The body's hx-headers carry the page's CSRF token (the same one as its forms: a
    token is signed with the second it was made, so it is compared within one page), and
    htmx's header alone passes the CSRF check."""
    sign_in_as(client, world["owner"])
    html = body(client.get(f"/accounts/{world['agency'].id}/"))
    header = re.search(r"""hx-headers='\{"X-CSRFToken": "([^"]+)"\}'""", html)
    assert header, "no hx-headers with the CSRF token"
    assert CSRF_RE.search(html).group(1) == header.group(1)
    response = client.post("/logout", headers={"X-CSRFToken": header.group(1)})
    assert response.status_code == 303


# --- error pages --------------------------------------------------------------------------

def test_unknown_url_is_the_404_page(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    html = assert_full_page(response, nav=False)
    assert "<h1>Page not found</h1>" in html
    assert NOT_FOUND in html
    assert "Traceback" not in html
    assert "NotFound" not in html


def test_unknown_url_as_htmx_is_a_message_in_place(client, world):
    sign_in_as(client, world["owner"])
    response = client.get("/no/such/page", headers=HX)
    assert response.status_code == 404
    assert response.headers["HX-Retarget"] == "#messages"
    html = assert_fragment(response, '<p class="flash flash-error" role="alert"')
    assert "<strong>Page not found.</strong>" in html and "<h1" not in html


def test_wrong_method_is_the_405_page(client):
    response = client.get("/preferences/dark-mode")
    assert response.status_code == 405
    assert "<h1>Not allowed</h1>" in assert_full_page(response, nav=False)


def _crashing_app(app):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.config["TESTING"] = False

    @app.get("/test-only/boom")
    def boom():
        raise RuntimeError("secret internal detail")

    @app.get("/test-only/broken-sql")
    def broken_sql():
        db.session.execute(text("SELECT * FROM no_such_table_here"))
        return "unreachable"


@pytest.mark.own_app  # adds a test-only route
def test_unhandled_error_is_the_500_page_without_details(app, client, caplog):
    _crashing_app(app)
    response = client.get("/test-only/boom")
    assert response.status_code == 500
    html = assert_full_page(response, nav=False)
    assert "<h1>Something went wrong</h1>" in html
    assert shown("We couldn't finish that. Nothing was changed; please try again.") in html
    for leak in ("secret internal detail", "RuntimeError", "Traceback", "boom"):
        assert leak not in html
    assert "secret internal detail" in caplog.text  # logged for us, not shown to the user


@pytest.mark.own_app  # adds a test-only route
def test_unhandled_error_as_htmx_is_a_message_in_place(app, client):
    """Issue 14: an htmx request's error is a message retargeted to the page's message
    region, never the error page swapped into the section it aimed at."""
    _crashing_app(app)
    response = client.get("/test-only/boom", headers=HX)
    assert response.status_code == 500
    assert response.headers["HX-Retarget"] == "#messages"
    assert response.headers["HX-Reswap"] == "innerHTML"
    html = assert_fragment(response, '<p class="flash flash-error" role="alert"')
    assert "<strong>Something went wrong.</strong>" in html
    assert shown("We couldn't finish that. Nothing was changed; please try again.") in html
    assert "<h1" not in html and "error-page" not in html
    assert "secret internal detail" not in html


@pytest.mark.own_app  # adds a test-only route
def test_database_error_rolls_back_and_still_renders_for_a_signed_in_user(app, client, world):
    _crashing_app(app)
    sign_in_as(client, world["owner"])
    response = client.get("/test-only/broken-sql")
    assert response.status_code == 500
    html = body(response)
    assert "<h1>Something went wrong</h1>" in html
    assert 'title="Signed in as owner@example.test"' in html
    assert "no_such_table_here" not in html
    # the session works again afterwards
    assert client.get(f"/accounts/{world['agency'].id}/").status_code == 200
