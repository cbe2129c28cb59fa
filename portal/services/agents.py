"""Agent statuses: the built-in ones (Online, Away, Offline) and an account's custom ones,
in the order its admins choose, and each member's current status on the account.

A member's status is kept on their membership as a built-in key ("online") or
"custom:<id>" of one of the account's statuses. Deleting a custom status moves everyone on
it back to "online".
"""

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from portal import rules
from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.models import BUILTIN_STATUSES, Account, AgentStatus, Membership, User
from portal.services.inputs import clean_name, flag
from portal.transactions import lock_account

MAX_CUSTOM_STATUSES = rules.MAX_CUSTOM_AGENT_STATUSES
NAME_MAX = rules.AGENT_STATUS_NAME_MAX
DEFAULT_STATUS = "online"  # where a deleted status's users go
CUSTOM_PREFIX = "custom:"
_COLOR = re.compile(r"^#[0-9a-f]{6}$")
_CUSTOM_KEY = re.compile(r"custom:([1-9][0-9]{0,8})")  # used with fullmatch
NEW_COLOR = "#1e88e5"  # the Add form's color until one is chosen


@dataclass(frozen=True)
class Choice:
    """One status as pages and the header show it."""

    key: str  # "online" or "custom:<id>"
    name: str
    color: str
    available: bool
    status: AgentStatus | None = None  # the record, for a custom status

    @property
    def builtin(self) -> bool:
        return self.status is None


BUILTIN_CHOICES = tuple(Choice(key, name, color, available)
                        for key, (name, color, available) in BUILTIN_STATUSES.items())


def key_of(status: AgentStatus) -> str:
    return f"{CUSTOM_PREFIX}{status.id}"


def choice_of(status: AgentStatus) -> Choice:
    return Choice(key_of(status), status.name, status.color, status.available, status)


# ----------------------------------------------------------------------------- reading

def list_statuses(session: Session, account: Account) -> list[AgentStatus]:
    """The account's custom statuses, in their order."""
    return list(session.scalars(
        select(AgentStatus).where(AgentStatus.account_id == account.id)
        .order_by(AgentStatus.position, AgentStatus.id)))


def choices(session: Session, account: Account) -> list[Choice]:
    """Built-in statuses first, then the account's custom ones."""
    return [*BUILTIN_CHOICES, *(choice_of(s) for s in list_statuses(session, account))]


def get(session: Session, account: Account, status_id: int) -> AgentStatus:
    status = session.scalar(select(AgentStatus).where(
        AgentStatus.id == status_id, AgentStatus.account_id == account.id))
    if status is None:
        raise NotFound("Agent status not found.")
    return status


def users_on(session: Session, status: AgentStatus) -> int:
    """How many members have this status now (the delete confirmation says so)."""
    return session.scalar(select(func.count()).select_from(Membership).where(
        Membership.account_id == status.account_id, Membership.agent_status == key_of(status)))


@dataclass(frozen=True)
class Header:
    """What the page header's status form needs, from one query."""

    choices: list[Choice]
    current: Choice | None  # None: the user has no membership on the account

    @property
    def member(self) -> bool:
        return self.current is not None


def for_header(session: Session, user: User, account: Account) -> Header:
    """The account's statuses and the user's current one, in one query."""
    rows = session.execute(
        select(AgentStatus, Membership.agent_status)
        .select_from(Account)
        .outerjoin(AgentStatus, AgentStatus.account_id == Account.id)
        .outerjoin(Membership, (Membership.account_id == Account.id)
                   & (Membership.user_id == user.id))
        .where(Account.id == account.id)
        .order_by(AgentStatus.position, AgentStatus.id)
    ).all()
    custom = [choice_of(status) for status, _ in rows if status is not None]
    all_choices = [*BUILTIN_CHOICES, *custom]
    mine = rows[0][1] if rows else None
    current = None
    if mine is not None:
        by_key = {c.key: c for c in all_choices}
        current = by_key.get(mine, by_key[DEFAULT_STATUS])
    return Header(all_choices, current)


def header_from(statuses, own_status: str | None) -> Header:
    """The same Header as for_header, from what the tenancy query read with the account
    (access.account_for(with_statuses=True)): no query of its own."""
    all_choices = [*BUILTIN_CHOICES, *(choice_of(status) for status in statuses)]
    current = None
    if own_status is not None:
        by_key = {c.key: c for c in all_choices}
        current = by_key.get(own_status, by_key[DEFAULT_STATUS])
    return Header(all_choices, current)


