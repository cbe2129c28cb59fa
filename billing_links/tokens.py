"""The link's token: an itsdangerous signature over a random link id, with its own salt.

Keys come as a list (BILLING_LINK_SECRET_KEYS, oldest first): the newest signs, every one
verifies, so a key can be rotated without breaking the links already emailed. The expiry is
not in the token's signature check alone: the stored request's expires_at decides (so an
expiry can't be extended by re-signing), and the signature's own age is checked too.
"""

import secrets
from datetime import timedelta

from itsdangerous import (
    BadSignature,
    SignatureExpired,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)

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


# --------------------------------------------------------------- the receipt's link

RECEIPT_SALT = "billing-link-receipt.v1"


def sign_receipt(keys: list[str], link_id: str, charge_id: int) -> str:
    """The token of a payment's thank-you page and receipt: the link id and the charge, under
    their own salt (a link token is no receipt token, nor the reverse). It outlives the link:
    the customer reads the receipt after the link is used; how long is decided from the
    charge's date (billing_links.service.paid), not from the token."""
    if not keys or not all(keys):
        raise ValueError("billing link secret keys are required")
    return URLSafeSerializer(list(keys), salt=RECEIPT_SALT).dumps([link_id, charge_id])


def verify_receipt(keys: list[str], token: str) -> tuple[str, int]:
    """(link id, charge id), or LinkTampered."""
    try:
        value = URLSafeSerializer(list(keys), salt=RECEIPT_SALT).loads(token)
    except BadSignature:
        raise LinkTampered() from None
    if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], str)
            or len(value[0]) != 32 or not isinstance(value[1], int)
            or isinstance(value[1], bool)):
        raise LinkTampered()
    return value[0], value[1]
