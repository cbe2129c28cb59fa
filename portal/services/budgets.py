"""Budgets per sub-account (issue 17, B).

An agency's owner or admin sets a sub-account's monthly budget (integer cents) with alerts at
chosen percentages (default 50/80/100) and, optionally, "Pause calls when the budget is
reached".

- Spend counted: the sub-account's usage debits this UTC month, whoever pays (the agency's
  ledger naming it, or its own). `budgets.spent_cents` keeps it: `usage_posted`, called by
  ledger.post for every entry, adds each usage debit with one UPDATE of the budget's row
  (none for an account without a budget: the UPDATE matches nothing), so postings of one
  sub-account are serialized on that row and each sees the spend before and after itself.
  A posting in a new month starts the count again.
- An alert fires once per threshold per month: a budget_alerts row, UNIQUE(account_id,
  month, threshold), inserted with ON CONFLICT DO NOTHING (a concurrent loser inserts
  nothing and tells nothing), then told through services/alerts.py to the agency's billing
  recipients (an alert on the agency naming the sub-account) and, for a customer-billed
  sub-account, also on its own Recent alerts and to its billing people.
- Pause: reaching the budget with pause_calls on switches an ACTIVE sub-account to
  budget_paused ("Calls paused: budget reached"), once per month and amount (paused_key): a
  Resume in the same month leaves the calls running until a raised budget is reached. The
  pause is lifted by the agency (Resume in the Status section, raising the budget above the
  spend, turning the pause off or clearing the budget) and by the jobs' step
  budgets-month-turn at the month's turn.

No Flask here: the views and helper K's bulk "Set budget" call `set_budget`.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from portal.clock import now as clock_now
from portal.errors import NotAllowed, ValidationFailed
from portal.models import (
    Account,
    AccountStatus,
    AlertKind,
    BillingMode,
    EventKind,
    LedgerEntry,
    LedgerKind,
    Membership,
    Role,
    User,
)
from portal.models.budgets import DEFAULT_THRESHOLDS, MAX_THRESHOLDS, Budget, BudgetAlert
from portal.services import ledger
from portal.services.money import dollars, parse_cents
from portal.transactions import begin_write

MAX_BUDGET_CENTS = 100_000_000  # $1,000,000 a month
SETTERS = (Role.OWNER, Role.ADMIN)  # of the agency


def month_of(moment: datetime) -> str:
    return f"{moment:%Y-%m}"


def month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


# ----------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class Standing:
    """A budget as the page shows it: this month's spend against it."""

    budget: Budget
    spent_cents: int

    @property
    def amount_cents(self) -> int:
        return self.budget.amount_cents

    @property
    def percent(self) -> int:
        return self.spent_cents * 100 // self.budget.amount_cents

    @property
    def left_cents(self) -> int:
        return max(self.budget.amount_cents - self.spent_cents, 0)

    @property
    def reached(self) -> bool:
        return self.spent_cents >= self.budget.amount_cents


def spent_this_month(budget: Budget, now: datetime | None = None) -> int:
    """The stored spend, if it is this month's (no posting yet this month: nothing)."""
    return budget.spent_cents if budget.month == month_of(now or clock_now()) else 0


def standing(session: Session, sub: Account, now: datetime | None = None) -> Standing | None:
    budget = session.get(Budget, sub.id)
    if budget is None:
        return None
    return Standing(budget, spent_this_month(budget, now))


def alerted(session: Session, sub: Account, now: datetime | None = None) -> list[int]:
    """The thresholds told this month, ascending."""
    return list(session.scalars(
        select(BudgetAlert.threshold).where(BudgetAlert.account_id == sub.id,
                                            BudgetAlert.month == month_of(now or clock_now()))
        .order_by(BudgetAlert.threshold)))


def ledger_spend(session: Session, sub: Account, now: datetime) -> int:
    """The sub-account's usage debits since the month began, read from the ledger: on its
    own ledger, and on its agency's naming it."""
    own = (LedgerEntry.account_id == sub.id) & LedgerEntry.for_account_id.is_(None)
    agency = (LedgerEntry.account_id == sub.parent_id) & (LedgerEntry.for_account_id == sub.id)
    total = session.scalar(
        select(func.coalesce(func.sum(-LedgerEntry.amount_cents), 0))
        .where(LedgerEntry.kind == LedgerKind.USAGE, LedgerEntry.amount_cents < 0,
               LedgerEntry.created_at >= month_start(now), or_(own, agency)))
    return int(total or 0)


# ----------------------------------------------------------------------------- input

