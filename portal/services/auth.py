"""Passwords and sign-in, throttled per email and per client address."""

import hashlib
import math
import secrets
from datetime import datetime

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from portal import rules
from portal.clock import now as clock_now
from portal.config import PASSWORD_HASH_STRONG
from portal.errors import NotFound, TooManyAttempts, ValidationFailed
from portal.models import SigninAttempt, User
from portal.services import passwords
from portal.services.inputs import clean_email, clean_text, to_id, to_int

INCORRECT = "Incorrect email or password."
RESET_STEP = "reset"  # a SigninAttempt that asked for a reset link (not a failed sign-in)
EMAIL_STEP = "email_change"  # one that sent a change-email link (not a failed sign-in)
NOT_FAILURES = (RESET_STEP, EMAIL_STEP)

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
            column == value, SigninAttempt.succeeded.is_(False), SigninAttempt.at > since,
            SigninAttempt.step.notin_(NOT_FAILURES),  # asking for a link is not a failure
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
    errors.update(passwords.check_new(password, again, user.email))
    if errors:
        raise ValidationFailed(errors)
    user.name = name
    user.password_hash = hash_password(password)
    user.session_version = (user.session_version or 1) + 1



# --- links signed against the portal's clock ---------------------------------------------

class _ClockSigner(TimestampSigner):
    """Dates and ages signatures by portal.clock (tests move it to expire a link)."""

    def get_timestamp(self) -> int:
        return int(clock_now().timestamp())


def _clock_serializer(secret_key: str, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=salt, signer=_ClockSigner)


def _digest(*parts) -> str:
    return hashlib.sha256("|".join(str(part) for part in parts).encode()).hexdigest()[:24]


def _load(secret_key: str, salt: str, token: str, max_age) -> dict | None:
    try:
        data = _clock_serializer(secret_key, salt).loads(
            token, max_age=int(max_age.total_seconds()))
    except BadSignature:  # (SignatureExpired is one)
        return None
    return data if isinstance(data, dict) else None


# --- "Forgot password?" -------------------------------------------------------------------
# Django's pattern: the link is signed over the user, the time, and a fingerprint of what
# using it changes — the password hash, the last sign-in and the latest reset asked — so it
# stops working once the password changes (it was used, or changed another way), after a
# newer sign-in, or when a newer link is sent; and after rules.PASSWORD_RESET_TTL. Nothing is
# stored but the ask itself (a SigninAttempt of step "reset", for the throttle).

RESET_SALT = "password-reset.v1"
RESET_SENT = ("If {email} belongs to a user here, we've sent it a link to choose a new "
              "password. The link works for one hour, once. Check your spam folder if it "
              "doesn't arrive in a few minutes.")
RESET_PROBLEM = ("This password reset link doesn't work any more: it was used, it expired "
                 "(links work for one hour), a newer one was sent, or it is incomplete. "
                 "Ask for a new one.")
RESET_TOO_MANY = "Too many password reset requests. Try again in {minutes} {unit}."


def _last_signin_id(session: Session, user: User) -> int:
    return session.scalar(select(func.max(SigninAttempt.id)).where(
        SigninAttempt.user_id == user.id, SigninAttempt.succeeded.is_(True))) or 0


def _last_reset_id(session: Session, email: str) -> int:
    return session.scalar(select(func.max(SigninAttempt.id)).where(
        SigninAttempt.email == email, SigninAttempt.step == RESET_STEP)) or 0


def _reset_fingerprint(session: Session, user: User) -> str:
    return _digest(user.password_hash, _last_signin_id(session, user),
                   _last_reset_id(session, user.email))


def reset_token(session: Session, secret_key: str, user: User) -> str:
    return _clock_serializer(secret_key, RESET_SALT).dumps(
        {"u": user.id, "h": _reset_fingerprint(session, user)})


def _reset_throttle(session: Session, email: str, address: str, now: datetime) -> None:
    since = now - rules.PASSWORD_RESET_WINDOW
    for column, value, limit in (
        (SigninAttempt.email, email, rules.PASSWORD_RESET_MAX_PER_EMAIL),
        (SigninAttempt.address, address, rules.PASSWORD_RESET_MAX_PER_ADDRESS),
    ):
        count, oldest = session.execute(
            select(func.count(), func.min(SigninAttempt.at)).where(
                column == value, SigninAttempt.step == RESET_STEP, SigninAttempt.at > since)
        ).one()
        if count >= limit:
            minutes = max(1, math.ceil(
                (oldest + rules.PASSWORD_RESET_WINDOW - now).total_seconds() / 60))
            raise TooManyAttempts(RESET_TOO_MANY.format(
                minutes=minutes, unit="minute" if minutes == 1 else "minutes"))


