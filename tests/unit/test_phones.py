"""phones.normalize_e164: the one reading of E.164, in its three modes."""

import pytest

from portal.errors import ValidationFailed
from portal.services.phones import normalize_e164


@pytest.mark.parametrize("raw,national,lenient,expected", [
    ("+1 (415) 555-0100", False, False, "+14155550100"),
    ("+44 20 7946 0958", False, False, "+442079460958"),
    ("415.555.0100", True, False, "+14155550100"),   # national: a US number without +1
    ("0044 20 7946 0958", False, True, "+442079460958"),  # lenient: 00 for the plus
    ("1-415-555-0100", False, True, "+14155550100"),
    ("+123456789012345", False, True, "+123456789012345"),  # as calls may have stored it
])
def test_numbers_read_as_e164(raw, national, lenient, expected):
    assert normalize_e164(raw, national=national, lenient=lenient) == expected


@pytest.mark.parametrize("raw,national,lenient", [
    ("4155550100", False, False),          # international only
    ("0044 20 7946 0958", True, False),    # national is US digits, not 00
    ("+1 415 555 013", True, False),       # a +1 number has 10 digits after the 1
    ("+0123456789", False, False),         # no country code starts with 0
    ("+1 ４１５ ５５５ ０１００", False, True),  # digits 0-9 only
    ("+1234567890123456", False, True),    # 16 digits
    (None, False, False),
])
def test_anything_else_is_refused_with_the_callers_field_and_message(raw, national, lenient):
    with pytest.raises(ValidationFailed) as e:
        normalize_e164(raw, national=national, lenient=lenient, field="phone", message="No.")
    assert e.value.errors == {"phone": "No."}
