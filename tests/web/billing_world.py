"""Shared data and helpers for the Billing Settings web tests.

The clock is frozen at NOW (set by each module's `bw` fixture), so card expiry, receipt dates
and the Billing Logs' dates are the same whatever day the tests run.
"""

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import delete, select

from portal.extensions import db
from portal.models import BillingMode, Charge, OutboxMessage, PaymentMethod, Role
from portal.sandbox.testing import bank_account, paying_card
from portal.services import charges, lifecycle, payment_methods
from portal.services.gateway import SandboxGateway
from tests import factories as f
from tests.web.lifecycle_world import post, token  # noqa: F401  (re-exported)
from tests.web.pages import body, shown

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

VISA = "4242424242424242"  # approves
MASTERCARD = "5555555555554444"  # approves
AMEX = "378282246310005"  # approves, 4-digit CVC
DECLINED = "4000000000000341"  # saves fine, every charge is declined: "The card was declined."
REFUSED_AT_ENTRY = "4000000000000002"  # the processor refuses it when it is saved
INSUFFICIENT = "4000000000009995"
DINERS = "36227206271667"
ROUTING = "110000000"  # passes the ABA checksum
BANK_ACCOUNT = "000123456789"

DECLINES_WHEN_CHARGED = "4000000000000341"  # saves fine, every charge is declined
AUTHENTICATE_ONCE = "4000002500003155"  # its bank asks the holder to confirm, once
AUTHENTICATE_ALWAYS = "4000002760003184"  # its bank asks on every payment made on session


def card_form(number=VISA, *, holder="Pat Doe", exp_month=12, exp_year=2030, **card) -> dict:
    """What New Credit Card posts once the processor's frame took the card: its pm id."""
    return {"payment_method": paying_card(number, holder=holder, exp_month=exp_month,
                                          exp_year=exp_year, **card)}


def ach_form(account=BANK_ACCOUNT, *, routing=ROUTING, holder="Pat Doe") -> dict:
    return {"payment_method": bank_account(account, routing=routing, holder=holder)}
ADDRESS = {"address_line1": "1 Market St", "address_line2": "Suite 400",
           "city": "San Francisco", "region": "CA", "postal_code": "94105"}

ADMINS_ONLY = "Only the account's owners and admins can do that."
# a role user refused a billing page (portal/roles.py: billing users may, issue 15)
BILLING_ONLY = "Only the account's owners, admins and billing users can open billing."
READ_ONLY = ("{} is canceled: you can read and export its data, but not change it. "
             "Reactivate it to make changes.")
AGENCY_BILLED = ("{} is paid from the agency balance: its billing is managed on the agency's "
                 "Billing Settings.")
FORM_KEY = re.compile(r'name="form_key" value="([0-9a-f]{32})"')

# Tables a refused billing request must leave exactly as they were (everything but the
# sign-in throttle, which no billing page touches anyway).
WATCHED = ("accounts", "memberships", "ledger_entries", "sandbox_charges", "payment_methods",
           "charges", "billing_settings", "billing_email_recipients", "account_events",
           "outbox", "users")


def build(session):
    """Every position the billing pages care about.

    - Acme Plumbing: a standalone account (admin ann, role-user vic).
    - Rival Shop: another tenant (admin rex).
    - Closed Shop: canceled 5 days ago (admin ann), with a Visa added before.
    - Northwind Agency (owner avery, admin ada, role-user staff): Bayside Dental on agency
      billing (its own admin bea), Harbor Law on customer billing (its own admin hal).
    """
    users = {key: f.user(session, email=f"{key}@example.test", name=key.capitalize())
             for key in ("ann", "vic", "rex", "avery", "ada", "staff", "bea", "hal")}
    w = SimpleNamespace(**users)
    w.solo = f.standalone(session, "Acme Plumbing", admin=w.ann)
    f.member(session, w.vic, w.solo, Role.USER)
    w.rival = f.standalone(session, "Rival Shop", admin=w.rex)
    w.closed = f.standalone(session, "Closed Shop", admin=w.ann)
    w.closed_visa = card(session, w.closed)
    lifecycle.close(session, w.closed, w.ann, now=NOW - timedelta(days=5))
    w.agency = f.agency(session, "Northwind Agency", owner=w.avery)
    f.member(session, w.ada, w.agency, Role.ADMIN)
    f.member(session, w.staff, w.agency, Role.USER)
    w.bayside = f.sub(session, w.agency, "Bayside Dental", billing=BillingMode.AGENCY)
    f.member(session, w.bea, w.bayside, Role.ADMIN)
    w.harbor = f.sub(session, w.agency, "Harbor Law", billing=BillingMode.CUSTOMER)
    f.member(session, w.hal, w.harbor, Role.ADMIN)
    # The world starts with an empty outbox: Closed Shop's close notice is set-up (closing's
    # notices are tested in tests/web/test_people_told.py).
    session.execute(delete(OutboxMessage).where(OutboxMessage.kind == "account_closed"))
    session.commit()
    return w


