"""/api/v1: Statements and their schedules (issue 18 E2)."""

from portal.blueprints.api_v1 import blueprint

bp = blueprint("statements", "Statements and their schedules.")
