"""Single-task links (issue 15): for a customer-billed sub-account the agency sends, from the
billing dialog of the Billing column, "Ask the client to update their card" and "Ask the
client to pay" (an amount). Each is a signed one-time link opening a public page that does
only that task and names the sub-account and the agency; it expires like a billing link, is
used up by the task, replaced by a newer link of the same kind and revoked by closing.
Refused links, bad input and refused agency requests change nothing."""

import re
from datetime import timedelta

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select, update

import billing_links
import portal.models  # noqa: F401  (first: billing_links.models needs portal.models loaded)
from billing_links import tasks
from portal import clock, rules
from portal.models import (
    BillingRequest,
    Charge,
    LedgerEntry,
    LedgerKind,
    MethodKind,
    MethodRole,
    OutboxMessage,
    PaymentMethod,
    RequestStatus,
    TaskKind,
    TaskLink,
    TaskStatus,
)
from portal.sandbox import core
from portal.sandbox.cards import EnteredMethod
from portal.sandbox.testing import AUTHENTICATE_ONCE
from portal.services import lifecycle
from tests.web.conftest import sign_in_as
from tests.web.lifecycle_world import post
from tests.web.link_world import (
    BASE,
    DECLINED,
    NOW,
    Customer,
    assert_private,
    build,
    configure,
    count,
    entered,
    path_of,
)
from tests.web.pages import body, shown

CLIENT = "pat@harbor.example"

# What each refused link's page says (status, title, words of the explanation).
PROBLEMS = {
    "tampered": (404, "This link isn't valid", "was changed"),
    "expired": (410, "This link has expired", "limited time"),
    "used": (410, "This link was already used", "What it asked for is done"),
    "revoked": (410, "This link no longer works", "The agency sent a newer link"),
}


@pytest.fixture
def w(app, session):
    clock.freeze(NOW)
    configure(app)
    w = build(session)
    # Harbor Law pays from its own balance: the customer on its last billing request paid it,
    # and its card (Mastercard ending 4444) is Primary.
    session.add(BillingRequest(link_id="a" * 32, agency_id=w.agency.id,
                               sub_account_id=w.harbor.id, email=CLIENT, amount_cents=2500,
                               message="", status=RequestStatus.PAID, failed_attempts=0,
                               created_by_id=w.avery.id, created_at=NOW - timedelta(days=3),
                               expires_at=NOW, closed_at=NOW - timedelta(days=2)))
    w.old_card = card(session, w.harbor, "4444", MethodRole.PRIMARY)
    session.commit()
    return w


@pytest.fixture
def customer(app):
    return Customer(app)


def card(session, sub, last4, role):
    method = PaymentMethod(account_id=sub.id, kind=MethodKind.CARD, brand="Mastercard",
                           last4=last4, holder="Pat Doe", token=f"tok_{last4}", exp_month=12,
                           exp_year=2030, role=role, created_at=NOW - timedelta(days=2))
    session.add(method)
    session.flush()
    return method


def ask_url(w, sub, kind, agency=None) -> str:
    action = "ask-card" if kind == "card" else "ask-payment"
    return f"/accounts/{(agency or w.agency).id}/sub-accounts/{sub.id}/billing/{action}"


def ask(client, w, kind="card", sub=None, email=CLIENT, amount="40.00", agency=None,
        csrf=True):
    data = {f"ask_{kind}_email": email}
    if kind == "pay":
        data["ask_pay_amount"] = amount
    return post(client, ask_url(w, sub or w.harbor, kind, agency), data, csrf=csrf)


def sent_link(session, kind="card") -> str:
    """The link in the newest task email of this kind."""
    import re

    session.expire_all()
    text = session.scalars(select(OutboxMessage.text_body).where(
        OutboxMessage.kind == "task_link").order_by(OutboxMessage.id.desc())).first()
    return re.search(r"https?://\S+/task-link/[A-Za-z0-9_.\-]+", text).group(0)


def link_of(session, sub, kind) -> TaskLink:
    session.expire_all()
    return session.scalars(select(TaskLink).where(TaskLink.sub_account_id == sub.id,
                                                  TaskLink.kind == kind)
                           .order_by(TaskLink.id.desc())).first()


def issued(client, session, w, kind="card", **kw) -> str:
    sign_in_as(client, w.avery)
    assert ask(client, w, kind, **kw).status_code == 303
    return sent_link(session)


