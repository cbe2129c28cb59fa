"""The processor's webhooks (issue 16): POST /webhooks/stripe.

No login and no CSRF token (the processor posts it): the SDK's signature check is the
authentication. A wrong, old or missing signature is 400 and changes nothing; an event is
applied once (portal/services/processor_events.py) and answered 200; an error rolls back
and answers 500, so Stripe delivers it again later (for three days). The answers are JSON,
never a page or a redirect.
"""

from flask import Blueprint

from portal.extensions import csrf

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)

from portal.blueprints.webhooks import routes  # noqa: E402,F401
