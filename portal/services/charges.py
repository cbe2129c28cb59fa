"""Charging payment methods: Make a Payment, auto recharge (Primary, then Backup), and the
retries of charges the processor did not answer.

A charge is written as pending, with the idempotency key the processor will get, and
committed *before* the processor is called; the answer settles it (a conditional update from
pending, so two settlers can't both credit) and a success credits the ledger under a key
derived from the charge. A timeout leaves it pending, and the jobs retry it with the same key:
the processor answers as it did the first time, so a card is never charged twice and the
balance is never credited without a charge.

The functions that call the processor (`attempt`, `run_recharge`, `retry_pending`) commit:
a charge must be on record before money moves.
"""

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from portal import rules
from portal.clock import now as clock_now
from portal.errors import ConfirmationNeeded, NotFound, ValidationFailed
from portal.mail import notices
from portal.models import (
    Account,
    BillingSettings,
    Cause,
    Charge,
    ChargePurpose,
    ChargeStatus,
    LedgerKind,
    MethodRole,
    PaymentMethod,
    User,
)
from portal.services import billing, guardrails, ledger, payment_methods, processor, webhooks
from portal.services.gateway import ChargeResult, GatewayTimeout, PaymentGateway
from portal.services.money import dollars, parse_cents
from portal.services.paging import Page
from portal.transactions import begin_write, retry_when_locked

log = logging.getLogger("portal.charges")

NO_ANSWER = ("The payment processor didn't answer yet; we retry automatically (never charging "
             "twice).")
BACKUP = ":backup"  # the key of a recharge's second try, on the Backup: the first's + this


# A purpose whose settlement is its own (the billing links register the opening balance:
# switch to customer billing and credit it, or refund it): called in the settlement's
# transaction, under the payer's lock, instead of the credit and receipt below.
ON_SUCCESS: dict[ChargePurpose, Callable[[Session, Charge, datetime], None]] = {}
ON_FAILURE: dict[ChargePurpose, Callable[[Session, Charge, datetime], None]] = {}


def by_key(session: Session, key: str) -> Charge | None:
    return session.scalar(select(Charge).where(Charge.idempotency_key == key))


def start(session: Session, account: Account, method: PaymentMethod, purpose: ChargePurpose,
          amount_cents: int, key: str, description: str, actor: User | None = None,
          now: datetime | None = None) -> Charge:
    """Record a pending charge (or return the one already recorded under this key)."""
    if not 0 < amount_cents <= rules.MAX_CHARGE_CENTS:
        raise ValueError(f"charge amount out of range: {amount_cents}")
    begin_write(session)
    existing = by_key(session, key)
    if existing is not None:
        return existing
    charge = Charge(account_id=account.id, method_id=method.id, purpose=purpose,
                    amount_cents=amount_cents, idempotency_key=key,
                    description=description[:200], actor_id=actor.id if actor else None,
                    status=ChargeStatus.PENDING, attempts=0, created_at=now or clock_now())
    try:
        with session.begin_nested():
            session.add(charge)
            session.flush()
    except IntegrityError:
        existing = by_key(session, key)
        if existing is None:
            raise  # not the key: the one-pending-recharge index (the caller handles it)
        return existing
    return charge


def attempt(session: Session, gateway: PaymentGateway, charge: Charge,
            now: datetime | None = None) -> Charge:
    """Ask the processor to charge a pending charge, resolve its answer, commit. Leaves it
    pending when the processor doesn't answer, or while the payer authenticates (then the
    answer's client secret is on `charge.action`, for the page: never stored)."""
    if charge.status != ChargeStatus.PENDING:
        return charge
    now = now or clock_now()
    # What the processor gets, read before the commit: nothing touches the database between
    # the commit and the processor's answer. A pure function of the row: a retry sends the
    # same parameters under the same key, and a known intent is looked up, not re-created.
    request = processor.request_for(charge)
    result = ask(session, Charge, charge.id, now, lambda: gateway.charge(request))
    if result is None:
        return charge
    return resolve(session, gateway, charge, result, now)


