"""People on an account (Settings → Users): who is a member with which role, invitations to
join, changing a role and removing someone.

Invitations are signed one-time links, built as billing links are (billing_links/tokens.py):
an itsdangerous signature over a random `link_id`, under their own salt; the row decides the
rest (account, email, role, expiry). Accepting consumes the invitation with a conditional
UPDATE (pending, not expired → accepted) that must change exactly one row, in the
transaction that creates the membership: two accepts at once make one membership, the other
gets "already used". A newer invitation to the same email (Invite again, Resend) replaces
the old one in the same transaction; Revoke ends it, and so does closing the account
(revoke_for_closed; a link to a closed account says so).

The rules on roles: owners and admins manage people; only an owner gives or takes the owner
role (or removes an owner); nobody raises their own role; an account always keeps an owner
(`check_keeps_an_owner`).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from portal import roles, rules, signed_links
from portal.clock import now as clock_now
from portal.errors import DomainError, NotAllowed, NotFound, TooManyAttempts, ValidationFailed
from portal.models import (
    Account,
    BillingEmailRecipient,
    Invitation,
    InvitationStatus,
    Membership,
    Role,
    SigninAttempt,
    User,
)
from portal.roles import Can
from portal.services import auth, passwords
from portal.services.inputs import clean_email, clean_text, to_id
from portal.transactions import begin_write

SALT = "invitation.v1"

ROLE_LABELS = {Role.OWNER: "Owner", Role.ADMIN: "Admin", Role.BILLING: "Billing",
               Role.USER: "User"}
ROLE_HELP = {
    Role.OWNER: "everything, including closing the account and managing owners",
    Role.ADMIN: "everything but owners and closing the account",
    Role.BILLING: "Billing Settings, payments, statements and receipts; nothing else",
    Role.USER: "calls, numbers and agent statuses; no billing, no settings",
}
# Raising a role: a higher rank. Billing and user are side by side (neither is above).
_RANK = {Role.USER: 0, Role.BILLING: 0, Role.ADMIN: 1, Role.OWNER: 2}
MANAGERS = (Role.OWNER, Role.ADMIN)  # who reaches sub-accounts through an agency


# --------------------------------------------------------------- the link's token

class InvitationError(DomainError):
    """A link that can't be used; `reason` says which page to show."""

    status = 410
    reason = "invalid"


class InvitationTampered(InvitationError):
    status = 404
    reason = "tampered"


class InvitationExpired(InvitationError):
    reason = "expired"


class InvitationUsed(InvitationError):
    reason = "used"


class InvitationRevoked(InvitationError):
    reason = "revoked"


class InvitationAccountClosed(InvitationError):
    """The account invited to is closed (or canceled with its agency): closing revoked the
    invitation, and it doesn't come back if the account is reactivated."""

    reason = "closed"

    def __init__(self, account: Account):
        super().__init__(f"{account.name} is closed, so this invitation no longer works. "
                         "If it is reactivated, ask its owners or admins for a new "
                         "invitation.")
        self.account_name = account.name


class WrongUser(NotAllowed):
    """Signed in as someone else than the person invited."""


class SignInFirst(NotAllowed):
    """The invited email has a user with a password: they sign in to accept."""


@dataclass(frozen=True)
class LinkSettings:
    keys: list[str]  # oldest first; the last one signs
    ttl: timedelta
    base_url: str  # the configured external URL, never the request's Host


def sign(keys: list[str], link_id: str) -> str:
    return signed_links.sign(keys, SALT, link_id)


def verify(keys: list[str], token: str, max_age: timedelta) -> str:
    """The link id, or InvitationTampered / InvitationExpired."""
    return signed_links.verify(keys, SALT, token, max_age,
                               expired=InvitationExpired, tampered=InvitationTampered)


def url_for_token(settings: LinkSettings, token: str) -> str:
    return f"{settings.base_url.rstrip('/')}/invitations/{token}"


# --------------------------------------------------------------- who is on the account

@dataclass(frozen=True)
class Member:
    membership: Membership
    user: User
    last_sign_in: datetime | None

    @property
    def role(self) -> Role:
        return self.membership.role


def members(session: Session, account: Account) -> list[Member]:
    """The account's own members (name order), each with their last successful sign-in
    (read per member through the attempts' (email, at) index, not a scan of every attempt)."""
    last = (select(func.max(SigninAttempt.at))
            .where(SigninAttempt.email == User.email, SigninAttempt.user_id == User.id,
                   SigninAttempt.succeeded.is_(True))
            .correlate(User).scalar_subquery())
    rows = session.execute(
        select(Membership, User, last)
        .join(User, User.id == Membership.user_id)
        .where(Membership.account_id == account.id)
        .order_by(func.lower(User.name), User.email)).all()
    return [Member(m, u, at) for m, u, at in rows]


