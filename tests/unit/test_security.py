"""Two-factor sign-in (TOTP and recovery codes), the account setting that requires it, the
session rules (recent sign-in, idle) and the recent sign-ins list: the service, on a frozen
clock."""

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import func, select, text

from portal import clock, rules
from portal.errors import NotAllowed, ValidationFailed
from portal.models import Account, RecoveryCode, Role, SigninAttempt, Version
from portal.services import auth, security
from tests import factories as f

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # on a 30-second step boundary
T1 = T0 + timedelta(minutes=5)  # later sign-ins (the setup's step is long past)
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # a fixed secret: codes are the same every run
STEP = timedelta(seconds=rules.TOTP_STEP_SECONDS)
BAD_CODE = ("That code didn't work. Enter the 6-digit code your authenticator app shows now, "
            "or one of your recovery codes.")
NO_MATCH = ("That code doesn't match. Check the app's clock and enter the code it shows "
            "now.")
CODE_RE = re.compile(r"[a-z2-9]{5}-[a-z2-9]{5}")
IP = "10.0.0.1"


def code_at(moment: datetime, secret: str = SECRET) -> str:
    return pyotp.TOTP(secret).at(moment)


def wrong_code(moment: datetime, secret: str = SECRET) -> str:
    """A 6-digit code no step around `moment` shows."""
    near = {code_at(moment + STEP * k, secret) for k in range(-3, 4)}
    return next(c for c in (f"{n:06d}" for n in range(1, 10**6, 7919)) if c not in near)


@pytest.fixture(autouse=True)
def frozen(app):
    clock.freeze(T0)
    yield
    clock.freeze(None)


def enable(session, user, secret: str = SECRET, at: datetime = T0) -> list[str]:
    """Two-factor sign-in on for `user`, set up at `at`; the recovery codes."""
    security.set_secret(user, secret)
    security.setup(session, user)
    codes = security.confirm_setup(session, user, code_at(at, secret), now=at)
    session.flush()
    return codes


@pytest.fixture
def pat(session):
    u = f.user(session, email="pat@example.test", name="Pat")
    f.standalone(session, "Acme Plumbing", admin=u)  # a user's versions are filed per account
    session.commit()
    return u


# --- setup ----------------------------------------------------------------------------------

def test_setup_gives_a_base32_secret_an_otpauth_uri_and_a_qr_svg(session, pat):
    s = security.setup(session, pat)
    assert re.fullmatch(r"[A-Z2-7]{32}", s.secret)
    assert not pat.has_two_factor  # not in force until a code is confirmed
    assert s.uri.startswith("otpauth://totp/")
    parsed = pyotp.parse_uri(s.uri)
    assert (parsed.issuer, parsed.name, parsed.secret) == ("Account Portal",
                                                           "pat@example.test", s.secret)
    assert "issuer=Account%20Portal" in s.uri
    assert "pat%40example.test" in s.uri or "pat@example.test" in s.uri
    assert "<svg" in s.qr_svg
    # Shown again before it is confirmed: the same secret (the app already scanned it).
    assert security.setup(session, pat, pending=s.secret).secret == s.secret


def test_two_users_get_different_secrets(session, pat):
    other = f.user(session)
    assert security.setup(session, pat).secret != security.setup(session, other).secret


def test_confirm_with_the_right_code_turns_it_on_and_gives_ten_distinct_codes(session, pat):
    security.set_secret(pat, SECRET)
    codes = security.confirm_setup(session, pat, code_at(T0))
    session.commit()
    assert pat.has_two_factor
    assert pat.totp_enabled_at == T0
    assert len(codes) == rules.RECOVERY_CODE_COUNT == 10
    assert len(set(codes)) == 10
    assert all(CODE_RE.fullmatch(c) for c in codes)
    assert security.recovery_codes_left(session, pat) == 10

    stored = session.execute(text("SELECT * FROM recovery_codes")).all()
    assert len(stored) == 10
    dump = repr(stored).lower()
    for c in codes:
        assert c not in dump and c.replace("-", "") not in dump  # never in clear
    hashes = set(session.scalars(select(RecoveryCode.code_hash)))
    assert hashes == {hashlib.sha256(c.replace("-", "").encode()).hexdigest() for c in codes}


