"""The agency's side of Agency vs customer billing (Settings → Accounts, the Billing column):
the pencil's dialog, Remove from Agency Billing ("Email Client" emails the customer a secure
link), Resend, Cancel request and Add to Agency Billing. Agency owners and admins only."""

import re

import pytest
from flask import request, request_started
from sqlalchemy import select

from portal import clock
from portal.models import (
    Account,
    BillingMode,
    BillingRequest,
    BillingSettings,
    LedgerEntry,
    LedgerKind,
    MethodRole,
    OutboxMessage,
    PaymentMethod,
    RequestStatus,
)
from portal.services import ledger
from tests import factories as f
from tests.conftest import HX
from tests.web.conftest import sign_in_as
from tests.web.lifecycle_world import post, token
from tests.web.link_world import (
    BASE,
    CUSTOMER,
    MESSAGE,
    NOW,
    Customer,
    assert_problem,
    build,
    configure,
    count,
    emailed_links,
    issue,
    request_of,
    snapshot,
)
from tests.web.pages import (
    NOT_FOUND,
    assert_fragment,
    assert_full_page,
    body,
    shown,
    table_rows,
)


@pytest.fixture
def w(app, session):
    clock.freeze(NOW)
    configure(app)
    return build(session)


def accounts_url(agency) -> str:
    return f"/accounts/{agency.id}/sub-accounts"


def billing_url(agency, sub, action: str = "") -> str:
    return f"/accounts/{agency.id}/sub-accounts/{sub.id}/billing" + (f"/{action}" if action
                                                                     else "")


def email_client(client, w, sub=None, email=CUSTOMER, amount="25.00", message=MESSAGE,
                 headers=None, agency=None):
    return post(client, billing_url(agency or w.agency, sub or w.bayside, "remove"),
                {"email": email, "amount": amount, "message": message}, headers=headers)


def flash(category: str, message: str) -> str:
    return f'<p class="flash flash-{category}" role="status">{shown(message)}</p>'


def field_error(field: str, message: str) -> str:
    return f'<p class="field-error" id="{field}-error">{shown(message)}</p>'


def billing_cells(client, agency) -> dict[str, str]:
    rows = table_rows(body(client.get(accounts_url(agency))))
    return {row.cells[0]: row.cells[2] for row in rows}


# --- the Billing column --------------------------------------------------------------------------

def test_the_billing_column_shows_where_the_balance_comes_from_and_a_pencil(client, session,
                                                                            w):
    sign_in_as(client, w.avery)
    html = assert_full_page(client.get(accounts_url(w.agency)))
    assert f'<span data-testid="billing-{w.bayside.id}">Balance from: agency</span>' in html
    assert f'<span data-testid="billing-{w.harbor.id}">Balance from: customer</span>' in html
    for sub in (w.bayside, w.harbor):
        pencil = re.search(rf'<a href="{billing_url(w.agency, sub)}" hx-get="'
                           rf'{billing_url(w.agency, sub)}"[^>]*>', html)
        assert pencil, sub.name
        assert 'hx-target="#dialog-slot"' in pencil.group(0)
        assert f'aria-label="Edit billing of {sub.name}"' in pencil.group(0)
    assert "Pending:" not in html


def test_a_pending_request_shows_in_the_billing_column(client, session, w):
    sign_in_as(client, w.avery)
    assert email_client(client, w).status_code == 303
    html = body(client.get(accounts_url(w.agency)))
    assert (f'<div class="small muted" data-testid="pending-{w.bayside.id}">Pending: link sent '
            f"to {CUSTOMER} on Nov 23</div>") in html
    assert f'data-testid="pending-{w.harbor.id}"' not in html
    assert billing_cells(client, w.agency)["Bayside Dental"] == (
        f"Balance from: agency Pending: link sent to {CUSTOMER} on Nov 23 Resend Cancel request")
    # Resend and Cancel request right in the row (as in the pencil's dialog)
    assert f'action="{billing_url(w.agency, w.bayside, "resend")}"' in html
    assert f'action="{billing_url(w.agency, w.bayside, "cancel-request")}"' in html


