"""The billing link's token (billing_links/tokens.py): an itsdangerous signature, with its own
salt, over a random link id and nothing else; keys rotate (the newest signs, every one
verifies); a changed, foreign or re-salted token is "tampered"; an old signature "expired"."""

import re
from datetime import timedelta

import pytest
from itsdangerous import TimestampSigner, URLSafeSerializer, URLSafeTimedSerializer

from billing_links import tokens
from portal import signed_links

WEEK = timedelta(days=8)  # the link's TTL plus a day, as open_link checks it
LINK_ID = "0123456789abcdef0123456789abcdef"


def payload_of(token: str):
    """The token's signed payload, decoded without checking the signature (so with no key
    of ours): everything the token carries."""
    valid, payload = URLSafeTimedSerializer(["not-the-key"], salt="any").loads_unsafe(token)
    assert not valid
    return payload


def changed(token: str, index: int) -> str:
    other = "B" if token[index] != "B" else "C"
    return token[:index] + other + token[index + 1:]


def test_link_ids_are_random_32_hex_characters():
    ids = {signed_links.new_link_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_the_token_signs_the_link_id_and_nothing_else():
    token = tokens.sign(["key"], LINK_ID)
    assert payload_of(token) == LINK_ID
    assert tokens.verify(["key"], token, WEEK) == LINK_ID
    assert re.fullmatch(r"\.?[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", token)
    # what the app checks it with: its own salt over a timed signature
    assert URLSafeTimedSerializer(["key"], salt="billing-link.v1").loads(token) == LINK_ID


def test_two_signatures_of_one_link_verify_to_the_same_id():
    assert tokens.verify(["k"], tokens.sign(["k"], LINK_ID), WEEK) == LINK_ID
    other = signed_links.new_link_id()
    assert tokens.verify(["k"], tokens.sign(["k"], other), WEEK) == other


def test_the_newest_key_signs_and_every_key_verifies():
    old = tokens.sign(["old"], LINK_ID)
    assert tokens.verify(["old", "new"], old, WEEK) == LINK_ID  # rotated: old links work
    new = tokens.sign(["old", "new"], LINK_ID)
    assert tokens.verify(["new"], new, WEEK) == LINK_ID
    with pytest.raises(tokens.LinkTampered):
        tokens.verify(["old"], new, WEEK)
    with pytest.raises(tokens.LinkTampered):  # the old key retired
        tokens.verify(["new"], old, WEEK)


def test_a_token_signed_with_an_unknown_key_is_tampered():
    with pytest.raises(tokens.LinkTampered) as e:
        tokens.verify(["ours", "our-older"], tokens.sign(["theirs"], LINK_ID), WEEK)
    assert e.value.reason == "tampered"


@pytest.mark.parametrize("salt", ["itsdangerous", "billing-link.v2", "email-confirm", ""])
def test_the_same_key_with_another_salt_is_refused(salt):
    token = URLSafeTimedSerializer(["key"], salt=salt).dumps(LINK_ID)
    with pytest.raises(tokens.LinkTampered):
        tokens.verify(["key"], token, WEEK)


def test_an_untimed_signature_with_the_right_key_and_salt_is_refused():
    token = URLSafeSerializer(["key"], salt=tokens.SALT).dumps(LINK_ID)
    with pytest.raises(tokens.LinkTampered):
        tokens.verify(["key"], token, WEEK)


@pytest.mark.parametrize("index", [0, 5, 20, -12, -3])
def test_a_changed_character_is_tampered(index):
    token = tokens.sign(["key"], LINK_ID)
    with pytest.raises(tokens.LinkTampered):
        tokens.verify(["key"], changed(token, index), WEEK)


@pytest.mark.parametrize("token", ["", ".", "..", "abc", "a.b.c", "x" * 500])
def test_garbage_is_tampered(token):
    with pytest.raises(tokens.LinkTampered):
        tokens.verify(["key"], token, WEEK)


@pytest.mark.parametrize("payload", [
    "short", "0123456789abcdef0123456789abcdef0", 12345, None,
    {"link_id": LINK_ID, "account_id": 7},
    [LINK_ID],
])
def test_a_signed_payload_that_is_not_a_link_id_is_tampered(payload):
    """Even correctly signed (a leaked key), only a 32-character link id is accepted."""
    token = URLSafeTimedSerializer(["key"], salt=tokens.SALT).dumps(payload)
    with pytest.raises(tokens.LinkTampered):
        tokens.verify(["key"], token, WEEK)


def test_a_signature_older_than_the_maximum_age_is_expired(monkeypatch):
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp",
                        lambda self: real(self) - int(timedelta(days=9).total_seconds()))
    token = tokens.sign(["key"], LINK_ID)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    with pytest.raises(tokens.LinkExpired) as e:
        tokens.verify(["key"], token, WEEK)
    assert e.value.reason == "expired"
    assert tokens.verify(["key"], token, timedelta(days=10)) == LINK_ID


def test_keys_are_required():
    for keys in ([], [""], ["k", ""]):
        with pytest.raises(ValueError):
            tokens.sign(keys, LINK_ID)
        with pytest.raises(ValueError):
            tokens.verify(keys, "a.b.c", WEEK)


def test_link_errors_name_their_page():
    assert (tokens.LinkError().reason, tokens.LinkTampered().reason,
            tokens.LinkExpired().reason) == ("invalid", "tampered", "expired")
