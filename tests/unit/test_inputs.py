"""The shared input rules (portal/services/inputs.py): whole numbers in the digits 0-9 only,
free text without control characters, one email address; and the services that read numbers
and text through them (issue 12, items 11-13)."""

from datetime import date

import pytest

from portal.errors import ValidationFailed
from portal.sandbox import cards
from portal.services import inputs, paging, usage
from portal.services.money import parse_cents

NOT_NUMBERS = ["", " ", "４２", "²", "4²", "٤٢", "1_2", "+5", "-5", "1.0", "1e3", "0x1", "½",
               "12a", "1 2", None, True, False, 3.0]


@pytest.mark.parametrize("raw,value", [("0", 0), ("42", 42), (" 7 ", 7), ("007", 7),
                                       ("999999999", 999_999_999), (5, 5)])
def test_to_int_reads_the_digits_0_to_9(raw, value):
    assert inputs.to_int(raw) == value


@pytest.mark.parametrize("raw", NOT_NUMBERS + ["1234567890", -1])
def test_to_int_refuses_everything_else(raw):
    """int() reads "４２" as 42 and "1_2" as 12; str.isdigit() passes "²", which int() then
    refuses with a ValueError (a 500 in a view)."""
    assert inputs.to_int(raw) is None


@pytest.mark.parametrize("raw,value", [("1", 1), ("2147483647", 2**31 - 1), (" 12 ", 12)])
def test_to_id_is_a_positive_integer_column_value(raw, value):
    assert inputs.to_id(raw) == value


@pytest.mark.parametrize("raw", NOT_NUMBERS + ["0", "2147483648", "99999999999"])
def test_to_id_refuses_the_rest(raw):
    assert inputs.to_id(raw) is None


def test_foreign_digits_are_the_ones_that_look_like_digits():
    assert all(inputs.foreign_digits(t) for t in ("４", "²", "٤", "x۵"))
    assert not any(inputs.foreign_digits(t) for t in ("42", "abc", "", None, "½"))


# --- free text ---------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["Pat\x00Doe", "Pat\x1bDoe", "Pat\tDoe", "Pat\nDoe", "Pat\rDoe",
                                 "Pat\x7fDoe", "Pat\x85Doe"])
def test_one_line_text_refuses_control_characters_and_line_breaks(raw):
    with pytest.raises(ValidationFailed) as e:
        inputs.clean_text(raw, "holder", "The name", 120)
    assert e.value.errors == {"holder": "The name can't contain control characters or line "
                                        "breaks."}


def test_one_line_text_is_trimmed_and_its_spaces_collapsed():
    assert inputs.clean_text("  Pat   Doe \n", "f", "The name", 120) == "Pat Doe"
    assert inputs.clean_text("José Ñúñez", "f", "The name", 120) == "José Ñúñez"
    assert inputs.clean_text(None, "f", "The name", 120) == ""
    with pytest.raises(ValidationFailed) as e:
        inputs.clean_text("  ", "f", "The name", 120, required="Enter the name.")
    assert e.value.errors == {"f": "Enter the name."}
    with pytest.raises(ValidationFailed) as e:
        inputs.clean_text("x" * 121, "f", "The name", 120)
    assert e.value.errors == {"f": "The name is at most 120 characters."}


def test_multi_line_text_keeps_line_breaks_only():
    text = inputs.clean_text("\r\n Hello,\r\nthe  invoice\rplease \n", "m", "The message",
                            multiline=True)
    assert text == "Hello,\nthe  invoice\nplease"
    for raw in ("Hello\x00", "Hello\tthere", "a\x1b[2Jb"):
        with pytest.raises(ValidationFailed) as e:
            inputs.clean_text(raw, "m", "The message", multiline=True)
        assert e.value.errors == {"m": "The message can't contain control characters."}


# --- email addresses ---------------------------------------------------------------------------

@pytest.mark.parametrize("raw,address", [
    ("pat@example.com", "pat@example.com"),
    ("  Pat.Doe+bills@Example.COM ", "pat.doe+bills@example.com"),
    ("casey@cedar.test", "casey@cedar.test"),  # RFC 2606 test domains: the demo's users
    ("pat@exämple.com", "pat@xn--exmple-cua.com"),  # the domain in ASCII (IDNA)
])
def test_an_email_address_is_checked_and_normalized(raw, address):
    assert inputs.clean_email(raw, "email", "bad") == address


