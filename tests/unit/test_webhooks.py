"""Outgoing webhooks (issue 18 W): the outbox (an event iff its change committed, exactly one
per change under concurrency), Stripe-style signatures checked with verify(), and delivery by
the jobs to a real HTTP receiver on loopback: retries on 500 and on timeouts with backoff,
giving up after 3 days, creation order, Redeliver, two runners at once, refused addresses."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from portal import clock, sealing
from portal.errors import NotAllowed, ValidationFailed
from portal.extensions import db
from portal.models import (
    AccountEvent,
    BillingMode,
    Cause,
    Charge,
    ChargePurpose,
    EventKind,
    LedgerKind,
    Role,
)
from portal.models.webhooks import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from portal.services import alerts, charges, ledger, lifecycle, webhooks
from tests import factories as f
from tests.threads import at_once
from tests.webhook_receiver import Receiver

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def w(app, session):
    clock.freeze(NOW)

    class W:
        pass

    w = W()
    w.owner = f.user(session, "owner@harbor.test")
    w.account = f.standalone(session, "Harbor Dental", owner=w.owner)
    session.commit()
    return w


def endpoint(session, account, url, types="*", actor=None):
    made = webhooks.create(session, account, actor, url, "", [types] if isinstance(types, str)
                           else types, allow_private=True)
    session.commit()
    return made


def deliver(session, timeout=2.0, **kw):
    return webhooks.deliver_due(session, timeout=timeout, allow_private=True, **kw)


def events(session, *where):
    return session.scalars(select(WebhookEvent).where(*where).order_by(WebhookEvent.id)).all()


def delivery_of(session, event):
    session.expire_all()
    return session.scalar(select(WebhookDelivery).where(WebhookDelivery.event_id == event.id))


# ----------------------------------------------------------------------------- signatures

def test_verify_accepts_the_signed_body_and_refuses_anything_else():
    body = b'{"id":"evt_1","type":"ping"}'
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_")
    t = int(NOW.timestamp())
    header = webhooks.signature_header([secret], t, body)
    assert header.startswith(f"t={t},v1=")
    assert webhooks.verify(body, header, secret, now=NOW) == {"id": "evt_1", "type": "ping"}
    with pytest.raises(webhooks.SignatureError, match="no v1= signature matches"):
        webhooks.verify(body, header, webhooks.new_secret(), now=NOW)
    with pytest.raises(webhooks.SignatureError, match="matches"):
        webhooks.verify(body.replace(b"ping", b"pong"), header, secret, now=NOW)
    with pytest.raises(webhooks.SignatureError, match="tolerance"):
        webhooks.verify(body, header, secret, now=NOW + timedelta(seconds=301))
    assert webhooks.verify(body, header, secret, now=NOW + timedelta(seconds=300))
    with pytest.raises(webhooks.SignatureError, match="no t="):
        webhooks.verify(body, "v1=abc", secret, now=NOW)
    # The documented recipe: HMAC-SHA256 under the whole secret of "<t>.<body>", hex.
    import hashlib
    import hmac
    assert f"v1={hmac.new(secret.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}" \
        in header


def test_the_secret_is_stored_sealed_and_shown_once(session, w):
    made = endpoint(session, w.account, "https://example.com/hooks")
    row = session.get(WebhookEndpoint, made.endpoint.id)
    assert made.secret not in row.secret_sealed
    assert sealing.unseal(row.secret_sealed) == made.secret


# ----------------------------------------------------------------------------- the outbox

def test_an_event_is_written_with_its_change_and_names_the_account(session, w):
    made = endpoint(session, w.account, "https://example.com/hooks")
    lifecycle.pause_swapping(session, w.account, w.owner)
    session.commit()
    [event] = events(session)
    body = json.loads(event.payload)
    assert body["id"] == event.public_id and body["id"].startswith("evt_")
    assert body["type"] == "account.paused"
    assert body["created"] == int(NOW.timestamp())
    assert body["account_id"] == w.account.id
    assert body["data"]["account"]["name"] == "Harbor Dental"
    assert body["data"]["account"]["status"] == "swapping_paused"
    assert body["data"]["status"] == "swapping_paused" and body["data"]["reason"] == "paused"
    [delivery] = session.scalars(select(WebhookDelivery)).all()
    assert (delivery.endpoint_id, delivery.status, delivery.attempts) == (
        made.endpoint.id, DeliveryStatus.PENDING, 0)
    assert delivery.next_attempt_at == NOW
    assert delivery.retry_until == NOW + timedelta(days=3)


def test_no_event_for_a_change_that_rolled_back(session, w):
    endpoint(session, w.account, "https://example.com/hooks")
    lifecycle.pause_swapping(session, w.account, w.owner)
    session.flush()
    assert len(events(session)) == 1  # in the transaction...
    session.rollback()
    assert events(session) == []  # ...gone with it
    assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


def test_endpoints_hear_their_types_and_an_agency_hears_its_sub_accounts(session, w):
    agency_owner = f.user(session, "owner@agency.test")
    agency = f.agency(session, "Bright Agency", owner=agency_owner)
    sub = f.sub(session, agency, "Lakeside Roofing")
    session.commit()
    everything = endpoint(session, agency, "https://agency.example.com/all").endpoint
    closes_only = endpoint(session, agency, "https://agency.example.com/c",
                           ["account.closed"]).endpoint
    own = endpoint(session, sub, "https://sub.example.com/hooks").endpoint
    off = endpoint(session, sub, "https://sub.example.com/off").endpoint
    webhooks.set_enabled(session, off, False)
    other = endpoint(session, w.account, "https://other.example.com/hooks").endpoint
    session.commit()

    lifecycle.pause_swapping(session, sub, agency_owner)
    session.commit()
    [event] = events(session)
    assert json.loads(event.payload)["account_id"] == sub.id
    heard = {d.endpoint_id for d in session.scalars(select(WebhookDelivery))}
    assert heard == {everything.id, own.id}
    assert closes_only.id not in heard and off.id not in heard and other.id not in heard


def test_payments_and_recharges_emit_from_the_one_settle_path(session, w):
    method = f.card(session, w.account)
    charge = charges.start(session, w.account, method, ChargePurpose.PAYMENT, 25_00, "k-1",
                           "Payment")
    session.commit()
    assert charges.settle(session, charge, True, "ch_1", "", "") is True
    assert charges.settle(session, charge, False, "ch_1", "x", "y") is False  # settled once
    session.commit()
    [event] = events(session)
    body = json.loads(event.payload)
    assert body["type"] == "payment.succeeded"
    assert body["data"]["charge"]["amount_cents"] == 25_00
    assert body["data"]["charge"]["purpose"] == "payment"
    recharge = charges.start(session, w.account, method, ChargePurpose.RECHARGE, 50_00, "k-2",
                             "Auto recharge")
    session.commit()
    charges.settle(session, recharge, False, "ch_2", "card_declined", "Declined")
    session.commit()
    body = json.loads(events(session)[-1].payload)
    assert body["type"] == "recharge.failed"
    assert body["data"]["charge"]["failure_code"] == "card_declined"


def test_balance_low_once_per_crossing_and_billing_pause(session, w):
    f.funds(session, w.account, 20_00)
    alerts.set_low_balance(session, w.account, "10")
    session.commit()
    for i in range(3):  # 20 → 15 → 5 → -5: one crossing below $10, then a billing pause
        ledger.post(session, w.account, LedgerKind.USAGE, -5_00 if i < 1 else -10_00,
                    "Minutes", f"u-{i}", Cause.USAGE)
        session.commit()
    types = [e.type for e in events(session)]
    assert types.count("balance.low") == 1
    assert "account.paused" in types
    paused = json.loads([e for e in events(session) if e.type == "account.paused"][0].payload)
    assert paused["data"]["reason"] == "billing" and paused["data"]["balance_cents"] < 0


def test_statuses_emit_paused_resumed_closed_reactivated(session, w):
    lifecycle.pause_swapping(session, w.account, w.owner)
    lifecycle.resume(session, w.account, w.owner)
    lifecycle.stop_calls(session, w.account, w.owner)
    session.commit()
    assert [e.type for e in events(session)] == [
        "account.paused", "account.resumed", "account.paused"]
    assert json.loads(events(session)[-1].payload)["data"]["reason"] == "stopped"


# ----------------------------------------------------------------------------- concurrency

def test_exactly_one_event_per_committed_change_under_concurrency(app, session, w):
    """10 threads pause and resume one account at once, three rounds: every status change
    that committed has its event, and no refused one has any."""
    endpoint(session, w.account, "https://example.com/hooks")
    account_id, owner_id = w.account.id, w.owner.id

    def work(i):
        with app.app_context():
            s = db.session
            from portal.models import Account, User

            account, actor = s.get(Account, account_id), s.get(User, owner_id)
            try:
                if i % 2:
                    lifecycle.resume(s, account, actor)
                else:
                    lifecycle.pause_swapping(s, account, actor)
                s.commit()
                return True
            except NotAllowed:
                s.rollback()
                return False
            finally:
                s.remove()

    changed = 0
    for _ in range(3):
        changed += sum(at_once(10, work))
    session.expire_all()
    kinds = session.scalars(select(AccountEvent.kind).where(
        AccountEvent.account_id == account_id).order_by(AccountEvent.id)).all()
    assert len(kinds) == changed >= 1
    types = [e.type for e in events(session)]
    assert types == ["account.paused" if k == EventKind.SWAPPING_PAUSED else "account.resumed"
                     for k in kinds]
    assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == changed


def test_ten_settlers_of_one_charge_make_one_event(app, session, w):
    method = f.card(session, w.account)
    charge = charges.start(session, w.account, method, ChargePurpose.PAYMENT, 10_00, "k-race",
                           "Payment")
    session.commit()
    charge_id = charge.id

    def work(i):
        with app.app_context():
            s = db.session
            from portal.models import Charge

            try:
                settled = charges.settle(s, s.get(Charge, charge_id), True, f"ch_{i}", "", "")
                s.commit()
                return settled
            finally:
                s.remove()

    assert sorted(at_once(10, work)) == [False] * 9 + [True]
    session.expire_all()
    assert [e.type for e in events(session)] == ["payment.succeeded"]


# ----------------------------------------------------------------------------- delivery

def test_delivered_signed_to_a_real_receiver(session, w, receiver):
    made = endpoint(session, w.account, receiver.url)
    lifecycle.pause_swapping(session, w.account, w.owner)
    session.commit()
    run = deliver(session)
    assert (run.succeeded, run.retried, run.failed) == (1, 0, 0)
    [(headers, body)] = receiver.received
    [event] = events(session)
    assert headers["Portal-Event-Id"] == event.public_id
    assert headers["Portal-Event-Type"] == "account.paused"
    assert headers["Content-Type"] == "application/json"
    assert body == event.payload.encode()
    assert webhooks.verify(body, headers["Portal-Signature"], made.secret)["id"] == \
        event.public_id
    delivery = delivery_of(session, event)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.SUCCEEDED, 1, 200)
    assert delivery.delivered_at == NOW and delivery.next_attempt_at is None
    assert deliver(session).sent == 0  # nothing more to send


def test_a_500_is_retried_after_a_minute(session, w, receiver):
    endpoint(session, w.account, receiver.url)
    lifecycle.pause_swapping(session, w.account, w.owner)
    session.commit()
    receiver.answers = [500]
    assert deliver(session).retried == 1
    [event] = events(session)
    delivery = delivery_of(session, event)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.PENDING, 1, 500)
    assert delivery.next_attempt_at == NOW + timedelta(minutes=1)
    assert "500" in delivery.last_error
    assert deliver(session).sent == 0  # not due yet
    clock.freeze(NOW + timedelta(minutes=1))
    assert deliver(session).succeeded == 1
    delivery = delivery_of(session, event)
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) \
        == (DeliveryStatus.SUCCEEDED, 2, 200, "")
    assert len(receiver.received) == 2
    assert receiver.received[0][1] == receiver.received[1][1]  # the same bytes


def test_a_timeout_is_retried(session, w, receiver):
    endpoint(session, w.account, receiver.url)
    lifecycle.pause_swapping(session, w.account, w.owner)
    session.commit()
    receiver.answers, receiver.sleep = ["sleep"], 1.0
    started = time.monotonic()
    assert deliver(session, timeout=0.2).retried == 1
    assert time.monotonic() - started < 1.0
    [event] = events(session)
    delivery = delivery_of(session, event)
    assert delivery.status == DeliveryStatus.PENDING and delivery.last_status_code is None
    assert delivery.last_error == "Timed out after 0.2 s"
    clock.freeze(NOW + timedelta(minutes=1))
    assert deliver(session, timeout=0.2).succeeded == 1


def test_retries_back_off_and_give_up_three_days_after_the_event(session, w, receiver):
    endpoint(session, w.account, receiver.url)
    lifecycle.pause_swapping(session, w.account, w.owner)
    session.commit()
    receiver.default = 500
    [event] = events(session)
    tried_at = []
    for _ in range(20):
        delivery = delivery_of(session, event)
        if delivery.status != DeliveryStatus.PENDING:
            break
        clock.freeze(delivery.next_attempt_at)
        tried_at.append(delivery.next_attempt_at)
        deliver(session)
    delivery = delivery_of(session, event)
    assert delivery.status == DeliveryStatus.FAILED and delivery.next_attempt_at is None
    gaps = [b - a for a, b in zip(tried_at, tried_at[1:], strict=False)]
    assert gaps == [timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30),
                    timedelta(hours=2), timedelta(hours=5), timedelta(hours=10),
                    timedelta(hours=24), timedelta(hours=24)]
    assert delivery.attempts == len(receiver.received) == 9
    assert tried_at[-1] <= NOW + timedelta(days=3)


def test_the_receiver_sees_events_in_creation_order(session, w, receiver):
    endpoint(session, w.account, receiver.url)
    for _ in range(3):
        lifecycle.pause_swapping(session, w.account, w.owner)
        session.commit()
        lifecycle.resume(session, w.account, w.owner)
        session.commit()
    created = [e.public_id for e in events(session)]
    assert len(created) == 6
    assert deliver(session).succeeded == 6
    assert [b["id"] for b in receiver.bodies()] == created
    assert [b["type"] for b in receiver.bodies()] == ["account.paused", "account.resumed"] * 3


def test_an_endpoint_that_fails_gets_nothing_more_in_that_run(session, w, receiver):
    endpoint(session, w.account, receiver.url)
    lifecycle.pause_swapping(session, w.account, w.owner)
    lifecycle.resume(session, w.account, w.owner)
    session.commit()
    receiver.answers = [500]
    run = deliver(session)
    assert (run.retried, run.succeeded) == (1, 0) and len(receiver.received) == 1
    run = deliver(session)  # the second event is due; the first waits for its minute
    assert run.succeeded == 1


def test_redeliver_sends_it_again(session, w, receiver):
    made = endpoint(session, w.account, receiver.url)
    lifecycle.pause_swapping(session, w.account, w.owner)
    session.commit()
    deliver(session)
    [event] = events(session)
    delivery = delivery_of(session, event)
    later = NOW + timedelta(days=5)
    clock.freeze(later)
    webhooks.redeliver(session, w.account, delivery.id)
    session.commit()
    delivery = delivery_of(session, event)
    assert (delivery.status, delivery.next_attempt_at) == (DeliveryStatus.PENDING, later)
    assert delivery.retry_until == later + timedelta(days=3)
    assert deliver(session).succeeded == 1
    assert [b["id"] for b in receiver.bodies()] == [event.public_id] * 2
    assert delivery_of(session, event).attempts == 1  # counted afresh from the Redeliver
    headers = receiver.received[1][0]
    assert webhooks.verify(receiver.received[1][1], headers["Portal-Signature"], made.secret)
    other = f.standalone(session, "Other")
    session.commit()
    with pytest.raises(Exception, match="No such delivery"):
        webhooks.redeliver(session, other, delivery.id)


def test_rotation_signs_with_both_secrets_for_a_day(session, w, receiver):
    made = endpoint(session, w.account, receiver.url)
    new = webhooks.rotate(session, session.get(WebhookEndpoint, made.endpoint.id))
    session.commit()
    assert new != made.secret
    lifecycle.pause_swapping(session, w.account, w.owner)
    session.commit()
    deliver(session)
    headers, body = receiver.received[0]
    assert headers["Portal-Signature"].count("v1=") == 2
    assert webhooks.verify(body, headers["Portal-Signature"], made.secret)
    assert webhooks.verify(body, headers["Portal-Signature"], new)
    clock.freeze(NOW + timedelta(hours=24, seconds=1))
    lifecycle.resume(session, w.account, w.owner)
    session.commit()
    deliver(session)
    headers, body = receiver.received[1]
    assert headers["Portal-Signature"].count("v1=") == 1
    assert webhooks.verify(body, headers["Portal-Signature"], new)
    with pytest.raises(webhooks.SignatureError):
        webhooks.verify(body, headers["Portal-Signature"], made.secret)


def test_two_runners_at_once_send_each_delivery_once(app, session, w, receiver):
    endpoint(session, w.account, receiver.url)
    endpoint(session, w.account, receiver.url + "?second")
    for _ in range(3):
        lifecycle.pause_swapping(session, w.account, w.owner)
        lifecycle.resume(session, w.account, w.owner)
    session.commit()

    def work(i):
        with app.app_context():
            try:
                return deliver(db.session).succeeded
            finally:
                db.session.remove()

    assert sum(at_once(4, work)) == 12
    assert len(receiver.received) == 12
    pairs = [(h["Portal-Event-Id"], b) for h, b in receiver.received]
    assert len({p[0] for p in pairs}) == 6
    session.expire_all()
    assert session.scalars(select(WebhookDelivery.attempts)).all() == [1] * 12


def test_disabled_endpoints_wait_and_test_events_go_to_one_endpoint(session, w, receiver):
    made = endpoint(session, w.account, receiver.url)
    second = endpoint(session, w.account, receiver.url + "?2").endpoint
    lifecycle.pause_swapping(session, w.account, w.owner)
    session.commit()
    webhooks.set_enabled(session, session.get(WebhookEndpoint, second.id), False)
    session.commit()
    assert deliver(session).succeeded == 1
    ping = webhooks.send_test(session, session.get(WebhookEndpoint, made.endpoint.id))
    session.commit()
    assert deliver(session).succeeded == 1
    assert receiver.bodies()[-1]["type"] == "ping"
    assert receiver.bodies()[-1]["id"] == ping.public_id
    webhooks.set_enabled(session, session.get(WebhookEndpoint, second.id), True)
    session.commit()
    assert deliver(session).succeeded == 1  # the disabled one's waiting delivery


# ----------------------------------------------------------------------------- addresses

@pytest.mark.parametrize("url, message", [
    ("", "Enter the URL"),
    ("ftp://example.com/x", "must start with https://"),
    ("javascript:alert(1)", "must start with https://"),
    ("https:///nohost", "needs a host"),
    ("https://user:pw@example.com/", "Leave user names"),
    ("http://127.0.0.1:8000/hooks", "private or local"),
    ("http://localhost/hooks", "localhost"),
    ("http://10.1.2.3/hooks", "private or local"),
    ("http://192.168.0.10/", "private or local"),
    ("http://169.254.169.254/latest/meta-data", "private or local"),
    ("http://[::1]/", "private or local"),
    ("http://[::ffff:127.0.0.1]/", "private or local"),
    ("http://0.0.0.0/", "private or local"),
])
def test_urls_refused(url, message):
    with pytest.raises(ValidationFailed) as e:
        webhooks.check_url(url, allow_private=False)
    assert message in e.value.errors["url"]


def test_public_and_allowed_private_urls_pass():
    assert webhooks.check_url(" https://93.184.216.34/hooks ", False) == \
        "https://93.184.216.34/hooks"
    assert webhooks.check_url("http://127.0.0.1:9/x", allow_private=True)


def test_a_private_address_is_refused_at_delivery_too(session, w, receiver):
    endpoint(session, w.account, receiver.url)
    lifecycle.pause_swapping(session, w.account, w.owner)
    session.commit()
    run = webhooks.deliver_due(session, timeout=1, allow_private=False)
    assert run.retried == 1 and receiver.received == []
    [event] = events(session)
    assert delivery_of(session, event).last_error.startswith("Refused:")


def test_the_address_checked_is_the_address_connected_to(monkeypatch, receiver):
    """DNS rebinding: a name that answers a public address once and the loopback the next
    time. The host is resolved once per delivery and only a checked address is connected
    to; an answer that holds any private address is refused, the receiver hears nothing."""
    import socket

    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    answers = [["93.184.216.34"], ["127.0.0.1"]]
    asked, connected = [], []

    def resolve(host, port_, *args):
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port_))
                for ip in answers[min(len(asked), len(answers)) - 1]]

    def connect(address, *args):
        connected.append(address)
        raise ConnectionRefusedError("(no network in this test)")

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", resolve)
    monkeypatch.setattr(webhooks.socket, "create_connection", connect)
    url = f"http://rebind.example.test:{port}/hook"
    answer = webhooks.post(url, b"{}", {}, timeout=2)
    assert (asked, connected) == (["rebind.example.test"], [("93.184.216.34", port)])
    assert not answer.ok and answer.error.startswith("Could not connect")

    answer = webhooks.post(url, b"{}", {}, timeout=2)  # now it answers the loopback
    assert answer.error == ("Refused: Events can't be sent to a private or local network "
                            "address.")
    assert connected == [("93.184.216.34", port)] and receiver.received == []

    answers[:] = [["93.184.216.34", "10.0.0.7"]]  # one private address among public ones
    asked.clear()
    assert webhooks.post(url, b"{}", {}, timeout=2).error.startswith("Refused:")
    secure = webhooks.post(url.replace("http:", "https:"), b"{}", {}, timeout=2)
    assert secure.error.startswith("Refused:") and asked == ["rebind.example.test"] * 2
    assert connected == [("93.184.216.34", port)]


def test_a_loopback_receiver_is_reached_when_private_addresses_are_allowed(receiver):
    answer = webhooks.post(receiver.url, b'{"x": 1}', {"Content-Type": "application/json"},
                           timeout=5, allow_private=True)
    assert answer.ok and len(receiver.received) == 1
    assert webhooks.post(receiver.url, b"{}", {}, timeout=5).error.startswith("Refused:")
    assert len(receiver.received) == 1


def test_only_owners_and_admins_manage(session, w):
    webhooks.check_manager(Role.OWNER)
    webhooks.check_manager(Role.ADMIN)
    for role in (Role.BILLING, Role.USER, None):
        with pytest.raises(NotAllowed):
            webhooks.check_manager(role)


def test_form_errors_together(session, w):
    with pytest.raises(ValidationFailed) as e:
        webhooks.create(session, w.account, w.owner, "ftp://x", "d" * 201, [], True)
    assert set(e.value.errors) == {"url", "description", "events"}
    with pytest.raises(ValidationFailed) as e:
        webhooks.create(session, w.account, w.owner, "https://example.com", "",
                        ["account.paused", "nope"], True)
    assert e.value.errors == {"events": "Unknown event type: nope."}


def test_the_jobs_command_delivers(app, session, w, receiver):
    endpoint(session, w.account, receiver.url)
    lifecycle.pause_swapping(session, w.account, w.owner)
    session.commit()
    result = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert result.exit_code == 0, result.output
    assert "webhooks-deliver: 1 delivered, 0 to retry, 0 failed" in result.output
    assert len(receiver.received) == 1


def test_purge_keeps_pending_and_recent_events(session, w):
    endpoint(session, w.account, "https://example.com/hooks")
    lifecycle.pause_swapping(session, w.account, w.owner)
    session.commit()
    [event] = events(session)
    delivery_of(session, event).status = DeliveryStatus.SUCCEEDED
    session.commit()
    assert webhooks.purge(session, NOW + timedelta(days=29)) == 0
    assert webhooks.purge(session, NOW + timedelta(days=31)) == 1
    session.commit()
    assert events(session) == []


def test_billing_mode_change_is_the_sub_accounts_event(session):
    clock.freeze(NOW)
    owner = f.user(session, "o@agency.test")
    agency = f.agency(session, "Bright Agency", owner=owner)
    sub = f.sub(session, agency, "Lakeside", billing=BillingMode.CUSTOMER)
    session.commit()
    from billing_links import service as links

    links.add_to_agency_billing(session, agency, sub, owner)
    session.commit()
    [event] = [e for e in events(session) if e.type == "billing_mode.changed"]
    body = json.loads(event.payload)
    assert body["account_id"] == sub.id
    assert body["data"]["billing_mode"] == "agency"
    assert body["data"]["account"]["agency_id"] == agency.id


# ----------------------------------------------------------------------------- the other emitters

def _paid(session, account, key="k-paid", cents=30_00):
    method = f.card(session, account)
    charge = charges.start(session, account, method, ChargePurpose.PAYMENT, cents, key,
                           "Payment")
    session.commit()
    charges.settle(session, charge, True, "ch_paid", "", "")
    session.commit()
    return charge


def test_refund_and_dispute_events(session, w):
    from portal.services import processor_events, refunds

    charge = _paid(session, w.account)
    refund = refunds.start(session, charge, "a test refund")
    session.commit()
    assert refunds.settle(session, refund, True, "re_1", "") is True
    session.commit()
    body = json.loads(events(session, WebhookEvent.type == "refund.succeeded")[0].payload)
    assert body["data"]["refund"]["amount_cents"] == 30_00
    assert body["data"]["refund"]["charge_id"] == charge.id

    other = _paid(session, w.account, "k-disputed", 12_00)
    session.execute(update(Charge).where(Charge.id == other.id)
                    .values(gateway_reference="pi_disputed"))
    session.commit()
    dispute = processor_events._open_dispute(
        session, {"id": "dp_1", "payment_intent": "pi_disputed", "amount": 12_00,
                  "reason": "fraudulent", "status": "needs_response"}, NOW)
    session.commit()
    assert dispute is not None
    processor_events._open_dispute(session, {"id": "dp_1", "payment_intent": "pi_disputed"},
                                   NOW)  # a replay: the same dispute, no second event
    session.commit()
    [event] = events(session, WebhookEvent.type == "dispute.created")
    data = json.loads(event.payload)["data"]["dispute"]
    assert (data["reference"], data["amount_cents"], data["reason"]) == (
        "dp_1", 12_00, "fraudulent")


def test_budget_threshold_goes_to_the_sub_account_and_its_agency(session):
    from portal.services import budgets, usage

    clock.freeze(NOW)
    owner = f.user(session, "o@agency.test")
    agency = f.agency(session, "Bright Agency", owner=owner)
    f.funds(session, agency, 100_00)
    sub = f.sub(session, agency, "Harbor Dental")
    session.commit()
    heard = endpoint(session, agency, "https://agency.example.com/hooks").endpoint
    budgets.set_budget(session, sub, owner, 10_00, thresholds=[50, 100])
    session.commit()
    usage.post(session, sub, {"minutes": 120}, "b-1")  # $6.00 of $10.00: 50%
    session.commit()
    usage.post(session, sub, {"minutes": 10}, "b-2")  # 65%: nothing new
    session.commit()
    [event] = events(session, WebhookEvent.type == "budget.threshold")
    body = json.loads(event.payload)
    assert body["account_id"] == sub.id
    assert body["data"]["threshold_percent"] == 50
    assert (body["data"]["budget_cents"], body["data"]["spent_cents"]) == (10_00, 6_00)
    assert session.scalar(select(WebhookDelivery.endpoint_id).where(
        WebhookDelivery.event_id == event.id)) == heard.id


def test_statement_ready(session, w):
    from datetime import date

    from portal.services import statement_files

    file = statement_files.request(session, w.account, w.owner, date(2026, 11, 1),
                                   date(2026, 11, 30))
    session.commit()
    statement_files.finish(session, file, b"%PDF-1.7 x")
    session.commit()
    [event] = events(session, WebhookEvent.type == "statement.ready")
    data = json.loads(event.payload)["data"]["statement"]
    assert (data["id"], data["period_from"], data["period_to"]) == (
        file.id, "2026-11-01", "2026-11-30")
    assert (data["source"], data["pdf_path"]) == (
        "prepared", f"/api/v1/accounts/{w.account.id}/statement-files/{file.id}.pdf")


def test_a_paid_billing_link_tells_payment_mode_change_and_link_paid(session):
    """The customer pays a billing link: the payment, the sub-account's billing mode and the
    link paid, each once, in the payment's transaction; the agency hears all three."""
    from portal.services.gateway import SandboxGateway
    from tests.unit import test_billing_links as links

    clock.freeze(NOW)
    gw = SandboxGateway()
    owner = f.user(session, "avery@example.test")
    agency = f.agency(session, "Northwind Agency", owner=owner)
    sub = f.sub(session, agency, "Bayside Dental", billing=BillingMode.AGENCY)
    session.commit()
    endpoint(session, agency, "https://agency.example.com/hooks")
    world = type("W", (), {"agency": agency, "bayside": sub, "avery": owner})
    _request, url = links.send(session, world)
    assert links.pay(session, gw, url, amount="30").switched is True
    types = [e.type for e in events(session)]
    assert sorted(types) == ["billing_link.paid", "billing_mode.changed", "payment.succeeded"]
    paid = json.loads(events(session, WebhookEvent.type == "billing_link.paid")[0].payload)
    assert paid["account_id"] == sub.id
    assert paid["data"]["billing_request"]["amount_cents"] == 25_00
    assert paid["data"]["charge"]["amount_cents"] == 30_00
    assert paid["data"]["account"]["billing_mode"] == "customer"
    assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 3


