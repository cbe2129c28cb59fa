"""What the unit tests of the account lifecycle share (services lifecycle, agency, support and
numbers' restore): the times, event and row counts, and two small worlds to build on."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from portal.models import AccountEvent, AccountStatus, BillingMode
from tests import factories as f

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=5)
ST = AccountStatus


def events(session, account=None, kind=None) -> list[AccountEvent]:
    query = select(AccountEvent).order_by(AccountEvent.id)
    if account is not None:
        query = query.where(AccountEvent.account_id == account.id)
    if kind is not None:
        query = query.where(AccountEvent.kind == kind)
    return list(session.scalars(query))


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def set_status(session, account, status, canceled_at=T0 - timedelta(days=1)):
    account.status = status
    account.canceled_at = canceled_at if status == ST.CANCELED else None
    session.flush()


def solo(session):
    """Solo Shop and its admin, Sam Solo."""
    admin = f.user(session, name="Sam Solo")
    account = f.standalone(session, "Solo Shop", admin=admin)
    return account, admin


def northwind(session):
    """An agency with its owner, two subs (agency- and customer-billed) and numbers."""
    owner = f.user(session, email="owner@example.test", name="Avery Agency")
    agency = f.agency(session, "Northwind Agency", owner=owner)
    bayside = f.sub(session, agency, "Bayside Dental", billing=BillingMode.AGENCY)
    harbor = f.sub(session, agency, "Harbor Law", billing=BillingMode.CUSTOMER)
    numbers = {
        "agency": [f.number(session, agency, label="Agency line")],
        "bayside": [f.number(session, bayside, label="Main"), f.number(session, bayside)],
        "harbor": [f.number(session, harbor, label="Harbor line")],
    }
    return {"owner": owner, "agency": agency, "bayside": bayside, "harbor": harbor,
            "numbers": numbers}

