"""Issue 18 (W): outgoing webhooks.

- Endpoints: an account's owners and admins register URLs (Settings → Developers →
  Webhooks), each hearing every event type or the ones chosen. Its signing secret
  (`whsec_…`) is shown once and kept sealed (portal/sealing.py): the app signs with it.
  Rotating keeps the previous secret signing beside the new one for ROTATION_OVERLAP.
- Events: `emit` writes the event, and one pending delivery per enabled endpoint that hears
  its type (the account's own and, for a sub-account, its agency's), in the caller's
  transaction, next to the change it tells of: an outbox. A change that rolls back leaves no
  event; one that commits has exactly one. Each is emitted where its change is written (the
  services, not the views), so the pages, /api/v1, the bulk actions and the jobs all emit.
- Deliveries: the jobs (`deliver_due`, step "webhooks-deliver") claim each due delivery with
  a conditional UPDATE (two runners never send the same attempt), POST the event's JSON
  signed as Stripe signs (`Portal-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
  "<t>.<body>")>`), and record the answer: 2xx succeeded; else retried on RETRY_SCHEDULE
  until RETRY_WINDOW after the event, then failed. Due deliveries go oldest event first.

Money in payloads is integer cents (`*_cents`), like everywhere else in the portal."""

import functools
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import secrets
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from portal import sealing
from portal.clock import now as clock_now
from portal.errors import ConfirmationNeeded, NotAllowed, NotFound, ValidationFailed
from portal.models import Account, Role, User
from portal.models.webhooks import (
    ALL_EVENTS,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from portal.transactions import begin_write

# The types an endpoint can choose, with what the page says of each.
EVENT_TYPES: dict[str, str] = {
    "payment.succeeded": "A payment succeeded (Make a Payment, a plan fee, a billing link)",
    "payment.failed": "A payment failed",
    "recharge.succeeded": "An auto recharge succeeded",
    "recharge.failed": "An auto recharge failed",
    "balance.low": "The balance dropped below the low-balance alert amount",
    "budget.threshold": "A sub-account reached a budget alert percentage",
    "account.paused": "An account was paused (by a person, for billing or by its budget)",
    "account.resumed": "An account was resumed",
    "account.closed": "An account was closed",
    "account.reactivated": "An account was reactivated",
    "billing_mode.changed": "A sub-account moved to or from agency billing",
    "billing_link.paid": "A customer paid a billing link",
    "statement.ready": "A statement is ready: a big one the jobs prepared, or a scheduled one sent",
    "refund.succeeded": "A refund went through",
    "refund.failed": "A refund was refused by the processor",
    "dispute.created": "A cardholder disputed a payment",
}
PING = "ping"  # "Send test event": to one endpoint only, whatever it hears

SECRET_PREFIX = "whsec_"
ROTATION_OVERLAP = timedelta(hours=24)  # the previous secret still signs this long
# After the n-th failed attempt the next is RETRY_SCHEDULE[n-1] later (the last one
# repeating), until RETRY_WINDOW after the event (or after a Redeliver): then failed.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
    timedelta(hours=5), timedelta(hours=10), timedelta(hours=24))
RETRY_WINDOW = timedelta(days=3)
TIMEOUT_SECONDS = 10.0
# A claimed delivery is not due again for this long (a runner that died mid-send: retried
# after it); longer than any send (TIMEOUT_SECONDS).
CLAIM_LEASE = timedelta(minutes=5)
EVENT_RETENTION = timedelta(days=30)  # events (and their finished deliveries) kept this long
SIGNATURE_TOLERANCE = 300  # seconds: verify() refuses older (or newer) timestamps
BATCH = 200  # due deliveries read at a time
MAX_PER_RUN = 2000  # attempts per jobs run (the next run goes on)
MAX_URL = 2048
MAX_DESCRIPTION = 200
MAX_ENDPOINTS = 16  # per account
LOG_LIMIT = 50


# ----------------------------------------------------------------------------- signing

class SignatureError(ValueError):
    """verify(): the header is missing, malformed, too old, or matches no secret."""


