"""Shared data and helpers for the account-lifecycle web tests (issue 3).

The clock is frozen at NOW for these tests, so dates on the pages and every window are the
same whatever day the tests run.
"""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import select

from portal.models import (
    Account,
    AccountEvent,
    BillingMode,
    Call,
    Membership,
    Role,
    SupportRequest,
    TrackingNumber,
)
from portal.services import lifecycle
from tests import factories as f
from tests.conftest import csrf_token

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
READ_ONLY = ("{} is canceled: you can read and export its data, but not change it. "
             "Reactivate it to make changes.")
OWNERS_ONLY = "Only the account's owners can close or cancel it."  # portal/roles.py
ADMINS_ONLY = "Only the account's owners and admins can do that."


def token(client) -> str:
    """The session's CSRF token, as its pages' forms carry it (fetched once per session)."""
    cache = client.__dict__.setdefault("_csrf_tokens", {})
    with client.session_transaction() as s:
        raw = s.get("csrf_token")
    if raw not in cache:
        signed = csrf_token(client, "/login")
        with client.session_transaction() as s:
            raw = s["csrf_token"]
        cache[raw] = signed
    return cache[raw]


def post(client, path, data=None, csrf=True, headers=None):
    """A form POST as the page's form sends it: with the session's CSRF token."""
    data = dict(data or {})
    if csrf:
        data["csrf_token"] = token(client)
    return client.post(path, data=data, headers=headers or {})


def snapshot(session):
    """Everything the lifecycle actions change, to check that a refused one changed nothing."""
    session.expire_all()
    return {
        "accounts": session.execute(select(
            Account.id, Account.kind, Account.parent_id, Account.plan, Account.status,
            Account.billing_mode, Account.canceled_at, Account.data_purged_at,
        ).order_by(Account.id)).all(),
        "numbers": session.execute(select(
            TrackingNumber.id, TrackingNumber.account_id, TrackingNumber.status,
            TrackingNumber.released_at).order_by(TrackingNumber.id)).all(),
        "memberships": session.execute(select(
            Membership.user_id, Membership.account_id, Membership.role).order_by(
            Membership.id)).all(),
        "events": session.execute(select(AccountEvent.id).order_by(AccountEvent.id)).all(),
        "support": session.execute(select(
            SupportRequest.id, SupportRequest.status).order_by(SupportRequest.id)).all(),
        "calls": session.execute(select(Call.id).order_by(Call.id)).all(),
    }


def build(session):
    """Every position the lifecycle pages care about. (Sam owns his shops: only an owner
    closes an account, issue 15's role matrix.)

    - Solo Shop: an active standalone account (owner sam, role-user viewer), 2 numbers, a
      number released 3 days ago, calls.
    - Paused Shop: swapping paused (owner sam).
    - Closed Shop: canceled 5 days ago (owner sam, role-user viewer), its numbers released
      then, calls.
    - Northwind Agency (owner avery, admin ada, role-user staff): Bayside Dental (agency
      billing, 2 numbers, direct admin bea), Harbor Law (customer billing, 1 number),
      Oak Bakery (closed 5 days ago).
    - Rival Shop: another tenant (admin rex).
    - casey: a user with no account yet (a transfer's new owner).
    """
    users = {key: f.user(session, email=f"{key}@example.test", name=key.capitalize())
             for key in ("sam", "viewer", "avery", "ada", "staff", "bea", "rex", "casey")}
    w = SimpleNamespace(**users)
    w.solo = f.standalone(session, "Solo Shop", owner=w.sam)
    f.member(session, w.viewer, w.solo, Role.USER)
    w.solo_numbers = [f.number(session, w.solo, label="Main line"),
                      f.number(session, w.solo, label="Google Ads")]
    w.old_number = f.number(session, w.solo, label="Old flyer",
                            released_at=NOW - timedelta(days=3))
    f.calls(session, w.solo, 3, start=NOW - timedelta(days=2))

    w.paused = f.standalone(session, "Paused Shop", owner=w.sam)
    lifecycle.pause_swapping(session, w.paused, w.sam, now=NOW - timedelta(days=1))

    w.closed = f.standalone(session, "Closed Shop", owner=w.sam)
    f.member(session, w.viewer, w.closed, Role.USER)
    w.closed_number = f.number(session, w.closed, label="Closed line")
    f.calls(session, w.closed, 2, start=NOW - timedelta(days=20), caller_name="Old Caller")
    lifecycle.close(session, w.closed, w.sam, now=NOW - timedelta(days=5))

    w.agency = f.agency(session, "Northwind Agency", owner=w.avery)
    f.member(session, w.ada, w.agency, Role.ADMIN)
    f.member(session, w.staff, w.agency, Role.USER)
    w.bayside = f.sub(session, w.agency, "Bayside Dental", billing=BillingMode.AGENCY)
    f.member(session, w.bea, w.bayside, Role.ADMIN)
    w.bayside_numbers = [f.number(session, w.bayside, label="Front desk"),
                         f.number(session, w.bayside, label="Website")]
    w.harbor = f.sub(session, w.agency, "Harbor Law", billing=BillingMode.CUSTOMER)
    w.harbor_number = f.number(session, w.harbor, label="Harbor line")
    w.oak = f.sub(session, w.agency, "Oak Bakery")
    w.oak_number = f.number(session, w.oak, label="Oak line")
    lifecycle.close(session, w.oak, w.avery, now=NOW - timedelta(days=5))

    w.rival = f.standalone(session, "Rival Shop", admin=w.rex)
    session.commit()
    return w
