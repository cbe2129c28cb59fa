"""Bulk actions on Settings → Accounts (issue 17, K): one action over many sub-accounts.

The flow: `resolve` turns the selection (ticked ids, or "select all N matching" = the
list's filter over every page) into the agency's sub-accounts; `preview` says what will
happen to each, marking the rows that will be refused or have nothing to do; `start`
stores the confirmed action under the key its confirmation carried (UNIQUE per agency: a
resubmitted confirmation finds the stored action and replays its results instead of acting
again); `run` does each row through the same services the single-row flows use
(lifecycle.pause_swapping / stop_calls / resume / close, the billing links' request_removal
and add_to_agency_billing, budgets.set_budget), each row in its own transaction: a row's
refusal is rolled back alone and recorded, the others stand. A row that is already as asked
(a re-run of a new action over the same rows) is reported "already ..." and not done again.

Unlike other services, `start` and `run` commit: a transaction per row is the rule here.
"""

import csv
import io
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import rules
from portal.clock import now as clock_now
from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.models import (
    Account,
    AccountStatus,
    BillingMode,
    BulkAction,
    BulkActionRow,
    BulkKind,
    RowOutcome,
    User,
)
from portal.services import lifecycle
from portal.services.accounts import SubAccountFilter
from portal.services.inputs import clean_email, clean_text
from portal.services.money import dollars, parse_cents, plain
from portal.services.paging import contains
from portal.transactions import begin_write

KINDS = tuple(BulkKind)


def parse_kind(raw: str | None) -> BulkKind:
    try:
        return BulkKind(raw or "")
    except ValueError:
        raise ValidationFailed({"action": "Choose an action for the selected "
                                          "sub-accounts."}) from None


def new_key() -> str:
    """The id a confirmation carries (made when it is shown)."""
    return secrets.token_urlsafe(18)


def _check_key(key: str) -> str:
    key = (key or "").strip()
    if not (8 <= len(key) <= 64) or not all(c.isalnum() or c in "-_" for c in key):
        raise ValidationFailed({"": "This confirmation is not valid any more: review the "
                                    "selection again."})
    return key


# --------------------------------------------------------------------------- the selection

def resolve(session: Session, agency: Account, ids: list[str], *, all_matching: bool = False,
            q: str = "", status: SubAccountFilter = SubAccountFilter.ACTIVE) -> list[Account]:
    """The selected sub-accounts, in the list's name order. An id that is not one of this
    agency's sub-accounts refuses the whole selection (NotFound): nothing is done."""
    if not agency.is_agency:
        raise NotFound("Only an agency has sub-accounts.")
    statement = select(Account).where(Account.parent_id == agency.id)
    if all_matching:
        if status == SubAccountFilter.ACTIVE:
            statement = statement.where(Account.status != AccountStatus.CANCELED)
        elif status == SubAccountFilter.CANCELED:
            statement = statement.where(Account.status == AccountStatus.CANCELED)
        if q.strip():
            statement = statement.where(contains(Account.name, q.strip()))
    else:
        wanted = set()
        for raw in ids:
            raw = (raw or "").strip()
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
                raise NotFound("No such sub-account.")
            wanted.add(int(raw))
        if not wanted:
            raise ValidationFailed({"ids": "Select at least one sub-account."})
        if len(wanted) > rules.BULK_MAX_ROWS:
            raise ValidationFailed({"ids": f"Select at most {rules.BULK_MAX_ROWS:,} "
                                           "sub-accounts at once."})
        statement = statement.where(Account.id.in_(wanted))
    subs = list(session.scalars(statement.order_by(Account.name, Account.id)
                                .limit(rules.BULK_MAX_ROWS + 1)))
    if not all_matching and len(subs) != len(wanted):
        raise NotFound("No such sub-account.")
    if not subs:
        raise ValidationFailed({"ids": "No sub-accounts match: nothing to do."})
    if len(subs) > rules.BULK_MAX_ROWS:
        raise ValidationFailed({"ids": f"More than {rules.BULK_MAX_ROWS:,} sub-accounts match: "
                                       "narrow the search, or act on them in parts."})
    return subs


# --------------------------------------------------------------------------- what will happen

