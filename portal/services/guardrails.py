"""Recharge guardrails (issue 17), per paying account, in Balance Auto Recharge Settings:

- a monthly recharge cap: no recharge past it in a UTC calendar month (a recharge that would
  pass it charges what is left under it); the billing recipients are told once when it is
  reached (`cap_reached`, when a recharge brings the month's total to it or one is held back
  by it) and once when it resets at the month's turn (`cap_resets`, the jobs; also caught up
  by the next recharge decision);
- at most `recharge_daily_limit` recharges a UTC day (default 5; a Backup's try of the same
  recharge is not another recharge);
- after 3 declined recharges in a row (each after its Backup declined too), no more tries
  (`declined`), the recipients told; a payment that succeeds (`restart`) or a card added
  since the stop starts them again.

Each held-back state is a `Stop` with its reason and how to clear it, shown on the page.
charges.recharge_due asks `check` before it proposes a recharge. No Flask here.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from portal import rules
from portal.clock import now as clock_now
from portal.models import (
    Account,
    Alert,
    AlertKind,
    BillingSettings,
    Charge,
    ChargePurpose,
    ChargeStatus,
    PaymentMethod,
)
from portal.services import alerts, billing
from portal.services.money import dollars

BACKUP = ":backup"  # charges.BACKUP: a recharge's second try, on the Backup


def day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def next_month(now: datetime) -> datetime:
    start = month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


def month_key(now: datetime) -> str:
    return f"{now:%Y-%m}"


@dataclass(frozen=True)
class Stop:
    """Why auto recharge is held back now, and how to clear it."""

    reason: str  # "declines" | "cap" | "daily"
    title: str
    detail: str
    clear: str


@dataclass(frozen=True)
class Standing:
    """The guardrails' figures now, for the page and for `check`."""

    month_cents: int  # recharged this UTC month (succeeded or in flight)
    today: int  # recharges started today (UTC)
    declines: int  # declined recharges in a row (since the last success or new card)
    stop: Stop | None

    @property
    def stopped(self) -> bool:
        return self.stop is not None


def _month_query(account_id, now: datetime):
    return select(func.coalesce(func.sum(Charge.amount_cents), 0)).where(
        Charge.account_id == account_id, Charge.purpose == ChargePurpose.RECHARGE,
        Charge.status.in_((ChargeStatus.SUCCEEDED, ChargeStatus.PENDING)),
        Charge.created_at >= month_start(now), Charge.created_at < next_month(now))


def _today_query(account_id, now: datetime):
    start = day_start(now)
    return select(func.count()).select_from(Charge).where(
        Charge.account_id == account_id, Charge.purpose == ChargePurpose.RECHARGE,
        Charge.created_at >= start, Charge.created_at < start + timedelta(days=1),
        Charge.idempotency_key.not_like(f"%{BACKUP}"))


def _paid_query(account_id):
    return select(func.max(Charge.settled_at)).where(
        Charge.account_id == account_id, Charge.status == ChargeStatus.SUCCEEDED)


def _added_query(account_id):
    return select(func.max(PaymentMethod.created_at)).where(
        PaymentMethod.account_id == account_id, PaymentMethod.removed_at.is_(None))


def recharged_this_month(session: Session, account_id: int, now: datetime) -> int:
    """Recharged this UTC month: succeeded, or in flight."""
    return int(session.scalar(_month_query(account_id, now)) or 0)


def started_today(session: Session, account_id: int, now: datetime) -> int:
    """Recharges started this UTC day (a Backup's try of one is the same recharge)."""
    return session.scalar(_today_query(account_id, now)) or 0


def _latest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def _restarted_at(session: Session, account_id: int) -> datetime | None:
    """The last moment that restarts recharging: a charge that succeeded, a card added."""
    return _latest(session.scalar(_paid_query(account_id)),
                   session.scalar(_added_query(account_id)))


def declines_in_a_row(session: Session, account_id: int) -> int:
    """Recharges declined (the Backup's try too, if any) since the last charge that
    succeeded or the last card added."""
    since = _restarted_at(session, account_id)
    query = select(func.count()).select_from(Charge).where(
        Charge.account_id == account_id, Charge.purpose == ChargePurpose.RECHARGE,
        Charge.status == ChargeStatus.FAILED, Charge.idempotency_key.not_like(f"%{BACKUP}"))
    if since is not None:
        query = query.where(Charge.created_at > since)
    return session.scalar(query) or 0


def _stopped(settings: BillingSettings, restarted_at: datetime | None) -> bool:
    return settings.recharge_stopped_at is not None and (
        restarted_at is None or restarted_at <= settings.recharge_stopped_at)


def is_stopped(session: Session, settings: BillingSettings) -> bool:
    """Stopped after declines, and neither a payment nor a new card since."""
    if settings.recharge_stopped_at is None:
        return False
    return _stopped(settings, _restarted_at(session, settings.account_id))


