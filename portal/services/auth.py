"""Passwords and sign-in, throttled per email and per client address."""

import hashlib
import math
import secrets
from datetime import datetime

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from portal import rules
from portal.clock import now as clock_now
from portal.config import PASSWORD_HASH_STRONG
from portal.errors import NotFound, TooManyAttempts, ValidationFailed
from portal.models import SigninAttempt, User
from portal.services.inputs import clean_text, to_id, to_int

INCORRECT = "Incorrect email or password."

# The scrypt cost of new passwords: create_app hands over the app's PASSWORD_HASH_METHOD
# (cheap under TESTING); until then, the strong one. Checking reads the cost from the hash.
_hash_method = PASSWORD_HASH_STRONG
# Hashes to check against when the email is unknown, so both paths cost the same: one per
# hashing method (made on first use, at the cost new passwords get).
_DUMMY_HASHES: dict[str, str] = {}


def use_hash_method(method: str) -> None:
    """Hash new passwords with `method` (Werkzeug's "scrypt:N:r:p"; create_app calls this)."""
    global _hash_method
    _hash_method = method


def _dummy_hash() -> str:
    if _hash_method not in _DUMMY_HASHES:
        _DUMMY_HASHES[_hash_method] = generate_password_hash("not-a-password",
                                                             method=_hash_method)
    return _DUMMY_HASHES[_hash_method]


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=_hash_method)


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def _failures_since(session: Session, column, value: str, since: datetime):
    return session.execute(
        select(func.count(), func.min(SigninAttempt.at)).where(
            column == value, SigninAttempt.succeeded.is_(False), SigninAttempt.at > since
        )
    ).one()


def check_throttle(session: Session, email: str, address: str, now: datetime) -> None:
    since = now - rules.SIGNIN_WINDOW
    for column, value, limit in (
        (SigninAttempt.email, email, rules.SIGNIN_MAX_FAILURES_PER_EMAIL),
        (SigninAttempt.address, address, rules.SIGNIN_MAX_FAILURES_PER_ADDRESS),
    ):
        count, oldest = _failures_since(session, column, value, since)
        if count >= limit:
            wait = (oldest + rules.SIGNIN_WINDOW - now).total_seconds()
            minutes = max(1, math.ceil(wait / 60))
            unit = "minute" if minutes == 1 else "minutes"
            raise TooManyAttempts(
                f"Too many sign-in attempts. Try again in {minutes} {unit}."
            )


def _record(session: Session, email: str, address: str, now: datetime, user_agent: str,
            step: str, user: User | None = None) -> None:
    """One sign-in try (a step of one): succeeded when it names the user."""
    session.add(SigninAttempt(email=email, address=address, succeeded=user is not None,
                              user_id=user.id if user else None, step=step, at=now,
                              user_agent=(user_agent or "")[:200]))


def sign_in(session: Session, email: str, password: str, address: str,
            now: datetime | None = None, user_agent: str = "") -> User:
    """Return the user for these credentials or raise; every try is recorded."""
    now = now or clock_now()
    email = normalize_email(email)
    errors = {}
    if not email:
        errors["email"] = "Enter your email address."
    if not password:
        errors["password"] = "Enter your password."
    if errors:
        raise ValidationFailed(errors)
    if len(email) > User.email.type.length or "\x00" in email:
        # No account has such an email, and the database can't hold it (PostgreSQL refuses
        # NUL in a string): not worth recording, it can never sign in.
        raise ValidationFailed({"": INCORRECT})
    check_throttle(session, email, address, now)
    user = session.scalar(select(User).where(User.email == email))
    usable = user is not None and has_password(user)
    ok = check_password_hash(user.password_hash if usable else _dummy_hash(), password)
    ok = ok and usable
    _record(session, email, address, now, user_agent, "password", user if ok else None)
    if not ok:
        raise ValidationFailed({"": INCORRECT})
    return user


def second_step(session: Session, user: User, code: str, address: str,
                now: datetime | None = None, user_agent: str = "") -> str:
    """The code after a good password, throttled with the password failures (per email and
    per address); every try is recorded. Returns "totp" or "recovery"."""
    from portal.services import security

    now = now or clock_now()
    check_throttle(session, user.email, address, now)
    try:
        step = security.verify(session, user, code, now)
    except ValidationFailed:
        _record(session, user.email, address, now, user_agent, "code")
        raise
    _record(session, user.email, address, now, user_agent, step, user)
    return step


