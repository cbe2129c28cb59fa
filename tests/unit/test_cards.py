"""The sandbox's card and bank-account checks (portal/sandbox/cards.py, the processor's side
of card entry since issue 16: the portal never sees a number)."""

from datetime import date

import pytest

from portal.errors import ValidationFailed
from portal.sandbox import cards

TODAY = date(2026, 11, 23)
ACCEPTED = "We accept Visa, Mastercard, American Express and Discover."


@pytest.mark.parametrize("number,ok", [
    ("4242424242424242", True), ("79927398713", True), ("0", True),
    ("4242424242424241", False), ("79927398710", False), ("4242x", False), ("", False),
])
def test_luhn(number, ok):
    assert cards.luhn_ok(number) is ok


@pytest.mark.parametrize("number,brand", [
    ("4242424242424242", "Visa"),
    ("4222222222222", "Visa"),
    ("5555555555554444", "Mastercard"),
    ("5105105105105100", "Mastercard"),
    ("2223003122003222", "Mastercard"),  # the 2-series
    ("2720999999999996", "Mastercard"),
    ("378282246310005", "American Express"),
    ("371449635398431", "American Express"),
    ("6011111111111117", "Discover"),
    ("6445644564456445", "Discover"),
    ("6500000000000002", "Discover"),
    ("6221260000000000", "Discover"),
    # Diners Club: 300-305, 3095, 36, 38-39
    ("30569309025904", "Diners Club"),
    ("30000000000004", "Diners Club"),
    ("30950000000000", "Diners Club"),
    ("36227206271667", "Diners Club"),
    ("38520000023237", "Diners Club"),
    ("39000000000000", "Diners Club"),
    ("3530111333300000", None),  # JCB
    ("2721000000000000", None),
    ("9999999999999995", None),
])
def test_brands(number, brand):
    assert cards.brand_of(number) == brand


def test_a_good_card_keeps_only_brand_last4_expiry_and_holder():
    details = cards.check_card("4242 4242-4242 4242", "3", "29", "123", "  Pat   Doe ", TODAY)
    assert details == cards.CardDetails("Visa", "4242", 3, 2029, "Pat Doe")
    assert "4242424242424242" not in repr(details)


@pytest.mark.parametrize("number,message", [
    ("", "Enter the card number."),
    ("4242 4242 4242 424a", "The card number has only digits."),
    ("30569309025904", f"Diners Club cards are not accepted. {ACCEPTED}"),
    ("36227206271667", f"Diners Club cards are not accepted. {ACCEPTED}"),
    ("3530111333300000", f"This card brand is not accepted. {ACCEPTED}"),
    ("424242424242", "Visa card numbers have 13, 16 or 19 digits."),
    ("37828224631000", "American Express card numbers have 15 digits."),
    ("4242424242424241", "This card number isn't valid: check the digits."),
])
def test_bad_card_numbers(number, message):
    with pytest.raises(ValidationFailed) as e:
        cards.check_card(number, "12", "2030", "1234" if number[:2] in ("34", "37") else "123",
                         "Pat", TODAY)
    assert e.value.errors == {"number": message}


@pytest.mark.parametrize("month,year,errors", [
    ("", "2030", {"exp_month": "Choose the expiry month."}),
    ("13", "2030", {"exp_month": "Choose the expiry month."}),
    ("10", "2026", {"exp_year": "This card has expired."}),  # October 2026 < November 2026
    ("12", "2025", {"exp_year": "This card has expired."}),
    ("1", "abc", {"exp_year": "Enter the expiry year, like 2029."}),
    ("1", "2099", {"exp_year": "Enter the expiry year, like 2029."}),
])
def test_bad_expiry(month, year, errors):
    with pytest.raises(ValidationFailed) as e:
        cards.check_card("4242424242424242", month, year, "123", "Pat", TODAY)
    assert e.value.errors == errors


def test_a_card_expiring_this_month_is_still_good():
    assert cards.check_card("4242424242424242", "11", "2026", "123", "Pat", TODAY).exp_year == 2026


@pytest.mark.parametrize("number,cvc,ok", [
    ("4242424242424242", "123", True), ("4242424242424242", "1234", False),
    ("4242424242424242", "12", False), ("4242424242424242", "12a", False),
    ("378282246310005", "1234", True), ("378282246310005", "123", False),
])
def test_cvc_length_by_brand(number, cvc, ok):
    if ok:
        assert cards.check_card(number, "12", "2030", cvc, "Pat", TODAY)
    else:
        with pytest.raises(ValidationFailed) as e:
            cards.check_card(number, "12", "2030", cvc, "Pat", TODAY)
        assert e.value.errors == {"cvc": "The security code is 4 digits on American Express "
                                         "cards and 3 on others."}


def test_missing_holder():
    with pytest.raises(ValidationFailed) as e:
        cards.check_card("4242424242424242", "12", "2030", "123", "   ", TODAY)
    assert e.value.errors == {"holder": "Enter the name on the card."}


@pytest.mark.parametrize("routing,ok", [
    ("011000015", True), ("021000021", True), ("111000025", True),
    ("123456789", False), ("02100002", False), ("0210000211", False), ("02100002a", False),
])
def test_routing_checksum(routing, ok):
    assert cards.routing_ok(routing) is ok


def test_bank_account():
    details = cards.check_bank_account("021000021", "000123456789", "Pat Doe")
    assert details == cards.BankDetails("0021", "6789", "Pat Doe")


@pytest.mark.parametrize("routing,account,holder,errors", [
    ("", "1234", "Pat", {"routing": "Enter the 9-digit routing number."}),
    ("123456789", "1234", "Pat", {"routing": "This routing number isn't valid: check the 9 "
                                             "digits."}),
    ("021000021", "", "Pat", {"account_number": "Enter the account number."}),
    ("021000021", "123", "Pat", {"account_number": "An account number has 4 to 17 digits."}),
    ("021000021", "1" * 18, "Pat", {"account_number": "An account number has 4 to 17 digits."}),
    ("021000021", "1234", "", {"holder": "Enter the account holder's name."}),
])
def test_bad_bank_accounts(routing, account, holder, errors):
    with pytest.raises(ValidationFailed) as e:
        cards.check_bank_account(routing, account, holder)
    assert e.value.errors == errors