def through_agency(session: Session, account: Account) -> list[Member]:
    """Who reaches this account through its agency: the agency's owners and admins (for an
    agency, its own owners and admins, who reach every sub-account)."""
    agency_id = account.parent_id if account.is_sub else account.id if account.is_agency \
        else None
    if agency_id is None:
        return []
    agency = session.get(Account, agency_id)
    return [m for m in members(session, agency) if m.role in MANAGERS]


def pending_invitations(session: Session, account: Account) -> list[Invitation]:
    return list(session.scalars(select(Invitation).where(
        Invitation.account_id == account.id, Invitation.status == InvitationStatus.PENDING)
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())))


def assignable_roles(actor_role: Role) -> list[Role]:
    """The roles this person may give, from the role matrix (portal/roles.py): managing
    people gives any role but owner; the owner role needs Can.OWNERS."""
    if not roles.can(actor_role, Can.PEOPLE):
        return []
    return [role for role in (Role.OWNER, Role.ADMIN, Role.BILLING, Role.USER)
            if role != Role.OWNER or roles.can(actor_role, Can.OWNERS)]


def _check_manager(actor_role: Role) -> None:
    if not roles.can(actor_role, Can.PEOPLE):
        raise NotAllowed(roles.REFUSED[Can.PEOPLE])


def _parse_role(raw, actor_role: Role, field: str = "role") -> Role:
    try:
        role = Role(str(raw or ""))
    except ValueError:
        raise ValidationFailed({field: "Choose a role: Owner, Admin, Billing or User."}) from None
    if role not in assignable_roles(actor_role):
        raise ValidationFailed({field: "Only an owner can make someone an owner."})
    return role


# --------------------------------------------------------------- the last-owner rule

LAST_OWNER = ("{account} must keep at least one owner: make someone else an owner first, "
              "then {action}.")


def check_keeps_an_owner(session: Session, account: Account, membership: Membership,
                         new_role: Role | None, action: str) -> None:
    """Refuse to remove (new_role None) or demote the account's last owner. Counted under
    the account's write lock (the caller holds it: begin_write / the row lock), so two
    owners demoting each other at once can't both succeed."""
    if membership.role != Role.OWNER or new_role == Role.OWNER:
        return
    owners = session.scalar(select(func.count()).select_from(Membership).where(
        Membership.account_id == account.id, Membership.role == Role.OWNER))
    if owners <= 1:
        raise NotAllowed(LAST_OWNER.format(account=account.name, action=action))


def _lock(session: Session, account: Account) -> None:
    from portal.transactions import lock_account

    lock_account(session, account.id)


# --------------------------------------------------------------- invite, resend, revoke

def invite(session: Session, settings: LinkSettings, account: Account, actor: User,
           actor_role: Role, email, role, now: datetime | None = None
           ) -> tuple[Invitation, str]:
    """Invite User: a pending invitation (replacing any earlier one to the same email), its
    email queued, and the link's URL."""
    now = now or clock_now()
    _check_manager(actor_role)
    errors = {}
    try:
        email = clean_email(email, "email", "Enter their email address, like name@example.com.")
    except ValidationFailed as e:
        errors.update(e.errors)
    try:
        role = _parse_role(role, actor_role)
    except ValidationFailed as e:
        errors.update(e.errors)
    if errors:
        raise ValidationFailed(errors)
    if account.is_canceled:
        raise NotAllowed(f"{account.name} is canceled: reactivate it to invite people.")
    _lock(session, account)
    already = session.scalar(select(User.email).join(Membership, Membership.user_id == User.id)
                             .where(Membership.account_id == account.id, User.email == email))
    if already is not None:
        raise ValidationFailed({"email": f"{email} is already a user of {account.name}: "
                                         "change their role in the list instead."})
    _throttle(session, account, now)
    invitation = _issue(session, account, email, role, actor.id, now + settings.ttl, now)
    url = url_for_token(settings, sign(settings.keys, invitation.link_id))
    from portal.mail import notices

    notices.invitation(session, account, invitation, actor, url)
    return invitation, url