def resolve(session: Session, gateway: PaymentGateway | None, charge: Charge, result,
            now: datetime | None = None) -> Charge:
    """The one settle path (issue 16): the processor's answer for a pending charge, from
    `attempt`, the jobs' retry, a webhook or the payer's challenge (`confirm`). Succeeded
    or failed → settle (credit once); requires_action → the intent is recorded and the
    charge waits for the payer (expire_actions cancels it after ACTION_TIMEOUT);
    processing → recorded, still pending. Commits."""
    now = now or clock_now()
    outcome = result.outcome
    charge.action = None
    if outcome in ("requires_action", "processing"):
        def record() -> None:
            begin_write(session)
            values = {"gateway_reference": result.reference[:64],
                      "processor_status": outcome}
            if outcome == "requires_action":
                values["action_required_at"] = func.coalesce(Charge.action_required_at, now)
            session.execute(update(Charge).where(
                Charge.id == charge.id, Charge.status == ChargeStatus.PENDING).values(**values))
            session.commit()

        retry_when_locked(session, record, f"charge {charge.id}: {outcome}")
        session.refresh(charge)
        if outcome == "requires_action" and charge.is_pending:
            charge.action = result
        return charge

    def settle_and_commit() -> None:
        settle(session, charge, outcome == "succeeded", result.reference, result.code,
               result.message, now=now)
        session.commit()

    # The money has moved (or not): its answer is settled now, not lost to a busy moment.
    retry_when_locked(session, settle_and_commit, f"charge {charge.id}: settle")
    if gateway is not None:
        _refund_if_started(session, gateway, charge, now)
    return charge


def confirm(session: Session, gateway: PaymentGateway, account: Account,
            charge_id: int) -> Charge:
    """After the payer's challenge (Make a Payment): the intent's answer, read from the
    processor (never from the browser), resolved. Still waiting → left pending (the jobs
    cancel it after ACTION_TIMEOUT)."""
    charge = check_intent(session, gateway, get(session, account, charge_id))
    charge.action = None  # the payer left the challenge: not shown again
    return charge


def check_intent(session: Session, gateway: PaymentGateway, charge: Charge,
                 now: datetime | None = None) -> Charge:
    """A pending charge whose intent the processor knows: its answer now, read from the
    processor (never from the browser), resolved."""
    if not charge.is_pending or not charge.gateway_reference:
        return charge
    try:
        result = gateway.payment_status(charge.gateway_reference)
    except GatewayTimeout:
        return charge
    return resolve(session, gateway, charge, result, now)


ACTION_TIMEOUT = getattr(rules, "ACTION_TIMEOUT", timedelta(hours=1))


def expire_actions(session: Session, gateway: PaymentGateway,
                   now: datetime | None = None) -> list[Charge]:
    """Challenges abandoned for ACTION_TIMEOUT: canceled at the processor, the charge
    failed ("succeeded" if the payer completed it first: then it is credited). Commits."""
    now = now or clock_now()
    waiting = session.scalars(select(Charge).where(
        Charge.status == ChargeStatus.PENDING, Charge.action_required_at.is_not(None),
        Charge.action_required_at <= now - ACTION_TIMEOUT).order_by(Charge.id).limit(100)).all()
    done = []
    for charge in waiting:
        try:
            result = gateway.cancel_payment(charge.gateway_reference)
        except GatewayTimeout:
            continue
        if result.outcome == "requires_action":  # not canceled: try again next run
            continue
        if result.outcome != "succeeded":
            result = ChargeResult(False, result.reference, "authentication_abandoned",
                                  ABANDONED, status="failed")
        done.append(resolve(session, gateway, charge, result, now))
    return done


ABANDONED = "The payment was not confirmed with the card's bank in time: nothing was charged."


def ask(session: Session, model, row_id: int, now: datetime, call: Callable):
    """Count the attempt on the pending charge or refund `row_id` and commit it (it is on
    record before money moves), then make the processor `call`. Its answer, or None when it
    didn't answer (a timeout, or an error of the processor's own: the same key is asked
    again later)."""
    what = model.__tablename__.removesuffix("s")

    def count_attempt() -> None:
        begin_write(session)
        session.execute(update(model).where(model.id == row_id).values(
            attempts=model.attempts + 1, last_attempt_at=now))
        session.commit()

    retry_when_locked(session, count_attempt, f"{what} {row_id}: attempt")
    try:
        return call()
    except GatewayTimeout:
        log.warning("%s %s: processor timeout; left pending for a retry", what, row_id)
    except Exception:  # the processor's error, not ours: same as no answer
        log.exception("%s %s: processor error; left pending for a retry", what, row_id)
    return None


