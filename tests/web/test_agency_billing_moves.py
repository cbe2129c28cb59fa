"""Issue 14, items 4, 5 and 7: moving a sub-account between agency and customer billing says
what moves and tells the people it affects.

- Item 4, Add to Agency Billing: the dialog names whose balance each number is and which way
  it moves (a debt the agency takes on, with its amount), the cards and auto recharge it
  loses, that its history stays readable; the sub-account's owners/admins and the customer on
  its last billing request are emailed; its own Payment History, receipts and Billing Logs
  stay readable, read-only, to the users who reach it.
- Item 5, after paying a billing link: the POST answers 303 to a thank-you GET (reloading it
  charges nothing), which links a receipt and says what happens next; the customer's receipt
  email and the agency's notice say the same.
- Item 7: a sub-account pays no plan fee, and its pages say what it is charged.
"""

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

import billing_links
from billing_links import tokens
from portal import clock, rules
from portal.models import (
    Account,
    BillingMode,
    BillingRequest,
    BillingSettings,
    Charge,
    OutboxMessage,
    PaymentMethod,
    Role,
    SandboxCharge,
)
from portal.services import charges
from portal.services.gateway import SandboxGateway
from tests import factories as f
from tests.conftest import HX
from tests.web.conftest import sign_in_as
from tests.web.lifecycle_world import post
from tests.web.link_world import (
    BASE,
    CUSTOMER,
    NOW,
    TIMEOUT,
    Customer,
    build,
    configure,
    count,
    issue,
    path_of,
)
from tests.web.pages import NOT_FOUND, assert_fragment, body, shown, text

AGENCY_BILLED = ("{} is paid from the agency balance: its billing is managed on the agency's "
                 "Billing Settings.")


@pytest.fixture
def w(app, session):
    clock.freeze(NOW)
    configure(app)
    return build(session)


@pytest.fixture
def customer(app):
    return Customer(app)


def billing_url(w, sub, action=""):
    return f"/accounts/{w.agency.id}/sub-accounts/{sub.id}/billing" + (
        f"/{action}" if action else "")


def account_url(account, path=""):
    return f"/accounts/{account.id}/billing/{path}"


def words_of(html: str) -> str:
    """The page's words as read: no space left where a tag ended before punctuation."""
    return re.sub(r" ([.,:;)])", r"\1", text(html))


def dialog(client, w, sub) -> str:
    return words_of(assert_fragment(client.get(billing_url(w, sub), headers=HX),
                                    '<dialog class="confirm"'))


def mail(session, kind):
    session.expire_all()
    return session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)
                           .order_by(OutboxMessage.to_address)).all()


def paid_through_link(session, w, customer, amount="25.00"):
    """Bayside Dental taken off agency billing the way the customer does it: the agency
    emails a link, the customer pays it. Returns the thank-you page's answer (the 303)."""
    url = issue(session, w, amount=amount)
    response = customer.pay(url, amount=amount, follow=False)
    assert response.status_code == 303, body(response)[:400]
    return url, response


# ================================================================ item 4: Add to Agency Billing

def test_the_dialog_says_whose_balance_moves_which_way_and_what_is_removed(client, session, w):
    f.card(session, w.harbor)
    f.card(session, w.harbor, "5555555555554444", role="backup")
    f.recharge_settings(session, w.harbor, "10", "50")
    f.funds(session, w.harbor, 8000)
    f.funds(session, w.agency, 10000)
    session.commit()
    sign_in_as(client, w.avery)
    words = dialog(client, w, w.harbor)
    assert ("Balance: Harbor Law's available balance of $80.00 moves to Northwind Agency's "
            "balance (Northwind Agency: $100.00 → $180.00; Harbor Law: $0.00).") in words
    assert ("Payment methods: Visa ending 4242 (Primary), Mastercard ending 4444 (Backup) are "
            "removed from Harbor Law and no longer charged.") in words
    assert ("Auto recharge: turned off (now: below $10.00, recharge up to $50.00).") in words
    assert ("History: Harbor Law's Payment History, receipts and Billing Logs stay readable "
            "(read-only) on its Billing Settings.") in words
    # the old wording read as the agency's own balance
    assert "added to your agency's current balance" not in words


