"""Print Receipts: every successful card charge has a receipt page and the same receipt as a
PDF (/accounts/<id>/billing/payments/<charge_id>.pdf), with the merchant, the account, the
date (UTC), the method (brand and last 4), the amount, the receipt number and the service
address. The PDF's text is read back with pypdf."""

import io
import re

import pytest
from pypdf import PdfReader

from portal import clock
from tests.conftest import HX
from tests.web.billing_world import (
    AMEX,
    BILLING_ONLY,
    INSUFFICIENT,
    NOW,
    build,
    card,
    paid,
    post,
    url,
)
from tests.web.conftest import keep_active, sign_in_as
from tests.web.pages import NOT_FOUND, body, login_location, shown, text

ADDRESS = {"address_line1": "1 Market St", "address_line2": "Suite 400",
           "city": "San Francisco", "region": "CA", "postal_code": "94105"}


def pdf_text(data: bytes) -> str:
    """The words of every page of a PDF, whitespace collapsed."""
    assert data.startswith(b"%PDF-"), data[:20]
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text() or "" for page in reader.pages).split())


def pdf_pages(data: bytes) -> int:
    return len(PdfReader(io.BytesIO(data)).pages)


@pytest.fixture
def bw(session):
    clock.freeze(NOW)
    return build(session)


def receipt_pdf(client, account, charge_id, headers=None):
    return client.get(url(account, f"payments/{charge_id}.pdf"), headers=headers or {})


def test_the_receipt_pdf_has_every_fact_of_the_receipt(client, session, bw):
    visa = card(session, bw.solo)
    sign_in_as(client, bw.ann)
    assert post(client, url(bw.solo, "service-address"), ADDRESS).status_code == 303
    clock.freeze(NOW.replace(hour=23, minute=59, second=30))
    keep_active(client)  # the clock moved 12 hours: a real session would have expired
    charge = paid(session, bw.solo, visa, "1234.50", actor=bw.ann)
    assert charge.status.value == "succeeded"

    response = receipt_pdf(client, bw.solo, charge.id)
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == (
        f'inline; filename="receipt-{charge.receipt_number}.pdf"')
    assert pdf_pages(response.data) == 1
    words = pdf_text(response.data)
    for fact in ("Account Portal",  # the merchant
                 "Billing for Acme Plumbing",
                 "Receipt", charge.receipt_number,
                 f"Acme Plumbing (#{bw.solo.id})",
                 "2026-11-23 23:59 UTC",
                 "Visa ending 4242 (Pat Doe)",
                 charge.gateway_reference,
                 "1 Market St, Suite 400", "San Francisco, CA 94105",
                 "Amount paid", "$1,234.50",
                 "Amounts in US dollars. Times in UTC."):
        assert fact in words, (fact, words)
    # the page's buttons are not printed
    for screen_only in ("Download PDF", "Back to Billing Settings", "Why it failed"):
        assert screen_only not in words


def test_the_pdf_is_the_same_receipt_as_the_page(client, session, bw):
    amex = card(session, bw.solo, AMEX, cvc="1234", holder="Ann Smith")
    charge = paid(session, bw.solo, amex, "42.00")
    sign_in_as(client, bw.ann)
    page = body(client.get(url(bw.solo, f"payments/{charge.id}")))
    assert f'href="{url(bw.solo, f"payments/{charge.id}.pdf")}">Download PDF</a>' in page
    facts = dict(re.findall(r'<tr><th scope="row">([^<]+)</th><td>(.*?)</td></tr>', page))
    assert facts["Payment method"] == "American Express ending 0005 (Ann Smith)"
    words = pdf_text(receipt_pdf(client, bw.solo, charge.id).data)
    for label, value in facts.items():
        assert f"{label} {text(value)}" in words, (label, value, words)
    assert "Amount paid $42.00" in words
    assert charge.receipt_number in words
    assert "Service address" not in words  # none saved: no line for it


