"""Parameter types of the commands."""

import click


class Whole(click.ParamType):
    """A whole number in the digits 0-9 (inputs.to_int), as the forms read them: click's int
    takes "１２" and "1_2" like int() does."""

    name = "integer"

    def __init__(self, maximum: int = 10**9 - 1, signed: bool = False):
        self.maximum, self.signed = maximum, signed  # signed: the service says what's allowed

    def convert(self, value, param, ctx):
        from portal.services.inputs import to_int

        if isinstance(value, int):
            return value
        text = str(value).strip()
        minus = self.signed and text.startswith("-")
        number = to_int(text[1:] if minus else text, len(str(self.maximum)))
        if number is not None and minus:
            return -number
        if number is None or number > self.maximum:
            self.fail(f"{value!r} is not a whole number from 0 to {self.maximum} in the digits "
                      "0-9.", param, ctx)
        return number


ROW_ID = Whole(2**31 - 1)  # an INTEGER column's largest value
QUANTITY = Whole(signed=True)  # usage.parse_items says which are allowed
