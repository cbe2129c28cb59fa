import pytest

from portal.errors import ValidationFailed
from portal.services.money import dollars, parse_cents, plain

MAX = 1_000_000  # $10,000


def refusal(text, **kwargs):
    kwargs.setdefault("maximum", MAX)
    with pytest.raises(ValidationFailed) as e:
        parse_cents(text, "amount", **kwargs)
    return e.value.errors


@pytest.mark.parametrize("text,cents", [
    ("25", 2500),
    ("25.5", 2550),
    ("25.50", 2550),
    ("$1,234.56", 123456),
    ("  25.05 ", 2505),
    ("$ 7", 700),
    ("0.01", 1),
    ("1,000", 100000),
    ("10000", 1_000_000),
    ("10,000.00", 1_000_000),
])
def test_dollar_amounts_are_read_as_exact_cents(text, cents):
    assert parse_cents(text, "amount", maximum=MAX) == cents


@pytest.mark.parametrize("text,message", [
    ("25.001", "The amount can't have fractions of a cent: use at most two decimals."),
    ("$1,234.567", "The amount can't have fractions of a cent: use at most two decimals."),
    ("-25", "The amount must be more than zero."),
    ("0", "The amount must be more than zero."),
    ("0.00", "The amount must be more than zero."),
    ("1e3", "The amount must be a dollar amount, like 25 or 25.00."),
    ("NaN", "The amount must be a dollar amount, like 25 or 25.00."),
    ("inf", "The amount must be a dollar amount, like 25 or 25.00."),
    ("12,34", "The amount must be a dollar amount, like 25 or 25.00."),
    ("1.2.3", "The amount must be a dollar amount, like 25 or 25.00."),
    ("25.", "The amount must be a dollar amount, like 25 or 25.00."),
    ("1234,567", "The amount must be a dollar amount, like 25 or 25.00."),
    ("", "The amount is required."),
    ("   ", "The amount is required."),
    (None, "The amount is required."),
])
def test_anything_else_is_refused_with_a_message_for_the_field(text, message):
    assert refusal(text) == {"amount": message}


def test_the_maximum_is_inclusive_and_named_in_the_message():
    assert parse_cents("10000.00", "amount", maximum=MAX) == MAX
    assert refusal("10000.01") == {"amount": "The amount can be at most $10,000.00."}
    assert refusal("1,000,000,000") == {"amount": "The amount can be at most $10,000.00."}
    assert refusal("99999999999999999999") == {"amount": "The amount can be at most $10,000.00."}


def test_a_minimum_above_a_cent_is_named_in_the_message():
    assert parse_cents("25", "amount", minimum=2500, maximum=MAX) == 2500
    assert refusal("24.99", minimum=2500) == {"amount": "The amount must be at least $25.00."}
    assert refusal("0", minimum=2500) == {"amount": "The amount must be at least $25.00."}


def test_the_field_and_label_name_the_error():
    with pytest.raises(ValidationFailed) as e:
        parse_cents("-1", "threshold", maximum=MAX, label="The threshold")
    assert e.value.errors == {"threshold": "The threshold must be more than zero."}
    assert e.value.message == "The threshold must be more than zero."


@pytest.mark.parametrize("cents,shown", [
    (0, "$0.00"),
    (5, "$0.05"),
    (100, "$1.00"),
    (123456, "$1,234.56"),
    (100_000_000, "$1,000,000.00"),
    (-5, "-$0.05"),
    (-500, "-$5.00"),
    (-123456789, "-$1,234,567.89"),
])
def test_dollars_shows_a_sign_a_dollar_sign_thousands_and_two_decimals(cents, shown):
    assert dollars(cents) == shown


@pytest.mark.parametrize("cents,shown", [
    (0, "0.00"),
    (7, "0.07"),
    (123456, "1234.56"),
    (100_000_000, "1000000.00"),
    (-5, "-0.05"),
    (-123456, "-1234.56"),
])
def test_plain_has_no_dollar_sign_or_thousands_separator(cents, shown):
    assert plain(cents) == shown


@pytest.mark.parametrize("cents", [1, 99, 2550, 123456, 1_000_000])
def test_plain_reads_back_as_the_same_cents(cents):
    assert parse_cents(plain(cents), "amount", maximum=MAX) == cents
