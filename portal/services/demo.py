"""The demo data `make run` creates on an empty database (documented in the README)."""

import random
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from portal.clock import now as clock_now
from portal.models import (
    Account,
    AccountStatus,
    BillingMode,
    Call,
    Role,
    TrackingNumber,
    User,
)
from portal.services import accounts, lifecycle, numbers
from portal.services.auth import hash_password

PASSWORD = "demo-password"
SOURCES = ["Google Ads", "Google Organic", "Facebook", "Direct", "Bing", "Yelp", "Referral"]
FIRST = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kai",
         "Lena"]
LAST = ["Adams", "Brook", "Chen", "Diaz", "Evans", "Fox", "Garcia", "Hill", "Ito", "Khan", "Lopez"]

# (name, billing, status, days since canceled)
NORTHWIND_SUBS = [
    ("Bayside Dental", BillingMode.AGENCY, AccountStatus.ACTIVE, None),
    ("Cedar Law Group", BillingMode.CUSTOMER, AccountStatus.ACTIVE, None),
    ("Harbor Fitness", BillingMode.AGENCY, AccountStatus.SWAPPING_PAUSED, None),
    ("Lakeside Roofing", BillingMode.AGENCY, AccountStatus.CALLS_STOPPED, None),
    ("Riverside Vet", BillingMode.CUSTOMER, AccountStatus.BILLING_PAUSED, None),
    ("Oak Street Bakery", BillingMode.AGENCY, AccountStatus.CANCELED, 5),
    ("Pine Auto Repair", BillingMode.CUSTOMER, AccountStatus.CANCELED, 30),
    ("Quarry Coffee", BillingMode.AGENCY, AccountStatus.CANCELED, 70),
]


def is_empty(session: Session) -> bool:
    return session.scalar(select(func.count()).select_from(User)) == 0


def seed(session: Session, *, calls_per_account: int = 300, now: datetime | None = None) -> dict:
    """Create the demo users, accounts, numbers and calls. Returns counts."""
    now = now or clock_now()
    rng = random.Random(20261123)
    password_hash = hash_password(PASSWORD)

    def user(email: str, name: str) -> User:
        u = User(email=email, name=name, password_hash=password_hash)
        session.add(u)
        session.flush()
        return u

    agency_owner = user("agency@demo.test", "Avery Agency")
    solo_admin = user("solo@demo.test", "Sam Solo")
    sub_user = user("sub@demo.test", "Sasha Sub")
    cedar_admin = user("cedar@demo.test", "Casey Cedar")

    northwind = accounts.create_agency(session, "Northwind Agency")
    accounts.add_member(session, agency_owner, northwind, Role.OWNER)
    solo = accounts.create_standalone(session, "Solo Plumbing", "Pro")
    accounts.add_member(session, solo_admin, solo, Role.ADMIN)

    counter = iter(range(1000, 9999))
    created: list[Account] = [northwind, solo]
    for name, billing, status, canceled_days in NORTHWIND_SUBS:
        sub = accounts.create_sub_account(session, northwind, name, billing)
        sub.created_at = now - timedelta(days=400)
        created.append(sub)
        if name == "Bayside Dental":
            accounts.add_member(session, sub_user, sub, Role.USER)
        if name == "Cedar Law Group":  # the customer who can take it over (a transfer)
            accounts.add_member(session, cedar_admin, sub, Role.ADMIN)
        _numbers(session, sub, counter, 3)
        if canceled_days is not None:
            lifecycle.close(session, sub, agency_owner, now=now - timedelta(days=canceled_days))
        elif status == AccountStatus.SWAPPING_PAUSED:
            lifecycle.pause_swapping(session, sub, agency_owner, now=now - timedelta(days=3))
        elif status == AccountStatus.CALLS_STOPPED:
            lifecycle.stop_calls(session, sub, agency_owner, now=now - timedelta(days=2))
        elif status == AccountStatus.BILLING_PAUSED:
            sub.status = status  # the billing rules set this when the balance goes below zero
    _numbers(session, northwind, counter, 2)
    _numbers(session, solo, counter, 4)

    total_calls = 0
    for account in created:
        total_calls += _calls(session, account, rng, calls_per_account, now)
    session.flush()
    return {"users": 4, "accounts": len(created), "calls": total_calls}


def _numbers(session: Session, account: Account, counter, count: int) -> None:
    for i in range(count):
        numbers.add(session, account, f"+1415555{next(counter):04d}",
                    label=["Main line", "Website", "Google Ads", "Billboard"][i % 4])


def _calls(session: Session, account: Account, rng: random.Random, count: int,
           now: datetime) -> int:
    tracking = list(session.scalars(
        select(TrackingNumber).where(TrackingNumber.account_id == account.id)))
    if not tracking:
        return 0
    end = account.canceled_at or now
    rows = []
    for _ in range(count):
        number = rng.choice(tracking)
        started = end - timedelta(seconds=rng.randint(60, 90 * 86400))
        rows.append({
            "account_id": account.id,
            "tracking_number_id": number.id,
            "caller_number": f"+1{rng.randint(201, 989)}{rng.randint(2000000, 9999999)}",
            "caller_name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "called_number": number.number,
            "started_at": started,
            "duration_seconds": rng.randint(5, 1800),
            "source": rng.choice(SOURCES),
        })
    session.execute(insert(Call), rows)
    return count