def standing(session: Session, account: Account, settings: BillingSettings,
             now: datetime | None = None) -> Standing:
    now = now or clock_now()
    return _standing(settings, recharged_this_month(session, account.id, now),
                     started_today(session, account.id, now),
                     _restarted_at(session, account.id) if settings.recharge_stopped_at
                     else None, now)


def standing_at_once(session: Session, account: Account, settings: BillingSettings,
                     now: datetime | None = None) -> Standing:
    """`standing` in one statement (Where the money goes' upcoming recharge: a few
    statements whatever the data)."""
    now = now or clock_now()
    row = session.execute(select(
        _month_query(account.id, now).scalar_subquery(),
        _today_query(account.id, now).scalar_subquery(),
        _paid_query(account.id).scalar_subquery(),
        _added_query(account.id).scalar_subquery())).one()
    return _standing(settings, int(row[0] or 0), int(row[1] or 0), _latest(row[2], row[3]),
                     now)


def _standing(settings: BillingSettings, month: int, today: int,
              restarted_at: datetime | None, now: datetime) -> Standing:
    stopped = _stopped(settings, restarted_at)
    declines = max(settings.recharge_declines, rules.RECHARGE_DECLINES_TO_STOP) if stopped \
        else settings.recharge_declines
    stop = None
    if stopped:
        stop = Stop("declines", "Auto recharge stopped: declined cards",
                    f"The last {rules.RECHARGE_DECLINES_TO_STOP} recharges were declined "
                    f"(stopped {settings.recharge_stopped_at:%b %-d, %H:%M} UTC), so we stopped "
                    "trying.",
                    "It starts again when a payment succeeds or a card is added: make a "
                    "payment below, or add a card under Payment Methods.")
    elif settings.recharge_cap_cents is not None and month >= settings.recharge_cap_cents:
        stop = Stop("cap", "Monthly recharge cap reached",
                    f"{dollars(month)} was recharged in {now:%B %Y}, the cap of "
                    f"{dollars(settings.recharge_cap_cents)}: no more recharges this month.",
                    f"Recharges resume on {next_month(now):%B %-d} (00:00 UTC), or raise "
                    "or remove the cap below.")
    elif today >= settings.daily_limit:
        stop = Stop("daily", "Daily recharge limit reached",
                    f"{today} recharges today (UTC), the limit of "
                    f"{settings.daily_limit} a day.",
                    "Recharges resume at 00:00 UTC, or raise the limit below.")
    return Standing(month, today, declines, stop)


@dataclass(frozen=True)
class Allowance:
    amount_cents: int  # 0 when held back
    stop: Stop | None


def check(session: Session, account: Account, settings: BillingSettings, needed: int,
          now: datetime | None = None) -> Allowance:
    """How much of a `needed` recharge the guardrails allow now (what is left under the
    month's cap at most), or 0 and why."""
    now = now or clock_now()
    if is_stopped(session, settings):
        return Allowance(0, standing(session, account, settings, now).stop)
    if settings.recharge_cap_cents is not None:
        left = settings.recharge_cap_cents - recharged_this_month(session, account.id, now)
        if left <= 0:
            return Allowance(0, standing(session, account, settings, now).stop)
        needed = min(needed, left)
    if started_today(session, account.id, now) >= settings.daily_limit:
        return Allowance(0, standing(session, account, settings, now).stop)
    return Allowance(needed, None)


# --------------------------------------------------------------- what the recipients are told

def cap_reached(session: Session, account: Account, now: datetime | None = None) -> bool:
    """The month's recharges reached the cap: tell the recipients, once a month (claimed
    with a conditional update of recharge_cap_month). Caller's transaction."""
    now = now or clock_now()
    month = month_key(now)
    settings = session.get(BillingSettings, account.id)
    if settings is None or settings.recharge_cap_cents is None:
        return False
    claimed = session.execute(update(BillingSettings).where(
        BillingSettings.account_id == account.id,
        BillingSettings.recharge_cap_month != month).values(recharge_cap_month=month)).rowcount
    if claimed != 1:
        return False
    session.refresh(settings)
    cap = settings.recharge_cap_cents
    alerts.send(session, account, AlertKind.CAP_REACHED,
                f"cap-reached:{account.id}:{month}:{cap}",  # a cap raised, then reached: told
                f"Auto recharge reached its monthly cap of {dollars(cap)} for {now:%B %Y}: "
                f"no more recharges until {next_month(now):%B %-d} (00:00 UTC).",
                f"Monthly recharge cap reached for {account.name}",
                {"clear": "If the balance runs out, the account is paused. Raise or remove "
                          "the cap, or make a payment, in Settings → Billing Settings."},
                now=now)
    return True


