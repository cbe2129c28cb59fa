"""Settings → Developers: API keys (issue 18 K)."""

from portal.blueprints.developers import bp  # noqa: F401
