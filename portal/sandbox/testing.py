"""Helpers for tests (issue 16): what the sandbox's form and the browser would do, in one
call, so a test of a portal flow can start from a payment-method id as the portal will.

Inside an app context (they write the sandbox's own tables). Numbers are the README's test
cards; no card number goes anywhere but the sandbox.

    pm = paying_card("4000000000000341")        # entered on the form: a pm_sbx_ id
    card = saved_card(customer="cus_sbx_1")     # entered and saved: a SavedMethod
    done = complete_challenge(result)           # a requires_action answer, authenticated
"""

from datetime import date

from portal.sandbox import cards, core
from portal.services.gateway import ChargeResult, SavedMethod

VISA = "4242424242424242"
DECLINES_WHEN_CHARGED = "4000000000000341"  # saves fine, every charge is declined
AUTHENTICATE_ONCE = "4000002500003155"
AUTHENTICATE_ALWAYS = "4000002760003184"
BANK_ROUTING, BANK_ACCOUNT = "021000021", "000123456789"
_keys = iter(range(1, 10**9))


def paying_card(number: str = VISA, *, exp_month: int = 12, exp_year: int | None = None,
                cvc: str | None = None, holder: str = "Pat Doe",
                today: date | None = None) -> str:
    """The pm_sbx_ id the sandbox's form gives for this card (not saved to a customer).
    Raises cards.EntryError where the form would refuse it."""
    today = today or date.today()
    cvc = cvc or ("1234" if cards.brand_of(number) == "American Express" else "123")
    entered = cards.enter_card(number, str(exp_month), str(exp_year or today.year + 3), cvc,
                               holder, today)
    return core.create_payment_method(entered)["id"]


def bank_account(account: str = BANK_ACCOUNT, *, routing: str = BANK_ROUTING,
                 holder: str = "Pat Doe") -> str:
    """The pm_sbx_ id the sandbox's bank form gives (not verified yet)."""
    return core.create_payment_method(cards.enter_bank_account(routing, account, holder))["id"]


def complete_challenge(answer: ChargeResult, complete: bool = True) -> ChargeResult:
    """What the person does on the 3-D Secure page: complete (or fail) the challenge of a
    requires_action answer. Returns the intent's answer afterwards."""
    assert answer.status == "requires_action" and answer.next_action == "authenticate", answer
    after = core.authenticate(answer.reference, answer.client_secret, complete)
    assert after is not None
    return after


def saved_card(number: str = VISA, *, customer: str = "cus_sbx_test", key: str | None = None,
               authenticate: bool = True, **card) -> SavedMethod:
    """A card entered and saved to `customer` (a setup intent; 3155/3184's challenge is
    completed when `authenticate`). Raises AssertionError if the save is refused (0002,
    0069, 0127: use paying_card and the gateway to test those)."""
    pm = paying_card(number, **card)
    answer = core.save_method(customer, pm, "card", key or f"test-save-{next(_keys)}-{pm}")
    if answer.status == "requires_action" and authenticate:
        answer = complete_challenge(answer)
    assert answer.succeeded and answer.method is not None, answer
    return answer.method


def saved_bank_account(account: str = BANK_ACCOUNT, *, customer: str = "cus_sbx_test",
                       verify: bool = True, routing: str = BANK_ROUTING) -> SavedMethod:
    """A bank account saved to `customer`, its micro-deposits confirmed when `verify`
    (else it stays pending and describe_method's SavedMethod is returned)."""
    pm = bank_account(account, routing=routing)
    answer = core.save_method(customer, pm, "ach", f"test-save-{next(_keys)}-{pm}")
    if not verify:
        return core.describe_method(pm)
    answer = core.verify_microdeposits(answer.reference, cards.MICRODEPOSITS)
    assert answer.succeeded and answer.method is not None, answer
    return answer.method
