"""The link's token: an itsdangerous signature over a random link id, with its own salt.

Keys come as a list (BILLING_LINK_SECRET_KEYS, oldest first): the newest signs, every one
verifies, so a key can be rotated without breaking the links already emailed. The expiry is
not in the token's signature check alone: the stored request's expires_at decides (so an
expiry can't be extended by re-signing), and the signature's own age is checked too.
"""

import secrets
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALT = "billing-link.v1"


class LinkError(Exception):
    """A link that can't be used; `reason` says which page to show."""

    reason = "invalid"

    def __init__(self, message: str = ""):
        super().__init__(message or self.reason)


class LinkTampered(LinkError):
    reason = "tampered"


class LinkExpired(LinkError):
    reason = "expired"


def new_link_id() -> str:
    return secrets.token_hex(16)


def _serializer(keys: list[str]) -> URLSafeTimedSerializer:
    if not keys or not all(keys):
        raise ValueError("billing link secret keys are required")
    return URLSafeTimedSerializer(list(keys), salt=SALT)


def sign(keys: list[str], link_id: str) -> str:
    return _serializer(keys).dumps(link_id)


def verify(keys: list[str], token: str, max_age: timedelta) -> str:
    """The link id, or LinkTampered / LinkExpired."""
    try:
        link_id = _serializer(keys).loads(token, max_age=int(max_age.total_seconds()))
    except SignatureExpired:
        raise LinkExpired() from None
    except BadSignature:
        raise LinkTampered() from None
    if not isinstance(link_id, str) or len(link_id) != 32:
        raise LinkTampered()
    return link_id
