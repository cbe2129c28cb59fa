"""Small factory functions that build test data through the services."""

import itertools
from datetime import datetime, timedelta

from sqlalchemy import insert

from portal.clock import now
from portal.models import Account, AccountStatus, BillingMode, Call, NumberStatus, Role, User
from portal.services import accounts, numbers
from portal.services.auth import hash_password

PASSWORD = "correct horse battery"
_seq = itertools.count(1)
_hashes: dict[str, str] = {}


def _hash(password: str) -> str:
    # scrypt is slow on purpose; hash each distinct test password once per run
    if password not in _hashes:
        _hashes[password] = hash_password(password)
    return _hashes[password]


def _n() -> int:
    return next(_seq)


def user(session, email: str | None = None, password: str = PASSWORD, name: str = "") -> User:
    n = _n()
    u = User(email=email or f"user{n}@example.test", name=name or f"User {n}",
             password_hash=_hash(password))
    session.add(u)
    session.flush()
    return u


def standalone(session, name: str | None = None, plan: str = "Pro",
               admin: User | None = None, owner: User | None = None) -> Account:
    account = accounts.create_standalone(session, name or f"Standalone {_n()}", plan)
    if admin:
        accounts.add_member(session, admin, account, Role.ADMIN)
    if owner:
        accounts.add_member(session, owner, account, Role.OWNER)
    return account


def agency(session, name: str | None = None, owner: User | None = None) -> Account:
    account = accounts.create_agency(session, name or f"Agency {_n()}")
    if owner:
        accounts.add_member(session, owner, account, Role.OWNER)
    return account


def sub(session, parent: Account, name: str | None = None,
        billing: BillingMode = BillingMode.AGENCY, status: AccountStatus | None = None,
        canceled_at: datetime | None = None) -> Account:
    account = accounts.create_sub_account(session, parent, name or f"Sub {_n()}", billing)
    if canceled_at is not None:
        account.status, account.canceled_at = AccountStatus.CANCELED, canceled_at
    elif status is not None:
        account.status = status
    session.flush()
    return account


def member(session, u: User, account: Account, role: Role = Role.USER):
    return accounts.add_member(session, u, account, role)


def number(session, account: Account, released_at: datetime | None = None, label: str = ""):
    tracking = numbers.add(session, account, f"+1415{_n() % 10_000_000:07d}", label)
    if released_at is not None:
        tracking.status, tracking.released_at = NumberStatus.RELEASED, released_at
        session.flush()
    return tracking


def calls(session, account: Account, count: int, start: datetime | None = None,
          step: timedelta = timedelta(hours=1), caller_name: str = "Pat Caller",
          source: str = "Google Ads") -> None:
    """`count` calls to `account`, one every `step`, starting at `start`."""
    start = start or now() - step * count
    rows = [{
        "account_id": account.id, "caller_number": f"+1202555{i % 10000:04d}",
        "caller_name": caller_name, "called_number": "+14155550000",
        "started_at": start + step * i, "duration_seconds": 60 + i, "source": source,
    } for i in range(count)]
    if rows:
        session.execute(insert(Call), rows)


def call(session, account: Account, started_at: datetime, caller_name: str = "Pat Caller",
         caller_number: str = "+12025550100", called_number: str = "+14155550000",
         duration_seconds: int = 60, source: str = "Google Ads") -> Call:
    """One call to `account` at `started_at` (timezone-aware UTC)."""
    c = Call(account_id=account.id, caller_number=caller_number, caller_name=caller_name,
             called_number=called_number, started_at=started_at,
             duration_seconds=duration_seconds, source=source)
    session.add(c)
    session.flush()
    return c


# --------------------------------------------------------------- billing

def card(session, account: Account, number: str = "4242424242424242", role: str | None = None,
         gateway=None):
    """A card saved as New Credit Card saves it (issue 16): typed into the sandbox's form
    (a pm_sbx_ id, expiring 12/2030), then payment_methods.add (a SetupIntent to the
    account's processor customer; 3155's challenge completed). The first one becomes
    Primary; `role` ("primary", "backup", "other") sets it with the pencil.

    The test session is committed first: the sandbox writes its own tables through its own
    connection (as the processor's host would), which on SQLite waits for any write the
    session holds open. The app fixture empties every table after the test anyway."""
    from portal.sandbox.testing import paying_card

    gateway = gateway or _sandbox()
    session.commit()
    method = _saved(session, account, gateway,
                    paying_card(number, exp_month=12, exp_year=2030), "card")
    if role is not None and role != method.role:
        from portal.services import payment_methods

        payment_methods.set_role(session, account, method.id, role)
    return method


def bank_account(session, account: Account, account_number: str = "000123456789",
                 routing: str = "110000000", verify: bool = True, gateway=None):
    """A bank account saved through New ACH (issue 16): the sandbox's bank form gives a
    pm_sbx_ id, payment_methods.add stores it pending, and (`verify`) its two
    micro-deposits are confirmed. Committed first, as `card` is."""
    from portal.sandbox import cards
    from portal.sandbox.testing import bank_account as entered_bank_account
    from portal.services import payment_methods

    gateway = gateway or _sandbox()
    session.commit()
    method = _saved(session, account, gateway,
                    entered_bank_account(account_number, routing=routing), "ach")
    if verify:
        first, second = cards.MICRODEPOSITS
        session.commit()
        method = payment_methods.verify(session, account, gateway, method.id, str(first),
                                        str(second))
    return method


def _sandbox():
    from portal.services.gateway import SandboxGateway

    return SandboxGateway()


def _saved(session, account: Account, gateway, payment_method: str, kind: str):
    from portal.sandbox.testing import complete_challenge
    from portal.services import payment_methods

    method = payment_methods.add(session, account, gateway, payment_method, kind)
    if isinstance(method, payment_methods.ActionNeeded):  # 3155/3184: the bank's challenge
        session.commit()
        complete_challenge(gateway.setup_status(method.setup))
        method = payment_methods.confirm_setup(session, account, gateway, method.setup, kind)
    return method


def recharge_settings(session, account: Account, threshold: str = "10", amount: str = "50"):
    """Auto recharge on: below `threshold` dollars, recharge up to `amount` dollars."""
    from portal.services import billing

    return billing.set_auto_recharge(session, account, threshold, amount)


def funds(session, account: Account, cents: int, key: str | None = None,
          when: datetime | None = None):
    """A payment credited straight to the ledger (no card charge)."""
    from portal.models import Cause, LedgerKind
    from portal.services import ledger

    return ledger.post(session, account, LedgerKind.PAYMENT, cents, "Opening payment",
                       key or f"funds-{_n()}", Cause.USER, now=when)


def api_key(session, account: Account, maker: User | None = None,
            scopes: tuple[str, ...] = ("read", "write", "metering"),
            role: Role = Role.OWNER) -> str:
    """Issue 18: a live API key for `account` (made by `maker`, an owner of it by default);
    returns the token to send as `Authorization: Bearer <token>`."""
    from portal.services import api_keys

    if maker is None:
        maker = user(session)
        member(session, maker, account, Role.OWNER)
    made = api_keys.create(session, account, maker, Role.OWNER, f"Test key {_n()}",
                           list(scopes), role)
    session.commit()
    return made.token