def _issue(session: Session, account: Account, email: str, role: Role,
           invited_by_id: int | None, expires_at: datetime, now: datetime) -> Invitation:
    """A pending invitation, replacing any earlier pending one to the same email."""
    session.execute(update(Invitation).where(
        Invitation.account_id == account.id, Invitation.email == email,
        Invitation.status == InvitationStatus.PENDING)
        .values(status=InvitationStatus.REPLACED, closed_at=now))
    invitation = Invitation(link_id=signed_links.new_link_id(), account_id=account.id, email=email,
                            role=role, status=InvitationStatus.PENDING,
                            invited_by_id=invited_by_id, created_at=now, expires_at=expires_at)
    session.add(invitation)
    session.flush()
    return invitation


def invite_payer(session: Session, account: Account, email: str, invited_by_id: int | None,
                 now: datetime | None = None) -> Invitation | None:
    """The customer who paid a billing link becomes the sub-account's **billing** user
    (issue 15): the same invitation as Invite User (the same signed one-time link, page and
    accept; 7 days), with no email of its own: the link payment's thank-you page and receipt
    email carry it. Called in the payment's settlement transaction (billing_links.service),
    with the account locked. None when the email already reaches the account (a member, or
    an owner or admin of its agency): they sign in. An email with a user of its own gets the
    "sign in to accept" kind (open_invitation's has_password). Not throttled: one per paid
    billing request."""
    now = now or clock_now()
    email = auth.normalize_email(email)
    if account.is_canceled or reaches(session, account, email):
        return None
    return _issue(session, account, email, Role.BILLING, invited_by_id,
                  now + rules.INVITATION_TTL, now)


def reaches(session: Session, account: Account, email: str) -> bool:
    """This email's user already opens the account: a member, or an owner or admin of its
    agency."""
    email = auth.normalize_email(email)
    member = session.scalar(select(Membership.id).join(User, User.id == Membership.user_id)
                            .where(Membership.account_id == account.id,
                                   func.lower(User.email) == email))
    return member is not None or email in {auth.normalize_email(m.user.email)
                                           for m in through_agency(session, account)}


def payer_invitation(session: Session, account: Account, email: str) -> Invitation | None:
    """The latest billing invitation of this account to this email (invite_payer's), in
    whatever state it is now."""
    return session.scalar(select(Invitation).where(
        Invitation.account_id == account.id, Invitation.email == auth.normalize_email(email),
        Invitation.role == Role.BILLING).order_by(Invitation.id.desc()).limit(1))


def invitation_url(settings: LinkSettings, invitation: Invitation) -> str:
    """The link of an invitation already made (signed afresh: the row decides its expiry)."""
    return url_for_token(settings, sign(settings.keys, invitation.link_id))


def _throttle(session: Session, account: Account, now: datetime) -> None:
    window = (Invitation.account_id == account.id,
              Invitation.created_at > now - timedelta(hours=1))
    sent = session.scalar(select(func.count()).select_from(Invitation).where(*window))
    if sent >= rules.INVITATIONS_PER_HOUR:
        # Free again when the oldest of the last INVITATIONS_PER_HOUR leaves the hour.
        frees = session.scalar(select(Invitation.created_at).where(*window)
                               .order_by(Invitation.created_at.desc())
                               .offset(rules.INVITATIONS_PER_HOUR - 1).limit(1))
        wait = None
        if frees is not None:
            if frees.tzinfo is None:
                frees = frees.replace(tzinfo=now.tzinfo)
            wait = max(1, int((frees + timedelta(hours=1) - now).total_seconds()) + 1)
        raise TooManyAttempts(f"{account.name} sent {rules.INVITATIONS_PER_HOUR} invitations "
                              "in the last hour: wait a while before sending more.",
                              retry_after=wait)


def invitation_of(session: Session, account: Account, invitation_id) -> Invitation:
    found = session.scalar(select(Invitation).where(Invitation.id == to_id(invitation_id),
                                                    Invitation.account_id == account.id))
    if found is None:
        raise NotFound("No such invitation.")
    return found


def resend(session: Session, settings: LinkSettings, account: Account, actor: User,
           actor_role: Role, invitation_id, now: datetime | None = None
           ) -> tuple[Invitation, str]:
    """A new link (7 days again) for the same email and role; the old link stops working."""
    current = invitation_of(session, account, invitation_id)
    if not current.is_pending:
        raise NotAllowed(f"The invitation to {current.email} is no longer pending.")
    if current.role not in assignable_roles(actor_role):
        raise NotAllowed("Only an owner can invite an owner.")
    return invite(session, settings, account, actor, actor_role, current.email,
                  current.role.value, now)


