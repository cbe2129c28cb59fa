"""Security headers (portal/headers.py) on every route of the app: every rule of the URL map
is requested, signed in on the demo world (each GET with real ids), signed out, and each
POST without its CSRF token; the pages carry no inline script, handler or style that the
Content-Security-Policy would refuse."""

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import current_app
from sqlalchemy import select

import billing_links
import portal.models  # noqa: F401  (first: billing_links.models needs portal.models loaded)
from billing_links import service as link_service
from portal import clock, headers
from portal.cli import demo
from portal.models import (
    Account,
    AgentStatus,
    CallQueue,
    Charge,
    Membership,
    OutboxAttachment,
    OutboxMessage,
    PaymentMethod,
    Preset,
    Role,
    ScheduleFrequency,
    StatementSchedule,
    TrackingNumber,
    TrackingSource,
    User,
)
from tests.web.conftest import sign_in_as
from tests.web.pages import body

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIRS = [ROOT / "portal" / "templates", ROOT / "billing_links" / "templates"]
# Emails are not pages: mail clients need their inline styles, and the dev outbox shows them
# in a sandboxed frame under a policy of their own.
EMAIL_TEMPLATES = re.compile(r"(^|/)(mail/|billing_links/email_)")
CSP_DIRECTIVES = {
    "default-src": "'self'", "script-src": "'self'", "style-src": "'self'",
    "img-src": "'self' data:", "font-src": "'self'", "connect-src": "'self'",
    "object-src": "'none'", "base-uri": "'none'", "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# What a page must not hold under that policy.
INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I), "an event-handler attribute"),
    (re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I), "a style attribute"),
    (re.compile(r"<style", re.I), "a <style> element"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
    (re.compile(r"\shx-on[:-]", re.I), "hx-on (evaluated by htmx)"),
    (re.compile(r"hx-trigger=\"[^\"]*\[", re.I), "an hx-trigger filter (evaluated by htmx)"),
    (re.compile(r"\shx-(vals|vars)=['\"]\s*(js|javascript):", re.I), "evaluated hx-vals"),
]


def csp(value: str) -> dict[str, str]:
    return {d.split()[0]: " ".join(d.split()[1:]) for d in
            (part.strip() for part in value.split(";")) if d}


# --- the world: every kind of record a route can name ------------------------------------------

@pytest.fixture
def world(app, session):
    clock.freeze(NOW)
    demo.seed(session, calls_per_account=2, now=NOW)
    session.flush()
    account = {a.name: a for a in session.scalars(select(Account))}
    northwind, solo = account["Northwind Agency"], account["Solo Plumbing"]
    bayside = account["Bayside Dental"]
    # one person who reaches the agency (and its subs) and the standalone account
    owner = session.scalar(select(User).where(User.email == "agency@demo.test"))
    session.add(Membership(user_id=owner.id, account_id=solo.id, role=Role.OWNER))

    def first(model, *where):
        row = session.scalar(select(model).where(*where).order_by(model.id))
        assert row is not None, f"the demo world has no {model.__name__} for {where}"
        return row

    schedule = StatementSchedule(account_id=solo.id, frequency=ScheduleFrequency.MONTHLY,
                                 recipient="billing@solo.example", created_by_id=owner.id)
    session.add(schedule)
    message = OutboxMessage(account_id=solo.id, kind="statement", to_address="a@solo.example",
                            subject="Statement", text_body="See attached.",
                            html_body="<p style=\"color: #333\">See attached.</p>")
    session.add(message)
    session.flush()
    attachment = OutboxAttachment(message_id=message.id, filename="statement.pdf",
                                  content_type="application/pdf", data=b"%PDF-1.4 test")
    session.add(attachment)
    session.commit()
    current_app.config["BILLING_LINK_RATE_LIMIT"] = 10_000
    _request, url = link_service.request_removal(
        session, billing_links.settings(current_app), northwind, bayside, owner,
        "customer@bayside.example", "25.00", "Please set up billing.")
    session.commit()
    released = first(TrackingNumber, TrackingNumber.account_id == account["Oak Street Bakery"].id)
    params = {
        "owner": owner,
        "token": url.rsplit("/", 1)[1],
        "account_id": northwind.id,
        "sub_id": bayside.id,
        "status_id": first(AgentStatus, AgentStatus.account_id == northwind.id).id,
        "method_id": first(PaymentMethod, PaymentMethod.account_id == solo.id).id,
        "charge_id": first(Charge, Charge.account_id == solo.id).id,
        "schedule_id": schedule.id,
        "preset_id": first(Preset, Preset.account_id == solo.id).id,
        "queue_id": first(CallQueue, CallQueue.account_id == solo.id).id,
        "source_id": first(TrackingSource, TrackingSource.account_id == solo.id).id,
        "number_id": released.id,
        "call_id": 1,
        "message_id": message.id,
        "attachment_id": attachment.id,
        "fmt": "csv",
        "kind": "card",  # the sandbox's card frame
        "filename": "portal.js",
        "solo": solo.id,
        "bayside": bayside.id,
        "oak": account["Oak Street Bakery"].id,
    }
    from portal.models import Call

    params["call_id"] = first(Call, Call.account_id == solo.id).id
    return params


