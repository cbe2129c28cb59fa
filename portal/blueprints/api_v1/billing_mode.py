"""/api/v1: Billing mode: agency or customer billing, the removal requests and their links (issue 18 E1)."""

from portal.blueprints.api_v1 import blueprint

bp = blueprint("billing_mode", "Billing mode: agency or customer billing, the removal requests and their links.")