def state(session, sub) -> dict:
    """Everything a task changes on the sub-account, and the links themselves."""
    from portal.models import Account

    session.expire_all()
    return {
        "balance": session.get(Account, sub.id).balance_cents,
        "methods": session.execute(select(PaymentMethod.last4, PaymentMethod.role).where(
            PaymentMethod.account_id == sub.id, PaymentMethod.removed_at.is_(None))
            .order_by(PaymentMethod.id)).all(),
        "ledger": session.execute(select(LedgerEntry.kind, LedgerEntry.amount_cents).where(
            LedgerEntry.account_id == sub.id).order_by(LedgerEntry.id)).all(),
        "charges": count(session, Charge),
        "links": session.execute(select(TaskLink.id, TaskLink.status, TaskLink.failed_attempts)
                                 .order_by(TaskLink.id)).all(),
        "outbox": count(session, OutboxMessage),
    }


def assert_problem(response, reason):
    status, title, words = PROBLEMS[reason]
    assert response.status_code == status, body(response)[:400]
    html = body(response)
    assert f'data-reason="{reason}"' in html and f"<h1>{shown(title)}</h1>" in html
    assert shown(words) in html and "<form" not in html
    assert_private(response)


def submit(customer, url, csrf=True, **fields):
    """Post the task's form: the card fields (link_world.CARD, overridden) are typed into the
    sandbox's card form, whose payment-method id is what the page posts (issue 16)."""
    data = entered(customer.client.application, fields)
    if csrf:
        data["csrf_token"] = customer.token()
    return customer.client.post(path_of(url), data=data)


# --- the agency's side ---------------------------------------------------------------------------

def test_the_billing_dialog_of_a_customer_billed_sub_offers_both_tasks(client, session, w):
    sign_in_as(client, w.avery)
    html = body(client.get(f"/accounts/{w.agency.id}/sub-accounts/{w.harbor.id}/billing"))
    assert "Ask the client to update their card</button>" in html
    assert "Ask the client to pay</button>" in html
    assert f'name="ask_card_email" type="email" autocomplete="off" value="{CLIENT}"' in html
    # an agency-billed sub-account has no card to update: the dialog doesn't offer it
    html = body(client.get(f"/accounts/{w.agency.id}/sub-accounts/{w.bayside.id}/billing"))
    assert "Ask the client" not in html


def test_ask_to_update_the_card_emails_a_link_to_the_last_billing_customer(client, session, w):
    sign_in_as(client, w.avery)
    response = ask(client, w, "card")
    assert response.status_code == 303
    page = body(client.get(response.headers["Location"]))
    assert shown(f"Emailed {CLIENT} a secure link to update Harbor Law's card") in page
    link = link_of(session, w.harbor, TaskKind.CARD)
    assert (link.status, link.email, link.agency_id, link.created_by_id) == (
        TaskStatus.PENDING, CLIENT, w.agency.id, w.avery.id)
    assert link.expires_at == NOW + rules.BILLING_LINK_TTL  # like a billing link
    message = session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "task_link")).one()
    assert message.to_address == CLIENT
    assert message.subject == "Northwind Agency: update the card for Harbor Law"
    assert sent_link(session).startswith(f"{BASE}/task-link/")


def test_ask_to_pay_takes_an_amount_and_a_typed_email(client, session, w):
    sign_in_as(client, w.ada)  # an agency admin may too
    assert ask(client, w, "pay", email=" Other@Harbor.Example ", amount="1,250.50"
               ).status_code == 303
    link = link_of(session, w.harbor, TaskKind.PAY)
    assert (link.email, link.amount_cents) == ("other@harbor.example", 125050)
    message = session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "task_link")).one()
    assert message.subject == "Northwind Agency: pay $1,250.50 for Harbor Law"
    assert "$1,250.50" in message.text_body


