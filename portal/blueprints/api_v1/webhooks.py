"""/api/v1: Outgoing webhooks: endpoints, events, deliveries (issue 18 W)."""

from portal.blueprints.api_v1 import blueprint

bp = blueprint("webhooks", "Outgoing webhooks: endpoints, events, deliveries.")
