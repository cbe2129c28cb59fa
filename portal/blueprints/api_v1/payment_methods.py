"""/api/v1: Payment methods: list, Primary/Backup, remove; adding one is the processor's flow (issue 18 E2)."""

from portal.blueprints.api_v1 import blueprint

bp = blueprint("payment_methods", "Payment methods: list, Primary/Backup, remove; adding one is the processor's flow.")
