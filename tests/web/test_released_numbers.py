"""Numbers → Tracking Numbers → Released Numbers: Restore within 14 days, "Ask support" past
14 days, nothing actionable while the account is canceled."""

from datetime import timedelta

from portal import clock
from portal.models import NumberStatus
from portal.services import support
from tests import factories as f
from tests.web.conftest import keep_active, sign_in_as
from tests.web.lifecycle_world import NOW, post, snapshot
from tests.web.pages import NOT_FOUND, assert_full_page, body, shown, table_rows

TOO_OLD = ("{} was released on {}, more than 14 days ago. Send a support request to ask "
           "whether the carrier can restore it.")


def released_page(client, account):
    return client.get(f"/accounts/{account.id}/numbers/released")


def restore(client, account, number):
    return post(client, f"/accounts/{account.id}/numbers/{number.id}/restore")


def flash(category, message):
    return f'<p class="flash flash-{category}" role="status">{shown(message)}</p>'


def test_tracking_numbers_links_to_released_numbers(client, w):
    sign_in_as(client, w.sam)
    html = body(client.get(f"/accounts/{w.solo.id}/numbers/"))
    assert f'<a href="/accounts/{w.solo.id}/numbers/released">Released Numbers</a>' in html


def test_restore_within_14_days_ask_support_after(client, session, w):
    edge = f.number(session, w.solo, label="Exactly 14",
                    released_at=NOW - timedelta(days=14))
    past = f.number(session, w.solo, label="Fifteen days",
                    released_at=NOW - timedelta(days=15))
    session.commit()
    sign_in_as(client, w.sam)
    response = released_page(client, w.solo)
    assert response.status_code == 200
    html = assert_full_page(response)
    rows = {r.cells[0]: r.cells for r in table_rows(html)}
    assert set(rows) == {w.old_number.number, edge.number, past.number}  # not the active ones
    assert rows[w.old_number.number][1:3] == ["Old flyer", "2026-11-20"]
    assert rows[edge.number][1:3] == ["Exactly 14", "2026-11-09"]
    assert rows[past.number][1:3] == ["Fifteen days", "2026-11-08"]
    for n in (w.old_number, edge):
        assert (f'action="/accounts/{w.solo.id}/numbers/{n.id}/restore"') in html
        assert f'aria-label="Restore {n.number}">Restore</button>' in html
    assert f"/numbers/{past.id}/restore" not in html
    assert f'aria-label="Ask support about {past.number}">Ask support</button>' in html
    assert f'<input type="hidden" name="number_id" value="{past.id}">' in html
    assert rows[past.number][3] == "Ask support Released more than 14 days ago."
    for n in (w.old_number, edge):
        assert f"Ask support about {n.number}" not in html


def test_nothing_is_actionable_while_the_account_is_canceled(client, w):
    sign_in_as(client, w.sam)
    html = body(released_page(client, w.closed))
    [row] = table_rows(html)
    assert row.cells == [w.closed_number.number, "Closed line", "2026-11-18",
                         "Reactivate the account to restore it."]
    assert "/restore" not in html
    assert "Ask support" not in html
    assert "<form" not in html[html.index("<table"):html.index("</table>")]


def test_a_role_user_sees_the_numbers_but_no_action(client, w):
    sign_in_as(client, w.viewer)
    html = body(released_page(client, w.solo))
    [row] = table_rows(html)
    assert row.cells[3] == "Owners and admins can restore it."
    assert "<form" not in html[html.index("<table"):html.index("</table>")]


def test_no_released_numbers_says_so(client, w):
    sign_in_as(client, w.avery)
    html = body(released_page(client, w.harbor))
    assert [r.cells for r in table_rows(html)] == [["No released numbers."]]


def test_restore_makes_the_number_active_again(client, session, w):
    sign_in_as(client, w.sam)
    response = restore(client, w.solo, w.old_number)
    assert response.status_code == 303
    assert response.location == f"/accounts/{w.solo.id}/numbers/released"
    session.expire_all()
    assert (w.old_number.status, w.old_number.released_at) == (NumberStatus.ACTIVE, None)
    html = body(client.get(response.location))
    assert flash("success", f"{w.old_number.number} is restored and active on Solo Shop "
                            "again.") in html
    assert [r.cells for r in table_rows(html)] == [["No released numbers."]]
    numbers = body(client.get(f"/accounts/{w.solo.id}/numbers/"))
    assert w.old_number.number in numbers
    assert "Restored a tracking number: " + w.old_number.number in body(
        client.get(f"/accounts/{w.solo.id}/"))


