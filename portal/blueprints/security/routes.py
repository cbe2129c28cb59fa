from flask import flash, g, redirect, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from portal.blueprints.security import account_bp, bp
from portal.blueprints.views import admin_required, back, submit
from portal.clock import now as clock_now
from portal.errors import NotAllowed, TooManyAttempts, ValidationFailed
from portal.extensions import db
from portal.rendering import render, safe_path, see_other
from portal.services import auth, history, security

STEP_LABELS = {"password": "Password", "totp": "Authenticator code",
               "recovery": "Recovery code", "code": "Code", "reauth": "Password again"}
# The secret being set up, sealed, in the signed session: showing the setup page writes
# nothing to the database (a GET changes nothing); confirming a code stores it.
SETUP_PENDING = "two_factor_setup"


def _client() -> dict:
    """Where a password check comes from, for the sign-in throttle."""
    return {"address": request.remote_addr or "unknown",
            "user_agent": request.user_agent.string or ""}


def _throttled(error: TooManyAttempts):
    """Too many wrong passwords (or codes) for this user or address, counted with sign-in:
    this session ends, as it would have at the sign-in form."""
    db.session.rollback()
    logout_user()
    session.clear()
    flash(error.message, "error")
    return see_other(url_for("auth.login"))


def _overview(status=200, errors=None):
    user = current_user._get_current_object()
    return render(
        "security/index.html", status=status, user=user, errors=errors or {},
        left=security.recovery_codes_left(db.session, user),
        required_by=security.accounts_requiring(db.session, user),
        signins=security.recent_signins(db.session, user), step_labels=STEP_LABELS,
        next=safe_path(request.values.get("next")))


@bp.get("/")
@login_required
def index():
    return _overview()


@bp.get("/two-factor")
@login_required
def two_factor():
    if current_user.has_two_factor:
        return redirect(url_for("security.index"))
    setup = security.setup(db.session, current_user,
                           security.open_pending(session.get(SETUP_PENDING)))
    session[SETUP_PENDING] = security.seal_pending(setup.secret)
    return _no_store(render("security/two_factor.html", "setup_form", setup=setup, errors={},
                            next=safe_path(request.args.get("next"))))


def _no_store(response):
    """Pages showing the authenticator key or recovery codes are never cached."""
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/two-factor")
@login_required
def two_factor_confirm():
    next_url = safe_path(request.form.get("next"))
    pending = security.open_pending(session.get(SETUP_PENDING))

    def invalid(errors):
        if current_user.has_two_factor:
            return redirect(url_for("security.index"))
        if "" in errors:  # no setup in progress (a stale tab, a new session): start one
            return back(url_for("security.two_factor", next=next_url), errors[""], "info")
        setup = security.setup(db.session, current_user, pending)
        return _no_store(render("security/two_factor.html", "setup_form", status=422,
                                setup=setup, errors=errors, next=next_url))

    def confirmed(codes):
        session.pop(SETUP_PENDING, None)
        return _no_store(render("security/recovery_codes.html", codes=codes, next=next_url,
                                first_time=True))

    return submit(lambda: security.confirm_setup(db.session, current_user,
                                                 request.form.get("code", ""), secret=pending),
                  invalid, confirmed)


@bp.post("/two-factor/off")
@login_required
def two_factor_off():
    try:
        security.disable(db.session, current_user, request.form.get("password", ""),
                         **_client())
    except TooManyAttempts as e:
        return _throttled(e)
    except ValidationFailed as e:
        db.session.commit()  # a wrong password counts toward the throttle
        return _overview(status=422, errors=e.errors)
    except NotAllowed as e:
        db.session.rollback()
        return _overview(status=403, errors={"": e.message})
    db.session.commit()
    flash("Two-factor sign-in is off. Your recovery codes no longer work.", "success")
    return see_other(url_for("security.index"))


@bp.post("/recovery-codes")
@login_required
def recovery_codes():
    try:
        codes = security.replace_recovery_codes(db.session, current_user,
                                                request.form.get("password", ""), **_client())
    except TooManyAttempts as e:
        return _throttled(e)
    except ValidationFailed as e:
        db.session.commit()  # a wrong password counts toward the throttle
        return _overview(status=422, errors=e.errors)
    db.session.commit()
    return _no_store(render("security/recovery_codes.html", codes=codes, next=None,
                            first_time=False))


@bp.post("/sign-out-others")
@login_required
def sign_out_others():
    user = current_user._get_current_object()
    security.sign_out_other_sessions(user)
    db.session.commit()
    keep = {key: session[key] for key in ("auth_at", "seen_at", "several_accounts",
                                          "account_id") if key in session}
    login_user(user, remember=False)  # this session, under the new session version
    session.update(keep)
    flash("Every other session is signed out. This one stays signed in.", "success")
    return see_other(url_for("security.index"))


@bp.route("/confirm-password", methods=["GET", "POST"])
@login_required
def confirm_password():
    next_url = safe_path(request.values.get("next"))
    if request.method == "GET":
        return render("security/confirm_password.html", "confirm_form", errors={},
                      next=next_url)
    try:
        auth.confirm_password(db.session, current_user, request.form.get("password", ""),
                              **_client())
    except TooManyAttempts as e:
        return _throttled(e)
    except ValidationFailed as e:
        db.session.commit()  # the failure counts toward the throttle
        return render("security/confirm_password.html", "confirm_form", status=422,
                      errors=e.errors, next=next_url)
    session["auth_at"] = clock_now().timestamp()
    return see_other(next_url or url_for("home.index"))


# --- the account's overview ---------------------------------------------------------------

def _account_page(status=200, errors=None):
    return render("security/account.html", "require_form", status=status,
                  errors=errors or {}, requires=security.account_requires(g.account),
                  without=security.members_without_two_factor(db.session, g.account),
                  retention_days=history.retention(g.account).days)


@account_bp.get("/")
def overview():
    return _account_page()


@account_bp.post("/require-two-factor")
@admin_required
def require_two_factor():
    wanted = request.form.get("require_two_factor") == "on"
    return submit(lambda: security.set_required(db.session, g.account, current_user, wanted),
                  lambda errors: _account_page(422, errors),
                  lambda _: back(url_for("account_security.overview"),
                                 "Every user must now sign in with a second factor." if wanted
                                 else "Two-factor sign-in is no longer required."))


