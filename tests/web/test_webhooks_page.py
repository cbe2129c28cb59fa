"""Settings → Developers → Webhooks (issue 18 W): owners and admins only, Add endpoint (the
secret shown once, kept sealed; the form's errors at 422), Rotate secret, Disable/Enable,
Send test event, Delete behind a confirmation, the delivery log and Redeliver, tenancy,
CSRF, and refused private addresses outside testing."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from portal import clock, sealing
from portal.models import Role
from portal.models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from portal.services import lifecycle, webhooks
from tests import factories as f
from tests.conftest import HX, csrf_token
from tests.web.conftest import sign_in_as

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SECRET = re.compile(r"whsec_[A-Za-z0-9_-]{30,}")


class World:
    pass


@pytest.fixture
def w(session):
    clock.freeze(NOW)
    world = World()
    world.owner = f.user(session, "olive@northwind.test", name="Olive Owner")
    world.admin = f.user(session, "adam@northwind.test", name="Adam Admin")
    world.billing = f.user(session, "bea@northwind.test", name="Bea Billing")
    world.plain = f.user(session, "uma@northwind.test", name="Uma User")
    world.agency = f.agency(session, "Northwind Agency", owner=world.owner)
    f.member(session, world.admin, world.agency, Role.ADMIN)
    f.member(session, world.billing, world.agency, Role.BILLING)
    f.member(session, world.plain, world.agency, Role.USER)
    world.sub = f.sub(session, world.agency, "Bayside Dental")
    world.other_owner = f.user(session, "otto@elsewhere.test")
    world.other = f.standalone(session, "Elsewhere Inc", owner=world.other_owner)
    session.commit()
    return world


def path(account, rest="") -> str:
    return f"/accounts/{account.id}/developers/webhooks{rest}"


def body(response) -> str:
    return response.get_data(as_text=True)


def add(client, account, url="https://hooks.example.com/portal", events=("*",),
        description="Billing sync", **kwargs):
    data = {"csrf_token": csrf_token(client, path(account)), "url": url,
            "description": description, "events": list(events)}
    return client.post(path(account), data=data, **kwargs)


def post(client, account, rest, **data):
    data["csrf_token"] = csrf_token(client, path(account))
    return client.post(path(account, rest), data=data)


def test_owners_and_admins_only(client, w):
    sign_in_as(client, w.owner)
    page = client.get(path(w.agency))
    assert page.status_code == 200
    text = body(page)
    assert "<title>Webhooks" in text and "No webhook endpoints yet." in text
    assert "No deliveries yet." in text
    for event_type in webhooks.EVENT_TYPES:
        assert f'value="{event_type}"' in text
    sign_in_as(client, w.admin)
    assert client.get(path(w.agency)).status_code == 200
    for user in (w.billing, w.plain):
        sign_in_as(client, user)
        assert client.get(path(w.agency)).status_code == 403
        assert add(client, w.agency).status_code in (400, 403)  # no token on a 403 page
    sign_in_as(client, w.other_owner)
    assert client.get(path(w.agency)).status_code == 404


def test_the_developers_index_endpoint_name(app, w):
    with app.test_request_context():
        from flask import url_for
        assert url_for("developers.webhooks", account_id=w.agency.id) == path(w.agency)


def test_add_shows_the_secret_once_and_keeps_it_sealed(client, session, w):
    sign_in_as(client, w.admin)
    answer = add(client, w.agency, events=("payment.succeeded", "account.paused"))
    assert answer.status_code == 200
    text = body(answer)
    [secret] = set(SECRET.findall(text))
    assert "it won&#39;t be shown again" in text or "it won't be shown again" in text
    # on a short page of its own: nothing else to scroll past (the form, the log)
    assert "autofocus>Webhook endpoint added" in text and 'id="endpoint-form"' not in text
    # never kept in htmx's history cache (Back after leaving asks the server); a Copy button
    assert 'data-testid="shown-secret" hx-history="false"' in text
    assert '<button type="button" data-copy="secret"' in text
    endpoint = session.scalar(select(WebhookEndpoint))
    assert (endpoint.url, endpoint.description, endpoint.event_types, endpoint.enabled) == (
        "https://hooks.example.com/portal", "Billing sync", "payment.succeeded account.paused",
        True)
    assert endpoint.created_by_id == w.admin.id
    assert secret not in endpoint.secret_sealed
    assert sealing.unseal(endpoint.secret_sealed) == secret
    again = body(client.get(path(w.agency)))
    assert secret not in again and "https://hooks.example.com/portal" in again
    assert "payment.succeeded, account.paused" in again


@pytest.mark.parametrize("url, events, field, message", [
    ("", ("*",), "url", "Enter the URL to send events to"),
    ("ftp://files.example.com/", ("*",), "url", "must start with https://"),
    ("https://hooks.example.com/", (), "events", "Choose the events to send"),
    ("https://hooks.example.com/", ("account.exploded",), "events", "Unknown event type"),
])
def test_form_errors_are_422_beside_their_field(client, session, w, url, events, field,
                                                 message):
    sign_in_as(client, w.owner)
    answer = add(client, w.agency, url=url, events=events, headers=HX)
    assert answer.status_code == 422
    text = body(answer)
    assert f'id="{field}-error"' in text and message in text
    assert "<html" not in text  # the form's fragment
    assert session.scalar(select(WebhookEndpoint)) is None


def test_private_addresses_are_refused_outside_testing(app, client, session, w):
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = False
    try:
        sign_in_as(client, w.owner)
        answer = add(client, w.agency, url="http://127.0.0.1:8080/hooks")
        assert answer.status_code == 422
        assert "private or local network address" in body(answer)
    finally:
        del app.config["WEBHOOKS_ALLOW_PRIVATE"]
    assert session.scalar(select(WebhookEndpoint)) is None


def test_rotate_disable_enable_test_and_delete(client, session, w):
    sign_in_as(client, w.owner)
    first = SECRET.search(body(add(client, w.agency))).group(0)
    endpoint = session.scalar(select(WebhookEndpoint))

    # Rotate asks first (the dialog), and a POST without the confirmation changes nothing
    dialog = client.get(path(w.agency, f"/{endpoint.id}/rotate"), headers=HX)
    assert "<dialog" in body(dialog) and "keeps signing beside it for 24 hours" in body(dialog)
    assert 'data-testid="rotation-in-progress"' not in body(dialog)
    refused = post(client, w.agency, f"/{endpoint.id}/rotate")
    assert refused.status_code == 422 and "needs the confirmation" in body(refused)
    session.expire_all()
    assert sealing.unseal(session.get(WebhookEndpoint, endpoint.id).secret_sealed) == first
    rotated = post(client, w.agency, f"/{endpoint.id}/rotate", confirm="yes")
    assert rotated.status_code == 200
    second = SECRET.search(body(rotated)).group(0)
    assert second != first and "until 2026-12-04 12:00 UTC" in body(rotated)  # 24 h on
    session.expire_all()
    endpoint = session.get(WebhookEndpoint, endpoint.id)
    assert sealing.unseal(endpoint.secret_sealed) == second
    assert sealing.unseal(endpoint.previous_secret_sealed) == first
    page = body(client.get(path(w.agency)))
    assert "Rotating: the previous secret also signs until" in page
    # A second rotation within the 24 hours says the first secret stops signing now
    dialog = body(client.get(path(w.agency, f"/{endpoint.id}/rotate"), headers=HX))
    assert 'data-testid="rotation-in-progress"' in dialog and "stops signing now" in dialog

    answer = post(client, w.agency, f"/{endpoint.id}/enabled", enabled="0")
    assert answer.status_code == 303
    session.expire_all()
    assert session.get(WebhookEndpoint, endpoint.id).enabled is False
    assert "Disabled" in body(client.get(path(w.agency)))
    # a test event while disabled says when it goes: not "within a minute"
    assert post(client, w.agency, f"/{endpoint.id}/test").status_code == 303
    page = body(client.get(path(w.agency)))
    assert "which is disabled: it is sent once you enable the endpoint again" in page
    assert "When the endpoint is enabled" in page  # the log's Next try
    session.execute(WebhookDelivery.__table__.delete())
    session.execute(WebhookEvent.__table__.delete())
    session.commit()
    post(client, w.agency, f"/{endpoint.id}/enabled", enabled="1")
    session.expire_all()
    assert session.get(WebhookEndpoint, endpoint.id).enabled is True

    assert post(client, w.agency, f"/{endpoint.id}/test").status_code == 303
    [event] = session.scalars(select(WebhookEvent)).all()
    assert event.type == "ping"
    page = body(client.get(path(w.agency)))
    assert "A test event (ping) is queued" in page
    assert event.public_id in page and "Pending" in page

    dialog = client.get(path(w.agency, f"/{endpoint.id}/delete"), headers=HX)
    assert dialog.status_code == 200
    assert "<dialog" in body(dialog) and 'name="confirm" value="yes"' in body(dialog)
    assert "<html" not in body(dialog)
    full = client.get(path(w.agency, f"/{endpoint.id}/delete"))
    assert "<html" in body(full) and 'aria-labelledby="delete-endpoint-h" open>' in body(full)
    refused = post(client, w.agency, f"/{endpoint.id}/delete")  # no confirm field
    assert refused.status_code == 422 and "needs the confirmation" in body(refused)
    assert session.get(WebhookEndpoint, endpoint.id) is not None
    done = post(client, w.agency, f"/{endpoint.id}/delete", confirm="yes")
    assert done.status_code == 303
    session.expire_all()
    assert session.scalar(select(WebhookEndpoint)) is None
    assert session.scalar(select(WebhookDelivery)) is None
    assert "Deleted the endpoint" in body(client.get(path(w.agency)))


def test_the_delivery_log_and_redeliver(client, session, w):
    made = webhooks.create(session, w.agency, w.owner, "https://hooks.example.com/a", "",
                           ["*"], allow_private=True)
    lifecycle.pause_swapping(session, w.sub, w.owner)  # a sub-account's event: the agency's
    session.commit()
    delivery = session.scalar(select(WebhookDelivery))
    delivery.status, delivery.attempts, delivery.last_status_code = (
        DeliveryStatus.FAILED, 9, 500)
    delivery.next_attempt_at = None
    session.commit()
    sign_in_as(client, w.admin)
    page = body(client.get(path(w.agency)))
    row = page[page.index(f'id="delivery-{delivery.id}"'):]
    row = row[:row.index("</tr>")]
    assert "account.paused" in row and "Failed" in row and ">9<" in row and "500" in row
    assert "Redeliver" in row
    later = datetime(2026, 12, 9, 8, 0, tzinfo=UTC)
    clock.freeze(later)
    sign_in_as(client, w.admin)  # days later: a fresh session
    answer = post(client, w.agency, f"/deliveries/{delivery.id}/redeliver")
    assert answer.status_code == 303
    session.expire_all()
    delivery = session.get(WebhookDelivery, delivery.id)
    assert (delivery.status, delivery.next_attempt_at) == (DeliveryStatus.PENDING, later)
    assert delivery.attempts == 0  # its backoff starts again: a minute after a failure
    assert webhooks.next_try(1, later, delivery.retry_until) == later + timedelta(minutes=1)
    assert "will be sent again" in body(client.get(path(w.agency)))
    # Another account's delivery, endpoint: not found.
    sign_in_as(client, w.other_owner)
    assert post(client, w.other, f"/deliveries/{delivery.id}/redeliver").status_code == 404
    assert post(client, w.other, f"/{made.endpoint.id}/rotate").status_code == 404
    assert client.get(path(w.other, f"/{made.endpoint.id}/delete")).status_code == 404


def test_posts_need_the_csrf_token(client, session, w):
    sign_in_as(client, w.owner)
    answer = client.post(path(w.agency), data={"url": "https://x.example.com", "events": "*"})
    assert answer.status_code == 400
    assert session.scalar(select(WebhookEndpoint)) is None


def test_a_reload_of_a_post_address_is_the_page(client, session, w):
    made = webhooks.create(session, w.agency, w.owner, "https://hooks.example.com/a", "",
                           ["*"], allow_private=True)
    session.commit()
    sign_in_as(client, w.owner)
    answer = client.get(path(w.agency, f"/{made.endpoint.id}/test"))
    assert answer.status_code == 303 and answer.location.endswith(path(w.agency))
    # Rotate's address opened is its confirmation, on the page: nothing rotates
    answer = client.get(path(w.agency, f"/{made.endpoint.id}/rotate"))
    assert answer.status_code == 200 and 'aria-labelledby="rotate-endpoint-h" open>' in body(
        answer)
    session.expire_all()
    assert session.get(WebhookEndpoint, made.endpoint.id).previous_secret_sealed is None


def test_the_developers_page_links_here(client, w):
    sign_in_as(client, w.owner)
    page = body(client.get(f"/accounts/{w.agency.id}/developers/"))
    assert f'href="{path(w.agency)}"' in page
