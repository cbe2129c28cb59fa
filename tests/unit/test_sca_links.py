"""Issue 16, 3-D Secure off-session (billing_links/authenticate.py): an auto recharge whose
card's bank asks its holder to authenticate fails over to the Backup, and the billing
recipients get an email with a one-time link. The link decides "is a recharge still due?"
when it is used (under the payer's lock), charges that on-session (the bank's challenge)
or, when nothing is due, confirms the card with a setup; it is one-time, revoked by a newer
link for the card or the card's removal, expires after 7 days, and two tabs charge once."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

import billing_links
from billing_links import authenticate, tokens
from billing_links.models import AuthenticationRequest
from billing_links.service import LinkRevoked, LinkUsed
from portal import clock
from portal.models import Charge, ChargeStatus, LedgerEntry, OutboxMessage
from portal.sandbox import core
from portal.sandbox.testing import AUTHENTICATE_ALWAYS
from portal.services import charges, payment_methods, usage
from portal.services.gateway import SandboxGateway
from tests import factories as f
from tests.threads import in_own_session
from tests.unit.test_charges import NOW, recharge_world

VISA = "4242424242424242"


@pytest.fixture
def gw(app):
    clock.freeze(NOW)
    return SandboxGateway()


@pytest.fixture
def settings(app):
    return billing_links.settings(app)


def declined_recharge(session, gw, backup=None):
    """Harbor Dental ($20, recharge below $10 up to $50): Primary 3184 (its bank asks on
    every payment; off-session it fails with authentication_required), usage takes it to $5,
    the recharge runs. Returns (account, the Primary's charge)."""
    account = recharge_world(session, primary=AUTHENTICATE_ALWAYS, backup=backup)
    posted = usage.post(session, account, {"minutes": 300}, "batch-1")  # -$15.00 -> $5.00
    session.commit()
    charges.run_recharge(session, gw, posted.recharge)
    session.expire_all()
    first = session.get(Charge, posted.recharge.id)
    assert first.is_failed and first.failure_code == "authentication_required"
    return account, first


def link_of(session, settings, charge) -> tuple[AuthenticationRequest, str]:
    request = session.scalar(select(AuthenticationRequest).where(
        AuthenticationRequest.charge_id == charge.id))
    return request, authenticate.sign(settings.keys, request.link_id)


def mail(session, kind):
    session.expire_all()
    return session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)
                           .order_by(OutboxMessage.id)).all()


def balance(session, account) -> int:
    session.expire_all()
    return session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
        LedgerEntry.account_id == account.id))


def complete(secret: str, done: bool = True):
    intent = secret.split("_secret_")[0]
    assert core.authenticate(intent, secret, done) is not None


def test_the_backup_pays_and_the_recipients_get_the_link_instead_of_the_plain_notice(
        session, gw, settings):
    account, first = declined_recharge(session, gw, backup=VISA)
    backup = charges.by_key(session, first.idempotency_key + charges.BACKUP)
    assert backup.is_succeeded and balance(session, account) == 5000
    sent = mail(session, "authentication_needed")
    assert sorted(m.to_address for m in sent) == ["admin@example.test", "owner@example.test"]
    assert mail(session, "primary_declined") == [] and mail(session, "decline") == []
    request, _token = link_of(session, settings, first)
    assert (request.status, request.method_id, request.account_id) == (
        "pending", first.method_id, account.id)
    assert request.expires_at - request.created_at == timedelta(days=7)
    text = sent[0].text_body
    emailed = re.search(r"https?://\S+/authenticate/(\S+)", text).group(1)
    assert authenticate.verify(settings.keys, emailed) == request.link_id
    assert authenticate.open_link(session, settings, emailed).request.id == request.id
    assert "Your Backup, Visa ending 4242, paid it instead" in text
    assert sent[0].subject == ("Confirm your card with your bank for Harbor Dental: the Backup "
                               "paid $45.00")
    # the decline handling again (a retry) issues no second link and no second email
    from portal.mail import notices

    notices.primary_declined(session, first, backup)
    session.commit()
    assert len(mail(session, "authentication_needed")) == 2
    assert session.scalar(select(func.count()).select_from(AuthenticationRequest)) == 1


