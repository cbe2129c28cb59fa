"""Transfer a sub-account out of its agency: it becomes a standalone account with its numbers,
calls and history, its own billing and a new owner; the agency no longer reaches it."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from portal.models import AccountKind, BillingMode, Call, NumberStatus, OutboxMessage
from tests import factories as f
from tests.conftest import HX
from tests.web.conftest import sign_in_as
from tests.web.lifecycle_world import NOW, post, snapshot
from tests.web.pages import NOT_FOUND, assert_fragment, assert_full_page, body, shown

GOOD = {"email": "casey@example.test", "plan": "Essentials", "confirm": "yes"}
AGENCY_BILLED = ("Bayside Dental is paid from the agency balance and has no payment method of "
                 "its own. Remove it from agency billing (the customer adds a card) before "
                 "transferring it.")
NEW_OWNER = "Enter the new owner's email address, like name@example.com."
AGENCY_ONLY = ("Only the agency's owners and admins can transfer a sub-account out of the "
               "agency.")


def transfer(client, account, data, **kw):
    return post(client, f"/accounts/{account.id}/transfer", data, **kw)


def test_transfer_page(client, w):
    sign_in_as(client, w.avery)
    response = client.get(f"/accounts/{w.harbor.id}/transfer")
    assert response.status_code == 200
    html = assert_full_page(response)
    assert "<h1>Transfer Harbor Law out of Northwind Agency</h1>" in html
    assert "Northwind Agency will no longer reach it." in html
    for plan in ("Starter", "Essentials", "Marketing Lite", "Performance"):
        assert f"<option >{plan}</option>" in html
    assert "<option selected>Pro</option>" in html
    assert "<option >Agency</option>" not in html
    assert '<input type="hidden" name="confirm" value="yes">' in html
    assert '<button type="submit" class="primary">Transfer</button>' in html


def test_transfer_form_as_fragment(client, w):
    sign_in_as(client, w.avery)
    response = client.get(f"/accounts/{w.harbor.id}/transfer", headers=HX)
    html = assert_fragment(response, '<form id="transfer-form"')
    assert 'name="email"' in html


def test_transfer_makes_a_standalone_account_the_agency_no_longer_reaches(client, session, w):
    f.calls(session, w.harbor, 4, start=NOW - timedelta(days=3), caller_name="Harbor Caller")
    session.commit()
    sign_in_as(client, w.avery)
    response = transfer(client, w.harbor, GOOD)
    assert response.status_code == 303
    assert response.location == f"/accounts/{w.agency.id}/parent"
    session.expire_all()
    assert (w.harbor.kind, w.harbor.parent_id, w.harbor.plan, w.harbor.billing_mode) == (
        AccountKind.STANDALONE, None, "Essentials", BillingMode.CUSTOMER)
    assert (w.harbor_number.account_id, w.harbor_number.status) == (
        w.harbor.id, NumberStatus.ACTIVE)

    html = body(client.get(response.location))
    assert ('<p class="flash flash-success" role="status">Harbor Law is now a standalone '
            "account; the agency no longer reaches it. We emailed casey@example.test that "
            "they own it now.</p>") in html
    assert "Transferred Harbor Law out of the agency, to its new owner casey@example.test" in html
    for path in ("", "calls/", "numbers/"):
        gone = client.get(f"/accounts/{w.harbor.id}/{path}")
        assert gone.status_code == 404, path
        assert NOT_FOUND in body(gone)
    listing = body(client.get(f"/accounts/{w.agency.id}/sub-accounts?status=all"))
    assert "Harbor Law" not in listing
    assert "Harbor Law" not in body(client.get("/switch?q=", headers=HX))

    sign_in_as(client, w.casey)
    home = client.get("/")
    assert home.location == f"/accounts/{w.harbor.id}/"
    html = body(client.get(home.location))
    assert "<dt>Type</dt><dd>Standalone account</dd>" in html
    assert "<dt>Plan</dt><dd>Essentials</dd>" in html
    assert "<dt>Your role</dt><dd>Owner</dd>" in html
    assert "Became a standalone account (from Northwind Agency)" in html
    assert body(client.get(f"/accounts/{w.harbor.id}/calls/")).count("Harbor Caller") == 4
    assert w.harbor_number.number in body(client.get(f"/accounts/{w.harbor.id}/numbers/"))
    assert session.scalar(select(func.count()).select_from(Call).where(
        Call.account_id == w.harbor.id)) == 4


def test_an_agency_admin_may_transfer(client, session, w):
    sign_in_as(client, w.ada)
    assert transfer(client, w.harbor, GOOD).status_code == 303
    session.expire_all()
    assert w.harbor.kind == AccountKind.STANDALONE


def test_an_agency_billed_sub_account_is_not_transferred(client, session, w):
    sign_in_as(client, w.avery)
    before = snapshot(session)
    response = transfer(client, w.bayside, GOOD)
    assert response.status_code == 422
    html = assert_full_page(response)
    assert f'<p class="form-error" role="alert">{AGENCY_BILLED}</p>' in html
    assert 'value="casey@example.test"' in html  # the form keeps what was typed
    assert snapshot(session) == before


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_bad_input_is_shown_with_its_reason(client, session, w, headers):
    sign_in_as(client, w.avery)
    before = snapshot(session)
    plans = "Choose a plan: Starter, Essentials, Pro, Performance, Marketing Lite."
    for data, field, message in [
        ({"email": ""}, "email", NEW_OWNER),
        ({"email": "casey@example.test\r\nBcc: x@y.test"}, "email", NEW_OWNER),
        ({"email": "casey@example.test, x@y.test"}, "email", NEW_OWNER),
        ({"email": "Casey <casey@example.test>"}, "email", NEW_OWNER),
        ({"plan": "Agency"}, "plan", plans),
        ({"plan": ""}, "plan", plans),
    ]:
        response = transfer(client, w.harbor, {**GOOD, **data}, headers=headers)
        assert response.status_code == 422, data
        if headers:
            html = assert_fragment(response, '<form id="transfer-form"')
        else:
            html = assert_full_page(response)
        assert f'<p class="field-error" id="{field}-error">{shown(message)}</p>' in html, data
        assert snapshot(session) == before


def test_transfer_without_the_confirmation_changes_nothing(client, session, w):
    sign_in_as(client, w.avery)
    before = snapshot(session)
    for confirm in (None, "", "no"):
        data = {k: v for k, v in GOOD.items() if k != "confirm"}
        if confirm is not None:
            data["confirm"] = confirm
        response = transfer(client, w.harbor, data)
        assert response.status_code == 422, confirm
        assert ('<p class="form-error" role="alert">Transferring needs the confirmation: '
                "nothing was changed.</p>") in body(response)
        assert snapshot(session) == before


def test_a_direct_admin_of_the_sub_account_may_not_transfer_it(client, session, w):
    """Bea administers Bayside Dental but not the agency: the agency decides."""
    w.bayside.billing_mode = BillingMode.CUSTOMER  # so only her role stands in the way
    session.commit()
    sign_in_as(client, w.bea)
    assert client.get(f"/accounts/{w.bayside.id}/").status_code == 200
    before = snapshot(session)
    for response in (client.get(f"/accounts/{w.bayside.id}/transfer"),
                     transfer(client, w.bayside, GOOD)):
        assert response.status_code == 403
        assert shown(AGENCY_ONLY) in body(response)
    assert snapshot(session) == before


def test_only_a_sub_account_has_a_transfer_page(client, session, w):
    sign_in_as(client, w.avery)
    assert client.get(f"/accounts/{w.agency.id}/transfer").status_code == 404
    before = snapshot(session)
    assert transfer(client, w.agency, GOOD).status_code == 404
    sign_in_as(client, w.sam)
    assert client.get(f"/accounts/{w.solo.id}/transfer").status_code == 404
    assert transfer(client, w.solo, GOOD).status_code == 404
    assert snapshot(session) == before


# --- the answer does not tell whether the email has a user --------------------------------

def _answer(response, client, sub_name, email):
    """What the agency admin sees, with the sub-account and the email taken out."""
    page = body(client.get(response.location)) if response.status_code == 303 else ""
    flash = re.search(r'<p class="flash[^"]*" role="status">([^<]*)</p>', page)
    return (response.status_code, response.location,
            flash.group(1).replace(sub_name, "SUB").replace(email, "EMAIL") if flash else None)


def test_the_answer_is_the_same_whether_or_not_the_email_has_a_user(client, session, w):
    """It used to be 422 "No user has the email ..." for one and a transfer for the other: a
    way for an agency admin to test any email for an account here."""
    w.bayside.billing_mode = BillingMode.CUSTOMER
    session.commit()
    sign_in_as(client, w.avery)
    known = _answer(transfer(client, w.harbor, GOOD), client, "Harbor Law",
                    "casey@example.test")
    unknown = _answer(transfer(client, w.bayside, {**GOOD, "email": "nobody@example.test"}),
                      client, "Bayside Dental", "nobody@example.test")
    assert known == unknown == (
        303, f"/accounts/{w.agency.id}/parent",
        "SUB is now a standalone account; the agency no longer reaches it. We emailed EMAIL "
        "that they own it now.")
    session.expire_all()
    assert w.bayside.kind == w.harbor.kind == AccountKind.STANDALONE
    # Each new owner got one email; only the one without a user gets a set-password link.
    mails = {m.to_address: m for m in session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "transfer"))}
    assert sorted(mails) == ["casey@example.test", "nobody@example.test"]
    assert mails["casey@example.test"].subject == "You are now the owner of Harbor Law"
    assert "/set-password/" not in mails["casey@example.test"].text_body
    assert "/login" in mails["casey@example.test"].text_body
    assert "/set-password/" in mails["nobody@example.test"].text_body


def test_the_new_owner_without_a_user_sets_a_password_and_signs_in(app, client, session, w):
    sign_in_as(client, w.avery)
    assert transfer(client, w.harbor, {**GOOD, "email": "Nia@Harbor.example"}).status_code == 303
    mail = session.scalars(select(OutboxMessage).where(
        OutboxMessage.to_address == "nia@harbor.example")).one()
    link = re.search(r"http://[^\s]+/set-password/[^\s]+", mail.text_body).group(0)
    path = urlsplit(link).path

    nia = app.test_client()
    page = nia.get(path)
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "no-store" in page.headers["Cache-Control"]
    html = body(page)
    assert "Choose a password to sign in as nia@harbor.example." in html
    assert 'value="nia"' in html  # the name, to change
    # the new user can't sign in before the password is set
    assert post(nia, "/login", {"email": "nia@harbor.example", "password": ""}
                ).status_code == 422
    response = post(nia, path, {"name": "Nia Lee", "password": "a long password",
                                "again": "another password"})
    assert response.status_code == 422
    assert shown("The two passwords are not the same.") in body(response)
    response = post(nia, path, {"name": "Nia Lee", "password": "a long password",
                                "again": "a long password"})
    assert (response.status_code, response.location) == (303, "/login")
    assert nia.get(path).status_code == 410  # works once
    assert post(nia, path, {"name": "X", "password": "another long one",
                            "again": "another long one"}).status_code == 410
    signed_in = post(nia, "/login", {"email": "nia@harbor.example",
                                     "password": "a long password"})
    assert signed_in.status_code == 303
    assert nia.get(f"/accounts/{w.harbor.id}/").status_code == 200


@pytest.mark.parametrize("token", ["junk", "a" * 300, "eyJ1IjoxfQ.x.y"])
def test_a_bad_set_password_link_is_a_clear_page(client, token):
    response = client.get(f"/set-password/{token}")
    assert response.status_code == 410
    assert "This link doesn&#39;t work any more" in body(response)

