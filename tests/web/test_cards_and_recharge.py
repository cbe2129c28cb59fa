"""Issue 14, items 3 and 8, through the pages.

3. Saving Balance Auto Recharge Settings that would charge the card now asks first: the
   dialog shows the charge the service will make (amount and card), nothing is saved or
   charged until the confirmation comes back carrying that very charge; a stale one (the
   balance or the Primary changed since) asks again with the charge due now.
8. Failing cards: an expired card is refused at entry; each method shows its last result and
   its expiry; making a failing method Primary asks first, saying why; when the Primary
   declined and the Backup paid, the billing recipients are told besides the receipt.
"""

import re

import pytest
from sqlalchemy import select, update

from portal import clock
from portal.models import (
    BillingSettings,
    Cause,
    Charge,
    LedgerKind,
    MethodRole,
    OutboxMessage,
    PaymentMethod,
)
from portal.services import charges, ledger
from portal.services.gateway import SandboxGateway
from tests.conftest import HX
from tests.web.billing_world import (
    DECLINED,
    INSUFFICIENT,
    MASTERCARD,
    NOW,
    build,
    card,
    card_form,
    flash,
    paid,
    post,
    recharge_confirmation,
    section,
    snapshot,
    url,
)
from tests.web.conftest import sign_in_as
from tests.web.pages import assert_full_page, body, shown, table_rows, text

SETTINGS = {"threshold": "100", "amount": "250"}
ASK = ("Saving charges $194.85 to Visa ending 4242 now, to bring the balance to $250.00.")


@pytest.fixture
def bw(session):
    clock.freeze(NOW)
    return build(session)


def give_balance(session, account, cents: int, key: str) -> None:
    kind = LedgerKind.PAYMENT if cents > 0 else LedgerKind.USAGE
    ledger.post(session, account, kind, cents, "set-up", key, Cause.USER)
    session.commit()


def all_charges(session) -> list[tuple[int, int, str]]:
    session.expire_all()
    return [(c.method_id, c.amount_cents, c.status.value)
            for c in session.scalars(select(Charge).order_by(Charge.id))]


def recharge_settings(session, account):
    session.expire_all()
    row = session.get(BillingSettings, account.id)
    return None if row is None else (row.recharge_threshold_cents, row.recharge_amount_cents)


def dialog_text(html: str) -> str:
    match = re.search(r'<p data-testid="recharge-charge">(.*?)</p>', html, re.S)
    assert match, "no charge in the dialog"
    return text(match.group(1))


# --- item 3: the confirmation before a save charges ---------------------------------------------

def test_a_save_that_would_charge_asks_first_and_changes_nothing(client, session, bw):
    visa = card(session, bw.solo)
    give_balance(session, bw.solo, 5515, "b1")
    sign_in_as(client, bw.ann)
    before = snapshot(session)

    partial = post(client, url(bw.solo, "auto-recharge"), SETTINGS, headers=HX)
    assert partial.status_code == 200
    # Whichever form asked, the dialog goes to the dialog slot.
    assert (partial.headers["HX-Retarget"], partial.headers["HX-Reswap"]) == (
        "#dialog-slot", "innerHTML")
    html = body(partial)
    assert html.lstrip().startswith('<dialog class="confirm"')
    assert dialog_text(html) == ASK
    assert "The available balance, $55.15, is below the new threshold of $100.00" in text(html)
    assert recharge_confirmation(html) == f"19485:{visa.id}"
    assert '<input type="hidden" name="confirm" value="yes">' in html

    full = post(client, url(bw.solo, "auto-recharge"), SETTINGS)  # no JavaScript
    assert full.status_code == 200
    page = assert_full_page(full)
    assert "<dialog class=\"confirm\" aria-labelledby=\"recharge-confirm-h\" open>" in page
    assert dialog_text(page) == ASK
    assert "Save and charge $194.85" in page

    assert snapshot(session) == before  # nothing saved, nothing charged, no mail
    assert recharge_settings(session, bw.solo) is None


