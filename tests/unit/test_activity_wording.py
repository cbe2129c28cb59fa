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
