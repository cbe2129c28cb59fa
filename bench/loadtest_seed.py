"""The load test's database: migrated (`flask db upgrade`), the demo data (`flask seed-demo`'s
`demo.seed`), and on top of it the 20 metered accounts
that the simulated metering system posts usage for, with their users, cards and auto recharge,
and the world file (JSON) that tells the locustfile who is who.

    DATABASE_URL=... SECRET_KEY=... python bench/loadtest_seed.py WORLD.json

Run by bench/loadtest.sh on an empty database (it refuses one that has users): one process
for the three steps, rather than a `flask` command each (each start costs seconds of CPU on a
small machine). Every user's password is the demo's (`demo-password`).

The 20 metered accounts:
- 8 standalone accounts ("Load Standalone 01".."08"), each with an admin, a Primary card and
  auto recharge (below $20, back up to $40) and a $40 opening balance. Most have an approving
  Primary; 03 and 07 a Primary whose answer times out (4000 0000 0000 0259: the recharge stays
  pending until the jobs ask again) with an approving Backup; 05 a Primary that declines with
  an approving Backup (4000 0000 0000 0341: saved fine, every charge declined; every
  recharge goes to the Backup).
- 4 agencies ("Load Agency 1".."4"), each with an owner, an approving Primary and Backup, auto
  recharge (below $100, back up to $200) and a $200 opening balance, and 3 sub-accounts each
  (the 12 other metered accounts), each with its own admin. Sub 1 of every agency and sub 3 of
  agencies 1 and 2 start on customer billing (a card, auto recharge below $20 back up to $40,
  a $40 opening balance); the others start on agency billing. The agency's simulated owner
  switches them back and forth during the run (Add to Agency Billing; Remove from Agency
  Billing, paid by the customer through the emailed link).
"""

import json
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select  # noqa: E402

from portal import create_app  # noqa: E402
from portal.cli import demo  # noqa: E402
from portal.clock import now as clock_now  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import (  # noqa: E402
    Account,
    BillingMode,
    Call,
    Cause,
    LedgerKind,
    MethodRole,
    Role,
    TrackingNumber,
    User,
)
from portal.sandbox import testing  # noqa: E402
from portal.services import accounts, billing, ledger, numbers, payment_methods  # noqa: E402
from portal.services.gateway import SandboxGateway  # noqa: E402

DOMAIN = "loadtest.test"
STANDALONE = 8
AGENCIES = 4
SUBS_PER_AGENCY = 3
CALLS_PER_ACCOUNT = 60
APPROVE, APPROVE_2, AMEX = "4242424242424242", "5555555555554444", "378282246310005"
TIMEOUT, DECLINE = "4000000000000259", "4000000000000341"  # 0341: saved, charges declined
# Standalone account number -> (Primary, Backup or None)
STANDALONE_CARDS = {3: (TIMEOUT, APPROVE_2), 5: (DECLINE, APPROVE_2), 7: (TIMEOUT, APPROVE_2)}
# (agency number, sub number) that start on customer billing
CUSTOMER_BILLED = {(a, 1) for a in range(1, AGENCIES + 1)} | {(1, 3), (2, 3)}


def main(world_path: str) -> int:
    app = create_app()
    with app.app_context():
        session = db.session
        from flask_migrate import upgrade

        upgrade()
        if not demo.is_empty(session):
            print("loadtest_seed: the database has users already: give the load test an "
                  "empty one", file=sys.stderr)
            return 1
        demo.seed(session)
        session.commit()
        world = seed(session)
        session.commit()
    Path(world_path).write_text(json.dumps(world, indent=1))
    print(f"loadtest_seed: {len(world['metered'])} metered accounts, "
          f"{len(world['personas'])} personas, {len(world['agencies'])} agencies")
    return 0


