"""The app's secret keys: refused when weak, and the keys derived from SECRET_KEY.

- SECRET_KEY signs session cookies (who is signed in) and CSRF tokens. The value the code
  falls back on (config.DEV_SECRET_KEY) is public: anyone could sign a session cookie for any
  user with it. Outside debug and testing the app refuses to start with it, or with any key
  shorter than MIN_LENGTH characters. `make run` writes a random key into instance/secret_key
  once (write_secret_key) and config.py reads it when SECRET_KEY is not set.
- BILLING_LINK_SECRET_KEYS (the billing links' signatures) and TOTP_ENCRYPTION_KEYS (the
  sealing of two-factor keys, portal/sealing.py) may be set on their own (comma-separated,
  oldest first), and are held to the same rule. Unset, they are derived from SECRET_KEY (the
  link signer salts it, the sealing hashes it with its own prefix), but never from the public
  default: with it (debug and tests only) they are random for the life of the process, and a
  warning says so.

configure(app) applies all of this; create_app calls it before anything uses a key.
"""

import logging
import os
import secrets
from pathlib import Path

from flask import Flask

from portal.config import DEV_SECRET_KEY, SECRET_KEY_FILE

MIN_LENGTH = 32
DERIVED = ("BILLING_LINK_SECRET_KEYS", "TOTP_ENCRYPTION_KEYS")
HOW_TO = ('Set SECRET_KEY to a long random value, e.g. the output of\n'
          '    python3 -c "import secrets; print(secrets.token_urlsafe(48))"\n'
          '(`make run` writes one into instance/secret_key and uses it).')


class WeakSecretKey(RuntimeError):
    """The app was started outside debug/testing with a public or short key."""


def problem(name: str, key: str | None) -> str | None:
    """Why `key` can't be used as `name` in production, or None when it can."""
    if not key:
        return f"{name} is not set."
    if key == DEV_SECRET_KEY:
        return (f"{name} is the public development default ({DEV_SECRET_KEY!r}): anyone could "
                "sign a session cookie for any user with it.")
    if len(key) < MIN_LENGTH:
        return f"{name} is {len(key)} characters long; it must be at least {MIN_LENGTH}."
    return None


def configure(app: Flask) -> None:
    """Refuse weak keys outside debug and testing; fill in the derived key lists."""
    strict = not (app.testing or app.debug)
    secret_key = app.config.get("SECRET_KEY")
    if strict:
        problems = [problem("SECRET_KEY", secret_key)]
        for name in DERIVED:
            for key in app.config.get(name) or []:
                problems.append(problem(f"A key in {name}", key))
        problems = [p for p in problems if p]
        if problems:
            raise WeakSecretKey("The portal refuses to start: " + " ".join(problems) + "\n"
                                + HOW_TO)
    if not secret_key:
        raise WeakSecretKey("SECRET_KEY is not set. " + HOW_TO)
    for name in DERIVED:
        if app.config.get(name):
            continue
        if secret_key == DEV_SECRET_KEY:
            # Debug or testing on the public default: never derive from it.
            logging.getLogger("portal").warning(
                "SECRET_KEY is the public development default: %s is a random key until the "
                "app stops (set SECRET_KEY, or use `make run`, to keep it).", name)
            app.config[name] = [secrets.token_urlsafe(48)]
        else:
            app.config[name] = [secret_key]


def write_secret_key(path: Path = SECRET_KEY_FILE) -> bool:
    """Write a random key to `path` (readable by its owner only) unless it exists; True when
    written. `make run` calls it, so the local run has a key of its own that survives
    restarts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48) + "\n")
    return True


if __name__ == "__main__":  # python -m portal.keys: what `make run` does
    if write_secret_key():
        print(f"Wrote a new random SECRET_KEY to {SECRET_KEY_FILE}")