@dataclass
class Plan:
    """A row of the confirmation: what will happen to this sub-account, or why not."""

    sub: Account
    will: str
    outcome: RowOutcome | None = None  # ALREADY / REFUSED when knowable beforehand
    reason: str = ""
    numbers: list[str] = field(default_factory=list)  # released by Close

    @property
    def refused(self) -> bool:
        return self.outcome == RowOutcome.REFUSED

    @property
    def already(self) -> bool:
        return self.outcome == RowOutcome.ALREADY


def _status_check(kind: BulkKind, sub: Account) -> tuple[RowOutcome, str] | None:
    already = {BulkKind.PAUSE: (AccountStatus.SWAPPING_PAUSED,
                                "Number swapping is already paused."),
               BulkKind.STOP: (AccountStatus.CALLS_STOPPED, "Incoming calls are already stopped."),
               BulkKind.RESUME: (AccountStatus.ACTIVE, "Already active: nothing to resume.")}
    state, message = already[kind]
    if sub.status == state:
        return RowOutcome.ALREADY, message
    offers = lifecycle.status_actions(sub)
    if {BulkKind.PAUSE: "pause", BulkKind.STOP: "stop", BulkKind.RESUME: "resume"}[kind] \
            in offers:
        return None
    if sub.status == AccountStatus.CANCELED:
        return RowOutcome.REFUSED, f"{sub.name} is canceled: reactivate it first."
    if sub.status == AccountStatus.BILLING_PAUSED:
        return RowOutcome.REFUSED, (f"{sub.name} is paused for billing: its balance is below "
                                    "zero. A payment that brings it to zero or more lifts it.")
    return RowOutcome.REFUSED, f"Not possible while it is {sub.status_label.lower()}."


def check(session: Session, kind: BulkKind, sub: Account,
          params: dict[str, Any] | None = None) -> tuple[RowOutcome, str] | None:
    """Why a row will not be done (already so, or refused), when that is knowable; None when
    it will be tried. The run asks again in the row's own transaction."""
    params = params or {}
    if kind in (BulkKind.PAUSE, BulkKind.STOP, BulkKind.RESUME):
        return _status_check(kind, sub)
    if kind == BulkKind.CLOSE:
        if sub.status == AccountStatus.CANCELED:
            return RowOutcome.ALREADY, "Already canceled."
        return None
    if sub.status == AccountStatus.CANCELED:
        return RowOutcome.REFUSED, f"{sub.name} is canceled: reactivate it first."
    if kind == BulkKind.AGENCY_BILLING:
        if sub.billing_mode == BillingMode.AGENCY:
            return RowOutcome.ALREADY, "Already on agency billing."
        return None
    if kind == BulkKind.SEND_LINKS:
        if sub.billing_mode != BillingMode.AGENCY:
            return RowOutcome.REFUSED, ("It already pays from its own balance (Balance from: "
                                        "customer): no billing link to send.")
        from billing_links import service as link_service

        pending = link_service.pending_for(session, [sub.id]).get(sub.id)
        if pending is not None and params.get("email") == pending.email \
                and params.get("amount_cents") == pending.amount_cents:
            return RowOutcome.ALREADY, (f"Already sent to {pending.email} on "
                                        f"{pending.created_at:%b %-d}; that link still works.")
        return None
    if kind == BulkKind.SET_BUDGET:
        from portal.models import Budget

        budget = session.get(Budget, sub.id)
        amount = params.get("amount_cents")
        if amount is None and budget is None:
            return RowOutcome.ALREADY, "Already has no budget."
        if budget is not None and amount == budget.amount_cents \
                and list(params.get("thresholds") or budget.thresholds) == budget.thresholds \
                and bool(params.get("pause_calls")) == budget.pause_calls:
            return RowOutcome.ALREADY, f"Already has this budget ({dollars(amount)} a month)."
        return None
    return None


