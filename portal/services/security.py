"""Account security: two-factor sign-in by authenticator app (TOTP, RFC 6238) with one-time
recovery codes, the account setting that requires it, signing out other sessions, and the
list of recent sign-ins."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from portal import rules, sealing
from portal.clock import now as clock_now
from portal.errors import NotAllowed, ValidationFailed
from portal.models import Account, Membership, RecoveryCode, Role, SigninAttempt, User
from portal.services import auth
from portal.services.inputs import is_digits

ISSUER = "Account Portal"
BAD_CODE = ("That code didn't work. Enter the 6-digit code your authenticator app shows now, "
            "or one of your recovery codes.")
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


@dataclass(frozen=True)
class Setup:
    secret: str
    uri: str
    qr_svg: str


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=6, interval=rules.TOTP_STEP_SECONDS)


def set_secret(user: User, secret: str | None) -> None:
    """Keep the user's TOTP key, sealed (it is never stored in clear)."""
    user.totp_secret = sealing.seal(secret) if secret else None


def secret_of(user: User) -> str | None:
    return sealing.unseal(user.totp_secret) if user.totp_secret else None


def _step(moment: datetime) -> int:
    return int(moment.timestamp()) // rules.TOTP_STEP_SECONDS


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _normalize(code: str) -> str:
    return "".join((code or "").split()).replace("-", "").lower()


def setup(session: Session, user: User, pending: str | None = None) -> Setup:
    """The secret for the user to scan: `pending`, the one shown before (the page keeps it
    sealed in the signed session, see seal_pending), else one an earlier setup left on the
    user, else a new one. Nothing is written: the secret is stored only when a code from it
    is confirmed (confirm_setup), so showing the setup page (a GET) changes nothing."""
    if user.has_two_factor:
        raise ValidationFailed({"": "Two-factor sign-in is already on. Turn it off first to "
                                    "use another authenticator."})
    secret = pending if _is_secret(pending) else _stored_secret(user)
    return describe(user, secret or pyotp.random_base32())  # 160 bits


def _is_secret(value) -> bool:
    return isinstance(value, str) and len(value) == 32 and all(
        c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" for c in value)


def _stored_secret(user: User) -> str | None:
    """An unconfirmed secret left on the user by an earlier version of the setup page."""
    if user.has_two_factor or not user.totp_secret:
        return None
    try:
        return secret_of(user)
    except sealing.Unreadable:
        return None


def seal_pending(secret: str) -> str:
    """The secret being set up, for the signed session cookie (signed is not secret: sealed
    so that the cookie does not show it in clear)."""
    return sealing.seal(secret)


def open_pending(sealed) -> str | None:
    """The secret seal_pending sealed, or None (absent, tampered, sealed under a retired key)."""
    if not isinstance(sealed, str):
        return None
    try:
        secret = sealing.unseal(sealed)
    except sealing.Unreadable:
        return None
    return secret if _is_secret(secret) else None


def describe(user: User, secret: str) -> Setup:
    uri = _totp(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    qr = segno.make(uri, error="m")
    return Setup(secret=secret, uri=uri,
                 qr_svg=qr.svg_inline(scale=5, border=2, dark="#111", light="#fff",
                                      omitsize=False))


def _check_totp(user: User, code: str, now: datetime, secret: str | None = None) -> int | None:
    """The time step the code matches (one step of drift either way), or None. A step at or
    before the last one accepted is refused: a code works once. `secret`: the one being set
    up (else the user's own)."""
    if not (len(code) == 6 and is_digits(code)):
        return None
    try:
        totp = _totp(secret or secret_of(user))
    except sealing.Unreadable:
        return None  # sealed under a retired key: a recovery code still signs in
    current = _step(now)
    for step in (current, current - 1, current + 1):
        if secrets.compare_digest(totp.at(step * rules.TOTP_STEP_SECONDS), code):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                return None
            return step
    return None


def confirm_setup(session: Session, user: User, code: str, now: datetime | None = None,
                  secret: str | None = None) -> list[str]:
    """Turn two-factor sign-in on with a code from the secret being set up (`secret`, as
    setup() gave it; else one an earlier setup left on the user); store the secret, sealed,
    and return the recovery codes (shown once)."""
    now = now or clock_now()
    if user.has_two_factor:
        raise ValidationFailed({"": "Two-factor sign-in is already on."})
    secret = secret if _is_secret(secret) else _stored_secret(user)
    if secret is None:
        raise ValidationFailed({"": "Start again: scan a new QR code."})
    code = _normalize(code)
    if not code:
        raise ValidationFailed({"code": "Enter the 6-digit code your authenticator app shows."})
    step = _check_totp(user, code, now, secret)
    if step is None:
        raise ValidationFailed({"code": "That code doesn't match. Check the app's clock and "
                                        "enter the code it shows now."})
    set_secret(user, secret)
    user.totp_enabled_at = now
    user.totp_last_step = step
    return new_recovery_codes(session, user, now)


def new_recovery_codes(session: Session, user: User, now: datetime | None = None) -> list[str]:
    """Replace the user's recovery codes: 10 codes of 10 characters (50 bits each)."""
    now = now or clock_now()
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(rules.RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(RecoveryCode(user_id=user.id, code_hash=_hash_code(raw), created_at=now))
    return codes


def replace_recovery_codes(session: Session, user: User, password: str, *, address: str,
                           user_agent: str = "", now: datetime | None = None) -> list[str]:
    """New recovery codes (the old ones stop working), for the user's password (checked
    through the sign-in throttle: auth.confirm_password)."""
    auth.confirm_password(session, user, password, address, now, user_agent)
    if not user.has_two_factor:
        raise ValidationFailed({"": "Turn on two-factor sign-in first."})
    return new_recovery_codes(session, user, now)


def recovery_codes_left(session: Session, user: User) -> int:
    return session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))) or 0


