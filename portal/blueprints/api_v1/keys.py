"""/api/v1: The key itself (issue 18 K)."""

from portal.blueprints.api_v1 import blueprint

bp = blueprint("keys", "The key itself.")
