"""Issue 18: API keys. Made on the Developers page by an account's owner or admin, shown
once, kept as a SHA-256 of the secret; found by their prefix and checked in constant time;
revoked for good. A key acts with its scopes and its role (owner or admin, at most its
maker's role) on its account and, for an agency's key, on the agency's sub-accounts.

Making and revoking a key are in Change History (the ApiKey model is versioned: name,
scopes, role, revoked) and emailed to the account's owners (an agency's owners for a
sub-account without owners of its own), queued in the same transaction."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.clock import now as clock_now
from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.models import SCOPE_LABELS, SCOPES, Account, ApiKey, Membership, Role, User
from portal.services import inputs, lifecycle

TOKEN_PREFIX = "apk_"
# last_used_at is written at most this often per key: not a write on every request.
LAST_USED_EVERY = timedelta(minutes=1)
MAX_NAME = 80


@dataclass(frozen=True)
class Made:
    key: ApiKey
    token: str  # shown once, never stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(raw) -> str:
    """Scopes from a form's checkboxes or an API list: at least one of SCOPES."""
    values = [raw] if isinstance(raw, str) else list(raw or [])
    chosen = [scope for scope in SCOPES if scope in values]
    unknown = [value for value in values if value not in SCOPES]
    if unknown:
        raise ValidationFailed({"scopes": f"Unknown scope: {', '.join(map(str, unknown))}. "
                                          f"Known: {', '.join(SCOPES)}."})
    if not chosen:
        raise ValidationFailed({"scopes": "Choose at least one scope."})
    return " ".join(chosen)


def create(session: Session, account: Account, maker: User, maker_role: Role, name,
           scopes, role: Role | None = None, *, token: str | None = None,
           notify: bool = True) -> Made:
    """A new key for `account`; `maker_role` is the maker's role on it (owner or admin).
    `token` and notify=False are for the demo's known key only (seed-demo: a fixed token,
    no email); otherwise a random token, emailed to the owners."""
    if maker_role not in (Role.OWNER, Role.ADMIN):
        raise NotAllowed("Only the account's owners and admins can create API keys.")
    if account.is_canceled:
        raise NotAllowed(f"{account.name} is canceled: it takes no new API keys.")
    errors = {}
    try:
        live = {key.name for key in for_account(session, account) if key.revoked_at is None}
        name = inputs.clean_name(name if isinstance(name, str) else "", "name", "key",
                                 MAX_NAME, taken=live, missing="Give the key a name, such "
                                 "as the system that will use it.")
    except ValidationFailed as e:
        errors.update(e.errors)
    try:
        scope_text = parse_scopes(scopes)
    except ValidationFailed as e:
        errors.update(e.errors)
        scope_text = ""
    role = role or maker_role
    if role not in (Role.OWNER, Role.ADMIN):
        errors["role"] = "A key acts as an owner or an admin."
    elif role == Role.OWNER and maker_role != Role.OWNER:
        errors["role"] = "Only an owner can create a key that acts as an owner."
    if errors:
        raise ValidationFailed(errors)
    if token is not None:
        prefix, _, secret = token.removeprefix(TOKEN_PREFIX).partition("_")
    else:
        prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    key = ApiKey(account_id=account.id, name=name, prefix=prefix, secret_hash=_hash(secret),
                 scopes=scope_text, role=role, created_by_id=maker.id)
    session.add(key)
    session.flush()
    if notify:
        tell_owners(session, account, key, maker, made=True)
    return Made(key, f"{TOKEN_PREFIX}{prefix}_{secret}")


def authenticate(session: Session, token: str, now: datetime | None = None) -> ApiKey | None:
    """The live key this token is, or None (malformed, unknown, wrong secret, revoked).
    Notes when it was last used (at most once a minute, in the caller's transaction)."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
        return None
    prefix, _, secret = token[len(TOKEN_PREFIX):].partition("_")
    if not prefix or not secret or len(prefix) > 16 or len(secret) > 100:
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(secret)):
        return None
    now = now or clock_now()
    if key.revoked_at is not None or lifecycle.is_closed_for_good(key.account, now):
        return None
    # A key acts at most with its maker's role on its account now: a maker removed from the
    # account (or made a billing or plain user) takes the key's power with them; an owner
    # made admin leaves an owner key acting as an admin.
    # (Reached as the pages reach it: a membership on the account, or an owner or admin
    # membership on its agency.)
    held = set(session.scalars(select(Membership.role).where(
        Membership.user_id == key.created_by_id,
        Membership.account_id.in_([key.account_id, key.account.parent_id or 0])))) \
        if key.created_by_id is not None else set()
    maker_role = Role.OWNER if Role.OWNER in held else Role.ADMIN if Role.ADMIN in held \
        else None
    if maker_role is None:
        return None
    key.acting_role = Role.ADMIN if maker_role == Role.ADMIN else key.role
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY:
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        key.last_used_at = now
    return key


def for_account(session: Session, account: Account) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).where(ApiKey.account_id == account.id)
                                .order_by(ApiKey.revoked_at.is_not(None), ApiKey.id.desc())))


def revoke(session: Session, account: Account, key_id: int, by: User) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id,
                                              ApiKey.account_id == account.id))
    if key is None:
        raise NotFound("No such API key.")
    if key.revoked_at is None:
        key.revoked_at = clock_now()
        key.revoked_by_id = by.id
        session.flush()
        tell_owners(session, account, key, by, made=False)
    return key


def key_of(session: Session, account: Account, key_id: int) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id,
                                              ApiKey.account_id == account.id))
    if key is None:
        raise NotFound("No such API key.")
    return key


def owners(session: Session, account: Account) -> list[User]:
    """Who is told of a key made or revoked: the account's owners; for a sub-account with
    none of its own, its agency's."""
    for holder in (account.id, account.parent_id):
        if holder is None:
            continue
        found = list(session.scalars(
            select(User).join(Membership, Membership.user_id == User.id)
            .where(Membership.account_id == holder, Membership.role == Role.OWNER)
            .order_by(User.email)))
        if found:
            return found
    return []


def tell_owners(session: Session, account: Account, key: ApiKey, by: User | None,
                made: bool) -> int:
    """"A new API key … was created by …" / "… was revoked by …", to each owner once."""
    from portal.mail import compose

    action = "created" if made else "revoked"
    people = owners(session, account)
    for owner in people:
        compose.queue(
            session, to=owner.email, kind="api_key",
            subject=f"An API key was {action} on {account.name}",
            template="mail/api_key",
            context={"account": account, "key": key, "by": by, "made": made,
                     "recipient": owner, "scopes": SCOPE_LABELS,
                     "url": compose.external_url("developers.index", account_id=account.id)},
            account_id=account.id, dedupe_key=f"api-key:{key.id}:{action}:{owner.id}")
    return len(people)


# The demo's known key (seed-demo: Northwind Agency, made by its owner agency@demo.test), so
# the README's curl examples work against `make run`. Never in a real deployment: seed-demo
# refuses a database that has data.
DEMO_TOKEN = "apk_demo_portal-demo-key-not-for-production"
DEMO_OWNER = "agency@demo.test"


def seed_demo_key(session: Session) -> Made | None:
    owner = session.scalar(select(User).where(User.email == DEMO_OWNER))
    membership = owner and session.scalar(select(Membership).where(
        Membership.user_id == owner.id, Membership.role == Role.OWNER))
    if membership is None:
        return None
    account = session.get(Account, membership.account_id)
    return create(session, account, owner, Role.OWNER, "Demo key (README examples)",
                  list(SCOPES), Role.OWNER, token=DEMO_TOKEN, notify=False)