def verify(session: Session, user: User, code: str, now: datetime | None = None) -> str:
    """The second step of sign-in: "totp" or "recovery" for a good code, else raise. A
    recovery code is spent by a conditional update, so it signs in once even when sent
    twice at the same moment."""
    now = now or clock_now()
    if not user.has_two_factor:
        raise ValidationFailed({"code": BAD_CODE})
    code = _normalize(code)
    if not code:
        raise ValidationFailed({"code": "Enter the code from your authenticator app."})
    step = _check_totp(user, code, now)
    if step is not None:
        won = session.execute(update(User).where(
            User.id == user.id,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step))
            .values(totp_last_step=step)).rowcount
        if won == 1:
            return "totp"
        raise ValidationFailed({"code": BAD_CODE})
    if len(code) == 10 and code.isascii() and code.isalnum():  # (letters and 2-9)
        used = session.execute(update(RecoveryCode).where(
            RecoveryCode.user_id == user.id, RecoveryCode.code_hash == _hash_code(code),
            RecoveryCode.used_at.is_(None)).values(used_at=now)).rowcount
        if used == 1:
            return "recovery"
    raise ValidationFailed({"code": BAD_CODE})


def check_password(user: User, password: str) -> None:
    """The bare check. Every password a person types goes through auth.confirm_password,
    which throttles it with sign-in and records a failure: call that, not this."""
    if not password:
        raise ValidationFailed({"password": "Enter your password."})
    if not check_password_hash(user.password_hash, password):
        raise ValidationFailed({"password": "That password is not correct."})


def disable(session: Session, user: User, password: str, *, address: str,
            user_agent: str = "", now: datetime | None = None) -> None:
    """Turn two-factor sign-in off, for the user's password (throttled with sign-in)."""
    auth.confirm_password(session, user, password, address, now, user_agent)
    if not user.has_two_factor:
        raise ValidationFailed({"": "Two-factor sign-in is already off."})
    required_by = accounts_requiring(session, user)
    if required_by:
        names = ", ".join(a.name for a in required_by[:3])
        raise NotAllowed(f"{names} require{'s' if len(required_by) == 1 else ''} two-factor "
                         "sign-in: it can't be turned off while you are a member.")
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def cancel_setup(user: User) -> None:
    if not user.has_two_factor:
        user.totp_secret = None


