from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from portal.errors import NotAllowed, ValidationFailed
from portal.models import BillingMode, BillingSettings, Cause, LedgerKind, Membership, Role
from portal.services import billing, charges, ledger
from tests import factories as f

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PHONE_ERROR = "Enter the number with its country code, like +1 415 555 0134 (E.164)."
ADDRESS = {"address_line1": "1 Market St", "address_line2": "Suite 200",
           "city": "San Francisco", "region": "CA", "postal_code": "94105"}


def errors_of(call, *args):
    with pytest.raises(ValidationFailed) as e:
        call(*args)
    return e.value.errors


# --------------------------------------------------------------- auto recharge

def test_auto_recharge_is_stored_in_cents(session):
    account = f.standalone(session)
    assert billing.settings_for(session, account).auto_recharge is False
    settings = billing.set_auto_recharge(session, account, "10", "$1,250.50")
    assert (settings.recharge_threshold_cents, settings.recharge_amount_cents) == (1000, 125050)
    assert settings.auto_recharge is True
    stored = session.get(BillingSettings, account.id)
    assert (stored.recharge_threshold_cents, stored.recharge_amount_cents) == (1000, 125050)


@pytest.mark.parametrize("threshold,amount,errors", [
    ("0", "50", {"threshold": "The threshold must be more than zero."}),
    ("-5", "50", {"threshold": "The threshold must be more than zero."}),
    ("10", "0", {"amount": "The recharge amount must be more than zero."}),
    ("", "", {"threshold": "The threshold is required.",
              "amount": "The recharge amount is required."}),
    ("ten", "50", {"threshold": "The threshold must be a dollar amount, like 25 or 25.00."}),
    ("10.005", "50", {"threshold": "The threshold can't have fractions of a cent: use at "
                                   "most two decimals."}),
    ("10", "10", {"amount": "The recharge amount must be more than the threshold ($10.00): "
                            "the balance is recharged up to it."}),
    ("25", "24.99", {"amount": "The recharge amount must be more than the threshold "
                               "($25.00): the balance is recharged up to it."}),
    ("10", "10000.01", {"amount": "The recharge amount can be at most $10,000.00."}),
    ("10000.01", "20000", {"threshold": "The threshold can be at most $10,000.00.",
                           "amount": "The recharge amount can be at most $10,000.00."}),
])
def test_auto_recharge_is_validated(session, threshold, amount, errors):
    account = f.standalone(session)
    billing.set_auto_recharge(session, account, "5", "20")
    assert errors_of(billing.set_auto_recharge, session, account, threshold, amount) == errors
    settings = billing.settings_for(session, account)
    assert (settings.recharge_threshold_cents, settings.recharge_amount_cents) == (500, 2000)


def test_the_largest_recharge_is_ten_thousand_dollars(session):
    account = f.standalone(session)
    settings = billing.set_auto_recharge(session, account, "9,999.99", "10,000")
    assert (settings.recharge_threshold_cents, settings.recharge_amount_cents) == (999999,
                                                                                  1_000_000)


def test_disabling_clears_both_values_whatever_was_typed(session):
    account = f.standalone(session)
    billing.set_auto_recharge(session, account, "10", "50")
    settings = billing.set_auto_recharge(session, account, "nonsense", "", enabled=False)
    assert (settings.recharge_threshold_cents, settings.recharge_amount_cents) == (None, None)
    assert settings.auto_recharge is False


@pytest.mark.parametrize("balance,needed", [
    (1500, 0),  # above the threshold
    (1000, 0),  # at the threshold: not below it
    (999, 4001),  # just below: back up to $50
    (0, 5000),
    (-250, 5250),  # a negative balance is brought up to the recharge amount too
])
def test_recharge_needed_brings_a_balance_below_the_threshold_up_to_the_amount(balance, needed):
    assert billing.recharge_needed(balance, 1000, 5000) == needed


def test_no_recharge_is_needed_when_auto_recharge_is_off():
    assert billing.recharge_needed(-100_000, None, None) == 0


# --------------------------------------------------------------- the suggestion