def test_without_a_backup_the_link_pays_what_is_still_due_on_session(session, gw, settings):
    account, first = declined_recharge(session, gw)
    assert balance(session, account) == 500
    [sent, _] = mail(session, "authentication_needed")
    assert "The balance was not recharged" in sent.text_body
    assert mail(session, "decline") == []
    request, token = link_of(session, settings, first)
    opened = authenticate.open_link(session, settings, token)
    assert opened.due.amount_cents == 4500 and opened.other is None
    session.commit()

    opened, secret = authenticate.use(session, gw, settings, token)
    assert secret and opened.payment.is_pending  # the bank's challenge, on the page
    assert opened.payment.idempotency_key == f"sca:{request.link_id}:0"
    assert balance(session, account) == 500
    complete(secret)
    opened = authenticate.confirm(session, gw, settings, token)
    assert opened.payment.is_succeeded and opened.payment.amount_cents == 4500
    assert balance(session, account) == 5000
    # used: once
    with pytest.raises(LinkUsed):
        authenticate.open_link(session, settings, token)
    with pytest.raises(LinkUsed):
        authenticate.use(session, gw, settings, token)
    assert authenticate.outcome(session, settings, token).payment.is_succeeded
    assert balance(session, account) == 5000


def test_nothing_due_any_more_confirms_the_card_and_charges_nothing(session, gw, settings):
    account, first = declined_recharge(session, gw, backup=VISA)
    request, token = link_of(session, settings, first)
    assert authenticate.open_link(session, settings, token).due is None
    session.commit()
    before = session.scalar(select(func.count()).select_from(Charge))
    opened, secret = authenticate.use(session, gw, settings, token)
    assert secret.startswith("seti_") and opened.payment is None
    complete(secret)
    opened = authenticate.confirm(session, gw, settings, token)
    assert opened.confirmed and opened.request.status == "used"
    assert session.scalar(select(func.count()).select_from(Charge)) == before
    assert balance(session, account) == 5000


def test_what_is_due_is_decided_when_the_link_is_used(session, gw, settings):
    """Due when emailed; paid meanwhile (a payment): the link charges nothing."""
    account, first = declined_recharge(session, gw)
    _request, token = link_of(session, settings, first)
    assert authenticate.open_link(session, settings, token).due is not None
    f.funds(session, account, 6000)  # someone paid $60 meanwhile
    session.commit()
    opened, secret = authenticate.use(session, gw, settings, token)
    assert opened.payment is None and secret.startswith("seti_")
    assert session.scalars(select(Charge.idempotency_key).where(
        Charge.idempotency_key.like("sca:%"))).all() == []


def test_a_failed_challenge_frees_the_link_for_another_try(session, gw, settings):
    account, first = declined_recharge(session, gw)
    request, token = link_of(session, settings, first)
    _opened, secret = authenticate.use(session, gw, settings, token)
    complete(secret, done=False)
    opened = authenticate.confirm(session, gw, settings, token)
    assert opened.request.status == "pending" and opened.request.attempts == 1
    assert "didn't confirm" in opened.request.last_error
    assert balance(session, account) == 500
    # a closed challenge (nothing done) is canceled at the processor and frees it too
    _opened, secret = authenticate.use(session, gw, settings, token)
    opened = authenticate.confirm(session, gw, settings, token)
    assert opened.request.status == "pending" and opened.request.attempts == 2
    # the third try pays, under its own key
    opened, secret = authenticate.use(session, gw, settings, token)
    complete(secret)
    opened = authenticate.confirm(session, gw, settings, token)
    assert opened.payment.idempotency_key == f"sca:{request.link_id}:2"
    assert opened.payment.is_succeeded and balance(session, account) == 5000
    assert [c.status for c in session.scalars(select(Charge).where(
        Charge.idempotency_key.like("sca:%")).order_by(Charge.id))] == [
        ChargeStatus.FAILED, ChargeStatus.FAILED, ChargeStatus.SUCCEEDED]


def test_a_newer_link_for_the_card_or_its_removal_revokes_it(session, gw, settings):
    account, first = declined_recharge(session, gw)
    old, old_token = link_of(session, settings, first)
    # a later recharge on the same card asked again: its link replaces this one
    later = charges.start(session, account, first.method, first.purpose, 100,
                          "recharge:later", "Auto recharge", now=NOW)
    newer = authenticate.issue(session, later)
    session.commit()
    session.expire_all()
    assert session.get(AuthenticationRequest, old.id).status == "revoked"
    with pytest.raises(LinkRevoked):
        authenticate.open_link(session, settings, old_token)
    with pytest.raises(LinkRevoked):
        authenticate.use(session, gw, settings, old_token)
    new_token = authenticate.sign(settings.keys, newer.link_id)
    assert authenticate.open_link(session, settings, new_token).request.id == newer.id
    session.rollback()
    # the card removed: the newer one stops too
    f.card(session, account, VISA)  # something to promote
    session.commit()
    method = first.method
    others = [m for m in payment_methods.listed(session, account)[0] if m.id != method.id]
    payment_methods.remove(session, account, method.id, promote_id=others[0].id,
                           promote_confirmed=True)
    session.commit()
    with pytest.raises(LinkRevoked):
        authenticate.open_link(session, settings, new_token)


