"""Domain errors. Services raise them; views and the app's handlers show them."""


class DomainError(Exception):
    """Base class: a rule said no. The message is for the user."""

    status = 400

    def __init__(self, message: str = ""):
        super().__init__(message)
        self.message = message


class ValidationFailed(DomainError):
    """Bad input: errors maps a field name (or "" for the form) to its message."""

    status = 422

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class NotFound(DomainError):
    """The record does not exist, or the user may not know it does."""

    status = 404


class NotAllowed(DomainError):
    """The user is known to reach the record but may not do this to it."""

    status = 403


class TooManyAttempts(DomainError):
    """`retry_after`: seconds until it may be tried again, when known (the API's
    Retry-After header)."""

    status = 429

    def __init__(self, message: str = "", retry_after: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ConfirmationNeeded(DomainError):
    """Allowed, but only once the person has seen what it does and confirmed (a charge now,
    a failing card made Primary). `subject` is what the confirmation shows (the charge the
    service will make, the card's standing); the message says why it asks."""

    status = 409

    def __init__(self, message: str, subject=None):
        super().__init__(message)
        self.subject = subject