def _entry(session, account, kind, cents, at, key):
    ledger.post(session, account, kind, cents, f"{kind} {cents}", key, Cause.JOB, now=at)


def test_the_suggestion_covers_the_last_30_days_of_usage_fees_and_tax(session):
    account = f.standalone(session)
    other = f.standalone(session)
    _entry(session, account, LedgerKind.PAYMENT, 50_000, NOW - timedelta(days=40), "p")
    _entry(session, account, LedgerKind.USAGE, -99_999, NOW - timedelta(days=30, seconds=1),
           "too-old")
    _entry(session, account, LedgerKind.USAGE, -4000, NOW - timedelta(days=30), "oldest-kept")
    _entry(session, account, LedgerKind.PLAN_FEE, -7900, NOW - timedelta(days=5), "fee")
    _entry(session, account, LedgerKind.TAX, -445, NOW - timedelta(days=5), "tax")
    _entry(session, account, LedgerKind.PAYMENT, 10_000, NOW - timedelta(days=2), "p2")
    _entry(session, other, LedgerKind.USAGE, -70_000, NOW - timedelta(days=1), "theirs")
    # used 4000 + 7900 + 445 = 12345: threshold a fifth (2469) up to whole dollars = $25,
    # amount = threshold + usage up to whole dollars ($124) = $149
    assert billing.suggest(session, account, NOW) == billing.Suggestion(12345, 2500, 14900)


def test_the_suggested_threshold_is_at_least_ten_dollars(session):
    account = f.standalone(session)
    _entry(session, account, LedgerKind.USAGE, -301, NOW - timedelta(days=3), "u")
    assert billing.suggest(session, account, NOW) == billing.Suggestion(301, 1000, 1400)


def test_the_suggested_amount_is_capped_at_the_largest_charge(session):
    account = f.standalone(session)
    _entry(session, account, LedgerKind.USAGE, -900_000, NOW - timedelta(days=3), "u")
    assert billing.suggest(session, account, NOW) == billing.Suggestion(900_000, 180_000,
                                                                        1_000_000)


def test_no_suggestion_without_usage(session):
    account = f.standalone(session)
    assert billing.suggest(session, account, NOW) is None
    _entry(session, account, LedgerKind.PAYMENT, 5000, NOW - timedelta(days=1), "p")
    _entry(session, account, LedgerKind.USAGE, -5000, NOW - timedelta(days=31), "old")
    assert billing.suggest(session, account, NOW) is None


def test_settings_and_suggestion_in_one_query_match_the_two_functions(session):
    """The Billing Settings page reads both in one statement: the same settings (stored, or
    the defaults when none are) and the same suggestion as settings_for and suggest."""
    account = f.standalone(session)
    _entry(session, account, LedgerKind.USAGE, -4000, NOW - timedelta(days=3), "u")
    settings, suggestion = billing.settings_and_suggestion(session, account, NOW)
    assert settings not in session and settings.recharge_threshold_cents is None
    assert suggestion == billing.suggest(session, account, NOW) == billing.Suggestion(
        4000, 1000, 5000)
    billing.set_auto_recharge(session, account, "20", "50")
    session.commit()
    settings, suggestion = billing.settings_and_suggestion(session, account, NOW)
    assert settings is billing.settings_for(session, account)
    assert settings.recharge_threshold_cents == 2000
    empty = f.standalone(session)
    assert billing.settings_and_suggestion(session, empty, NOW)[1] is None


# --------------------------------------------------------------- critical phone

@pytest.mark.parametrize("typed,stored", [
    ("+1 415 555 0134", "+14155550134"),
    ("(415) 555-0134", "+14155550134"),
    ("415.555.0134", "+14155550134"),
    ("4155550134", "+14155550134"),
    ("+44 20 7946 0958", "+442079460958"),
    ("+49 30 901820", "+4930901820"),
])
def test_the_critical_phone_is_stored_in_e164(session, typed, stored):
    account = f.standalone(session)
    assert billing.set_critical_phone(session, account, typed).critical_phone == stored
    assert session.get(BillingSettings, account.id).critical_phone == stored