@pytest.mark.parametrize("raw", [
    "a@b.com\r\nBcc: x@y.test", "a@b.com\nBcc: x@y.test", "a@b.com,c@d.com", "a@b.com c@d.com",
    "Pat <pat@example.com>", '"pat"@example.com', "pat@[127.0.0.1]", "pat@localhost",
    "pat@example", "pat@example.invalid", "pat..doe@example.com", "josé@example.com", "@x.com",
    "pat@", "", None, "pat\x00@example.com", "x" * 250 + "@example.com",
])
def test_anything_but_one_plain_address_is_refused(raw):
    with pytest.raises(ValidationFailed) as e:
        inputs.clean_email(raw, "email", "Enter an email address.")
    assert e.value.errors == {"email": "Enter an email address."}


# --- the services that read numbers ----------------------------------------------------------

TODAY = date(2026, 11, 23)


@pytest.mark.parametrize("number", ["4²42424242424242", "４２４２４２４２４２４２４２４２",
                                    "4242 4242 4242 424٢"])
def test_a_card_number_in_other_digits_is_refused_not_a_crash(number):
    """On the sandbox's card form (the processor's side: issue 16)."""
    with pytest.raises(ValidationFailed) as e:
        cards.check_card(number, "12", "2030", "123", "Pat Doe", TODAY)
    assert e.value.errors == {"number": "The card number must be written with the digits 0-9."}


@pytest.mark.parametrize("month", ["1_2", "１２", "+12", "²"])
def test_an_expiry_month_in_other_digits_is_refused(month):
    with pytest.raises(ValidationFailed) as e:
        cards.check_card("4242424242424242", month, "2030", "123", "Pat Doe", TODAY)
    assert e.value.errors == {"exp_month": "Choose the expiry month."}


@pytest.mark.parametrize("routing,message", [
    ("²²²²²²²²²", "The routing number must be written with the digits 0-9."),
    ("１１００００００", "The routing number must be written with the digits 0-9."),
])
def test_a_routing_number_in_other_digits_is_refused(routing, message):
    with pytest.raises(ValidationFailed) as e:
        cards.check_bank_account(routing, "000123456789", "Pat Doe")
    assert e.value.errors == {"routing": message}
    assert not cards.routing_ok(routing) and not cards.luhn_ok("４２４２")


@pytest.mark.parametrize("holder", ["Pat\x00Doe", "Pat\nDoe"])
def test_holder_names_refuse_control_characters(holder):
    for check in (lambda: cards.check_card("4242424242424242", "12", "2030", "123", holder,
                                           TODAY),
                  lambda: cards.check_bank_account("110000000", "000123456789", holder)):
        with pytest.raises(ValidationFailed) as e:
            check()
        assert e.value.errors == {"holder": "The name can't contain control characters or "
                                            "line breaks."}


@pytest.mark.parametrize("amount", ["２５", "2５.00", "²5", "25.0٠"])
def test_an_amount_in_other_digits_is_not_twenty_five_dollars(amount):
    with pytest.raises(ValidationFailed) as e:
        parse_cents(amount, "amount", maximum=1_000_000)
    assert e.value.errors == {"amount": "The amount must be written with the digits 0-9, like "
                                        "25 or 25.00."}


@pytest.mark.parametrize("quantity", ["１２０", "1_20", "+120", "²"])
def test_a_usage_quantity_in_other_digits_is_not_a_number(quantity):
    with pytest.raises(ValidationFailed) as e:
        usage.parse_items({"minutes": quantity})
    assert e.value.errors == {"minutes": "Must be a whole number."}
    assert usage.parse_items({"minutes": " 120 "}) == {"minutes": 120}


@pytest.mark.parametrize("page,message", [("４", "Page must be a whole number."),
                                          ("1_0", "Page must be a whole number."),
                                          ("-2", "Page must be 1 or more."),
                                          ("10000000000000000", "Page must be 1,000,000 or less.")])
def test_a_page_number_is_digits_0_to_9(page, message):
    with pytest.raises(ValidationFailed) as e:
        paging.parse_page(page)
    assert e.value.errors == {"page": message}
    assert paging.parse_page("0002") == 2


@pytest.mark.parametrize("text, control", [
    ("Billing sync", False), ("مزامنة الفواتير", False), ("tab\there", True),
    ("\u202eevil", True), ("a\u2066b\u2069", True), ("nul\x00", True)])
def test_has_control_refuses_control_and_bidirectional_controls(text, control):
    assert inputs.has_control(text) is control


@pytest.mark.parametrize("raw", ["\u200b\u200b", "\u2060", " \u00a0 "])
def test_a_name_of_nothing_visible_is_no_name(raw):
    assert not inputs.has_visible(raw)
    with pytest.raises(ValidationFailed) as caught:
        inputs.clean_name(raw, "name", "status", 40)
    assert caught.value.errors == {"name": "Enter the status name."}
