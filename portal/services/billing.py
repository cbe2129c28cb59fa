"""Billing Settings: Balance Auto Recharge Settings (and the suggestion), Critical Billing
Phone Number, Service Address, Opt-in Direct Charge, Users who Receive Billing Emails."""

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from portal import rules
from portal.clock import now as clock_now
from portal.errors import NotAllowed, ValidationFailed
from portal.models import (
    Account,
    BillingEmailRecipient,
    BillingMode,
    BillingSettings,
    LedgerEntry,
    LedgerKind,
    Membership,
    Role,
    User,
)
from portal.services.inputs import clean_text, to_id
from portal.services.money import dollars, parse_cents
from portal.services.phones import normalize_e164

US_STATES = (
    "AK AL AR AZ CA CO CT DC DE FL GA HI IA ID IL IN KS KY LA MA MD ME MI MN MO MS MT NC ND "
    "NE NH NJ NM NV NY OH OK OR PA RI SC SD TN TX UT VA VT WA WI WV WY"
).split()
_ZIP = re.compile(r"^[0-9]{5}(-[0-9]{4})?$")


def has_own_billing(account: Account) -> bool:
    """A sub-account on agency billing has no billing settings of its own."""
    return not (account.is_sub and account.billing_mode == BillingMode.AGENCY)


def check_own_billing(account: Account) -> None:
    if not has_own_billing(account):
        raise NotAllowed(f"{account.name} is paid from the agency balance: its billing is "
                         "managed on the agency's Billing Settings.")


def settings_for(session: Session, account: Account) -> BillingSettings:
    """The account's settings row (a transient one with the defaults when none is stored)."""
    return session.get(BillingSettings, account.id) or _defaults(account)


def _defaults(account: Account) -> BillingSettings:
    return BillingSettings(
        account_id=account.id, recharge_threshold_cents=None, recharge_amount_cents=None,
        critical_phone="", address_line1="", address_line2="", city="", region="",
        postal_code="", country="US", direct_charge=False, recharge_cap_cents=None,
        recharge_declines=0,  # recharge_daily_limit: the column's default, once stored
        recharge_stopped_at=None, recharge_cap_month="", low_balance_cents=None,
        low_balance_below=False)


def _stored(session: Session, account: Account) -> BillingSettings:
    settings = settings_for(session, account)
    if settings not in session:
        session.add(settings)
    return settings


# --------------------------------------------------------------- auto recharge

def set_auto_recharge(session: Session, account: Account, threshold: str, amount: str,
                      enabled: bool = True, cap: str | None = None,
                      daily_limit: str | None = None) -> BillingSettings:
    """Validated: both positive, the recharge amount above the threshold, at most $10,000.
    The guardrails (issue 17), when given (None: unchanged): `cap`, the monthly recharge cap
    (blank: no cap; near it, what is left under it is charged); `daily_limit`, 1 to
    rules.RECHARGE_DAILY_LIMIT_MAX recharges a UTC day."""
    check_own_billing(account)
    settings = _stored(session, account)
    if not enabled:
        settings.recharge_threshold_cents = settings.recharge_amount_cents = None
        session.flush()
        return settings
    errors = {}
    values = {}
    for field, text, label in (("threshold", threshold, "The threshold"),
                               ("amount", amount, "The recharge amount")):
        try:
            values[field] = parse_cents(text, field, maximum=rules.MAX_CHARGE_CENTS,
                                        label=label)
        except ValidationFailed as e:
            errors.update(e.errors)
    if not errors and values["amount"] <= values["threshold"]:
        errors["amount"] = (f"The recharge amount must be more than the threshold "
                            f"({dollars(values['threshold'])}): the balance is recharged up "
                            "to it.")
    cap_cents = settings.recharge_cap_cents
    if cap is not None:
        cap_cents = None
        if cap.strip():
            try:
                cap_cents = parse_cents(cap, "cap", maximum=rules.RECHARGE_CAP_MAX_CENTS,
                                        label="The monthly cap")
            except ValidationFailed as e:
                errors.update(e.errors)
    limit = settings.recharge_daily_limit
    if daily_limit is not None:
        limit = _daily_limit(daily_limit, errors)
    if errors:
        raise ValidationFailed(errors)
    settings.recharge_threshold_cents = values["threshold"]
    settings.recharge_amount_cents = values["amount"]
    settings.recharge_cap_cents = cap_cents
    if limit is not None:
        settings.recharge_daily_limit = limit
    session.flush()
    return settings