def test_the_dialog_says_the_agency_takes_on_a_debt_with_its_amount(client, session, w):
    f.funds(session, w.harbor, -1240)
    f.funds(session, w.agency, 5000)
    session.commit()
    sign_in_as(client, w.ada)
    words = dialog(client, w, w.harbor)
    assert ("Debt: Harbor Law's balance is -$12.40. Northwind Agency takes on this debt of "
            "$12.40: it is taken from Northwind Agency's balance (Northwind Agency: $50.00 → "
            "$37.60; Harbor Law: $0.00).") in words
    assert "moves to Northwind Agency" not in words


def test_the_dialog_with_nothing_to_move(client, session, w):
    sign_in_as(client, w.avery)
    words = dialog(client, w, w.harbor)
    assert "Balance: Harbor Law's balance is $0.00: no money moves." in words
    assert "Payment methods: Harbor Law has none." in words
    assert "Auto recharge: already off." in words
    assert "Email: Harbor Law has no owners, admins or billing customer to tell." in words


def test_moving_emails_the_sub_accounts_admins_and_the_last_requests_customer(
        client, session, w, customer):
    f.member(session, f.user(session, email="owner@bayside.example"), w.bayside, Role.OWNER)
    f.member(session, f.user(session, email="user@bayside.example"), w.bayside, Role.USER)
    session.commit()
    paid_through_link(session, w, customer)  # Bayside pays its own: $25.00, a Visa Primary
    sign_in_as(client, w.avery)
    words = dialog(client, w, w.bayside)
    assert (f"Email: bea@example.test, owner@bayside.example, {CUSTOMER} are told") in words

    response = post(client, billing_url(w, w.bayside, "add"), {"confirm": "yes"})
    assert response.status_code == 303
    flash = text(body(client.get(response.location)))
    assert shown("Bayside Dental's available balance of $25.00 moved to Northwind Agency's "
                 "balance.") in flash
    assert f"Emailed bea@example.test, owner@bayside.example, {CUSTOMER}." in flash

    sent = mail(session, "billing_mode")
    # its owners and admins and the customer, once each; not its plain users, nor the agency
    assert sorted(m.to_address for m in sent) == sorted(
        ["bea@example.test", "owner@bayside.example", CUSTOMER])
    message = sent[0]
    assert message.subject == ("Bayside Dental is now paid from Northwind Agency's balance "
                               "(agency billing)")
    words = " ".join(message.text_body.split())
    assert ("Northwind Agency (avery@example.test) added Bayside Dental to agency billing: its "
            "usage is now paid from Northwind Agency's balance") in words
    assert ("Balance: Bayside Dental's available balance of $25.00 moved to Northwind Agency's "
            "balance. Bayside Dental's balance is now $0.00.") in words
    assert ("Payment methods removed: Visa ending 4242 (Primary). It is no longer charged for "
            "Bayside Dental.") in words
    assert "Auto recharge: it was off." in words
    assert ("History: Bayside Dental's Payment History, receipts and Billing Logs stay readable "
            "(read-only) on its Billing Settings.") in words
    assert "Bayside Dental is now on Northwind Agency" in message.html_body


def test_the_debt_email_says_the_agency_took_it_on(client, session, w):
    f.member(session, f.user(session, email="hal@harbor.example"), w.harbor, Role.ADMIN)
    f.card(session, w.harbor)
    f.recharge_settings(session, w.harbor, "10", "50")
    f.funds(session, w.harbor, -1240)
    session.commit()
    sign_in_as(client, w.avery)
    assert post(client, billing_url(w, w.harbor, "add"), {"confirm": "yes"}).status_code == 303
    flash = text(body(client.get(f"/accounts/{w.agency.id}/sub-accounts")))
    assert shown("Northwind Agency took on Harbor Law's debt of $12.40: it was taken from "
                 "Northwind Agency's balance.") in flash
    [message] = mail(session, "billing_mode")
    assert message.to_address == "hal@harbor.example"
    words = " ".join(message.text_body.split())
    assert ("Balance: Harbor Law's balance was -$12.40, a debt of $12.40. Northwind Agency took "
            "on that debt: $12.40 was taken from Northwind Agency's balance.") in words
    assert ("Auto recharge: turned off (it charged the Primary card when the balance fell below "
            "$10.00, up to $50.00).") in words


