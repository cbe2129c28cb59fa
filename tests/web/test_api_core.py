"""/api/v1's core: GET /key (who am I), Idempotency-Key (replay, 422 on another request,
409 while running, 4xx kept, 5xx forgotten, two at once run once), the rate limits and their
headers (429 with Retry-After, per key and bucket, a new minute starts again), the jobs'
api-purge, the document (tags, the Idempotency-Key parameter on every write) and the
reference page (vendored ReDoc, no CDN)."""

import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from flask import Blueprint, jsonify, request
from sqlalchemy import func, select

from portal import clock, jobs
from portal.blueprints.api_v1 import auth
from portal.extensions import csrf, db
from portal.models import ApiIdempotency, ApiRateWindow
from tests import factories as f
from tests.threads import at_once
from tests.web.conftest import bearer

NOW = datetime(2026, 12, 3, 12, 0, 10, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clock():
    clock.freeze(NOW)
    yield
    clock.freeze(None)




@pytest.fixture
def world(session):
    olive = f.user(session, "olive@example.test", name="Olive Owner")
    agency = f.agency(session, "Harbor Agency", owner=olive)
    other = f.standalone(session, "Other Co")
    session.commit()
    return {"olive": olive, "agency": agency, "other": other,
            "key": f.api_key(session, agency, olive),
            "other_key": f.api_key(session, other)}


class Probe:
    """A write endpoint of a test's own app (api_v1_probe): counts its runs, answers 201 with
    a Location, or 422/503 when the body asks, or raises; sleeps when asked (the race)."""

    def __init__(self):
        self.runs = 0
        self.lock = threading.Lock()

    def install(self, app):
        bp = Blueprint("api_v1_probe", __name__, url_prefix="/api/v1")

        @bp.post("/probe")
        def probe():
            body = request.get_json(silent=True) or {}
            with self.lock:
                self.runs += 1
                run = self.runs
            time.sleep(float(body.get("sleep", 0)))
            if body.get("answer") == "crash":
                raise RuntimeError("probe crashed")
            status = int(body.get("status", 201))
            return jsonify({"run": run, "echo": body}), status, {"Location": f"/probe/{run}"}

        @bp.post("/probe-usage")
        @auth.requires("metering")
        def probe_usage():
            return jsonify({"ok": True}), 200

        csrf.exempt(bp)
        app.register_blueprint(bp)
        return self


# --------------------------------------------------------------- who am I


def test_get_key_names_the_calling_key_its_account_scopes_and_role(client, session, world):
    response = client.get("/api/v1/key", headers=bearer(world["key"]))
    assert response.status_code == 200
    data = response.get_json()
    assert data["name"].startswith("Test key")
    assert data["scopes"] == ["read", "write", "metering"]
    assert data["role"] == "owner"
    assert data["hint"].startswith("apk_") and data["hint"].endswith("_…")
    assert world["key"].split("_")[2] not in json.dumps(data)  # never the secret
    assert data["account"]["id"] == world["agency"].id
    assert data["account"]["name"] == "Harbor Agency"


def test_no_key_or_a_revoked_key_is_401_problem(client, session, world):
    assert client.get("/api/v1/key").status_code == 401
    from portal.services import api_keys

    key = api_keys.for_account(session, world["agency"])[0]
    api_keys.revoke(session, world["agency"], key.id, world["olive"])
    session.commit()
    response = client.get("/api/v1/key", headers=bearer(world["key"]))
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --------------------------------------------------------------- Idempotency-Key


@pytest.mark.own_app
def test_the_same_key_and_body_replays_the_first_answer(app, client, world):
    probe = Probe().install(app)
    headers = bearer(world["key"], **{"Idempotency-Key": "order-1"})
    first = client.post("/api/v1/probe", json={"amount": 5}, headers=headers)
    again = client.post("/api/v1/probe", json={"amount": 5}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert probe.runs == 1
    assert again.get_json() == first.get_json() == {"run": 1, "echo": {"amount": 5}}
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Location"] == first.headers["Location"] == "/probe/1"
    assert again.content_type == first.content_type == "application/json"
    # without the header, or with another key, it runs again
    assert client.post("/api/v1/probe", json={"amount": 5},
                       headers=bearer(world["key"])).get_json()["run"] == 2
    other = client.post("/api/v1/probe", json={"amount": 5},
                        headers=bearer(world["key"], **{"Idempotency-Key": "order-2"}))
    assert other.get_json()["run"] == 3 and probe.runs == 3


@pytest.mark.own_app
def test_another_api_key_may_use_the_same_idempotency_key(app, client, world):
    probe = Probe().install(app)
    for token in (world["key"], world["other_key"]):
        response = client.post("/api/v1/probe", json={},
                               headers=bearer(token, **{"Idempotency-Key": "same"}))
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response.headers
    assert probe.runs == 2


@pytest.mark.own_app
def test_the_same_key_with_another_body_path_or_query_is_422(app, client, world):
    probe = Probe().install(app)
    headers = bearer(world["key"], **{"Idempotency-Key": "k-1"})
    assert client.post("/api/v1/probe", json={"amount": 5}, headers=headers).status_code == 201
    for path, body in (("/api/v1/probe", {"amount": 6}), ("/api/v1/probe?x=1", {"amount": 5}),
                       ("/api/v1/probe-usage", {"amount": 5})):
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 422, path
        assert response.content_type == "application/problem+json"
        problem = response.get_json()
        assert problem["type"].endswith("/validation")
        assert "Idempotency-Key" in problem["errors"]
    assert probe.runs == 1


@pytest.mark.own_app
@pytest.mark.parametrize("value", ["", "x" * 256, "naïve", "tab\tkey", "a b c"])
def test_an_idempotency_key_not_1_to_255_visible_ascii_is_422(app, client, world, value):
    probe = Probe().install(app)
    response = client.post("/api/v1/probe", json={},
                           headers=bearer(world["key"], **{"Idempotency-Key": value}))
    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["errors"]
    assert probe.runs == 0


@pytest.mark.own_app
def test_the_same_key_and_body_with_another_content_type_is_another_request(app, client,
                                                                            world):
    """A body first sent as text/plain (refused: 415) and then as JSON with the same key is
    not the same request: 422 for the key, never a replay of the 415 forever."""
    from portal.models import Role

    probe = Probe().install(app)
    headers = bearer(world["key"], **{"Idempotency-Key": "ct"})
    body = '{"role": "admin", "email": "x@example.test"}'
    url = f"/api/v1/accounts/{world['agency'].id}/invitations"
    first = client.post(url, data=body, content_type="text/plain", headers=headers)
    assert first.status_code == 415 and first.mimetype == "application/problem+json"
    assert first.get_json()["type"].endswith("/unsupported-media-type")
    assert "Content-Type: application/json" in first.get_json()["detail"]
    again = client.post(url, data=body, content_type="application/json", headers=headers)
    assert again.status_code == 422 and "Idempotency-Key" in again.get_json()["errors"]
    fresh = client.post(url, data=body, content_type="application/json",
                        headers=bearer(world["key"], **{"Idempotency-Key": "ct-2"}))
    assert fresh.status_code == 201 and fresh.get_json()["role"] == Role.ADMIN.value
    assert probe.runs == 0


def test_json_nested_deeper_than_python_reads_is_a_400_problem(client, world):
    deep = "[" * 100_000 + "]" * 100_000
    for method, url in (("post", f"/api/v1/accounts/{world['agency'].id}/invitations"),
                        ("patch", f"/api/v1/accounts/{world['agency'].id}/users/1"),
                        ("post", f"/api/v1/accounts/{world['agency'].id}/payments")):
        response = getattr(client, method)(url, data=deep, content_type="application/json",
                                           headers=bearer(world["key"]))
        assert response.status_code == 400, (url, response.get_data(as_text=True)[:200])
        assert response.get_json()["detail"] == "The JSON body is nested too deeply to read."


@pytest.mark.own_app
def test_a_4xx_answer_is_kept_and_replayed_a_5xx_is_forgotten(app, client, session, world):
    probe = Probe().install(app)
    headers = bearer(world["key"], **{"Idempotency-Key": "bad"})
    assert client.post("/api/v1/probe", json={"status": 409}, headers=headers).status_code == 409
    again = client.post("/api/v1/probe", json={"status": 409}, headers=headers)
    assert again.status_code == 409 and again.headers["Idempotent-Replayed"] == "true"
    assert probe.runs == 1
    headers = bearer(world["key"], **{"Idempotency-Key": "flaky"})
    assert client.post("/api/v1/probe", json={"status": 503}, headers=headers).status_code == 503
    retry = client.post("/api/v1/probe", json={"status": 503}, headers=headers)
    assert retry.status_code == 503 and "Idempotent-Replayed" not in retry.headers
    assert probe.runs == 3
    with pytest.raises(RuntimeError):  # TESTING propagates the crash: the teardown forgets
        client.post("/api/v1/probe", json={"answer": "crash"},
                    headers=bearer(world["key"], **{"Idempotency-Key": "crash"}))
    session.expire_all()
    keys = set(session.scalars(select(ApiIdempotency.key)))
    assert keys == {"bad"}


@pytest.mark.own_app
def test_a_get_ignores_the_header(app, client, world):
    Probe().install(app)
    for _ in range(2):
        response = client.get("/api/v1/key",
                              headers=bearer(world["key"], **{"Idempotency-Key": "g"}))
        assert response.status_code == 200 and "Idempotent-Replayed" not in response.headers
    assert db.session.scalar(select(func.count()).select_from(ApiIdempotency)) == 0


@pytest.mark.own_app
def test_a_second_request_while_the_first_runs_is_409_and_two_at_once_run_once(
        app, world):
    probe = Probe().install(app)
    headers = bearer(world["key"], **{"Idempotency-Key": "race"})

    def send(_i):
        response = app.test_client().post("/api/v1/probe", json={"sleep": 0.5},
                                           headers=headers)
        return response.status_code, response.headers.get("Idempotent-Replayed"), \
            response.get_json()

    answers = at_once(2, send)
    assert probe.runs == 1
    statuses = sorted(status for status, _replayed, _body in answers)
    assert statuses == [201, 409], answers
    conflict = next(body for status, _r, body in answers if status == 409)
    assert "still running" in conflict["detail"]
    # once the first is done, the same request replays it
    replay = app.test_client().post("/api/v1/probe", json={"sleep": 0.5}, headers=headers)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert probe.runs == 1


@pytest.mark.own_app
def test_many_identical_requests_at_once_run_once(app, world):
    probe = Probe().install(app)
    headers = bearer(world["key"], **{"Idempotency-Key": "burst"})

    def send(_i):
        return app.test_client().post("/api/v1/probe", json={"n": 1},
                                      headers=headers).status_code

    statuses = at_once(6, send)
    assert probe.runs == 1
    assert set(statuses) <= {201, 409} and statuses.count(201) >= 1


def test_the_jobs_purge_old_answers_and_windows(app, session, world):
    key_id = session.scalar(select(func.min(ApiIdempotency.api_key_id)))  # none yet
    assert key_id is None
    from portal.models import ApiKey

    key = session.scalars(select(ApiKey)).first()
    old, fresh = NOW - timedelta(hours=25), NOW - timedelta(hours=23)
    session.add_all([
        ApiIdempotency(api_key_id=key.id, key="old", fingerprint="0" * 64, status=201,
                       created_at=old),
        ApiIdempotency(api_key_id=key.id, key="fresh", fingerprint="0" * 64, status=201,
                       created_at=fresh),
        ApiRateWindow(api_key_id=key.id, window_start=NOW - timedelta(minutes=61), count=3),
        ApiRateWindow(api_key_id=key.id, window_start=NOW - timedelta(minutes=1), count=3)])
    session.commit()
    job = {j.name: j for j in jobs.JOBS}["api-purge"]
    removed = job.run(session)
    assert removed == (1, 1)
    assert job.report(removed) == "api-purge: 1 idempotency answer(s), 1 rate window(s) removed"
    assert job.run(session) == (0, 0) and job.report((0, 0)) is None
    assert set(session.scalars(select(ApiIdempotency.key))) == {"fresh"}


# --------------------------------------------------------------- rate limits


def test_every_answer_has_ratelimit_headers_and_past_the_limit_is_429(app, client, world):
    app.config["API_RATE_LIMIT_PER_MINUTE"] = 3
    seen = []
    for _ in range(3):
        response = client.get("/api/v1/key", headers=bearer(world["key"]))
        assert response.status_code == 200
        seen.append(response.headers["RateLimit-Remaining"])
        assert response.headers["RateLimit-Limit"] == "3"
        assert response.headers["RateLimit-Reset"] == "50"  # 12:00:10 -> 12:01:00
    assert seen == ["2", "1", "0"]
    limited = client.get("/api/v1/key", headers=bearer(world["key"]))
    assert limited.status_code == 429
    assert limited.content_type == "application/problem+json"
    assert limited.get_json()["type"].endswith("/rate-limited")
    assert limited.headers["Retry-After"] == "50"
    assert limited.headers["RateLimit-Remaining"] == "0"
    # another key has its own count
    assert client.get("/api/v1/key", headers=bearer(world["other_key"])).status_code == 200
    # the next minute starts again
    clock.freeze(NOW + timedelta(seconds=55))
    again = client.get("/api/v1/key", headers=bearer(world["key"]))
    assert again.status_code == 200 and again.headers["RateLimit-Remaining"] == "2"
    assert again.headers["RateLimit-Reset"] == "55"


def test_a_problem_answer_counts_and_carries_the_headers(app, client, world):
    app.config["API_RATE_LIMIT_PER_MINUTE"] = 5
    response = client.get(f"/api/v1/accounts/{world['other'].id}", headers=bearer(world["key"]))
    assert response.status_code == 404
    assert response.headers["RateLimit-Remaining"] == "4"


def test_a_request_refused_for_its_scope_counts_and_carries_the_headers(app, client,
                                                                       session, world):
    app.config["API_RATE_LIMIT_PER_MINUTE"] = 2
    reader = f.api_key(session, world["agency"], world["olive"], scopes=("read",))
    url = f"/api/v1/accounts/{world['agency'].id}/pause-swapping"
    for remaining in ("1", "0"):
        response = client.post(url, json={"confirm": True}, headers=bearer(reader))
        assert response.status_code == 403
        assert response.headers["RateLimit-Remaining"] == remaining
    response = client.post(url, json={"confirm": True}, headers=bearer(reader))
    assert response.status_code == 429 and "Retry-After" in response.headers


@pytest.mark.own_app
def test_usage_counts_in_its_own_bucket_with_the_metering_limit(app, client, world):
    Probe().install(app)
    app.config["API_RATE_LIMIT_PER_MINUTE"] = 2
    app.config["API_METERING_RATE_LIMIT_PER_MINUTE"] = 4
    for remaining in ("3", "2", "1", "0"):
        response = client.post("/api/v1/probe-usage", json={}, headers=bearer(world["key"]))
        assert response.status_code == 200
        assert response.headers["RateLimit-Limit"] == "4"
        assert response.headers["RateLimit-Remaining"] == remaining
    assert client.post("/api/v1/probe-usage", json={},
                       headers=bearer(world["key"])).status_code == 429
    assert client.get("/api/v1/key", headers=bearer(world["key"])).status_code == 200


def test_requests_at_once_are_each_counted(app, world):
    app.config["API_RATE_LIMIT_PER_MINUTE"] = 1000

    def send(_i):
        return app.test_client().get("/api/v1/key", headers=bearer(world["key"])).status_code

    assert at_once(8, send) == [200] * 8
    with app.app_context():
        assert db.session.scalar(select(ApiRateWindow.count)) == 8


# --------------------------------------------------------------- the document and the page


def test_the_document_has_readable_tags_and_the_idempotency_key_on_every_write(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    tags = {tag["name"]: tag.get("description") for tag in document["tags"]}
    assert {"API key", "Accounts", "Payment methods", "Usage", "Webhooks"} <= set(tags)
    assert all(tags.values()), tags
    parameter = document["components"]["parameters"]["IdempotencyKey"]
    assert parameter["in"] == "header" and parameter["name"] == "Idempotency-Key"
    ref = {"$ref": "#/components/parameters/IdempotencyKey"}
    writes = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "head", "options", "parameters"):
                continue
            writes += 1
            assert ref in operation.get("parameters", []), (method, path)
            assert operation["tags"][0] in tags
    assert document["paths"]["/api/v1/key"]["get"]["tags"] == ["API key"]
    # the RateLimit headers on every answer, Retry-After on the errors
    assert set(document["components"]["headers"]) >= {
        "RateLimitLimit", "RateLimitRemaining", "RateLimitReset", "RetryAfter"}
    assert "Retry-After" in document["components"]["responses"]["DEFAULT_ERROR"]["headers"]
    assert "RateLimit-Remaining" in \
        document["paths"]["/api/v1/key"]["get"]["responses"]["200"]["headers"]


def test_the_reference_page_loads_redoc_from_our_static_files_only(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<redoc spec-url="/api/v1/openapi.json"' in page
    assert page.index("<main>") < page.index("<redoc") < page.index("</main>")  # a landmark
    assert "/static/vendor/redoc-2.5.4/redoc.standalone.js" in page
    assert "https://" not in page and "http://" not in page
    assert "<script>" not in page  # no inline script
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp
    assert "'unsafe-eval'" not in csp
    bundle = client.get("/static/vendor/redoc-2.5.4/redoc.standalone.js")
    assert bundle.status_code == 200 and len(bundle.get_data()) > 500_000
    bundle.close()
    # every other page keeps the strict policy
    assert "'unsafe-inline'" not in client.get("/login").headers["Content-Security-Policy"]


def test_the_document_is_valid_openapi_3_1(client):
    """openapi-spec-validator: the structure, every schema, and each default and example
    against its schema (a default outside its enum is an error)."""
    from openapi_spec_validator.validation import OpenAPIV31SpecValidator

    document = client.get("/api/v1/openapi.json").get_json()
    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message[:200]}"
              for error in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield method, path, operation


def test_every_operation_has_a_stable_id_a_one_line_summary_and_its_error_answers(client):
    """What a client generator needs: a unique operationId (not one made from the path), a
    one-line summary, and each error the shared checks can answer, as a problem+json
    response (401 key, 403 scope or role, 429 rate; 404 and 410 on an account's path; a
    write's 409/413/422, and 400/415 for a body)."""
    document = client.get("/api/v1/openapi.json").get_json()
    ids = []
    for method, path, operation in _operations(document):
        where = f"{method.upper()} {path}"
        ids.append(operation["operationId"])
        assert re.fullmatch(r"[a-z][A-Za-z]+", operation["operationId"]), where
        summary = operation["summary"]
        assert "\n" not in summary and len(summary) <= 80, where
        statuses = set(operation["responses"])
        expected = {"401", "403", "429"}
        if "{account_id}" in path:
            expected |= {"404", "410"}
        if method != "get":
            expected |= {"409", "413", "422"}
        if "requestBody" in operation:
            expected |= {"400", "415"}
        assert expected <= statuses, (where, expected - statuses)
        for status in statuses - {"default"}:
            if status.startswith(("4", "5")):
                response = operation["responses"][status]
                if "$ref" in response:
                    response = document["components"]["responses"][
                        response["$ref"].rsplit("/", 1)[1]]
                assert list(response["content"]) == ["application/problem+json"], where
                assert "X-Request-ID" in response["headers"], where
    assert len(ids) == len(set(ids)) > 50
    responses = document["components"]["responses"]
    assert "WWW-Authenticate" in responses["UNAUTHORIZED"]["headers"]
    assert "Retry-After" in responses["TOO_MANY_REQUESTS"]["headers"]
    payment = document["paths"]["/api/v1/accounts/{account_id}/payments"]["post"]
    assert "payment-failed" in payment["responses"]["402"]["description"]
    assert "PaginationMetadata" not in document["components"]["schemas"]  # not our paging


def test_every_property_and_query_parameter_has_a_type(client):
    """No `Any` in a generated client: each property says its type (marshmallow's Enum and
    Function fields gave none), and no query parameter is nullable (a query string can't
    send null). Change.before/after are any JSON value on purpose, and say so."""
    document = client.get("/api/v1/openapi.json").get_json()
    untyped = []
    for name, schema in document["components"]["schemas"].items():
        for prop, spec in schema.get("properties", {}).items():
            if not {"type", "$ref", "allOf", "anyOf", "oneOf"} & set(spec):
                untyped.append(f"{name}.{prop}")
    assert untyped == ["Change.before", "Change.after"]
    change = document["components"]["schemas"]["Change"]["properties"]
    assert change["before"]["description"] and change["after"]["description"]
    for method, path, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "query":
                schema = parameter["schema"]
                assert isinstance(schema["type"], str), (method, path, parameter["name"])
                assert None not in schema.get("enum", []), (method, path, parameter["name"])


def test_a_problem_with_extension_members_matches_the_documented_problem(client, world):
    """RFC 9457 lets a problem carry extension members (a 402's `charge`, a 409's
    `standing` or `status_of_file`): the schema allows them, and a real problem answer
    validates against it."""
    import jsonschema

    document = client.get("/api/v1/openapi.json").get_json()
    schema = {**document["components"]["schemas"]["Problem"], "$defs": {}}
    assert schema["additionalProperties"] is True
    assert {"charge", "standing", "status_of_file"} <= set(schema["properties"])
    for slug in ("payment-failed", "not-found", "validation", "rate-limited", "gone"):
        assert f"`{slug}`" in schema["properties"]["type"]["description"]
    answer = client.get("/api/v1/accounts/999999", headers=bearer(world["key"]))
    assert answer.status_code == 404
    jsonschema.validate(answer.get_json(), schema)
    jsonschema.validate({**answer.get_json(), "status_of_file": "pending",
                         "charge": {"id": 1}}, schema)


def test_a_key_with_only_the_metering_scope_may_read_itself(client, session, world):
    metering = f.api_key(session, world["agency"], world["olive"], scopes=("metering",))
    session.commit()
    answer = client.get("/api/v1/key", headers=bearer(metering))
    assert answer.status_code == 200
    assert answer.get_json()["scopes"] == ["metering"]
    # ... and nothing else it lacks the scope for
    assert client.get("/api/v1/accounts", headers=bearer(metering)).status_code == 403