def sign(secret: str, timestamp: int, body: bytes | str) -> str:
    """The v1 signature: hex HMAC-SHA256 under the secret (the whole `whsec_…` string)
    of "<timestamp>.<body>"."""
    if isinstance(body, str):
        body = body.encode()
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                    hashlib.sha256).hexdigest()


def signature_header(secrets_: Iterable[str], timestamp: int, body: bytes | str) -> str:
    """`t=<unix>,v1=<sig>[,v1=<sig under the previous secret>]`."""
    return ",".join([f"t={timestamp}"] + [f"v1={sign(s, timestamp, body)}" for s in secrets_])


def verify(payload: bytes | str, header: str, secret: str,
           tolerance: int = SIGNATURE_TOLERANCE, now: datetime | None = None) -> dict:
    """What a receiver does with a delivery: check `Portal-Signature` against its secret,
    in constant time, and that the timestamp is within `tolerance` seconds of now (a
    replayed old delivery fails). Any one `v1=` matching is enough (during a rotation two
    are sent). Returns the parsed event; raises SignatureError."""
    if isinstance(payload, str):
        payload = payload.encode()
    timestamp, signatures = None, []
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("Portal-Signature has no t= timestamp or no v1= signature")
    moment = (now or clock_now()).timestamp()
    if tolerance and abs(moment - timestamp) > tolerance:
        raise SignatureError("Portal-Signature's timestamp is outside the tolerance")
    expected = sign(secret, timestamp, payload)
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise SignatureError("no v1= signature matches the secret")
    return json.loads(payload)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """What signs a delivery now: the secret, and the previous one during its overlap."""
    signing = [sealing.unseal(endpoint.secret_sealed)]
    if endpoint.previous_secret_sealed and endpoint.previous_secret_expires_at \
            and endpoint.previous_secret_expires_at > now:
        signing.append(sealing.unseal(endpoint.previous_secret_sealed))
    return signing


# ----------------------------------------------------------------------------- URLs

def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_url(raw, allow_private: bool = False, resolve: bool = True) -> str:
    """An endpoint's URL: http(s), with a host; outside testing and development
    (`allow_private` False) none that is or resolves to a loopback, private, link-local or
    otherwise non-public address (the portal would be posting into its own network).
    Raises ValidationFailed({"url": ...})."""
    url = (raw or "").strip() if isinstance(raw, str) else ""
    if not url:
        raise ValidationFailed({"url": "Enter the URL to send events to, like "
                                       "https://example.com/webhooks."})
    if len(url) > MAX_URL:
        raise ValidationFailed({"url": f"The URL is at most {MAX_URL:,} characters."})
    try:
        parts = urllib.parse.urlsplit(url)
        host, _port = parts.hostname, parts.port
    except ValueError:
        raise ValidationFailed({"url": "That URL can't be read."}) from None
    if parts.scheme not in ("http", "https"):
        raise ValidationFailed({"url": "The URL must start with https:// (or http://)."})
    if not host:
        raise ValidationFailed({"url": "The URL needs a host name."})
    if parts.username or parts.password:
        raise ValidationFailed({"url": "Leave user names and passwords out of the URL: "
                                       "check the Portal-Signature header instead."})
    if not allow_private:
        refusal = private_address(host, resolve)
        if refusal:
            raise ValidationFailed({"url": refusal})
    return url