def test_a_refused_move_emails_nobody(client, session, w):
    sign_in_as(client, w.avery)
    response = post(client, billing_url(w, w.bayside, "add"), {"confirm": "yes"})  # agency-billed
    assert response.status_code == 303
    assert mail(session, "billing_mode") == []


@pytest.fixture
def moved(client, session, w, customer):
    """Bayside Dental paid its own bills (the link: $25.00 on a Visa, receipt R-…) and was
    then added back to agency billing."""
    paid_through_link(session, w, customer)
    sign_in_as(client, w.avery)
    assert post(client, billing_url(w, w.bayside, "add"), {"confirm": "yes"}).status_code == 303
    session.expire_all()
    assert session.get(Account, w.bayside.id).billing_mode == BillingMode.AGENCY
    return session.scalar(select(Charge))


@pytest.mark.parametrize("who", ["bea", "avery", "ada"])
def test_after_the_move_its_history_receipts_and_logs_stay_readable(client, session, w, moved,
                                                                    who):
    sign_in_as(client, getattr(w, who))  # its own admin, the agency's owner and admin
    html = body(client.get(account_url(w.bayside)))
    section = html[html.index('data-testid="past-billing"'):]
    receipt = f"/accounts/{w.bayside.id}/billing/payments/{moved.id}"
    assert f'href="{receipt}"' in section
    assert "Opening balance" in text(section) or "$25.00" in text(section)
    assert f'href="/accounts/{w.bayside.id}/billing/logs"' in html
    for path, words in ((f"payments/{moved.id}", moved.receipt_number),
                        ("payments", moved.receipt_number[:2]),
                        ("logs", "Balance moved to Northwind Agency"),
                        ("logs.csv", "Balance moved to Northwind Agency")):
        response = client.get(account_url(w.bayside, path))
        assert response.status_code == 200, path
        assert words in body(response), path
    pdf = client.get(account_url(w.bayside, f"payments/{moved.id}.pdf"))
    assert (pdf.status_code, pdf.mimetype) == (200, "application/pdf")


def test_its_history_pages_have_no_edit_controls(client, session, w, moved):
    sign_in_as(client, w.bea)
    for path in ("", "payments", "logs", f"payments/{moved.id}"):
        html = body(client.get(account_url(w.bayside, path)))
        main = html[html.index("<main"):]
        assert not re.search(r'<form[^>]*method="post"', main), path
        assert "hx-post" not in main, path
        for control in ("New Credit Card", "New ACH", "Make a Payment", "Remove",
                        "Save recharge settings", "Charge my monthly plan"):
            assert control not in main, (path, control)


POSTS = [("payment-methods/new-card", {"holder": "Pat Doe", "number": "4242424242424242",
                                       "exp_month": "12", "exp_year": "2030", "cvc": "123"}),
         ("auto-recharge", {"threshold": "20", "amount": "100", "confirm": "yes"}),
         ("critical-phone", {"phone": "+14155550134"}),
         ("service-address", {"address_line1": "1 Market St", "city": "San Francisco",
                              "region": "CA", "postal_code": "94105"}),
         ("direct-charge", {"direct_charge": "on"}),
         ("payments", {"method": "1", "amount": "25", "form_key": "ab" * 16})]


@pytest.mark.parametrize("path,data", POSTS, ids=[p for p, _ in POSTS])
def test_after_the_move_no_edit_route_is_allowed(client, session, w, moved, path, data):
    sign_in_as(client, w.bea)
    before = (count(session, PaymentMethod), count(session, Charge),
              count(session, BillingSettings), count(session, SandboxCharge))
    for headers in ({}, HX):
        response = post(client, account_url(w.bayside, path), data, headers=headers)
        assert response.status_code == 403, path
        assert shown(AGENCY_BILLED.format("Bayside Dental")) in body(response)
    assert (count(session, PaymentMethod), count(session, Charge),
            count(session, BillingSettings), count(session, SandboxCharge)) == before
    assert client.get(account_url(w.bayside, "payment-methods/new-card")).status_code == 403