def due_for_retry(session: Session, model, status, now: datetime) -> list:
    """Pending charges or refunds (a timeout, a crash between recording and asking) whose
    backoff has passed: one retry interval per attempt so far, at most an hour."""
    pending = session.scalars(
        select(model).where(model.status == status,
                            or_(model.last_attempt_at.is_(None),
                                model.last_attempt_at <= now - rules.CHARGE_RETRY_AFTER))
        .order_by(model.id).limit(100))
    due = []
    for row in pending:
        backoff = min(rules.CHARGE_RETRY_AFTER * max(1, row.attempts),
                      rules.CHARGE_RETRY_MAX_BACKOFF)
        if row.last_attempt_at is None or row.last_attempt_at <= now - backoff:
            due.append(row)
    return due


def _refund_if_started(session: Session, gateway: PaymentGateway, charge: Charge,
                       now: datetime) -> None:
    """A settlement can decide the money must go back (a billing-link payment that came too
    late): the refund is on record; ask the processor now rather than at the next jobs run."""
    from portal.services import refunds

    refund = refunds.pending_for_charge(session, charge.id)
    if refund is not None:
        refunds.attempt(session, gateway, refund, now)


def settle(session: Session, charge: Charge, succeeded: bool, reference: str, code: str,
           message: str, now: datetime | None = None) -> bool:
    """Pending → succeeded (credit the ledger, queue receipts) or failed. False when someone
    else settled it first."""
    now = now or clock_now()
    if succeeded:  # the accounts' locks first, in their order, then the charge's row
        ledger.lock_payer(session, charge.account_id)
    else:
        begin_write(session)
    status = ChargeStatus.SUCCEEDED if succeeded else ChargeStatus.FAILED
    changed = session.execute(
        update(Charge).where(Charge.id == charge.id, Charge.status == ChargeStatus.PENDING)
        .values(status=status, settled_at=now, gateway_reference=reference[:64],
                failure_code="" if succeeded else code[:32],
                failure_message="" if succeeded else message[:200])
    ).rowcount
    session.refresh(charge)
    if changed != 1:
        return False
    webhooks.charge_settled(session, charge, succeeded, now)  # issue 18: its event, once
    if succeeded:  # a payment that succeeds restarts auto recharge stopped by declines
        guardrails.restart(session, charge.account_id)
    if not succeeded:
        then = ON_FAILURE.get(charge.purpose)
        if then is not None:
            then(session, charge, now)
        return True
    then = ON_SUCCESS.get(charge.purpose)
    if then is not None:
        then(session, charge, now)
        return True
    credit(session, charge, now)
    notices.receipt(session, charge)
    if charge.purpose == ChargePurpose.RECHARGE:
        _cap_check(session, charge)
        _recharge_again(session, charge, now)
    if charge.purpose == ChargePurpose.RECHARGE and charge.idempotency_key.endswith(BACKUP):
        # The Backup paid because the Primary declined: the receipt alone would hide that
        # the Primary needs fixing before the next recharge.
        first = by_key(session, charge.idempotency_key.removesuffix(BACKUP))
        if first is not None and first.is_failed:
            notices.primary_declined(session, first, charge)
    return True


def _cap_check(session: Session, charge: Charge) -> None:
    """A recharge that brings its month's recharges to the cap (exactly, or past it: a cap
    lowered meanwhile) tells the recipients the cap is reached (once a month)."""
    settings = session.get(BillingSettings, charge.account_id)
    if settings is not None and settings.recharge_cap_cents is not None and \
            guardrails.recharged_this_month(session, charge.account_id, charge.created_at) \
            >= settings.recharge_cap_cents:
        guardrails.cap_reached(session, session.get(Account, charge.account_id),
                               charge.created_at)


def _recharge_again(session: Session, charge: Charge, now: datetime) -> None:
    """A recharge's amount was set when it started; usage posted while it was in flight
    found it pending and started none. So the balance its credit leaves can still be below
    the threshold: the next recharge starts now, in the credit's transaction (run_recharge
    runs it; else the jobs do)."""
    start_recharge(session, ledger.lock_payer(session, charge.account_id).payer, now)


