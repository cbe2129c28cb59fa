"""Bulk actions on Settings → Accounts (issue 17, K): mixed outcomes, a row's refusal rolled
back alone, re-runs ("already ..."), a resubmitted confirmation replayed, the CSV's
line-numbered errors, the selection ("all N matching", another agency's id)."""

import threading
from datetime import timedelta

import pytest

from billing_links import service as link_service
from billing_links.models import BillingRequest, RequestStatus
from portal.errors import NotFound, ValidationFailed
from portal.models import (
    AccountStatus,
    BillingMode,
    BulkAction,
    BulkKind,
    EventKind,
    NumberStatus,
    RowOutcome,
    Version,
)
from portal.services import bulk, lifecycle
from portal.services.accounts import SubAccountFilter
from tests import factories as f
from tests.threads import in_own_session

LINKS = link_service.LinkSettings(keys=["unit-key"], ttl=timedelta(days=7),
                                  base_url="https://portal.test")


@pytest.fixture
def world(session):
    owner = f.user(session, "owner@agency.test")
    agency = f.agency(session, "Agency", owner=owner)
    subs = {name: f.sub(session, agency, name) for name in ("Alpha", "Bravo", "Charlie")}
    session.commit()
    return agency, owner, subs


def _run(session, agency, owner, kind, subs, params=None, row_params=None, key=None, sent=None):
    action, new = bulk.start(session, agency, owner, key or bulk.new_key(), kind, subs,
                             params, row_params)
    if new:
        on_link = (lambda *args: sent.append(args)) if sent is not None else None
        bulk.run(session, agency, owner, action, bulk.Context(LINKS, on_link))
    return action, new


def _outcomes(action):
    return {row.name: row.outcome for row in action.rows}


def test_pause_mixed_outcomes_and_rerun_says_already(session, world):
    agency, owner, subs = world
    lifecycle.stop_calls(session, subs["Bravo"], owner)  # stopped: pausing is allowed
    subs["Charlie"].status, subs["Charlie"].canceled_at = AccountStatus.CANCELED, \
        subs["Charlie"].created_at
    session.commit()
    everyone = list(subs.values())
    plans = bulk.preview(session, BulkKind.PAUSE, everyone)
    assert [(p.sub.name, p.outcome) for p in plans] == [
        ("Alpha", None), ("Bravo", None), ("Charlie", RowOutcome.REFUSED)]
    assert "canceled" in plans[2].reason

    action, new = _run(session, agency, owner, BulkKind.PAUSE, everyone)
    assert new and action.state == "done"
    assert _outcomes(action) == {"Alpha": "done", "Bravo": "done", "Charlie": "refused"}
    for name in ("Alpha", "Bravo"):
        session.refresh(subs[name])
        assert subs[name].status == AccountStatus.SWAPPING_PAUSED
    assert action.summary.startswith("2 done, 0 already so, 1 refused. Alpha: done; ")

    again, new = _run(session, agency, owner, BulkKind.PAUSE, everyone)
    assert new
    assert _outcomes(again) == {"Alpha": "already", "Bravo": "already", "Charlie": "refused"}
    assert "already paused" in again.rows[0].message
    paused_events = session.query(lifecycle.AccountEvent).filter_by(
        kind=EventKind.SWAPPING_PAUSED).count()
    assert paused_events == 2  # once each, not again on the re-run


def test_resubmitted_confirmation_replays_without_acting(session, world):
    agency, owner, subs = world
    key = bulk.new_key()
    first, new = _run(session, agency, owner, BulkKind.STOP, list(subs.values()), key=key)
    assert new
    replay, new = _run(session, agency, owner, BulkKind.STOP, list(subs.values()), key=key)
    assert not new and replay.id == first.id
    assert session.query(BulkAction).count() == 1
    assert session.query(lifecycle.AccountEvent).filter_by(
        kind=EventKind.CALLS_STOPPED).count() == 3