def parse_thresholds(raw) -> list[int]:
    """Percentages from a list of ints or texts ("50", "80"), or a text "50, 80, 100":
    1 to 5 of them, each a whole number from 1 to 100, each once; ascending."""
    if raw is None:
        return list(DEFAULT_THRESHOLDS)
    if isinstance(raw, str):
        raw = [part for part in raw.replace(";", ",").split(",")]
    values, bad = [], []
    for item in raw:
        text = item.strip() if isinstance(item, str) else item
        if text in ("", None):
            continue
        if isinstance(text, bool):
            bad.append(str(text))
        elif isinstance(text, int):
            values.append(text)
        elif isinstance(text, str) and text.isascii() and text.rstrip("%").strip().isdigit():
            values.append(int(text.rstrip("%").strip()))
        else:
            bad.append(str(text))
    if bad:
        raise ValidationFailed({"thresholds": (
            f"Alert percentages are whole numbers from 1 to 100 ({', '.join(bad[:3])} "
            "is not).")})
    if not values:
        raise ValidationFailed({"thresholds": "Choose at least one alert percentage."})
    out_of_range = [v for v in values if not 1 <= v <= 100]
    if out_of_range:
        raise ValidationFailed({"thresholds": (
            f"Alert percentages are from 1 to 100 ({out_of_range[0]} is not).")})
    if len(set(values)) != len(values):
        raise ValidationFailed({"thresholds": "Each alert percentage can be listed once."})
    if len(values) > MAX_THRESHOLDS:
        raise ValidationFailed({"thresholds": (
            f"At most {MAX_THRESHOLDS} alert percentages ({len(values)} were given).")})
    return sorted(values)


TRUE_TEXTS = ("1", "on", "yes", "true")


def parse_form(form, field: str = "amount", blank_removes: bool = False) -> dict[str, Any]:
    """A budget as a form (Billing Settings → Budget, bulk Set budget) or the API gives it:
    the amount in dollars as typed under `field` (blank: no budget when `blank_removes`,
    else required), the alert percentages under "thresholds" (a text "50, 80" or a list;
    blank is 50, 80, 100) and "pause_calls" (on, 1, yes, true). Every field's error at once
    ({field: …, "thresholds": …}). Returns {"amount_cents" (None: remove), "thresholds",
    "pause_calls"}, the arguments of set_budget (which checks them again)."""
    errors: dict[str, str] = {}
    amount = None
    raw = form.get(field)
    raw = raw.strip() if isinstance(raw, str) else raw
    if raw or not blank_removes:
        try:
            amount = parse_cents(raw, field, maximum=MAX_BUDGET_CENTS, label="The budget")
        except ValidationFailed as e:
            errors.update(e.errors)
    thresholds = None
    try:
        thresholds = parse_thresholds(form.get("thresholds") or None)
    except ValidationFailed as e:
        errors.update(e.errors)
    if errors:
        raise ValidationFailed(errors)
    return {"amount_cents": amount, "thresholds": thresholds,
            "pause_calls": str(form.get("pause_calls", "")).lower() in TRUE_TEXTS}


def _check_amount(amount_cents) -> None:
    if not isinstance(amount_cents, int) or isinstance(amount_cents, bool):
        raise ValidationFailed({"amount": "The budget must be a dollar amount, like 500."})
    if amount_cents <= 0:
        raise ValidationFailed({"amount": "The budget must be more than zero."})
    if amount_cents > MAX_BUDGET_CENTS:
        raise ValidationFailed({"amount": f"The budget can be at most "
                                          f"{dollars(MAX_BUDGET_CENTS)} a month."})


def check_setter(session: Session, sub: Account, actor: User) -> None:
    """Only a sub-account has a budget, set by its agency's owner or admin, while open."""
    if not sub.is_sub:
        raise NotAllowed("Budgets are set on an agency's sub-accounts.")
    role = session.scalar(select(Membership.role).where(Membership.user_id == actor.id,
                                                        Membership.account_id == sub.parent_id))
    if role not in SETTERS:
        raise NotAllowed("Only the agency's owner or an admin can set a sub-account's budget.")
    if sub.status == AccountStatus.CANCELED:
        raise NotAllowed(f"{sub.name} is canceled: its budget can't be changed.")


# ----------------------------------------------------------------------------- setting