# --- data through the services (set-up, not what is tested) ----------------------------------

def card(session, account, number=VISA, cvc=None, holder="Pat Doe") -> PaymentMethod:
    """A card saved as New Credit Card saves it, expiring 12/2030 (see processor_card)."""
    return processor_card(session, account, number, holder, cvc=cvc, exp_year=2030)


def processor_card(session, account, number=VISA, holder="Pat Doe", **entered
                   ) -> PaymentMethod:
    """A card saved as New Credit Card saves it (issue 16): typed into the sandbox's form,
    saved to the account's processor customer, its bank's challenge completed if it asks.
    Committed before (the sandbox writes through its own connection, which on SQLite waits
    on any write the session holds) and after."""
    from portal.sandbox import core

    gateway = SandboxGateway()
    session.commit()
    method = payment_methods.add(session, account, gateway,
                                 paying_card(number, holder=holder, **entered), "card")
    if isinstance(method, payment_methods.ActionNeeded):
        session.commit()
        assert core.authenticate(method.setup, method.client_secret, True) is not None
        method = payment_methods.confirm_setup(session, account, gateway, method.setup, "card")
    session.commit()
    return method


def paid(session, account, method, amount="25.00", actor=None) -> Charge:
    """A one-time payment made through the service (charged by the sandbox)."""
    charge = charges.pay(session, account, actor, str(method.id), amount,
                         charges.new_form_key())
    session.commit()
    return charges.attempt(session, SandboxGateway(), charge)


def methods(session, account) -> list[tuple[str, str, str, bool]]:
    """(brand, last 4, role, removed) of every method the account ever had, oldest first."""
    session.expire_all()
    return [(m.brand, m.last4, m.role.value, m.removed_at is not None)
            for m in session.scalars(select(PaymentMethod).where(
                PaymentMethod.account_id == account.id).order_by(PaymentMethod.id))]


def snapshot(session) -> dict:
    """Every row of every table a billing request could change."""
    session.expire_all()
    tables = db.metadata.tables
    return {name: session.execute(select(tables[name]).order_by(
        *tables[name].primary_key.columns)).all() for name in WATCHED}


# --- reading the pages ---------------------------------------------------------------------------

def url(account, path: str = "") -> str:
    return f"/accounts/{account.id}/billing/{path}"


def section(html: str, section_id: str) -> str:
    """One <section class="card" id=...> of the Billing Settings page."""
    start = html.index(f'<section class="card" id="{section_id}"')
    end = html.index("</section>", start) + len("</section>")
    return html[start:end]


def tag(html: str, element_id: str) -> str:
    """The opening tag of the element with this id."""
    match = re.search(rf'<\w+ id="{re.escape(element_id)}"[^>]*>', html)
    assert match, f"no element #{element_id}"
    return match.group(0)


def field_error(field: str, message: str) -> str:
    return f'<p class="field-error" id="{field}-error">{shown(message)}</p>'


def form_error(message: str) -> str:
    return f'<p class="form-error" role="alert">{shown(message)}</p>'


def flash(category: str, message: str) -> str:
    return f'<p class="flash flash-{category}" role="status">{shown(message)}</p>'


def form_key(client, account) -> str:
    """The key the Make a Payment form carries, as drawn on the page."""
    match = FORM_KEY.search(body(client.get(url(account))))
    assert match, "no Make a Payment form"
    return match.group(1)


def balance(client, account) -> str:
    match = re.search(r'<strong data-testid="balance">([^<]*)</strong>',
                      body(client.get(url(account))))
    assert match, "no balance on the page"
    return match.group(1)


RECHARGE_CHARGE = re.compile(r'name="charge" value="([0-9]+:[0-9]+)"')


def recharge_confirmation(html: str) -> str:
    """What the auto recharge confirmation dialog carries back ("cents:method id")."""
    match = RECHARGE_CHARGE.search(html)
    assert match, "no auto recharge confirmation"
    return match.group(1)


def save_recharge_confirmed(client, account, form: dict, headers=None):
    """Save auto recharge settings that charge now: the save asks (nothing charged), then
    the confirmation as the dialog posts it."""
    asked = post(client, url(account, "auto-recharge"), form, headers=headers)
    assert asked.status_code == 200, body(asked)
    assert "Saving charges " in body(asked)
    return post(client, url(account, "auto-recharge"),
                {**form, "confirm": "yes", "charge": recharge_confirmation(body(asked))},
                headers=headers)
