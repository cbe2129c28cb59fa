"""The activity log words every event from its details (issue 14, item 9), and the
statement presets' ranges (item 11)."""

from datetime import date

import pytest

from portal.models import EventKind as K
from portal.models.lifecycle import EVENT_LABELS, describe
from portal.services import statements


@pytest.mark.parametrize(("kind", "details", "words"), [
    (K.BILLING_LINK_SENT, {"account": "Cedar Law", "account_id": 3, "email": "pat@x.test",
                           "amount_cents": 8000},
     "Emailed pat@x.test a link to take Cedar Law off agency billing (starting balance $80.00)"),
    (K.BILLING_LINK_CANCELED, {"account": "Cedar Law", "account_id": 3, "email": "pat@x.test"},
     "Canceled the billing request for Cedar Law sent to pat@x.test"),
    (K.BILLING_MODE_CHANGED, {"account": "Bayside", "account_id": 2, "billing": "agency",
                              "moved_cents": 1240},
     "Added Bayside to agency billing: its usage is paid from the agency balance; its balance "
     "of $12.40 moved to the agency"),
    (K.BILLING_MODE_CHANGED, {"account": "Bayside", "billing": "agency", "moved_cents": -1240},
     "Added Bayside to agency billing: its usage is paid from the agency balance; its negative "
     "balance of -$12.40 moved to the agency"),
    (K.BILLING_MODE_CHANGED, {"account": "Cedar Law", "billing": "customer",
                              "paid_cents": 2500, "email": "pat@x.test"},
     "Took Cedar Law off agency billing: pat@x.test pays (paid $25.00 as the opening balance)"),
    (K.TRANSFERRED_OUT, {"account": "Harbor", "account_id": 4, "new_owner": "c@x.test"},
     "Transferred Harbor out of the agency, to its new owner c@x.test"),
    (K.TRANSFERRED_IN, {"agency": "Northwind", "new_owner": "c@x.test", "plan": "Essentials"},
     "Became a standalone account (from Northwind), owned by c@x.test, on the Essentials plan"),
    (K.CLOSED, {"by_agency": "Northwind", "released": ["+14155550101", "+14155550102"]},
     "Closed with its agency, Northwind; released +14155550101, +14155550102"),
    (K.CLOSED, {"released": []}, "Closed"),
    (K.REACTIVATED, {"canceled_at": "2026-11-18 12:00:00+00:00"},
     "Reactivated (canceled since 2026-11-18)"),
    (K.NUMBER_RESTORED, {"number": "+14155550101"}, "Restored a tracking number: +14155550101"),
    (K.SUPPORT_REQUESTED, {"request": 7, "kind": "refund", "number": None},
     "Sent a support request #7: Refund of the available balance"),
    (K.BILLING_PAUSED, {"balance": -1240},
     "Paused for billing: the balance went below zero (balance -$12.40)"),
    (K.DATA_PURGED, {"calls": 1}, "Call data removed (60 days after closing): 1 call"),
    (K.AGENCY_CANCELED, {"reason": "Closing", "comments": "", "sub_accounts": ["A", "B"],
                         "released": []},
     "Canceled the agency and all sub-accounts (A, B). Reason: Closing"),
])
def test_each_event_is_worded_from_its_details(kind, details, words):
    assert describe(kind, details) == words


@pytest.mark.parametrize("kind", list(K))
def test_no_event_leaves_an_empty_detail_when_its_details_are_missing(kind):
    words = describe(kind, {})
    assert words
    for empty in ("()", "( )", "(to )", ": .", "None", "  "):
        assert empty not in words, (kind, words)
    assert words.startswith(EVENT_LABELS[kind].split()[0]) or kind in (
        K.TRANSFERRED_OUT, K.BILLING_LINK_SENT, K.BILLING_MODE_CHANGED, K.CLOSED)


@pytest.mark.parametrize(("today", "expected"), [
    (date(2026, 11, 23), [("This month", date(2026, 11, 1), date(2026, 11, 23)),
                          ("Last month", date(2026, 10, 1), date(2026, 10, 31)),
                          ("Last quarter", date(2026, 7, 1), date(2026, 9, 30)),
                          ("Year to date", date(2026, 1, 1), date(2026, 11, 23))]),
    (date(2027, 1, 1), [("This month", date(2027, 1, 1), date(2027, 1, 1)),
                        ("Last month", date(2026, 12, 1), date(2026, 12, 31)),
                        ("Last quarter", date(2026, 10, 1), date(2026, 12, 31)),
                        ("Year to date", date(2027, 1, 1), date(2027, 1, 1))]),
    (date(2026, 3, 31), [("This month", date(2026, 3, 1), date(2026, 3, 31)),
                         ("Last month", date(2026, 2, 1), date(2026, 2, 28)),
                         ("Last quarter", date(2025, 10, 1), date(2025, 12, 31)),
                         ("Year to date", date(2026, 1, 1), date(2026, 3, 31))]),
])
def test_statement_presets(today, expected):
    assert [(p.label, p.start, p.end) for p in statements.presets(today)] == expected


# --- Restore all (item 11): the restore rule, each number through restore -------------------

def test_restore_all_restores_what_the_rule_allows_and_reports_the_rest(session):
    from datetime import UTC, datetime, timedelta

    from portal.errors import NotAllowed
    from portal.models import AccountEvent, NumberStatus
    from portal.services import lifecycle, numbers
    from tests import factories as f

    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    admin = f.user(session)
    shop = f.standalone(session, "Shop", admin=admin)
    other = f.standalone(session, "Other")
    recent = f.number(session, shop, released_at=now - timedelta(days=1), label="Recent")
    old = f.number(session, shop, released_at=now - timedelta(days=15), label="Old")
    taken = f.number(session, shop, released_at=now - timedelta(days=2), label="Taken")
    numbers.add(session, other, taken.number)
    active = f.number(session, shop, label="Active")

    restorable, others = numbers.restore_all_plan(session, shop, True, now)
    assert [o.number.label for o in restorable] == ["Recent", "Taken"]
    assert [(o.number.label, o.message) for o in others] == [
        ("Old", "Released more than 14 days ago.")]

    result = numbers.restore_all(session, shop, admin, now)
    assert [n.label for n in result.restored] == ["Recent"]
    assert [(n.label, reason) for n, reason in result.refused] == [
        ("Taken", f"{taken.number} is in use by another account now; it can't be restored."),
        ("Old", f"{old.number} was released more than 14 days ago: ask support.")]
    session.expire_all()
    assert (recent.status, old.status, taken.status, active.status) == (
        NumberStatus.ACTIVE, NumberStatus.RELEASED, NumberStatus.RELEASED, NumberStatus.ACTIVE)
    restored_events = [e for e in session.query(AccountEvent).filter_by(account_id=shop.id)
                       if e.kind.value == "number_restored"]
    assert [e.details["number"] for e in restored_events] == [recent.number]

    # nothing left to restore: said so; a canceled account: refused
    with pytest.raises(NotAllowed):
        numbers.restore_all(session, other, admin, now)
    lifecycle.close(session, shop, admin, now=now)
    with pytest.raises(NotAllowed) as e:
        numbers.restore_all(session, shop, admin, now + timedelta(hours=1))
    assert e.value.message == "Reactivate Shop before restoring its numbers."