def test_one_refusal_rolls_back_only_its_row(session, world, monkeypatch):
    """Bravo's close fails midway (after its status changed): Bravo stays active with its
    numbers; Alpha and Charlie, before and after it, are closed."""
    agency, owner, subs = world
    for sub in subs.values():
        f.number(session, sub)
    session.commit()
    real = lifecycle.close_out

    def failing(session_, account, actor, now):
        released = real(session_, account, actor, now)
        if account.name == "Bravo":
            raise lifecycle.NotAllowed("Bravo changed while closing it; try again.")
        return released

    monkeypatch.setattr(lifecycle, "close_out", failing)
    action, _ = _run(session, agency, owner, BulkKind.CLOSE, list(subs.values()))
    assert _outcomes(action) == {"Alpha": "done", "Bravo": "refused", "Charlie": "done"}
    assert "try again" in action.rows[1].message
    for name, status in (("Alpha", AccountStatus.CANCELED), ("Bravo", AccountStatus.ACTIVE),
                         ("Charlie", AccountStatus.CANCELED)):
        session.refresh(subs[name])
        assert subs[name].status == status
    numbers = {n.account_id: n.status for n in session.query(lifecycle.TrackingNumber)}
    assert numbers[subs["Bravo"].id] == NumberStatus.ACTIVE
    assert numbers[subs["Alpha"].id] == NumberStatus.RELEASED
    assert "released" in action.rows[0].message


def test_send_links_mixed_and_rerun(session, world):
    agency, owner, subs = world
    subs["Charlie"].billing_mode = BillingMode.CUSTOMER
    session.commit()
    everyone = list(subs.values())
    plans = bulk.preview(session, BulkKind.SEND_LINKS, everyone)
    assert [p.outcome for p in plans] == [None, None, RowOutcome.REFUSED]
    form = {f"email_{subs['Alpha'].id}": "a@client.test",
            f"amount_{subs['Alpha'].id}": "25",
            f"email_{subs['Bravo'].id}": "b@client.test",
            f"amount_{subs['Bravo'].id}": "40.50", "message": "Hello"}
    rows = bulk.parse_links(form, everyone, plans)
    sent = []
    action, _ = _run(session, agency, owner, BulkKind.SEND_LINKS, everyone, row_params=rows,
                     sent=sent)
    assert _outcomes(action) == {"Alpha": "done", "Bravo": "done", "Charlie": "refused"}
    assert len(sent) == 2
    requests = {r.sub_account_id: r for r in session.query(BillingRequest)}
    assert requests[subs["Bravo"].id].amount_cents == 4050
    assert requests[subs["Bravo"].id].message == "Hello"

    again, _ = _run(session, agency, owner, BulkKind.SEND_LINKS, everyone, row_params=rows,
                    sent=sent)
    assert _outcomes(again) == {"Alpha": "already", "Bravo": "already", "Charlie": "refused"}
    assert len(sent) == 2
    assert session.query(BillingRequest).filter_by(status=RequestStatus.PENDING).count() == 2


def test_send_links_bad_rows_change_nothing(session, world):
    agency, owner, subs = world
    everyone = list(subs.values())
    plans = bulk.preview(session, BulkKind.SEND_LINKS, everyone)
    form = {f"email_{s.id}": "x@y.test" for s in everyone}
    form.update({f"amount_{s.id}": "30" for s in everyone})
    form[f"email_{subs['Bravo'].id}"] = "not-an-email"
    form[f"amount_{subs['Charlie'].id}"] = "10"
    with pytest.raises(ValidationFailed) as e:
        bulk.parse_links(form, everyone, plans)
    assert set(e.value.errors) == {f"email_{subs['Bravo'].id}", f"amount_{subs['Charlie'].id}"}


def test_agency_billing_moves_and_rerun(session, world):
    agency, owner, subs = world
    for sub in subs.values():
        sub.billing_mode = BillingMode.CUSTOMER
    subs["Charlie"].billing_mode = BillingMode.AGENCY
    session.commit()
    action, _ = _run(session, agency, owner, BulkKind.AGENCY_BILLING, list(subs.values()))
    assert _outcomes(action) == {"Alpha": "done", "Bravo": "done", "Charlie": "already"}
    session.refresh(subs["Alpha"])
    assert subs["Alpha"].billing_mode == BillingMode.AGENCY


