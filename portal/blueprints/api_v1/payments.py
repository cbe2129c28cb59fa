"""/api/v1: Payments: make one, list them, receipts (issue 18 E2)."""

from portal.blueprints.api_v1 import blueprint

bp = blueprint("payments", "Payments: make one, list them, receipts.")