# The account each area's routes are asked on (the one holding their records).
ON_SOLO = ("billing.", "presets.", "privacy.", "plans.", "support.")
ON_SUB = ("accounts.transfer", "accounts.close")


def arguments(rule, world) -> dict:
    values = {}
    for name in rule.arguments:
        if name == "account_id":
            if rule.endpoint.startswith(ON_SOLO):
                values[name] = world["solo"]
            elif rule.endpoint.startswith(ON_SUB):
                values[name] = world["bayside"]
            elif rule.endpoint == "numbers.restore":
                values[name] = world["oak"]
            else:
                values[name] = world["account_id"]
        elif name == "record_id":
            values[name] = world["queue_id" if ".queue" in rule.endpoint else "source_id"]
        elif name in world:
            values[name] = world[name]
        else:  # a route added later with an argument this table doesn't know: still asked
            values[name] = 1
    return values


# Pages that need a query to show something (without it: their 422 page, checked too).
QUERY = {
    "billing.statement_view": "?from=2026-11-01&to=2026-11-22",
    "billing.statement_pdf": "?from=2026-11-01&to=2026-11-22",
    "history.versions": "?type=account",
    "plans.confirm": "?plan=Starter",
    "privacy.export": "?number=%2B14155550123",
    "presets.preset_new": "?kind=call_queue",
}


