"""The portal's side of the processor (issue 16): an account's processor customer, and a
charge as the processor is asked for it. No Flask here."""

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.models import Account, Charge, ChargePurpose, ProcessorCustomer
from portal.services.gateway import ChargeRequest

# The payer is present for these (Make a Payment, an opening balance): the processor may ask
# for authentication. Auto recharge and the plan fee run with nobody there.
ON_SESSION = frozenset({ChargePurpose.PAYMENT, ChargePurpose.OPENING_BALANCE})
# The customer taking a sub-account off agency billing pays with the card its auto recharge
# will use: the payment saves it for off-session use. (A task link's payment pays once.)
SAVES_METHOD = frozenset({ChargePurpose.OPENING_BALANCE})
# A recharge the card's holder confirms through the emailed 3-D Secure link
# (billing_links/authenticate.py) is on-session, and saves the card for off-session use
# again: its key says so, so the jobs' retry of it asks the same.
HOLDER_PRESENT_KEY = "sca:"


def gateway_name(gateway) -> str:
    return getattr(gateway, "name", "sandbox")


def customer_ref(session: Session, account: Account, gateway) -> tuple[str, bool]:
    """(the account's customer at this gateway, whether the portal has it on record yet).
    A new one is made at the processor (keyed: a retry or two requests at once name one
    customer) but not written here: call remember_customer after the processor's calls, so
    no portal write is held open while the processor works (on SQLite the sandbox writes
    through its own connection)."""
    name = gateway_name(gateway)
    found = session.scalar(select(ProcessorCustomer.customer_ref).where(
        ProcessorCustomer.account_id == account.id, ProcessorCustomer.gateway == name))
    if found:
        return found, True
    return gateway.create_customer(f"account-{account.id}", account.name,
                                   f"customer:{account.id}:{name}"), False


def remember_customer(session: Session, account: Account, gateway, ref: str) -> str:
    name = gateway_name(gateway)
    try:
        with session.begin_nested():
            session.add(ProcessorCustomer(account_id=account.id, gateway=name,
                                          customer_ref=ref))
    except IntegrityError:  # recorded at the same moment by another request
        return session.scalar(select(ProcessorCustomer.customer_ref).where(
            ProcessorCustomer.account_id == account.id, ProcessorCustomer.gateway == name))
    return ref


def customer_for(session: Session, account: Account, gateway) -> str:
    """The account's customer at this gateway, made and recorded on first use."""
    ref, known = customer_ref(session, account, gateway)
    return ref if known else remember_customer(session, account, gateway, ref)


def request_for(charge: Charge) -> ChargeRequest:
    """The charge as the processor is asked for it: a pure function of the row (and its
    method), so every retry sends the same parameters under the same key."""
    method = charge.method
    present = charge.idempotency_key.startswith(HOLDER_PRESENT_KEY)
    return ChargeRequest(
        method=method.token, customer=method.customer_ref, kind=charge.purpose.value,
        amount_cents=charge.amount_cents, idempotency_key=charge.idempotency_key,
        description=charge.description, on_session=charge.purpose in ON_SESSION or present,
        save_method=charge.purpose in SAVES_METHOD or present,
        reference=charge.gateway_reference,
        first_tried_at=charge.created_at,
        metadata=(("account_id", str(charge.account_id)),
                  ("charge_key", charge.idempotency_key)))