def cap_reset(session: Session, settings: BillingSettings, now: datetime | None = None) -> bool:
    """A month whose cap was reached is over: tell the recipients recharges resume, once."""
    now = now or clock_now()
    told = settings.recharge_cap_month
    if not told or told == month_key(now):
        return False
    claimed = session.execute(update(BillingSettings).where(
        BillingSettings.account_id == settings.account_id,
        BillingSettings.recharge_cap_month == told).values(recharge_cap_month="")).rowcount
    session.refresh(settings)
    if claimed != 1:
        return False
    account = session.get(Account, settings.account_id)
    cap = settings.recharge_cap_cents
    alerts.send(session, account, AlertKind.CAP_RESET, f"cap-reset:{account.id}:{told}",
                "A new month: auto recharge is back on"
                + (f", up to {dollars(cap)} in {now:%B %Y}." if cap is not None else "."),
                f"Auto recharge resumes for {account.name}: the monthly cap reset", now=now)
    return True


def cap_resets(session: Session, now: datetime | None = None) -> int:
    """The jobs: each account told its cap was reached in an earlier month is told it reset.
    Commits."""
    now = now or clock_now()
    rows = session.scalars(select(BillingSettings).where(
        BillingSettings.recharge_cap_month != "",
        BillingSettings.recharge_cap_month != month_key(now))
        .order_by(BillingSettings.account_id).limit(500)).all()
    told = 0
    for settings in rows:
        told += cap_reset(session, settings, now)
        session.commit()
    return told


def clause(sentence: str, limit: int = 160) -> str:
    """The processor's sentence inside one of ours: "The card was declined." -> "the card was
    declined" (an initialism such as "CVC check failed." keeps its capitals)."""
    text = (sentence or "").strip().rstrip(".")[:limit] or "no reason given"
    if text[:1].isupper() and not text[1:2].isupper():
        text = text[0].lower() + text[1:]
    return text


def declined(session: Session, account: Account, last: Charge,
             now: datetime | None = None) -> bool:
    """A recharge was declined (its Backup too, if any): the third in a row stops auto
    recharge and tells the recipients. True when this one stopped it. Caller's transaction."""
    now = now or clock_now()
    settings = session.get(BillingSettings, account.id)
    if settings is None:
        return False
    in_a_row = declines_in_a_row(session, account.id)
    settings.recharge_declines = in_a_row
    if in_a_row < rules.RECHARGE_DECLINES_TO_STOP or is_stopped(session, settings):
        session.flush()
        return False
    settings.recharge_stopped_at = now
    session.flush()
    alerts.send(session, account, AlertKind.RECHARGE_STOPPED,
                f"recharge-stopped:{account.id}:{last.id}",
                f"Auto recharge stopped: {in_a_row} recharges in a row were declined (the "
                f"last on {last.method.short_label}: {clause(last.failure_message)}).",
                f"Auto recharge stopped for {account.name}: cards declined",
                {"clear": "It starts again when a payment succeeds or a card is added: make "
                          "a payment or add a card in Settings → Billing Settings."},
                now=now)
    return True


def restart(session: Session, account_id: int) -> None:
    """A charge succeeded on the account: recharging starts again (caller's transaction)."""
    session.execute(update(BillingSettings).where(
        BillingSettings.account_id == account_id,
        (BillingSettings.recharge_stopped_at.is_not(None))
        | (BillingSettings.recharge_declines != 0))
        .values(recharge_stopped_at=None, recharge_declines=0))


# --------------------------------------------------------------- Billing Settings, in one query

@dataclass(frozen=True)
class PageFigures:
    settings: BillingSettings
    suggestion: "billing.Suggestion | None"
    standing: Standing
    alerts: list[Alert]


def page(session: Session, account: Account, now: datetime | None = None) -> PageFigures:
    """billing.settings_and_suggestion, the guardrails' standing and the recent alerts, in
    one statement (the page's queries don't grow: tests/web/test_page_queries.py): a row per
    recent alert (at least one row), each with the settings and the figures."""
    now = now or clock_now()
    recent_ids = select(Alert.id).where(Alert.account_id == account.id) \
        .order_by(Alert.created_at.desc(), Alert.id.desc()).limit(alerts.RECENT)
    rows = session.execute(
        select(BillingSettings,
               billing._spent_lately(account, now).scalar_subquery(),
               _month_query(account.id, now).scalar_subquery(),
               _today_query(account.id, now).scalar_subquery(),
               _paid_query(account.id).scalar_subquery(),
               _added_query(account.id).scalar_subquery(),
               Alert)
        .select_from(Account)
        .outerjoin(BillingSettings, BillingSettings.account_id == Account.id)
        .outerjoin(Alert, and_(Alert.account_id == Account.id, Alert.id.in_(recent_ids)))
        .where(Account.id == account.id)
        .order_by(Alert.created_at.desc(), Alert.id.desc())).all()
    first = rows[0]
    settings = first[0] if first[0] is not None else billing._defaults(account)
    return PageFigures(
        settings=settings,
        suggestion=billing._suggestion(first[1]),
        standing=_standing(settings, int(first[2] or 0), int(first[3] or 0),
                           _latest(first[4], first[5]), now),
        alerts=[row[6] for row in rows if row[6] is not None])