@pytest.mark.parametrize("email, amount, field, message", [
    ("not-an-email", "40", "ask_pay_email",
     "Enter the client's email address, like name@example.com."),
    ("", "40", "ask_pay_email", "Enter the client's email address, like name@example.com."),
    (CLIENT, "0.99", "ask_pay_amount", "The amount must be at least $1.00."),
    (CLIENT, "", "ask_pay_amount", "The amount is required."),
    (CLIENT, "-5", "ask_pay_amount", "The amount must be more than zero."),
    (CLIENT, "12.345", "ask_pay_amount",
     "The amount can't have fractions of a cent: use at most two decimals."),
    (CLIENT, "ten", "ask_pay_amount", "The amount must be a dollar amount, like 25 or 25.00."),
    (CLIENT, "99999999", "ask_pay_amount", "The amount can be at most"),
])
def test_bad_input_says_why_and_changes_nothing(client, session, w, email, amount, field,
                                                message):
    sign_in_as(client, w.avery)
    before = state(session, w.harbor)
    response = ask(client, w, "pay", email=email, amount=amount)
    assert response.status_code == 422
    html = body(response)
    assert f'<p class="field-error" id="{field}-error">{shown(message)}' in html
    assert state(session, w.harbor) == before


def test_a_bad_card_request_email_says_why_and_changes_nothing(client, session, w):
    sign_in_as(client, w.avery)
    before = state(session, w.harbor)
    response = ask(client, w, "card", email="pat@")
    assert response.status_code == 422
    assert 'id="ask_card_email-error"' in body(response)
    assert state(session, w.harbor) == before


def test_an_agency_billed_sub_is_refused_with_the_reason(client, session, w):
    sign_in_as(client, w.avery)
    before = state(session, w.bayside)
    response = ask(client, w, "card", sub=w.bayside)
    assert response.status_code == 303
    assert shown("Bayside Dental is paid from Northwind Agency's balance") in body(
        client.get(response.headers["Location"]))
    assert state(session, w.bayside) == before and count(session, TaskLink) == 0


@pytest.mark.parametrize("who, status", [("rex", 404), ("staff", 403), ("bea", 404)])
def test_other_tenants_and_roles_are_refused(client, session, w, who, status):
    """Rival Agency's owner, Northwind's plain user and the sub-account's own admin."""
    sign_in_as(client, getattr(w, who))
    before = state(session, w.harbor)
    for kind in ("card", "pay"):
        assert ask(client, w, kind).status_code == status
    assert state(session, w.harbor) == before


def test_another_agencys_sub_through_ones_own_agency_is_not_found(client, session, w):
    sign_in_as(client, w.rex)
    response = ask(client, w, "card", sub=w.harbor, agency=w.rival)
    assert response.status_code == 404
    assert count(session, TaskLink) == 0


def test_without_the_csrf_token_nothing_is_sent(client, session, w):
    sign_in_as(client, w.avery)
    before = state(session, w.harbor)
    assert ask(client, w, "pay", csrf=False).status_code == 400
    assert state(session, w.harbor) == before


def test_signed_out_is_sent_to_sign_in(client, session, w):
    response = ask(client, w, "card")
    assert response.status_code in (302, 303)
    assert "/login" in response.headers["Location"]
    assert count(session, TaskLink) == 0 and count(session, OutboxMessage) == 0


# --- the client's card-update page ---------------------------------------------------------------

def test_the_card_page_names_the_account_the_agency_and_what_happens(client, session, w,
                                                                     customer):
    url = issued(client, session, w)
    response = customer.open(url)
    assert response.status_code == 200
    assert_private(response)
    html = body(response)
    assert "<h1>Update the card for Harbor Law</h1>" in html
    assert "<strong>Northwind Agency</strong> asks you to update" in html
    assert shown("The current Primary, Mastercard ending 4444, becomes the Backup") in html
    assert "Make a Payment" not in html and "amount" not in html  # only that task


def test_updating_the_card_makes_it_primary_and_the_old_one_backup(client, session, w,
                                                                   customer):
    url = issued(client, session, w)
    outbox = count(session, OutboxMessage)
    response = submit(customer, url)
    assert response.status_code == 303
    done = body(customer.client.get(path_of(response.headers["Location"])))
    assert "Visa ending 4242 is now Harbor Law's Primary card." in done
    assert shown("The Backup is Mastercard ending 4444.") in done
    after = state(session, w.harbor)
    assert after["methods"] == [("4444", MethodRole.BACKUP), ("4242", MethodRole.PRIMARY)]
    assert after["ledger"] == [] and after["charges"] == 0  # nothing charged
    new = session.scalars(select(PaymentMethod).where(PaymentMethod.last4 == "4242")).one()
    # the processor's id, saved to the sub-account's customer there (issue 16)
    assert new.token.startswith("pm_sbx_") and new.customer_ref.startswith("cus_sbx_")
    link = link_of(session, w.harbor, TaskKind.CARD)
    assert (link.status, link.method_id) == (TaskStatus.DONE, new.id)
    told = session.scalars(select(OutboxMessage.to_address).where(
        OutboxMessage.kind == "task_card_updated")).all()
    assert CLIENT in told and "avery@example.test" in told
    assert count(session, OutboxMessage) == outbox + len(told)
    # the link is used up: a second submit or a reopen changes nothing
    again = submit(customer, url, number="5555555555554444")
    assert_problem(again, "used")
    assert 'data-testid="paid-link">See the card saved</a>' in body(customer.open(url))
    assert state(session, w.harbor)["methods"] == after["methods"]