def _will(session: Session, kind: BulkKind, sub: Account, params: dict) -> tuple[str, list]:
    if kind == BulkKind.PAUSE:
        return "Pause number swapping; calls still connect.", []
    if kind == BulkKind.STOP:
        return "Stop incoming calls and pause number swapping.", []
    if kind == BulkKind.RESUME:
        return "Resume: numbers swap and calls connect.", []
    if kind == BulkKind.CLOSE:
        numbers = [n.number for n in lifecycle.numbers_to_release(session, sub)]
        if not numbers:
            return "Close it; it has no tracking numbers to release.", []
        noun = "number" if len(numbers) == 1 else "numbers"
        return f"Close it and release {len(numbers)} tracking {noun}:", numbers
    if kind == BulkKind.AGENCY_BILLING:
        balance = sub.balance_cents
        moved = (f" Its balance of {dollars(balance)} moves to the agency's." if balance > 0
                 else f" The agency takes on its debt of {dollars(-balance)}." if balance < 0
                 else "")
        from portal.mail import notices

        told = notices.customer_billed_people(session, sub)
        emails = f" We email {', '.join(told)}." if told else ""
        return ("Use the agency's balance; its payment methods and auto recharge are "
                f"removed.{moved}{emails}", [])
    if kind == BulkKind.SEND_LINKS:
        return "Email a secure link to pay a starting balance and take it off agency billing.", []
    if kind == BulkKind.SET_BUDGET:
        amount = params.get("amount_cents")
        if amount is None:
            return "Remove its budget.", []
        thresholds = "/".join(str(t) for t in params.get("thresholds") or (50, 80, 100))
        pause = "; calls pause when it is reached" if params.get("pause_calls") else ""
        return f"Budget {dollars(amount)} a month, alerts at {thresholds}%{pause}.", []
    return "", []


def preview(session: Session, kind: BulkKind, subs: list[Account],
            params: dict | None = None, row_params: dict[int, dict] | None = None
            ) -> list[Plan]:
    plans = []
    for sub in subs:
        merged = {**(params or {}), **((row_params or {}).get(sub.id) or {})}
        will, numbers = _will(session, kind, sub, merged)
        known = check(session, kind, sub, merged)
        plans.append(Plan(sub, will, known[0] if known else None, known[1] if known else "",
                          numbers))
    return plans


# --------------------------------------------------------------------------- the inputs

def _link_row(email: str, amount: str, prefix: str) -> tuple[dict, dict]:
    errors, values = {}, {}
    try:
        values["email"] = clean_email(email, f"email{prefix}",
                                      "Enter the customer's email address, like "
                                      "name@example.com.")
    except ValidationFailed as e:
        errors.update(e.errors)
    try:
        values["amount_cents"] = parse_cents(
            amount or "", f"amount{prefix}", minimum=rules.MIN_STARTING_BALANCE_CENTS,
            maximum=rules.MAX_CHARGE_CENTS, label="The starting balance")
    except ValidationFailed as e:
        errors.update(e.errors)
    return values, errors


def parse_links(form, subs: list[Account], plans: list[Plan]) -> dict[int, dict]:
    """Send billing links' form: an email and a starting balance for each row that will be
    tried (email_<id>, amount_<id>); errors beside their row's fields."""
    refused = {p.sub.id for p in plans if p.outcome == RowOutcome.REFUSED}
    values, errors = {}, {}
    for sub in subs:
        if sub.id in refused:
            continue
        row, row_errors = _link_row(form.get(f"email_{sub.id}", ""),
                                    form.get(f"amount_{sub.id}", ""), f"_{sub.id}")
        values[sub.id] = row
        errors.update(row_errors)
    try:
        message = clean_text(form.get("message", ""), "message", "The message", multiline=True)
    except ValidationFailed as e:
        errors.update(e.errors)
        message = ""
    if len(message) > 2000:
        errors["message"] = "Keep the message to 2,000 characters."
    if errors:
        raise ValidationFailed(errors)
    for row in values.values():
        row["message"] = message
    return values