def test_a_dead_endpoints_backlog_does_not_hold_up_the_others(session, w, receiver,
                                                               monkeypatch):
    """Reading due deliveries a few at a time: the dead endpoint's backlog (first in event
    order) is tried once, then skipped, and the live endpoint gets all of its events in the
    same run."""
    monkeypatch.setattr(webhooks, "BATCH", 3)
    dead = endpoint(session, w.account, "http://127.0.0.1:1/refused").endpoint
    for _ in range(4):
        lifecycle.pause_swapping(session, w.account, w.owner)
        lifecycle.resume(session, w.account, w.owner)
    session.commit()
    endpoint(session, w.account, receiver.url)  # hears only what comes next
    for _ in range(2):
        lifecycle.pause_swapping(session, w.account, w.owner)
        lifecycle.resume(session, w.account, w.owner)
    session.commit()
    run = deliver(session)
    assert run.retried == 1  # the dead endpoint: one attempt, then skipped
    assert run.succeeded == 4 == len(receiver.received)  # all of the live one's, this run
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == dead.id, WebhookDelivery.attempts == 0)) == 11
    tried = session.scalar(select(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == dead.id, WebhookDelivery.attempts == 1))
    assert tried.last_error.startswith("Could not connect")
    assert deliver(session, limit=2).sent == 1  # the dead one's next, and it is skipped


def test_a_redirect_is_an_answer_not_followed(session, w, receiver):
    endpoint(session, w.account, receiver.url)
    lifecycle.pause_swapping(session, w.account, w.owner)
    session.commit()
    receiver.answers = [302]
    assert deliver(session).retried == 1
    assert len(receiver.received) == 1  # nothing followed
    [event] = events(session)
    assert delivery_of(session, event).last_status_code == 302