def seed(session) -> dict:
    now = clock_now()
    today = now.date()
    gateway = SandboxGateway()
    # Every user gets the demo's password; its hash is reused (scrypt is slow on purpose).
    password_hash = session.scalar(select(User.password_hash)
                                   .where(User.email == "agency@demo.test"))
    if password_hash is None:
        raise SystemExit("loadtest_seed: the demo data is missing")
    counter = iter(range(100_000, 999_999))

    def user(email: str, name: str) -> User:
        u = User(email=email, name=name, password_hash=password_hash)
        session.add(u)
        session.flush()
        return u

    def card(account: Account, number: str, role: MethodRole | None = None):
        # Typed into the sandbox's form (its test helper gives the pm_sbx_ id), saved as New
        # Credit Card saves it. The sandbox writes through its own connection (the
        # processor's host), which on SQLite waits for this session's open writes: commit.
        session.commit()
        entered = testing.paying_card(number, exp_month=12, exp_year=today.year + 3,
                                      holder=f"{account.name} Payer", today=today)
        method = payment_methods.add(session, account, gateway, entered, "card")
        if role is not None and method.role != role:
            payment_methods.set_role(session, account, method.id, role.value)
        return method

    def fund(account: Account, dollars_: int) -> None:
        ledger.post(session, account, LedgerKind.PAYMENT, dollars_ * 100, "Opening balance",
                    f"loadtest-opening-{account.id}", Cause.USER,
                    now=now - timedelta(days=1))

    def furnish(account: Account) -> None:
        """Two tracking numbers and some calls: the pages have something to show."""
        for label in ("Main line", "Website"):
            numbers.add(session, account, f"+1628{next(counter):07d}", label=label)
        tracking = list(session.scalars(select(TrackingNumber)
                                        .where(TrackingNumber.account_id == account.id)))
        session.execute(insert(Call), [{
            "account_id": account.id, "tracking_number_id": tracking[i % 2].id,
            "caller_number": f"+1415{(account.id * 1000 + i) % 10_000_000:07d}",
            "caller_name": f"Caller {i}", "called_number": tracking[i % 2].number,
            "started_at": now - timedelta(hours=7 * i + 1), "duration_seconds": 30 + i,
            "source": demo.SOURCES[i % len(demo.SOURCES)],
        } for i in range(CALLS_PER_ACCOUNT)])

    metered, personas, agencies = [], [], []
    for n in range(1, STANDALONE + 1):
        email = f"load-solo-{n:02d}@{DOMAIN}"
        admin = user(email, f"Solo Admin {n:02d}")
        account = accounts.create_standalone(session, f"Load Standalone {n:02d}", "Pro")
        accounts.add_member(session, admin, account, Role.ADMIN)
        primary, backup = STANDALONE_CARDS.get(n, (APPROVE, None))
        card(account, primary, MethodRole.PRIMARY)
        if backup:
            card(account, backup, MethodRole.BACKUP)
        billing.set_auto_recharge(session, account, "20", "40")
        fund(account, 40)
        furnish(account)
        metered.append(account.id)
        personas.append({"email": email, "account_id": account.id, "kind": "standalone"})

    for a in range(1, AGENCIES + 1):
        email = f"load-agency-{a}@{DOMAIN}"
        owner = user(email, f"Agency Owner {a}")
        agency = accounts.create_agency(session, f"Load Agency {a}")
        accounts.add_member(session, owner, agency, Role.OWNER)
        card(agency, AMEX, MethodRole.PRIMARY)
        card(agency, APPROVE_2, MethodRole.BACKUP)
        billing.set_auto_recharge(session, agency, "100", "200")
        fund(agency, 200)
        furnish(agency)
        subs = []
        for s in range(1, SUBS_PER_AGENCY + 1):
            mode = BillingMode.CUSTOMER if (a, s) in CUSTOMER_BILLED else BillingMode.AGENCY
            sub = accounts.create_sub_account(session, agency, f"Load Agency {a} Sub {s}", mode)
            sub_email = f"load-sub-{a}-{s}@{DOMAIN}"
            accounts.add_member(session, user(sub_email, f"Sub Admin {a}-{s}"), sub,
                                Role.ADMIN)
            if mode == BillingMode.CUSTOMER:
                card(sub, APPROVE, MethodRole.PRIMARY)
                billing.set_auto_recharge(session, sub, "20", "40")
                fund(sub, 40)
            furnish(sub)
            subs.append(sub.id)
            metered.append(sub.id)
            personas.append({"email": sub_email, "account_id": sub.id, "kind": "sub"})
        agencies.append({"email": email, "agency_id": agency.id, "subs": subs})
        personas.append({"email": email, "account_id": agency.id, "kind": "agency"})

    # The demo's people too: a standalone admin, an agency owner, a customer-billed
    # sub-account's admin and a sub-account user (no billing pages).
    for email, name, kind in (("solo@demo.test", "Solo Plumbing", "standalone"),
                              ("agency@demo.test", "Northwind Agency", "agency"),
                              ("cedar@demo.test", "Cedar Law Group", "sub"),
                              ("sub@demo.test", "Bayside Dental", "user")):
        account_id = session.scalar(select(Account.id).where(Account.name == name))
        personas.append({"email": email, "account_id": account_id, "kind": kind})
    session.flush()
    return {"password": demo.PASSWORD, "metered": metered, "personas": personas,
            "agencies": agencies}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    raise SystemExit(main(sys.argv[1]))
