"""The usage API (POST /api/accounts/<id>/usage), `flask usage post`, and concurrent
postings to one account."""

import threading
import traceback
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.models import (
    Account,
    AccountStatus,
    BillingMode,
    Charge,
    ChargePurpose,
    ChargeStatus,
    LedgerEntry,
    LedgerKind,
    OutboxMessage,
    Role,
    SandboxCharge,
)
from portal.services import ledger
from tests import factories as f
from tests.web.api_problems import PROBLEM_JSON, problem

AUTH = {"Authorization": "Bearer test-usage-token"}
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def url(account_id):
    return f"/api/accounts/{account_id}/usage"


def count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def account(session):
    clock.freeze(NOW)
    account = f.standalone(session, "Harbor Dental")
    session.commit()
    return account


# --------------------------------------------------------------- authentication

@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": "Bearer "},
    {"Authorization": "test-usage-token"},
    {"Authorization": "Basic dGVzdC11c2FnZS10b2tlbg=="},
    {"Authorization": "Bearer test-usage-token-and-more"},
])
def test_a_valid_bearer_token_is_required(client, session, account, headers):
    response = client.post(url(account.id), json={"idempotency_key": "k", "items": {
        "minutes": 5}}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="usage"'
    assert response.mimetype == PROBLEM_JSON
    assert response.get_json() == problem(401, "A valid bearer token is required.")
    assert count(session, LedgerEntry) == 0


def test_the_api_is_off_without_a_configured_token(app, client, session, account):
    app.config["USAGE_API_TOKEN"] = ""
    response = client.post(url(account.id), json={"idempotency_key": "k", "items": {
        "minutes": 5}}, headers={"Authorization": "Bearer "})
    assert response.status_code == 503
    assert response.get_json() == problem(
        503, "The usage API is not configured (USAGE_API_TOKEN).")


def test_no_session_cookie_or_csrf_token_is_needed(client, account):
    response = client.post(url(account.id), headers=AUTH,
                           json={"idempotency_key": "k", "items": {"minutes": 5}})
    assert response.status_code == 201
    assert "Set-Cookie" not in response.headers


# --------------------------------------------------------------- posting

def test_a_posting_is_created_then_a_repeat_is_a_duplicate(client, session, account):
    body = {"idempotency_key": "batch-0001", "items": {"minutes": 120, "transcriptions": 10}}
    created = client.post(url(account.id), json=body, headers=AUTH)
    assert created.status_code == 201
    data = created.get_json()
    entry = session.scalar(select(LedgerEntry))
    assert data == {"entry_id": entry.id, "account_id": account.id,
                    "paid_by_account_id": account.id, "amount_cents": 630,
                    "balance_after_cents": -630, "duplicate": False, "recharge": None}
    assert entry.description == "Usage: 120 minutes, 10 transcription minutes"
    again = client.post(url(account.id), json=body, headers=AUTH)
    assert again.status_code == 200
    assert again.get_json() == {**data, "duplicate": True}
    assert count(session, LedgerEntry) == 1
    assert session.get(Account, account.id).balance_cents == -630


def test_the_key_may_come_in_the_idempotency_key_header(client, session, account):
    headers = {**AUTH, "Idempotency-Key": "from-header"}
    assert client.post(url(account.id), json={"items": {"minutes": 1}},
                       headers=headers).status_code == 201
    assert client.post(url(account.id), json={"items": {"minutes": 1}},
                       headers=headers).status_code == 200
    assert session.scalar(select(LedgerEntry.idempotency_key)) == (
        f"usage:{account.id}:from-header")


def test_the_same_key_with_other_usage_is_refused(client, session, account):
    client.post(url(account.id), json={"idempotency_key": "k", "items": {"minutes": 1}},
                headers=AUTH)
    response = client.post(url(account.id), json={"idempotency_key": "k",
                                                   "items": {"minutes": 2}}, headers=AUTH)
    assert response.status_code == 422
    assert response.get_json() == problem(
        422, "The usage was not posted.",
        {"": "This request was already made with different details."})
    assert session.get(Account, account.id).balance_cents == -5


@pytest.mark.parametrize("body,errors", [
    ({"idempotency_key": "k", "items": {"minutes": -1}},
     {"minutes": "Must be from 0 to 1,000,000."}),
    ({"idempotency_key": "k", "items": {"minutes": "lots", "numbers": 1.5}},
     {"minutes": "Must be a whole number.", "numbers": "Must be a whole number."}),
    ({"idempotency_key": "k", "items": {"faxes": 1}},
     {"items": "Unknown usage item: faxes. Known: numbers, minutes, transcriptions, "
               "enhanced_caller_id, encrypted_recording."}),
    ({"idempotency_key": "k", "items": {}},
     {"items": "Post at least one usage item with a quantity above 0."}),
    ({"idempotency_key": "k"}, {"items": "Send the usage as an object of quantities."}),
    ({"idempotency_key": "k", "items": [1, 2]},
     {"items": "Send the usage as an object of quantities."}),
    ({"items": {"minutes": 1}},
     {"idempotency_key": "An idempotency key of 1 to 80 letters, digits, '.', '_', ':' or "
                         "'-' is required."}),
    ({"idempotency_key": 12, "items": {"minutes": 1}},
     {"idempotency_key": "An idempotency key of 1 to 80 letters, digits, '.', '_', ':' or "
                         "'-' is required."}),
])
def test_bad_postings_are_422_with_the_errors(client, session, account, body, errors):
    response = client.post(url(account.id), json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.mimetype == PROBLEM_JSON
    assert response.get_json() == problem(422, "The usage was not posted.", errors)
    assert count(session, LedgerEntry) == 0


def test_an_unknown_account_is_404(client, session, account):
    response = client.post(url(account.id + 1000), headers=AUTH,
                           json={"idempotency_key": "k", "items": {"minutes": 1}})
    assert response.status_code == 404
    assert response.get_json() == problem(404, "No such account.")


def test_a_canceled_account_is_409(client, session, account):
    account.status, account.canceled_at = AccountStatus.CANCELED, NOW
    session.commit()
    response = client.post(url(account.id), headers=AUTH,
                           json={"idempotency_key": "k", "items": {"minutes": 1}})
    assert response.status_code == 409
    assert response.get_json() == problem(409, "Harbor Dental is canceled: it takes no usage.")
    assert count(session, LedgerEntry) == 0


@pytest.mark.parametrize("kwargs", [
    {"data": "minutes=5", "content_type": "application/x-www-form-urlencoded"},
    {"data": "{not json", "content_type": "application/json"},
    {"json": [{"idempotency_key": "k", "items": {"minutes": 1}}]},
    {"json": "minutes"},
])
def test_anything_but_a_json_object_is_400(client, session, account, kwargs):
    response = client.post(url(account.id), headers=AUTH, **kwargs)
    assert response.status_code == 400
    assert response.get_json() == problem(
        400, 'Send a JSON object: {"idempotency_key": ..., "items": {"minutes": 12, ...}}.')
    assert count(session, LedgerEntry) == 0


def test_a_sub_account_on_agency_billing_is_paid_by_the_agency(client, session):
    agency = f.agency(session)
    sub = f.sub(session, agency, "Bayside Vet", billing=BillingMode.AGENCY)
    session.commit()
    response = client.post(url(sub.id), headers=AUTH,
                           json={"idempotency_key": "k", "items": {"numbers": 2}})
    assert response.status_code == 201
    data = response.get_json()
    assert (data["account_id"], data["paid_by_account_id"], data["amount_cents"],
            data["balance_after_cents"]) == (sub.id, agency.id, 600, -600)
    entry = session.get(LedgerEntry, data["entry_id"])
    assert (entry.account_id, entry.for_account_id, entry.description) == (
        agency.id, sub.id, "Usage (Bayside Vet): 2 numbers")


def test_a_posting_below_the_threshold_runs_the_recharge(client, session, account):
    f.card(session, account)
    f.recharge_settings(session, account, "10", "50")
    f.funds(session, account, 2000)
    session.commit()
    response = client.post(url(account.id), headers=AUTH,
                           json={"idempotency_key": "k", "items": {"minutes": 300}})
    assert response.status_code == 201
    charge = session.scalar(select(Charge))
    assert response.get_json()["recharge"] == {"id": charge.id, "status": "succeeded",
                                               "amount_cents": 4500, "reason": ""}
    assert response.get_json()["balance_after_cents"] == 500
    assert session.get(Account, account.id).balance_cents == 5000


def test_a_declined_recharge_is_reported_with_its_reason(client, session, account):
    f.card(session, account, "4000000000000341")
    f.recharge_settings(session, account, "10", "50")
    session.commit()
    response = client.post(url(account.id), headers=AUTH,
                           json={"idempotency_key": "k", "items": {"minutes": 300}})
    assert response.status_code == 201
    assert response.get_json()["recharge"] == {
        "id": session.scalar(select(Charge.id)), "status": "failed", "amount_cents": 6500,
        "reason": "The card was declined."}
    assert session.get(Account, account.id).balance_cents == -1500


# --------------------------------------------------------------- the command

def test_the_usage_command_posts_once_per_key(app, session, account):
    runner = app.test_cli_runner()
    args = ["usage", "post", str(account.id), "--key", "batch-0002", "--minutes", "120",
            "--enhanced-caller-id", "2"]
    first = runner.invoke(args=args)
    assert first.exit_code == 0, first.output
    entry = session.scalar(select(LedgerEntry))
    assert first.output == f"entry {entry.id}: $6.30 debited; balance -$6.30\n"
    assert entry.description == "Usage: 120 minutes, 2 enhanced caller ID lookups"
    again = runner.invoke(args=args)
    assert again.exit_code == 0
    assert again.output == (f"already posted under key batch-0002: nothing more debited "
                            f"(entry {entry.id})\n")
    session.expire_all()
    assert session.get(Account, account.id).balance_cents == -630


def test_the_usage_command_runs_the_recharge(app, session, account):
    f.card(session, account)
    f.recharge_settings(session, account, "10", "50")
    session.commit()
    result = app.test_cli_runner().invoke(
        args=["usage", "post", str(account.id), "--key", "k", "--numbers", "1"])
    assert result.exit_code == 0, result.output
    receipt = session.scalar(select(Charge)).receipt_number
    assert result.output.splitlines()[1] == f"recharge {receipt}: $53.00 succeeded"


@pytest.mark.parametrize("args,message", [
    (["--key", "k", "--minutes", "-5"], "Error: minutes: Must be from 0 to 1,000,000."),
    (["--key", "k"], "Error: items: Post at least one usage item with a quantity above 0."),
    (["--key", "no spaces allowed", "--minutes", "1"],
     "Error: idempotency_key: An idempotency key of 1 to 80 letters, digits, '.', '_', ':' "
     "or '-' is required."),
])
def test_the_usage_command_refuses_bad_usage(app, session, account, args, message):
    result = app.test_cli_runner().invoke(args=["usage", "post", str(account.id), *args])
    assert result.exit_code == 1
    assert message in result.output
    assert count(session, LedgerEntry) == 0


def test_the_usage_command_refuses_unknown_and_canceled_accounts(app, session, account):
    runner = app.test_cli_runner()
    missing = runner.invoke(args=["usage", "post", "999999", "--key", "k", "--minutes", "1"])
    assert missing.exit_code == 1 and "Error: No account 999999." in missing.output
    account.status, account.canceled_at = AccountStatus.CANCELED, NOW
    session.commit()
    closed = runner.invoke(args=["usage", "post", str(account.id), "--key", "k",
                                 "--minutes", "1"])
    assert closed.exit_code == 1
    assert "Error: Harbor Dental is canceled: it takes no usage." in closed.output


# --------------------------------------------------------------- concurrency

POSTINGS = 50
POSTING_CENTS = 100  # {"minutes": 20}
START = 2000  # $20.00 to begin with
RECHARGE_TO = 2000  # the recharge amount A: $20.00
THRESHOLD = 1000  # $10.00


def test_concurrent_postings_keep_the_exact_balance_and_recharge_within_the_rules(
        app, session):
    """Fifty metering clients post to one account at once, each posting its own key and then
    the same key again (a retry).

    The bound on recharges: a recharge starts only when the balance is below the threshold
    T, and charges A - b where b < T is the balance it saw, so each one credits more than
    A - T = $10.00. Only one is in flight at a time and the balance starts at A, so it never
    exceeds A: the final balance F = A - usage + credits <= A, hence credits <= usage = $50.00
    and the number of recharges R satisfies R * $10.00 < $50.00, i.e. R <= 4. And R >= 1:
    the first posting that took the balance below T found no recharge in flight. (One after
    another, the postings would make exactly 4.) And F >= T: a recharge whose credit usage
    outran (debits posted while it was in flight start none) starts the next as it settles.
    """
    clock.freeze(NOW)
    owner = f.user(session, "owner@example.test")
    account = f.standalone(session, "Harbor Dental")
    f.member(session, owner, account, Role.OWNER)
    f.card(session, account)
    f.recharge_settings(session, account, "10", "20")
    f.funds(session, account, START)
    account_id = account.id
    session.commit()  # and no transaction of ours stays open while the clients post

    barrier = threading.Barrier(POSTINGS)
    results, errors = {}, []

    def metering_client(i):
        try:
            client = app.test_client()
            body = {"idempotency_key": f"batch-{i:03d}", "items": {"minutes": 20}}
            barrier.wait(timeout=30)
            first = client.post(url(account_id), json=body, headers=AUTH)
            retry = client.post(url(account_id), json=body, headers=AUTH)
            results[i] = (first.status_code, first.get_json(), retry.status_code,
                          retry.get_json())
        except Exception:  # surfaced below
            errors.append(traceback.format_exc())  # the whole trace, where it failed

    threads = [threading.Thread(target=metering_client, args=(i,)) for i in range(POSTINGS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(results) == list(range(POSTINGS))

    for first_status, first, retry_status, retry in results.values():
        assert (first_status, retry_status) == (201, 200), (first, retry)
        assert (first["amount_cents"], first["duplicate"], retry["duplicate"]) == (
            POSTING_CENTS, False, True)
        assert retry["entry_id"] == first["entry_id"]
        if first["recharge"] is not None:
            assert first["recharge"]["status"] == "succeeded"

    session.expire_all()
    usage_total = session.scalar(select(func.sum(LedgerEntry.amount_cents)).where(
        LedgerEntry.account_id == account_id, LedgerEntry.kind == LedgerKind.USAGE))
    assert count(session, LedgerEntry, LedgerEntry.kind == LedgerKind.USAGE) == POSTINGS
    assert usage_total == -POSTINGS * POSTING_CENTS

    recharges = list(session.scalars(select(Charge).where(
        Charge.purpose == ChargePurpose.RECHARGE).order_by(Charge.id)))
    assert 1 <= len(recharges) <= 4, [(c.amount_cents, c.status) for c in recharges]
    assert [c.status for c in recharges] == [ChargeStatus.SUCCEEDED] * len(recharges)
    assert all(RECHARGE_TO - THRESHOLD < c.amount_cents for c in recharges)
    assert count(session, SandboxCharge) == len(recharges)
    credited = session.scalars(select(LedgerEntry.amount_cents).where(
        LedgerEntry.account_id == account_id, LedgerEntry.kind == LedgerKind.RECHARGE)).all()
    assert sorted(credited) == sorted(c.amount_cents for c in recharges)
    # each recharge was started by a posting, or by the settlement of one that usage had
    # outrun (run in the same request): never more answers naming one than recharges
    assert 1 <= len([r for r in results.values() if r[1]["recharge"]]) <= len(recharges)

    balance = session.get(Account, account_id).balance_cents
    assert balance == START - POSTINGS * POSTING_CENTS + sum(credited)
    assert balance <= RECHARGE_TO
    assert balance >= THRESHOLD  # nothing left below it with no recharge to come
    assert balance == session.scalar(select(func.sum(LedgerEntry.amount_cents)).where(
        LedgerEntry.account_id == account_id))
    assert ledger.check(session) == []
    status = session.get(Account, account_id).status
    assert status == (AccountStatus.ACTIVE if balance >= 0 else AccountStatus.BILLING_PAUSED), (
        f"status {status} with a balance of {balance} cents")
    assert count(session, OutboxMessage, OutboxMessage.kind == "receipt") == len(recharges)
