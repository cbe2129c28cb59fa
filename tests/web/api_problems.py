"""The JSON API's error bodies (RFC 9457 problem details), written out for the tests: a
changed type URI or title is a change clients see, so the tests spell them out."""

PROBLEM_JSON = "application/problem+json"
KINDS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("too-large", "Request body too large"),
    422: ("validation", "Validation failed"),
    429: ("rate-limited", "Too many requests"),
    500: ("server-error", "Internal server error"),
    503: ("unavailable", "Service unavailable"),
}


def problem(status: int, detail: str, errors: dict | None = None) -> dict:
    """The body the API answers for an error: type, title, status, detail, the field errors,
    and "error" (= detail, the field older clients read)."""
    slug, title = KINDS[status]
    return {"type": f"https://portal.invalid/problems/{slug}", "title": title,
            "status": status, "detail": detail, "errors": errors or {}, "error": detail}