def test_the_confirmation_charges_exactly_the_amount_shown(client, session, bw):
    visa = card(session, bw.solo)
    give_balance(session, bw.solo, 5515, "b1")
    sign_in_as(client, bw.ann)
    asked = body(post(client, url(bw.solo, "auto-recharge"), SETTINGS, headers=HX))
    shown_charge = recharge_confirmation(asked)
    response = post(client, url(bw.solo, "auto-recharge"),
                    {**SETTINGS, "confirm": "yes", "charge": shown_charge}, headers=HX)
    assert (response.status_code, response.headers["HX-Redirect"]) == (204, url(bw.solo))
    assert all_charges(session) == [(visa.id, 19485, "succeeded")]
    assert shown_charge == f"19485:{visa.id}"
    assert recharge_settings(session, bw.solo) == (10000, 25000)
    html = body(client.get(url(bw.solo)))
    assert 'data-testid="balance">$250.00<' in html
    assert "$194.85 was charged to Visa ending 4242" in html


def test_a_stale_confirmation_asks_again_with_the_charge_due_now(client, session, bw):
    visa = card(session, bw.solo)
    give_balance(session, bw.solo, 5515, "b1")
    sign_in_as(client, bw.ann)
    old = recharge_confirmation(body(post(client, url(bw.solo, "auto-recharge"), SETTINGS,
                                          headers=HX)))
    give_balance(session, bw.solo, -1000, "usage-meanwhile")  # $45.15 now
    before = snapshot(session)

    again = post(client, url(bw.solo, "auto-recharge"),
                 {**SETTINGS, "confirm": "yes", "charge": old}, headers=HX)
    assert again.status_code == 200
    assert again.headers["HX-Retarget"] == "#dialog-slot"
    html = body(again)
    assert dialog_text(html) == ("Saving charges $204.85 to Visa ending 4242 now, to bring "
                                 "the balance to $250.00.")
    assert ("The balance or the Primary method changed since you were asked: this is the "
            "charge now. Nothing was charged or saved yet.") in text(html)
    assert snapshot(session) == before  # the old confirmation charged nothing

    new = recharge_confirmation(html)
    assert new == f"20485:{visa.id}"
    response = post(client, url(bw.solo, "auto-recharge"),
                    {**SETTINGS, "confirm": "yes", "charge": new}, headers=HX)
    assert response.status_code == 204
    assert all_charges(session) == [(visa.id, 20485, "succeeded")]


def test_a_new_primary_since_the_question_asks_again(client, session, bw):
    visa = card(session, bw.solo)
    mc = card(session, bw.solo, MASTERCARD)
    sign_in_as(client, bw.ann)
    shown_charge = recharge_confirmation(body(post(client, url(bw.solo, "auto-recharge"),
                                                   SETTINGS)))
    assert shown_charge == f"25000:{visa.id}"
    assert post(client, url(bw.solo, f"payment-methods/{mc.id}/edit"),
                {"role": "primary"}).status_code == 303
    again = post(client, url(bw.solo, "auto-recharge"),
                 {**SETTINGS, "confirm": "yes", "charge": shown_charge})
    assert again.status_code == 200
    assert dialog_text(body(again)) == ("Saving charges $250.00 to Mastercard ending 4444 now, "
                                        "to bring the balance to $250.00.")
    assert all_charges(session) == []


@pytest.mark.parametrize("charge_field", ["", "1:1", "25000:999", "25000", "abc"])
def test_a_confirmation_of_another_charge_charges_nothing(client, session, bw, charge_field):
    card(session, bw.solo)
    sign_in_as(client, bw.ann)
    before = snapshot(session)
    response = post(client, url(bw.solo, "auto-recharge"),
                    {**SETTINGS, "confirm": "yes", "charge": charge_field})
    assert response.status_code == 200
    assert "Saving charges $250.00 to Visa ending 4242 now" in text(body(response))
    assert snapshot(session) == before


def test_the_right_charge_without_confirm_yes_still_asks(client, session, bw):
    visa = card(session, bw.solo)
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "auto-recharge"),
                    {**SETTINGS, "charge": f"25000:{visa.id}"})
    assert response.status_code == 200
    assert all_charges(session) == []


