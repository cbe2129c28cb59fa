"""/api/v1: Usage: one posting, or batches of up to 1,000 events (issue 18 M)."""

from portal.blueprints.api_v1 import blueprint

bp = blueprint("usage", "Usage: one posting, or batches of up to 1,000 events.")
