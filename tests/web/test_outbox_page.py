"""The dev outbox (/dev/outbox): the emails the portal queued, newest first, and one message
with its text (the testing config turns DEV_OUTBOX on)."""

import re

import pytest
from sqlalchemy import select

from portal import clock, create_app
from portal.extensions import db
from portal.models import Charge, OutboxMessage
from tests.web.billing_world import (
    DECLINED,
    NOW,
    build,
    card,
    form_key,
    post,
    save_recharge_confirmed,
    url,
)
from tests.web.conftest import sign_in_as
from tests.web.pages import assert_full_page, body, table_rows


@pytest.fixture
def bw(session):
    clock.freeze(NOW)
    return build(session)


def pay(client, account, method, amount):
    response = post(client, url(account, "payments"), {
        "method": str(method.id), "amount": amount, "form_key": form_key(client, account)})
    assert response.status_code in (303, 402)
    return response


def test_an_empty_outbox(client, bw):
    response = client.get("/dev/outbox")
    assert response.status_code == 200
    html = assert_full_page(response, nav=False)
    assert "<h1>Outbox <span class=\"muted\">· development only</span></h1>" in html
    assert '<p class="muted">No emails yet.</p>' in html


def test_the_outbox_lists_receipts_newest_first(client, session, bw):
    visa = card(session, bw.solo)
    agency_visa = card(session, bw.agency)
    sign_in_as(client, bw.ann)
    pay(client, bw.solo, visa, "25.50")
    sign_in_as(client, bw.avery)
    clock.freeze(NOW.replace(minute=5))
    pay(client, bw.agency, agency_visa, "100")
    solo_charge, agency_charge = session.scalars(select(Charge).order_by(Charge.id)).all()

    response = client.get("/dev/outbox")
    assert response.status_code == 200
    html = body(response)
    rows = [row.cells for row in table_rows(html)]
    agency_subject = (f"Receipt {agency_charge.receipt_number}: payment of $100.00 for "
                      "Northwind Agency")
    solo_subject = f"Receipt {solo_charge.receipt_number}: payment of $25.50 for Acme Plumbing"
    assert rows == [
        # the agency's owner and admin (no recipients chosen), then the standalone's admin
        ["2026-11-23 12:05:00", "avery@example.test", agency_subject, "receipt", "pending"],
        ["2026-11-23 12:05:00", "ada@example.test", agency_subject, "receipt", "pending"],
        ["2026-11-23 12:00:00", "ann@example.test", solo_subject, "receipt", "pending"],
    ]
    ids = session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id.desc())).all()
    assert [row.hrefs for row in table_rows(html)] == [[f"/dev/outbox/{i}"] for i in ids]


def test_a_message_shows_its_text(client, session, bw):
    visa = card(session, bw.solo)
    sign_in_as(client, bw.ann)
    assert post(client, url(bw.solo, "service-address"), {
        "address_line1": "1 Market St", "city": "San Francisco", "region": "CA",
        "postal_code": "94105"}).status_code == 303
    pay(client, bw.solo, visa, "25.50")
    [charge] = session.scalars(select(Charge)).all()
    [message] = session.scalars(select(OutboxMessage)).all()

    response = client.get(f"/dev/outbox/{message.id}")
    assert response.status_code == 200
    html = assert_full_page(response, nav=False)  # not an account page: no main nav
    assert (f"<h1>Receipt {charge.receipt_number}: payment of $25.50 for Acme Plumbing</h1>"
            in html)
    assert '<dd data-testid="to">ann@example.test</dd>' in html
    text_body = re.search(r'<pre class="mail-text" data-testid="text-body">(.*?)</pre>', html,
                          re.S).group(1)
    for line in (f"Receipt {charge.receipt_number} · Acme Plumbing",
                 "Payment: $25.50",
                 "Charged to: Visa ending 4242",
                 "Date: 2026-11-23 12:00 UTC",
                 f"Processor reference: {charge.gateway_reference}",
                 "Service address: 1 Market St, San Francisco, CA 94105",
                 "Available balance after this payment: $25.50"):
        assert line in text_body, line
    assert "4242424242424242" not in text_body
    assert f'src="/dev/outbox/{message.id}/html"' in html

    part = client.get(f"/dev/outbox/{message.id}/html")
    assert part.status_code == 200
    assert part.headers["Content-Security-Policy"] == (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'")
    assert part.headers["X-Frame-Options"] == "SAMEORIGIN"  # the outbox page frames it
    assert charge.receipt_number in body(part)


def test_a_decline_notice_is_in_the_outbox(client, session, bw):
    card(session, bw.solo, DECLINED)
    sign_in_as(client, bw.ann)
    assert save_recharge_confirmed(client, bw.solo,
                                   {"threshold": "20", "amount": "100"}).status_code == 303
    [message] = session.scalars(select(OutboxMessage)).all()
    assert (message.kind, message.to_address) == ("decline", "ann@example.test")
    html = body(client.get(f"/dev/outbox/{message.id}"))
    assert "<h1>Action needed: your card was declined for Acme Plumbing</h1>" in html
    assert "- Visa ending 0341: The card was declined." in html


@pytest.mark.parametrize("path", ["/dev/outbox/999999", "/dev/outbox/2147483648",
                                  "/dev/outbox/999999/html"])
def test_a_missing_message_is_not_found(client, bw, path):
    assert client.get(path).status_code == 404


def test_there_is_no_outbox_page_without_dev_outbox(database_url):
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url,
                      "SECRET_KEY": "test", "DEV_OUTBOX": False})
    assert "dev" not in app.blueprints
    assert app.test_client().get("/dev/outbox").status_code == 404
    with app.app_context():
        db.engine.dispose()
