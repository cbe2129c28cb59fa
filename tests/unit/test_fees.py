from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.models import (
    Account,
    AccountStatus,
    BillingMode,
    Cause,
    Charge,
    ChargePurpose,
    ChargeStatus,
    LedgerEntry,
    LedgerKind,
    OutboxMessage,
    Role,
)
from portal.services import billing, fees, ledger, usage
from portal.services.gateway import SandboxGateway
from tests import factories as f

CREATED = datetime(2026, 10, 10, 9, 0, tzinfo=UTC)
RUN = datetime(2026, 11, 1, 0, 5, tzinfo=UTC)  # the job on the 1st of November
ADDRESS = {"address_line1": "1 Market St", "city": "San Francisco", "postal_code": "94105"}


@pytest.fixture
def gw(app):
    clock.freeze(CREATED)
    return SandboxGateway()


def at(moment):
    clock.freeze(moment)


def rows(session, account):
    return [tuple(row) for row in session.execute(
        select(LedgerEntry.kind, LedgerEntry.amount_cents, LedgerEntry.description,
               LedgerEntry.idempotency_key)
        .where(LedgerEntry.account_id == account.id,
               LedgerEntry.kind.not_in((LedgerKind.USAGE, LedgerKind.PAYMENT))
               | (LedgerEntry.created_at >= RUN))
        .order_by(LedgerEntry.id))]


def use(session, account, cents_of_minutes, key, when):
    at(when)
    usage.post(session, account, {"minutes": cents_of_minutes // 5}, key)


def run(session, gw, now=RUN):
    at(now)
    return fees.run_monthly(session, gw, now)


def with_address(session, account, region):
    billing.set_service_address(session, account, {**ADDRESS, "region": region})


@pytest.mark.parametrize("usage_cents,bps,tax", [
    (1000, 725, 73),  # 72.5 rounds half up
    (200, 725, 15),  # 14.5
    (1234, 725, 89),  # 89.465
    (69, 725, 5),  # 5.0025
    (1, 725, 0),
    (0, 725, 0),
    (10_000, 600, 600),
    (12_345, 625, 772),  # 771.5625
    (5000, 0, 0),
])
def test_tax_is_rounded_half_up_to_the_cent(usage_cents, bps, tax):
    assert fees.tax_cents(usage_cents, bps) == tax


def test_the_plan_fee_and_the_tax_on_last_months_usage(session, gw):
    account = f.standalone(session, "Harbor Dental", plan="Pro")
    with_address(session, account, "CA")
    use(session, account, 500, "sep", datetime(2026, 9, 30, 23, 59, tzinfo=UTC))  # not October
    use(session, account, 600, "oct-1", datetime(2026, 10, 1, 0, 0, tzinfo=UTC))
    use(session, account, 400, "oct-31", datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC))
    use(session, account, 700, "nov", datetime(2026, 11, 1, 0, 1, tzinfo=UTC))  # not October
    result = run(session, gw)
    assert (result.month, result.fees, result.taxes, result.direct_charges) == (
        "2026-11", 1, 1, 0)
    assert rows(session, account)[-2:] == [
        (LedgerKind.PLAN_FEE, -17900, "Plan fee: Pro, November 2026", "plan-fee:2026-11"),
        (LedgerKind.TAX, -73, "Sales tax (CA 7.25%) on October 2026 usage of $10.00",
         "tax:2026-10"),
    ]
    fee_entry = session.scalar(select(LedgerEntry).where(LedgerEntry.kind == LedgerKind.PLAN_FEE))
    assert (fee_entry.created_at, fee_entry.cause) == (RUN, Cause.JOB)
    assert session.get(Account, account.id).balance_cents == -(500 + 600 + 400 + 700 + 17900
                                                               + 73)
    assert ledger.check(session) == []


@pytest.mark.parametrize("plan,fee", [("Starter", 3900), ("Essentials", 7900), ("Pro", 17900),
                                      ("Performance", 49900), ("Marketing Lite", 1900)])
def test_each_plan_has_its_fee(session, gw, plan, fee):
    account = f.standalone(session, plan=plan)
    run(session, gw)
    assert rows(session, account) == [
        (LedgerKind.PLAN_FEE, -fee, f"Plan fee: {plan}, November 2026", "plan-fee:2026-11")]


def test_no_tax_where_the_state_has_none_or_without_an_address(session, gw):
    oregon = f.standalone(session, plan="Starter")
    with_address(session, oregon, "OR")
    nowhere = f.standalone(session, plan="Starter")
    quiet = f.standalone(session, plan="Starter")
    with_address(session, quiet, "NY")
    use(session, oregon, 5000, "u1", datetime(2026, 10, 20, tzinfo=UTC))
    use(session, nowhere, 5000, "u2", datetime(2026, 10, 20, tzinfo=UTC))
    result = run(session, gw)
    assert (result.fees, result.taxes) == (3, 0)
    for account in (oregon, nowhere, quiet):
        assert [r[0] for r in rows(session, account)] == [LedgerKind.PLAN_FEE]


def test_an_agency_pays_its_fee_and_the_tax_on_its_sub_accounts_usage(session, gw):
    agency = f.agency(session, "Acme Agency")
    with_address(session, agency, "TX")
    on_agency = f.sub(session, agency, billing=BillingMode.AGENCY)
    own = f.sub(session, agency, billing=BillingMode.CUSTOMER)
    use(session, on_agency, 400, "a1", datetime(2026, 10, 20, tzinfo=UTC))
    use(session, own, 10_000, "o1", datetime(2026, 10, 20, tzinfo=UTC))
    result = run(session, gw)
    assert (result.fees, result.taxes) == (1, 1)
    assert rows(session, agency) == [
        (LedgerKind.PLAN_FEE, -29900, "Plan fee: Agency, November 2026", "plan-fee:2026-11"),
        (LedgerKind.TAX, -25, "Sales tax (TX 6.25%) on October 2026 usage of $4.00",
         "tax:2026-10"),
    ]
    assert rows(session, on_agency) == [] and rows(session, own) == []  # subs pay no plan fee


def test_accounts_created_during_the_month_start_paying_next_month(session, gw):
    before = f.standalone(session, "Before")
    at(datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC))
    last_second = f.standalone(session, "Last second")
    at(datetime(2026, 11, 1, 0, 0, tzinfo=UTC))
    on_the_first = f.standalone(session, "On the first")
    at(datetime(2026, 11, 1, 0, 1, tzinfo=UTC))
    after = f.standalone(session, "After")
    result = run(session, gw)
    assert result.fees == 2
    assert [len(rows(session, a)) for a in (before, last_second, on_the_first, after)] == [
        1, 1, 0, 0]
    december = run(session, gw, datetime(2026, 12, 1, 0, 5, tzinfo=UTC))
    assert december.month == "2026-12" and december.fees == 4