# --- the account setting ------------------------------------------------------------------

def account_requires(account: Account) -> bool:
    """The account, or its agency, requires every user to sign in with a second factor."""
    parent = account.parent if account.parent_id else None
    return bool(account.require_two_factor or (parent is not None and parent.require_two_factor))


def accounts_requiring(session: Session, user: User) -> list[Account]:
    """The accounts the user belongs to that require two-factor sign-in (themselves or
    through their agency)."""
    requiring = select(Account.id).where(Account.require_two_factor.is_(True))
    mine = select(Membership.account_id).where(Membership.user_id == user.id)
    agencies = select(Membership.account_id).where(
        Membership.user_id == user.id, Membership.role.in_((Role.OWNER, Role.ADMIN)))
    return list(session.scalars(
        select(Account).where(or_(
            # a membership on an account that requires it, or whose agency does
            Account.id.in_(mine) & (Account.require_two_factor.is_(True)
                                    | Account.parent_id.in_(requiring)),
            # a sub-account the user reaches as the agency's owner or admin
            Account.parent_id.in_(agencies) & Account.require_two_factor.is_(True),
        )).order_by(Account.name)))


def set_required(session: Session, account: Account, actor: User, required: bool) -> None:
    parent = account.parent if account.parent_id else None
    if parent is not None and parent.require_two_factor:
        raise ValidationFailed({"require_two_factor": "The agency requires it for every "
                                                      "sub-account: change it there."})
    if required and not actor.has_two_factor:
        raise ValidationFailed({"require_two_factor": "Turn on two-factor sign-in for yourself "
                                                      "first, so you are not locked out."})
    account.require_two_factor = required


def members_without_two_factor(session: Session, account: Account) -> list[User]:
    """Who will be asked to set it up at their next page (the account's own members)."""
    return list(session.scalars(
        select(User).join(Membership, Membership.user_id == User.id)
        .where(Membership.account_id == account.id, User.totp_enabled_at.is_(None))
        .order_by(User.name)))


# --- sessions -----------------------------------------------------------------------------

def end_all_sessions(user: User) -> None:
    """Every session carries the user's session version (sessions are signed cookies, kept
    nowhere on the server): a new version ends every session issued before it, including
    copies of their cookies. Signing out does this."""
    user.session_version = (user.session_version or 1) + 1


def sign_out_other_sessions(user: User) -> None:
    """End every session; the caller signs the current session in again under the new
    version."""
    end_all_sessions(user)


def recent_signins(session: Session, user: User, limit: int = 20) -> list[SigninAttempt]:
    """The user's latest sign-in attempts (good and failed, both steps), newest first."""
    return list(session.scalars(
        select(SigninAttempt).where(or_(SigninAttempt.user_id == user.id,
                                        SigninAttempt.email == user.email))
        .order_by(SigninAttempt.at.desc(), SigninAttempt.id.desc()).limit(limit)))


def is_recent(signed_in_at: float | None, now: datetime | None = None) -> bool:
    """The password was entered recently enough to change a payment method or close an
    account without asking for it again."""
    if not isinstance(signed_in_at, int | float):
        return False
    now = now or clock_now()
    return now.timestamp() - signed_in_at <= rules.REAUTH_AFTER.total_seconds()


def is_idle(seen_at: float | None, now: datetime | None = None, timeout=None) -> bool:
    """No request for longer than the timeout (rules.SESSION_IDLE_TIMEOUT unless told)."""
    if seen_at is None:
        return False
    if not isinstance(seen_at, int | float):
        return True  # not a time we wrote: sign out rather than guess
    now = now or clock_now()
    timeout = timeout or rules.SESSION_IDLE_TIMEOUT
    return now.timestamp() - seen_at > timeout.total_seconds()