# --- the dialog ----------------------------------------------------------------------------------

def test_the_dialog_is_a_fragment_for_htmx_and_a_page_without(client, session, w):
    sign_in_as(client, w.ada)
    fragment = assert_fragment(client.get(billing_url(w.agency, w.bayside), headers=HX),
                               '<dialog class="confirm"')
    assert "<h2 id=\"billing-mode-h\">Billing of Bayside Dental</h2>" in fragment
    assert " open>" not in fragment.split("\n", 1)[0]  # htmx opens it as a modal
    page = assert_full_page(client.get(billing_url(w.agency, w.bayside)))
    assert '<dialog class="confirm" aria-labelledby="billing-mode-h" open>' in page
    for html in (fragment, page):
        assert 'Balance from: <strong data-testid="billing-mode">agency</strong>' in html
        assert "<h3>Remove from Agency Billing</h3>" in html
        assert f'action="{billing_url(w.agency, w.bayside, "remove")}"' in html
        assert 'name="email"' in html and 'name="message"' in html
        assert 'name="amount" inputmode="decimal" autocomplete="off" value="25.00"' in html
        assert ">Email Client</button>" in html
        assert 'name="csrf_token"' in html
        assert "Add to Agency Billing" not in html


def test_the_dialog_of_a_customer_billed_sub_account_offers_add_to_agency_billing(
        client, session, w):
    f.funds(session, w.harbor, 1234)
    session.commit()
    sign_in_as(client, w.avery)
    html = assert_fragment(client.get(billing_url(w.agency, w.harbor), headers=HX),
                           '<dialog class="confirm"')
    assert 'Balance from: <strong data-testid="billing-mode">customer</strong>' in html
    assert "<h3>Add to Agency Billing</h3>" in html
    # issue 14: whose balance each number is, and which way it moves (the dialog's whole
    # wording is in tests/web/test_agency_billing_moves.py)
    assert "Harbor Law's available balance of" in html
    assert "<strong>$12.34</strong> moves to Northwind Agency" in html
    assert '<input type="hidden" name="confirm" value="yes">' in html
    assert "Email Client" not in html


def test_the_dialog_shows_the_pending_request_with_resend_and_cancel(client, session, w):
    issue(session, w)
    sign_in_as(client, w.avery)
    html = body(client.get(billing_url(w.agency, w.bayside), headers=HX))
    assert (f"A billing request is pending: emailed to <strong>{CUSTOMER}</strong> on "
            "November 23, 2026 for a starting balance of at least $25.00.") in html
    assert "The link works until November 30, 2026 12:00 UTC." in html
    assert f'action="{billing_url(w.agency, w.bayside, "resend")}"' in html
    assert f'action="{billing_url(w.agency, w.bayside, "cancel-request")}"' in html
    assert f'value="{CUSTOMER}"' in html  # a new request starts from the same email


# --- Email Client --------------------------------------------------------------------------------

def test_email_client_sends_the_customer_a_link_in_both_parts(client, session, w):
    sign_in_as(client, w.avery)
    response = email_client(client, w, amount="40", message="Hi Pat,\nplease set it up.")
    assert response.status_code == 303
    assert response.location == accounts_url(w.agency)
    page = body(client.get(response.location))
    assert flash("success", f"Emailed {CUSTOMER} a secure link to pay at least $40.00 and take "
                            "Bayside Dental off agency billing. It stays on agency billing "
                            "until they do.") in page

    [message] = session.scalars(select(OutboxMessage)).all()
    [url] = emailed_links(session)
    assert (message.kind, message.to_address, message.subject, message.account_id) == (
        "billing_link", CUSTOMER, "Northwind Agency: set up billing for Bayside Dental",
        w.bayside.id)
    assert url.startswith(f"{BASE}/billing-link/")
    assert url in message.text_body
    assert f'<a href="{url}"' in message.html_body
    for part in (message.text_body, message.html_body):
        assert "$40.00" in part and "Bayside Dental" in part and "Northwind Agency" in part
        assert "please set it up." in part
    request = request_of(session, url)
    assert (request.sub_account_id, request.email, request.amount_cents, request.status) == (
        w.bayside.id, CUSTOMER, 4000, RequestStatus.PENDING)
    # still on agency billing until the customer pays
    assert session.get(Account, w.bayside.id).billing_mode == BillingMode.AGENCY
    assert Customer(client.application).open(url).status_code == 200


