"""Issue 16, 3-D Secure off-session: the emailed link's public page (/authenticate/<token>,
billing_links/authenticate_views.py). No sign-in: the token alone opens it (whoever is
signed in, or nobody), for its own account only; its answers are private (no Referer, not
stored); its forms need the CSRF token; the bank's challenge runs on the page and the
answer is read from the processor."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

import portal.models  # noqa: F401  (first: billing_links.models needs portal.models loaded)
from billing_links import authenticate
from portal import clock
from portal.models import Charge, LedgerEntry, OutboxMessage
from portal.sandbox import core
from portal.services.gateway import SandboxGateway
from tests import factories as f
from tests.unit.test_charges import NOW
from tests.unit.test_sca_links import declined_recharge
from tests.web.conftest import sign_in_as
from tests.web.link_world import Customer, assert_private, path_of
from tests.web.pages import body, shown


@pytest.fixture
def world(app, session):
    clock.freeze(NOW)
    account, first = declined_recharge(session, SandboxGateway())
    text = session.scalars(select(OutboxMessage.text_body).where(
        OutboxMessage.kind == "authentication_needed")).first()
    url = re.search(r"https?://\S+/authenticate/[A-Za-z0-9_.\-]+", text).group(0)
    return account, first, url


@pytest.fixture
def holder(app):
    return Customer(app)


def ledger_sum(session, account) -> int:
    session.expire_all()
    return session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
        LedgerEntry.account_id == account.id))


def challenge_of(html: str) -> tuple[str, str]:
    holder = re.search(r'<div data-next-action data-client-secret="([^"]+)"', html)
    confirm = re.search(r'<form method="post" action="([^"]+)"[^>]*data-next-action-done',
                        html)
    assert holder and confirm, html[:2000]
    return holder.group(1), confirm.group(1)


def test_the_page_shows_the_account_card_and_amount_privately(session, world, holder):
    account, first, url = world
    response = holder.open(url)
    assert response.status_code == 200
    html = body(response)
    assert "<h1>Confirm your card with your bank</h1>" in html
    assert "Harbor Dental's auto recharge of" in html
    assert 'data-testid="asked-amount">$45.00<' in html
    assert 'data-testid="card">Visa ending 3184<' in html
    assert shown("There was no Backup card to try instead.") in html
    assert shown("$45.00: the balance, $5.00, is below the $10.00 threshold") in html
    assert "Confirm and pay $45.00</button>" in html
    assert 'name="csrf_token"' in html
    assert_private(response)
    assert "frame-src" in response.headers["Content-Security-Policy"]  # the challenge's frame


def test_the_token_opens_it_for_anyone_and_only_its_own_account(app, session, world):
    """Tenant-free (the recipients may not be signed in, or signed in elsewhere) but
    token-bound: another account's user sees the same page; a changed token shows nothing
    of the account."""
    _account, _first, url = world
    stranger = f.user(session, "stranger@example.test")
    f.standalone(session, "Other Clinic", admin=stranger)
    session.commit()
    client = app.test_client()
    sign_in_as(client, stranger)
    response = client.get(path_of(url))
    assert response.status_code == 200 and "Harbor Dental" in body(response)
    for bad in (path_of(url)[:-3] + "abc", "/authenticate/nothing"):
        response = client.get(bad)
        assert response.status_code == 404
        assert "Harbor Dental" not in body(response) and "3184" not in body(response)
        assert 'data-reason="tampered"' in body(response)


def test_using_it_needs_the_csrf_token(session, world, holder):
    account, _first, url = world
    holder.open(url)
    response = holder.client.post(path_of(url), data={})
    assert response.status_code == 400
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Charge).where(
        Charge.idempotency_key.like("sca:%"))) == 0
    assert ledger_sum(session, account) == 500


def test_the_challenge_runs_on_the_page_and_the_link_pays_once(session, world, holder):
    account, _first, url = world
    response = holder.client.post(path_of(url), data={"csrf_token": holder.token()})
    assert response.status_code == 200
    secret, confirm = challenge_of(body(response))
    assert confirm == path_of(url) + "/confirm"
    assert_private(response)
    intent = secret.split("_secret_")[0]
    assert core.authenticate(intent, secret, True) is not None
    # the confirm form posts nothing but the CSRF token; the answer is the processor's
    response = holder.client.post(confirm, data={})
    assert response.status_code == 400  # no CSRF token: refused
    response = holder.client.post(confirm, data={"csrf_token": holder.token()})
    assert response.status_code == 303 and response.location.endswith(path_of(url))
    assert ledger_sum(session, account) == 5000
    page = holder.open(url)
    html = body(page)
    assert "<h1>Thank you: the recharge is paid</h1>" in html
    assert shown("$45.00 was charged to Visa ending 3184") in html
    assert "<form" not in html
    # used: posting again charges nothing and shows the outcome
    response = holder.client.post(path_of(url), data={"csrf_token": holder.token()})
    assert response.status_code == 303
    assert ledger_sum(session, account) == 5000
    assert session.scalar(select(func.count()).select_from(Charge).where(
        Charge.idempotency_key.like("sca:%"))) == 1


def test_a_failed_challenge_says_so_and_the_link_works_again(session, world, holder):
    account, _first, url = world
    response = holder.client.post(path_of(url), data={"csrf_token": holder.token()})
    secret, confirm = challenge_of(body(response))
    core.authenticate(secret.split("_secret_")[0], secret, False)
    response = holder.client.post(confirm, data={"csrf_token": holder.token()})
    assert response.status_code == 303
    html = body(holder.open(url))
    assert "<h1>Confirm your card with your bank</h1>" in html
    assert shown("Your bank didn't confirm it, so nothing was charged.") in html
    assert "Confirm and pay $45.00</button>" in html
    assert ledger_sum(session, account) == 500


def test_an_expired_link_says_so(session, world, holder):
    _account, _first, url = world
    clock.freeze(NOW + timedelta(days=7, minutes=1))
    response = holder.open(url)
    assert response.status_code == 410 and 'data-reason="expired"' in body(response)
    response = holder.client.post(path_of(url), data={"csrf_token": holder.token()})
    assert response.status_code == 410
    assert_private(response)


def test_nothing_due_confirms_the_card(session, world, holder):
    account, _first, url = world
    f.funds(session, account, 6000)
    session.commit()
    html = body(holder.open(url))
    assert "Nothing: the balance doesn't need a recharge now" in html
    assert "Confirm the card</button>" in html
    response = holder.client.post(path_of(url), data={"csrf_token": holder.token()})
    secret, confirm = challenge_of(body(response))
    assert secret.startswith("seti_")
    core.authenticate(secret.split("_secret_")[0], secret, True)
    holder.client.post(confirm, data={"csrf_token": holder.token()})
    html = body(holder.open(url))
    assert "<h1>Your card is confirmed</h1>" in html
    assert ledger_sum(session, account) == 6500
    assert authenticate.TTL == timedelta(days=7)


def test_a_challenge_left_open_can_be_checked_again_and_started_over(session, world, holder):
    account, _first, url = world
    response = holder.client.post(path_of(url), data={"csrf_token": holder.token()})
    challenge_of(body(response))  # the window opened; the holder closes the tab
    html = body(holder.open(url))
    assert "<h1>Waiting for your bank</h1>" in html
    assert "Check again</button>" in html
    response = holder.client.post(path_of(url) + "/confirm",
                                  data={"csrf_token": holder.token()})
    assert response.status_code == 303
    html = body(holder.open(url))
    assert "<h1>Confirm your card with your bank</h1>" in html
    assert "Confirm and pay $45.00</button>" in html
    assert ledger_sum(session, account) == 500