def set_budget(session: Session, sub: Account, actor: User, amount_cents: int | None,
               thresholds: list[int] | None = None, pause_calls: bool = False
               ) -> Budget | None:
    """Set (or, amount_cents None, clear) the sub-account's monthly budget, in the caller's
    transaction. Raises ValidationFailed with field errors ("amount", "thresholds") and
    NotAllowed (not a sub-account, not the agency's owner/admin, canceled); nothing changes
    then. Thresholds reached already this month are told now (once each); with the pause on
    and the budget reached, an active sub-account is paused now; a budget-paused one is
    resumed when the budget is cleared, the pause turned off or the budget raised above the
    spend. Returns the budget (None once cleared)."""
    check_setter(session, sub, actor)
    if amount_cents is not None:
        _check_amount(amount_cents)
    chosen = parse_thresholds(thresholds)
    now = clock_now()
    _lock_payer(session, sub)
    budget = session.get(Budget, sub.id, populate_existing=True)
    if amount_cents is None:
        if budget is not None:
            session.delete(budget)
            session.flush()
        _resume_if_paused(session, sub, actor, now, reason="cleared")
        return None
    spent = ledger_spend(session, sub, now)
    if budget is None:
        budget = Budget(account_id=sub.id)
        session.add(budget)
    budget.amount_cents = amount_cents
    budget.thresholds_text = ",".join(str(t) for t in chosen)
    budget.pause_calls = bool(pause_calls)
    budget.month, budget.spent_cents = month_of(now), spent
    budget.updated_by_id = actor.id
    budget.updated_at = now
    session.flush()
    if sub.status == AccountStatus.BUDGET_PAUSED and (not budget.pause_calls
                                                      or spent < amount_cents):
        _resume_if_paused(session, sub, actor, now,
                          reason="pause off" if not budget.pause_calls else "raised")
    _evaluate(session, sub, budget.amount_cents, chosen, budget.pause_calls,
              budget.paused_key, 0, spent, now, everything_reached=True)
    return budget


def _lock_payer(session: Session, sub: Account) -> None:
    """Hold the row a usage posting for `sub` locks first (its payer's), so a budget made
    now counts every posting: one committed before is in the ledger's sum, one after finds
    the row."""
    begin_write(session)  # SQLite: the write lock
    payer_id = sub.parent_id if sub.billing_mode == BillingMode.AGENCY else sub.id
    session.execute(select(Account.id).where(Account.id == payer_id).with_for_update())
    session.refresh(sub, ["status", "billing_mode"])


def _resume_if_paused(session: Session, sub: Account, actor: User | None, now: datetime,
                      reason: str) -> bool:
    from portal.services.lifecycle import record

    lifted = session.execute(
        update(Account).where(Account.id == sub.id,
                              Account.status == AccountStatus.BUDGET_PAUSED)
        .values(status=AccountStatus.ACTIVE, updated_at=now)).rowcount
    if lifted:
        record(session, sub, EventKind.BUDGET_RESUMED, actor, now, reason=reason)
        ledger.pause_if_overdrawn(session, sub, actor, now)
    return bool(lifted)


# ----------------------------------------------------------------------------- postings

def usage_posted(session: Session, payer: Account, entry: LedgerEntry,
                 now: datetime) -> None:
    """ledger.post's hook, in the posting's transaction: a usage debit counts against the
    budget of the sub-account it was for. One UPDATE (matching nothing without a budget);
    nothing at all for other entries or accounts that are no sub-account."""
    if entry.kind != LedgerKind.USAGE or entry.amount_cents >= 0:
        return
    sub_id = entry.for_account_id or (payer.id if payer.is_sub else None)
    if sub_id is None:
        return
    usage_counted(session, payer, sub_id, -entry.amount_cents, now)


def usage_counted(session: Session, payer: Account, sub_id: int, debit: int,
                  now: datetime) -> None:
    """`debit` cents of usage (one posting's, or a whole batch's for this sub-account:
    services/metering.py) counted against sub-account `sub_id`'s budget, paid by `payer`
    (the agency, or the sub-account itself). One UPDATE, matching nothing without a budget."""
    month = month_of(now)
    table = Budget.__table__  # Core: no ORM bookkeeping on the postings' path
    row = session.execute(
        update(table).where(table.c.account_id == sub_id)
        .values(spent_cents=case((table.c.month == month, table.c.spent_cents + debit),
                                 else_=debit),
                month=month)
        .returning(table.c.amount_cents, table.c.thresholds_text, table.c.pause_calls,
                   table.c.paused_key, table.c.spent_cents)).first()
    if row is None:
        return
    amount, thresholds_text, pause_calls, paused_key, after = row
    before = after - debit
    chosen = [int(t) for t in thresholds_text.split(",") if t]
    if not any(before * 100 < amount * t <= after * 100 for t in chosen) and not (
            pause_calls and after >= amount):
        return
    sub = payer if payer.id == sub_id else session.get(Account, sub_id)
    _evaluate(session, sub, amount, chosen, pause_calls, paused_key, before, after, now)


