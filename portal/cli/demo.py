"""The demo data `make run` creates on an empty database (documented in the README), and
its command, `flask seed-demo`."""

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import click
from flask.cli import with_appcontext
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from portal import clock
from portal.clock import now as clock_now
from portal.extensions import db
from portal.models import (
    Account,
    AccountStatus,
    BillingMode,
    BillingSettings,
    Call,
    Cause,
    Charge,
    ChargePurpose,
    ChargeStatus,
    LedgerKind,
    MethodRole,
    PaymentMethod,
    PresetKind,
    Role,
    TrackingNumber,
    User,
)
from portal.sandbox import testing
from portal.services import (
    accounts,
    agents,
    budgets,
    ledger,
    lifecycle,
    numbers,
    payment_methods,
    presets,
    usage,
)
from portal.services.auth import hash_password
from portal.services.gateway import SandboxGateway

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


# The demo's history, in days before now: the agency first, then its sub-accounts (one
# every 20 days), then the standalone account; each account's numbers the day after it;
# cards and recharge settings before the 45 days of usage; agent statuses and presets last.
AGENCY_DAYS = 420
FIRST_SUB_DAYS = 400
SUB_EVERY_DAYS = 20
SOLO_DAYS = 380
CARDS_DAYS = 60
CONFIGURE_DAYS = 30


@contextmanager
def _dated(session: Session, moment: datetime) -> Iterator[None]:
    """The block as if it ran at `moment`: what it adds is flushed (its defaults, versions
    and events dated) before the clock goes back."""
    with clock.at(moment):
        yield
        session.flush()