def test_canceled_accounts_are_not_charged_but_paused_ones_are(session, gw):
    canceled = f.standalone(session)
    canceled.status, canceled.canceled_at = AccountStatus.CANCELED, CREATED
    paused = f.standalone(session)
    paused.status = AccountStatus.CALLS_STOPPED
    session.flush()
    assert run(session, gw).fees == 1
    assert rows(session, canceled) == []
    assert [r[1] for r in rows(session, paused)] == [-17900]


def test_running_again_posts_nothing_more(session, gw):
    account = f.standalone(session)
    with_address(session, account, "CA")
    use(session, account, 1000, "u1", datetime(2026, 10, 20, tzinfo=UTC))
    run(session, gw)
    before = session.scalar(select(func.count()).select_from(LedgerEntry))
    again = run(session, gw)
    later = run(session, gw, RUN + timedelta(days=14))
    assert (again.fees, again.taxes, later.fees, later.taxes) == (0, 0, 0, 0)
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == before
    assert session.get(Account, account.id).balance_cents == -(1000 + 17900 + 73)


def test_january_taxes_decembers_usage(session, gw):
    account = f.standalone(session, plan="Starter")
    with_address(session, account, "WA")
    use(session, account, 2000, "dec", datetime(2026, 12, 31, 12, tzinfo=UTC))
    run(session, gw, datetime(2026, 12, 1, 0, 5, tzinfo=UTC))
    run(session, gw, datetime(2027, 1, 1, 0, 5, tzinfo=UTC))
    assert rows(session, account)[-2:] == [
        (LedgerKind.PLAN_FEE, -3900, "Plan fee: Starter, January 2027", "plan-fee:2027-01"),
        (LedgerKind.TAX, -130, "Sales tax (WA 6.50%) on December 2026 usage of $20.00",
         "tax:2026-12"),
    ]


# --------------------------------------------------------------- Opt-in Direct Charge

def direct_world(session, number):
    admin = f.user(session, "admin@example.test")
    owner = f.user(session, "owner@example.test")
    account = f.standalone(session, "Harbor Dental", plan="Pro", admin=admin)
    f.member(session, owner, account, Role.OWNER)
    if number:
        f.card(session, account, number)
    billing.set_direct_charge(session, account, True)
    f.funds(session, account, 5000, when=CREATED)
    return account


