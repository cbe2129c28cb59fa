"""Settings → Developers → Webhooks (issue 18 W)."""

from portal.blueprints.developers import bp  # noqa: F401