def test_confirm_accepts_the_code_with_spaces(session, pat):
    security.set_secret(pat, SECRET)
    code = code_at(T0)
    security.confirm_setup(session, pat, f" {code[:3]} {code[3:]} ")
    assert pat.has_two_factor


@pytest.mark.parametrize("code,errors", [
    (None, {"code": NO_MATCH}),  # a wrong code (filled in below)
    (code_at(T0 - 2 * STEP), {"code": NO_MATCH}),  # two steps old
    (code_at(T0 + 2 * STEP), {"code": NO_MATCH}),  # two steps ahead
    ("", {"code": "Enter the 6-digit code your authenticator app shows."}),
    ("   ", {"code": "Enter the 6-digit code your authenticator app shows."}),
    ("12345", {"code": NO_MATCH}),
    ("abcdef", {"code": NO_MATCH}),
])
def test_confirm_refuses_wrong_old_and_empty_codes(session, pat, code, errors):
    security.set_secret(pat, SECRET)
    with pytest.raises(ValidationFailed) as e:
        security.confirm_setup(session, pat, wrong_code(T0) if code is None else code)
    assert e.value.errors == errors
    assert not pat.has_two_factor
    assert security.recovery_codes_left(session, pat) == 0


def test_confirm_without_a_secret_or_when_already_on(session, pat):
    with pytest.raises(ValidationFailed) as e:
        security.confirm_setup(session, pat, "123456")
    assert e.value.errors == {"": "Start again: scan a new QR code."}
    enable(session, pat)
    with pytest.raises(ValidationFailed) as e:
        security.confirm_setup(session, pat, code_at(T0 + STEP))
    assert e.value.errors == {"": "Two-factor sign-in is already on."}
    with pytest.raises(ValidationFailed):
        security.setup(session, pat)


# --- verify: the second step ----------------------------------------------------------------

@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_verify_accepts_the_current_previous_and_next_step(session, pat, offset):
    enable(session, pat)
    clock.freeze(T1)
    assert security.verify(session, pat, code_at(T1 + offset * STEP)) == "totp"


@pytest.mark.parametrize("offset", [-2, 2, -10])
def test_verify_refuses_a_code_two_steps_off(session, pat, offset):
    enable(session, pat)
    clock.freeze(T1)
    with pytest.raises(ValidationFailed) as e:
        security.verify(session, pat, code_at(T1 + offset * STEP))
    assert e.value.errors == {"code": BAD_CODE}


def test_verify_at_the_edges_of_a_step(session, pat):
    enable(session, pat)
    # The last second of a step still takes the next step's code, not the one after.
    edge = T1 + STEP - timedelta(seconds=1)
    clock.freeze(edge)
    with pytest.raises(ValidationFailed):
        security.verify(session, pat, code_at(T1 + 2 * STEP))
    assert security.verify(session, pat, code_at(T1 + STEP)) == "totp"


def test_the_same_totp_code_works_once(session, pat):
    enable(session, pat)
    clock.freeze(T1)
    code = code_at(T1)
    assert security.verify(session, pat, code) == "totp"
    with pytest.raises(ValidationFailed) as e:
        security.verify(session, pat, code)  # replayed at once
    assert e.value.errors == {"code": BAD_CODE}
    clock.freeze(T1 + timedelta(seconds=20))  # still inside the same step
    with pytest.raises(ValidationFailed):
        security.verify(session, pat, code)
    with pytest.raises(ValidationFailed):
        security.verify(session, pat, code_at(T1 - STEP))  # an older step: refused too
    clock.freeze(T1 + STEP)
    assert security.verify(session, pat, code_at(T1 + STEP)) == "totp"  # a later one works