def test_a_save_that_does_not_charge_goes_straight_through(client, session, bw):
    card(session, bw.solo)
    give_balance(session, bw.solo, 15000, "b1")  # $150.00, above the $100.00 threshold
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "auto-recharge"), SETTINGS, headers=HX)
    assert response.status_code == 200
    assert "HX-Retarget" not in response.headers
    html = body(response)
    assert html.lstrip().startswith('<section class="card" id="auto-recharge"')
    assert flash("success", "Saved: when the balance falls below $100.00, the Primary method "
                            "is charged to bring it back up to $250.00.") in html
    assert recharge_settings(session, bw.solo) == (10000, 25000)
    assert all_charges(session) == []


def test_confirming_after_the_balance_rose_saves_and_charges_nothing(client, session, bw):
    card(session, bw.solo)
    sign_in_as(client, bw.ann)
    shown_charge = recharge_confirmation(body(post(client, url(bw.solo, "auto-recharge"),
                                                   SETTINGS, headers=HX)))
    give_balance(session, bw.solo, 30000, "paid-meanwhile")
    response = post(client, url(bw.solo, "auto-recharge"),
                    {**SETTINGS, "confirm": "yes", "charge": shown_charge}, headers=HX)
    assert (response.status_code, response.headers["HX-Redirect"]) == (204, url(bw.solo))
    assert all_charges(session) == []
    assert recharge_settings(session, bw.solo) == (10000, 25000)
    assert "Nothing was charged: the balance is no longer below the threshold" in body(
        client.get(url(bw.solo)))


def test_the_service_asks_for_what_start_recharge_would_charge(session, bw):
    """The dialog's amount and the charge come from one function (charges.recharge_due)."""
    from portal.errors import ConfirmationNeeded

    visa = card(session, bw.solo)
    give_balance(session, bw.solo, 5515, "b1")
    with pytest.raises(ConfirmationNeeded) as asked:
        charges.save_auto_recharge(session, bw.solo, "100", "250")
    due = asked.value.subject
    assert (due.amount_cents, due.method.id, due.balance_cents, due.target_cents) == (
        19485, visa.id, 5515, 25000)
    session.rollback()
    settings, charge = charges.save_auto_recharge(session, bw.solo, "100", "250",
                                                  confirmed=due.confirmation)
    assert (charge.amount_cents, charge.method_id, charge.status.value) == (
        19485, visa.id, "pending")
    assert charge.amount_cents == due.amount_cents


# --- item 8: failing cards ----------------------------------------------------------------------

def test_an_expired_card_is_refused_at_entry_and_nothing_is_saved(client, session, bw):
    """Issue 16: the expiry is typed into the processor's form, which refuses it there (no
    payment-method id, so nothing reaches the portal); this month is still good."""
    before = snapshot(session)
    response = client.post("/sandbox/v1/payment_methods", data={
        "type": "card", "card[number]": "4242424242424242", "card[exp_month]": "10",
        "card[exp_year]": "2026",
        "card[cvc]": "987", "billing_details[name]": "Pat Doe"})
    assert response.status_code == 402
    assert response.get_json()["error"]["message"] == "This card has expired."
    assert response.get_json()["error"]["param"] == "card[exp_year]"
    assert snapshot(session) == before
    # This month is still good (through its last day): saved.
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "payment-methods/new-card"),
                    card_form(exp_month=11, exp_year=2026, today=NOW.date()))
    assert response.status_code == 303
    assert session.scalars(select(PaymentMethod.exp_month).where(
        PaymentMethod.account_id == bw.solo.id)).all() == [11]


def rows_of(html: str) -> list[list[str]]:
    return [r.cells[:4] for r in table_rows(section(html, "payment-methods"))]