def parse_csv(data: bytes, agency_subs: list[Account]) -> dict[int, dict[str, str]]:
    """A CSV of name,email,amount (a header line optional): each line names one of the
    selected sub-accounts. Errors say their line: "Line 3: ...". Returns, by sub-account id,
    the email and amount as typed (the form shows them; parse_links checks them)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed({"csv": "The file is not UTF-8 text: save it as CSV "
                                       "(UTF-8) and upload it again."}) from None
    if len(data) > rules.BULK_CSV_MAX_BYTES:
        raise ValidationFailed({"csv": f"The file is over {rules.BULK_CSV_MAX_BYTES // 1000:,} "
                                       "KB: upload at most one line per sub-account."})
    by_name: dict[str, list[Account]] = {}
    for sub in agency_subs:
        by_name.setdefault(sub.name.strip().casefold(), []).append(sub)
    found: dict[int, dict[str, str]] = {}
    problems: list[str] = []
    for number, line in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not any(cell.strip() for cell in line):
            continue
        if number == 1 and [c.strip().lower() for c in line[:3]] == ["name", "email", "amount"]:
            continue
        if len(line) != 3:
            problems.append(f"Line {number}: expected 3 values (name,email,amount), "
                            f"found {len(line)}.")
            continue
        name, email, amount = (cell.strip() for cell in line)
        matches = by_name.get(name.casefold(), [])
        if not matches:
            problems.append(f"Line {number}: “{name[:120]}” is not one of the selected "
                            "sub-accounts.")
            continue
        if len(matches) > 1:
            problems.append(f"Line {number}: more than one selected sub-account is named "
                            f"“{name[:120]}”: fill its row in the form instead.")
            continue
        sub = matches[0]
        if sub.id in found:
            problems.append(f"Line {number}: “{sub.name}” is on an earlier line too.")
            continue
        _values, errors = _link_row(email, amount, "")
        for message in errors.values():
            problems.append(f"Line {number}: {message}")
        found[sub.id] = {"email": email, "amount": amount}
    if not found and not problems:
        problems.append("The file has no lines: one line per sub-account, "
                        "name,email,amount.")
    if problems:
        raise ValidationFailed({"csv": "\n".join(problems[:50])})
    return found


# --------------------------------------------------------------------------- running

def find(session: Session, agency: Account, action_id: int) -> BulkAction:
    bulk = session.scalar(select(BulkAction).where(BulkAction.id == action_id,
                                                   BulkAction.agency_id == agency.id))
    if bulk is None:
        raise NotFound("No such bulk action.")
    return bulk


def start(session: Session, agency: Account, actor: User, key: str, kind: BulkKind,
          subs: list[Account], params: dict | None = None,
          row_params: dict[int, dict] | None = None,
          now: datetime | None = None) -> tuple[BulkAction, bool]:
    """Store the confirmed action and its rows (committed). Returns (action, new): a key
    already used (a resubmitted confirmation) returns the stored action, new=False."""
    key = _check_key(key)
    begin_write(session)  # SQLite: the write lock first, so a twin submit waits, then finds it
    existing = session.scalar(select(BulkAction).where(BulkAction.agency_id == agency.id,
                                                       BulkAction.key == key))
    if existing is not None:
        return existing, False
    now = now or clock_now()
    bulk = BulkAction(agency_id=agency.id, key=key, kind=kind.value,
                      params_json=json.dumps(params or {}, sort_keys=True), state="running",
                      summary="", actor_id=actor.id, created_at=now)
    session.add(bulk)
    for position, sub in enumerate(subs):
        session.add(BulkActionRow(
            bulk_action=bulk, account_id=sub.id, position=position, name=sub.name,
            params_json=json.dumps((row_params or {}).get(sub.id) or {}, sort_keys=True),
            outcome=RowOutcome.PENDING.value, message=""))
    try:
        session.commit()
    except IntegrityError:  # the same confirmation submitted twice at once: the other won
        session.rollback()
        existing = session.scalar(select(BulkAction).where(BulkAction.agency_id == agency.id,
                                                           BulkAction.key == key))
        if existing is None:
            raise
        return existing, False
    return bulk, True


@dataclass(frozen=True)
class Context:
    """What a row's work needs beyond the session: the billing links' settings and the
    emails the views send (services import no Flask)."""

    link_settings: Any = None
    on_link: Callable | None = None  # (session, agency, sub, request, url): the email


def _do(session: Session, ctx: Context, agency: Account, actor: User, kind: BulkKind,
        sub: Account, params: dict, now: datetime) -> str:
    """One row's work through the single-row service. Returns what was done; raises
    NotAllowed / ValidationFailed when refused."""
    if kind == BulkKind.PAUSE:
        lifecycle.pause_swapping(session, sub, actor, now)
        return "Number swapping paused; calls still connect."
    if kind == BulkKind.STOP:
        lifecycle.stop_calls(session, sub, actor, now)
        return "Incoming calls stopped and number swapping paused."
    if kind == BulkKind.RESUME:
        lifecycle.resume(session, sub, actor, now)
        return "Resumed: numbers swap and calls connect."
    if kind == BulkKind.CLOSE:
        released = lifecycle.close(session, sub, actor, now)
        noun = "number" if len(released) == 1 else "numbers"
        return (f"Closed; {len(released)} tracking {noun} released"
                + (f" ({', '.join(n.number for n in released)})." if released else ".")
                + f" It can be reactivated within {rules.DATA_RETENTION.days} days.")
    from billing_links import service as link_service

    if kind == BulkKind.AGENCY_BILLING:
        moved = link_service.add_to_agency_billing(session, agency, sub, actor, now)
        return ("On agency billing" + (f"; {dollars(moved)} moved to the agency's balance."
                                       if moved > 0 else
                                       f"; the agency took on its debt of {dollars(-moved)}."
                                       if moved < 0 else "."))
    if kind == BulkKind.SEND_LINKS:
        request, url = link_service.request_removal(
            session, ctx.link_settings, agency, sub, actor, params["email"],
            plain(params["amount_cents"]), params.get("message", ""), now)
        if ctx.on_link is not None:
            ctx.on_link(session, agency, sub, request, url)
        return (f"Emailed {request.email} a secure link to pay at least "
                f"{dollars(request.amount_cents)}.")
    if kind == BulkKind.SET_BUDGET:
        from portal.services import budgets

        budget = budgets.set_budget(session, sub, actor, params.get("amount_cents"),
                                    params.get("thresholds"),
                                    bool(params.get("pause_calls")))
        if params.get("amount_cents") is None:
            return "Budget removed."
        return f"Budget set: {dollars(budget.amount_cents)} a month."
    raise NotAllowed("Unknown action.")


def _refusal(error: Exception) -> str:
    if isinstance(error, ValidationFailed):
        return " ".join(str(m) for m in error.errors.values())
    return getattr(error, "message", str(error))


def run(session: Session, agency: Account, actor: User, bulk: BulkAction,
        ctx: Context | None = None, now: datetime | None = None) -> BulkAction:
    """Do each pending row in its own transaction (committed row by row), then mark the
    action done with a summary (Change History's version of it)."""
    ctx = ctx or Context()
    kind = BulkKind(bulk.kind)
    params = json.loads(bulk.params_json or "{}")
    row_ids = [row.id for row in bulk.rows if row.outcome == RowOutcome.PENDING.value]
    for row_id in row_ids:
        row = session.get(BulkActionRow, row_id)
        when = now or clock_now()
        row_params = {**params, **json.loads(row.params_json or "{}")}
        sub = session.scalar(select(Account).where(Account.id == row.account_id,
                                                   Account.parent_id == agency.id))
        try:
            if sub is None:
                raise NotAllowed("It is no longer one of this agency's sub-accounts.")
            session.refresh(sub)
            known = check(session, kind, sub, row_params)
            if known is not None:
                outcome, message = known
                if outcome == RowOutcome.REFUSED:
                    raise NotAllowed(message)
            else:
                outcome, message = RowOutcome.DONE, _do(session, ctx, agency, actor, kind,
                                                        sub, row_params, when)
        except (NotAllowed, NotFound, ValidationFailed) as e:
            session.rollback()  # this row's work only: the rows before are committed
            outcome, message = RowOutcome.REFUSED, _refusal(e)
            row = session.get(BulkActionRow, row_id)
        row.outcome, row.message = outcome.value, message[:500]
        session.commit()
    session.refresh(bulk)
    bulk.state = "done"
    bulk.finished_at = now or clock_now()
    bulk.summary = summary(bulk)
    session.commit()
    return bulk


def counts(bulk: BulkAction) -> dict[str, int]:
    out = {o.value: 0 for o in RowOutcome}
    for row in bulk.rows:
        out[row.outcome] = out.get(row.outcome, 0) + 1
    return out


def summary(bulk: BulkAction) -> str:
    """The counts, then each row's outcome: Change History's record of the action."""
    c = counts(bulk)
    head = f"{c['done']} done, {c['already']} already so, {c['refused']} refused."
    rows = "; ".join(f"{row.name}: {row.outcome}" + (f" ({row.message})" if row.message
                                                      and row.outcome != "done" else "")
                     for row in bulk.rows)
    text = f"{head} {rows}"
    return text if len(text) <= 4000 else text[:3990] + " …"