def test_the_setup_code_cannot_sign_in_again(session, pat):
    enable(session, pat)
    with pytest.raises(ValidationFailed):
        security.verify(session, pat, code_at(T0))


def test_the_replay_guard_is_in_the_database_not_only_on_the_object(session, pat):
    enable(session, pat)
    session.commit()
    clock.freeze(T1)
    step = int(T1.timestamp()) // rules.TOTP_STEP_SECONDS
    assert pat.totp_last_step < step  # this copy of the user was loaded before...
    # ...another request (the same code, sent twice at once) accepted the code meanwhile:
    session.execute(text("UPDATE users SET totp_last_step = :s WHERE id = :id"),
                    {"s": step, "id": pat.id})
    with pytest.raises(ValidationFailed) as e:
        security.verify(session, pat, code_at(T1))
    assert e.value.errors == {"code": BAD_CODE}


def test_verify_refuses_empty_codes_and_users_without_two_factor(session, pat):
    with pytest.raises(ValidationFailed) as e:
        security.verify(session, pat, code_at(T0))
    assert e.value.errors == {"code": BAD_CODE}
    enable(session, pat)
    with pytest.raises(ValidationFailed) as e:
        security.verify(session, pat, "  ")
    assert e.value.errors == {"code": "Enter the code from your authenticator app."}


def test_a_recovery_code_works_once(session, pat):
    codes = enable(session, pat)
    clock.freeze(T1)
    assert security.verify(session, pat, codes[0]) == "recovery"
    assert security.recovery_codes_left(session, pat) == 9
    used = session.scalar(select(RecoveryCode).where(RecoveryCode.used_at.is_not(None)))
    assert used.used_at == T1
    with pytest.raises(ValidationFailed) as e:
        security.verify(session, pat, codes[0])
    assert e.value.errors == {"code": BAD_CODE}
    assert security.recovery_codes_left(session, pat) == 9


@pytest.mark.parametrize("change", [
    str.upper,
    lambda c: c.replace("-", ""),
    lambda c: f" {c[:3]} {c[3:7]} {c[7:]} ",
    lambda c: c.replace("-", " - ").title(),
])
def test_recovery_codes_ignore_case_dashes_and_spaces(session, pat, change):
    codes = enable(session, pat)
    assert security.verify(session, pat, change(codes[3])) == "recovery"
    with pytest.raises(ValidationFailed):
        security.verify(session, pat, codes[3])  # the same code, as shown: spent


def test_one_users_recovery_code_does_not_sign_in_another(session, pat):
    codes = enable(session, pat)
    other = f.user(session)
    enable(session, other, secret=pyotp.random_base32())
    with pytest.raises(ValidationFailed):
        security.verify(session, other, codes[0])
    assert security.recovery_codes_left(session, pat) == 10


def test_new_recovery_codes_replace_the_old_ones(session, pat):
    old = enable(session, pat)
    security.verify(session, pat, old[0])
    new = security.new_recovery_codes(session, pat)
    assert len(new) == 10 and not set(new) & set(old)
    assert security.recovery_codes_left(session, pat) == 10
    for c in old[1:3]:
        with pytest.raises(ValidationFailed):
            security.verify(session, pat, c)
    assert security.verify(session, pat, new[0]) == "recovery"
    assert session.scalar(select(func.count()).select_from(RecoveryCode)) == 10


# --- disable ----------------------------------------------------------------------------------

@pytest.mark.parametrize("password,errors", [
    ("", {"password": "Enter your password."}),
    ("not-my-password", {"password": "That password is not correct."}),
])
def test_disable_needs_the_right_password(session, pat, password, errors):
    enable(session, pat)
    with pytest.raises(ValidationFailed) as e:
        security.disable(session, pat, password, address=IP)
    assert e.value.errors == errors
    assert pat.has_two_factor and security.secret_of(pat) == SECRET
    assert security.recovery_codes_left(session, pat) == 10