def test_an_expired_or_foreign_token_is_refused(session, gw, settings):
    _account, first = declined_recharge(session, gw)
    _request, token = link_of(session, settings, first)
    clock.freeze(NOW + timedelta(days=7, minutes=1))
    with pytest.raises(tokens.LinkExpired):
        authenticate.open_link(session, settings, token)
    with pytest.raises(tokens.LinkExpired):
        authenticate.use(session, gw, settings, token)
    # a billing link's token (another salt) names nothing here
    with pytest.raises(tokens.LinkTampered):
        authenticate.open_link(session, settings, tokens.sign(settings.keys, "a" * 32))
    with pytest.raises(tokens.LinkTampered):
        authenticate.open_link(session, settings, token[:-2] + "xx")


def test_two_tabs_using_it_at_once_charge_once(app, session, gw, settings):
    account, first = declined_recharge(session, gw)
    _request, token = link_of(session, settings, first)
    session.commit()
    barrier_runs = [in_own_session(app, lambda s: authenticate.use(
        s, SandboxGateway(), settings, token)) for _ in range(2)]
    for thread, _ in barrier_runs:
        thread.start()
    for thread, _ in barrier_runs:
        thread.join(30)
    results = [result for _, result in barrier_runs]
    used = [r for r in results if "value" in r]
    refused = [r for r in results if isinstance(r.get("error"), LinkUsed)]
    assert (len(used), len(refused)) == (1, 1), results
    session.expire_all()
    [charge] = session.scalars(select(Charge).where(Charge.idempotency_key.like("sca:%")))
    assert charge.is_pending and charge.processor_status == "requires_action"
    secret = used[0]["value"][1]
    complete(secret)
    authenticate.confirm(session, gw, settings, token)
    authenticate.confirm(session, gw, settings, token)  # twice: settled once
    assert balance(session, account) == 5000


def test_a_closed_setup_check_can_be_started_again(session, gw, settings):
    """Nothing due, the card's check opened and the window closed: confirming finds the
    setup still waiting and gives the link back."""
    _account, first = declined_recharge(session, gw, backup=VISA)
    _request, token = link_of(session, settings, first)
    _opened, secret = authenticate.use(session, gw, settings, token)
    assert secret.startswith("seti_")
    opened = authenticate.confirm(session, gw, settings, token)
    assert opened.request.status == "pending" and opened.request.attempts == 1
    _opened, secret = authenticate.use(session, gw, settings, token)
    complete(secret)
    assert authenticate.confirm(session, gw, settings, token).confirmed


def test_the_jobs_retry_of_a_link_charge_tries_the_backup_and_keeps_the_link(
        session, gw, settings):
    """A link charge whose challenge failed while nobody confirmed on the page: the jobs'
    retry settles it and goes on to the Backup (key sca:…:backup) like any recharge; the
    link is free again, the Backup's try doesn't touch it."""
    from portal.models import MethodRole, PaymentMethod

    account, first = declined_recharge(session, gw)
    request, token = link_of(session, settings, first)
    _opened, secret = authenticate.use(session, gw, settings, token)
    complete(secret, done=False)
    f.card(session, account, "4000000000000341", role="backup")  # declines when charged
    session.commit()
    assert session.scalar(select(PaymentMethod.role).where(
        PaymentMethod.last4 == "0341")) == MethodRole.BACKUP
    clock.freeze(NOW + timedelta(hours=2))
    charges.retry_pending(session, gw)
    session.expire_all()
    keys = session.scalars(select(Charge.idempotency_key).where(
        Charge.idempotency_key.like("sca:%")).order_by(Charge.id)).all()
    assert keys == [f"sca:{request.link_id}:0", f"sca:{request.link_id}:0:backup"]
    request = session.get(AuthenticationRequest, request.id)
    assert (request.status, request.attempts) == ("pending", 1)