def test_with_a_backup_already_the_old_primary_stays_on_file(client, session, w, customer):
    card(session, w.harbor, "1881", MethodRole.BACKUP)
    session.commit()
    url = issued(client, session, w)
    assert shown("stays on file but is no longer charged; the Backup, Mastercard ending 1881, "
                 "stays the Backup.") in body(customer.open(url))
    assert submit(customer, url).status_code == 303
    assert state(session, w.harbor)["methods"] == [
        ("4444", MethodRole.OTHER), ("1881", MethodRole.BACKUP), ("4242", MethodRole.PRIMARY)]


def _pm(behaviour: str, brand: str = "Visa") -> str:
    """A payment method as only a processor could give it (the sandbox's form refuses
    these at entry): a Diners card, or one its bank refuses when it is saved."""
    return core.create_payment_method(EnteredMethod("card", behaviour, brand, "0004", 12, 2030,
                                                    "Pat Doe"))["id"]


@pytest.mark.parametrize("payment_method, message", [
    ("", "Enter your card in the card form (it needs JavaScript), then pay."),
    ("4242424242424241", "Enter your card in the card form (it needs JavaScript), then pay."),
    ("pm_sbx_unknown", "We couldn't read that card from the payment processor. Enter it again."),
    ("diners", "Diners Club cards are not accepted. We accept Visa, Mastercard, American "
               "Express and Discover."),
    ("declined", "The card was refused: "),
])
def test_a_bad_card_says_why_and_changes_nothing(app, client, session, w, customer,
                                                 payment_method, message):
    with app.app_context():
        if payment_method == "diners":
            payment_method = _pm("approved", "Diners Club")
        elif payment_method == "declined":
            payment_method = _pm("card_declined")
    url = issued(client, session, w)
    before = state(session, w.harbor)
    response = submit(customer, url, payment_method=payment_method)
    assert response.status_code == 422
    html = body(response)
    assert '<p class="field-error" id="payment_method-error">' + shown(message) in html
    assert "4242424242424241" not in html  # nothing of the card is echoed
    assert state(session, w.harbor) == before


def test_the_public_form_needs_its_csrf_token(client, session, w, customer):
    url = issued(client, session, w)
    before = state(session, w.harbor)
    assert submit(customer, url, csrf=False).status_code == 400
    assert state(session, w.harbor) == before


# --- refused links -------------------------------------------------------------------------------

def test_an_expired_link_is_refused(client, session, w, customer):
    url = issued(client, session, w)
    link = link_of(session, w.harbor, TaskKind.CARD)
    before = state(session, w.harbor)
    clock.freeze(link.expires_at)
    assert_problem(customer.open(url), "expired")
    assert_problem(submit(customer, url), "expired")
    assert state(session, w.harbor) == before


def test_a_newer_link_of_the_same_kind_replaces_the_older(client, session, w, customer):
    first = issued(client, session, w)
    pay = issued(client, session, w, "pay")  # another kind: both live
    second = issued(client, session, w)
    assert first != second
    before = state(session, w.harbor)
    assert_problem(customer.open(first), "revoked")
    assert_problem(submit(customer, first), "revoked")
    assert state(session, w.harbor) == before
    assert customer.open(second).status_code == 200
    assert customer.open(pay).status_code == 200


def test_closing_the_sub_account_revokes_its_links(client, session, w, customer):
    url = issued(client, session, w)
    lifecycle.close(session, w.harbor, w.avery)
    session.commit()
    assert link_of(session, w.harbor, TaskKind.CARD).status == TaskStatus.CANCELED
    assert_problem(customer.open(url), "revoked")