def test_disable_clears_the_secret_and_the_codes(session, pat):
    codes = enable(session, pat)
    security.disable(session, pat, f.PASSWORD, address=IP)
    session.commit()
    assert (pat.totp_secret, pat.totp_enabled_at, pat.totp_last_step) == (None, None, None)
    assert not pat.has_two_factor
    assert session.scalar(select(func.count()).select_from(RecoveryCode)) == 0
    with pytest.raises(ValidationFailed):
        security.verify(session, pat, codes[1])
    with pytest.raises(ValidationFailed) as e:
        security.disable(session, pat, f.PASSWORD, address=IP)
    assert e.value.errors == {"": "Two-factor sign-in is already off."}


def test_disable_is_refused_while_an_account_requires_it(session, pat):
    enable(session, pat)
    account = f.standalone(session, "Bolt Electric")
    f.member(session, pat, account, Role.USER)
    account.require_two_factor = True
    session.flush()
    with pytest.raises(NotAllowed) as e:
        security.disable(session, pat, f.PASSWORD, address=IP)
    assert e.value.message == ("Bolt Electric requires two-factor sign-in: it can't be turned "
                               "off while you are a member.")
    assert pat.has_two_factor and security.recovery_codes_left(session, pat) == 10


def test_disable_is_refused_through_the_agency_for_a_sub_account_member(session, pat):
    enable(session, pat)
    agency = f.agency(session, "Northwind Agency")
    sub = f.sub(session, agency, "Bayside Dental")
    f.member(session, pat, sub, Role.USER)
    agency.require_two_factor = True
    session.flush()
    assert security.account_requires(sub)
    assert [a.name for a in security.accounts_requiring(session, pat)] == ["Bayside Dental"]
    with pytest.raises(NotAllowed) as e:
        security.disable(session, pat, f.PASSWORD, address=IP)
    assert "Bayside Dental requires two-factor sign-in" in e.value.message
    assert pat.has_two_factor


def test_disable_names_several_accounts(session, pat):
    enable(session, pat)
    for name in ("Zeta Co", "Alpha Co"):
        account = f.standalone(session, name)
        f.member(session, pat, account, Role.USER)
        account.require_two_factor = True
    session.flush()
    with pytest.raises(NotAllowed) as e:
        security.disable(session, pat, f.PASSWORD, address=IP)
    assert e.value.message.startswith("Alpha Co, Zeta Co require two-factor sign-in")


def test_cancel_setup_drops_an_unconfirmed_secret_only(session, pat):
    security.setup(session, pat)
    security.cancel_setup(pat)
    assert pat.totp_secret is None
    enable(session, pat)
    security.cancel_setup(pat)
    assert security.secret_of(pat) == SECRET


# --- the account setting --------------------------------------------------------------------

def test_account_requires_itself_or_through_its_agency(session):
    agency = f.agency(session, "Northwind Agency")
    sub = f.sub(session, agency, "Bayside Dental")
    solo = f.standalone(session, "Solo Shop")
    assert not any(security.account_requires(a) for a in (agency, sub, solo))
    agency.require_two_factor = True
    assert security.account_requires(agency) and security.account_requires(sub)
    assert not security.account_requires(solo)
    agency.require_two_factor = False
    sub.require_two_factor = True
    assert security.account_requires(sub) and not security.account_requires(agency)


def test_accounts_requiring_lists_only_the_users_accounts(session, pat):
    acme = session.scalar(select(Account).where(Account.name == "Acme Plumbing"))
    other = f.standalone(session, "Not Pat's")
    other.require_two_factor = True
    session.flush()
    assert security.accounts_requiring(session, pat) == []
    acme.require_two_factor = True
    session.flush()
    assert security.accounts_requiring(session, pat) == [acme]