def test_the_link_is_built_from_the_configured_url_never_the_host_header(app, client, session,
                                                                         w):
    sign_in_as(client, w.avery)
    csrf = token(client)
    client.set_cookie("session", client.get_cookie("session").value, domain="evil.test")
    hosts = []

    def seen(sender, **extra):
        hosts.append(request.host)

    request_started.connect(seen, app)
    try:
        response = client.post(billing_url(w.agency, w.bayside, "remove"), data={
            "email": CUSTOMER, "amount": "25", "message": "", "csrf_token": csrf},
            headers={"Host": "evil.test", "X-Forwarded-Host": "evil.test",
                     "X-Forwarded-Proto": "https"})
    finally:
        request_started.disconnect(seen, app)
    assert hosts == ["evil.test"]  # the app saw the forged host
    assert response.status_code == 303, body(response)[:400]
    [url] = emailed_links(session)
    assert url.startswith(f"{BASE}/billing-link/")
    message = session.scalar(select(OutboxMessage))
    assert "evil.test" not in message.text_body and "evil.test" not in message.html_body


def test_an_htmx_email_client_redirects_the_whole_page(client, session, w):
    sign_in_as(client, w.avery)
    response = email_client(client, w, headers=HX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == accounts_url(w.agency)
    assert count(session, BillingRequest) == 1


def test_the_request_shows_in_the_dev_outbox(client, session, w):
    sign_in_as(client, w.avery)
    email_client(client, w)
    [url] = emailed_links(session)
    message = session.scalar(select(OutboxMessage))
    index = body(client.get("/dev/outbox"))
    assert f'<a href="/dev/outbox/{message.id}">Northwind Agency: set up billing for Bayside ' \
           "Dental</a>" in index
    assert f'<td data-label="To">{CUSTOMER}</td>' in index
    shown_message = body(client.get(f"/dev/outbox/{message.id}"))
    assert url in shown_message
    assert f'src="/dev/outbox/{message.id}/html"' in shown_message
    assert f'href="{url}"' in body(client.get(f"/dev/outbox/{message.id}/html"))


@pytest.mark.parametrize("amount,message", [
    ("24.99", "The starting balance must be at least $25.00."),
    ("25.001", "The starting balance can't have fractions of a cent: use at most two "
               "decimals."),
    ("-25", "The starting balance must be more than zero."),
    ("1e3", "The starting balance must be a dollar amount, like 25 or 25.00."),
    ("NaN", "The starting balance must be a dollar amount, like 25 or 25.00."),
    ("", "The starting balance is required."),
])
@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "page"])
def test_a_starting_balance_below_25_dollars_or_not_dollars_is_refused(client, session, w,
                                                                       amount, message, htmx):
    sign_in_as(client, w.avery)
    response = email_client(client, w, amount=amount, headers=HX if htmx else None)
    assert response.status_code == 422
    html = (assert_fragment(response, '<dialog class="confirm"') if htmx
            else assert_full_page(response))
    assert field_error("amount", message) in html
    assert f'value="{amount}"' in html  # what was typed, to correct
    assert count(session, BillingRequest) == 0
    assert count(session, OutboxMessage) == 0


