"""Secrets the app must read back (the two-factor TOTP keys) are kept sealed in the database:
Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under keys that are not in it.

Keys come from TOTP_ENCRYPTION_KEYS (comma-separated, oldest first: the newest seals, all
open, so a key can rotate), or are derived from SECRET_KEY (never from its public default:
portal/keys.py). create_app configures them."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

_box: MultiFernet | None = None


class Unreadable(Exception):
    """Sealed under a key the app no longer has (or not sealed at all)."""


def _fernet_key(secret: str) -> bytes:
    # Any string becomes a Fernet key: 32 bytes from SHA-256, url-safe base64.
    return base64.urlsafe_b64encode(hashlib.sha256(b"portal-sealing:" + secret.encode())
                                    .digest())


def configure(keys: list[str]) -> None:
    global _box
    if not keys:
        raise ValueError("sealing needs at least one key")
    # MultiFernet seals with the first key given: the newest, which is the last configured.
    _box = MultiFernet([Fernet(_fernet_key(k)) for k in reversed(keys)])


def seal(text: str) -> str:
    if _box is None:
        raise RuntimeError("portal.sealing is not configured (create_app does it)")
    return _box.encrypt(text.encode()).decode()


def unseal(token: str) -> str:
    if _box is None:
        raise RuntimeError("portal.sealing is not configured (create_app does it)")
    try:
        return _box.decrypt(token.encode()).decode()
    except (InvalidToken, ValueError) as e:
        raise Unreadable("a sealed value could not be opened with the configured keys") from e