def test_only_users_who_reach_the_sub_account_read_its_history(client, session, w, moved):
    sibling = f.user(session, email="hal@harbor.example")
    f.member(session, sibling, w.harbor, Role.ADMIN)
    session.commit()
    paths = ("", "payments", f"payments/{moved.id}", f"payments/{moved.id}.pdf", "logs",
             "logs.csv")
    # another agency's owner, a sibling sub-account's admin, the agency's plain user
    for user, status in ((w.rex, 404), (sibling, 404), (w.staff, 404)):
        sign_in_as(client, user)
        for path in paths:
            response = client.get(account_url(w.bayside, path))
            assert response.status_code == status, (user.email, path)
            assert moved.receipt_number not in body(response)
    sign_in_as(client, w.rex)
    assert NOT_FOUND in body(client.get(account_url(w.bayside, "payments")))


# ================================================================ item 5: after paying a link

def test_paying_answers_303_to_a_thank_you_page_that_reloads_without_charging(
        session, w, customer):
    url, response = paid_through_link(session, w, customer)
    location = path_of(response.headers["Location"])
    assert location.startswith("/billing-link/paid/")
    assert response.headers["Cache-Control"] == "no-store"
    for _ in range(3):  # reload, back and forward: GETs only
        page = customer.client.get(location)
        assert page.status_code == 200
        assert "<h1>Thank you: billing is set up</h1>" in body(page)
        assert page.headers["Referrer-Policy"] == "no-referrer"
    assert (count(session, Charge), count(session, SandboxCharge)) == (1, 1)


def test_the_thank_you_page_links_the_receipt_and_says_what_happens_next(session, w, customer):
    url, response = paid_through_link(session, w, customer, amount="40.00")
    html = body(customer.client.get(path_of(response.headers["Location"])))
    words = words_of(html)
    charge = session.scalar(select(Charge))
    assert f"View receipt {charge.receipt_number}" in words
    assert ("Balance Bayside Dental's available balance is $40.00. Its usage (tracking "
            "numbers, call minutes and the features it uses) is taken from this balance.") in words
    assert ("Auto recharge Off. This was a one-time payment: your card is not charged again "
            "unless you turn auto recharge on. When usage takes the balance below zero, Bayside "
            "Dental is paused: its numbers stop swapping on web pages and calls are not "
            "connected, until a payment brings the balance back to zero or more.") in words
    assert ("In Settings → Billing Settings you can turn on auto recharge (a threshold and a "
            "recharge amount you choose), make a payment, add a Backup card or change the "
            "Primary one, and see payment history, receipts and statements.") in words
    # issue 15: the customer who paid is invited as Bayside Dental's billing user
    assert ("Set up your sign-in to manage cards, payments and statements") in words
    # the default after a link payment: auto recharge stays off (the customer agreed to one
    # charge; the threshold is one they choose)
    assert session.get(BillingSettings, w.bayside.id) is None


def test_the_receipt_opens_without_signing_in_as_a_page_and_a_pdf(session, w, customer):
    url, response = paid_through_link(session, w, customer)
    page = customer.client.get(path_of(response.headers["Location"]))
    receipt = re.search(r'href="(/billing-link/receipt/[^"]+)" data-testid="receipt-link"',
                        body(page)).group(1)
    charge = session.scalar(select(Charge))
    html = body(customer.client.get(receipt))
    assert f"<title>Receipt {charge.receipt_number} · Bayside Dental</title>" in html
    assert "Visa ending 4242" in html and "$25.00" in html
    assert "Back to Billing Settings" not in html  # no sign-in here
    assert f'href="{receipt}/pdf"' in html
    pdf = customer.client.get(f"{receipt}/pdf")
    assert (pdf.status_code, pdf.mimetype) == (200, "application/pdf")