def credit(session: Session, charge: Charge, now: datetime) -> None:
    """Credit a succeeded charge to whoever pays for its account now, read under the lock
    the entry is written under: a sub-account added to agency billing while its payment was
    in flight has had its balance moved to the agency, and the payment follows it."""
    locked = ledger.lock_payer(session, charge.account_id)
    # Stamped under the lock, not when the charge was sent (a processor's call earlier):
    # entries' times then follow the order they are applied in, and the Billing Logs'
    # running balance reads in sequence when payments to one account settle at once.
    now = max(now, clock_now())
    kind = LedgerKind.RECHARGE if charge.purpose == ChargePurpose.RECHARGE \
        else LedgerKind.PAYMENT
    method = session.get(PaymentMethod, charge.method_id)
    actor = session.get(User, charge.actor_id) if charge.actor_id else None
    named = f" ({locked.account.name})" if locked.on_behalf else ""
    ledger.post(session, locked.payer, kind, charge.amount_cents,
                f"{charge.label}{named}: {method.short_label} "
                f"({charge.receipt_number})",
                f"charge:{charge.id}", Cause.CHARGE, cause_ref=str(charge.id),
                actor=actor, for_account=locked.account if locked.on_behalf else None,
                now=now)


# --------------------------------------------------------------- Make a Payment

def new_form_key() -> str:
    """The key a payment form carries, so submitting it twice makes one charge."""
    return secrets.token_hex(16)


def pay(session: Session, account: Account, actor: User, method_id: str, amount: str,
        form_key: str) -> Charge:
    """Record a one-time payment from a chosen method (pending: `attempt` charges it)."""
    billing.check_own_billing(account)
    errors = {}
    method = None
    try:
        method = payment_methods.get(session, account, _id(method_id))
    except (TypeError, ValueError, NotFound):
        errors["method"] = "Choose one of the account's payment methods."
    try:
        cents = parse_cents(amount, "amount", maximum=rules.MAX_CHARGE_CENTS)
    except ValidationFailed as e:
        errors.update(e.errors)
    if not form_key or len(form_key) != 32 or not all(c in "0123456789abcdef" for c in form_key):
        errors[""] = "The form was out of date. Reload the page and try again."
    if errors:
        raise ValidationFailed(errors)
    key = f"payment:{account.id}:{form_key}"
    existing = by_key(session, key)
    if existing is not None:
        return existing  # the same form submitted again: the first charge's outcome
    return start(session, account, method, ChargePurpose.PAYMENT, cents, key,
                 f"Payment to {account.name}", actor)


def _id(raw) -> int:
    """A row id from a form: 1 to 2**31 - 1, digits 0-9 only (inputs.to_id)."""
    from portal.services.inputs import to_id

    value = to_id(raw)
    if value is None:
        raise ValueError(raw)
    return value


def _role(session: Session, account: Account, role: MethodRole) -> PaymentMethod | None:
    return session.scalar(select(PaymentMethod).where(
        PaymentMethod.account_id == account.id, PaymentMethod.removed_at.is_(None),
        PaymentMethod.role == role))


# --------------------------------------------------------------- auto recharge

@dataclass(frozen=True)
class RechargeDue:
    """A recharge the balance calls for now: the amount and the card start_recharge charges,
    what the balance is, and what the charge brings it back up to."""

    amount_cents: int
    method: PaymentMethod
    balance_cents: int
    threshold_cents: int
    target_cents: int

    @property
    def confirmation(self) -> str:
        """What a confirmation of this very charge carries back ("19485:12": cents, card)."""
        return f"{self.amount_cents}:{self.method.id}"


def recharge_due(session: Session, account: Account, balance: int | None = None,
                 now: datetime | None = None) -> RechargeDue | None:
    """The recharge start_recharge would record now, or None: the balance is at or above
    the threshold (or recharge is off), there is no Primary, a recharge is in flight, or a
    guardrail holds it back (issue 17: the month's cap, the day's limit, declines in a row;
    near the cap, what is left under it is charged)."""
    return _decide(session, account, balance, now)[0]


def _decide(session: Session, account: Account, balance: int | None,
            now: datetime | None) -> tuple[RechargeDue | None, guardrails.Stop | None]:
    """recharge_due, and the guardrail that held a needed recharge back (else None)."""
    settings = billing.settings_for(session, account)
    if balance is None:  # else: what the caller's posting left, in this same transaction
        balance = session.scalar(select(Account.balance_cents).where(Account.id == account.id))
    needed = billing.recharge_needed(balance, settings.recharge_threshold_cents,
                                     settings.recharge_amount_cents)
    if needed <= 0:
        return None, None
    primary = _role(session, account, MethodRole.PRIMARY)
    if primary is None:
        return None, None
    chosen = primary
    if payment_methods.standing(session, primary).flagged:
        # Card health (issue 16): a Primary declined twice in a row, expired or unusable is
        # skipped for a healthy Backup (else it is still tried: better than nothing).
        backup = _role(session, account, MethodRole.BACKUP)
        if backup is not None and not payment_methods.standing(session, backup).flagged:
            chosen = backup
    pending = session.scalar(select(Charge.id).where(
        Charge.account_id == account.id, Charge.purpose == ChargePurpose.RECHARGE,
        Charge.status == ChargeStatus.PENDING))
    if pending is not None:
        return None, None
    allowed = guardrails.check(session, account, settings, needed, now)
    if allowed.stop is not None:
        return None, allowed.stop
    amount = min(allowed.amount_cents, rules.MAX_CHARGE_CENTS)
    target = settings.recharge_amount_cents if allowed.amount_cents == needed \
        else balance + amount  # what is left under the month's cap
    return RechargeDue(amount, chosen, balance, settings.recharge_threshold_cents,
                       target), None