def test_each_successful_charge_has_its_own_receipt_pdf(client, session, bw):
    visa = card(session, bw.solo)
    first = paid(session, bw.solo, visa, "10.00")
    clock.freeze(NOW.replace(hour=13, minute=5))
    second = paid(session, bw.solo, visa, "20.00")
    sign_in_as(client, bw.ann)
    one = pdf_text(receipt_pdf(client, bw.solo, first.id).data)
    two = pdf_text(receipt_pdf(client, bw.solo, second.id).data)
    assert first.receipt_number in one and second.receipt_number not in one
    assert second.receipt_number in two and first.receipt_number not in two
    assert "$10.00" in one and "2026-11-23 12:00 UTC" in one
    assert "$20.00" in two and "2026-11-23 13:05 UTC" in two


def test_an_agencys_receipt_pdf_is_its_own(client, session, bw):
    visa = card(session, bw.agency)
    charge = paid(session, bw.agency, visa, "300")
    sign_in_as(client, bw.ada)
    response = receipt_pdf(client, bw.agency, charge.id)
    assert response.status_code == 200
    words = pdf_text(response.data)
    assert f"Northwind Agency (#{bw.agency.id})" in words and "$300.00" in words
    # not through one of its sub-accounts' pages
    for sub in (bw.bayside, bw.harbor):
        assert receipt_pdf(client, sub, charge.id).status_code == 404


def test_a_failed_charges_pdf_is_no_receipt(client, session, bw):
    declined = card(session, bw.solo, INSUFFICIENT)
    charge = paid(session, bw.solo, declined, "25")
    assert charge.status.value == "failed"
    sign_in_as(client, bw.ann)
    response = receipt_pdf(client, bw.solo, charge.id)
    assert response.status_code == 200
    words = pdf_text(response.data)
    assert "Payment failed" in words
    assert "The card was declined: insufficient funds." in words
    assert charge.receipt_number not in words
    assert "Amount paid" not in words


def test_another_accounts_charge_id_is_not_found(client, session, bw):
    rivals = paid(session, bw.rival, card(session, bw.rival), "99.00")
    mine = paid(session, bw.solo, card(session, bw.solo), "5.00")
    sign_in_as(client, bw.ann)
    for charge_id in (rivals.id, 2147483647, 0):
        for headers in ({}, HX):
            response = receipt_pdf(client, bw.solo, charge_id, headers)
            assert response.status_code == 404, charge_id
            assert response.mimetype == "text/html"
            assert NOT_FOUND in body(response)
            assert "$99.00" not in body(response)
    assert client.get(url(bw.solo, "payments/2147483648.pdf")).status_code == 404
    # the rival's own admin reaches it, but not through ann's account
    assert receipt_pdf(client, bw.solo, mine.id).status_code == 200
    sign_in_as(client, bw.rex)
    assert receipt_pdf(client, bw.solo, mine.id).status_code == 404
    assert receipt_pdf(client, bw.rival, mine.id).status_code == 404
    assert receipt_pdf(client, bw.rival, rivals.id).status_code == 200


def test_only_admins_and_signed_in_users_get_a_receipt_pdf(client, session, bw):
    charge = paid(session, bw.solo, card(session, bw.solo), "5.00")
    path = url(bw.solo, f"payments/{charge.id}.pdf")
    response = client.get(path)
    assert response.status_code == 302
    assert login_location(response) == ("/login", path)
    sign_in_as(client, bw.vic)  # a role-user of the account
    response = client.get(path)
    assert response.status_code == 403
    assert shown(BILLING_ONLY) in body(response)
    assert "Content-Disposition" not in response.headers


def test_a_sub_on_agency_billing_has_no_receipts_of_its_own(client, session, bw):
    charge = paid(session, bw.agency, card(session, bw.agency), "50")
    sign_in_as(client, bw.bea)
    response = receipt_pdf(client, bw.bayside, charge.id)
    assert response.status_code == 404
    assert "$50.00" not in body(response)
