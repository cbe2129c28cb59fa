"""Idempotency-Key on writes: a client that retries a POST (a timeout, a dropped connection)
sends the same `Idempotency-Key` header and gets the first answer again instead of a second
payment, link or pause.

For a request other than GET/HEAD/OPTIONS that carries the header (1-255 visible ASCII
characters, no spaces, else 422):

- its fingerprint is a SHA-256 of the method, the path with its query, the body's media
  type and the body;
- the first request with a key (per API key) inserts an api_idempotency row with status 0
  in a transaction of its own, committed before the view runs (the unique (api_key_id, key)
  makes a second request at once lose the insert and read the row back), then runs the
  view; after() stores the answer's status, content type, body and a few headers (also a
  4xx: the same request would fail the same way). A 5xx is not stored: the row is removed
  so that a retry runs again. An answer marked `Cache-Control: no-store` (one holding a
  payment's client secret for the card's bank check) is kept sealed (portal/sealing.py: a
  key that is not in the database) and opened only to replay it;
- a later request with the same key and fingerprint gets the stored answer, with
  `Idempotent-Replayed: true`; with another fingerprint, a 422 problem (errors
  {"Idempotency-Key": ...}); while the first is still running (status 0), a 409 problem.

Rows are kept API_IDEMPOTENCY_TTL (24 h), then removed by the jobs (step api-purge), after
which the key may be used again."""

import hashlib
import json
from datetime import datetime

from flask import current_app, g, request
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal import rules, sealing
from portal.blueprints.api import problems
from portal.clock import now as clock_now
from portal.extensions import db
from portal.models import ApiIdempotency, ApiKey

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_LENGTH = 255
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# The headers of the first answer that a replay repeats (the rest are made anew: the
# request id, the rate limit, the security headers).
KEPT_HEADERS = ("Location", "Content-Disposition", "Link", "Cache-Control")
SEALED = b"sealed:"  # a no-store answer's body, sealed
DESCRIPTION = (
    "Any unique string (1–255 visible ASCII characters, no spaces; a UUID is a good "
    "choice). A retry "
    "with the same key and the same method, path and body gets the first answer again "
    "(with `Idempotent-Replayed: true`) instead of doing the write twice; the same key with "
    "another request is 422; while the first is still running, 409. Keys are remembered "
    "for 24 hours per API key.")


def valid(value: str) -> bool:
    return 1 <= len(value) <= MAX_LENGTH and all("!" <= ch <= "~" for ch in value)


def fingerprint() -> str:
    digest = hashlib.sha256()
    path = request.path
    query = request.query_string.decode("latin-1")
    for part in (request.method.encode(), (f"{path}?{query}" if query else path).encode(),
                 (request.mimetype or "").encode(), request.get_data(cache=True)):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def before(key: ApiKey):
    """None to run the view (the first request, or none with a key); else the answer."""
    if request.method in SAFE_METHODS:
        return None
    value = request.headers.get(HEADER)
    if value is None:
        return None
    if not valid(value):
        return problems.problem(422, "Idempotency-Key must be 1–255 visible ASCII "
                                     "characters, no spaces.",
                                {HEADER: "1–255 visible ASCII characters, no spaces, such "
                                         "as a UUID."})
    print_ = fingerprint()
    row = ApiIdempotency(api_key_id=key.id, key=value, fingerprint=print_, status=0,
                         created_at=clock_now())
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
    else:
        g.api_idempotency_id = row.id
        return None
    stored = db.session.scalar(select(ApiIdempotency).where(
        ApiIdempotency.api_key_id == key.id, ApiIdempotency.key == value))
    if stored is None:  # removed between the two (a 5xx, the purge): try once more
        return problems.problem(409, "A request with this Idempotency-Key just failed; "
                                     "send it again.")
    if stored.fingerprint != print_:
        return problems.problem(
            422, "This Idempotency-Key was used for another request (another method, path "
                 "or body); use a new key for a new request.",
            {HEADER: "Already used for another request."})
    if stored.status == 0:
        return problems.problem(409, "The first request with this Idempotency-Key is still "
                                     "running; try again in a moment.")
    return replay(stored)


def replay(stored: ApiIdempotency):
    headers = json.loads(stored.headers or "{}")
    body = stored.body or b""
    if body.startswith(SEALED):
        body = sealing.unseal(body[len(SEALED):].decode()).encode()
    response = current_app.response_class(body, status=stored.status, headers=headers)
    if stored.content_type:
        response.headers["Content-Type"] = stored.content_type
    response.headers[REPLAYED] = "true"
    return response


def after(response):
    """Store the first answer (or, for a 5xx, forget the request)."""
    row_id = g.pop("api_idempotency_id", None)
    if row_id is None:
        return response
    db.session.rollback()  # what the view left uncommitted is dropped at teardown anyway
    if response.status_code >= 500:
        db.session.execute(delete(ApiIdempotency).where(ApiIdempotency.id == row_id))
    else:
        response.direct_passthrough = False
        body = response.get_data()
        if "no-store" in (response.headers.get("Cache-Control") or ""):
            body = SEALED + sealing.seal(body.decode()).encode()
        kept = {name: response.headers[name] for name in KEPT_HEADERS
                if name in response.headers}
        db.session.execute(update(ApiIdempotency).where(ApiIdempotency.id == row_id).values(
            status=response.status_code, content_type=response.content_type or "",
            headers=json.dumps(kept), body=body))
    db.session.commit()
    return response


def forget() -> None:
    row_id = g.pop("api_idempotency_id", None)
    if row_id is None:
        return
    try:
        db.session.rollback()
        db.session.execute(delete(ApiIdempotency).where(ApiIdempotency.id == row_id))
        db.session.commit()
    except Exception:  # the request failed already; the purge removes it in 24 h
        db.session.rollback()
        current_app.logger.exception("Could not remove an unanswered Idempotency-Key row")


def purge(session: Session, now: datetime | None = None) -> int:
    """Remove the answers kept over 24 hours (jobs: api-purge); returns how many."""
    cutoff = (now or clock_now()) - rules.API_IDEMPOTENCY_TTL
    removed = session.execute(delete(ApiIdempotency).where(ApiIdempotency.created_at < cutoff))
    return removed.rowcount or 0
