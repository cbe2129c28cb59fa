"""Issue 17 (B), on the services: a sub-account's monthly budget. Each threshold told once a
month (also under 20 concurrent postings), exactly-at-budget, the pause and its lifting
(Resume, a raised budget, the month's turn), who may set it and what bad input says."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.errors import NotAllowed, ValidationFailed
from portal.models import (
    Account,
    AccountEvent,
    AccountStatus,
    Alert,
    AlertKind,
    BillingMode,
    EventKind,
    OutboxMessage,
    Role,
)
from portal.models.budgets import Budget, BudgetAlert
from portal.services import budgets, lifecycle, usage
from tests import factories as f
from tests.threads import at_once

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MINUTE = 5  # cents (rules.USAGE_PRICES["minutes"])
AUTH = {"Authorization": "Bearer test-usage-token"}


class World:
    pass


@pytest.fixture
def w(app, session):
    clock.freeze(NOW)
    w = World()
    w.owner = f.user(session, "owner@agency.test")
    w.admin = f.user(session, "admin@agency.test")
    w.staff = f.user(session, "staff@agency.test")
    w.agency = f.agency(session, "Bright Agency", owner=w.owner)
    f.member(session, w.admin, w.agency, Role.ADMIN)
    f.member(session, w.staff, w.agency, Role.USER)
    f.funds(session, w.agency, 1_000_00)
    w.sub = f.sub(session, w.agency, "Harbor Dental")  # agency-billed
    w.own = f.sub(session, w.agency, "Lakeside Roofing", billing=BillingMode.CUSTOMER)
    w.payer = f.user(session, "pays@lakeside.test")
    f.member(session, w.payer, w.own, Role.BILLING)
    f.funds(session, w.own, 1_000_00)
    session.commit()
    return w


_keys = iter(range(1, 10**6))


def spend(session, account, cents, when=None):
    if when is not None:
        clock.freeze(when)
    usage.post(session, account, {"minutes": cents // MINUTE}, f"b-{next(_keys)}")
    session.commit()
    session.expire_all()


def told(session, sub):
    return session.scalars(select(BudgetAlert.threshold).where(BudgetAlert.account_id == sub.id)
                           .order_by(BudgetAlert.threshold)).all()


def messages(session, account):
    return session.scalars(select(Alert.message).where(Alert.account_id == account.id,
                                                       Alert.kind == AlertKind.BUDGET.value)
                           .order_by(Alert.id)).all()


def events(session, account):
    return session.scalars(select(AccountEvent.kind).where(AccountEvent.account_id == account.id)
                           .order_by(AccountEvent.id)).all()


# ----------------------------------------------------------------------------- setting

def test_set_budget_stores_it_with_the_default_thresholds(session, w):
    budget = budgets.set_budget(session, w.sub, w.admin, 100_00)
    session.commit()
    assert (budget.amount_cents, budget.thresholds, budget.pause_calls) == (10000, [50, 80, 100],
                                                                           False)
    budgets.set_budget(session, w.sub, w.owner, 200_00, [90, 25], pause_calls=True)
    session.commit()
    session.expire_all()
    stored = session.get(Budget, w.sub.id)
    assert (stored.amount_cents, stored.thresholds, stored.pause_calls) == (20000, [25, 90], True)
    assert budgets.set_budget(session, w.sub, w.owner, None) is None
    session.commit()
    assert session.get(Budget, w.sub.id) is None


@pytest.mark.parametrize("amount, thresholds, field, message", [
    (0, None, "amount", "The budget must be more than zero."),
    (-5, None, "amount", "The budget must be more than zero."),
    (100_000_001, None, "amount", "The budget can be at most $1,000,000.00 a month."),
    ("100", None, "amount", "The budget must be a dollar amount, like 500."),
    (100_00, [0, 50], "thresholds", "Alert percentages are from 1 to 100 (0 is not)."),
    (100_00, [101], "thresholds", "Alert percentages are from 1 to 100 (101 is not)."),
    (100_00, [10, 20, 30, 40, 50, 60], "thresholds",
     "At most 5 alert percentages (6 were given)."),
    (100_00, [50, 50], "thresholds", "Each alert percentage can be listed once."),
    (100_00, [], "thresholds", "Choose at least one alert percentage."),
    (100_00, ["half"], "thresholds",
     "Alert percentages are whole numbers from 1 to 100 (half is not)."),
])
def test_bad_input_is_refused_beside_its_field_and_changes_nothing(session, w, amount,
                                                                    thresholds, field, message):
    budgets.set_budget(session, w.sub, w.admin, 50_00)
    session.commit()
    with pytest.raises(ValidationFailed) as refused:
        budgets.set_budget(session, w.sub, w.admin, amount, thresholds)
    assert refused.value.errors == {field: message}
    session.rollback()
    assert session.get(Budget, w.sub.id).amount_cents == 50_00


def test_only_the_agencys_owner_or_admin_sets_a_sub_accounts_budget(session, w):
    with pytest.raises(NotAllowed):
        budgets.set_budget(session, w.sub, w.staff, 100_00)
    with pytest.raises(NotAllowed):
        budgets.set_budget(session, w.own, w.payer, 100_00)  # the customer's billing user
    with pytest.raises(NotAllowed):
        budgets.set_budget(session, w.agency, w.owner, 100_00)  # not a sub-account
    rival = f.agency(session, "Rival", owner=f.user(session))
    other = f.sub(session, rival, "Not theirs")
    with pytest.raises(NotAllowed):
        budgets.set_budget(session, other, w.owner, 100_00)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Budget)) == 0


# ----------------------------------------------------------------------------- thresholds

def test_each_threshold_is_told_once_a_month(session, w):
    budgets.set_budget(session, w.sub, w.admin, 100_00)
    session.commit()
    spend(session, w.sub, 49_95)
    assert told(session, w.sub) == []
    spend(session, w.sub, 5)  # $50.00: 50% exactly
    assert told(session, w.sub) == [50]
    spend(session, w.sub, 10_00)
    assert told(session, w.sub) == [50]
    spend(session, w.sub, 40_00)  # $100.00: 80% and 100% crossed by one posting
    assert told(session, w.sub) == [50, 80, 100]
    spend(session, w.sub, 10_00)
    assert told(session, w.sub) == [50, 80, 100]
    assert messages(session, w.agency) == [
        "Harbor Dental used 50% of its monthly budget of $100.00: $50.00 spent this month.",
        "Harbor Dental used 80% of its monthly budget of $100.00: $100.00 spent this month.",
        "Harbor Dental reached its monthly budget of $100.00: $100.00 spent this month.",
    ]
    # The agency's billing recipients are emailed (its owner and admin), each alert once.
    assert session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.kind == "alert")) == 3 * 2
    assert set(session.scalars(select(OutboxMessage.to_address).where(
        OutboxMessage.kind == "alert"))) == {"owner@agency.test", "admin@agency.test"}
    assert session.get(Budget, w.sub.id).spent_cents == 110_00
    assert w.sub.status == AccountStatus.ACTIVE  # no pause asked


def test_one_cent_under_the_budget_is_not_reached_exactly_at_it_is(session, w):
    budgets.set_budget(session, w.sub, w.admin, 10_00, [100], pause_calls=True)
    session.commit()
    spend(session, w.sub, 9_95)
    assert told(session, w.sub) == []
    assert session.get(Account, w.sub.id).status == AccountStatus.ACTIVE
    spend(session, w.sub, 5)
    assert told(session, w.sub) == [100]
    assert session.get(Account, w.sub.id).status == AccountStatus.BUDGET_PAUSED


def test_a_customer_billed_sub_account_is_told_on_its_own_too(session, w):
    budgets.set_budget(session, w.own, w.owner, 10_00, [50])
    session.commit()
    spend(session, w.own, 5_00)
    assert told(session, w.own) == [50]
    assert messages(session, w.agency) == messages(session, w.own) == [
        "Lakeside Roofing used 50% of its monthly budget of $10.00: $5.00 spent this month."]
    assert set(session.scalars(select(OutboxMessage.to_address).where(
        OutboxMessage.kind == "alert"))) == {"owner@agency.test", "admin@agency.test",
                                             "pays@lakeside.test"}


def test_the_spend_counts_the_months_usage_whoever_paid(session, w):
    spend(session, w.sub, 3_00, when=NOW - timedelta(days=30))  # last month: not counted
    spend(session, w.sub, 20_00, when=NOW)
    budgets.set_budget(session, w.sub, w.admin, 50_00)
    session.commit()
    assert session.get(Budget, w.sub.id).spent_cents == 20_00
    assert told(session, w.sub) == []
    # Lowered below the spend: the thresholds reached are told when it is set.
    budgets.set_budget(session, w.sub, w.admin, 25_00)
    session.commit()
    assert told(session, w.sub) == [50, 80]
    assert budgets.standing(session, w.sub).percent == 80


# ----------------------------------------------------------------------------- pause

def test_pause_at_the_budget_resume_and_no_second_pause_that_month(session, w):
    budgets.set_budget(session, w.sub, w.admin, 10_00, pause_calls=True)
    session.commit()
    spend(session, w.sub, 10_00)
    sub = session.get(Account, w.sub.id)
    assert sub.status == AccountStatus.BUDGET_PAUSED
    assert sub.status_label == "Calls paused: budget reached"
    lifecycle.resume(session, sub, w.admin)
    session.commit()
    spend(session, w.sub, 1_00)
    assert session.get(Account, w.sub.id).status == AccountStatus.ACTIVE  # resumed: stays
    # A raised budget reached pauses again.
    budgets.set_budget(session, w.sub, w.admin, 15_00, pause_calls=True)
    session.commit()
    spend(session, w.sub, 4_00)
    assert session.get(Account, w.sub.id).status == AccountStatus.BUDGET_PAUSED
    assert events(session, w.sub) == [EventKind.BUDGET_PAUSED, EventKind.BUDGET_RESUMED,
                                      EventKind.BUDGET_PAUSED]


def test_raising_the_budget_or_turning_the_pause_off_lifts_it(session, w):
    budgets.set_budget(session, w.sub, w.admin, 10_00, pause_calls=True)
    session.commit()
    spend(session, w.sub, 10_00)
    budgets.set_budget(session, w.sub, w.admin, 10_00, pause_calls=True)  # the same: stays
    session.commit()
    assert session.get(Account, w.sub.id).status == AccountStatus.BUDGET_PAUSED
    budgets.set_budget(session, w.sub, w.admin, 20_00, pause_calls=True)
    session.commit()
    assert session.get(Account, w.sub.id).status == AccountStatus.ACTIVE
    spend(session, w.sub, 10_00)
    assert session.get(Account, w.sub.id).status == AccountStatus.BUDGET_PAUSED
    budgets.set_budget(session, w.sub, w.admin, 20_00, pause_calls=False)
    session.commit()
    assert session.get(Account, w.sub.id).status == AccountStatus.ACTIVE


def test_only_an_active_sub_account_is_budget_paused(session, w):
    budgets.set_budget(session, w.sub, w.admin, 10_00, pause_calls=True)
    lifecycle.pause_swapping(session, w.sub, w.admin)
    session.commit()
    spend(session, w.sub, 12_00)
    assert session.get(Account, w.sub.id).status == AccountStatus.SWAPPING_PAUSED
    assert told(session, w.sub) == [50, 80, 100]  # still told


def test_the_month_turn_resumes_and_counts_again(session, w):
    budgets.set_budget(session, w.sub, w.admin, 10_00, pause_calls=True)
    session.commit()
    spend(session, w.sub, 10_00)
    assert budgets.month_turn(session) == 0  # same month: stays paused
    session.commit()
    assert session.get(Account, w.sub.id).status == AccountStatus.BUDGET_PAUSED
    december = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    clock.freeze(december)
    assert budgets.month_turn(session) == 1
    session.commit()
    assert budgets.month_turn(session) == 0  # daily-safe
    session.commit()
    assert session.get(Account, w.sub.id).status == AccountStatus.ACTIVE
    assert budgets.standing(session, w.sub).spent_cents == 0
    spend(session, w.sub, 5_00)
    assert budgets.standing(session, w.sub).spent_cents == 5_00
    assert session.scalars(select(BudgetAlert.month).where(BudgetAlert.threshold == 50)
                           .order_by(BudgetAlert.id)).all() == ["2026-11", "2026-12"]
    spend(session, w.sub, 5_00)
    assert session.get(Account, w.sub.id).status == AccountStatus.BUDGET_PAUSED


# ----------------------------------------------------------------------------- concurrency

POSTINGS = 20


def test_20_concurrent_postings_tell_each_threshold_once(app, session, w):
    """Twenty $1 postings at once against a $10 budget: 50%, 80% and 100% each told once,
    the spend exact, the pause once."""
    budgets.set_budget(session, w.sub, w.admin, 10_00, pause_calls=True)
    sub_id, agency_id = w.sub.id, w.agency.id
    session.commit()
    def metering_client(i):
        response = app.test_client().post(f"/api/accounts/{sub_id}/usage", headers=AUTH, json={
            "idempotency_key": f"c-{i:02d}", "items": {"minutes": 20}})
        assert response.status_code == 201, response.get_json()

    at_once(POSTINGS, metering_client)
    session.expire_all()
    assert session.get(Budget, sub_id).spent_cents == 20_00
    assert session.scalars(select(BudgetAlert.threshold).where(BudgetAlert.account_id == sub_id)
                           .order_by(BudgetAlert.threshold)).all() == [50, 80, 100]
    assert session.scalar(select(func.count()).select_from(Alert).where(
        Alert.account_id == agency_id, Alert.kind == AlertKind.BUDGET.value)) == 3
    assert session.get(Account, sub_id).status == AccountStatus.BUDGET_PAUSED
    assert session.scalars(select(AccountEvent.kind).where(
        AccountEvent.account_id == sub_id)).all() == [EventKind.BUDGET_PAUSED]


def test_the_jobs_step_resumes_at_the_months_turn(app, session, w):
    from portal import jobs

    budgets.set_budget(session, w.sub, w.admin, 10_00, pause_calls=True)
    session.commit()
    spend(session, w.sub, 10_00)
    assert jobs.budgets_month_turn(session) == 0
    clock.freeze(datetime(2026, 12, 1, 0, 1, tzinfo=UTC))
    result = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert result.exit_code == 0, result.output
    assert ("budgets-month-turn: 1 budget-paused sub-account(s) resumed for the new month"
            in result.output)
    session.expire_all()
    assert session.get(Account, w.sub.id).status == AccountStatus.ACTIVE
    assert jobs.budgets_month_turn(session) == 0


def test_a_second_claim_of_a_threshold_does_nothing(session, w):
    """The insert that loses the race (the same account, month and threshold) inserts nothing
    and raises nothing: the posting goes on."""
    assert budgets._claim(session, w.sub.id, "2026-11", 80, 100_00, 80_00, NOW) is True
    assert budgets._claim(session, w.sub.id, "2026-11", 80, 100_00, 90_00, NOW) is False
    assert budgets._claim(session, w.sub.id, "2026-12", 80, 100_00, 80_00, NOW) is True
    session.commit()
    assert told(session, w.sub) == [80, 80]


def test_the_pause_and_its_lifting_are_worded_in_the_activity(session, w):
    from portal.models.lifecycle import describe

    assert describe(EventKind.BUDGET_PAUSED, {"budget": 1000, "spent": 1005}) == (
        "Paused calls: the month's budget was reached ($10.05 of $10.00)")
    assert describe(EventKind.BUDGET_RESUMED, {"reason": "month"}) == (
        "Calls resumed after the budget pause: a new month began")
    assert describe(EventKind.BUDGET_RESUMED, {}) == "Calls resumed after the budget pause"
    assert lifecycle.status_actions(w.sub) == {"pause", "stop"}
    w.sub.status = AccountStatus.BUDGET_PAUSED
    assert lifecycle.status_actions(w.sub) == {"resume"}


def test_the_alert_email_says_where_to_look_and_what_the_pause_does(session, w):
    budgets.set_budget(session, w.sub, w.admin, 10_00, [100], pause_calls=True)
    session.commit()
    spend(session, w.sub, 10_00)
    bodies = session.scalars(select(OutboxMessage.text_body).where(
        OutboxMessage.kind == "alert")).all()
    assert bodies and all(
        "Harbor Dental reached its monthly budget of $10.00: $10.00 spent this month." in b
        and "Harbor Dental's Billing Settings shows its budget and this month's spend against "
            "it. Its calls are paused until the agency resumes it or raises the budget, or the "
            "month turns." in b for b in bodies)



@pytest.mark.parametrize("lift", ["resume", "month"])
def test_a_budget_pause_lifted_on_an_overdrawn_balance_is_a_billing_pause(session, w, lift):
    """A budget pause holds off the billing pause; lifting it (Resume, the month's turn) with
    the sub-account's own balance below zero pauses it for billing, as the next posting
    would, and a payment lifts that as usual."""
    own = session.get(Account, w.own.id)
    budgets.set_budget(session, own, w.admin, 10_00, pause_calls=True)
    session.commit()
    spend(session, own, 10_00)
    assert session.get(Account, w.own.id).status == AccountStatus.BUDGET_PAUSED
    spend(session, own, session.get(Account, w.own.id).balance_cents + 5_00)  # under way
    own = session.get(Account, w.own.id)
    assert own.balance_cents == -5_00 and own.status == AccountStatus.BUDGET_PAUSED
    if lift == "resume":
        lifecycle.resume(session, own, w.admin)
    else:
        clock.freeze(datetime(2026, 12, 1, 0, 5, tzinfo=UTC))
        assert budgets.month_turn(session) == 1
    session.commit()
    assert session.get(Account, w.own.id).status == AccountStatus.BILLING_PAUSED
    assert events(session, w.own)[-2:] == [EventKind.BUDGET_RESUMED, EventKind.BILLING_PAUSED]
    f.funds(session, session.get(Account, w.own.id), 10_00)
    session.commit()
    assert session.get(Account, w.own.id).status == AccountStatus.ACTIVE