def test_set_required_refuses_an_admin_without_two_factor(session, pat):
    account = f.standalone(session, "Bolt Electric", admin=pat)
    with pytest.raises(ValidationFailed) as e:
        security.set_required(session, account, pat, True)
    assert e.value.errors == {"require_two_factor": "Turn on two-factor sign-in for yourself "
                                                    "first, so you are not locked out."}
    assert not account.require_two_factor
    security.set_required(session, account, pat, False)  # turning it off needs nothing
    enable(session, pat)
    security.set_required(session, account, pat, True)
    assert account.require_two_factor


def test_members_without_two_factor(session, pat):
    account = f.standalone(session, "Bolt Electric", admin=pat)
    ann = f.user(session, name="Ann")
    zed = f.user(session, name="Zed")
    f.member(session, zed, account, Role.USER)
    f.member(session, ann, account, Role.USER)
    f.user(session, name="Not a member")
    assert [u.name for u in security.members_without_two_factor(session, account)] == [
        "Ann", "Pat", "Zed"]
    enable(session, pat)
    assert [u.name for u in security.members_without_two_factor(session, account)] == [
        "Ann", "Zed"]


# --- sessions ---------------------------------------------------------------------------------

def test_sign_out_other_sessions_bumps_the_session_version(session, pat):
    before = pat.get_id()
    security.sign_out_other_sessions(pat)
    session.commit()
    assert pat.session_version == 2
    assert pat.get_id() != before
    assert auth.load_user(session, before) is None
    assert auth.load_user(session, pat.get_id()) is pat


def test_is_recent_until_exactly_fifteen_minutes(app):
    signed_in = T0.timestamp()
    assert rules.REAUTH_AFTER == timedelta(minutes=15)
    assert security.is_recent(signed_in, T0)
    assert security.is_recent(signed_in, T0 + timedelta(minutes=15))
    assert not security.is_recent(signed_in, T0 + timedelta(minutes=15, seconds=1))
    assert not security.is_recent(None, T0)
    clock.freeze(T0 + timedelta(minutes=15))  # the clock, when no time is given
    assert security.is_recent(signed_in)
    clock.freeze(T0 + timedelta(minutes=15, seconds=1))
    assert not security.is_recent(signed_in)


def test_is_idle_after_thirty_minutes(app):
    seen = T0.timestamp()
    assert rules.SESSION_IDLE_TIMEOUT == timedelta(minutes=30)
    assert not security.is_idle(seen, T0 + timedelta(minutes=30))
    assert security.is_idle(seen, T0 + timedelta(minutes=30, seconds=1))
    assert not security.is_idle(None, T0 + timedelta(days=1))
    assert security.is_idle(seen, T0 + timedelta(minutes=5, seconds=1),
                            timeout=timedelta(minutes=5))
    clock.freeze(T0 + timedelta(minutes=30))
    assert not security.is_idle(seen)
    clock.freeze(T0 + timedelta(minutes=30, seconds=1))
    assert security.is_idle(seen)


def test_recent_signins_newest_first_with_their_steps(session, pat):
    enable(session, pat)
    other = f.user(session, email="other@example.test")
    session.commit()
    with pytest.raises(ValidationFailed):
        auth.sign_in(session, "pat@example.test", "wrong", "10.0.0.1", now=T1,
                     user_agent="Firefox")
    auth.sign_in(session, "pat@example.test", f.PASSWORD, "10.0.0.1",
                 now=T1 + timedelta(seconds=10), user_agent="Firefox")
    with pytest.raises(ValidationFailed):
        auth.second_step(session, pat, wrong_code(T1), "10.0.0.1",
                         now=T1 + timedelta(seconds=20), user_agent="Firefox")
    auth.second_step(session, pat, code_at(T1 + STEP), "10.0.0.1",
                     now=T1 + STEP, user_agent="Firefox")
    auth.sign_in(session, "other@example.test", f.PASSWORD, "10.0.0.2",
                 now=T1 + 2 * STEP)  # someone else's
    session.commit()
    rows = security.recent_signins(session, pat)
    assert [(a.step, a.succeeded, a.at) for a in rows] == [
        ("totp", True, T1 + STEP),
        ("code", False, T1 + timedelta(seconds=20)),
        ("password", True, T1 + timedelta(seconds=10)),
        ("password", False, T1),
    ]
    assert {(a.email, a.address, a.user_agent) for a in rows} == {
        ("pat@example.test", "10.0.0.1", "Firefox")}
    assert len(security.recent_signins(session, pat, limit=2)) == 2
    assert [a.email for a in security.recent_signins(session, other)] == [
        "other@example.test"]