def confirm_password(session: Session, user: User, password: str, address: str,
                     now: datetime | None = None, user_agent: str = "") -> None:
    """The password again before a sensitive change: throttled with sign-in, and a wrong
    one is recorded as a failed attempt (step "reauth")."""
    from portal.services import security

    now = now or clock_now()
    check_throttle(session, user.email, address, now)
    try:
        security.check_password(user, password)
    except ValidationFailed:
        _record(session, user.email, address, now, user_agent, "reauth")
        raise


def load_user(session: Session, user_id: str) -> User | None:
    """Flask-Login's loader: the id carries the session version, so bumping it signs out."""
    raw_id, _, raw_version = str(user_id).partition(":")
    uid, version = to_id(raw_id), to_int(raw_version)
    if uid is None or version is None:  # not an id a session of ours holds
        return None
    user = session.get(User, uid)
    if user is None or user.session_version != version:
        return None
    return user


# --- a new owner without a password -------------------------------------------------------
# Naming an email that has no user (the new owner of a transferred sub-account) makes one,
# without a password: it can't sign in until its owner sets one from an emailed link. So the
# person who named the email gets the same answer whether or not it had a user.

NO_PASSWORD = "!"  # starts a password hash that no password matches
PASSWORD_LINK_SALT = "set-password.v1"


def has_password(user: User) -> bool:
    return not (user.password_hash or NO_PASSWORD).startswith(NO_PASSWORD)


def user_for_email(session: Session, email: str) -> User:
    """The user with this (normalized, checked) email, made without a password if none."""
    user = session.scalar(select(User).where(User.email == email))
    if user is not None:
        return user
    made = User(email=email, name=email.split("@", 1)[0][:120],
                password_hash=NO_PASSWORD + secrets.token_hex(16))
    try:
        with session.begin_nested():
            session.add(made)
            session.flush()
    except IntegrityError:  # made at the same moment by another request
        return session.scalars(select(User).where(User.email == email)).one()
    return made


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=PASSWORD_LINK_SALT)


def _fingerprint(user: User) -> str:
    # Changes when the password does: the link works once.
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def password_link_token(secret_key: str, user: User) -> str:
    return _serializer(secret_key).dumps({"u": user.id, "h": _fingerprint(user)})


LINK_PROBLEM = ("This link doesn't work any more: it was used, it expired, or it is incomplete. "
                "Ask whoever sent it for a new one, or sign in if you set your password.")


def user_for_password_link(session: Session, secret_key: str, token: str,
                           max_age=None) -> User:
    """The user a set-password link is for, while it is unused and not expired; else
    NotFound(LINK_PROBLEM)."""
    max_age = rules.PASSWORD_LINK_TTL if max_age is None else max_age
    try:
        data = _serializer(secret_key).loads(token, max_age=int(max_age.total_seconds()))
    except BadSignature:  # (SignatureExpired is one)
        raise NotFound(LINK_PROBLEM) from None
    user_id = to_id(data.get("u")) if isinstance(data, dict) else None
    user = session.get(User, user_id) if user_id is not None else None
    if user is None or has_password(user) or data.get("h") != _fingerprint(user):
        raise NotFound(LINK_PROBLEM)
    return user


def set_password(session: Session, user: User, password: str, again: str, name: str) -> None:
    """The first password of a user made without one (and their name)."""
    errors = {}
    try:
        name = clean_text(name, "name", "Your name", 120, required="Enter your name.")
    except ValidationFailed as e:
        errors.update(e.errors)
    if len(password or "") < rules.MIN_PASSWORD_LENGTH:
        errors["password"] = (f"Choose a password of at least {rules.MIN_PASSWORD_LENGTH} "
                              "characters.")
    elif len(password) > 200:
        errors["password"] = "The password is at most 200 characters."
    elif password != again:
        errors["again"] = "The two passwords are not the same."
    if errors:
        raise ValidationFailed(errors)
    user.name = name
    user.password_hash = hash_password(password)
    user.session_version = (user.session_version or 1) + 1