def test_25_dollars_is_accepted(client, session, w):
    sign_in_as(client, w.avery)
    assert email_client(client, w, amount="25.00").status_code == 303
    assert session.scalar(select(BillingRequest.amount_cents)) == 2500


def test_a_bad_email_is_refused(client, session, w):
    sign_in_as(client, w.avery)
    response = email_client(client, w, email="not-an-email")
    assert response.status_code == 422
    assert field_error("email", "Enter the customer's email address, like name@example.com.") \
        in body(response)
    assert count(session, BillingRequest) == 0


def test_email_client_on_a_customer_billed_sub_account_is_refused(client, session, w):
    sign_in_as(client, w.avery)
    response = email_client(client, w, sub=w.harbor)
    assert response.status_code == 303
    assert flash("error", "Harbor Law already pays from its own balance (Balance from: "
                          "customer).") in body(client.get(response.location))
    assert count(session, BillingRequest) == 0


# --- Resend and Cancel request -------------------------------------------------------------------

def test_resend_emails_a_new_link_and_the_old_one_stops_working(client, session, w):
    sign_in_as(client, w.avery)
    email_client(client, w, amount="30")
    response = post(client, billing_url(w.agency, w.bayside, "resend"))
    assert response.status_code == 303
    assert flash("success", f"Sent {CUSTOMER} a new link for Bayside Dental; the earlier link "
                            "no longer works.") in body(client.get(response.location))
    old, new = emailed_links(session)
    assert old != new and new.startswith(f"{BASE}/billing-link/")
    assert request_of(session, old).status == RequestStatus.REPLACED
    assert request_of(session, new).amount_cents == 3000
    customer = Customer(client.application)
    assert_problem(customer.open(old), "revoked")
    assert_problem(customer.pay(old, amount="30"), "revoked")
    assert customer.open(new).status_code == 200
    assert customer.pay(new, amount="30").status_code == 200


def test_cancel_request_revokes_the_link(client, session, w):
    sign_in_as(client, w.ada)
    email_client(client, w)
    response = post(client, billing_url(w.agency, w.bayside, "cancel-request"))
    assert response.status_code == 303
    page = body(client.get(response.location))
    assert flash("success", f"Canceled the billing request to {CUSTOMER}: its link no longer "
                            "works. Bayside Dental stays on agency billing.") in page
    assert "Pending:" not in page
    [url] = emailed_links(session)
    assert request_of(session, url).status == RequestStatus.CANCELED
    assert_problem(Customer(client.application).open(url), "revoked")


def test_resend_or_cancel_without_a_pending_request_is_refused(client, session, w):
    sign_in_as(client, w.avery)
    for action in ("resend", "cancel-request"):
        response = post(client, billing_url(w.agency, w.bayside, action))
        assert response.status_code == 303
        assert flash("error", "There is no pending billing request for Bayside Dental.") in \
            body(client.get(response.location))
    assert count(session, BillingRequest) == 0


# --- the customer paid ---------------------------------------------------------------------------

def test_after_the_customer_pays_the_agency_sees_customer_billing(client, session, w):
    sign_in_as(client, w.avery)
    email_client(client, w)
    [url] = emailed_links(session)
    assert Customer(client.application).pay(url).status_code == 200
    assert billing_cells(client, w.agency)["Bayside Dental"] == "Balance from: customer"
    html = body(client.get(billing_url(w.agency, w.bayside), headers=HX))
    assert 'Balance from: <strong data-testid="billing-mode">customer</strong>' in html
    assert "Bayside Dental pays its usage from its own balance, now $25.00." in html
    assert "<h3>Add to Agency Billing</h3>" in html


# --- Add to Agency Billing -----------------------------------------------------------------------

