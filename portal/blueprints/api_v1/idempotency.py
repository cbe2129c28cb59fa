"""Idempotency-Key on writes (to be written: issue 18 K). before(key) returns the stored
first answer (a replay), a problem (the key reused with another body: 422; the first
request still running: 409), or None; after(response) stores the first answer."""


def before(key):
    return None


def after(response):
    return response
