"""Changing plans: upgrades and downgrades by monthly fee, a standalone account becoming an
agency, an agency leaving the Agency plan only once no sub-account is active, sub-accounts
kept off the Agency plan, and canceled accounts left alone."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from portal import clock
from portal.errors import NotAllowed, ValidationFailed
from portal.models import Account, AccountKind, AccountStatus, Version
from portal.services import lifecycle, plans
from tests import factories as f

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ACTIVE_SUBS = ("Northwind Agency still has {n} active {subs}: leaving the Agency plan makes it "
               "a standalone account, which can't have sub-accounts. First transfer them out "
               "or close them in Settings → Accounts, or cancel the agency and all its "
               "sub-accounts with “Cancel Agency Account & All Sub-Accounts” on Parent "
               "Settings.")


@pytest.fixture
def w(session):
    clock.freeze(NOW)
    owner = f.user(session, name="Avery Owner")
    solo = f.standalone(session, "Solo Shop", plan="Pro", admin=owner)
    agency = f.agency(session, "Northwind Agency", owner=owner)
    bayside = f.sub(session, agency, "Bayside Dental")
    harbor = f.sub(session, agency, "Harbor Law")
    session.commit()
    return owner, solo, agency, bayside, harbor


def reloaded(session, account) -> Account:
    session.expire_all()
    return session.get(Account, account.id)


def test_options_are_marked_upgrade_or_downgrade_by_fee(session, w):
    _, solo, _, bayside, _ = w
    assert [(o.name, o.fee_cents, o.label) for o in plans.options(solo)] == [
        ("Marketing Lite", 1900, "Downgrade"),
        ("Starter", 3900, "Downgrade"),
        ("Essentials", 7900, "Downgrade"),
        ("Pro", 17900, "Current plan"),
        ("Agency", 29900, "Upgrade"),
        ("Performance", 49900, "Upgrade"),
    ]
    # a sub-account is on its agency's plan: listed, nothing else offered
    assert [(o.name, o.label) for o in plans.options(bayside)] == [("Agency", "Current plan")]


def test_upgrade_and_downgrade_a_standalone_account(session, w):
    _, solo, _, _, _ = w
    assert plans.change(session, solo, "Performance").label == "Upgrade"
    session.commit()
    solo = reloaded(session, solo)
    assert (solo.plan, solo.kind, solo.updated_at) == ("Performance", AccountKind.STANDALONE,
                                                       NOW)
    assert plans.change(session, solo, "Starter").label == "Downgrade"
    session.commit()
    assert reloaded(session, solo).plan == "Starter"
    versions = session.execute(select(Version.action, Version.changes_json).where(
        Version.account_id == solo.id, Version.record_type == "account")
        .order_by(Version.id)).all()
    assert versions == [("changed", '{"plan": ["Pro", "Performance"]}'),
                        ("changed", '{"plan": ["Performance", "Starter"]}')]


def test_a_standalone_account_on_the_agency_plan_becomes_an_agency(session, w):
    _, solo, _, _, _ = w
    plans.change(session, solo, "Agency")
    session.commit()
    solo = reloaded(session, solo)
    assert (solo.plan, solo.kind, solo.parent_id) == ("Agency", AccountKind.AGENCY, None)


@pytest.mark.parametrize("plan,message", [
    ("Pro", "That is already your plan."),
    ("Platinum", "Choose a plan: Starter, Essentials, Pro, Performance, Marketing Lite, "
                 "Agency."),
    ("", "Choose a plan: Starter, Essentials, Pro, Performance, Marketing Lite, Agency."),
])
def test_bad_choices_are_refused(session, w, plan, message):
    _, solo, _, _, _ = w
    with pytest.raises(ValidationFailed) as e:
        plans.change(session, solo, plan)
    assert e.value.errors == {"plan": message}
    assert reloaded(session, solo).plan == "Pro"


@pytest.mark.parametrize("plan", ["Essentials", "Agency", "Performance"])
def test_a_sub_account_has_no_plan_of_its_own_to_change(session, w, plan):
    """Plan fees are charged to standalone and agency accounts only: a sub-account's plan
    is its agency's, so changing it would change nothing anyone pays."""
    _, _, _, bayside, _ = w
    with pytest.raises(ValidationFailed) as e:
        plans.change(session, bayside, plan)
    assert e.value.errors == {"plan": plans.SUB_PLAN}
    assert reloaded(session, bayside).plan == "Agency"