# ----------------------------------------------------------------------------- changing

def _clean(session: Session, account: Account, name: str, color: str,
           available, status_id: int | None = None) -> tuple[str, str, bool]:
    errors = {}
    taken = {b.name for b in BUILTIN_CHOICES}
    taken |= {s.name for s in list_statuses(session, account) if s.id != status_id}
    try:
        name = clean_name(name, "name", "status", NAME_MAX, taken)
    except ValidationFailed as e:
        errors.update(e.errors)
    color = (color or "").strip().lower()
    if not _COLOR.fullmatch(color):
        errors["color"] = "Choose a color (#rrggbb, like #1e88e5)."
    if errors:
        raise ValidationFailed(errors)
    return name, color, flag(available)


def add(session: Session, account: Account, name: str, color: str,
        available=False) -> AgentStatus:
    """A new custom status, last in the order."""
    lock_account(session, account.id)
    name, color, available = _clean(session, account, name, color, available)
    count, last = session.execute(
        select(func.count(), func.max(AgentStatus.position))
        .where(AgentStatus.account_id == account.id)).one()
    if count >= MAX_CUSTOM_STATUSES:
        raise ValidationFailed({"": f"An account can have at most {MAX_CUSTOM_STATUSES} custom "
                                    "statuses. Delete one before adding another."})
    status = AgentStatus(account_id=account.id, name=name, color=color, available=available,
                         position=(last + 1) if last is not None else 0)
    session.add(status)
    session.flush()
    return status


def update(session: Session, account: Account, status_id: int, name: str, color: str,
           available=False) -> AgentStatus:
    lock_account(session, account.id)
    status = get(session, account, status_id)
    status.name, status.color, status.available = _clean(session, account, name, color,
                                                         available, status_id=status.id)
    session.flush()
    return status


def delete(session: Session, account: Account, status_id: int) -> int:
    """Delete a custom status; its users go back to Online. Returns how many did."""
    lock_account(session, account.id)
    status = get(session, account, status_id)
    moved = session.execute(
        sql_update(Membership)
        .where(Membership.account_id == account.id,
               Membership.agent_status == key_of(status))
        .values(agent_status=DEFAULT_STATUS)
        .execution_options(synchronize_session="fetch")
    ).rowcount
    session.delete(status)
    session.flush()
    return moved


def move(session: Session, account: Account, status_id: int, direction: str) -> AgentStatus:
    """Swap a custom status with its neighbour above ("up") or below ("down")."""
    if direction not in ("up", "down"):
        raise ValidationFailed({"": "Move a status up or down."})
    lock_account(session, account.id)
    statuses = list_statuses(session, account)
    index = next((i for i, s in enumerate(statuses) if s.id == status_id), None)
    if index is None:
        raise NotFound("Agent status not found.")
    status = statuses[index]
    other = index - 1 if direction == "up" else index + 1
    if not 0 <= other < len(statuses):
        where = "first" if direction == "up" else "last"
        raise ValidationFailed({"": f"{status.name} is already the {where} custom status."})
    neighbour = statuses[other]
    if neighbour.position == status.position:  # equal positions: number them all afresh
        statuses[index], statuses[other] = neighbour, status
        for position, s in enumerate(statuses):
            if s.position != position:
                s.position = position
    else:
        status.position, neighbour.position = neighbour.position, status.position
    session.flush()
    return status


def set_current(session: Session, user: User, account: Account, value: str) -> Choice:
    """The user's own status on the account: a built-in key or one of ITS custom ones."""
    value = (value or "").strip()
    choice = None
    if value in BUILTIN_STATUSES:
        choice = next(c for c in BUILTIN_CHOICES if c.key == value)
    else:
        match = _CUSTOM_KEY.fullmatch(value)
        if match:
            status = session.scalar(select(AgentStatus).where(
                AgentStatus.id == int(match.group(1)), AgentStatus.account_id == account.id))
            if status is not None:
                choice = choice_of(status)
    if choice is None:
        raise ValidationFailed({"status": "Choose one of this account's statuses."})
    membership = session.scalar(select(Membership).where(
        Membership.user_id == user.id, Membership.account_id == account.id))
    if membership is None:
        raise NotAllowed("Set your status on an account you are a member of.")
    membership.agent_status = choice.key
    session.flush()
    return choice
