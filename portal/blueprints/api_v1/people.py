"""/api/v1: Users and invitations (issue 18 E1)."""

from portal.blueprints.api_v1 import blueprint

bp = blueprint("people", "Users and invitations.")
