"""The account portal: create_app builds the Flask app (the tutorial's factory)."""

import logging

from flask import Flask, g, request
from flask_wtf.csrf import CSRFError

from portal import logconfig, logmask
from portal.config import Config, TestingConfig, gateway_path
from portal.errors import DomainError
from portal.extensions import csrf, db, htmx, login_manager, migrate


def create_app(config: type | dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=False)
    app.config.from_object(Config)
    if isinstance(config, dict):
        if config.get("TESTING"):
            app.config.from_object(TestingConfig)
        app.config.update(config)
    elif config is not None:
        app.config.from_object(config)

    # Logging first, so everything after it logs through it (level from LOG_LEVEL, one line
    # per event, the request id on each). `filters` run on every record before it is
    # written: masking filters (portal/logmask.py) are added here.
    masking = logmask.MaskTokens()  # no billing-link token in any log line
    logconfig.configure(app, filters=[masking])

    # Secrets: no start outside debug/testing on the public default or a short SECRET_KEY;
    # the billing-link and two-factor sealing keys filled in (portal/keys.py).
    from portal import keys

    keys.configure(app)

    if app.config.get("TRUSTED_PROXIES"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()), render_as_batch=True)
    csrf.init_app(app)
    htmx.init_app(app)
    _init_login(app)
    _init_sqlite(app)
    _init_versioning()
    from portal import sealing

    sealing.configure(app.config["TOTP_ENCRYPTION_KEYS"])
    from portal.services import auth

    auth.use_hash_method(app.config["PASSWORD_HASH_METHOD"])  # cheap under TESTING
    _init_idle_timeout(app)
    from portal.services import gateway

    # A short name ("stripe") or "module:Class"; the class may build itself from the config
    # (StripeGateway.from_config refuses to start without its STRIPE_* settings).
    app.extensions["payment_gateway"] = gateway.load(
        gateway_path(app.config["PAYMENT_GATEWAY"]), app.config)
    # The services' collaborators, handed over here rather than imported by them: the
    # emails' renderer (the app's templates; portal/mail imports no Flask), and the billing
    # links' hooks into the charges and account closing.
    _init_mail(app)
    import billing_links

    billing_links.init_app(app)

    from portal import blueprints

    blueprints.register(app)
    from portal.blueprints import api_v1

    api_v1.init_app(app)  # issue 18: /api/v1 and its OpenAPI document
    from portal import sandbox

    sandbox.init_app(app)  # issue 16: the sandbox processor, when it is the gateway
    # CSP, frame, referrer, HSTS and no-store headers on every response (portal/headers.py).
    from portal import headers

    headers.install(app)
    _register_errors(app)
    _register_template_helpers(app)
    _register_commands(app)
    # The routes are known now: mask their one-time tokens on the loggers that log request
    # paths, before any handler (portal/logmask.py).
    logmask.install(masking, app)
    return app


def _migrations_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "migrations"


def _init_login(app: Flask) -> None:
    from portal.rendering import is_partial
    from portal.services.auth import load_user

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def _load(user_id: str):
        return load_user(db.session, user_id)

    @login_manager.unauthorized_handler
    def _unauthorized():
        from flask import flash, make_response, redirect, url_for

        target = url_for("auth.login", next=request.full_path.rstrip("?"))
        if is_partial():
            # Never answer a partial request with the login page: send the browser there.
            response = make_response("", 401)
            response.headers["HX-Redirect"] = target
            return response
        flash(login_manager.login_message, "info")
        return redirect(target)