def _evaluate(session: Session, sub: Account, amount: int, chosen: list[int],
              pause_calls: bool, paused_key: str, before: int, after: int, now: datetime,
              everything_reached: bool = False) -> None:
    """Tell each threshold crossed (before < t% <= after; everything_reached: every one at
    or under `after`), once a month each, and pause an active sub-account that reached its
    budget with the pause on."""
    month = month_of(now)
    for t in chosen:
        if amount * t <= after * 100 and (everything_reached or before * 100 < amount * t):
            if _claim(session, sub.id, month, t, amount, after, now):
                _tell(session, sub, t, amount, after, now, pause_calls)
    key = f"{month}:{amount}"
    if pause_calls and after >= amount and paused_key != key:
        _pause(session, sub, amount, after, key, now)


def _claim(session: Session, sub_id: int, month: str, threshold: int, amount: int,
           spent: int, now: datetime) -> bool:
    """Insert the month's alert for this threshold unless it exists (told already, or by a
    concurrent posting: that insert wins, this one does nothing)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = BudgetAlert.__table__
    inserted = session.execute(
        insert(table).values(account_id=sub_id, month=month, threshold=threshold,
                             amount_cents=amount, spent_cents=spent, created_at=now)
        .on_conflict_do_nothing(index_elements=["account_id", "month", "threshold"])
        .returning(table.c.id)).first()
    return inserted is not None


def alert_message(sub: Account, threshold: int, amount: int, spent: int) -> str:
    if threshold >= 100:
        what = f"{sub.name} reached its monthly budget of {dollars(amount)}"
    else:
        what = f"{sub.name} used {threshold}% of its monthly budget of {dollars(amount)}"
    return f"{what}: {dollars(spent)} spent this month."


def _tell(session: Session, sub: Account, threshold: int, amount: int, spent: int,
          now: datetime, pause_calls: bool = False) -> None:
    from portal.services import alerts

    agency = sub.parent if "parent" in sub.__dict__ and sub.parent is not None \
        else session.get(Account, sub.parent_id)
    message = alert_message(sub, threshold, amount, spent)
    subject = (f"Budget reached: {sub.name}" if threshold >= 100
               else f"Budget {threshold}% used: {sub.name}")
    what = ("Its calls are paused until the agency resumes it or raises the budget, or the "
            "month turns." if pause_calls and spent >= amount else "")
    context = {"budget": amount, "spent": spent, "threshold": threshold,
               "clear": (f"{sub.name}'s Billing Settings shows its budget and this month's "
                         f"spend against it. {what}").strip()}
    key = f"budget:{sub.id}:{month_of(now)}:{threshold}"
    alerts.send(session, agency, AlertKind.BUDGET, key, message, subject, context,
                for_account=sub, now=now)
    if sub.billing_mode == BillingMode.CUSTOMER:
        alerts.send(session, sub, AlertKind.BUDGET, key + ":own", message, subject, context,
                    now=now)
    from portal.services import webhooks  # issue 18: once per threshold (claimed above)

    webhooks.budget_threshold(session, sub, threshold, amount, spent, now)


def _pause(session: Session, sub: Account, amount: int, spent: int, key: str,
           now: datetime) -> None:
    from portal.services.lifecycle import record

    paused = session.execute(
        update(Account).where(Account.id == sub.id, Account.status == AccountStatus.ACTIVE)
        .values(status=AccountStatus.BUDGET_PAUSED, updated_at=now)).rowcount
    if not paused:
        return  # only an active sub-account is budget-paused
    table = Budget.__table__
    session.execute(update(table).where(table.c.account_id == sub.id)
                    .values(paused_key=key))
    record(session, sub, EventKind.BUDGET_PAUSED, None, now, budget=amount, spent=spent)
    session.expire(sub, ["status"])


# ----------------------------------------------------------------------------- month turn

def month_turn(session: Session, now: datetime | None = None) -> int:
    """The jobs' step budgets-month-turn: every sub-account still budget-paused from an
    earlier month runs again (its budget's month is not this one, or it has none). Safe
    to run daily and twice: a sub-account paused this month stays paused. Returns how many
    were resumed."""
    now = now or clock_now()
    month = month_of(now)
    stale = select(Budget.account_id).where(Budget.paused_key.like(f"{month}:%"))
    ids = list(session.scalars(
        select(Account.id).where(Account.status == AccountStatus.BUDGET_PAUSED,
                                 Account.id.not_in(stale)).order_by(Account.id)))
    resumed = 0
    for sub_id in ids:
        sub = session.get(Account, sub_id)
        if _resume_if_paused(session, sub, None, now, reason="month"):
            resumed += 1
    return resumed
