"""Shared data and helpers for the billing-link tests (Remove from / Add to Agency Billing and
the customer's public page).

The clock is frozen at NOW (each module's fixture sets it), so expiry dates, card expiry and
the dates on the pages are the same whatever day the tests run.
"""

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import func, select

import billing_links
import portal.models  # noqa: F401  (first: billing_links.models needs portal.models loaded)
from billing_links import service as link_service
from portal.mail import notices
from portal.models import (
    Account,
    BillingMode,
    BillingRequest,
    Charge,
    LedgerEntry,
    OutboxMessage,
    PaymentMethod,
    Role,
    SandboxCharge,
)
from portal.sandbox.testing import paying_card
from tests import factories as f
from tests.conftest import csrf_token
from tests.web.pages import body, shown

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BASE = "https://billing.portal.example"  # EXTERNAL_BASE_URL in these tests

VISA = "4242424242424242"  # approves
DECLINED = "4000000000000002"  # declines: "The card was declined."
TIMEOUT = "4000000000000259"  # charged, but the first answer never arrives
CARD = {"holder": "Pat Doe", "number": VISA, "exp_month": "12", "exp_year": "2030",
        "cvc": "123"}
CUSTOMER = "pat@bayside.example"
MESSAGE = "Please set up billing for Bayside Dental."

# What each problem page must say (status, title, words of the explanation).
PROBLEM_PAGES = {
    "tampered": (404, "This link isn't valid", "was changed", "ask the agency for a new link"),
    "expired": (410, "This link has expired", "limited time", "Ask the agency to send you a "
                                                              "new link"),
    "used": (410, "This link was already used", "The payment was made", "contact the agency"),
    "revoked": (410, "This link no longer works", "canceled this request or sent a newer link",
                "ask the agency for a new link"),
}


def build(session):
    """Every position the billing-link pages care about.

    - Northwind Agency (owner avery, admin ada, role-user staff):
      Bayside Dental on agency billing (its own admin bea), Harbor Law on customer billing.
    - Rival Agency (owner rex) with Rival Clinic on agency billing: another tenant.
    """
    users = {key: f.user(session, email=f"{key}@example.test", name=key.capitalize())
             for key in ("avery", "ada", "staff", "bea", "rex")}
    w = SimpleNamespace(**users)
    w.agency = f.agency(session, "Northwind Agency", owner=w.avery)
    f.member(session, w.ada, w.agency, Role.ADMIN)
    f.member(session, w.staff, w.agency, Role.USER)
    w.bayside = f.sub(session, w.agency, "Bayside Dental", billing=BillingMode.AGENCY)
    f.member(session, w.bea, w.bayside, Role.ADMIN)
    w.harbor = f.sub(session, w.agency, "Harbor Law", billing=BillingMode.CUSTOMER)
    w.rival = f.agency(session, "Rival Agency", owner=w.rex)
    w.rival_sub = f.sub(session, w.rival, "Rival Clinic", billing=BillingMode.AGENCY)
    session.commit()
    return w


def configure(app):
    """The settings every billing-link test runs with: a configured external URL, and a rate
    limit high enough that only the rate-limit tests meet it."""
    app.config["EXTERNAL_BASE_URL"] = BASE
    app.config["BILLING_LINK_RATE_LIMIT"] = 1000


# --- data through the services (set-up, not what is tested) --------------------------------------

def issue(session, w, sub=None, email=CUSTOMER, amount="25.00", message=MESSAGE,
          actor=None, now=None) -> str:
    """A billing request sent for `sub` (Bayside Dental) the way "Email Client" sends it;
    returns the emailed link."""
    sub = sub or w.bayside
    agency = session.get(Account, sub.parent_id)
    request, url = link_service.request_removal(
        session, billing_links.settings(current_app), agency, sub, actor or w.avery, email, amount,
        message, now=now)
    notices.link_request(session, agency, sub, request, url)
    session.commit()
    return url


def request_of(session, url) -> BillingRequest:
    """The stored request behind a link (read directly, not through the token check)."""
    from billing_links import tokens

    session.expire_all()
    link_id = tokens.verify(billing_links.settings(current_app).keys, token_of(url),
                            timedelta(days=365))
    return session.scalar(select(BillingRequest).where(BillingRequest.link_id == link_id))


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def path_of(url: str) -> str:
    return urlsplit(url).path


