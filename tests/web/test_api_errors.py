"""The JSON API (/api/...) answers every error as RFC 9457 problem details
(application/problem+json), never an HTML page: errors of its views, of routing (unknown path,
wrong method), of the request's size, of domain rules, and crashes. The pages keep theirs."""

import io
import logging

import pytest
from werkzeug.exceptions import TooManyRequests

from portal import clock, logconfig
from portal.errors import TooManyAttempts
from portal.services import usage
from tests import factories as f
from tests.web.api_problems import PROBLEM_JSON, problem

AUTH = {"Authorization": "Bearer test-usage-token"}
GOOD = {"idempotency_key": "k-1", "items": {"minutes": 5}}


@pytest.fixture
def account(session):
    from datetime import UTC, datetime

    clock.freeze(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    account = f.standalone(session, "Harbor Dental")
    session.commit()
    return account


def usage_url(account_id):
    return f"/api/accounts/{account_id}/usage"


def assert_problem(response, status, detail, errors=None):
    assert response.status_code == status
    assert response.mimetype == PROBLEM_JSON
    text = response.get_data(as_text=True)
    assert "<html" not in text.lower() and "<!doctype" not in text.lower()
    assert response.get_json() == problem(status, detail, errors)
    return response


def _crash_instead_of(monkeypatch, app):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.config["TESTING"] = False

    def boom(*_args, **_kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(usage, "post", boom)


# --- each status, raised where it really arises ---------------------------------------------

def test_400_for_a_body_that_is_not_a_json_object(client, account):
    response = client.post(usage_url(account.id), headers=AUTH, data="{not json",
                           content_type="application/json")
    assert_problem(response, 400, 'Send a JSON object: {"idempotency_key": ..., "items": '
                                  '{"minutes": 12, ...}}.')


def test_401_without_the_bearer_token(client, account):
    response = client.post(usage_url(account.id), json=GOOD)
    assert_problem(response, 401, "A valid bearer token is required.")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="usage"'


@pytest.mark.parametrize("path", [
    "/api/nowhere",
    "/api/",
    "/api",
    "/api/accounts/1/usage/extra",
    f"/api/accounts/{2**31}/usage",  # past the largest account id: no route matches
])
def test_404_for_an_unknown_api_path(client, account, path):
    response = client.post(path, headers=AUTH, json=GOOD)
    assert_problem(response, 404, "There is no API endpoint at this address.")
    assert client.get(path, headers=AUTH).mimetype == PROBLEM_JSON


def test_404_for_an_unknown_account(client, account):
    assert_problem(client.post(usage_url(account.id + 1000), headers=AUTH, json=GOOD),
                   404, "No such account.")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_405_for_a_method_the_route_does_not_take(client, account, method):
    response = client.open(usage_url(account.id), method=method, headers=AUTH)
    assert_problem(response, 405, f"{method} is not allowed here; use POST.")
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}


def test_413_for_a_body_over_the_limit(app, client, account, session):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = '{"idempotency_key": "k", "pad": "' + "x" * limit + '"}'
    response = client.post(usage_url(account.id), headers=AUTH, data=body,
                           content_type="application/json")
    assert_problem(response, 413, f"The request body is over the limit of {limit:,} bytes.")


def test_422_with_the_field_errors(client, account):
    response = client.post(usage_url(account.id), headers=AUTH,
                           json={"idempotency_key": "k", "items": {"minutes": -1}})
    assert response.status_code == 422
    data = assert_problem(response, 422, "The usage was not posted.",
                          response.get_json()["errors"]).get_json()
    assert set(data["errors"]) == {"minutes"}


def test_422_for_a_call_with_bad_fields(client, account):
    response = client.post(f"/api/accounts/{account.id}/calls", headers=AUTH,
                           json={"caller_number": "+14155550123", "called_number": "x",
                                 "started_at": "2026-11-23T10:00:00Z", "duration_seconds": 5})
    assert_problem(response, 422, "The call was not recorded.",
                   {"called_number": "called_number must be an E.164 number like "
                                     "+14155550100."})


@pytest.mark.own_app  # adds a test-only route
def test_429_from_a_throttle_and_from_werkzeug(app, client):
    @app.get("/api/test-only/throttled")
    def throttled():
        raise TooManyAttempts("Too many attempts. Try again in 10 minutes.")

    @app.get("/api/test-only/limited")
    def limited():
        raise TooManyRequests(retry_after=60)

    assert_problem(client.get("/api/test-only/throttled"), 429,
                   "Too many attempts. Try again in 10 minutes.")
    response = assert_problem(client.get("/api/test-only/limited"), 429,
                              "Too many requests: wait a little and try again.")
    assert response.headers["Retry-After"] == "60"


def test_500_from_an_exception_inside_a_view_is_logged_not_shown(app, client, account,
                                                                  monkeypatch):
    _crash_instead_of(monkeypatch, app)
    stream = io.StringIO()
    logconfig.handler().setStream(stream)
    response = client.post(usage_url(account.id), headers=AUTH, json=GOOD)
    assert_problem(response, 500, "The server could not finish this request. The error was "
                                  "logged under this response's X-Request-ID; quote it if you "
                                  "ask for help.")
    assert "secret internal detail" not in response.get_data(as_text=True)
    request_id = response.headers["X-Request-ID"]
    logged = [line for line in stream.getvalue().splitlines() if "secret internal detail" in line]
    assert logged and all(f"request_id={request_id} " in line for line in logged)


@pytest.mark.own_app  # adds a test-only route
def test_a_domain_error_raised_in_the_api_is_a_problem(app, client):
    from portal.errors import ValidationFailed

    @app.get("/api/test-only/invalid")
    def invalid():
        raise ValidationFailed({"items": "Give at least one item."})

    assert_problem(client.get("/api/test-only/invalid"), 422, "Give at least one item.",
                   {"items": "Give at least one item."})


# --- the pages are unchanged -----------------------------------------------------------------

@pytest.mark.parametrize("path", ["/nowhere", "/apis", "/api-docs"])
def test_pages_outside_the_api_keep_their_html_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "<h1>Page not found</h1>" in response.get_data(as_text=True)


def test_a_page_over_the_size_limit_is_still_an_html_413(app, client):
    response = client.post("/login", data={"email": "x" * app.config["MAX_CONTENT_LENGTH"]})
    assert response.status_code == 413
    assert response.mimetype == "text/html"


@pytest.mark.own_app  # adds a test-only route
def test_an_unhandled_page_error_is_still_the_html_500(app, client, caplog):
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/test-only/boom")
    def boom():
        raise RuntimeError("secret internal detail")

    with caplog.at_level(logging.ERROR):
        response = client.get("/test-only/boom")
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    assert "<h1>Something went wrong</h1>" in response.get_data(as_text=True)
