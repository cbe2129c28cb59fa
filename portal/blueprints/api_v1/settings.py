"""/api/v1: Auto recharge, guardrails, budgets and alerts (issue 18 E2)."""

from portal.blueprints.api_v1 import blueprint

bp = blueprint("settings", "Auto recharge, guardrails, budgets and alerts.")
