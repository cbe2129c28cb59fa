import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.models import BillingMode, MethodRole, PaymentMethod
from portal.sandbox.cards import EntryError
from portal.services import payment_methods as pm
from portal.services.gateway import SandboxGateway
from tests import factories as f


@pytest.fixture
def gw(app):
    return SandboxGateway()


def card(session, account, gw, number="4242424242424242"):
    """Typed into the sandbox's card form (12/2030), saved through payment_methods.add."""
    return f.card(session, account, number, gateway=gw)


def roles(session, account):
    return [(m.last4, m.role) for m in pm.in_use(session, account)]


def test_only_brand_last4_expiry_holder_and_token_are_stored(session, gw):
    account = f.standalone(session)
    method = card(session, account, gw)
    row = session.execute(select(PaymentMethod.__table__)
                          .where(PaymentMethod.id == method.id)).one()
    values = " ".join(str(v) for v in row)
    assert "4242424242424242" not in values and " 123 " not in f" {values} "
    assert (method.brand, method.last4, method.exp_month, method.exp_year) == (
        "Visa", "4242", 12, 2030)
    assert method.token.startswith("pm_sbx_")  # the processor's id, not the card
    assert method.label == "Visa ending 4242, expires 12/2030"


def test_the_first_method_is_primary_and_the_pencil_sets_backup(session, gw):
    account = f.standalone(session)
    visa = card(session, account, gw)
    mc = card(session, account, gw, "5555555555554444")
    bank = f.bank_account(session, account, "000123456789", routing="021000021", gateway=gw)
    assert roles(session, account) == [("4242", MethodRole.PRIMARY), ("4444", MethodRole.OTHER),
                                       ("6789", MethodRole.OTHER)]
    pm.set_role(session, account, mc.id, "backup")
    pm.set_role(session, account, bank.id, "backup")  # the old backup steps down
    assert roles(session, account) == [("4242", MethodRole.PRIMARY), ("6789", MethodRole.BACKUP),
                                       ("4444", MethodRole.OTHER)]
    pm.set_role(session, account, bank.id, "primary")  # primary and backup swap
    assert roles(session, account) == [("6789", MethodRole.PRIMARY), ("4242", MethodRole.BACKUP),
                                       ("4444", MethodRole.OTHER)]
    assert visa.role == MethodRole.BACKUP


def test_the_primary_cant_just_step_down(session, gw):
    account = f.standalone(session)
    visa = card(session, account, gw)
    with pytest.raises(ValidationFailed) as e:
        pm.set_role(session, account, visa.id, "other")
    assert e.value.errors == {"role": "Make another method Primary first: the account needs one."}
    with pytest.raises(ValidationFailed):
        pm.set_role(session, account, visa.id, "favourite")


def test_removing_the_primary_asks_which_to_promote(session, gw):
    account = f.standalone(session)
    visa = card(session, account, gw)
    mc = card(session, account, gw, "5555555555554444")
    with pytest.raises(ValidationFailed) as e:
        pm.remove(session, account, visa.id)
    assert e.value.errors == {"promote": "Choose which method becomes Primary."}
    pm.remove(session, account, visa.id, promote_id=mc.id)
    assert roles(session, account) == [("4444", MethodRole.PRIMARY)]
    assert visa.removed_at is not None  # kept for the payment history
    pm.remove(session, account, mc.id)  # the last one needs no promotion
    assert roles(session, account) == []


def test_methods_of_another_account_are_not_found(session, gw):
    mine, theirs = f.standalone(session), f.standalone(session)
    other = card(session, theirs, gw)
    with pytest.raises(NotFound):
        pm.set_role(session, mine, other.id, "backup")
    with pytest.raises(NotFound):
        pm.remove(session, mine, other.id)


def test_an_agency_billed_sub_account_has_no_methods(session, gw):
    agency = f.agency(session)
    sub = f.sub(session, agency, "Bayside", billing=BillingMode.AGENCY)
    with pytest.raises(NotAllowed) as e:
        card(session, sub, gw)
    assert e.value.message == ("Bayside is paid from the agency balance: it has no payment "
                               "methods of its own.")


def test_bad_cards_store_nothing(session, gw):
    """Refused on the processor's form (the sandbox's checks): no id, nothing stored."""
    account = f.standalone(session)
    with pytest.raises(EntryError) as e:
        card(session, account, gw, "30569309025904")
    assert "Diners Club cards are not accepted" in e.value.errors["number"]
    assert pm.in_use(session, account) == []


def test_the_database_allows_one_primary_per_account(session, gw):
    account = f.standalone(session)
    card(session, account, gw)
    session.add(PaymentMethod(account_id=account.id, kind="card", brand="Visa", last4="1111",
                              holder="X", token="tok_x", role=MethodRole.PRIMARY))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()
