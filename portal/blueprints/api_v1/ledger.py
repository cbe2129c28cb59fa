"""/api/v1: The ledger (billing logs), filtered and cursor-paginated (issue 18 E2)."""

from portal.blueprints.api_v1 import blueprint

bp = blueprint("ledger", "The ledger (billing logs), filtered and cursor-paginated.")