def test_a_sub_moved_to_agency_billing_stops_its_links(client, session, w, customer):
    url = issued(client, session, w, "pay")
    from portal.models import Account, BillingMode

    session.execute(update(Account).where(Account.id == w.harbor.id)
                    .values(billing_mode=BillingMode.AGENCY))
    session.commit()
    assert_problem(customer.open(url), "revoked")


def test_tampered_links_are_refused(app, client, session, w, customer):
    url = issued(client, session, w)
    token = url.rsplit("/", 1)[1]
    before = state(session, w.harbor)
    assert_problem(customer.open(url[:-2] + ("AA" if not url.endswith("AA") else "BB")),
                   "tampered")
    # a billing-link token (its own salt) is no task token, and the reverse
    keys = billing_links.settings(app).keys
    billing_token = URLSafeTimedSerializer(keys, salt="billing-link.v1").dumps(
        link_of(session, w.harbor, TaskKind.CARD).link_id)
    assert_problem(customer.client.get(f"/task-link/{billing_token}"), "tampered")
    assert customer.client.get(f"/billing-link/{token}").status_code == 404
    # signed with another key
    forged = URLSafeTimedSerializer(["not-the-key"], salt=tasks.SALT).dumps("b" * 32)
    assert_problem(submit(customer, f"/task-link/{forged}"), "tampered")
    assert_problem(customer.client.get("/task-link/done/garbage"), "tampered")
    assert state(session, w.harbor) == before


def test_task_pages_are_rate_limited(app, client, session, w, customer):
    url = issued(client, session, w)
    app.config["BILLING_LINK_RATE_LIMIT"] = 3
    statuses = [customer.open(url).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]


# --- the client's payment page -------------------------------------------------------------------

def test_paying_credits_the_balance_by_a_ledger_entry_with_a_receipt(client, session, w,
                                                                     customer):
    url = issued(client, session, w, "pay", amount="40.00")
    html = body(customer.open(url))
    assert "<h1>Pay $40.00 for Harbor Law</h1>" in html
    assert "<strong>Northwind Agency</strong> asks you to pay" in html
    before = state(session, w.harbor)
    response = submit(customer, url, amount="1.00", sub_account_id=str(w.rival_sub.id))
    assert response.status_code == 303  # the form's amount and ids are never read
    done = body(customer.client.get(path_of(response.headers["Location"])))
    assert "<h1>Thank you: payment made</h1>" in done
    after = state(session, w.harbor)
    assert after["balance"] == before["balance"] + 4000
    assert after["ledger"] == before["ledger"] + [(LedgerKind.PAYMENT, 4000)]
    assert after["methods"] == before["methods"]  # the paying card is not kept
    link = link_of(session, w.harbor, TaskKind.PAY)
    charge = session.get(Charge, link.charge_id)
    assert link.status == TaskStatus.DONE and charge.amount_cents == 4000
    assert charge.is_succeeded
    # the public receipt, and the receipt email linking it
    receipt = customer.client.get(path_of(
        done.split('data-testid="receipt-link"')[0].rsplit('href="', 1)[1].split('"')[0]))
    assert receipt.status_code == 200 and charge.receipt_number in body(receipt)
    mail = session.scalars(select(OutboxMessage).where(OutboxMessage.to_address == CLIENT,
                                                       OutboxMessage.kind == "receipt")).one()
    assert f"{BASE}/task-link/receipt/" in mail.text_body and "$40.00" in mail.text_body
    # used up: paying again charges nothing
    assert_problem(submit(customer, url), "used")
    assert 'data-testid="paid-link">See the payment and its receipt</a>' in body(
        customer.open(url))
    assert count(session, Charge) == after["charges"]


def test_a_declined_card_charges_nothing_and_the_link_still_works(client, session, w,
                                                                  customer):
    url = issued(client, session, w, "pay", amount="40.00")
    response = submit(customer, url, number=DECLINED)
    assert response.status_code == 402
    assert shown("The payment didn't go through") in body(response)
    after = state(session, w.harbor)
    assert after["balance"] == 0 and after["ledger"] == []
    assert link_of(session, w.harbor, TaskKind.PAY).status == TaskStatus.PENDING
    assert submit(customer, url).status_code == 303  # a new attempt, a new key
    assert state(session, w.harbor)["ledger"] == [(LedgerKind.PAYMENT, 4000)]
    assert count(session, Charge) == 2