def private_address(host: str, resolve: bool = True) -> str | None:
    """Why `host` can't be posted to (it is, or resolves to, a non-public address), or
    None. A name that doesn't resolve (yet) is not refused here: its deliveries fail."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return "Events can't be sent to this machine (localhost)."
    try:
        addresses = [host] if _is_ip(host) else (
            sorted({info[4][0] for info in socket.getaddrinfo(host, None)}) if resolve else [])
    except (OSError, UnicodeError):
        return None
    if any(_private(address) for address in addresses):
        return "Events can't be sent to a private or local network address."
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------- endpoints

@dataclass(frozen=True)
class Made:
    endpoint: WebhookEndpoint
    secret: str  # shown once


def parse_types(raw) -> str:
    """The event types chosen: "*" (All events) or some of EVENT_TYPES."""
    values = [raw] if isinstance(raw, str) else list(raw or [])
    if ALL_EVENTS in values:
        return ALL_EVENTS
    unknown = [v for v in values if v not in EVENT_TYPES]
    if unknown:
        raise ValidationFailed({"events": f"Unknown event type: {', '.join(map(str, unknown))}."})
    chosen = [t for t in EVENT_TYPES if t in values]
    if not chosen:
        raise ValidationFailed({"events": "Choose the events to send, or All events."})
    return " ".join(chosen)


def check_manager(role: Role | None) -> None:
    if role not in (Role.OWNER, Role.ADMIN):
        raise NotAllowed("Only the account's owners and admins manage webhooks.")


def create(session: Session, account: Account, actor: User | None, url, description,
           types, allow_private: bool = False) -> Made:
    if account.is_canceled:
        raise NotAllowed(f"{account.name} is canceled: it takes no new webhook endpoints.")
    errors: dict[str, str] = {}
    try:
        url = check_url(url, allow_private)
    except ValidationFailed as e:
        errors.update(e.errors)
    description = (description or "").strip() if isinstance(description, str) else ""
    if len(description) > MAX_DESCRIPTION:
        errors["description"] = f"At most {MAX_DESCRIPTION} characters."
    try:
        chosen = parse_types(types)
    except ValidationFailed as e:
        errors.update(e.errors)
    if not errors and len(endpoints(session, account)) >= MAX_ENDPOINTS:
        errors["url"] = f"An account has at most {MAX_ENDPOINTS} webhook endpoints."
    if errors:
        raise ValidationFailed(errors)
    secret = new_secret()
    endpoint = WebhookEndpoint(account_id=account.id, url=url, description=description,
                               event_types=chosen, secret_sealed=sealing.seal(secret),
                               enabled=True, created_by_id=actor.id if actor else None,
                               created_at=clock_now())
    session.add(endpoint)
    session.flush()
    return Made(endpoint, secret)


def endpoints(session: Session, account: Account) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.account_id == account.id).order_by(WebhookEndpoint.id)))


def get(session: Session, account: Account, endpoint_id) -> WebhookEndpoint:
    """The account's endpoint (another account's is not found)."""
    try:
        endpoint_id = int(endpoint_id)
    except (TypeError, ValueError):
        raise NotFound("No such webhook endpoint.") from None
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.account_id != account.id:
        raise NotFound("No such webhook endpoint.")
    return endpoint


def rotate(session: Session, endpoint: WebhookEndpoint, now: datetime | None = None) -> str:
    """A new secret (returned, shown once); the current one keeps signing beside it for
    ROTATION_OVERLAP, so the receiver can switch without losing a delivery."""
    now = now or clock_now()
    secret = new_secret()
    endpoint.previous_secret_sealed = endpoint.secret_sealed
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
    endpoint.secret_sealed = sealing.seal(secret)
    session.flush()
    return secret


def set_enabled(session: Session, endpoint: WebhookEndpoint, enabled: bool) -> None:
    """A disabled endpoint gets no new deliveries, and its pending ones wait (they go once
    it is enabled again, if still within their retry window)."""
    endpoint.enabled = enabled
    session.flush()


def remove(session: Session, endpoint: WebhookEndpoint, confirmed) -> None:
    """Delete the endpoint and its delivery log (the events stay, for the account's other
    endpoints and the API). Needs the confirmation field."""
    if str(confirmed or "") not in ("1", "yes", "true", "on"):
        raise ConfirmationNeeded(f"Confirm deleting the endpoint {endpoint.url}.")
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    session.delete(endpoint)
    session.flush()


def send_test(session: Session, endpoint: WebhookEndpoint,
              now: datetime | None = None) -> WebhookEvent:
    """"Send test event": a `ping` to this endpoint only, delivered by the next jobs run
    like any other (a disabled endpoint's waits until it is enabled)."""
    account = session.get(Account, endpoint.account_id)
    return _write(session, account, PING, {"message": "A test event from the portal.",
                                            "endpoint_id": endpoint.id},
                  [endpoint], now or clock_now())


# ----------------------------------------------------------------------------- events

def account_json(account: Account) -> dict:
    return {"id": account.id, "name": account.name, "kind": account.kind.value,
            "agency_id": account.parent_id, "status": account.status.value,
            "billing_mode": account.billing_mode.value}


def listeners(session: Session, account: Account, event_type: str) -> list[WebhookEndpoint]:
    """The enabled endpoints that hear `event_type` about `account`: its own and, for a
    sub-account, its agency's."""
    owners = [account.id] + ([account.parent_id] if account.parent_id else [])
    return [e for e in session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.account_id.in_(owners), WebhookEndpoint.enabled.is_(True))
        .order_by(WebhookEndpoint.id)) if e.hears(event_type)]


