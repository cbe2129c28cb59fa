"""SQL statements per signed-in page (issue 13): the five pages bench/pages.py measures run at
most MAX_STATEMENTS statements each, the chrome (header, switcher, status select, menu)
included, and the count does not grow with the data: an agency with 30 sub-accounts, calls,
ledger entries and card charges against one with 60 of each (both over a page of sub-accounts
and of payments, so both count their pages).

Counted with a "before_cursor_execute" listener on the engine, around one GET each, the
session emptied first (the test's app context keeps the identity map between requests,
which would hide the user's load)."""

from datetime import timedelta

import pytest
from sqlalchemy import event, insert

from portal.clock import now
from portal.extensions import db
from portal.models import Cause, Charge, ChargePurpose, ChargeStatus, LedgerEntry, LedgerKind, Role
from tests import factories as f

MAX_STATEMENTS = 6
SMALL, LARGE = 30, 60
PAGES = {
    "Account Settings": "/",
    "Accounts": "/sub-accounts",
    "Billing Settings": "/billing/",
    "Billing Logs": "/billing/logs",
    "Call History": "/calls/",
}


def world(session, size: int):
    """An agency of `size` sub-accounts, calls, ledger entries and card charges; its owner
    also a member of a standalone account (so the header shows the switcher)."""
    owner = f.user(session)
    agency = f.agency(session, owner=owner)
    f.member(session, owner, f.standalone(session), Role.ADMIN)
    for _ in range(size):
        f.sub(session, agency)
    f.calls(session, agency, size)
    method = f.card(session, agency)
    start = now() - timedelta(days=size + 1)
    session.execute(insert(Charge), [{
        "account_id": agency.id, "method_id": method.id, "purpose": ChargePurpose.PAYMENT,
        "amount_cents": 1000 + i, "status": ChargeStatus.SUCCEEDED,
        "idempotency_key": f"q-{agency.id}-{i}", "description": "Payment",
        "created_at": start + timedelta(days=i)} for i in range(size)])
    balance = 0
    rows = []
    for i in range(size):
        balance += 500
        rows.append({"account_id": agency.id, "kind": LedgerKind.PAYMENT, "amount_cents": 500,
                     "balance_after_cents": balance, "description": f"Payment {i}",
                     "cause": Cause.USER, "cause_ref": "", "idempotency_key": f"q-{i}",
                     "created_at": start + timedelta(days=i)})
    session.execute(insert(LedgerEntry), rows)
    session.execute(agency.__table__.update().where(agency.__table__.c.id == agency.id)
                    .values(balance_cents=balance))
    session.commit()
    return owner, agency


def statements_per_page(client, session, owner, agency) -> dict[str, list[str]]:
    from tests.web.conftest import sign_in_as

    sign_in_as(client, owner)
    with client.session_transaction() as s:
        s["several_accounts"] = True  # as the sign-in leaves it for this user
    engine = db.engine
    counted = {}
    for name, path in PAGES.items():
        url = f"/accounts/{agency.id}{path}"
        assert client.get(url).status_code == 200, url  # first-time work not counted
        session.remove()
        found: list[str] = []

        def count(conn, cursor, statement, *rest, found=found):
            found.append(" ".join(statement.split()))

        event.listen(engine, "before_cursor_execute", count)
        try:
            response = client.get(url)
            response.get_data()
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert response.status_code == 200, url
        assert "Sign out" in response.get_data(as_text=True)  # the whole signed-in page
        counted[name] = found
    return counted


@pytest.fixture
def counts(client, session):
    small = statements_per_page(client, session, *world(session, SMALL))
    large = statements_per_page(client, session, *world(session, LARGE))
    report = "\n".join(
        f"{name}: {len(small[name])} at {SMALL} rows, {len(large[name])} at {LARGE}:\n    "
        + "\n    ".join(s[:160] for s in large[name]) for name in PAGES)
    return small, large, report


def test_signed_in_pages_run_at_most_six_statements_not_growing_with_data(counts):
    small, large, report = counts
    for name in PAGES:
        assert len(large[name]) == len(small[name]), report  # not growing with the data
        assert len(large[name]) <= MAX_STATEMENTS, report