def test_a_receipt_token_of_another_charge_is_refused(app, client, session, w, customer):
    url = issued(client, session, w, "pay")
    submit(customer, url)
    link = link_of(session, w.harbor, TaskKind.PAY)
    keys = billing_links.settings(app).keys
    other = tasks.sign_done(keys, link, link.charge_id + 1000)
    assert_problem(customer.client.get(f"/task-link/receipt/{other}"), "tampered")
    good = tasks.sign_done(keys, link, link.charge_id)
    assert customer.client.get(f"/task-link/receipt/{good}/pdf").status_code == 200


# --- races ---------------------------------------------------------------------------------------

TABS = 8


def race(app, url, customers_submit):
    """TABS browsers submit the same link at the same moment; their (status, html)."""
    import threading
    import traceback

    customers = [Customer(app, f"10.0.1.{i + 1}") for i in range(TABS)]
    for c in customers:
        assert c.open(url).status_code == 200
        c.token()
    barrier = threading.Barrier(TABS)
    results, errors = {}, []

    def run(i):
        try:
            barrier.wait(timeout=30)
            response = customers_submit(customers[i])
            results[i] = (response.status_code, body(response))
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(TABS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(results) == TABS
    return list(results.values())


def test_one_card_link_submitted_at_once_in_many_tabs_saves_one_card(app, client, session, w):
    url = issued(client, session, w)
    session.commit()
    results = race(app, url, lambda c: submit(c, url))
    statuses = sorted(status for status, _ in results)
    assert statuses.count(303) == 1 and statuses.count(410) == TABS - 1, statuses
    assert all('data-reason="used"' in html for status, html in results if status == 410)
    assert state(session, w.harbor)["methods"] == [("4444", MethodRole.BACKUP),
                                                   ("4242", MethodRole.PRIMARY)]
    assert count(session, PaymentMethod) == 2


def test_one_pay_link_submitted_at_once_in_many_tabs_charges_once(app, client, session, w):
    from portal.models import SandboxCharge

    url = issued(client, session, w, "pay", amount="40.00")
    session.commit()
    results = race(app, url, lambda c: submit(c, url))
    for status, html in results:
        assert status in (303, 410), (status, html[:600])
    assert count(session, Charge) == 1 and count(session, SandboxCharge) == 1
    assert count(session, PaymentMethod) == 2  # Harbor's card, and the one that paid
    after = state(session, w.harbor)
    assert after["ledger"] == [(LedgerKind.PAYMENT, 4000)] and after["balance"] == 4000
    assert link_of(session, w.harbor, TaskKind.PAY).status == TaskStatus.DONE


# --- 3-D Secure (issue 16) -----------------------------------------------------------------------

def test_a_card_that_asks_for_authentication_is_saved_once_the_challenge_completes(
        app, client, session, w, customer):
    url = issued(client, session, w)
    before = state(session, w.harbor)
    response = submit(customer, url, number=AUTHENTICATE_ONCE)
    assert response.status_code == 200
    html = body(response)
    secret = re.search(r'data-client-secret="([^"]+)"', html).group(1)
    assert "data-confirm-url=" in html
    assert state(session, w.harbor) == before  # nothing saved before the challenge
    with app.app_context():
        core.authenticate(secret.split("_secret_")[0], secret, True)
    done = customer.client.post(path_of(url) + "/confirm",
                                data={"csrf_token": customer.token()})
    assert done.status_code == 303
    assert ("3155", MethodRole.PRIMARY) in state(session, w.harbor)["methods"]
    assert link_of(session, w.harbor, TaskKind.CARD).status == TaskStatus.DONE


def test_a_failed_challenge_saves_nothing_and_the_link_still_works(
        app, client, session, w, customer):
    url = issued(client, session, w)
    before = state(session, w.harbor)
    html = body(submit(customer, url, number=AUTHENTICATE_ONCE))
    secret = re.search(r'data-client-secret="([^"]+)"', html).group(1)
    with app.app_context():
        core.authenticate(secret.split("_secret_")[0], secret, False)
    refused = customer.client.post(path_of(url) + "/confirm",
                                   data={"csrf_token": customer.token()})
    assert refused.status_code == 422
    assert "couldn&#39;t confirm it was you" in body(refused)
    assert state(session, w.harbor) == before
    assert submit(customer, url).status_code == 303
