"""Secret keys (portal/keys.py): no start outside debug/testing on the public default or a
short SECRET_KEY, the local run's key file, and the billing-link and two-factor sealing keys
never derived from the public default."""

import logging
import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

import billing_links
import portal.models  # noqa: F401  (first: billing_links.models needs portal.models loaded)
from billing_links import tokens
from portal import create_app, keys, sealing, signed_links
from portal.config import DEV_SECRET_KEY, secret_key
from portal.extensions import db

ROOT = Path(__file__).resolve().parents[2]
GOOD = "k" * 40  # long enough (a real one is random: secrets.token_urlsafe(48))
HOW_TO = "python3 -c \"import secrets; print(secrets.token_urlsafe(48))\""


@pytest.fixture
def build(database_url):
    """build(**config): create_app outside testing (unless told), engines disposed after."""
    apps = []

    def _build(**config):
        config.setdefault("SQLALCHEMY_DATABASE_URI", database_url)
        app = create_app(config)
        apps.append(app)
        return app

    yield _build
    for app in apps:
        with app.app_context():
            db.engine.dispose()
    sealing.configure(["test-secret"])  # as the test apps leave it


@pytest.mark.parametrize("key,why", [
    (DEV_SECRET_KEY, f"SECRET_KEY is the public development default ('{DEV_SECRET_KEY}'): "
                     "anyone could sign a session cookie for any user with it."),
    ("short-but-not-default", "SECRET_KEY is 21 characters long; it must be at least 32."),
    ("x" * 31, "SECRET_KEY is 31 characters long; it must be at least 32."),
    ("", "SECRET_KEY is not set."),
])
def test_the_app_refuses_to_start_with_a_public_or_short_key(build, key, why):
    with pytest.raises(keys.WeakSecretKey) as refused:
        build(SECRET_KEY=key)
    message = str(refused.value)
    assert message.startswith("The portal refuses to start: " + why)
    assert HOW_TO in message  # and says how to make a good one
    assert "make run" in message


def test_a_long_key_starts_and_the_other_keys_derive_from_it(build):
    app = build(SECRET_KEY=GOOD, BILLING_LINK_SECRET_KEYS=[], TOTP_ENCRYPTION_KEYS=[])
    assert not (app.testing or app.debug)
    assert app.config["BILLING_LINK_SECRET_KEYS"] == [GOOD]
    assert app.config["TOTP_ENCRYPTION_KEYS"] == [GOOD]
    assert billing_links.settings(app).keys == [GOOD]


@pytest.mark.parametrize("name", ["BILLING_LINK_SECRET_KEYS", "TOTP_ENCRYPTION_KEYS"])
@pytest.mark.parametrize("bad,why", [
    ("too-short", "is 9 characters long; it must be at least 32."),
    (DEV_SECRET_KEY, "is the public development default"),
])
def test_short_or_public_billing_link_and_sealing_keys_are_refused_too(build, name, bad, why):
    with pytest.raises(keys.WeakSecretKey) as refused:
        build(SECRET_KEY=GOOD, **{name: ["o" * 40, bad]})  # an old key in the rotation too
    assert f"A key in {name} {why}" in str(refused.value)
    app = build(SECRET_KEY=GOOD, **{name: ["o" * 40, "n" * 40]})
    assert app.config[name] == ["o" * 40, "n" * 40]


def test_testing_and_debug_start_on_the_public_default(build, monkeypatch):
    assert build(SECRET_KEY=DEV_SECRET_KEY, TESTING=True).testing
    assert build(SECRET_KEY=DEV_SECRET_KEY, DEBUG=True).debug
    monkeypatch.setenv("FLASK_DEBUG", "1")  # `flask run --debug` sets it before the app
    assert build(SECRET_KEY=DEV_SECRET_KEY).debug
    monkeypatch.delenv("FLASK_DEBUG")
    with pytest.raises(keys.WeakSecretKey):
        build(SECRET_KEY=DEV_SECRET_KEY)


