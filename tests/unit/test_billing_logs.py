import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest

from portal.errors import ValidationFailed
from portal.models import Cause, LedgerKind
from portal.services import billing_logs, ledger
from portal.services.billing_logs import LogFilter
from portal.services.calls import DateRange
from tests import factories as f

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def post(session, account, kind, cents, description, when=NOW, ref=""):
    return ledger.post(session, account, kind, cents, description,
                       f"k-{description}-{when.isoformat()}", Cause.JOB, cause_ref=ref, now=when)


def descriptions(log_page):
    return [row.description for row in log_page.items]


def find(session, account, per_page=50, number=1, **args):
    return billing_logs.page(session, account, billing_logs.parse_filter(args), number, per_page)


# --------------------------------------------------------------- the filter

def test_an_empty_filter_finds_everything():
    assert billing_logs.parse_filter({}) == LogFilter("", None, DateRange())


def test_the_filter_is_parsed():
    parsed = billing_logs.parse_filter({"q": "  visa   ending ", "kind": "payment",
                                        "from": "2026-11-01", "to": "2026-11-30"})
    assert parsed == LogFilter("visa ending", LedgerKind.PAYMENT,
                               DateRange(date(2026, 11, 1), date(2026, 11, 30)))


@pytest.mark.parametrize("args,errors", [
    ({"q": "x" * 101}, {"q": "Search for at most 100 characters."}),
    ({"kind": "bonus"}, {"kind": "Choose a kind from the list."}),
    ({"kind": "Payment"}, {"kind": "Choose a kind from the list."}),
    ({"from": "2026-13-01"}, {"from": "From must be a date like 2026-11-23."}),
    ({"to": "yesterday"}, {"to": "To must be a date like 2026-11-23."}),
    ({"from": "2026-11-02", "to": "2026-11-01"}, {"to": "To must be on or after From."}),
    ({"q": "y" * 101, "kind": "x", "from": "nope"}, {
        "q": "Search for at most 100 characters.", "kind": "Choose a kind from the list.",
        "from": "From must be a date like 2026-11-23."}),
])
def test_filter_errors_name_their_field(args, errors):
    with pytest.raises(ValidationFailed) as e:
        billing_logs.parse_filter(args)
    assert e.value.errors == errors


def test_a_100_character_search_is_allowed():
    assert billing_logs.parse_filter({"q": "x" * 100}).q == "x" * 100


# --------------------------------------------------------------- searching

@pytest.fixture
def logs(session):
    account = f.standalone(session)
    other = f.standalone(session)
    post(session, account, LedgerKind.PAYMENT, 5000, "Payment: Visa ending 4242 (R-00000001)",
         NOW - timedelta(hours=5))
    post(session, account, LedgerKind.USAGE, -600, "Usage: 120 minutes",
         NOW - timedelta(hours=4))
    post(session, account, LedgerKind.ADJUSTMENT, 100, "50% off the setup fee",
         NOW - timedelta(hours=3))
    post(session, account, LedgerKind.ADJUSTMENT, 200, "promo_code WELCOME",
         NOW - timedelta(hours=2))
    post(session, account, LedgerKind.ADJUSTMENT, 300, "promo code 5000 off",
         NOW - timedelta(hours=1))
    post(session, other, LedgerKind.USAGE, -5, "Usage: 1 minute (another account)")
    return account


def test_entries_are_listed_newest_first_for_the_account_only(session, logs):
    assert descriptions(find(session, logs)) == [
        "promo code 5000 off", "promo_code WELCOME", "50% off the setup fee",
        "Usage: 120 minutes", "Payment: Visa ending 4242 (R-00000001)"]
    row = find(session, logs).items[-1]
    assert (row.kind, row.amount_cents, row.balance_after_cents, row.created_at) == (
        LedgerKind.PAYMENT, 5000, 5000, NOW - timedelta(hours=5))


@pytest.mark.parametrize("q,found", [
    ("USAGE", ["Usage: 120 minutes"]),
    ("visa ENDING", ["Payment: Visa ending 4242 (R-00000001)"]),
    ("%", ["50% off the setup fee"]),
    ("50%", ["50% off the setup fee"]),
    ("_", ["promo_code WELCOME"]),
    ("promo_code", ["promo_code WELCOME"]),
    ("promo code", ["promo code 5000 off"]),
    ("off", ["promo code 5000 off", "50% off the setup fee"]),
    ("nothing like this", []),
    ("\\", []),
])
def test_text_search_is_case_insensitive_and_takes_wildcards_literally(session, logs, q, found):
    assert descriptions(find(session, logs, q=q)) == found


def test_the_kind_filter(session, logs):
    assert descriptions(find(session, logs, kind="usage")) == ["Usage: 120 minutes"]
    assert descriptions(find(session, logs, kind="adjustment", q="promo")) == [
        "promo code 5000 off", "promo_code WELCOME"]
    assert descriptions(find(session, logs, kind="refund")) == []


