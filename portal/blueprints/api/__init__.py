"""The JSON API for the metering system: POST /api/accounts/<id>/usage.

Authenticated with a bearer token (USAGE_API_TOKEN), not a session, so it is exempt from
CSRF (no cookie is involved). Each posting carries an idempotency key (the JSON field
"idempotency_key" or the Idempotency-Key header): the same key posted again debits nothing
more and answers 200 with the first posting.
"""

from flask import Blueprint

from portal.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)

from portal.blueprints.api import routes  # noqa: E402,F401
