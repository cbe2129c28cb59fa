"""Rate limits per API key and UTC minute (fixed windows in api_rate_windows).

Every authenticated /api/v1 request adds one to its key's count for the current minute, in
one statement that also reads the new count back (an INSERT ... ON CONFLICT DO UPDATE ...
RETURNING, the same on SQLite and PostgreSQL: two requests at once never both insert nor
lose a count), committed before the view runs. Past the limit the answer is a 429 problem
with Retry-After (the seconds to the next minute); every answer, the 429 too, carries

    RateLimit-Limit: 600          requests a minute for this key (and bucket)
    RateLimit-Remaining: 599      left in this minute
    RateLimit-Reset: 42           seconds until the count starts again

Usage (the views marked @auth.requires("metering")) counts in a bucket of its own, with the
larger API_METERING_RATE_LIMIT_PER_MINUTE: a metering sender does not starve the reads.
The limits are portal/rules.py's, or the app config's keys of the same names. Windows over
an hour old are removed by the jobs (step api-purge)."""

from datetime import datetime, timedelta

from flask import current_app, g, request
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from portal import rules
from portal.blueprints.api import problems
from portal.clock import now as clock_now
from portal.extensions import db
from portal.models import ApiKey, ApiRateWindow

API, METERING = "api", "metering"
KEEP = timedelta(hours=1)


def limit_for(bucket: str) -> int:
    name = ("API_METERING_RATE_LIMIT_PER_MINUTE" if bucket == METERING
            else "API_RATE_LIMIT_PER_MINUTE")
    return int(current_app.config.get(name, getattr(rules, name)))


def bucket_of_request() -> str:
    view = current_app.view_functions.get(request.endpoint or "")
    return METERING if getattr(view, "api_scope", None) == METERING else API


def count(session: Session, key_id: int, bucket: str, window_start: datetime) -> int:
    """Add one to the key's count for this window and return the new count."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (insert(ApiRateWindow)
                 .values(api_key_id=key_id, bucket=bucket, window_start=window_start, count=1)
                 .on_conflict_do_update(
                     index_elements=["api_key_id", "bucket", "window_start"],
                     set_={"count": ApiRateWindow.count + 1})
                 .returning(ApiRateWindow.count))
    return int(session.execute(statement).scalar_one())


def check(key: ApiKey):
    """Count this request; a 429 problem past the limit, else None."""
    now = clock_now()
    window_start = now.replace(second=0, microsecond=0)
    bucket = bucket_of_request()
    limit = limit_for(bucket)
    used = count(db.session, key.id, bucket, window_start)
    db.session.commit()
    reset = max(1, int((window_start + timedelta(minutes=1) - now).total_seconds() + 0.999))
    g.api_rate = (limit, max(0, limit - used), reset)
    if used > limit:
        return problems.problem(
            429, f"This API key made more than {limit:,} requests this minute; "
                 f"try again in {reset} s.", headers={"Retry-After": str(reset)})
    return None


def headers(response):
    rate = g.get("api_rate")
    if rate is not None:
        limit, remaining, reset = rate
        response.headers["RateLimit-Limit"] = str(limit)
        response.headers["RateLimit-Remaining"] = str(remaining)
        response.headers["RateLimit-Reset"] = str(reset)
    return response


def purge(session: Session, now: datetime | None = None) -> int:
    """Remove the windows over an hour old (jobs: api-purge); returns how many."""
    cutoff = (now or clock_now()) - KEEP
    removed = session.execute(delete(ApiRateWindow).where(ApiRateWindow.window_start < cutoff))
    return removed.rowcount or 0
