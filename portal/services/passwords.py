"""The rules every new password meets (a first password, a reset, a change, an accepted
invitation), each refusal saying why:

- at least rules.MIN_PASSWORD_LENGTH characters (and at most rules.MAX_PASSWORD_LENGTH);
- not one of the 10,000 most common passwords (portal/data/common_passwords.txt, from the
  zxcvbn package's frequency list: its header names the source and the licence), compared
  without regard to case or surrounding spaces;
- not the user's own email (nor its part before the @, nor either with the case changed).
"""

from functools import cache
from pathlib import Path

from portal import rules
from portal.errors import ValidationFailed

COMMON_FILE = Path(__file__).resolve().parent.parent / "data" / "common_passwords.txt"


@cache
def common() -> frozenset[str]:
    """The common passwords, lowercase (read once)."""
    with COMMON_FILE.open(encoding="utf-8") as lines:
        return frozenset(line.strip().lower() for line in lines
                         if line.strip() and not line.startswith("#"))


def problem(password: str, email: str = "") -> str | None:
    """Why `password` can't be used by the user with `email`, or None when it can."""
    password = password or ""
    if len(password) < rules.MIN_PASSWORD_LENGTH:
        return (f"Choose a password of at least {rules.MIN_PASSWORD_LENGTH} characters "
                f"(this one has {len(password)}).")
    if len(password) > rules.MAX_PASSWORD_LENGTH:
        return f"The password is at most {rules.MAX_PASSWORD_LENGTH} characters."
    folded = password.strip().lower()
    email = (email or "").strip().lower()
    if email and folded in {email, email.split("@", 1)[0]}:
        return "Your password can't be your email address. Choose something else."
    if folded in common():
        return ("That is one of the 10,000 most common passwords, the first ones an attacker "
                "tries. Choose something less common.")
    return None


def check_new(password: str, again: str, email: str, field: str = "password",
              again_field: str = "again") -> dict[str, str]:
    """The errors of a new password and its repetition (empty when both are fine)."""
    why = problem(password, email)
    if why:
        return {field: why}
    if password != again:
        return {again_field: "The two passwords are not the same."}
    return {}


def require_new(password: str, again: str, email: str) -> None:
    """Raise ValidationFailed unless the new password (and its repetition) may be used."""
    errors = check_new(password, again, email)
    if errors:
        raise ValidationFailed(errors)
