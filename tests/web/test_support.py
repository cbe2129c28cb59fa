"""Support requests (the "ticket portal") and the staff commands: `flask support list`,
`flask support resolve` and the scheduled `flask jobs run`."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.models import Call, SupportStatus
from portal.services import support
from tests.conftest import HX
from tests.web.conftest import sign_in_as
from tests.web.lifecycle_world import ADMINS_ONLY, NOW, post, snapshot
from tests.web.pages import assert_fragment, assert_full_page, body, shown, table_rows


def support_page(client, account, **kw):
    return client.get(f"/accounts/{account.id}/support/", **kw)


def send(client, account, data, **kw):
    return post(client, f"/accounts/{account.id}/support/", data, **kw)


def test_support_page_has_the_form_and_the_list(client, w):
    sign_in_as(client, w.sam)
    response = support_page(client, w.solo)
    assert response.status_code == 200
    html = assert_full_page(response)
    for value, label in [("refund", "Refund of the available balance"),
                         ("restore_number", "Restore a released number (carrier inquiry)"),
                         ("reactivate_agency", "Reactivate a canceled agency"),
                         ("other", "Something else")]:
        assert f'<option value="{value}" >{label}</option>' in html
    assert (f'<option value="{w.old_number.id}" >{w.old_number.number}, released 2026-11-20'
            "</option>") in html
    assert [r.cells for r in table_rows(html)] == [["No requests yet."]]
    assert 'aria-current="page">Support</a>' in html


def test_support_form_as_fragment(client, w):
    sign_in_as(client, w.sam)
    html = assert_fragment(support_page(client, w.solo, headers=HX), '<form id="support-form"')
    assert 'name="kind"' in html


def test_sending_a_request_lists_it_as_open(client, session, w):
    sign_in_as(client, w.sam)
    response = send(client, w.solo, {"kind": "other", "message": "  Please call me.  "})
    assert response.status_code == 303
    assert response.location == f"/accounts/{w.solo.id}/support/"
    [ticket] = support.requests_for(session, w.solo)
    assert (ticket.kind.value, ticket.message, ticket.created_by_id, ticket.created_at) == (
        "other", "Please call me.", w.sam.id, NOW)
    html = body(client.get(response.location))
    assert (f'<p class="flash flash-success" role="status">Support request #{ticket.id} is '
            f"sent: Something else. We{shown(chr(39))}ll answer by email.</p>") in html
    [row] = table_rows(html)
    assert row.cells[0] == str(ticket.id)
    assert row.cells[2:] == ["2026-11-23 12:00", "Open", ""]
    assert ('<td data-label="About">Something else<br>'
            '<span class="muted small">Please call me.</span></td>') in html
    assert "Sent a support request" in body(client.get(f"/accounts/{w.solo.id}/"))


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_a_bad_request_is_shown_with_its_reason(client, session, w, headers):
    sign_in_as(client, w.sam)
    before = snapshot(session)
    for data, field, message in [
        ({"kind": "nonsense"}, "kind", "Choose what the request is about."),
        ({"kind": "other", "message": " "}, "message", "Tell us what you need."),
        ({"kind": "other", "message": "x" * 5001}, "message",
         "The message is at most 5,000 characters."),
        ({"kind": "refund"}, "kind",
         "A refund of the available balance can be requested once the account is canceled."),
        ({"kind": "reactivate_agency"}, "kind",
         "Only a canceled agency is reactivated by support."),
        ({"kind": "restore_number", "number_id": "abc"}, "number",
         "Choose a released number of this account."),
        # past the database's integer range (a 500 on PostgreSQL before)
        ({"kind": "restore_number", "number_id": "99999999999999999999"}, "number",
         "Choose a released number of this account."),
    ]:
        response = send(client, w.solo, data, headers=headers)
        assert response.status_code == 422, data
        if headers:
            html = assert_fragment(response, '<form id="support-form"')
        else:
            html = assert_full_page(response)
        assert f'<p class="field-error" id="{field}-error">{message}</p>' in html, data
        assert snapshot(session) == before


def test_a_duplicate_open_request_is_refused(client, session, w):
    sign_in_as(client, w.sam)
    assert send(client, w.closed, {"kind": "refund"}).status_code == 303
    [ticket] = support.requests_for(session, w.closed)
    before = snapshot(session)
    response = send(client, w.closed, {"kind": "refund"})
    assert response.status_code == 422
    assert (f'<p class="form-error" role="alert">Request #{ticket.id} about this is already '
            "open.</p>") in body(response)
    assert snapshot(session) == before


def test_support_is_for_owners_and_admins_only(client, session, w):
    sign_in_as(client, w.viewer)
    response = support_page(client, w.solo)
    assert response.status_code == 403
    assert shown(ADMINS_ONLY) in body(response)
    assert 'Support</a>' not in body(client.get(f"/accounts/{w.solo.id}/"))


def test_each_account_sees_only_its_own_requests(client, session, w):
    support.request(session, w.rival, w.rex, "other", "Rival secret", now=NOW)
    support.request(session, w.harbor, w.avery, "other", "Harbor question", now=NOW)
    session.commit()
    sign_in_as(client, w.avery)
    html = body(support_page(client, w.bayside))
    assert "Rival secret" not in html
    assert "Harbor question" not in html
    assert "Harbor question" in body(support_page(client, w.harbor))


# --- staff commands ---------------------------------------------------------------------------

@pytest.fixture
def tickets(session, w):
    refund = support.request(session, w.closed, w.sam, "refund", "Refund please",
                             now=NOW - timedelta(hours=1))
    other = support.request(session, w.solo, w.sam, "other", "Hello", now=NOW)
    session.commit()
    return refund, other


def test_support_list_shows_open_requests(app, tickets):
    refund, other = tickets
    result = app.test_cli_runner().invoke(args=["support", "list"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"#{refund.id} [open] Closed Shop: Refund of the available balance (2026-11-23 11:00 "
        "UTC) Refund please",
        f"#{other.id} [open] Solo Shop: Something else (2026-11-23 12:00 UTC) Hello",
    ]


def test_support_resolve_and_decline(app, client, session, w, tickets):
    refund, other = tickets
    runner = app.test_cli_runner()
    result = runner.invoke(args=["support", "resolve", str(refund.id), "--note",
                                 "Refunded $40.00 to the card."])
    assert (result.exit_code, result.output) == (0, f"#{refund.id} is resolved.\n")
    result = runner.invoke(args=["support", "resolve", str(other.id), "--decline"])
    assert (result.exit_code, result.output) == (0, f"#{other.id} is declined.\n")
    session.rollback()  # committed by the command, not just flushed
    assert (refund.status, refund.resolution, refund.resolved_at) == (
        SupportStatus.RESOLVED, "Refunded $40.00 to the card.", NOW)
    assert other.status == SupportStatus.DECLINED

    assert runner.invoke(args=["support", "list"]).output == ""
    listed = runner.invoke(args=["support", "list", "--all"]).output.splitlines()
    assert [line.split("]")[0] for line in listed] == [f"#{refund.id} [resolved",
                                                       f"#{other.id} [declined"]

    sign_in_as(client, w.sam)
    [row] = table_rows(body(support_page(client, w.closed)))
    assert row.cells[3:] == ["Resolved", "Refunded $40.00 to the card."]


def test_support_resolve_refuses_a_missing_or_closed_request(app, tickets):
    refund, _ = tickets
    runner = app.test_cli_runner()
    runner.invoke(args=["support", "resolve", str(refund.id)])
    again = runner.invoke(args=["support", "resolve", str(refund.id), "--decline"])
    assert again.exit_code == 1
    assert again.output == f"Error: Support request #{refund.id} is already resolved.\n"
    missing = runner.invoke(args=["support", "resolve", "999999"])
    assert missing.exit_code == 1
    assert missing.output == "Error: No support request #999999.\n"


def test_jobs_run_purges_once(app, session, w):
    calls = session.scalar(select(func.count()).select_from(Call))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["jobs", "run"])  # Closed Shop: 5 days, Oak: 5 days
    assert result.exit_code == 0
    assert _purge_line(result) == ("purge: call data removed from 0 account(s) closed over "
                                   "60 days ago")
    clock.freeze(w.closed.canceled_at + timedelta(days=60, seconds=1))
    result = runner.invoke(args=["jobs", "run"])
    assert result.exit_code == 0
    assert _purge_line(result) == ("purge: call data removed from 2 account(s) closed over "
                                   "60 days ago")
    session.rollback()  # what the command did is committed, not just flushed
    assert w.closed.data_purged_at == w.closed.canceled_at + timedelta(days=60, seconds=1)
    assert session.scalar(select(func.count()).select_from(Call)) == calls - 2  # Closed Shop's
    assert session.scalar(select(func.count()).select_from(Call).where(
        Call.account_id == w.solo.id)) == 3
    result = runner.invoke(args=["jobs", "run"])
    assert _purge_line(result) == ("purge: call data removed from 0 account(s) closed over "
                                   "60 days ago")


def _purge_line(result) -> str:
    """The purge job's line of `jobs run` (the other jobs print their own)."""
    return next(line for line in result.output.splitlines() if line.startswith("purge:"))