def emit(session: Session, account: Account | int, event_type: str, data: dict,
         now: datetime | None = None) -> WebhookEvent:
    """Write the event `event_type` about `account` (its `data`: JSON, money in cents) and
    its deliveries, in the caller's transaction (the caller commits with its change)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    if isinstance(account, int):
        account = session.get(Account, account)
    return _write(session, account, event_type, data,
                  listeners(session, account, event_type), now or clock_now())


def _write(session: Session, account: Account, event_type: str, data: dict,
           to: list[WebhookEndpoint], now: datetime) -> WebhookEvent:
    public_id = "evt_" + secrets.token_hex(12)
    body = {"id": public_id, "type": event_type, "created": int(now.timestamp()),
            "account_id": account.id,
            "data": {"account": account_json(account), **data}}
    event = WebhookEvent(public_id=public_id, account_id=account.id, type=event_type,
                         payload=json.dumps(body, separators=(",", ":"), default=str),
                         created_at=now)
    session.add(event)
    for endpoint in to:
        session.add(WebhookDelivery(event=event, endpoint_id=endpoint.id,
                                    status=DeliveryStatus.PENDING, attempts=0,
                                    next_attempt_at=now, retry_until=now + RETRY_WINDOW))
    return event


def charge_settled(session: Session, charge, succeeded: bool, now: datetime) -> WebhookEvent:
    """charges.settle: payment.* (or recharge.* for an auto recharge)."""
    kind = "recharge" if charge.purpose.value == "recharge" else "payment"
    return emit(session, charge.account_id, f"{kind}.{'succeeded' if succeeded else 'failed'}",
                {"charge": charge_json(charge)}, now)


def charge_json(charge) -> dict:
    return {"id": charge.id, "receipt_number": charge.receipt_number,
            "purpose": charge.purpose.value, "status": charge.status.value,
            "amount_cents": charge.amount_cents, "currency": "usd",
            "failure_code": charge.failure_code or None,
            "failure_message": charge.failure_message or None,
            "created": int(charge.created_at.timestamp())}


def refund_settled(session: Session, refund, now: datetime) -> WebhookEvent:
    """refunds.settle (the portal's own refunds), or a refund made at the processor."""
    succeeded = refund.status.value == "succeeded"
    return emit(session, refund.account_id,
                "refund.succeeded" if succeeded else "refund.failed",
                {"refund": {"id": refund.id, "charge_id": refund.charge_id,
                            "amount_cents": refund.amount_cents, "currency": "usd",
                            "reason": refund.reason, "status": refund.status.value,
                            "source": refund.source.value}}, now)


def refund_at_processor(session: Session, charge, amount_cents: int,
                        now: datetime) -> WebhookEvent:
    """A refund made at the processor (its Dashboard): processor_events applies it."""
    return emit(session, charge.account_id, "refund.succeeded",
                {"refund": {"id": None, "charge_id": charge.id, "amount_cents": amount_cents,
                            "currency": "usd", "reason": "refunded at the payment processor",
                            "status": "succeeded", "source": "processor"}}, now)


def dispute_created(session: Session, dispute, now: datetime) -> WebhookEvent:
    return emit(session, dispute.account_id, "dispute.created",
                {"dispute": {"id": dispute.id, "reference": dispute.reference,
                             "charge_id": dispute.charge_id,
                             "amount_cents": dispute.amount_cents, "currency": "usd",
                             "reason": dispute.reason, "status": dispute.status}}, now)


def balance_low(session: Session, account: Account, limit_cents: int, balance_cents: int,
                now: datetime) -> WebhookEvent:
    return emit(session, account, "balance.low",
                {"balance_cents": balance_cents, "low_balance_cents": limit_cents}, now)


def budget_threshold(session: Session, sub: Account, threshold: int, budget_cents: int,
                     spent_cents: int, now: datetime) -> WebhookEvent:
    return emit(session, sub, "budget.threshold",
                {"threshold_percent": threshold, "budget_cents": budget_cents,
                 "spent_cents": spent_cents, "month": f"{now:%Y-%m}"}, now)


def billing_link_paid(session: Session, sub: Account, request, charge,
                      now: datetime) -> WebhookEvent:
    return emit(session, sub, "billing_link.paid",
                {"billing_request": {"id": request.id, "email": request.email,
                                     "amount_cents": request.amount_cents,
                                     "status": request.status.value},
                 "charge": charge_json(charge)}, now)


def statement_ready(session: Session, file, now: datetime) -> WebhookEvent:
    """A big statement the jobs prepared (statement_files): downloadable until it expires."""
    return emit(session, file.account_id, "statement.ready",
                {"statement": {"source": "prepared", "id": file.id, "schedule_id": None,
                               "period_from": file.period_from.isoformat(),
                               "period_to": file.period_to.isoformat(), "pages": file.pages,
                               "size_bytes": file.size,
                               "expires": int(file.expires_at.timestamp())
                               if file.expires_at else None,
                               "pdf_path": f"/api/v1/accounts/{file.account_id}"
                                           f"/statement-files/{file.id}.pdf"}}, now)


def statement_sent(session: Session, account: Account, schedule, period, pdf: bytes,
                   now: datetime) -> WebhookEvent:
    """A scheduled statement was queued to its recipient (jobs.statement_schedules), in the
    transaction that claims its period: the same statement is made again on request."""
    start, end = period
    return emit(session, account, "statement.ready",
                {"statement": {"source": "schedule", "id": None, "schedule_id": schedule.id,
                               "period_from": start.isoformat(), "period_to": end.isoformat(),
                               "pages": None, "size_bytes": len(pdf), "expires": None,
                               "pdf_path": f"/api/v1/accounts/{account.id}/statements.pdf"
                                           f"?from={start.isoformat()}&to={end.isoformat()}"}},
                now)


# lifecycle.record's account events → (webhook type, the status it leaves).
_ACCOUNT_EVENTS = {
    "swapping_paused": ("account.paused", "swapping_paused"),
    "calls_stopped": ("account.paused", "calls_stopped"),
    "billing_paused": ("account.paused", "billing_paused"),
    "budget_paused": ("account.paused", "budget_paused"),
    "resumed": ("account.resumed", "active"),
    "billing_resumed": ("account.resumed", "active"),
    "budget_resumed": ("account.resumed", "active"),
    "closed": ("account.closed", "canceled"),
    "agency_canceled": ("account.closed", "canceled"),
    "reactivated": ("account.reactivated", "active"),
}


def account_changed(session: Session, account: Account | int, kind: str, details: dict,
                    now: datetime) -> WebhookEvent | None:
    """lifecycle.record's hook: every status change of an account is recorded there, in
    its transaction, after the conditional update that made it (so once per change)."""
    kind = str(getattr(kind, "value", kind))
    if kind == "billing_mode_changed":  # recorded on the agency; the event is the sub's
        sub = session.get(Account, details.get("account_id"))
        if sub is None:
            return None
        mode = details.get("billing")
        return emit(session, sub, "billing_mode.changed",
                    {"account": {**account_json(sub), "billing_mode": mode},
                     "billing_mode": mode,
                     "moved_cents": details.get("moved_cents"),
                     "paid_cents": details.get("paid_cents")}, now)
    mapped = _ACCOUNT_EVENTS.get(kind)
    if mapped is None:
        return None
    if isinstance(account, int):
        account = session.get(Account, account)
    event_type, status = mapped
    reason = {"swapping_paused": "paused", "calls_stopped": "stopped",
              "billing_paused": "billing", "budget_paused": "budget",
              "billing_resumed": "billing", "budget_resumed": "budget"}.get(kind, kind)
    # The status it leaves (the account object may not have been read back yet).
    data = {"account": {**account_json(account), "status": status}, "status": status,
            "reason": reason}
    if "balance" in details:
        data["balance_cents"] = details["balance"]
    return emit(session, account, event_type, data, now)


# ----------------------------------------------------------------------------- delivery

@dataclass
class Run:
    succeeded: int = 0
    retried: int = 0
    failed: int = 0
    skipped_endpoints: set[int] = field(default_factory=set)

    @property
    def sent(self) -> int:
        return self.succeeded + self.retried + self.failed


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    error: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a 3xx is the answer, not followed
        return None


class Refused(OSError):
    """The endpoint's host resolved to an address the portal doesn't post to."""


def _connect_checked(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None,
                     *, allow_private: bool = False):
    """socket.create_connection, resolving the host once and connecting only to an address
    that was checked: a name that answered a public address to an earlier check and a
    private one now (DNS rebinding) can't make the portal post into its own network."""
    host, port = address
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    ips = [info[4][0] for info in infos]
    if not allow_private and any(_private(ip) for ip in ips):
        raise Refused("Events can't be sent to a private or local network address.")
    error: OSError | None = None
    for ip in dict.fromkeys(ips):  # each address once, in the resolver's order
        try:
            return socket.create_connection((ip, port), timeout, source_address)
        except OSError as e:
            error = e
    raise error or OSError(f"{host} has no address")


class _Checked:
    """An http.client connection whose socket comes from _connect_checked (HTTPS still
    verifies the certificate for the host name: the name, not the address, is sent as SNI)."""

    def __init__(self, *args, allow_private: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = functools.partial(_connect_checked,
                                                    allow_private=allow_private)


class _CheckedHTTP(_Checked, http.client.HTTPConnection):
    pass


class _CheckedHTTPS(_Checked, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, allow_private: bool):
        super().__init__()
        self.allow_private = allow_private

    def http_open(self, req):
        return self.do_open(functools.partial(_CheckedHTTP, allow_private=self.allow_private),
                            req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, allow_private: bool):
        super().__init__()
        self.allow_private = allow_private

    def https_open(self, req):
        return self.do_open(functools.partial(_CheckedHTTPS, allow_private=self.allow_private),
                            req, context=self._context)


# No proxy from the environment (the address checked is the one connected to), no redirect.
_openers = {allow: urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect(),
                                               _HTTPHandler(allow), _HTTPSHandler(allow))
            for allow in (False, True)}


def post(url: str, body: bytes, headers: dict, timeout: float,
         allow_private: bool = False) -> Answer:
    """POST `body` to `url`: its status code, or the error that stopped it. Unless
    `allow_private`, a host that is or resolves to a non-public address is refused, checked
    on the address actually connected to."""
    if not allow_private:
        refusal = private_address(urllib.parse.urlsplit(url).hostname or "", resolve=False)
        if refusal:
            return Answer(None, f"Refused: {refusal}")
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with _openers[bool(allow_private)].open(request, timeout=timeout) as response:
            response.read(1024)
            return Answer(response.status, "")
    except urllib.error.HTTPError as e:
        return Answer(e.code, f"HTTP {e.code} {e.reason}"[:300])
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, Refused):
            return Answer(None, f"Refused: {reason}")
        if isinstance(reason, TimeoutError):
            return Answer(None, f"Timed out after {timeout:g} s")
        return Answer(None, f"Could not connect: {reason}"[:300])
    except Refused as e:
        return Answer(None, f"Refused: {e}")
    except TimeoutError:
        return Answer(None, f"Timed out after {timeout:g} s")
    except (OSError, ValueError) as e:
        return Answer(None, f"{type(e).__name__}: {e}"[:300])