@pytest.mark.parametrize("typed", [
    "555-0134", "+1 415 555 013", "+1 415 555 01345", "14155550134", "+0 415 555 0134",
    "+12345", "+1234567890123456", "phone", "+1 415 555 O134",
])
def test_a_number_that_is_not_e164_is_refused(session, typed):
    account = f.standalone(session)
    billing.set_critical_phone(session, account, "+14155550134")
    assert errors_of(billing.set_critical_phone, session, account, typed) == {"phone": PHONE_ERROR}
    assert billing.settings_for(session, account).critical_phone == "+14155550134"


def test_an_empty_phone_removes_the_number(session):
    account = f.standalone(session)
    billing.set_critical_phone(session, account, "+14155550134")
    assert billing.set_critical_phone(session, account, "  ").critical_phone == ""


# --------------------------------------------------------------- service address and tax

def test_the_service_address_is_normalised_and_stored(session):
    account = f.standalone(session)
    form = {**ADDRESS, "address_line1": "  1   Market  St ", "region": "ca",
            "postal_code": "94105-1234"}
    settings = billing.set_service_address(session, account, form)
    assert (settings.address_line1, settings.address_line2, settings.city, settings.region,
            settings.postal_code, settings.country) == (
        "1 Market St", "Suite 200", "San Francisco", "CA", "94105-1234", "US")
    assert settings.has_address is True
    assert billing.tax_rate_bps(settings) == 725


def test_every_missing_field_of_the_address_is_named(session):
    account = f.standalone(session)
    assert errors_of(billing.set_service_address, session, account, {}) == {
        "address_line1": "Enter the street address.",
        "city": "Enter the city.",
        "region": "Choose the state (we bill in US dollars, for US addresses).",
        "postal_code": "Enter a ZIP code: 5 digits, or ZIP+4 like 94107-1234.",
    }
    assert session.get(BillingSettings, account.id) is None


@pytest.mark.parametrize("field,value,message", [
    ("region", "ZZ", "Choose the state (we bill in US dollars, for US addresses)."),
    ("region", "California", "Choose the state (we bill in US dollars, for US addresses)."),
    ("postal_code", "9410", "Enter a ZIP code: 5 digits, or ZIP+4 like 94107-1234."),
    ("postal_code", "94105-12", "Enter a ZIP code: 5 digits, or ZIP+4 like 94107-1234."),
    ("postal_code", "SW1A 1AA", "Enter a ZIP code: 5 digits, or ZIP+4 like 94107-1234."),
    ("address_line1", "x" * 121, "At most 120 characters."),
    ("address_line2", "x" * 121, "At most 120 characters."),
    ("city", "x" * 81, "At most 80 characters."),
])
def test_each_address_field_is_checked(session, field, value, message):
    account = f.standalone(session)
    assert errors_of(billing.set_service_address, session, account,
                     {**ADDRESS, field: value}) == {field: message}


def test_the_longest_allowed_address_fields_are_kept(session):
    account = f.standalone(session)
    settings = billing.set_service_address(session, account, {
        **ADDRESS, "address_line1": "a" * 120, "address_line2": "b" * 120, "city": "c" * 80})
    assert (len(settings.address_line1), len(settings.address_line2), len(settings.city)) == (
        120, 120, 80)


@pytest.mark.parametrize("region,bps", [("CA", 725), ("NY", 400), ("TX", 625), ("OR", 0)])
def test_the_tax_rate_follows_the_service_address_state(session, region, bps):
    account = f.standalone(session)
    settings = billing.set_service_address(session, account, {**ADDRESS, "region": region})
    assert billing.tax_rate_bps(settings) == bps


def test_no_tax_without_a_service_address(session):
    account = f.standalone(session)
    assert billing.tax_rate_bps(billing.settings_for(session, account)) == 0
    partial = billing.settings_for(session, account)
    partial.region = "CA"  # a state alone is not an address
    assert billing.tax_rate_bps(partial) == 0