def test_a_changed_or_mismatched_receipt_token_is_refused(app, session, w, customer):
    url, response = paid_through_link(session, w, customer)
    token = response.headers["Location"].rsplit("/", 1)[1]
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "x" * 40):
        for page in ("paid", "receipt"):
            answer = customer.client.get(f"/billing-link/{page}/{bad}")
            assert answer.status_code == 404
            assert 'data-reason="tampered"' in body(answer)
    # a real link id with a charge of another link: refused
    other = f.card(session, w.harbor)
    charge = charges.start(session, w.harbor, other, charges.ChargePurpose.PAYMENT, 1000,
                           "other-payment", "Payment")
    session.commit()
    request = session.scalar(select(BillingRequest))
    forged = tokens.sign_receipt(billing_links.settings(app).keys, request.link_id, charge.id)
    assert customer.client.get(f"/billing-link/receipt/{forged}").status_code == 404


def test_the_receipt_link_expires(session, w, customer):
    url, response = paid_through_link(session, w, customer)
    location = path_of(response.headers["Location"])
    clock.freeze(NOW + rules.BILLING_LINK_RECEIPT_TTL - timedelta(minutes=1))
    assert customer.client.get(location).status_code == 200
    clock.freeze(NOW + rules.BILLING_LINK_RECEIPT_TTL + timedelta(minutes=1))
    assert customer.client.get(location).status_code == 410


def test_the_receipt_email_links_the_receipt_and_says_what_happens_next(session, w, customer):
    paid_through_link(session, w, customer)
    [receipt] = [m for m in mail(session, "receipt") if m.to_address == CUSTOMER]
    words = " ".join(receipt.text_body.split())
    link = re.search(rf"{re.escape(BASE)}(/billing-link/receipt/\S+)", receipt.text_body)
    assert link, receipt.text_body
    assert customer.client.get(link.group(1)).status_code == 200
    assert "Balance: Bayside Dental's available balance is $25.00." in words
    assert "Auto recharge is off: this was a one-time payment" in words
    assert ("When usage takes the balance below zero, Bayside Dental is paused (numbers stop "
            "swapping, calls are not connected)") in words
    assert "open Settings → Billing Settings to turn on auto recharge" in words


def test_the_agencys_notice_says_the_same(session, w, customer):
    paid_through_link(session, w, customer)
    notices = mail(session, "billing_switched")
    assert [m.to_address for m in notices] == ["ada@example.test", "avery@example.test"]
    words = " ".join(notices[0].text_body.split())
    charge = session.scalar(select(Charge))
    assert f"(receipt {charge.receipt_number})" in words
    assert "What happens next (the customer was told the same)" in words
    assert "Balance: Bayside Dental's available balance is $25.00." in words
    assert "Auto recharge is off: this was a one-time payment" in words
    assert "ask Northwind Agency for one" in words


def test_going_back_to_the_used_link_points_to_the_thank_you_page(session, w, customer):
    url, response = paid_through_link(session, w, customer)
    back = customer.open(url)
    assert back.status_code == 410
    html = body(back)
    assert 'data-reason="used"' in html
    link = re.search(r'<a href="([^"]+)" data-testid="paid-link">See the receipt and what '
                     r'happens next</a>', html)
    assert link and link.group(1) == path_of(response.headers["Location"])
    assert count(session, Charge) == 1


def test_a_processing_payment_reloads_to_its_outcome_without_charging_again(
        session, w, customer):
    url = issue(session, w)
    response = customer.pay(url, number=TIMEOUT, follow=False)
    assert response.status_code == 303
    location = path_of(response.headers["Location"])
    html = body(customer.client.get(location))
    assert "<h1>Payment processing</h1>" in html
    assert "Reload this page to see the outcome: reloading charges nothing." in text(html)
    customer.client.get(location)
    assert count(session, SandboxCharge) == 1
    clock.freeze(NOW + rules.CHARGE_RETRY_AFTER)
    charges.retry_pending(session, SandboxGateway())
    assert "<h1>Thank you: billing is set up</h1>" in body(customer.client.get(location))
    assert count(session, SandboxCharge) == 1


def test_the_pay_page_says_the_payment_is_one_time(session, w, customer):
    url = issue(session, w)
    assert ("This is a one-time payment: auto recharge stays off until you turn it on in "
            "Billing Settings.") in text(body(customer.open(url)))


# ================================================================ item 7: what a sub is charged