def delivery_settings(config, development: bool) -> tuple[float, bool]:
    """(timeout in seconds, whether private addresses may be posted to) from the app's
    config, else the environment: WEBHOOKS_TIMEOUT_SECONDS (10), WEBHOOKS_ALLOW_PRIVATE
    ("1": `make run` and the tests; default: only when testing or debugging)."""
    timeout = config.get("WEBHOOKS_TIMEOUT_SECONDS") or os.environ.get(
        "WEBHOOKS_TIMEOUT_SECONDS") or TIMEOUT_SECONDS
    allow = config.get("WEBHOOKS_ALLOW_PRIVATE")
    if allow is None:
        allow = os.environ.get("WEBHOOKS_ALLOW_PRIVATE")
    if allow is None:
        allow = development
    if isinstance(allow, str):
        allow = allow.strip().lower() in ("1", "true", "yes", "on")
    return float(timeout), bool(allow)


def due(session: Session, now: datetime, limit: int = BATCH,
        skipping: Iterable[int] = ()) -> list[int]:
    """Pending deliveries due now to enabled endpoints (but those `skipping`), oldest event
    first."""
    query = (select(WebhookDelivery.id)
             .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
             .where(WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= now, WebhookEndpoint.enabled.is_(True)))
    skipping = list(skipping)
    if skipping:
        query = query.where(WebhookDelivery.endpoint_id.not_in(skipping))
    return list(session.scalars(
        query.order_by(WebhookDelivery.event_id, WebhookDelivery.id).limit(limit)))