def test_on_the_public_default_links_and_sealing_never_use_it(build, caplog):
    """Debug/testing on the default key: the billing links' and the sealing's keys are random
    for the process, so a link signed, or a TOTP key sealed, with the public default (which
    anyone can do) is not accepted."""
    caplog.set_level(logging.WARNING)
    app = build(SECRET_KEY=DEV_SECRET_KEY, TESTING=True, BILLING_LINK_SECRET_KEYS=[],
                TOTP_ENCRYPTION_KEYS=[])
    link_keys = app.config["BILLING_LINK_SECRET_KEYS"]
    seal_keys = app.config["TOTP_ENCRYPTION_KEYS"]
    assert DEV_SECRET_KEY not in link_keys + seal_keys
    assert len(link_keys) == 1 and len(link_keys[0]) >= keys.MIN_LENGTH
    assert link_keys != seal_keys
    assert "SECRET_KEY is the public development default" in caplog.text
    assert "BILLING_LINK_SECRET_KEYS is a random key" in caplog.text
    assert "TOTP_ENCRYPTION_KEYS is a random key" in caplog.text

    forged = tokens.sign([DEV_SECRET_KEY], signed_links.new_link_id())
    with pytest.raises(tokens.LinkTampered):
        tokens.verify(billing_links.settings(app).keys, forged, max_age=timedelta(days=7))
    sealed_with_default = Fernet(sealing._fernet_key(DEV_SECRET_KEY)).encrypt(b"JBSWY3DP")
    with pytest.raises(sealing.Unreadable):
        sealing.unseal(sealed_with_default.decode())
    # and what the app seals, the public default doesn't open
    with pytest.raises(InvalidToken):
        Fernet(sealing._fernet_key(DEV_SECRET_KEY)).decrypt(sealing.seal("JBSWY3DP").encode())

    again = build(SECRET_KEY=DEV_SECRET_KEY, TESTING=True, BILLING_LINK_SECRET_KEYS=[],
                  TOTP_ENCRYPTION_KEYS=[])
    assert again.config["BILLING_LINK_SECRET_KEYS"] != link_keys  # random per process start


def test_the_test_suites_key_is_used_as_given(app):
    """tests/conftest.py sets its own key: the suite runs as TESTING on it."""
    assert app.testing and app.config["SECRET_KEY"] == "test-secret"
    assert app.config["BILLING_LINK_SECRET_KEYS"] == ["test-secret"]


# --- where SECRET_KEY comes from ------------------------------------------------------------

def test_secret_key_from_the_environment_then_the_key_file_then_the_default(tmp_path):
    path = tmp_path / "secret_key"
    assert secret_key({}, path) == DEV_SECRET_KEY
    path.write_text("from-the-file" * 4 + "\n")
    assert secret_key({}, path) == "from-the-file" * 4
    assert secret_key({"SECRET_KEY": ""}, path) == "from-the-file" * 4  # empty is unset
    assert secret_key({"SECRET_KEY": GOOD}, path) == GOOD
    path.write_text("\n")
    assert secret_key({}, path) == DEV_SECRET_KEY


def test_write_secret_key_makes_one_private_random_key_once(tmp_path):
    path = tmp_path / "instance" / "secret_key"
    assert keys.write_secret_key(path) is True
    first = path.read_text()
    assert len(first.strip()) >= 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.write_secret_key(path) is False  # kept: sessions survive a restart
    assert path.read_text() == first
    other = tmp_path / "other"
    keys.write_secret_key(other)
    assert other.read_text() != first


def _python(code_or_module: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *code_or_module], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_local_run_generates_a_key_and_starts_on_it(tmp_path):
    """What `make run` does, in separate processes as there: `python -m portal.keys`, then
    the app (wsgi.py's create_app()) with no SECRET_KEY in the environment."""
    key_file = tmp_path / "secret_key"
    env = {k: v for k, v in os.environ.items()
           if k not in ("SECRET_KEY", "FLASK_DEBUG", "BILLING_LINK_SECRET_KEYS",
                        "TOTP_ENCRYPTION_KEYS")}
    env.update(SECRET_KEY_FILE=str(key_file),
               DATABASE_URL=f"sqlite:///{tmp_path / 'portal.sqlite3'}")
    start = ["-c", "from portal import create_app; app = create_app(); "
                   "print(app.config['SECRET_KEY'] == open(" + repr(str(key_file)) +
                   ").read().strip())"]

    refused = _python(start, env)  # no key file yet: the public default
    assert refused.returncode != 0
    assert "The portal refuses to start: SECRET_KEY is the public development default" in (
        refused.stderr)

    made = _python(["-m", "portal.keys"], env)
    assert made.returncode == 0, made.stderr
    assert f"Wrote a new random SECRET_KEY to {key_file}" in made.stdout
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    started = _python(start, env)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "True"
    again = _python(["-m", "portal.keys"], env)
    assert again.stdout == ""  # the key is made once


def test_the_makefile_run_target_makes_the_key_before_starting(tmp_path):
    recipe = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60).stdout
    lines = recipe.splitlines()
    make_key = next(i for i, line in enumerate(lines) if "-m portal.keys" in line)
    upgrade = next(i for i, line in enumerate(lines) if "db upgrade" in line)
    assert make_key < upgrade