def every_request(app, world):
    """(rule, method, path) for every rule and method of the URL map."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        path = rule.build(arguments(rule, world), append_unknown=False)[1]
        path += QUERY.get(rule.endpoint, "")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method, path


def finished(response):
    """The whole body read (a streamed export runs to its end) and the response closed."""
    response.get_data()
    response.close()
    return response


def assert_headers(response, rule, secure: bool):
    where = f"{response.request.method} {response.request.path} ({rule.endpoint}) " \
            f"-> {response.status_code}"
    h = response.headers
    assert h.get("X-Content-Type-Options") == "nosniff", where
    policy = csp(h.get("Content-Security-Policy", ""))
    if rule.endpoint == "dev.outbox_html":  # an email in the outbox page's sandboxed frame
        assert policy == {"sandbox": "", "default-src": "'none'",
                          "style-src": "'unsafe-inline'", "frame-ancestors": "'self'"}, where
        assert h.get("X-Frame-Options") == "SAMEORIGIN", where
    elif rule.endpoint.startswith("sandbox."):  # the sandbox processor's frames (issue 16)
        assert policy == {**CSP_DIRECTIVES, "frame-ancestors": "'self'"}, where
        assert h.get("X-Frame-Options") == "SAMEORIGIN", where
    elif getattr(current_app.view_functions.get(rule.endpoint), "card_entry_page", False):
        # issue 16: a page hosting the processor's card entry lets its frame in (the
        # sandbox: frame-src 'self'), nothing else
        assert policy == {**CSP_DIRECTIVES, "frame-src": "'self'"}, where
        assert h.get("X-Frame-Options") == "DENY", where
    elif rule.endpoint == "api_reference.docs":  # issue 18: ReDoc styles itself at run
        # time (styled-components); scripts stay 'self' only (portal/blueprints/api_v1/reference.py)
        assert policy == {**CSP_DIRECTIVES, "style-src": "'self' 'unsafe-inline'",
                          "worker-src": "'self' blob:"}, where
        assert h.get("X-Frame-Options") == "DENY", where
    else:
        assert policy == CSP_DIRECTIVES, where
        assert h.get("X-Frame-Options") == "DENY", where
    secret_url = (rule.endpoint.startswith(("billing_links.", "sandbox."))  # sandbox: secrets
                  or "token" in rule.arguments)
    expected_referrer = "no-referrer" if secret_url else "strict-origin-when-cross-origin"
    assert h.get("Referrer-Policy") == expected_referrer, where
    if rule.endpoint == "static":
        assert "no-store" not in h.get("Cache-Control", ""), where  # cached, revalidated
    else:
        assert h.get("Cache-Control") == "no-store", where
    if secure:
        assert h.get("Strict-Transport-Security") == "max-age=31536000", where
    else:
        assert "Strict-Transport-Security" not in h, where


def assert_no_inline_code(response, rule):
    if rule.endpoint == "dev.outbox_html" or not response.mimetype == "text/html":
        return
    html = body(response)
    for pattern, what in INLINE:
        found = pattern.search(html)
        assert found is None, f"{rule.endpoint} has {what}: {found.group(0)[:120]}"


def test_the_policy_is_strict():
    policy = csp(headers.CSP)
    assert policy == CSP_DIRECTIVES
    for directive in ("script-src", "style-src", "default-src"):
        assert "unsafe" not in policy[directive]


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
def test_every_route_signed_in_carries_every_header(app, client, world, secure):
    app.config["SESSION_COOKIE_SECURE"] = secure
    if secure:
        client.environ_base["wsgi.url_scheme"] = "https"
    sign_in_as(client, world["owner"])
    seen, pages = set(), 0
    for rule, method, path in every_request(app, world):
        if method == "GET":
            response = finished(client.get(path))
            assert response.status_code < 500, (path, response.status_code)
            assert_no_inline_code(response, rule)
            pages += response.status_code == 200
        else:  # without the form's CSRF token: refused, changes nothing, headers all the same
            response = finished(client.open(path, method=method))
            assert response.status_code in (400, 401, 403, 404, 405, 415, 422), (
                method, path, response.status_code)
        assert_headers(response, rule, secure)
        seen.add((rule.endpoint, method))
    every = {(r.endpoint, m) for r in app.url_map.iter_rules()
             for m in r.methods - {"HEAD", "OPTIONS"}}
    assert seen == every
    assert pages >= 50  # the world has the records: the pages themselves were checked


def test_every_route_signed_out_carries_every_header(app, client, world):
    for rule, method, path in every_request(app, world):
        response = finished(client.open(path, method=method))
        assert response.status_code < 500, (method, path, response.status_code)
        assert_headers(response, rule, secure=False)


def test_downloads_receipts_and_the_link_page_are_not_stored(app, client, world):
    """The brief's list by name: signed-in page, CSV export, receipt, its PDF, the public
    billing-link page (its URL holds a token: no Referer leaves it), and error pages."""
    sign_in_as(client, world["owner"])
    solo, charge = world["solo"], world["charge_id"]
    for path, mimetype in [
            (f"/accounts/{solo}/", "text/html"),
            (f"/accounts/{solo}/calls/export.csv", "text/csv"),
            (f"/accounts/{solo}/billing/logs.csv", "text/csv"),
            (f"/accounts/{solo}/billing/payments/{charge}", "text/html"),
            (f"/accounts/{solo}/billing/payments/{charge}.pdf", "application/pdf"),
            (f"/accounts/{solo}/privacy/export.json?number=%2B14155550123", None),
            (f"/billing-link/{world['token']}", "text/html")]:
        response = finished(client.get(path))
        assert response.status_code == 200, path
        if mimetype:
            assert response.mimetype == mimetype, path
        assert response.headers["Cache-Control"] == "no-store", path
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], path
        assert response.headers["X-Frame-Options"] == "DENY", path
    link_page = client.get(f"/billing-link/{world['token']}")
    assert link_page.headers["Referrer-Policy"] == "no-referrer"
    for status_path in ("/no/such/page", f"/billing-link/{world['token']}x"):
        response = client.get(status_path)
        assert response.status_code == 404
        assert response.headers["Cache-Control"] == "no-store"
        assert "Content-Security-Policy" in response.headers


def test_no_template_holds_what_the_policy_refuses():
    """Every page template, macro and partial (emails aside): no inline script, handler,
    style, javascript: URL or htmx-evaluated string."""
    checked = 0
    for folder in TEMPLATE_DIRS:
        for path in folder.rglob("*.html"):
            name = path.relative_to(folder).as_posix()
            if EMAIL_TEMPLATES.search(name):
                continue
            text = path.read_text()
            for pattern, what in INLINE:
                found = pattern.search(text)
                assert found is None, f"{name} has {what}: {found.group(0)[:120]}"
            checked += 1
    assert checked > 50


def test_htmx_runs_without_eval_or_inline_styles(client):
    html = body(client.get("/login"))
    config = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'>', html).group(1)
    import json

    settings = json.loads(config)
    assert settings["allowEval"] is False
    assert settings["includeIndicatorStyles"] is False