def test_direct_charge_is_opt_in(session):
    account = f.standalone(session)
    assert billing.settings_for(session, account).direct_charge is False
    assert billing.set_direct_charge(session, account, True).direct_charge is True
    assert session.get(BillingSettings, account.id).direct_charge is True
    assert billing.set_direct_charge(session, account, False).direct_charge is False


# --------------------------------------------------------------- billing email recipients

def _people(session):
    account = f.agency(session)
    owner = f.user(session, "c-owner@example.test")
    admin = f.user(session, "a-admin@example.test")
    plain_user = f.user(session, "b-user@example.test")
    f.member(session, owner, account, Role.OWNER)
    f.member(session, admin, account, Role.ADMIN)
    f.member(session, plain_user, account, Role.USER)
    return account, owner, admin, plain_user


def test_by_default_every_owner_and_admin_receives_billing_emails(session):
    account, owner, admin, _plain_user = _people(session)
    f.member(session, f.user(session, "elsewhere@example.test"), f.standalone(session),
             Role.OWNER)
    assert billing.recipients(session, account) == [admin, owner]  # by email


def test_chosen_recipients_replace_the_default(session):
    account, owner, _admin, plain_user = _people(session)
    chosen = billing.set_recipients(session, account, [str(plain_user.id), str(owner.id)])
    assert chosen == [plain_user, owner]
    assert billing.recipients(session, account) == [plain_user, owner]
    assert billing.set_recipients(session, account, [str(owner.id), str(owner.id)]) == [owner]
    assert billing.recipients(session, account) == [owner]


def test_a_chosen_user_who_leaves_the_account_no_longer_receives_them(session):
    account, owner, admin, plain_user = _people(session)
    billing.set_recipients(session, account, [str(plain_user.id)])
    session.delete(session.scalar(select(Membership).where(
        Membership.user_id == plain_user.id, Membership.account_id == account.id)))
    session.flush()
    assert billing.recipients(session, account) == [admin, owner]


@pytest.mark.parametrize("ids,message", [
    ([], "Choose at least one user: someone must receive receipts and decline notices."),
    (["abc"], "Choose among this account's users."),
    ([None], "Choose among this account's users."),
])
def test_recipients_must_be_some_of_the_accounts_users(session, ids, message):
    account, owner, admin, _plain_user = _people(session)
    assert errors_of(billing.set_recipients, session, account, ids) == {"users": message}
    assert billing.recipients(session, account) == [admin, owner]


def test_a_user_of_another_account_cant_be_a_recipient(session):
    account, owner, admin, _plain_user = _people(session)
    outsider = f.user(session, "outsider@example.test")
    f.member(session, outsider, f.standalone(session), Role.OWNER)
    assert errors_of(billing.set_recipients, session, account,
                     [str(owner.id), str(outsider.id)]) == {
        "users": "Choose among this account's users."}
    assert billing.recipients(session, account) == [admin, owner]


# --------------------------------------------------------------- agency-billed sub-accounts

def test_a_sub_account_on_agency_billing_has_no_billing_settings(session):
    agency = f.agency(session)
    sub = f.sub(session, agency, "Bayside", billing=BillingMode.AGENCY)
    user = f.user(session)
    f.member(session, user, sub, Role.ADMIN)
    method = f.card(session, agency)
    message = ("Bayside is paid from the agency balance: its billing is managed on the "
               "agency's Billing Settings.")
    attempts = [
        lambda: billing.set_auto_recharge(session, sub, "10", "50"),
        lambda: billing.set_critical_phone(session, sub, "+14155550134"),
        lambda: billing.set_service_address(session, sub, ADDRESS),
        lambda: billing.set_direct_charge(session, sub, True),
        lambda: billing.set_recipients(session, sub, [str(user.id)]),
        lambda: charges.pay(session, sub, user, str(method.id), "25", charges.new_form_key()),
    ]
    for attempt in attempts:
        with pytest.raises(NotAllowed) as e:
            attempt()
        assert e.value.message == message
    assert session.get(BillingSettings, sub.id) is None
    assert billing.has_own_billing(sub) is False
    assert billing.has_own_billing(f.sub(session, agency, billing=BillingMode.CUSTOMER))
    assert billing.has_own_billing(agency)