def revoke(session: Session, account: Account, actor_role: Role, invitation_id,
           now: datetime | None = None) -> Invitation:
    now = now or clock_now()
    _check_manager(actor_role)
    invitation = invitation_of(session, account, invitation_id)
    if invitation.role not in assignable_roles(actor_role):
        raise NotAllowed("Only an owner can revoke an invitation to be an owner.")
    begin_write(session)
    done = session.execute(update(Invitation).where(
        Invitation.id == invitation.id, Invitation.status == InvitationStatus.PENDING)
        .values(status=InvitationStatus.REVOKED, closed_at=now)).rowcount
    if done != 1:
        raise NotAllowed(f"The invitation to {invitation.email} is no longer pending.")
    session.refresh(invitation)
    return invitation


def revoke_billing_invitations(session: Session, account: Account, now: datetime) -> int:
    """A sub-account back on agency billing has no billing of its own to manage: its pending
    billing-role invitations (the customer who paid its link, or one an admin sent) are
    revoked in the switch's transaction; a link opened later reads "revoked". Returns how
    many."""
    return session.execute(update(Invitation).where(
        Invitation.account_id == account.id, Invitation.status == InvitationStatus.PENDING,
        Invitation.role == Role.BILLING)
        .values(status=InvitationStatus.REVOKED, closed_at=now)).rowcount


def revoke_for_closed(session: Session, account: Account, now: datetime) -> int:
    """Closing an account (lifecycle.close_out: a close, and each sub-account an agency's
    cancel closes) revokes its pending invitations, in the closing transaction; they stay
    revoked if it is reactivated. Returns how many."""
    return session.execute(update(Invitation).where(
        Invitation.account_id == account.id, Invitation.status == InvitationStatus.PENDING)
        .values(status=InvitationStatus.REVOKED, closed_at=now)).rowcount


# --------------------------------------------------------------- the invited person's side

@dataclass(frozen=True)
class OpenInvitation:
    invitation: Invitation
    account: Account
    inviter: User | None
    user: User | None  # the user with the invited email, if any
    has_password: bool  # ... who can sign in (else: accepting sets their name and password)


def open_invitation(session: Session, settings: LinkSettings, token: str,
                    now: datetime | None = None) -> OpenInvitation:
    """The invitation behind a token if it can still be accepted (never consumes it)."""
    now = now or clock_now()
    link_id = verify(settings.keys, token, settings.ttl + timedelta(days=1))
    invitation = session.scalar(select(Invitation).where(Invitation.link_id == link_id))
    if invitation is None:
        raise InvitationTampered()
    account = session.get(Account, invitation.account_id)
    _check_usable(invitation, now, account)
    user = session.scalar(select(User).where(User.email == invitation.email))
    inviter = session.get(User, invitation.invited_by_id) if invitation.invited_by_id else None
    return OpenInvitation(invitation, account, inviter, user,
                          user is not None and auth.has_password(user))


def _check_usable(invitation: Invitation, now: datetime, account: Account) -> None:
    """Used; else the account closed (its close revoked the invitation); else revoked or
    replaced; else expired."""
    if invitation.status == InvitationStatus.ACCEPTED:
        raise InvitationUsed()
    if account.is_canceled:
        raise InvitationAccountClosed(account)
    if invitation.status != InvitationStatus.PENDING:
        raise InvitationRevoked()
    if now >= invitation.expires_at:
        raise InvitationExpired()


def _fresh(session: Session, model, row_id):
    """The row as the database has it now (not the session's copy)."""
    return session.scalars(select(model).where(model.id == row_id)
                           .execution_options(populate_existing=True)).one()


def _consume(session: Session, invitation: Invitation, now: datetime) -> None:
    """pending → accepted, exactly once (the first write of the accepting transaction);
    else the reason it can't be, re-read."""
    begin_write(session)
    done = session.execute(update(Invitation).where(
        Invitation.id == invitation.id, Invitation.status == InvitationStatus.PENDING,
        Invitation.expires_at > now)
        .values(status=InvitationStatus.ACCEPTED, closed_at=now)).rowcount
    if done != 1:
        fresh = _fresh(session, Invitation, invitation.id)
        _check_usable(fresh, now, _fresh(session, Account, fresh.account_id))
        raise InvitationUsed()  # (unreachable: the update would have matched)


def _accepted_by(session: Session, invitation: Invitation, user: User) -> None:
    session.execute(update(Invitation).where(Invitation.id == invitation.id)
                    .values(accepted_by_id=user.id))


def _join(session: Session, opened: OpenInvitation, user: User, now: datetime) -> Membership:
    invitation, account = opened.invitation, opened.account
    existing = session.scalar(select(Membership).where(Membership.user_id == user.id,
                                                       Membership.account_id == account.id))
    if existing is not None:
        raise NotAllowed(f"You are already a user of {account.name}.")
    membership = Membership(user_id=user.id, account_id=account.id, role=invitation.role,
                            created_at=now)
    session.add(membership)
    session.flush()
    return membership