def start_recharge(session: Session, account: Account, now: datetime | None = None,
                   balance: int | None = None) -> Charge | None:
    """After the balance moved down: if it is below the threshold, record a pending recharge
    on the Primary for what brings it back to the recharge amount. At most one recharge is
    pending per account (a unique index), so concurrent usage starts one. A recharge held
    back by the month's cap tells the recipients (once a month); a month whose cap was
    reached is over: they are told it reset (once), if the jobs haven't yet."""
    settings = session.get(BillingSettings, account.id)
    if settings is not None and settings.recharge_cap_month:
        guardrails.cap_reset(session, settings, now)
    due, stop = _decide(session, account, balance, now)
    if stop is not None and stop.reason == "cap":
        guardrails.cap_reached(session, account, now)
    return None if due is None else _start_due(session, account, due, now)


def _start_due(session: Session, account: Account, due: RechargeDue,
               now: datetime | None = None) -> Charge | None:
    try:
        return start(session, account, due.method, ChargePurpose.RECHARGE, due.amount_cents,
                     f"recharge:{account.id}:{secrets.token_hex(8)}",
                     f"Auto recharge of {account.name} to {dollars(due.target_cents)}", now=now)
    except IntegrityError:  # another posting started one at the same moment
        return None


def save_auto_recharge(session: Session, account: Account, threshold: str, amount: str,
                       enabled: bool = True, confirmed: str | None = None, *,
                       cap: str | None = None, daily_limit: str | None = None
                       ) -> tuple[BillingSettings, Charge | None]:
    """Balance Auto Recharge Settings saved, and the recharge they call for now (the balance
    is below the new threshold) recorded pending, for `run_recharge` to charge.

    A save that would charge now needs the person's confirmation of that very charge:
    `confirmed` is the `RechargeDue.confirmation` they were shown. Without it, or when the
    balance, the settings or the Primary changed since (another amount or card is due now),
    ConfirmationNeeded carries the charge due now and the caller rolls the save back. The
    check and the charge are made under the account's money lock, so the balance the
    confirmation was compared with is the one the charge is made on."""
    billing.check_own_billing(account)
    ledger.lock_payer(session, account.id)
    settings = billing.set_auto_recharge(session, account, threshold, amount, enabled,
                                         cap=cap, daily_limit=daily_limit)
    if settings.recharge_cap_month and (
            settings.recharge_cap_cents is None or settings.recharge_cap_cents
            > guardrails.recharged_this_month(session, account.id, clock_now())):
        # The cap raised (or removed) past this month's recharges: reaching it is told again.
        settings.recharge_cap_month = ""
    due = recharge_due(session, account)
    if due is None:
        return settings, None
    if confirmed != due.confirmation:
        raise ConfirmationNeeded(
            f"Saving charges {dollars(due.amount_cents)} to {due.method.short_label} now, to "
            f"bring the balance to {dollars(due.target_cents)}.", due)
    return settings, _start_due(session, account, due)


def run_recharge(session: Session, gateway: PaymentGateway, charge: Charge,
                 now: datetime | None = None) -> Charge:
    """Charge the Primary, then what follows its answer (`finish_recharge`). Commits.
    Returns this recharge's outcome (the Backup's when the Primary declined)."""
    return finish_recharge(session, gateway, attempt(session, gateway, charge, now), now)


