"""Issue 18: API keys. Made on the Developers page by an account's owner or admin, shown
once, kept as a SHA-256 of the secret; found by their prefix and checked in constant time;
revoked for good. A key acts with its scopes and its role (owner or admin, at most its
maker's role) on its account and, for an agency's key, on the agency's sub-accounts."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.clock import now as clock_now
from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.models import SCOPES, Account, ApiKey, Role, User
from portal.services import lifecycle

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
           scopes, role: Role | None = None) -> Made:
    """A new key for `account`; `maker_role` is the maker's role on it (owner or admin)."""
    if maker_role not in (Role.OWNER, Role.ADMIN):
        raise NotAllowed("Only the account's owners and admins can create API keys.")
    if account.is_canceled:
        raise NotAllowed(f"{account.name} is canceled: it takes no new API keys.")
    errors = {}
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        errors["name"] = "Give the key a name, such as the system that will use it."
    elif len(name) > MAX_NAME:
        errors["name"] = f"At most {MAX_NAME} characters."
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
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(account_id=account.id, name=name, prefix=prefix, secret_hash=_hash(secret),
                 scopes=scope_text, role=role, created_by_id=maker.id)
    session.add(key)
    session.flush()
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
    return key