def accept_new(session: Session, settings: LinkSettings, token: str, name, password: str,
               again: str, now: datetime | None = None) -> tuple[User, Membership]:
    """The invited email has no user (or one made without a password, by a transfer): it is
    made (or given its name and password) and joins the account. Commit follows."""
    now = now or clock_now()
    opened = open_invitation(session, settings, token, now)
    if opened.has_password:
        # A user with a password for this email may be the one a racing accept of this very
        # link just made: then the link is used, and that is the answer.
        _check_usable(_fresh(session, Invitation, opened.invitation.id), now,
                      _fresh(session, Account, opened.invitation.account_id))
        raise SignInFirst(f"{opened.invitation.email} already has a user here: sign in to "
                          "accept.")
    errors = {}
    try:
        name = clean_text(name, "name", "Your name", 120, required="Enter your name.")
    except ValidationFailed as e:
        errors.update(e.errors)
    errors.update(passwords.check_new(password, again, opened.invitation.email))
    if errors:
        raise ValidationFailed(errors)
    _consume(session, opened.invitation, now)
    user = opened.user
    if user is None:
        user = User(email=opened.invitation.email, name=name, created_at=now,
                    password_hash=auth.hash_password(password))
        session.add(user)
    else:  # made without a password (a transfer's new owner): the invitation proves the email
        user.name = name
        user.password_hash = auth.hash_password(password)
        user.session_version = (user.session_version or 1) + 1
    session.flush()
    _accepted_by(session, opened.invitation, user)
    return user, _join(session, opened, user, now)


def accept_existing(session: Session, settings: LinkSettings, token: str, user: User,
                    now: datetime | None = None) -> Membership:
    """A signed-in user accepts: only as the invited email."""
    now = now or clock_now()
    opened = open_invitation(session, settings, token, now)
    if auth.normalize_email(user.email) != opened.invitation.email:
        raise WrongUser(f"This invitation is for {opened.invitation.email}, and you are "
                        f"signed in as {user.email}. Sign out, then open the link again and "
                        f"sign in as {opened.invitation.email}.")
    _consume(session, opened.invitation, now)
    _accepted_by(session, opened.invitation, user)
    return _join(session, opened, user, now)


# --------------------------------------------------------------- change role, remove

def membership_of(session: Session, account: Account, membership_id) -> tuple[Membership, User]:
    row = session.execute(select(Membership, User).join(User, User.id == Membership.user_id)
                          .where(Membership.id == to_id(membership_id),
                                 Membership.account_id == account.id)).first()
    if row is None:
        raise NotFound("No such user on this account.")
    return row[0], row[1]


def change_role(session: Session, account: Account, actor: User, actor_role: Role,
                membership_id, role) -> tuple[Membership, User]:
    _check_manager(actor_role)
    new_role = _parse_role(role, actor_role)
    _lock(session, account)
    membership, user = membership_of(session, account, membership_id)
    session.refresh(membership)
    if membership.role == Role.OWNER and not roles.can(actor_role, Can.OWNERS):
        raise NotAllowed(roles.REFUSED[Can.OWNERS])
    # Nobody raises their own role: not above the role they act with, nor above this
    # membership's own (an agency admin's user membership on a sub-account stays user).
    if user.id == actor.id and _RANK[new_role] > min(_RANK[actor_role],
                                                     _RANK[membership.role]):
        raise NotAllowed("You can't raise your own role: ask an owner.")
    if new_role == membership.role:
        return membership, user
    check_keeps_an_owner(session, account, membership, new_role,
                         f"change {user.name}'s role")
    membership.role = new_role
    session.flush()
    return membership, user


def remove(session: Session, account: Account, actor: User, actor_role: Role,
           membership_id) -> User:
    """The membership goes (the person can't open the account from their next request on:
    every request reads the memberships), with their billing-email choice on it; their
    user stays (other accounts, history)."""
    _check_manager(actor_role)
    _lock(session, account)
    membership, user = membership_of(session, account, membership_id)
    session.refresh(membership)
    if membership.role == Role.OWNER and not roles.can(actor_role, Can.OWNERS):
        raise NotAllowed(roles.REFUSED[Can.OWNERS])
    check_keeps_an_owner(session, account, membership, None, f"remove {user.name}")
    session.execute(delete(BillingEmailRecipient).where(
        BillingEmailRecipient.account_id == account.id, BillingEmailRecipient.user_id == user.id))
    session.delete(membership)
    session.flush()
    return user
