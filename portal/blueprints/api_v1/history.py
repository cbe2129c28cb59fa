"""/api/v1: Change history (issue 18 E1)."""

from portal.blueprints.api_v1 import blueprint

bp = blueprint("history", "Change history.")