def _daily_limit(text: str, errors: dict) -> int | None:
    raw = (text or "").strip()
    most = rules.RECHARGE_DAILY_LIMIT_MAX
    message = f"Enter how many recharges a day: a whole number from 1 to {most}."
    if not raw:
        errors["daily_limit"] = message
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 4 or not 1 <= int(raw) <= most:
        errors["daily_limit"] = message
        return None
    return int(raw)


def recharge_needed(balance_cents: int, threshold_cents: int | None,
                    amount_cents: int | None) -> int:
    """How much to charge: enough to bring a balance below the threshold back up to the
    recharge amount; 0 when the balance is at or above the threshold (or recharge is off)."""
    if threshold_cents is None or amount_cents is None or balance_cents >= threshold_cents:
        return 0
    return amount_cents - balance_cents


@dataclass(frozen=True)
class Suggestion:
    usage_cents: int  # usage in the last 30 days
    threshold_cents: int
    amount_cents: int


def suggest(session: Session, account: Account, now: datetime | None = None) -> Suggestion | None:
    """Settings that charge the card about once a month: a recharge covers 30 days of usage
    (as in the last 30 days), with a threshold of a fifth of that (at least $10) as margin.
    None when there was no usage."""
    return _suggestion(session.scalar(_spent_lately(account, now or clock_now())))


def settings_and_suggestion(session: Session, account: Account, now: datetime | None = None
                            ) -> tuple[BillingSettings, Suggestion | None]:
    """settings_for and suggest in one query (the Billing Settings page shows both)."""
    row = session.execute(
        select(BillingSettings, _spent_lately(account, now or clock_now()).scalar_subquery())
        .select_from(Account)
        .outerjoin(BillingSettings, BillingSettings.account_id == Account.id)
        .where(Account.id == account.id)).one()
    settings = row[0] if row[0] is not None else _defaults(account)
    return settings, _suggestion(row[1])


def _spent_lately(account: Account, now: datetime):
    """The usage, plan fees and taxes of the last 30 days (a negative sum of cents)."""
    return select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
        LedgerEntry.account_id == account.id,
        LedgerEntry.kind.in_((LedgerKind.USAGE, LedgerKind.PLAN_FEE, LedgerKind.TAX)),
        LedgerEntry.created_at >= now - rules.RECHARGE_SUGGESTION_WINDOW,
        LedgerEntry.created_at < now,
    )