def test_an_agency_with_active_sub_accounts_cannot_leave_the_agency_plan(session, w):
    owner, _, agency, bayside, harbor = w
    with pytest.raises(ValidationFailed) as e:
        plans.change(session, agency, "Pro")
    assert e.value.errors == {"plan": ACTIVE_SUBS.format(n=2, subs="sub-accounts")}
    lifecycle.close(session, bayside, owner)
    session.commit()
    agency = reloaded(session, agency)
    assert plans.active_sub_count(session, agency) == 1
    with pytest.raises(ValidationFailed) as e:
        plans.change(session, agency, "Performance")
    assert e.value.errors == {"plan": ACTIVE_SUBS.format(n=1, subs="sub-account")}
    # paused and billing-paused sub-accounts are still active: only canceled ones don't count
    harbor = reloaded(session, harbor)
    harbor.status = AccountStatus.BILLING_PAUSED
    session.commit()
    with pytest.raises(ValidationFailed):
        plans.change(session, agency, "Performance")
    assert (reloaded(session, agency).plan, reloaded(session, agency).kind) == (
        "Agency", AccountKind.AGENCY)


def test_an_agency_whose_sub_accounts_are_all_canceled_becomes_standalone(session, w):
    owner, _, agency, bayside, harbor = w
    lifecycle.close(session, bayside, owner)
    lifecycle.close(session, harbor, owner)
    session.commit()
    agency = reloaded(session, agency)
    assert plans.change(session, agency, "Pro").label == "Downgrade"
    session.commit()
    agency = reloaded(session, agency)
    assert (agency.plan, agency.kind, agency.status) == (
        "Pro", AccountKind.STANDALONE, AccountStatus.ACTIVE)


def test_the_update_refuses_if_a_sub_account_became_active_meanwhile(session, w, monkeypatch):
    """The check and the UPDATE are separate statements: the UPDATE itself still refuses
    when a sub-account is active (a reactivation between the two)."""
    owner, _, agency, bayside, harbor = w
    lifecycle.close(session, bayside, owner)
    lifecycle.close(session, harbor, owner)
    session.commit()
    agency = reloaded(session, agency)
    real_check = plans.check

    def check_then_reactivate(session_, account, plan):
        option = real_check(session_, account, plan)
        lifecycle.reactivate(session_, reloaded(session_, harbor), owner)
        return option

    monkeypatch.setattr(plans, "check", check_then_reactivate)
    with pytest.raises(NotAllowed) as e:
        plans.change(session, agency, "Pro")
    assert e.value.message == ("Northwind Agency changed while changing its plan: nothing was "
                               "changed. Check the page and try again.")
    assert (agency.plan, agency.kind) == ("Agency", AccountKind.AGENCY)


def test_a_canceled_account_cannot_change_plan(session, w):
    owner, solo, _, _, _ = w
    lifecycle.close(session, solo, owner)
    session.commit()
    with pytest.raises(NotAllowed) as e:
        plans.change(session, reloaded(session, solo), "Starter")
    assert e.value.message == ("Solo Shop is canceled: reactivate it before changing its "
                               "plan.")
    assert reloaded(session, solo).plan == "Pro"


def test_a_former_agencys_canceled_sub_account_cannot_be_reactivated(session, w):
    """Found while building Change Plan: an agency that left the Agency plan (allowed once
    every sub-account is canceled) must not get an active sub-account back."""
    owner, _, agency, bayside, harbor = w
    lifecycle.close(session, bayside, owner)
    lifecycle.close(session, harbor, owner)
    plans.change(session, agency, "Pro")
    session.commit()
    assert reloaded(session, agency).kind == AccountKind.STANDALONE
    with pytest.raises(NotAllowed) as e:
        lifecycle.reactivate(session, bayside, owner)
    assert "left the Agency plan" in e.value.message
    assert reloaded(session, bayside).status == AccountStatus.CANCELED
    plans.change(session, agency, "Agency")  # back on the Agency plan: now it can
    lifecycle.reactivate(session, bayside, owner)
    assert reloaded(session, bayside).status == AccountStatus.ACTIVE


@pytest.mark.parametrize("raw", [" Starter ", "Starter\n", "\tStarter"])
def test_a_padded_plan_name_is_stored_as_the_plan_itself(session, w, raw):
    """Review finding: the padded name was stored, and the monthly fee (looked up by the
    exact name) became $0."""
    _, solo, _, _, _ = w
    plans.change(session, solo, raw)
    session.commit()
    assert reloaded(session, solo).plan == "Starter"
    assert plans.fee(reloaded(session, solo).plan) == 3900