@pytest.fixture
def harbor_billing(session, w):
    """Harbor Law's own billing: a Primary and a Backup card, auto recharge, $43.21."""
    f.card(session, w.harbor)
    f.card(session, w.harbor, "5555555555554444", role="backup")
    f.recharge_settings(session, w.harbor, "10", "50")
    f.funds(session, w.harbor, 4321)
    session.commit()


def test_add_to_agency_billing_moves_the_balance_and_removes_the_billing_information(
        client, session, w, harbor_billing):
    agency_before = session.get(Account, w.agency.id).balance_cents
    sign_in_as(client, w.ada)
    response = post(client, billing_url(w.agency, w.harbor, "add"), {"confirm": "yes"})
    assert response.status_code == 303
    assert response.location == accounts_url(w.agency)
    assert flash("success", "Harbor Law is on agency billing: its usage is paid from Northwind "
                            "Agency's balance. Its payment methods were removed and its auto "
                            "recharge is off. Harbor Law's available balance of $43.21 moved to "
                            "Northwind Agency's balance. Its payment history, receipts and "
                            "billing logs stay readable on its Billing Settings.") in \
        body(client.get(response.location))
    session.expire_all()
    harbor = session.get(Account, w.harbor.id)
    assert (harbor.billing_mode, harbor.balance_cents) == (BillingMode.AGENCY, 0)
    assert session.get(Account, w.agency.id).balance_cents == agency_before + 4321
    assert session.scalars(select(PaymentMethod).where(
        PaymentMethod.account_id == w.harbor.id, PaymentMethod.removed_at.is_(None))).all() == []
    assert set(session.scalars(select(PaymentMethod.role).where(
        PaymentMethod.account_id == w.harbor.id))) == {MethodRole.OTHER}
    settings = session.get(BillingSettings, w.harbor.id)
    assert (settings.recharge_threshold_cents, settings.recharge_amount_cents) == (None, None)
    out = session.scalar(select(LedgerEntry).where(LedgerEntry.kind == LedgerKind.TRANSFER_OUT))
    into = session.scalar(select(LedgerEntry).where(LedgerEntry.kind == LedgerKind.TRANSFER_IN))
    assert (out.account_id, out.amount_cents, out.for_account_id) == (w.harbor.id, -4321, None)
    assert (into.account_id, into.amount_cents, into.for_account_id) == (
        w.agency.id, 4321, w.harbor.id)
    assert (out.cause_ref, into.cause_ref) == (f"entry:{into.id}", f"entry:{out.id}")
    assert ledger.check(session) == []
    assert billing_cells(client, w.agency)["Harbor Law"] == "Balance from: agency"


def test_add_to_agency_billing_revokes_a_pending_request(client, session, w):
    url = issue(session, w)
    # moved to customer billing some other way, with the request still on record
    session.get(Account, w.bayside.id).billing_mode = BillingMode.CUSTOMER
    session.commit()
    sign_in_as(client, w.avery)
    assert post(client, billing_url(w.agency, w.bayside, "add"),
                {"confirm": "yes"}).status_code == 303
    assert request_of(session, url).status == RequestStatus.CANCELED
    assert session.get(Account, w.bayside.id).billing_mode == BillingMode.AGENCY
    assert_problem(Customer(client.application).open(url), "revoked")
    assert ledger.check(session) == []


@pytest.mark.parametrize("confirm", [None, "", "no", "YES"])
def test_add_to_agency_billing_needs_the_confirmation(client, session, w, harbor_billing,
                                                       confirm):
    before = snapshot(session)
    sign_in_as(client, w.avery)
    data = {} if confirm is None else {"confirm": confirm}
    response = post(client, billing_url(w.agency, w.harbor, "add"), data, headers=HX)
    assert response.status_code == 422
    html = assert_fragment(response, '<dialog class="confirm"')
    assert ('<p class="form-error" role="alert">Adding to agency billing needs the '
            "confirmation: nothing was changed.</p>") in html
    assert snapshot(session) == before