def test_each_method_shows_its_last_result_and_expiry(client, session, bw):
    visa = card(session, bw.solo)
    short = card(session, bw.solo, INSUFFICIENT)
    soon = card(session, bw.solo, MASTERCARD)
    paid(session, bw.solo, visa, "30")
    paid(session, bw.solo, short, "30")
    session.execute(update(PaymentMethod).where(PaymentMethod.id == soon.id)
                    .values(exp_month=11, exp_year=2026))  # expires this month
    lapsed = card(session, bw.solo, "6011111111111117")
    session.execute(update(PaymentMethod).where(PaymentMethod.id == lapsed.id)
                    .values(exp_month=9, exp_year=2026))  # saved before it expired
    session.commit()
    sign_in_as(client, bw.ann)
    html = body(client.get(url(bw.solo)))
    assert rows_of(html) == [
        ["Visa ending 4242 Paid Nov 23", "Pat Doe", "12/2030", "Primary"],
        ["Visa ending 9995 Declined Nov 23: insufficient funds", "Pat Doe", "12/2030", "—"],
        ["Mastercard ending 4444", "Pat Doe", "11/2026 Expires this month", "—"],
        ["Discover ending 1117", "Pat Doe", "09/2026 Expired", "—"],
    ]
    options = re.findall(r'<option value="\d+"[^>]*>([^<]+)</option>',
                         section(html, "make-payment"))
    assert [shown(o) for o in options] == [shown(o) for o in [
        "Visa ending 4242 (Primary)",
        "Visa ending 9995 · Declined Nov 23: insufficient funds",
        "Mastercard ending 4444 · Expires this month",
        "Discover ending 1117 · Expired"]]


def test_a_card_declined_twice_in_a_row_and_one_expiring_soon_say_so(client, session, bw):
    """Issue 16, card health: two declines in a row flag the card (auto recharge tries the
    Backup first); a card expiring within 30 days says in how many."""
    short = card(session, bw.solo, INSUFFICIENT)
    soon = card(session, bw.solo, MASTERCARD)
    paid(session, bw.solo, short, "30")
    session.execute(update(PaymentMethod).where(PaymentMethod.id == soon.id)
                    .values(exp_month=12, exp_year=2026))  # NOW is Nov 23: 38 days
    session.commit()
    sign_in_as(client, bw.ann)
    html = body(client.get(url(bw.solo)))
    assert "method-flagged" not in html
    assert rows_of(html)[1][2] == "12/2026 Expires in 38 days"
    paid(session, bw.solo, short, "31")
    html = body(client.get(url(bw.solo)))
    assert rows_of(html)[0][0] == (
        "Visa ending 9995 Declined Nov 23: insufficient funds Declined 2 times in a row: "
        "auto recharge tries the Backup first")


def test_the_last_result_is_the_newest_settled_charge(client, session, bw):
    visa = card(session, bw.solo)
    declined = paid(session, bw.solo, visa, "30")
    session.execute(update(Charge).where(Charge.id == declined.id).values(
        status="failed", failure_code="card_declined", failure_message="x"))
    session.commit()
    sign_in_as(client, bw.ann)
    assert rows_of(body(client.get(url(bw.solo))))[0][0] == (
        "Visa ending 4242 Declined Nov 23: the bank gave no reason")
    paid(session, bw.solo, visa, "30")
    assert rows_of(body(client.get(url(bw.solo))))[0][0] == "Visa ending 4242 Paid Nov 23"


def test_making_a_declining_card_primary_asks_first_saying_why(client, session, bw):
    card(session, bw.solo)
    short = card(session, bw.solo, INSUFFICIENT)
    paid(session, bw.solo, short, "30")
    sign_in_as(client, bw.ann)
    edit = url(bw.solo, f"payment-methods/{short.id}/edit")
    assert "Declined Nov 23: insufficient funds" in text(body(client.get(edit, headers=HX)))
    before = snapshot(session)
    for headers in (HX, {}):
        response = post(client, edit, {"role": "primary"}, headers=headers)
        assert response.status_code == 200
        html = body(response)
        assert text(re.search(r'data-testid="primary-warning">(.*?)</p>', html, re.S)
                    .group(1)) == (
            "Visa ending 9995 may not pay: its last charge was declined on Nov 23: "
            "insufficient funds. Auto recharge and the plan fee charge the Primary first; if "
            "it declines, the Backup is tried, and if there is none or it declines too, the "
            "balance is not recharged.")
        assert "Make it Primary anyway" in html
        assert snapshot(session) == before
    response = post(client, edit, {"role": "primary", "confirm": "yes"})
    assert response.status_code == 303
    session.expire_all()
    assert session.get(PaymentMethod, short.id).role == MethodRole.PRIMARY


