"""Rate limits per API key (to be written: issue 18 K). check(key) returns a 429 problem
or None; headers(response) adds the RateLimit headers."""


def check(key):
    return None


def headers(response):
    return response