def mail(session):
    query = select(OutboxMessage.to_address, OutboxMessage.kind, OutboxMessage.subject)
    return sorted(tuple(row) for row in session.execute(query))


def test_direct_charge_pays_the_plan_fee_with_the_primary_card(session, gw):
    account = direct_world(session, "4242424242424242")
    result = run(session, gw)
    assert (result.fees, result.direct_charges) == (1, 1)
    charge = session.scalar(select(Charge))
    assert (charge.purpose, charge.status, charge.amount_cents) == (
        ChargePurpose.PLAN_FEE, ChargeStatus.SUCCEEDED, 17900)
    assert charge.idempotency_key == f"plan-fee:{account.id}:2026-11"
    assert charge.description == "Pro plan subscription, November 2026"
    assert rows(session, account) == [
        (LedgerKind.PAYMENT, 17900, f"Plan subscription: Visa ending 4242 "
                                    f"({charge.receipt_number})", f"charge:{charge.id}"),
        (LedgerKind.PLAN_FEE, -17900, "Plan fee: Pro, November 2026", "plan-fee:2026-11"),
    ]
    assert session.get(Account, account.id).balance_cents == 5000  # untouched
    subject = (f"Receipt {charge.receipt_number}: plan subscription of $179.00 for "
               "Harbor Dental")
    assert mail(session) == [("admin@example.test", "receipt", subject),
                             ("owner@example.test", "receipt", subject)]
    assert run(session, gw).direct_charges == 0
    assert session.scalar(select(func.count()).select_from(Charge)) == 1
    assert ledger.check(session) == []


def test_a_declined_direct_charge_takes_the_fee_from_the_balance_and_says_so(session, gw):
    account = direct_world(session, "4000000000000341")
    result = run(session, gw)
    assert (result.fees, result.direct_charges) == (1, 0)
    charge = session.scalar(select(Charge))
    assert (charge.status, charge.failure_message) == (ChargeStatus.FAILED,
                                                       "The card was declined.")
    assert rows(session, account) == [
        (LedgerKind.PLAN_FEE, -17900, "Plan fee: Pro, November 2026", "plan-fee:2026-11")]
    account = session.get(Account, account.id)
    assert (account.balance_cents, account.status) == (5000 - 17900,
                                                       AccountStatus.BILLING_PAUSED)
    subject = "Action needed: your card was declined for Harbor Dental"
    assert mail(session) == [("admin@example.test", "decline", subject),
                             ("owner@example.test", "decline", subject)]
    text = session.scalar(select(OutboxMessage.text_body).limit(1))
    assert "We tried to charge $179.00 (plan subscription)" in text


def test_direct_charge_without_a_primary_takes_the_fee_from_the_balance(session, gw):
    account = direct_world(session, None)
    assert run(session, gw).direct_charges == 0
    assert session.scalar(select(func.count()).select_from(Charge)) == 0
    assert session.get(Account, account.id).balance_cents == 5000 - 17900
    assert mail(session) == []


def test_a_fee_that_takes_the_balance_below_the_threshold_recharges(session, gw):
    account = f.standalone(session, "Harbor Dental", plan="Pro")
    f.card(session, account)
    f.recharge_settings(session, account, "50", "100")
    f.funds(session, account, 20_000, when=CREATED)
    result = run(session, gw)
    assert [(c.status, c.amount_cents) for c in result.recharges] == [
        (ChargeStatus.SUCCEEDED, 10_000 - 2100)]
    assert session.get(Account, account.id).balance_cents == 10_000


def test_an_account_closed_while_the_run_is_under_way_owes_no_fee(session, gw, monkeypatch):
    """The run lists the accounts due, then posts their fees one by one: one closed in
    between (by its admin, in another request) is read again under the fee's lock and owes
    nothing."""
    from portal.services import lifecycle

    admin = f.user(session)
    first = f.standalone(session, "First Plumbing", plan="Pro")
    second = f.standalone(session, "Second Plumbing", plan="Pro")
    f.member(session, admin, second, Role.ADMIN)
    session.commit()
    real = fees._month_for
    closed = []

    def close_second_first(session_, gw_, account, *args):
        if not closed:  # before the first account's fee: the second is closed meanwhile
            lifecycle.close(session_, session_.get(Account, second.id), admin, now=RUN)
            session_.commit()
            closed.append(second.id)
        return real(session_, gw_, account, *args)

    monkeypatch.setattr(fees, "_month_for", close_second_first)
    result = run(session, gw)
    assert result.fees == 1
    assert [k for k, *_ in rows(session, session.get(Account, second.id))] == []
    assert [k for k, *_ in rows(session, session.get(Account, first.id))] == [
        LedgerKind.PLAN_FEE]