def test_csv_line_numbered_errors(session, world):
    agency, owner, subs = world
    everyone = list(subs.values())
    data = (b"name,email,amount\n"
            b"Alpha,a@client.test,25\n"
            b"Nobody,n@client.test,25\n"
            b"Bravo,not-an-email,25\n"
            b"Charlie,c@client.test,5\n"
            b"Alpha,a2@client.test\n")
    with pytest.raises(ValidationFailed) as e:
        bulk.parse_csv(data, everyone)
    lines = e.value.errors["csv"].split("\n")
    assert lines[0].startswith("Line 3: “Nobody” is not one of the selected")
    assert lines[1].startswith("Line 4: Enter the customer's email")
    assert lines[2].startswith("Line 5: The starting balance")
    assert lines[3] == "Line 6: expected 3 values (name,email,amount), found 2."
    good = bulk.parse_csv(b"alpha, a@client.test, 25\nBravo,b@client.test,$30.00\n", everyone)
    assert good == {subs["Alpha"].id: {"email": "a@client.test", "amount": "25"},
                    subs["Bravo"].id: {"email": "b@client.test", "amount": "$30.00"}}


def test_selection_all_matching_and_other_agency(session, world):
    agency, owner, subs = world
    other = f.agency(session, "Other")
    stranger = f.sub(session, other, "Stranger")
    for i in range(30):
        f.sub(session, agency, f"Zulu {i:02}")
    session.commit()
    matching = bulk.resolve(session, agency, [], all_matching=True, q="zulu")
    assert len(matching) == 30  # across pages, not only the first 25
    assert len(bulk.resolve(session, agency, [], all_matching=True,
                            status=SubAccountFilter.ALL)) == 33
    with pytest.raises(NotFound):
        bulk.resolve(session, agency, [str(subs["Alpha"].id), str(stranger.id)])
    with pytest.raises(ValidationFailed):
        bulk.resolve(session, agency, [])


def test_change_history_has_the_action(session, world):
    agency, owner, subs = world
    action, _ = _run(session, agency, owner, BulkKind.PAUSE, list(subs.values()))
    versions = session.query(Version).filter_by(account_id=agency.id,
                                                record_type="bulk_action").all()
    assert versions
    assert versions[-1].record_label == "Pause number swapping"
    assert "3 done" in versions[-1].changes_json


def test_set_budget_uses_budgets_service(session, world):
    pytest.importorskip("portal.services.budgets")
    agency, owner, subs = world
    params = {"amount_cents": 10000, "thresholds": [50, 100], "pause_calls": False}
    action, _ = _run(session, agency, owner, BulkKind.SET_BUDGET, list(subs.values()), params)
    assert set(_outcomes(action).values()) == {"done"}, action.summary
    again, _ = _run(session, agency, owner, BulkKind.SET_BUDGET, list(subs.values()), params)
    assert set(_outcomes(again).values()) == {"already"}


def test_the_same_confirmation_twice_at_once_runs_once(app, session, world):
    """A double click: two requests with one key at the same moment. One stores and runs
    the action; the other finds it (the UNIQUE key) and runs nothing."""
    agency, owner, subs = world
    ids = [s.id for s in subs.values()]
    key = bulk.new_key()
    barrier = threading.Barrier(2)

    def submit(own):
        from portal.models import Account, User

        me = own.get(User, owner.id)
        them = own.get(Account, agency.id)
        chosen = bulk.resolve(own, them, [str(i) for i in ids])
        barrier.wait()
        action, new = bulk.start(own, them, me, key, BulkKind.PAUSE, chosen)
        if new:
            bulk.run(own, them, me, action)
        return new

    threads = [in_own_session(app, submit) for _ in range(2)]
    for thread, _ in threads:
        thread.start()
    for thread, _ in threads:
        thread.join(30)
    results = [result for _, result in threads]
    assert all("error" not in r for r in results), results
    assert sorted(r["value"] for r in results) == [False, True]
    assert session.query(BulkAction).count() == 1
    assert session.query(lifecycle.AccountEvent).filter_by(
        kind=EventKind.SWAPPING_PAUSED).count() == 3