def test_the_date_range_is_inclusive_days_in_utc(session):
    account = f.standalone(session)
    for when in (datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC),
                 datetime(2026, 11, 1, 0, 0, tzinfo=UTC),
                 datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC),
                 datetime(2026, 12, 1, 0, 0, tzinfo=UTC)):
        post(session, account, LedgerKind.USAGE, -1, f"at {when:%Y-%m-%d %H:%M:%S}", when)
    assert descriptions(find(session, account, **{"from": "2026-11-01", "to": "2026-11-30"})) \
        == ["at 2026-11-30 23:59:59", "at 2026-11-01 00:00:00"]
    assert descriptions(find(session, account, **{"from": "2026-11-30", "to": "2026-11-30"})) \
        == ["at 2026-11-30 23:59:59"]
    assert descriptions(find(session, account, **{"from": "2026-12-01"})) == [
        "at 2026-12-01 00:00:00"]
    assert descriptions(find(session, account, to="2026-10-31")) == ["at 2026-10-31 23:59:59"]


def test_pages_know_whether_an_older_page_exists(session):
    account = f.standalone(session)
    for i in range(5):
        post(session, account, LedgerKind.USAGE, -1, f"entry {i}", NOW + timedelta(minutes=i))
    first = find(session, account, per_page=2)
    assert (descriptions(first), first.has_prev, first.has_next) == (
        ["entry 4", "entry 3"], False, True)
    assert (first.first_index, first.last_index) == (1, 2)
    third = find(session, account, per_page=2, number=3)
    assert (descriptions(third), third.has_prev, third.has_next) == (["entry 0"], True, False)
    assert (third.first_index, third.last_index) == (5, 5)
    full = find(session, account, per_page=5)
    assert (len(full.items), full.has_next) == (5, False)
    beyond = find(session, account, per_page=5, number=2)
    assert (beyond.items, beyond.first_index, beyond.last_index) == ([], 0, 5)


def test_entries_at_the_same_moment_page_by_id(session):
    account = f.standalone(session)
    for i in range(3):
        ledger.post(session, account, LedgerKind.USAGE, -1, f"same {i}", f"s{i}", Cause.USAGE,
                    now=NOW)
    assert descriptions(find(session, account, per_page=2)) == ["same 2", "same 1"]
    assert descriptions(find(session, account, per_page=2, number=2)) == ["same 0"]


# --------------------------------------------------------------- CSV export

def export(session, account, batch=2000, **args):
    chunks = list(billing_logs.export_csv(session, account, billing_logs.parse_filter(args),
                                          batch=batch))
    return chunks, list(csv.reader(io.StringIO("".join(chunks))))


def test_the_export_lists_entries_oldest_first_with_formulas_neutralised(session):
    account = f.standalone(session)
    post(session, account, LedgerKind.PAYMENT, 123456, "Payment: Visa ending 4242",
         datetime(2026, 11, 1, 8, 30, 5, tzinfo=UTC), ref="17")
    post(session, account, LedgerKind.ADJUSTMENT, -250, '=HYPERLINK("http://x","y")',
         datetime(2026, 11, 2, 9, 0, tzinfo=UTC), ref="=1+1")
    post(session, account, LedgerKind.USAGE, -5, "Usage: 1 minute, \"quoted\"",
         datetime(2026, 11, 3, 10, 0, tzinfo=UTC), ref="batch-7")
    post(session, f.standalone(session), LedgerKind.USAGE, -5, "someone else's",
         datetime(2026, 11, 3, 10, 0, tzinfo=UTC))
    _chunks, table = export(session, account)
    assert table == [
        ["created_at_utc", "kind", "description", "amount", "balance_after", "cause",
         "reference"],
        ["2026-11-01T08:30:05Z", "Payment", "Payment: Visa ending 4242", "1234.56", "1234.56",
         "job", "17"],
        ["2026-11-02T09:00:00Z", "Adjustment", '\'=HYPERLINK("http://x","y")', "-2.50",
         "1232.06", "job", "'=1+1"],
        ["2026-11-03T10:00:00Z", "Usage", 'Usage: 1 minute, "quoted"', "-0.05", "1232.01",
         "job", "batch-7"],
    ]


@pytest.mark.parametrize("start", ["+", "-", "@"])
def test_other_formula_starts_are_neutralised_too(session, start):
    account = f.standalone(session)
    post(session, account, LedgerKind.ADJUSTMENT, 1, f"{start}SUM(A1)")
    _chunks, table = export(session, account)
    assert table[1][2] == f"'{start}SUM(A1)"


def test_the_export_follows_the_filter_and_streams_in_batches(session):
    account = f.standalone(session)
    for i in range(5):
        post(session, account, LedgerKind.USAGE, -1, f"usage {i}", NOW + timedelta(minutes=i))
    post(session, account, LedgerKind.PAYMENT, 10, "payment", NOW)
    chunks, table = export(session, account, batch=2, kind="usage")
    assert [row[2] for row in table[1:]] == [f"usage {i}" for i in range(5)]
    # the header, two full batches, then the rest
    assert [chunk.count("\n") for chunk in chunks] == [1, 2, 2, 1]
    _chunks, none = export(session, account, q="no such entry")
    assert len(none) == 1
