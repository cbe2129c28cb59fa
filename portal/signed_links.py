"""Signed one-time links: what billing links, single-task links and invitations share.

A link names only a random id (new_link_id), signed with itsdangerous under the link kind's
own salt, so one kind's token is tampered as another's. The row behind the id holds
everything else and says whether the link is still usable (one-time: consumed in the
transaction that does its task). `keys` is the rotation list, oldest first; the last one
signs. A pair token (link id, the card or charge it made) names the page after the task
and a payment's receipt; it has no age of its own (the caller decides from the row).

Each kind passes its own exceptions, so its callers catch its errors. No Flask here.
"""

import secrets
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

ID_LENGTH = 32


def new_link_id() -> str:
    return secrets.token_hex(ID_LENGTH // 2)


def _keys(keys: list[str]) -> list[str]:
    if not keys or not all(keys):
        raise ValueError("link secret keys are required")
    return list(keys)


def sign(keys: list[str], salt: str, link_id: str) -> str:
    return URLSafeTimedSerializer(_keys(keys), salt=salt).dumps(link_id)


def verify(keys: list[str], salt: str, token: str, max_age: timedelta, *,
           expired: type[Exception], tampered: type[Exception]) -> str:
    """The link id, or `expired()` / `tampered()` raised."""
    try:
        link_id = URLSafeTimedSerializer(_keys(keys), salt=salt).loads(
            token, max_age=int(max_age.total_seconds()))
    except SignatureExpired:
        raise expired() from None
    except BadSignature:
        raise tampered() from None
    if not isinstance(link_id, str) or len(link_id) != ID_LENGTH:
        raise tampered()
    return link_id


def sign_pair(keys: list[str], salt: str, link_id: str, ref_id: int) -> str:
    return URLSafeSerializer(_keys(keys), salt=salt).dumps([link_id, ref_id])


def verify_pair(keys: list[str], salt: str, token: str, *,
                tampered: type[Exception]) -> tuple[str, int]:
    """(link id, ref id), or `tampered()` raised."""
    try:
        value = URLSafeSerializer(_keys(keys), salt=salt).loads(token)
    except BadSignature:
        raise tampered() from None
    if (not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], str)
            or len(value[0]) != ID_LENGTH or not isinstance(value[1], int)
            or isinstance(value[1], bool)):
        raise tampered()
    return value[0], value[1]
