"""Issue 18: Settings → Developers: API keys (keys.py) and outgoing webhooks (webhooks.py),
for an account's owners and admins."""

from portal.tenancy import account_blueprint

bp = account_blueprint("developers", __name__, "/developers")

from portal.blueprints.developers import keys, webhooks  # noqa: E402,F401
