"""Signed one-time billing links and the public customer pages (the billing-links issue)."""