def _suggestion(spent: int | None) -> Suggestion | None:
    used = -int(spent or 0)
    if used <= 0:
        return None
    threshold = max(rules.MIN_SUGGESTED_THRESHOLD_CENTS, _whole_dollars_up(used // 5))
    amount = threshold + _whole_dollars_up(used)
    return Suggestion(used, threshold, min(amount, rules.MAX_CHARGE_CENTS))


def _whole_dollars_up(cents: int) -> int:
    return -(-cents // 100) * 100


# --------------------------------------------------------------- contact, address, direct charge

def set_critical_phone(session: Session, account: Account, phone: str) -> BillingSettings:
    """E.164: a plus sign, the country code and the number (US numbers: +1 and 10 digits).
    Spaces, dashes, dots and brackets are ignored; empty removes the number."""
    check_own_billing(account)
    cleaned = "" if not (phone or "").strip() else normalize_e164(
        phone, national=True, field="phone",
        message="Enter the number with its country code, like +1 415 555 0134 (E.164).")
    settings = _stored(session, account)
    settings.critical_phone = cleaned
    session.flush()
    return settings


ADDRESS_FIELDS = ("address_line1", "address_line2", "city", "region", "postal_code")


def set_service_address(session: Session, account: Account, form) -> BillingSettings:
    check_own_billing(account)
    errors = {}
    values = {}
    for f in ADDRESS_FIELDS:
        try:
            values[f] = clean_text(form.get(f), f, "The address")
        except ValidationFailed as e:
            values[f] = ""
            errors.update(e.errors)
    values["region"] = values["region"].upper()
    if not values["address_line1"]:
        errors.setdefault("address_line1", "Enter the street address.")
    if not values["city"]:
        errors.setdefault("city", "Enter the city.")
    if values["region"] not in US_STATES:
        errors.setdefault("region", "Choose the state (we bill in US dollars, for US addresses).")
    if not _ZIP.fullmatch(values["postal_code"]):
        errors.setdefault("postal_code", "Enter a ZIP code: 5 digits, or ZIP+4 like 94107-1234.")
    limits = {"address_line1": 120, "address_line2": 120, "city": 80}
    for field, limit in limits.items():
        if len(values[field]) > limit:
            errors[field] = f"At most {limit} characters."
    if errors:
        raise ValidationFailed(errors)
    settings = _stored(session, account)
    for field, value in values.items():
        setattr(settings, field, value)
    settings.country = "US"
    session.flush()
    return settings


def tax_rate_bps(settings: BillingSettings) -> int:
    return rules.TAX_RATES_BPS.get(settings.region, 0) if settings.has_address else 0


def set_direct_charge(session: Session, account: Account, opted_in: bool) -> BillingSettings:
    check_own_billing(account)
    if account.is_sub:
        raise NotAllowed(f"{account.name} pays no plan subscription fee: its agency's plan "
                         "covers it, so there is nothing to charge directly.")
    settings = _stored(session, account)
    settings.direct_charge = bool(opted_in)
    session.flush()
    return settings


# --------------------------------------------------------------- billing email recipients

@dataclass(frozen=True)
class EmailPeople:
    """The account's users (with their roles), the ones chosen to Receive Billing Emails,
    and who gets them: the chosen users, or, when none are chosen, every owner and admin."""
    users: list[tuple[User, Role]]
    chosen: list[User]

    @property
    def recipients(self) -> list[User]:
        return self.chosen or [user for user, role in self.users
                               if role in (Role.OWNER, Role.ADMIN)]


def email_people(session: Session, account: Account) -> EmailPeople:
    """One query: every member of the account by email, each marked chosen or not."""
    rows = session.execute(
        select(User, Membership.role, BillingEmailRecipient.user_id)
        .join(Membership, Membership.user_id == User.id)
        .outerjoin(BillingEmailRecipient,
                   (BillingEmailRecipient.user_id == User.id)
                   & (BillingEmailRecipient.account_id == Membership.account_id))
        .where(Membership.account_id == account.id).order_by(User.email)).all()
    return EmailPeople(users=[(user, role) for user, role, _ in rows],
                       chosen=[user for user, _, chosen in rows if chosen is not None])


def account_users(session: Session, account: Account) -> list[tuple[User, Role]]:
    return email_people(session, account).users


def chosen_recipients(session: Session, account: Account) -> list[User]:
    return email_people(session, account).chosen


def recipients(session: Session, account: Account) -> list[User]:
    """Who gets receipts, decline notices and statements: the chosen users, or, when none
    are chosen, every owner and admin of the account."""
    return email_people(session, account).recipients


def set_recipients(session: Session, account: Account, user_ids: list[str]) -> list[User]:
    """Users who Receive Billing Emails: chosen among the account's users."""
    check_own_billing(account)
    members = {user.id: user for user, _role in account_users(session, account)}
    chosen = set()
    for raw in user_ids:
        user_id = to_id(raw)
        if user_id not in members:
            raise ValidationFailed({"users": "Choose among this account's users."})
        chosen.add(user_id)
    if not chosen:
        raise ValidationFailed({"users": "Choose at least one user: someone must receive "
                                         "receipts and decline notices."})
    session.execute(delete(BillingEmailRecipient).where(
        BillingEmailRecipient.account_id == account.id))
    for user_id in sorted(chosen):
        session.add(BillingEmailRecipient(account_id=account.id, user_id=user_id))
    session.flush()
    return [members[i] for i in sorted(chosen, key=lambda i: members[i].email)]