def claim(session: Session, delivery_id: int, now: datetime) -> bool:
    """Take this attempt (counted now): a conditional UPDATE, committed; a second runner's
    matches nothing. The claim lapses after CLAIM_LEASE if this runner dies."""
    begin_write(session)
    won = session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery_id,
                                      WebhookDelivery.status == DeliveryStatus.PENDING,
                                      WebhookDelivery.next_attempt_at <= now)
        .values(next_attempt_at=now + CLAIM_LEASE, attempts=WebhookDelivery.attempts + 1,
                last_attempt_at=now)
        .execution_options(synchronize_session=False)).rowcount
    session.commit()
    return won == 1


def next_try(attempts: int, now: datetime, retry_until: datetime) -> datetime | None:
    """When to try again after `attempts` failed attempts, or None: give up."""
    wait = RETRY_SCHEDULE[min(max(attempts, 1), len(RETRY_SCHEDULE)) - 1]
    at = now + wait
    return at if at <= retry_until else None


def deliver_due(session: Session, now: datetime | None = None,
                timeout: float = TIMEOUT_SECONDS, allow_private: bool = False,
                limit: int = MAX_PER_RUN) -> Run:
    """The jobs' step: each due delivery claimed, sent, its answer recorded (committed one
    by one), at most `limit` attempts. An endpoint that fails gets nothing more this run
    (the rest of its deliveries wait for the next: no run spends a timeout per event on a
    receiver that is down), and its backlog doesn't hold up the other endpoints' (the next
    batch is read without it)."""
    now = now or clock_now()
    run = Run()
    seen: set[int] = set()
    while run.sent < limit:
        batch = [i for i in due(session, now, min(BATCH, limit - run.sent),
                                run.skipped_endpoints) if i not in seen]
        if not batch:
            break
        for delivery_id in batch:
            seen.add(delivery_id)
            session.rollback()  # read afresh below
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is None or delivery.endpoint_id in run.skipped_endpoints:
                continue
            if not claim(session, delivery_id, now):
                continue  # another runner has it
            delivery = session.get(WebhookDelivery, delivery_id)
            session.refresh(delivery)
            answer = send(delivery, now, timeout, allow_private)
            outcome = record_answer(session, delivery_id, answer, now)
            if outcome == DeliveryStatus.SUCCEEDED:
                run.succeeded += 1
            else:
                run.skipped_endpoints.add(delivery.endpoint_id)
                if outcome == DeliveryStatus.FAILED:
                    run.failed += 1
                else:
                    run.retried += 1
            if run.sent >= limit:
                break
    session.rollback()
    return run