def test_a_customer_billed_sub_is_not_offered_a_plan_fee(client, session, w):
    f.card(session, w.harbor)
    session.commit()
    sign_in_as(client, w.avery)
    html = body(client.get(account_url(w.harbor)))
    words = text(html)
    assert "Charge my monthly plan subscription fee" not in html
    assert "$299.00" not in html
    assert ("No plan subscription fee is charged to Harbor Law: it is covered by Northwind "
            "Agency's Agency plan. Its balance pays only its usage") in words
    assert ("Harbor Law is charged for its usage only (tracking numbers, call minutes and the "
            "features it uses), from its own balance: no monthly plan fee") in words
    response = post(client, account_url(w.harbor, "direct-charge"), {"direct_charge": "on"})
    assert response.status_code == 403
    assert "Harbor Law pays no plan subscription fee" in text(body(response))
    assert session.get(BillingSettings, w.harbor.id) is None


@pytest.mark.parametrize("sub,paid_from", [("harbor", "from its own balance"),
                                           ("bayside", "paid from Northwind Agency's balance")])
def test_account_settings_say_what_a_sub_account_is_charged(client, session, w, sub, paid_from):
    sign_in_as(client, w.avery)
    account = getattr(w, sub)
    html = body(client.get(f"/accounts/{account.id}/"))
    words = text(html)
    assert "Plan No plan fee: covered by Northwind Agency's Agency plan" in words
    assert ("Charged for Its usage only (tracking numbers, call minutes and the features it "
            f"uses), {paid_from}") in words
    assert "<dt>Plan</dt><dd>Agency</dd>" not in html


def test_a_standalone_account_still_sees_its_plan_fee(client, session):
    owner = f.user(session, email="solo@example.test")
    solo = f.standalone(session, "Solo Shop", plan="Pro", admin=owner)
    session.commit()
    sign_in_as(client, owner)
    html = body(client.get(account_url(solo)))
    assert "Charge my monthly plan subscription fee (Pro: $179.00)" in text(html)
    assert "<dt>Plan</dt><dd>Pro</dd>" in body(client.get(f"/accounts/{solo.id}/"))


def test_a_payment_refunded_after_a_newer_link_says_so_on_its_thank_you_page(
        session, w, customer):
    """The processor answered late, after the agency sent a newer link: the payment is
    refunded, and the thank-you page (reloaded) says that instead of "billing is set up"."""
    url = issue(session, w)
    response = customer.pay(url, number=TIMEOUT, follow=False)
    location = path_of(response.headers["Location"])
    issue(session, w)  # a newer link replaces this one
    clock.freeze(NOW + rules.CHARGE_RETRY_AFTER)
    charges.retry_pending(session, SandboxGateway())
    words = words_of(body(customer.client.get(location)))
    assert "Payment received, and being refunded" in words
    assert ("Because Northwind Agency sent a newer billing link, Bayside Dental stays on "
            "Northwind Agency's billing and this payment is refunded in full to the same "
            "card") in words
    assert "billing is set up" not in words
    assert session.get(Account, w.bayside.id).billing_mode == BillingMode.AGENCY


def test_a_customer_who_is_also_an_admin_is_emailed_once(client, session, w, customer):
    f.member(session, f.user(session, email=CUSTOMER), w.bayside, Role.ADMIN)
    session.commit()
    paid_through_link(session, w, customer)
    sign_in_as(client, w.avery)
    assert post(client, billing_url(w, w.bayside, "add"), {"confirm": "yes"}).status_code == 303
    assert sorted(m.to_address for m in mail(session, "billing_mode")) == [
        "bea@example.test", CUSTOMER]


def test_a_link_token_is_no_receipt_token_nor_the_reverse(session, w, customer):
    url = issue(session, w)
    link_token = url.rsplit("/", 1)[1]
    for page in ("paid", "receipt"):
        answer = customer.client.get(f"/billing-link/{page}/{link_token}")
        assert answer.status_code == 404 and 'data-reason="tampered"' in body(answer)
    url, response = paid_through_link(session, w, customer)
    receipt_token = response.headers["Location"].rsplit("/", 1)[1]
    answer = customer.client.get(f"/billing-link/{receipt_token}")
    assert answer.status_code == 404 and 'data-reason="tampered"' in body(answer)
    assert count(session, Charge) == 1