def seed(session: Session, *, calls_per_account: int = 300, now: datetime | None = None) -> dict:
    """Create the demo users, accounts, numbers and calls, each dated where its history puts
    it (_dated): nothing is created after its first event. Returns counts. Commits before
    each card (the sandbox writes through its own connection); the caller commits the rest."""
    now = now or clock_now()
    rng = random.Random(20261123)
    password_hash = hash_password(PASSWORD)

    def ago(days: int) -> datetime:
        return now - timedelta(days=days)

    def user(email: str, name: str) -> User:
        u = User(email=email, name=name, password_hash=password_hash)
        session.add(u)
        session.flush()
        return u

    counter = iter(range(1000, 9999))
    with _dated(session, ago(AGENCY_DAYS)):
        agency_owner = user("agency@demo.test", "Avery Agency")
        northwind = accounts.create_agency(session, "Northwind Agency")
        accounts.add_member(session, agency_owner, northwind, Role.OWNER)
    with _dated(session, ago(AGENCY_DAYS - 1)):
        _numbers(session, northwind, counter, 2)

    created: list[Account] = [northwind]
    for i, (name, billing, status, canceled_days) in enumerate(NORTHWIND_SUBS):
        born = FIRST_SUB_DAYS - i * SUB_EVERY_DAYS
        with _dated(session, ago(born)):
            sub = accounts.create_sub_account(session, northwind, name, billing)
            if name == "Bayside Dental":
                accounts.add_member(session, user("sub@demo.test", "Sasha Sub"), sub,
                                    Role.USER)
            if name == "Cedar Law Group":  # the customer who can take it over (a transfer)
                accounts.add_member(session, user("cedar@demo.test", "Casey Cedar"), sub,
                                    Role.ADMIN)
        created.append(sub)
        with _dated(session, ago(born - 1)):
            _numbers(session, sub, counter, 3)
        if canceled_days is not None:
            with _dated(session, ago(canceled_days)):
                lifecycle.close(session, sub, agency_owner, now=ago(canceled_days))
        elif status == AccountStatus.SWAPPING_PAUSED:
            with _dated(session, ago(3)):
                lifecycle.pause_swapping(session, sub, agency_owner, now=ago(3))
        elif status == AccountStatus.CALLS_STOPPED:
            with _dated(session, ago(2)):
                lifecycle.stop_calls(session, sub, agency_owner, now=ago(2))
        elif status == AccountStatus.BILLING_PAUSED:  # usage took its balance below zero
            with _dated(session, ago(1)):
                ledger.post(session, sub, LedgerKind.USAGE, -1240, "Usage: 248 minutes",
                            "demo-usage-overdrawn", Cause.USAGE, now=ago(1))
    with _dated(session, ago(SOLO_DAYS)):
        solo_owner = user("solo@demo.test", "Sam Solo")
        solo = accounts.create_standalone(session, "Solo Plumbing", "Pro")
        accounts.add_member(session, solo_owner, solo, Role.OWNER)
    with _dated(session, ago(SOLO_DAYS - 1)):
        _numbers(session, solo, counter, 4)
    created.insert(1, solo)

    _billing(session, solo, northwind, created, rng, now)
    # Bayside Dental's monthly budget (issue 17), set a little above this month's usage so far:
    # the Accounts list shows its use, and Billing Settings its first alerts.
    bayside = next(a for a in created if a.name == "Bayside Dental")
    with _dated(session, now):
        spent = budgets.ledger_spend(session, bayside, now)
        budgets.set_budget(session, bayside, agency_owner,
                           max(2000, -(-spent * 5 // 4) // 1000 * 1000), [50, 80, 100])
    with _dated(session, ago(CONFIGURE_DAYS)):
        _configure(session, solo, northwind)

    total_calls = 0
    for account in created:
        total_calls += _calls(session, account, rng, calls_per_account, now)
    session.flush()
    return {"users": 4, "accounts": len(created), "calls": total_calls}


# (name, color, counts as available): on the agency and the standalone account
DEMO_STATUSES = [("Lunch", "#f59e0b", False), ("Training", "#1e88e5", False)]


def _configure(session: Session, solo: Account, northwind: Account) -> None:
    """Agent statuses on both demo accounts; tracking sources, a call queue and a preset of
    each kind on Solo Plumbing (Configure in the menu)."""
    for account in (northwind, solo):
        for name, color, available in DEMO_STATUSES:
            agents.add(session, account, name, color, available)
    source = presets.KINDS[PresetKind.TRACKING_SOURCE]
    queue = presets.KINDS[PresetKind.CALL_QUEUE]
    presets.create_record(session, solo, source, {
        "name": "Google Ads", "channel": "Google Ads", "landing_param": "utm_source=google",
        "swap_numbers": True})
    presets.create_record(session, solo, source, {
        "name": "Yelp listing", "channel": "Referral", "referrer_contains": "yelp.com",
        "swap_numbers": True})
    presets.create_record(session, solo, queue, {
        "name": "Front desk", "distribution": "round_robin", "ring_seconds": 20,
        "max_wait_minutes": 5, "voicemail": True})
    presets.create_preset(session, solo, PresetKind.TRACKING_SOURCE, {
        "name": "Paid search", "channel": "Bing Ads", "landing_param": "utm_medium=cpc",
        "swap_numbers": True})
    presets.create_preset(session, solo, PresetKind.CALL_QUEUE, {
        "name": "Busy season", "distribution": "simultaneous", "ring_seconds": 30,
        "max_wait_minutes": 10, "voicemail": True, "announce_position": True})


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


def _billing(session: Session, solo: Account, northwind: Account, created: list[Account],
             rng: random.Random, now: datetime) -> None:
    """Cards, recharge settings and 45 days of usage, recharges and one declined charge, so
    Billing Settings, Payment History and Billing Logs have something to show."""
    gateway = SandboxGateway()
    today = now.date()

    def card(account: Account, number: str, holder: str, role: MethodRole | None = None):
        """Typed into the sandbox's card form (its test helper: a pm_sbx_ id), then saved as
        New Credit Card saves it. The sandbox, as the processor's host, writes its own
        tables through its own connection, which on SQLite waits for any write this
        session holds open: what is seeded so far is committed first."""
        session.commit()
        entered = testing.paying_card(number, exp_month=8, exp_year=today.year + 3,
                                      holder=holder, today=today)
        method = payment_methods.add(session, account, gateway, entered, "card")
        if role is not None:
            payment_methods.set_role(session, account, method.id, role.value)
        return method

    with _dated(session, now - timedelta(days=CARDS_DAYS)):  # before the first usage
        visa = card(solo, "4242424242424242", "Sam Solo")
        card(solo, "5555555555554444", "Sam Solo", MethodRole.BACKUP)
        session.add(BillingSettings(account_id=solo.id, recharge_threshold_cents=1500,
                                    recharge_amount_cents=5000, critical_phone="+14155550134",
                                    address_line1="120 Market St", city="San Francisco",
                                    region="CA", postal_code="94105"))
        amex = card(northwind, "378282246310005", "Avery Agency")
        session.add(BillingSettings(account_id=northwind.id, recharge_threshold_cents=10000,
                                    recharge_amount_cents=50000, address_line1="5 Main St",
                                    city="Albany", region="NY", postal_code="12207"))
        cedar = next(a for a in created if a.name == "Cedar Law Group")
        card(cedar, "6011111111111117", "Casey Cedar")
        ledger.post(session, cedar, LedgerKind.PAYMENT, 8000, "Opening balance",
                    "demo-opening", Cause.USER, now=now - timedelta(days=50))
        declining = card(solo, testing.DECLINES_WHEN_CHARGED, "Sam Solo")
    on_agency = [a for a in created if a.is_sub and a.billing_mode == BillingMode.AGENCY
                 and not a.is_canceled]

    for account, method in ((solo, visa), (northwind, amex)):
        settings = session.get(BillingSettings, account.id)
        session.flush()
        for day in range(45, 0, -1):
            when = now - timedelta(days=day, hours=rng.randint(1, 20))
            payers = on_agency if account.is_agency else [account]
            for incurred in payers:
                items = {"minutes": rng.randint(20, 160), "numbers": rng.choice((0, 0, 1))}
                if rng.random() < 0.3:
                    items["transcriptions"] = rng.randint(5, 40)
                items = {k: v for k, v in items.items() if v}
                amount = usage.price(items)
                label = f"Usage ({incurred.name}): " if incurred is not account else "Usage: "
                ledger.post(session, account, LedgerKind.USAGE, -amount,
                            label + usage.describe(items), f"demo-usage-{incurred.id}-{day}",
                            Cause.USAGE, now=when,
                            for_account=incurred if incurred is not account else None)
            balance = session.get(Account, account.id).balance_cents
            if balance < settings.recharge_threshold_cents:
                _recharge(session, account, method, settings.recharge_amount_cents - balance,
                          when + timedelta(minutes=1))
    # A payment attempt the bank declined, shown as "failed" in Payment History.
    session.add(Charge(account_id=solo.id, method_id=declining.id,
                       purpose=ChargePurpose.PAYMENT, amount_cents=2500,
                       status=ChargeStatus.FAILED, failure_code="card_declined",
                       failure_message="The card was declined.", gateway_reference="ch_demo",
                       idempotency_key="demo-declined", description="Payment to Solo Plumbing",
                       attempts=1, created_at=now - timedelta(days=12),
                       settled_at=now - timedelta(days=12)))
    session.flush()


def _recharge(session: Session, account: Account, method: PaymentMethod, amount: int,
              when: datetime) -> None:
    charge = Charge(account_id=account.id, method_id=method.id, purpose=ChargePurpose.RECHARGE,
                    amount_cents=amount, status=ChargeStatus.SUCCEEDED,
                    gateway_reference=f"ch_demo_{when:%m%d%H%M}",
                    idempotency_key=f"demo-recharge-{account.id}-{when:%Y%m%d%H%M}",
                    description=f"Auto recharge of {account.name}", attempts=1,
                    created_at=when, last_attempt_at=when, settled_at=when)
    session.add(charge)
    session.flush()
    ledger.post(session, account, LedgerKind.RECHARGE, amount,
                f"Auto recharge: {method.short_label} ({charge.receipt_number})",
                f"charge:{charge.id}", Cause.CHARGE, cause_ref=str(charge.id), now=when)


@click.command("seed-demo")
@with_appcontext
@click.option("--force", is_flag=True, help="Seed even if the database has users.")
def seed_demo(force: bool) -> None:
    """Create the demo agency, accounts, users, numbers and calls (empty database)."""
    if not force and not is_empty(db.session):
        click.echo("The database already has data; demo not seeded.")
        return
    counts = seed(db.session)
    from portal.services import api_keys  # issue 18: the README's curl examples' key

    demo_key = api_keys.seed_demo_key(db.session)
    db.session.commit()
    click.echo(f"Demo seeded: {counts['users']} users, {counts['accounts']} accounts, "
               f"{counts['calls']} calls. Password: {PASSWORD}")
    if demo_key is not None:
        click.echo(f"API key of {demo_key.key.account.name}: {demo_key.token}")