def headers(delivery: WebhookDelivery, now: datetime) -> dict[str, str]:
    event = delivery.event
    return {
        "Content-Type": "application/json",
        "User-Agent": "AccountPortal-Webhooks/1",
        "Portal-Event-Id": event.public_id,
        "Portal-Event-Type": event.type,
        "Portal-Signature": signature_header(_secrets(delivery.endpoint, now),
                                             int(now.timestamp()), event.payload),
    }


def send(delivery: WebhookDelivery, now: datetime, timeout: float,
         allow_private: bool) -> Answer:
    """Sign and POST it. Signed with the time of sending (not the run's start: a run held up
    by slow receivers must not send timestamps past the receivers' tolerance)."""
    try:
        signed = headers(delivery, max(now, clock_now()))
    except sealing.Unreadable:
        return Answer(None, "The endpoint's secret can't be read: rotate it.")
    return post(delivery.endpoint.url, delivery.event.payload.encode(), signed, timeout,
                allow_private)


def record_answer(session: Session, delivery_id: int, answer: Answer,
                  now: datetime) -> DeliveryStatus:
    """The attempt's answer: succeeded, or due again on the schedule, or failed past its
    window. Committed."""
    begin_write(session)
    delivery = session.get(WebhookDelivery, delivery_id)
    session.refresh(delivery)
    values = {"last_status_code": answer.status_code, "last_error": answer.error[:300]}
    if answer.ok:
        values.update(status=DeliveryStatus.SUCCEEDED, next_attempt_at=None,
                      delivered_at=now, last_error="")
    else:
        retry_at = next_try(delivery.attempts, now, delivery.retry_until)
        values.update(status=DeliveryStatus.PENDING if retry_at else DeliveryStatus.FAILED,
                      next_attempt_at=retry_at)
    # Only the claimed attempt is recorded (a Redeliver meanwhile reset it: that stays).
    session.execute(update(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.status == DeliveryStatus.PENDING,
        WebhookDelivery.next_attempt_at == now + CLAIM_LEASE).values(**values)
        .execution_options(synchronize_session=False))
    session.commit()
    return values["status"]


