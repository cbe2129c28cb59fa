"""The card brands the portal accepts, as its pages say them.

Card and bank-account numbers are checked on the processor's card entry (issue 16: the
sandbox's checks are portal/sandbox/cards.py); the portal receives only the processor's
payment-method id and what a person needs to recognise the method (brand, last 4, expiry,
holder): never a number, a CVC or a routing number.
"""

ACCEPTED = ("Visa", "Mastercard", "American Express", "Discover")
ACCEPTED_TEXT = "We accept Visa, Mastercard, American Express and Discover."
