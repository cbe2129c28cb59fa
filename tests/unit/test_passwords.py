"""The password rules (portal/services/passwords.py) and the common-password list."""

import pytest

from portal import rules
from portal.errors import ValidationFailed
from portal.services import passwords


def test_the_list_holds_the_10000_most_common_and_names_its_source_and_licence():
    assert len(passwords.common()) == 10_000
    head = passwords.COMMON_FILE.read_text(encoding="utf-8").split("\n")
    comments = "\n".join(line for line in head if line.startswith("#"))
    assert "zxcvbn" in comments and "MIT" in comments
    assert {"123456", "password", "qwerty123456", "1qaz2wsx3edc"} <= passwords.common()


@pytest.mark.parametrize(("password", "email", "why"), [
    ("", "a@b.test", "Choose a password of at least 12 characters (this one has 0)."),
    ("x" * (rules.MIN_PASSWORD_LENGTH - 1), "", "Choose a password of at least 12 "
                                                "characters (this one has 11)."),
    ("x" * (rules.MAX_PASSWORD_LENGTH + 1), "", "The password is at most 200 characters."),
    ("QWERTY123456", "", "That is one of the 10,000 most common passwords, the first ones an "
                         "attacker tries. Choose something less common."),
    (" qwerty123456 ", "", "That is one of the 10,000 most common passwords, the first ones "
                           "an attacker tries. Choose something less common."),
    ("Robin.Banks@example.test", "robin.banks@example.test",
     "Your password can't be your email address. Choose something else."),
    ("robin.banks.1", "Robin.Banks.1@example.test",
     "Your password can't be your email address. Choose something else."),
])
def test_a_refused_password_says_why(password, email, why):
    assert passwords.problem(password, email) == why


@pytest.mark.parametrize("password", ["x" * rules.MIN_PASSWORD_LENGTH,
                                      "correct horse battery", "robin.banks@example.tes"])
def test_good_passwords_pass(password):
    assert passwords.problem(password, "robin.banks@example.test") is None


def test_require_new_checks_the_repetition_after_the_rules():
    with pytest.raises(ValidationFailed) as e:
        passwords.require_new("short", "other", "a@b.test")
    assert list(e.value.errors) == ["password"]
    with pytest.raises(ValidationFailed) as e:
        passwords.require_new("long enough words", "long enough word", "a@b.test")
    assert e.value.errors == {"again": "The two passwords are not the same."}
    passwords.require_new("long enough words", "long enough words", "a@b.test")
