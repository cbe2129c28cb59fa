"""Changing plans: upgrade or downgrade at any time.

The Agency plan makes a standalone account an agency; leaving it makes the agency a
standalone account, which is refused while it has sub-accounts that are not canceled
(transfer them out or close them first, or cancel the agency with all of them). A
sub-account can't be an agency. The new fee applies from the next monthly plan fee; the
plan change itself is recorded as a version of the account by the session hook.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session, aliased

from portal import rules
from portal.clock import now as clock_now
from portal.errors import NotAllowed, ValidationFailed
from portal.models import PLANS, Account, AccountKind, AccountStatus

AGENCY_PLAN = "Agency"
UPGRADE, DOWNGRADE, CURRENT = "upgrade", "downgrade", "current"
# Plan fees are charged to standalone and agency accounts only (portal.services.fees): a
# sub-account's usage is billed, its plan is its agency's.
SUB_PLAN = ("A sub-account is covered by its agency's plan: it has no plan fee of its own. "
            "To choose a plan, transfer it out of the agency to make it a standalone account.")


@dataclass(frozen=True)
class Option:
    """One plan on the Change Plan page, relative to the account's plan."""

    name: str
    fee_cents: int
    change: str  # "current", "upgrade" or "downgrade" (by monthly fee)
    becomes: str = ""  # "agency" or "standalone" when the plan changes the account's kind

    @property
    def label(self) -> str:
        return {UPGRADE: "Upgrade", DOWNGRADE: "Downgrade", CURRENT: "Current plan"}[self.change]

    @property
    def is_current(self) -> bool:
        return self.change == CURRENT

    @property
    def makes_agency(self) -> bool:
        return self.becomes == "agency"

    @property
    def makes_standalone(self) -> bool:
        return self.becomes == "standalone"

    @property
    def covers_sub_accounts(self) -> bool:
        return self.name == AGENCY_PLAN


def fee(plan: str) -> int:
    return rules.PLAN_FEES.get(plan, 0)


def _becomes(account: Account, plan: str) -> str:
    if plan == AGENCY_PLAN and account.kind == AccountKind.STANDALONE:
        return "agency"
    if account.is_agency and plan != AGENCY_PLAN:
        return "standalone"
    return ""


def _change(current: str, plan: str) -> str:
    if plan == current:
        return CURRENT
    return UPGRADE if fee(plan) >= fee(current) else DOWNGRADE


def options(account: Account) -> list[Option]:
    """The current plan and every plan the account may choose, by fee (a sub-account: its
    agency's plan only; it chooses none)."""
    if account.is_sub:
        return [Option(account.plan, fee(account.plan), CURRENT)]
    plans = PLANS
    return sorted((Option(p, fee(p), _change(account.plan, p), _becomes(account, p))
                   for p in plans),
                  key=lambda o: (o.fee_cents, o.name))


def option(account: Account, plan: str) -> Option:
    return Option(plan, fee(plan), _change(account.plan, plan), _becomes(account, plan))


def check(session: Session, account: Account, plan: str) -> Option:
    """Whether the account may move to `plan` now: the option, or ValidationFailed with
    the reason (the confirmation step shows it instead of the button)."""
    plan = (plan or "").strip()
    if plan not in PLANS:
        raise ValidationFailed({"plan": f"Choose a plan: {', '.join(PLANS)}."})
    if account.is_canceled:
        raise NotAllowed(f"{account.name} is canceled: reactivate it before changing its plan.")
    if account.is_sub:
        raise ValidationFailed({"plan": SUB_PLAN})
    if plan == account.plan:
        raise ValidationFailed({"plan": "That is already your plan."})
    if account.is_agency and plan != AGENCY_PLAN:
        active = active_sub_count(session, account)
        if active:
            subs = "sub-account" if active == 1 else "sub-accounts"
            raise ValidationFailed({"plan": (
                f"{account.name} still has {active} active {subs}: leaving the Agency plan "
                "makes it a standalone account, which can't have sub-accounts. First transfer "
                f"them out or close them in Settings → Accounts, or cancel the agency and all "
                "its sub-accounts with “Cancel Agency Account & All Sub-Accounts” on Parent "
                "Settings.")})
    return option(account, plan)


def change(session: Session, account: Account, plan: str,
           now: datetime | None = None) -> Option:
    """Move the account to `plan` (Agency: it becomes an agency; from Agency: standalone).

    One conditional UPDATE: it changes nothing if the account's plan, kind or status
    changed meanwhile, or (leaving Agency) a sub-account became active again.
    """
    now = now or clock_now()
    chosen = check(session, account, plan)
    plan = chosen.name  # as checked (stripped): the fee is looked up by this exact name
    kind = {"agency": AccountKind.AGENCY, "standalone": AccountKind.STANDALONE}.get(
        chosen.becomes, account.kind)
    conditions = [Account.id == account.id, Account.plan == account.plan,
                  Account.kind == account.kind, Account.status != AccountStatus.CANCELED]
    if account.is_agency:
        sub = aliased(Account)
        conditions.append(~exists().where(sub.parent_id == Account.id,
                                          sub.status != AccountStatus.CANCELED))
    result = session.execute(
        update(Account).where(*conditions).values(plan=plan, kind=kind, updated_at=now)
        .execution_options(synchronize_session=False))
    session.refresh(account)
    if result.rowcount != 1:
        raise NotAllowed(f"{account.name} changed while changing its plan: nothing was "
                         "changed. Check the page and try again.")
    return chosen


def active_sub_count(session: Session, account: Account) -> int:
    """An agency's sub-accounts that are not canceled (0 for any other account)."""
    if not account.is_agency:
        return 0
    return session.scalar(select(func.count()).select_from(Account).where(
        Account.parent_id == account.id, Account.status != AccountStatus.CANCELED))