def test_add_to_agency_billing_on_an_agency_billed_sub_account_is_refused(client, session, w):
    before = snapshot(session)
    sign_in_as(client, w.avery)
    response = post(client, billing_url(w.agency, w.bayside, "add"), {"confirm": "yes"})
    assert response.status_code == 303
    assert flash("error", "Bayside Dental is already on agency billing.") in body(
        client.get(response.location))
    assert snapshot(session) == before


# --- who may -------------------------------------------------------------------------------------

ACTIONS = [("get", ""), ("post", "remove"), ("post", "resend"), ("post", "cancel-request"),
           ("post", "add")]


def _call(client, method, path):
    if method == "get":
        return client.get(path)
    return post(client, path, {"email": CUSTOMER, "amount": "25", "confirm": "yes"})


@pytest.mark.parametrize("method,action", ACTIONS)
def test_a_plain_agency_user_is_not_allowed(client, session, w, method, action):
    issue(session, w, sub=w.bayside)
    before = snapshot(session)
    sign_in_as(client, w.staff)
    for sub in (w.bayside, w.harbor):
        response = _call(client, method, billing_url(w.agency, sub, action))
        assert response.status_code == 403
        assert shown("Only the account's owners and admins can do that.") in body(response)
    assert snapshot(session) == before
    # the sub-accounts list: refused by the role matrix (a 404 before issue 15)
    assert client.get(accounts_url(w.agency)).status_code == 403


@pytest.mark.parametrize("method,action", ACTIONS)
def test_another_agencys_admin_gets_not_found(client, session, w, method, action):
    issue(session, w, sub=w.bayside)
    before = snapshot(session)
    sign_in_as(client, w.rex)
    for path in (billing_url(w.agency, w.bayside, action),  # Northwind's, by its own id
                 billing_url(w.rival, w.bayside, action),  # through Rival's own agency
                 billing_url(w.rival, w.harbor, action)):
        response = _call(client, method, path)
        assert response.status_code == 404, path
        assert NOT_FOUND in body(response)
    assert snapshot(session) == before


@pytest.mark.parametrize("method,action", ACTIONS)
def test_a_sub_account_of_another_agency_is_not_found(client, session, w, method, action):
    before = snapshot(session)
    sign_in_as(client, w.avery)
    for sub in (w.rival_sub, w.rival, w.agency):
        response = _call(client, method, billing_url(w.agency, sub, action))
        assert response.status_code == 404
    assert snapshot(session) == before


@pytest.mark.parametrize("method,action", ACTIONS)
def test_a_sub_accounts_own_admin_cannot_change_its_billing(client, session, w, method, action):
    before = snapshot(session)
    sign_in_as(client, w.bea)
    for path in (billing_url(w.agency, w.bayside, action),
                 f"/accounts/{w.bayside.id}/sub-accounts/{w.bayside.id}/billing"
                 + (f"/{action}" if action else "")):
        assert _call(client, method, path).status_code == 404
    assert snapshot(session) == before


def test_signing_in_is_required(client, session, w):
    response = client.get(billing_url(w.agency, w.bayside))
    assert response.status_code == 302
    assert "/login" in response.location


@pytest.mark.parametrize("action", ["remove", "resend", "cancel-request", "add"])
def test_the_agency_posts_need_the_csrf_token(client, session, w, harbor_billing, action):
    issue(session, w)
    before = snapshot(session)
    sign_in_as(client, w.avery)
    sub = w.harbor if action == "add" else w.bayside
    response = post(client, billing_url(w.agency, sub, action),
                    {"email": CUSTOMER, "amount": "25", "confirm": "yes"}, csrf=False)
    assert response.status_code == 400
    assert snapshot(session) == before
    response = client.post(billing_url(w.agency, sub, action), data={
        "email": CUSTOMER, "amount": "25", "confirm": "yes", "csrf_token": "forged"})
    assert response.status_code == 400
    assert snapshot(session) == before