def test_close_reactivate_and_restore_a_released_number(client, session, w):
    """The article's flow: closed, reactivated within 14 days, then Restore."""
    sign_in_as(client, w.avery)
    assert post(client, f"/accounts/{w.bayside.id}/close", {"confirm": "yes"}).status_code == 303
    clock.freeze(NOW + timedelta(days=10))
    keep_active(client)
    assert post(client, f"/accounts/{w.bayside.id}/reactivate").status_code == 303
    html = body(released_page(client, w.bayside))
    for n in w.bayside_numbers:
        assert f'aria-label="Restore {n.number}">Restore</button>' in html
    first, second = w.bayside_numbers
    assert restore(client, w.bayside, first).status_code == 303
    session.expire_all()
    assert (first.status, second.status) == (NumberStatus.ACTIVE, NumberStatus.RELEASED)


def test_restore_past_14_days_is_refused_with_the_reason(client, session, w):
    clock.freeze(w.old_number.released_at + timedelta(days=14, seconds=1))
    sign_in_as(client, w.sam)
    before = snapshot(session)
    response = restore(client, w.solo, w.old_number)
    assert response.status_code == 303
    assert snapshot(session) == before
    html = body(client.get(response.location))
    assert flash("error", TOO_OLD.format(w.old_number.number, "November 20, 2026")) in html
    assert f"Ask support about {w.old_number.number}" in html


def test_restore_at_exactly_14_days_works(client, session, w):
    clock.freeze(w.old_number.released_at + timedelta(days=14))
    sign_in_as(client, w.sam)
    assert restore(client, w.solo, w.old_number).status_code == 303
    session.expire_all()
    assert w.old_number.status == NumberStatus.ACTIVE


def test_a_number_now_active_on_another_account_is_not_restored(client, session, w):
    taken = f.number(session, w.rival, label="Rival line")
    taken.number = w.old_number.number
    session.commit()
    sign_in_as(client, w.sam)
    before = snapshot(session)
    response = restore(client, w.solo, w.old_number)
    assert snapshot(session) == before
    assert flash("error", f"{w.old_number.number} is in use by another account now; it can't "
                          "be restored.") in body(client.get(response.location))


def test_restoring_an_active_number_is_refused(client, session, w):
    sign_in_as(client, w.sam)
    active = w.solo_numbers[0]
    before = snapshot(session)
    response = restore(client, w.solo, active)
    assert snapshot(session) == before
    assert flash("error", f"{active.number} is already active on this account.") in body(
        client.get(response.location))


def test_restoring_another_accounts_number_is_404(client, session, w):
    theirs = f.number(session, w.harbor, released_at=NOW - timedelta(days=1))
    session.commit()
    sign_in_as(client, w.sam)
    before = snapshot(session)
    for number_id in (theirs.id, w.closed_number.id, 2**31 - 1):
        response = post(client, f"/accounts/{w.solo.id}/numbers/{number_id}/restore")
        assert response.status_code == 404, number_id
        assert NOT_FOUND in body(response)
    assert snapshot(session) == before


def test_ask_support_sends_a_restore_request_for_that_number(client, session, w):
    old = f.number(session, w.solo, label="Fifteen days", released_at=NOW - timedelta(days=15))
    session.commit()
    sign_in_as(client, w.sam)
    response = post(client, f"/accounts/{w.solo.id}/support/",
                    {"kind": "restore_number", "number_id": str(old.id)})
    assert response.status_code == 303
    [ticket] = support.requests_for(session, w.solo)
    assert (ticket.kind.value, ticket.tracking_number_id) == ("restore_number", old.id)
    html = body(client.get(response.location))
    assert flash("success", f"Support request #{ticket.id} is sent: Restore a released number "
                            "(carrier inquiry). We'll answer by email.") in html
    assert f"Restore a released number (carrier inquiry): {old.number}" in html
    again = post(client, f"/accounts/{w.solo.id}/support/",
                 {"kind": "restore_number", "number_id": str(old.id)})
    assert again.status_code == 422
    assert f"Request #{ticket.id} about this is already open." in body(again)