def finish_recharge(session: Session, gateway: PaymentGateway, charge: Charge,
                    now: datetime | None = None) -> Charge:
    """What follows a recharge's answer, whoever got it (the request that started it, the
    jobs' retry, a webhook): declined → the Backup; declined too (or no Backup) → the
    decline emailed to every billing-email recipient; succeeded → the recharge its credit
    started (`_recharge_again`), if any, run the same way. Commits. Any other charge is
    returned as it is."""
    if charge.purpose != ChargePurpose.RECHARGE:
        return charge
    done = _after_recharge(session, gateway, charge, now)
    last = done
    while last.status == ChargeStatus.SUCCEEDED:
        after = _unasked_recharge(session, last)
        if after is None:
            break
        last = _after_recharge(session, gateway, attempt(session, gateway, after, now), now)
    return done


def after_event(session: Session, gateway: PaymentGateway, charge: Charge,
                now: datetime | None = None) -> Charge:
    """A charge the processor's webhook settled (in the event's transaction, committed):
    the refund its settlement decided on, asked now, and a recharge's next step, as
    `attempt` and `run_recharge` do after their own answer. Commits."""
    if charge.is_pending:
        return charge
    _refund_if_started(session, gateway, charge, now or clock_now())
    return finish_recharge(session, gateway, charge, now)


def _unasked_recharge(session: Session, settled: Charge) -> Charge | None:
    """The pending recharge nobody has asked the processor for yet, recorded on the account
    that `settled` credited (at most one is pending per account)."""
    payer = ledger.paying_account(session, session.get(Account, settled.account_id))
    return session.scalar(select(Charge).where(
        Charge.account_id == payer.id, Charge.purpose == ChargePurpose.RECHARGE,
        Charge.status == ChargeStatus.PENDING, Charge.attempts == 0))


def _after_recharge(session: Session, gateway: PaymentGateway, charge: Charge,
                    now: datetime | None) -> Charge:
    if charge.status != ChargeStatus.FAILED:
        return charge
    tried = [charge]
    account = session.get(Account, charge.account_id)
    backup = _role(session, account, MethodRole.BACKUP)
    if backup is not None and backup.id != charge.method_id \
            and not charge.idempotency_key.endswith(BACKUP):
        try:
            second = start(session, account, backup, ChargePurpose.RECHARGE,
                           charge.amount_cents, f"{charge.idempotency_key}{BACKUP}",
                           charge.description + " (backup card)", now=now)
        except IntegrityError:
            # Usage started another recharge since the Primary declined: that one tries the
            # cards (and tells the recipients if they decline).
            session.rollback()
            return charge
        session.commit()
        second = attempt(session, gateway, second, now)
        if second.status != ChargeStatus.FAILED:
            return second
        tried.append(second)
    elif charge.idempotency_key.endswith(BACKUP):
        first = by_key(session, charge.idempotency_key.removesuffix(BACKUP))
        tried = [c for c in (first, charge) if c is not None]
    notices.declined(session, tried)
    # The third declined recharge in a row stops auto recharge (and tells the recipients).
    guardrails.declined(session, account, tried[-1], now)
    session.commit()
    return tried[-1]


# --------------------------------------------------------------- retries (the jobs)

def retry_pending(session: Session, gateway: PaymentGateway,
                  now: datetime | None = None) -> list[Charge]:
    """Charges left pending (a timeout, a crash between recording and charging) whose
    backoff has passed: asked again with the same key. Commits."""
    now = now or clock_now()
    done = []
    for charge in due_for_retry(session, Charge, ChargeStatus.PENDING, now):
        done.append(finish_recharge(session, gateway, attempt(session, gateway, charge, now),
                                    now))
    return done


# --------------------------------------------------------------- Account Payment History

def history(session: Session, account: Account, page: int = 1, per_page: int = 20) -> Page:
    """A page of the account's charges, newest first, with their refunds, and how many
    there are: one query (the count rides along as a window function; only a page past the
    end asks for it on its own)."""
    rows = session.execute(
        select(Charge, func.count().over())
        .where(Charge.account_id == account.id)
        .options(joinedload(Charge.refund))
        .order_by(Charge.created_at.desc(), Charge.id.desc())
        .limit(per_page).offset((page - 1) * per_page)).all()
    if rows:
        total = rows[0][1]
    elif page > 1:
        total = session.scalar(select(func.count()).select_from(Charge)
                               .where(Charge.account_id == account.id))
    else:
        total = 0
    return Page(items=[charge for charge, _ in rows], total=total, number=page,
                per_page=per_page)


def get(session: Session, account: Account, charge_id: int) -> Charge:
    charge = session.scalar(select(Charge).where(Charge.id == charge_id,
                                                 Charge.account_id == account.id))
    if charge is None:
        raise NotFound("Charge not found.")
    return charge
