"""Tenancy: which accounts a user reaches, and with which role.

A user reaches an account through a membership on it, or, for a sub-account, through an
owner or admin membership on its agency. Anything else is "not found".
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, aliased, joinedload

from portal import rules
from portal.clock import now as clock_now
from portal.errors import NotFound
from portal.models import Account, AccountKind, AgentStatus, Membership, Role, User
from portal.services.paging import contains

AGENCY_WIDE_ROLES = (Role.OWNER, Role.ADMIN)
# The best of two memberships (the account's own, the agency's) wins; a billing and a user
# membership never meet on one account (one membership per user and account).
_RANK = {Role.USER: 0, Role.BILLING: 0, Role.ADMIN: 1, Role.OWNER: 2}


@dataclass(frozen=True)
class Access:
    account: Account
    role: Role
    via_agency: bool  # reached through the agency's membership, not its own
    agency_role: Role | None = None  # the user's role on the account's agency, if any
    # Read with the account when asked (with_statuses: a full page's header shows them):
    # the account's custom agent statuses in their order, and the user's own status key on
    # it (None without a membership on the account itself). statuses None: not read.
    statuses: tuple[AgentStatus, ...] | None = None
    agent_status: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role in AGENCY_WIDE_ROLES

    @property
    def is_agency_admin(self) -> bool:
        """May act for the agency on this sub-account (transfer it out, for one)."""
        return self.agency_role in AGENCY_WIDE_ROLES


def account_for(session: Session, user: User, account_id: int, *,
                with_statuses: bool = False) -> Access:
    """The account and the user's role on it, or NotFound (never "forbidden": no leaks).
    with_statuses: also the account's agent statuses and the user's own (the header's status
    select), in the same query."""
    # One query: the account (and its agency), with the user's memberships on either (and,
    # with_statuses, a row per custom status: a few dozen rows at most).
    query = (select(Account, Membership.account_id, Membership.role, Membership.agent_status)
             .options(joinedload(Account.parent))
             .outerjoin(Membership, (Membership.user_id == user.id) & or_(
                 Membership.account_id == Account.id,
                 Membership.account_id == Account.parent_id))
             .where(Account.id == account_id))
    if with_statuses:
        query = (query.add_columns(AgentStatus)
                 .outerjoin(AgentStatus, AgentStatus.account_id == Account.id)
                 .order_by(AgentStatus.position, AgentStatus.id))
    result = session.execute(query).all()
    if not result:
        raise NotFound("Account not found.")
    account = result[0][0]
    statuses = None
    if with_statuses:
        statuses = tuple({row[4].id: row[4] for row in result if row[4] is not None}.values())
    own_status = next((row[3] for row in result if row[1] == account.id), None)
    rows = list(dict.fromkeys((member_of, role) for _, member_of, role, *_ in result
                              if member_of is not None))
    best = None
    agency_role = None
    for member_of, role in rows:
        via_agency = member_of != account.id
        if via_agency:
            agency_role = role
        if via_agency and role not in AGENCY_WIDE_ROLES:
            continue
        if best is None or _RANK[role] > _RANK[best[0]]:
            best = (role, via_agency)
    if best is None:
        raise NotFound("Account not found.")
    return Access(account=account, role=best[0], via_agency=best[1], agency_role=agency_role,
                  statuses=statuses, agent_status=own_status)


def reachable_accounts_query(user: User):
    """A select of every account the user reaches (direct, or sub via agency admin)."""
    agency_membership = aliased(Membership)
    direct = select(Membership.account_id).where(Membership.user_id == user.id)
    via_agency = select(agency_membership.account_id).where(
        agency_membership.user_id == user.id,
        agency_membership.role.in_(AGENCY_WIDE_ROLES),
    )
    return select(Account).where(
        or_(
            Account.id.in_(direct),
            (Account.kind == AccountKind.SUB) & Account.parent_id.in_(via_agency),
        )
    )


def default_account(session: Session, user: User, now: datetime | None = None
                    ) -> Account | None:
    """Where a user lands after sign-in: an agency first, else the first account by name;
    never an account closed for good (canceled more than 60 days ago)."""
    query = open_accounts(reachable_accounts_query(user), now).order_by(
        (Account.kind == AccountKind.AGENCY).desc(), (Account.kind == AccountKind.SUB),
        Account.name, Account.id,
    ).limit(1)
    return session.scalar(query)


def switcher_accounts(session: Session, user: User, q: str = "", limit: int = 20):
    """Accounts for the header switcher, matching q by name; at most `limit`."""
    query = open_accounts(reachable_accounts_query(user))
    if q.strip():
        query = query.where(contains(Account.name, q.strip()))
    query = query.order_by(
        (Account.kind == AccountKind.AGENCY).desc(), Account.name, Account.id
    ).limit(limit)
    return list(session.scalars(query))


def reaches_several(session: Session, user: User) -> bool:
    """Whether the user reaches more than one account (and so needs the switcher)."""
    query = open_accounts(reachable_accounts_query(user)).with_only_columns(Account.id).limit(2)
    return len(session.scalars(query).all()) > 1


def open_accounts(query, now: datetime | None = None):
    """Narrow an account query to those not closed for good (canceled over 60 days ago)."""
    cutoff = (now or clock_now()) - rules.DATA_RETENTION
    return query.where(or_(Account.canceled_at.is_(None), Account.canceled_at >= cutoff))


def closed_for_good(session: Session, user: User, now: datetime | None = None
                    ) -> Account | None:
    """If every account the user reaches was closed more than 60 days ago, the most
    recently closed one (sign-in then says the account is closed); else None."""
    if session.scalar(open_accounts(reachable_accounts_query(user), now)
                      .with_only_columns(Account.id).limit(1)) is not None:
        return None
    return session.scalar(reachable_accounts_query(user)
                          .order_by(Account.canceled_at.desc()).limit(1))