def emailed_links(session, kind="billing_link") -> list[str]:
    """The links in the request emails, oldest first (from the plain-text part)."""
    session.expire_all()
    texts = session.scalars(select(OutboxMessage.text_body).where(OutboxMessage.kind == kind)
                            .order_by(OutboxMessage.id)).all()
    return [m.group(0) for text in texts
            for m in re.finditer(r"https?://\S+/billing-link/[A-Za-z0-9_.\-]+", text)]


# --- the customer's browser ----------------------------------------------------------------------

def entered(app, fields: dict) -> dict:
    """What the page posts (issue 16): the card fields (CARD, overridden by `fields`) go to
    the sandbox's card form, which gives a payment-method id; the portal gets that id and
    the other fields. A given `payment_method` is posted as it is."""
    card = {k: fields.pop(k) for k in list(fields) if k in CARD}
    if "payment_method" not in fields:
        card = {**CARD, **card}
        with app.app_context():
            fields["payment_method"] = paying_card(
                card["number"], exp_month=int(card["exp_month"]),
                exp_year=int(card["exp_year"]), cvc=card["cvc"], holder=card["holder"])
    return fields


class Customer:
    """The customer's browser: no sign-in, its own client address."""

    def __init__(self, app, address="203.0.113.7"):
        self.client = app.test_client()
        self.client.environ_base["REMOTE_ADDR"] = address
        self._token = None

    def token(self) -> str:
        if self._token is None:
            self._token = csrf_token(self.client, "/login")
        return self._token

    def open(self, url, **kwargs):
        return self.client.get(path_of(url), **kwargs)

    def pay(self, url, amount="25.00", csrf=True, follow=True, **fields):
        """Submit the form. A payment made (or processing) answers 303 to the thank-you page,
        which the browser then GETs: with `follow`, that page is returned (the 303 is kept in
        `self.redirect`); without it, the POST's own answer."""
        data = {"amount": amount, **entered(self.client.application, fields)}
        if csrf:
            data["csrf_token"] = self.token()
        response = self.client.post(path_of(url), data=data)
        self.redirect = None
        if follow and response.status_code == 303:
            self.redirect = response
            return self.client.get(path_of(response.headers["Location"]))
        return response


# --- reading the state ---------------------------------------------------------------------------

def count(session, model, *where) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def money_moved(session) -> dict:
    """What a refused link must leave untouched: charges and the processor's record."""
    return {"charges": count(session, Charge), "sandbox": count(session, SandboxCharge),
            "ledger": count(session, LedgerEntry)}


def nothing_charged(session) -> dict:
    return {"charges": 0, "sandbox": 0, "ledger": 0}


def sub_state(session, sub) -> dict:
    """The sub-account's billing as the customer's payment would change it."""
    session.expire_all()
    account = session.get(Account, sub.id)
    return {
        "billing": account.billing_mode.value,
        "balance": account.balance_cents,
        "methods": session.execute(select(PaymentMethod.last4, PaymentMethod.role).where(
            PaymentMethod.account_id == sub.id, PaymentMethod.removed_at.is_(None))
            .order_by(PaymentMethod.id)).all(),
        "ledger": session.execute(select(LedgerEntry.kind, LedgerEntry.amount_cents).where(
            LedgerEntry.account_id == sub.id).order_by(LedgerEntry.id)).all(),
    }


# Tables a refused agency action must leave exactly as they were.
WATCHED = ("accounts", "billing_requests", "ledger_entries", "payment_methods", "charges",
           "sandbox_charges", "billing_settings", "account_events", "outbox")


def snapshot(session) -> dict:
    from portal.extensions import db

    session.expire_all()
    tables = db.metadata.tables
    return {name: session.execute(select(tables[name]).order_by(
        *tables[name].primary_key.columns)).all() for name in WATCHED}


def agency_billed(sub_balance=0) -> dict:
    return {"billing": "agency", "balance": sub_balance, "methods": [], "ledger": []}


def assert_problem(response, reason: str) -> str:
    """A clear page saying what happened (and no payment), with its 4xx status."""
    status, title, what, next_step = PROBLEM_PAGES[reason]
    assert response.status_code == status, body(response)[:500]
    html = body(response)
    assert f'data-testid="link-problem" data-reason="{reason}"' in html
    assert f"<h1>{shown(title)}</h1>" in html
    assert shown(what) in html and shown(next_step) in html
    if reason != "used":  # the used page is checked on its own: a payment WAS taken
        assert "No payment was taken." in html
    assert "<form" not in html
    assert_private(response)
    return html


def assert_private(response) -> None:
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"


def done_text(sub="Bayside Dental", agency="Northwind Agency") -> str:
    return shown(f"{sub} now pays its usage from its own balance. {agency} has been told.")
