"""Configuration read from the environment (microblog's Config pattern)."""

import os
from pathlib import Path

from portal import rules

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"
# The fallback SECRET_KEY is public: create_app refuses it outside debug and testing
# (portal/keys.py). `make run` writes a random key to SECRET_KEY_FILE (instance/secret_key
# unless the environment names another file), read when SECRET_KEY is not set.
DEV_SECRET_KEY = "dev-only-not-secret"
SECRET_KEY_FILE = Path(os.environ.get("SECRET_KEY_FILE") or INSTANCE_DIR / "secret_key")


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{INSTANCE_DIR / 'portal.sqlite3'}"
    # Heroku-style URLs name the old driver; we use psycopg 3.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def secret_key(environ=os.environ, path: Path = SECRET_KEY_FILE) -> str:
    """SECRET_KEY from the environment, else the key file `make run` writes, else the public
    development default (which only debug and tests accept)."""
    value = environ.get("SECRET_KEY", "").strip()
    if value:
        return value
    try:
        return path.read_text().strip() or DEV_SECRET_KEY
    except FileNotFoundError:
        return DEV_SECRET_KEY


PASSWORD_HASH_STRONG = "scrypt:32768:8:1"

# PAYMENT_GATEWAY's short names.
GATEWAYS = {
    "sandbox": "portal.services.gateway:SandboxGateway",
    "stripe": "portal.services.stripe_gateway:StripeGateway",
}


def gateway_path(value: str) -> str:
    """PAYMENT_GATEWAY as "module:Class": a short name ("stripe") or the path itself."""
    value = value.strip()
    return GATEWAYS.get(value.lower(), value) if value else GATEWAYS["sandbox"]


class Config:
    SECRET_KEY = secret_key()
    SQLALCHEMY_DATABASE_URI = _database_url()
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}

    # Cookies: HttpOnly always, SameSite=Lax, Secure when served over HTTPS
    # (set SESSION_COOKIE_SECURE=1 in production; the local run is plain http).
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE

    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    WTF_CSRF_HEADERS = ["X-CSRFToken"]

    # Reverse proxies in front of the app whose X-Forwarded-For to trust (sign-in throttling
    # counts per client address, so this must match the deployment).
    TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", "0"))

    # The payment gateway class, "module:Class" (the built-in sandbox by default), or one
    # of the names in GATEWAYS ("sandbox", "stripe").
    PAYMENT_GATEWAY = gateway_path(os.environ.get("PAYMENT_GATEWAY", "sandbox"))

    # Stripe (PAYMENT_GATEWAY=stripe; the app refuses to start without the first three):
    # the secret and publishable API keys, and the webhook endpoint's signing secret
    # (whsec_…; comma-separated during a rotation: each is tried). The API's address (the
    # tests point it at their local fake), the read timeout in seconds (past it a charge is
    # left pending and retried with the same key), the SDK's own retries of a network error,
    # and the Stripe.js URL the card-entry pages load.
    STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
    STRIPE_PUBLISHABLE_KEY = os.environ.get("STRIPE_PUBLISHABLE_KEY", "")
    STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
    STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "https://api.stripe.com")
    STRIPE_TIMEOUT_SECONDS = float(os.environ.get("STRIPE_TIMEOUT_SECONDS", "20"))
    STRIPE_MAX_NETWORK_RETRIES = int(os.environ.get("STRIPE_MAX_NETWORK_RETRIES", "2"))
    STRIPE_JS_URL = os.environ.get("STRIPE_JS_URL", "https://js.stripe.com/v3/")

    # The metering system posts usage with "Authorization: Bearer <token>"; unset, the
    # usage endpoint answers 503 (the `flask usage post` command works regardless).
    USAGE_API_TOKEN = os.environ.get("USAGE_API_TOKEN", "")
    # The dev outbox page (/dev/outbox) shows every queued email to anyone who can reach the
    # app: for local runs only (`make run` turns it on), never in production.
    DEV_OUTBOX = _bool("DEV_OUTBOX", False)

    # Billing links: the URL the emails point at (never the request's Host header), the
    # keys that sign them (comma-separated, oldest first: the last signs, all verify, so a
    # key can rotate without breaking links already sent; unset: derived from SECRET_KEY,
    # never from its public default, portal/keys.py) and how long they work.
    EXTERNAL_BASE_URL = os.environ.get("EXTERNAL_BASE_URL", "http://127.0.0.1:8000")
    BILLING_LINK_SECRET_KEYS = [k.strip() for k in
                                os.environ.get("BILLING_LINK_SECRET_KEYS", "").split(",")
                                if k.strip()]
    # Two-factor TOTP keys are sealed in the database under these (comma-separated, oldest
    # first; unset: derived from SECRET_KEY, never from its public default: portal/keys.py).
    # See portal/sealing.py.
    TOTP_ENCRYPTION_KEYS = [k.strip() for k in
                            os.environ.get("TOTP_ENCRYPTION_KEYS", "").split(",") if k.strip()]
    BILLING_LINK_TTL_DAYS = int(os.environ.get("BILLING_LINK_TTL_DAYS",
                                               str(rules.BILLING_LINK_TTL.days)))
    # The public link pages: at most this many requests per client address per window.
    BILLING_LINK_RATE_LIMIT = int(os.environ.get("BILLING_LINK_RATE_LIMIT", "30"))
    # The sandbox's public POST /payment_methods, per address per 10 minutes (issue 16)
    SANDBOX_RATE_LIMIT = int(os.environ.get("SANDBOX_RATE_LIMIT", "30"))
    BILLING_LINK_RATE_WINDOW_MINUTES = 10

    # SMTP delivery of the outbox (unset MAIL_SERVER: no delivery, the dev outbox shows it).
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "")
    MAIL_PORT = int(os.environ.get("MAIL_PORT", "25"))
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME", "")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD", "")
    MAIL_USE_TLS = _bool("MAIL_USE_TLS", False)
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER",
                                         "Account Portal <billing@portal.invalid>")

    # SQLite (the embedded default): how long a writer waits for the write lock, in ms, before
    # "database is locked" (one writer at a time; every write transaction is short).
    SQLITE_BUSY_TIMEOUT_MS = int(os.environ.get("SQLITE_BUSY_TIMEOUT_MS", "30000"))

    # Logging (portal/logconfig.py): DEBUG, INFO, WARNING, ERROR or CRITICAL.
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")

    ACCOUNTS_PER_PAGE = 25
    PAYMENTS_PER_PAGE = 20
    BILLING_LOGS_PER_PAGE = 50
    CALLS_PER_PAGE = 50
    VERSIONS_PER_PAGE = 50
    # No form or API body here comes near this: larger requests are refused (413) unread.
    MAX_CONTENT_LENGTH = 2 * 1024 * 1024
    # Signed out after this long without a request (rules.SESSION_IDLE_TIMEOUT).
    SESSION_IDLE_TIMEOUT = rules.SESSION_IDLE_TIMEOUT

    # Passwords are hashed with scrypt at this cost (Werkzeug's "scrypt:N:r:p"; N=2**15,
    # r=8, p=1 is its default: slow on purpose). Checking reads the cost from the
    # stored hash, so a later change here applies to new passwords only.
    PASSWORD_HASH_METHOD = PASSWORD_HASH_STRONG


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "testing"
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    DEV_OUTBOX = True
    USAGE_API_TOKEN = "test-usage-token"
    # scrypt at a tiny cost (still scrypt, still salted): the suite hashes and checks
    # hundreds of passwords, and what it tests is who may sign in, not the hash's cost.
    PASSWORD_HASH_METHOD = "scrypt:128:8:1"