def _init_idle_timeout(app: Flask) -> None:
    """Sign a session out after rules.SESSION_IDLE_TIMEOUT without a request. The last
    request's time is in the session (re-signed at most once a minute)."""
    from flask import flash, make_response, redirect, session, url_for
    from flask_login import logout_user

    from portal.clock import now as clock_now
    from portal.rendering import is_partial
    from portal.services import security

    @app.before_request
    def _idle():
        if request.endpoint == "static" or "_user_id" not in session:
            return None
        now = clock_now().timestamp()
        seen = session.get("seen_at")
        if security.is_idle(seen, timeout=app.config["SESSION_IDLE_TIMEOUT"]):
            logout_user()
            session.clear()
            minutes = int(app.config["SESSION_IDLE_TIMEOUT"].total_seconds() // 60)
            flash(f"You were signed out after {minutes} minutes without activity. "
                  "Sign in again to continue.", "info")
            target = url_for("auth.login", next=request.full_path.rstrip("?")
                             if request.method == "GET" else None)
            if is_partial():
                response = make_response("", 401)
                response.headers["HX-Redirect"] = target
                return response
            return redirect(target)
        if seen is None or now - seen > 60 or now < seen:
            session["seen_at"] = now
        return None


def _init_versioning() -> None:
    """Versions name the signed-in user; the public billing-link pages, the customer."""
    from flask import has_request_context
    from flask_login import current_user

    from portal import versioning

    def actor():
        if not has_request_context():
            return versioning.SYSTEM
        if request.blueprint == "billing_links":
            return (None, "Customer (billing link)")
        api_key = g.get("api_key")
        if api_key is not None:  # issue 18: /api/v1, its key's maker through the key
            return (api_key.created_by_id, f"API key “{api_key.name}”")
        if current_user and current_user.is_authenticated:
            return (current_user.id, current_user.name)
        return versioning.SYSTEM

    versioning.install()
    versioning.set_actor_provider(actor)


def _init_mail(app: Flask) -> None:
    """The renderer the mail package composes with (portal/mail/compose.py): Flask's
    templates and url_for, with the app whose context is current, as render_template does;
    outside any app context (a script, a test), with this app."""
    from contextlib import nullcontext

    from flask import current_app, has_app_context, has_request_context, render_template, url_for

    from portal.mail import compose

    class AppRenderer:
        def template(self, name: str, **context) -> str:
            with nullcontext() if has_app_context() else app.app_context():
                return render_template(name, **context)

        def external_url(self, endpoint: str, **values) -> str:
            with nullcontext() if has_request_context() else app.test_request_context():
                base = current_app.config["EXTERNAL_BASE_URL"].rstrip("/")  # never the Host
                return base + url_for(endpoint, **values)

    compose.use_renderer(AppRenderer())


def _init_sqlite(app: Flask) -> None:
    """SQLite: enforce foreign keys, write-ahead logging, and wait for the writer instead of
    failing.

    WAL (a property of the file, set by the first connection): readers never wait for the
    writer nor the writer for readers, so a commit doesn't wait for every page being read
    (or a CSV streamed) to finish, and readers don't queue behind a commit. One writer at a
    time still: the others wait up to SQLITE_BUSY_TIMEOUT_MS for the write lock (the
    services hold it briefly: nothing slow happens inside a write transaction).
    `secure_delete` overwrites deleted and redacted values in the file; in WAL mode their old
    pages can also sit in the -wal file until a checkpoint, so a redaction or erasure asks
    for one after its commit (portal/transactions.py: scrub_after_commit)."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    from sqlalchemy import event

    from portal import transactions

    busy_timeout = int(app.config["SQLITE_BUSY_TIMEOUT_MS"])
    with app.app_context():
        engine = db.engine

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout}")
            # Deleted and redacted data is overwritten in the file, not left in free pages.
            cursor.execute("PRAGMA secure_delete=ON")
            # An in-memory database answers "memory": it has no other connection anyway.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

    transactions.install_sqlite_hooks()


def _register_errors(app: Flask) -> None:
    """The error pages, and for the JSON API (/api/...) problem+json answers instead: the API
    never answers an HTML page (portal/blueprints/api/problems.py)."""
    from werkzeug.exceptions import HTTPException

    from portal.blueprints.api import problems
    from portal.rendering import is_partial, refused

    def page(status: int, title: str, message: str):
        """The error page; for a partial htmx request, the message in place (refused)."""
        if problems.is_api_request():
            return problems.problem(status, message)
        return refused(status, title, message)

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        """Those without a page of their own (400, 401, 413, 429, ...): Werkzeug's page,
        except on the API."""
        if problems.is_api_request():
            return problems.from_http_exception(e)
        if is_partial() and e.code and e.code >= 400:  # never a page swapped into a section
            return refused(e.code, e.name, e.description or e.name)
        return e

    @app.errorhandler(404)
    def not_found(e):
        if problems.is_api_request():
            return problems.from_http_exception(e)
        return page(404, "Page not found", "There is nothing here, or you don't have access.")

    @app.errorhandler(403)
    def forbidden(_e):
        return page(403, "Not allowed", "Your role on this account doesn't allow that.")

    @app.errorhandler(405)
    def method_not_allowed(e):
        if problems.is_api_request():
            return problems.from_http_exception(e)
        return page(405, "Not allowed", "That action isn't available here.")

    @app.errorhandler(CSRFError)
    def csrf_failed(_e):
        return page(400, "Your session expired",
                    "The form was out of date. Go back, reload the page and try again.")

    @app.errorhandler(DomainError)
    def domain_error(e: DomainError):
        db.session.rollback()
        titles = {404: "Page not found", 403: "Not allowed", 410: "Account closed",
                  429: "Too many attempts"}
        message = e.message
        if problems.is_api_request():
            retry_after = getattr(e, "retry_after", None)
            return problems.problem(e.status, message, getattr(e, "errors", None),
                                    headers={"Retry-After": str(retry_after)}
                                    if retry_after else None)
        if e.status == 404:
            message = "There is nothing here, or you don't have access."
        return page(e.status, titles.get(e.status, "That didn't work"), message)

    # The 500 handler below logs an unhandled error once, traceback included; Flask's own
    # "Exception on <path>" line just before it would be a second line for the same event.
    app.log_exception = lambda exc_info: None

    @app.errorhandler(500)
    def server_error(e):
        db.session.rollback()
        logging.getLogger("portal").error("unhandled error on %s", request.path,
                                          exc_info=getattr(e, "original_exception", e))
        if problems.is_api_request():
            return problems.problem(500, problems.DETAILS[500])
        return page(500, "Something went wrong",
                    "We couldn't finish that. Nothing was changed; please try again.")


def _register_template_helpers(app: Flask) -> None:
    from flask_login import current_user

    from portal import rules

    app.jinja_env.globals["rules"] = rules  # a global: macros and includes see it too
    # Globals too, so a block rendered alone or a macro needs no import: whether this answer
    # is a fragment (a dialog is open unless it is), and the form's hidden CSRF field.
    from portal.rendering import is_partial

    app.add_template_global(is_partial, "is_partial")
    app.add_template_global(_csrf_input, "csrf_input")
    # What the user's role opens (portal/roles.py): links and buttons shown only then.
    from portal import tenancy

    app.add_template_global(tenancy.may, "may")
    app.add_template_filter(tenancy.allowed_links, "allowed_links")

    # The chrome's links (menu, header, switcher: about 25 per page) are the same for every
    # page of an account: built once per app, account and script root, then looked up.
    from functools import lru_cache

    from flask import url_for

    @lru_cache(maxsize=4096)
    def _chrome_url(script_root: str, account_id, endpoint: str, values: tuple) -> str:
        return url_for(endpoint, **dict(values))

    def chrome_url(endpoint: str, **values) -> str:
        """url_for for the chrome's fixed links (no request-dependent values): the same
        answer, cached. The current account is part of the key, since an account page's
        url_defaults fill in its id."""
        account = g.get("account")
        return _chrome_url(request.script_root, account.id if account is not None else None,
                           endpoint, tuple(sorted(values.items())))

    app.add_template_global(chrome_url, "chrome_url")

    @app.context_processor
    def _chrome():
        return {
            "account": g.get("account"),
            "access": g.get("access"),
            # the user itself, not the proxy: templates read it many times per page
            "current_user": current_user._get_current_object(),
        }

    @app.template_filter("utc")
    def _utc(value, fmt: str = "%Y-%m-%d %H:%M UTC"):
        return value.strftime(fmt) if value else ""

    @app.template_filter("duration")
    def _duration(seconds: int) -> str:
        minutes, secs = divmod(int(seconds or 0), 60)
        return f"{minutes}:{secs:02d}"

    from portal.services.money import dollars, plain

    app.add_template_filter(dollars, "money")
    from portal.versioning import field_label, value_label

    app.add_template_global(field_label, "field_label")
    app.add_template_global(value_label, "value_label")
    app.add_template_filter(plain, "plain_money")


def _csrf_input():
    """The hidden CSRF field every form posts: {{ csrf_input() }}."""
    from flask_wtf.csrf import generate_csrf
    from markupsafe import Markup

    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(generate_csrf())


def _register_commands(app: Flask) -> None:
    from portal.cli import register

    register(app)