def redeliver(session: Session, account: Account, delivery_id,
              now: datetime | None = None) -> WebhookDelivery:
    """The log's Redeliver: pending again, due now, with a fresh retry window and its
    backoff from the start (the attempts are counted afresh: kept, a delivery that had
    failed 7 times would wait a day after each new failure)."""
    now = now or clock_now()
    delivery = get_delivery(session, account, delivery_id)
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = now
    delivery.retry_until = now + RETRY_WINDOW
    session.flush()
    return delivery


def get_delivery(session: Session, account: Account, delivery_id) -> WebhookDelivery:
    try:
        delivery_id = int(delivery_id)
    except (TypeError, ValueError):
        raise NotFound("No such delivery.") from None
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint.account_id != account.id:
        raise NotFound("No such delivery.")
    return delivery


def log(session: Session, account: Account, endpoint: WebhookEndpoint | None = None,
        limit: int = LOG_LIMIT) -> list[WebhookDelivery]:
    """The delivery log: the account's endpoints' deliveries, newest first."""
    query = (select(WebhookDelivery)
             .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
             .where(WebhookEndpoint.account_id == account.id))
    if endpoint is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint.id)
    return list(session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)))


def purge(session: Session, now: datetime | None = None) -> int:
    """Events past EVENT_RETENTION, with their finished deliveries (one still pending keeps
    its event). The caller commits. Returns how many events went."""
    cutoff = (now or clock_now()) - EVENT_RETENTION
    old = select(WebhookEvent.id).where(WebhookEvent.created_at < cutoff)
    session.execute(delete(WebhookDelivery).where(
        WebhookDelivery.event_id.in_(old), WebhookDelivery.status != DeliveryStatus.PENDING)
        .execution_options(synchronize_session=False))
    kept = select(WebhookDelivery.event_id)
    return session.execute(delete(WebhookEvent).where(
        WebhookEvent.created_at < cutoff, WebhookEvent.id.not_in(kept))
        .execution_options(synchronize_session=False)).rowcount


def events_query(account_ids, event_type: str | None = None):
    """The events about these accounts (the API's list), any order the caller pages by."""
    query = select(WebhookEvent).where(WebhookEvent.account_id.in_(account_ids))
    if event_type:
        query = query.where(WebhookEvent.type == event_type)
    return query

