"""Passwords and sign-in, throttled per email and per client address."""

import math
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from portal import rules
from portal.clock import now as clock_now
from portal.errors import TooManyAttempts, ValidationFailed
from portal.models import SigninAttempt, User

INCORRECT = "Incorrect email or password."

# A hash to check against when the email is unknown, so both paths cost the same.
_DUMMY_HASH = generate_password_hash("not-a-password", method="scrypt")


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


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
    ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    ok = ok and user is not None
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
    try:
        raw_id, raw_version = user_id.split(":", 1)
        uid, version = int(raw_id), int(raw_version)
    except (ValueError, AttributeError):
        return None
    if not 0 < uid < 2**31:  # not an id a session of ours holds (and past INTEGER)
        return None
    user = session.get(User, uid)
    if user is None or user.session_version != version:
        return None
    return user
