"""What the processor is asked for a charge (processor.request_for) is a function of the
charge's row alone: the request that started it, the jobs' retry after a timeout and the
payer's return from a challenge send the same parameters under the same key (Stripe answers
a key reused with other parameters with an idempotency error, so a retry that asked
off-session for an on-session charge would never settle)."""

from datetime import UTC, datetime

import pytest

from portal.models import Charge, ChargePurpose, PaymentMethod
from portal.services import processor

CREATED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def charge(purpose: ChargePurpose, key: str, reference: str = "") -> Charge:
    method = PaymentMethod(token="pm_sbx_1", customer_ref="cus_sbx_1")
    return Charge(account_id=7, method=method, purpose=purpose, amount_cents=4500,
                  idempotency_key=key, description="Auto recharge of Harbor Dental to $50.00",
                  gateway_reference=reference, created_at=CREATED)


@pytest.mark.parametrize(("purpose", "key", "on_session", "save_method"), [
    (ChargePurpose.RECHARGE, "recharge:7:ab12", False, False),  # nobody is there
    (ChargePurpose.PLAN_FEE, "fee:7:2026-12", False, False),
    (ChargePurpose.PAYMENT, "payment:7:f00d", True, False),  # Make a Payment, a task link
    (ChargePurpose.OPENING_BALANCE, "link:9:0", True, True),  # the card auto recharge uses
    (ChargePurpose.RECHARGE, "sca:Zk3:1", True, True),  # the holder confirms by the link
])
def test_who_is_present_and_whether_the_card_is_kept_follow_from_the_row(
        purpose, key, on_session, save_method):
    request = processor.request_for(charge(purpose, key))
    assert (request.on_session, request.save_method) == (on_session, save_method)
    assert (request.method, request.customer, request.amount_cents, request.idempotency_key) \
        == ("pm_sbx_1", "cus_sbx_1", 4500, key)
    assert dict(request.metadata) == {"account_id": "7", "charge_key": key}


def test_a_retry_asks_exactly_what_the_first_ask_did_and_a_known_intent_by_its_id():
    first = processor.request_for(charge(ChargePurpose.RECHARGE, "sca:Zk3:1"))
    assert processor.request_for(charge(ChargePurpose.RECHARGE, "sca:Zk3:1")) == first
    known = processor.request_for(charge(ChargePurpose.RECHARGE, "sca:Zk3:1", "pi_sbx_9"))
    assert known.reference == "pi_sbx_9" and known.first_tried_at == CREATED
