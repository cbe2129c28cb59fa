"""The link's token: an itsdangerous signature over a random link id, with its own salt.

Keys come as a list (BILLING_LINK_SECRET_KEYS, oldest first): the newest signs, every one
verifies, so a key can be rotated without breaking the links already emailed. The expiry is
not in the token's signature check alone: the stored request's expires_at decides (so an
expiry can't be extended by re-signing), and the signature's own age is checked too.
"""

from datetime import timedelta

from portal import signed_links

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


def sign(keys: list[str], link_id: str) -> str:
    return signed_links.sign(keys, SALT, link_id)


def verify(keys: list[str], token: str, max_age: timedelta) -> str:
    """The link id, or LinkTampered / LinkExpired."""
    return signed_links.verify(keys, SALT, token, max_age,
                               expired=LinkExpired, tampered=LinkTampered)


# --------------------------------------------------------------- the receipt's link

RECEIPT_SALT = "billing-link-receipt.v1"


def sign_receipt(keys: list[str], link_id: str, charge_id: int) -> str:
    """The token of a payment's thank-you page and receipt: the link id and the charge, under
    their own salt (a link token is no receipt token, nor the reverse). It outlives the link:
    the customer reads the receipt after the link is used; how long is decided from the
    charge's date (billing_links.service.paid), not from the token."""
    return signed_links.sign_pair(keys, RECEIPT_SALT, link_id, charge_id)


def verify_receipt(keys: list[str], token: str) -> tuple[str, int]:
    """(link id, charge id), or LinkTampered."""
    return signed_links.verify_pair(keys, RECEIPT_SALT, token, tampered=LinkTampered)