def request_reset(session: Session, secret_key: str, email: str, address: str,
                  now: datetime | None = None, user_agent: str = "") -> str:
    """Email a reset link to the user with this email, if there is one. The answer (the
    normalized email, for "we've sent...") is the same whether or not there is: the same
    work, the same throttle, the same message. Raises ValidationFailed for an address that
    can't be one, TooManyAttempts past the throttle (per email and per client address)."""
    now = now or clock_now()
    email = clean_email(email, "email", "Enter the email address you sign in with.")
    _reset_throttle(session, email, address, now)
    session.add(SigninAttempt(email=email, address=address, succeeded=False, step=RESET_STEP,
                              at=now, user_agent=(user_agent or "")[:200]))
    session.flush()  # the ask is part of the fingerprint: a newer link retires this one
    user = session.scalar(select(User).where(User.email == email))
    if user is not None:
        from portal.mail import compose

        link = compose.external_url("auth.reset_password",
                                    token=reset_token(session, secret_key, user))
        compose.queue(session, to=user.email, kind="password_reset",
                      subject="Reset your password", template="mail/password_reset",
                      context={"user": user, "link": link,
                               "minutes": int(rules.PASSWORD_RESET_TTL.total_seconds() // 60)})
    return email


def user_for_reset(session: Session, secret_key: str, token: str) -> User:
    """The user a reset link is for while it still works; else NotFound(RESET_PROBLEM)."""
    data = _load(secret_key, RESET_SALT, token, rules.PASSWORD_RESET_TTL)
    user_id = to_id(data.get("u")) if data else None
    user = session.get(User, user_id) if user_id is not None else None
    if user is None or data.get("h") != _reset_fingerprint(session, user):
        raise NotFound(RESET_PROBLEM)
    return user


def reset_password(session: Session, user: User, password: str, again: str) -> None:
    """The new password from a reset link: every session of the user ends (this browser
    signs in afresh), and the user is told by email. The link works once even against a
    second request racing with it: the password is replaced only where it is still the one
    the link was opened with (one conditional UPDATE); else NotFound(RESET_PROBLEM)."""
    from portal.mail import compose

    passwords.require_new(password, again, user.email)
    done = session.execute(
        update(User).where(User.id == user.id, User.password_hash == user.password_hash)
        .values(password_hash=hash_password(password),
                session_version=User.session_version + 1)
        .execution_options(synchronize_session=False))
    if done.rowcount != 1:
        raise NotFound(RESET_PROBLEM)
    session.refresh(user)
    compose.queue(session, to=user.email, kind="password_changed",
                  subject="Your password was reset", template="mail/password_reset_done",
                  context={"user": user, "when": clock_now(),
                           "reset": compose.external_url("auth.forgot_password")})


def _new_password(session: Session, user: User, password: str, template: str,
                  subject: str) -> None:
    from portal.mail import compose
    from portal.services import security

    user.password_hash = hash_password(password)
    security.end_all_sessions(user)
    compose.queue(session, to=user.email, kind="password_changed", subject=subject,
                  template=template,
                  context={"user": user, "when": clock_now(),
                           "reset": compose.external_url("auth.forgot_password")})


# --- the user's own page: change password, change email -----------------------------------

def change_password(session: Session, user: User, current: str, password: str, again: str,
                    address: str, now: datetime | None = None, user_agent: str = "") -> None:
    """A new password for the signed-in user, for the current one (throttled with sign-in; a
    wrong one is recorded). Every session ends: the caller signs the current one in again.
    The user is told by email."""
    try:
        confirm_password(session, user, current, address, now, user_agent)
    except ValidationFailed as e:
        raise ValidationFailed({"current": e.errors.get("password", INCORRECT)}) from None
    errors = passwords.check_new(password, again, user.email)
    if not errors and check_password_hash(user.password_hash, password):
        errors = {"password": "That is your current password. Choose a new one."}
    if errors:
        raise ValidationFailed(errors)
    _new_password(session, user, password, "mail/password_changed",
                  "Your password was changed")


EMAIL_SALT = "email-change.v1"
EMAIL_PROBLEM = ("This link doesn't work any more: it was used, it expired (links work for "
                 "24 hours), your email changed since, or it is incomplete. Ask for a new one "
                 "from your security page.")


def _email_fingerprint(user: User) -> str:
    return _digest(user.email, user.password_hash)


def request_email_change(session: Session, secret_key: str, user: User, new_email: str,
                         password: str, address: str, now: datetime | None = None,
                         user_agent: str = "") -> str:
    """Send a confirmation link to `new_email`; nothing changes until it is followed. The
    password first (throttled with sign-in). Returns the new address."""
    errors = {}
    try:
        new_email = clean_email(new_email, "email", "Enter the new email address, like "
                                "name@example.com.")
    except ValidationFailed as e:
        errors.update(e.errors)
    else:
        if new_email == user.email:
            errors["email"] = "That is already your email address."
        elif len(new_email) > User.email.type.length:
            errors["email"] = "That email address is too long."
    try:
        confirm_password(session, user, password, address, now, user_agent)
    except ValidationFailed as e:
        errors.update(e.errors)
    if errors:
        raise ValidationFailed(errors)
    _email_change_throttle(session, user, address, now or clock_now(), user_agent)
    if session.scalar(select(User.id).where(User.email == new_email)) is not None:
        raise ValidationFailed({"email": "Another user signs in with that email address."})
    from portal.mail import compose

    token = _clock_serializer(secret_key, EMAIL_SALT).dumps(
        {"u": user.id, "e": new_email, "h": _email_fingerprint(user)})
    compose.queue(session, to=new_email, kind="email_change",
                  subject="Confirm your new sign-in email", template="mail/email_confirm",
                  context={"user": user, "new_email": new_email,
                           "link": compose.external_url("security.confirm_email",
                                                        token=token),
                           "hours": int(rules.EMAIL_CHANGE_TTL.total_seconds() // 3600)})
    return new_email


def _email_change_throttle(session: Session, user: User, address: str, now: datetime,
                           user_agent: str) -> None:
    """At most rules.EMAIL_CHANGE_MAX_PER_USER links (or asks for a taken address) a user
    in rules.EMAIL_CHANGE_WINDOW; each ask is recorded (a SigninAttempt of step
    "email_change", no failed sign-in) before the address is looked up, so asking whether
    other emails have users counts too."""
    since = now - rules.EMAIL_CHANGE_WINDOW
    count, oldest = session.execute(
        select(func.count(), func.min(SigninAttempt.at)).where(
            SigninAttempt.user_id == user.id, SigninAttempt.step == EMAIL_STEP,
            SigninAttempt.at > since)).one()
    if count >= rules.EMAIL_CHANGE_MAX_PER_USER:
        minutes = max(1, math.ceil(
            (oldest + rules.EMAIL_CHANGE_WINDOW - now).total_seconds() / 60))
        raise ValidationFailed({"email": (
            f"You asked for {rules.EMAIL_CHANGE_MAX_PER_USER} email changes in the last "
            f"hour. Try again in {minutes} minute{'' if minutes == 1 else 's'}.")})
    session.add(SigninAttempt(email=user.email, address=address, succeeded=False,
                              step=EMAIL_STEP, user_id=user.id, at=now,
                              user_agent=(user_agent or "")[:200]))
    session.flush()


def email_change_for(session: Session, secret_key: str, token: str) -> tuple[User, str]:
    """The user and new email of a confirmation link that still works; else
    NotFound(EMAIL_PROBLEM)."""
    data = _load(secret_key, EMAIL_SALT, token, rules.EMAIL_CHANGE_TTL)
    user_id = to_id(data.get("u")) if data else None
    user = session.get(User, user_id) if user_id is not None else None
    new_email = data.get("e") if data else None
    if (user is None or not isinstance(new_email, str)
            or data.get("h") != _email_fingerprint(user)):
        raise NotFound(EMAIL_PROBLEM)
    return user, new_email


def confirm_email_change(session: Session, user: User, new_email: str) -> str:
    """Make `new_email` the user's sign-in email and tell the old address. Returns the old
    one. Refused (ValidationFailed) when another user took the address meanwhile."""
    from portal.mail import compose

    taken = ValidationFailed({"": "Another user signs in with that email address now. Ask "
                                  "for a link to a different address."})
    if session.scalar(select(User.id).where(User.email == new_email)) is not None:
        raise taken
    old = user.email
    try:
        with session.begin_nested():
            user.email = new_email
            session.flush()
    except IntegrityError:  # taken at the same moment by another request
        raise taken from None
    compose.queue(session, to=old, kind="email_changed",
                  subject="Your sign-in email was changed", template="mail/email_changed",
                  context={"user": user, "old_email": old, "new_email": new_email,
                           "reset": compose.external_url("auth.forgot_password")})
    return old
