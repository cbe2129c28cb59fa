"""Change History: an account's versions (for an agency, optionally with its sub-accounts'),
one record's versions for a feature page's Versions panel, and the purge after 7/120 days."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from portal import rules
from portal.clock import now as clock_now
from portal.errors import ValidationFailed
from portal.models import Account, AccountKind, User, Version
from portal.services.calls import DateRange, parse_range
from portal.services.inputs import to_id
from portal.services.paging import Page
from portal.versioning import RECORD_TYPES


@dataclass(frozen=True)
class Filters:
    user_id: int | None = None
    record_type: str | None = None
    when: DateRange = DateRange()
    include_subs: bool = False

    def args(self) -> dict[str, str]:
        """The filters as query-string values (the pager's links keep them)."""
        args = {}
        if self.user_id:
            args["user"] = str(self.user_id)
        if self.record_type:
            args["type"] = self.record_type
        if self.when.start:
            args["from"] = self.when.start.isoformat()
        if self.when.end:
            args["to"] = self.when.end.isoformat()
        if self.include_subs:
            args["subs"] = "1"
        return args


def retention(account: Account):
    """7 days for individual accounts; 120 for agencies and their sub-accounts."""
    if account.kind == AccountKind.STANDALONE:
        return rules.VERSION_RETENTION_INDIVIDUAL
    return rules.VERSION_RETENTION_AGENCY


def parse_filters(account: Account, args) -> Filters:
    errors = {}
    user_id = None
    raw_user = (args.get("user") or "").strip()
    if raw_user:
        user_id = to_id(raw_user) if len(raw_user) <= 9 else None
        if user_id is None:
            errors["user"] = "Choose a user from the list."
    record_type = (args.get("type") or "").strip() or None
    if record_type is not None and record_type not in RECORD_TYPES:
        errors["type"] = "Choose a record type from the list."
    try:
        when = parse_range(args.get("from"), args.get("to"))
    except ValidationFailed as e:
        errors.update(e.errors)
        when = DateRange()
    subs = (args.get("subs") or "") in ("1", "on", "true")
    if subs and not account.is_agency:
        errors["subs"] = "Only an agency's history can include sub-accounts."
    if errors:
        raise ValidationFailed(errors)
    return Filters(user_id, record_type, when, subs)


def _scope(account: Account, include_subs: bool):
    if include_subs and account.is_agency:
        # One IN over the agency and its sub-accounts: "= agency OR IN (subs)" made SQLite
        # sort every matching version to return a page (bench/versions.py: 74 -> 0.5 ms).
        family = select(Account.id).where(or_(Account.id == account.id,
                                              Account.parent_id == account.id))
        return Version.account_id.in_(family)
    return Version.account_id == account.id


def filter_conditions(account: Account, filters: Filters) -> list:
    """The versions Change History shows for these filters (the page, and /api/v1's
    cursor-paginated history, issue 18)."""
    found = [_scope(account, filters.include_subs), *filters.when.conditions(Version.at)]
    if filters.user_id:
        found.append(Version.actor_id == filters.user_id)
    if filters.record_type:
        found.append(Version.record_type == filters.record_type)
    return found


def change_history(session: Session, account: Account, filters: Filters, *, page: int = 1,
                   per_page: int = 50) -> Page:
    conditions = filter_conditions(account, filters)
    total = session.scalar(select(func.count()).select_from(Version).where(*conditions))
    items = list(session.scalars(
        select(Version).where(*conditions).order_by(Version.at.desc(), Version.id.desc())
        .limit(per_page).offset((page - 1) * per_page)))
    return Page(items=items, total=total, number=page, per_page=per_page)


def actors(session: Session, account: Account, include_subs: bool = False) -> list[User]:
    """The users who made a version still kept: the user filter's choices."""
    ids = select(Version.actor_id).where(_scope(account, include_subs),
                                         Version.actor_id.is_not(None)).distinct()
    return list(session.scalars(select(User).where(User.id.in_(ids)).order_by(User.name)))


def account_names(session: Session, account: Account) -> dict[int, str]:
    """An agency's sub-accounts by id, to name the account of each version."""
    rows = session.execute(select(Account.id, Account.name).where(
        or_(Account.id == account.id, Account.parent_id == account.id)))
    return {account_id: name for account_id, name in rows}


def parse_record_id(raw: str | None) -> int | None:
    """A Versions panel's record id: absent (every record of the type) or a positive id."""
    raw = (raw or "").strip()
    if not raw:
        return None
    record_id = to_id(raw)
    if record_id is None:
        raise ValidationFailed({"id": "Unknown record."})
    return record_id


def record_versions(session: Session, account: Account, record_type: str,
                    record_id: int | None = None, *, limit: int = 20) -> list[Version]:
    """A feature page's Versions panel: the newest versions of one record (or of every
    record of the type, when the page has many: tracking numbers, payment methods)."""
    if record_type not in RECORD_TYPES:
        raise ValidationFailed({"type": "Unknown record type."})
    conditions = [Version.account_id == account.id, Version.record_type == record_type]
    if record_id is not None:
        conditions.append(Version.record_id == record_id)
    return list(session.scalars(select(Version).where(*conditions)
                                .order_by(Version.at.desc(), Version.id.desc()).limit(limit)))


def purge(session: Session, now: datetime | None = None, batch: int | None = None) -> int:
    """Delete versions past their account's retention: older than 7 days on individual
    accounts, 120 days on agencies and sub-accounts. A version exactly at the limit stays.

    With `batch`, at most that many per retention class, so the caller can commit between
    batches and never hold SQLite's write lock for long (`jobs run` does)."""
    now = now or clock_now()
    individual = select(Account.id).where(Account.kind == AccountKind.STANDALONE)
    grouped = select(Account.id).where(Account.kind != AccountKind.STANDALONE)
    removed = 0
    for accounts, keep in ((individual, rules.VERSION_RETENTION_INDIVIDUAL),
                           (grouped, rules.VERSION_RETENTION_AGENCY)):
        expired = [Version.account_id.in_(accounts), Version.at < now - keep]
        if batch is not None:
            ids = select(Version.id).where(*expired).order_by(Version.id).limit(batch)
            expired = [Version.id.in_(ids.scalar_subquery())]
        # synchronize_session=False: no "RETURNING id" of every deleted row (0.49 -> 0.07 s
        # for 100,000 on PostgreSQL); versions are never held in the session.
        result = session.execute(delete(Version).where(*expired)
                                 .execution_options(synchronize_session=False))
        removed += result.rowcount or 0
    return removed