def test_making_an_expired_card_primary_asks_first(client, session, bw):
    card(session, bw.solo)
    lapsed = card(session, bw.solo, MASTERCARD)
    session.execute(update(PaymentMethod).where(PaymentMethod.id == lapsed.id)
                    .values(exp_month=10, exp_year=2026))
    session.commit()
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, f"payment-methods/{lapsed.id}/edit"),
                    {"role": "primary"}, headers=HX)
    assert response.status_code == 200
    assert "Mastercard ending 4444 may not pay: it has expired." in text(body(response))
    session.expire_all()
    assert session.get(PaymentMethod, lapsed.id).role == MethodRole.OTHER
    # Backup needs no confirmation, nor does a card whose last charge was paid.
    assert post(client, url(bw.solo, f"payment-methods/{lapsed.id}/edit"),
                {"role": "backup"}).status_code == 303


def test_making_a_good_card_primary_does_not_ask(client, session, bw):
    card(session, bw.solo)
    mc = card(session, bw.solo, MASTERCARD)
    paid(session, bw.solo, mc, "30")
    sign_in_as(client, bw.ann)
    assert post(client, url(bw.solo, f"payment-methods/{mc.id}/edit"),
                {"role": "primary"}).status_code == 303


def test_promoting_a_declining_card_when_removing_the_primary_asks_first(client, session, bw):
    visa = card(session, bw.solo)
    bad = card(session, bw.solo, DECLINED)
    paid(session, bw.solo, bad, "30")
    sign_in_as(client, bw.ann)
    remove = url(bw.solo, f"payment-methods/{visa.id}/remove")
    dialog = body(client.get(remove, headers=HX))
    assert "Visa ending 0341 · Declined Nov 23: the bank gave no reason" in dialog
    before = snapshot(session)
    response = post(client, remove, {"confirm": "yes", "promote": str(bad.id)}, headers=HX)
    assert response.status_code == 200
    html = body(response)
    assert "Visa ending 0341 may not pay: its last charge was declined on Nov 23" in text(html)
    assert '<input type="hidden" name="promote_confirm" value="yes">' in html
    assert snapshot(session) == before
    response = post(client, remove, {"confirm": "yes", "promote": str(bad.id),
                                     "promote_confirm": "yes"})
    assert response.status_code == 303
    session.expire_all()
    assert session.get(PaymentMethod, bad.id).role == MethodRole.PRIMARY
    assert session.get(PaymentMethod, visa.id).removed_at is not None


def test_when_the_primary_declines_and_the_backup_pays_the_recipients_are_told(
        client, session, bw):
    """An agency with chosen recipients: both the receipt and the notice go to them."""
    from portal.services import billing

    billing.set_recipients(session, bw.agency, [str(bw.ada.id)])
    short = card(session, bw.agency, INSUFFICIENT)
    mc = card(session, bw.agency, MASTERCARD)
    from portal.services import payment_methods

    payment_methods.set_role(session, bw.agency, mc.id, "backup")
    billing.set_auto_recharge(session, bw.agency, "20", "100")
    session.commit()
    due = charges.start_recharge(session, bw.agency)
    session.commit()
    charges.run_recharge(session, SandboxGateway(), due)
    rows = session.execute(select(OutboxMessage.kind, OutboxMessage.to_address,
                                  OutboxMessage.subject, OutboxMessage.text_body)
                           .order_by(OutboxMessage.id)).all()
    assert [(k, to) for k, to, _s, _t in rows] == [("receipt", "ada@example.test"),
                                                   ("primary_declined", "ada@example.test")]
    _kind, _to, subject, body_text = rows[1]
    assert subject == ("Your Primary card was declined for Northwind Agency: the Backup paid "
                       "$100.00")
    assert "Visa ending 9995: The card was declined: insufficient funds." in body_text
    assert "Your Backup, Mastercard ending 4444, paid it instead" in body_text
    sign_in_as(client, bw.avery)
    html = body(client.get(url(bw.agency)))
    assert rows_of(html)[:2] == [
        ["Visa ending 9995 Declined Nov 23: insufficient funds", "Pat Doe", "12/2030",
         "Primary"],
        ["Mastercard ending 4444 Paid Nov 23", "Pat Doe", "12/2030", "Backup"]]
    assert short.role == MethodRole.PRIMARY