def test_recovery_sign_in_is_recorded_as_such(session, pat):
    codes = enable(session, pat)
    assert auth.second_step(session, pat, codes[0], "10.0.0.1", now=T1) == "recovery"
    attempt = session.scalar(select(SigninAttempt))
    assert (attempt.step, attempt.succeeded, attempt.user_id) == ("recovery", True, pat.id)


# --- versions never hold the secret --------------------------------------------------------

def _versions_dump(session) -> str:
    rows = session.execute(select(Version.record_type, Version.record_label, Version.action,
                                  Version.changes_json)).all()
    return repr(rows)


def test_no_version_holds_the_secret_or_the_recovery_codes(session, pat):
    security.setup(session, pat)
    session.commit()
    codes = security.confirm_setup(session, pat, code_at(T0), secret=SECRET)
    session.commit()
    hashes = list(session.scalars(select(RecoveryCode.code_hash)))
    clock.freeze(T1)
    security.verify(session, pat, code_at(T1))
    security.verify(session, pat, codes[0])
    session.commit()
    more = security.new_recovery_codes(session, pat)
    session.commit()
    hashes += list(session.scalars(select(RecoveryCode.code_hash)))
    security.disable(session, pat, f.PASSWORD, address=IP)
    session.commit()

    dump = _versions_dump(session)
    for secret_value in [SECRET, *hashes, *codes, *more,
                         *(c.replace("-", "") for c in codes + more)]:
        assert secret_value not in dump
    user_versions = session.scalars(select(Version).where(Version.record_type == "user")
                                    .order_by(Version.id)).all()
    assert [(v.action, v.changes) for v in user_versions] == [
        ("changed", {"totp_enabled_at": [None, "2026-11-23 12:00:00 UTC"]}),
        ("changed", {"totp_enabled_at": ["2026-11-23 12:00:00 UTC", None]}),
    ]
    assert "totp_last_step" not in dump and "totp_secret" not in dump


def test_the_totp_key_is_sealed_in_the_database_and_opens_only_with_the_key(session):
    """The key has to be read back to check codes, so it is encrypted (Fernet) under a key
    that is not in the database: a copy of the database alone can't mint codes."""
    from sqlalchemy import text

    from portal import sealing

    pat = f.user(session, "sealed@example.test")
    setup = security.setup(session, pat)
    security.confirm_setup(session, pat, code_at(T0, setup.secret), secret=setup.secret)
    session.commit()
    stored = session.execute(text("SELECT totp_secret FROM users WHERE id = :id"),
                             {"id": pat.id}).scalar_one()
    assert setup.secret not in stored and len(stored) > 100
    assert sealing.unseal(stored) == setup.secret
    # rotation: a new key seals, the old one still opens what it sealed
    sealing.configure(["test-secret", "a-newer-key"])
    try:
        assert sealing.unseal(stored) == setup.secret
        sealed_new = sealing.seal("X")
        sealing.configure(["a-newer-key"])  # the old key retired: unreadable, not a crash
        assert sealing.unseal(sealed_new) == "X"  # the newer key sealed it
        with pytest.raises(sealing.Unreadable):
            sealing.unseal(stored)
        assert security._check_totp(pat, pyotp.TOTP(setup.secret).now(), clock.now()) is None
    finally:
        sealing.configure(["test-secret"])
