from flask import current_app, flash, g, redirect, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from portal.blueprints.security import account_bp, bp
from portal.blueprints.views import admin_required, back, submit
from portal.clock import now as clock_now
from portal.errors import NotAllowed, NotFound, TooManyAttempts, ValidationFailed
from portal.extensions import db
from portal.rendering import render, safe_path, see_other
from portal.services import auth, history, security

STEP_LABELS = {"password": "Password", "totp": "Authenticator code",
               "recovery": "Recovery code", "code": "Code", "reauth": "Password again",
               auth.RESET_STEP: "Password reset link asked",
               auth.EMAIL_STEP: "Email change link asked"}
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


def _overview(status=200, errors=None, password_errors=None, email_errors=None,
              form=None):
    user = current_user._get_current_object()
    return render(
        "security/index.html", status=status, user=user, errors=errors or {},
        password_errors=password_errors or {}, email_errors=email_errors or {},
        form=form or {},
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
    _keep_this_session(user)  # this session, under the new session version
    flash("Every other session is signed out. This one stays signed in.", "success")
    return see_other(url_for("security.index"))


def _keep_this_session(user):
    """After every session of `user` ended (a new session version), sign this one in again
    under the new version, keeping what it knew."""
    keep = {key: session[key] for key in ("auth_at", "seen_at", "several_accounts",
                                          "account_id") if key in session}
    login_user(user, remember=False)
    session.update(keep)


@bp.post("/password")
@login_required
def change_password():
    user = current_user._get_current_object()
    form = request.form
    try:
        auth.change_password(db.session, user, form.get("current", ""),
                             form.get("password", ""), form.get("again", ""), **_client())
    except TooManyAttempts as e:
        return _throttled(e)
    except ValidationFailed as e:
        db.session.commit()  # a wrong current password counts toward the throttle
        return _overview(status=422, password_errors=e.errors)
    db.session.commit()
    _keep_this_session(user)
    session["auth_at"] = clock_now().timestamp()
    flash("Your password is changed. Every other session is signed out; we emailed you "
          "about the change.", "success")
    return see_other(url_for("security.index"))


@bp.post("/email")
@login_required
def change_email():
    user = current_user._get_current_object()
    form = request.form
    try:
        new_email = auth.request_email_change(
            db.session, current_app.config["SECRET_KEY"], user, form.get("email", ""),
            form.get("password", ""), **_client())
    except TooManyAttempts as e:
        return _throttled(e)
    except ValidationFailed as e:
        db.session.commit()  # a wrong password counts toward the throttle
        return _overview(status=422, email_errors=e.errors,
                         form={"email": form.get("email", "")})
    db.session.commit()
    flash(f"We sent a link to {new_email}. Open it to confirm the address; until then you "
          f"sign in with {user.email}.", "success")
    return see_other(url_for("security.index"))


def _private(response):
    """The token is in the URL: never sent on as a referrer, never cached."""
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/email/<token>", methods=["GET", "POST"])
def confirm_email(token: str):
    """The link sent to a new address: the link itself is the proof (whoever opens it reads
    that mailbox), signed in or not. GET shows what it will do; POST does it."""
    try:
        user, new_email = auth.email_change_for(db.session, current_app.config["SECRET_KEY"],
                                                token)
    except NotFound as e:
        return _private(render("security/confirm_email.html", status=410, problem=e.message,
                               token=token, errors={}))
    if request.method == "GET":
        return _private(render("security/confirm_email.html", user=user,
                               new_email=new_email, token=token, errors={}))
    return submit(
        lambda: auth.confirm_email_change(db.session, user, new_email),
        lambda errors: _private(render("security/confirm_email.html", status=409, user=user,
                                       new_email=new_email, token=token, errors=errors)),
        lambda old: back(url_for("security.index") if current_user.is_authenticated
                         else url_for("auth.login"),
                         f"You now sign in with {new_email}. We told {old} about the "
                         "change."))


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


