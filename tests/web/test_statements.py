"""Print Statements: Payment History → Printable Statements (a dialog for htmx, a page
otherwise) with a date range and a recipient; Send Statement queues an email with the
statement as a PDF attachment, Download PDF returns it; bad dates are refused beside their
field. The statement lists every card charge and every usage, fee and tax in the range, the
opening and closing balance from the ledger and the totals by kind; an agency's itemizes its
agency-billed sub-accounts' usage. Recurring schedules are saved from the dialog, listed and
removable."""

import io
import re
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from portal import clock
from portal.models import (
    Cause,
    LedgerKind,
    OutboxAttachment,
    OutboxMessage,
    ScheduleFrequency,
    StatementSchedule,
)
from portal.services import billing, ledger, statements, usage
from tests.conftest import HX
from tests.web.billing_world import (
    AGENCY_BILLED,
    BILLING_ONLY,
    DECLINED,
    NOW,
    build,
    card,
    field_error,
    flash,
    paid,
    post,
    snapshot,
    url,
)
from tests.web.conftest import sign_in_as
from tests.web.pages import (
    NOT_FOUND,
    assert_fragment,
    assert_full_page,
    body,
    login_location,
    shown,
    table_rows,
    text,
)

NOV = {"from": "2026-11-01", "to": "2026-11-23"}


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-"), data[:20]
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text() or "" for page in reader.pages).split())


@pytest.fixture
def bw(session):
    clock.freeze(NOW)
    return build(session)


def at(day, hour=12, minute=0):
    return datetime(2026, 11 if day > 0 else 10, abs(day), hour, minute, tzinfo=UTC)


@pytest.fixture
def activity(session, bw):
    """Acme Plumbing's October and November (negative days are October's):
    - Oct 20: a $100 card payment; Oct 31 23:59: 100 minutes of usage ($5.00).
    - Nov 1 00:00: the Pro plan fee ($179.00) and the tax on October's usage ($0.36).
    - Nov 2: a $250 card payment; Nov 3: a $30 payment declined (credits nothing).
    - Nov 5: 100 minutes of usage ($5.00); Nov 23 11:00: 1 number ($3.00).
    """
    visa = card(session, bw.solo)
    clock.freeze(at(-20))
    october = paid(session, bw.solo, visa, "100.00", actor=bw.ann)
    clock.freeze(at(-31, 23, 59))
    usage.post(session, bw.solo, {"minutes": 100}, "oct-usage")  # $5.00 in October
    ledger.post(session, bw.solo, LedgerKind.PLAN_FEE, -17_900, "Plan fee: Pro, November 2026",
                "plan-fee:2026-11", Cause.JOB, now=at(1, 0, 0))
    ledger.post(session, bw.solo, LedgerKind.TAX, -36, "Sales tax (CA 7.25%) on October 2026 "
                "usage of $5.00", "tax:2026-10", Cause.JOB, now=at(1, 0, 0))
    session.commit()
    clock.freeze(at(2, 9, 30))
    november = paid(session, bw.solo, visa, "250.00", actor=bw.ann)
    declined = card(session, bw.solo, DECLINED)
    clock.freeze(at(3, 10))
    failed = paid(session, bw.solo, declined, "30.00", actor=bw.ann)
    clock.freeze(at(5, 8, 15))
    usage.post(session, bw.solo, {"minutes": 100}, "nov-usage-1")
    clock.freeze(at(23, 11))
    usage.post(session, bw.solo, {"numbers": 1}, "nov-usage-2")
    session.commit()
    clock.freeze(NOW)
    # the receipts of the payments are in the outbox; the statement tests count their own mail
    session.execute(OutboxMessage.__table__.delete())
    session.commit()
    return {"october": october, "november": november, "failed": failed}


def statement_mail(session):
    session.expire_all()
    return session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "statement")
                           .order_by(OutboxMessage.id)).all()


def attachments(session, message):
    return session.scalars(select(OutboxAttachment).where(
        OutboxAttachment.message_id == message.id).order_by(OutboxAttachment.id)).all()


def dialog(client, account, headers=None):
    return client.get(url(account, "statements"), headers=headers or {})


# --- the dialog ----------------------------------------------------------------------------------

def test_the_dialog_is_a_fragment_for_htmx_and_a_page_otherwise(client, bw):
    sign_in_as(client, bw.ann)
    settings = body(client.get(url(bw.solo)))
    assert (f'<a class="button" href="{url(bw.solo, "statements")}" hx-get="'
            f'{url(bw.solo, "statements")}" hx-target="#dialog-slot" hx-push-url="false">'
            "Printable Statements</a>") in settings
    fragment = dialog(client, bw.solo, HX)
    assert fragment.status_code == 200
    html = assert_fragment(fragment, "<dialog")
    assert html.strip().startswith('<dialog class="confirm" aria-labelledby="statements-h" >')
    full = assert_full_page(dialog(client, bw.solo))
    assert '<dialog class="confirm" aria-labelledby="statements-h" open>' in full
    assert "<title>Printable Statements" in full
    for page in (html, full):
        assert '<h2 id="statements-h">Printable Statements</h2>' in page
        # the range defaults to this month so far (UTC)
        assert 'name="from" value="2026-11-01"' in page
        assert 'name="to" value="2026-11-23"' in page
        # the dialog's own options (the page's header has the agent status select too)
        in_dialog = page[page.index("<dialog"):]
        assert re.findall(r"<option[^>]*>([^<]+)</option>", in_dialog) == [
            "ann@example.test", "Another address…",
            "Monthly (on the 1st, the previous month)", "Weekly (on Monday, the previous week)"]
        assert ">Send Statement</button>" in page
        # a link for the range drawn (issue 14): a GET with no CSRF token in its URL
        assert (f'<a id="st-pdf" class="button" href="{url(bw.solo, "statements.pdf")}'
                '?from=2026-11-01&amp;to=2026-11-23" target="_blank" rel="noopener" '
                'hx-boost="false">Download PDF</a>') in page
        assert (f'<a id="st-csv" class="button" href="{url(bw.solo, "statements.csv")}'
                '?from=2026-11-01&amp;to=2026-11-23" download hx-boost="false">'
                'Download postings (CSV)</a>') in page
        assert "csrf_token=" not in page and 'formmethod="get"' not in page
        assert "Save recurring schedule</button>" in page
        assert 'data-testid="schedules"' not in page  # none yet


def test_an_agencys_dialog_offers_its_billing_email_recipients(client, session, bw):
    sign_in_as(client, bw.ada)
    html = body(dialog(client, bw.agency, HX))
    choices = re.findall(r'<option[^>]*>([^<]+)</option>', html.split('name="frequency"')[0])
    assert choices == ["ada@example.test", "avery@example.test", "Another address…"]
    billing.set_recipients(session, bw.agency, [str(bw.staff.id)])
    session.commit()
    html = body(dialog(client, bw.agency, HX))
    choices = re.findall(r'<option[^>]*>([^<]+)</option>', html.split('name="frequency"')[0])
    assert choices == ["staff@example.test", "Another address…"]


# --- Send Statement --------------------------------------------------------------------------

def test_send_statement_queues_the_pdf_to_the_chosen_recipient(client, session, bw, activity):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "statements"), {**NOV, "recipient": "ann@example.test"})
    assert response.status_code == 303
    assert response.location == url(bw.solo)
    page = body(client.get(response.location))
    assert flash("success", "The statement for November 1, 2026 – November 23, 2026 was sent "
                            "to ann@example.test.") in page
    [message] = statement_mail(session)
    assert (message.to_address, message.kind, message.account_id, message.status.value) == (
        "ann@example.test", "statement", bw.solo.id, "pending")
    assert message.subject == "Statement for Acme Plumbing: Nov 1, 2026 – Nov 23, 2026"
    for line in ("Statement for Acme Plumbing: November 1, 2026 to November 23, 2026 (UTC)",
                 "Opening balance: $95.00", "Payment: $250.00", "Usage: -$8.00",
                 "Plan fee: -$179.00", "Tax: -$0.36", "Closing balance: $157.64",
                 "The full statement is attached as a PDF, and every posting of the period "
                 "as a CSV."):
        assert line in message.text_body, (line, message.text_body)
    assert "Auto recharge" not in message.text_body  # only the kinds in the range
    attachment, postings = attachments(session, message)
    assert attachment.content_type == "application/pdf"
    assert attachment.filename == f"statement-{bw.solo.id}-20261101-20261123.pdf"
    # beside it, every posting of the period (issue 17), as the download gives it
    assert postings.content_type == "text/csv"
    assert postings.filename == f"statement-{bw.solo.id}-20261101-20261123-postings.csv"
    assert postings.data == client.get(url(bw.solo, "statements.csv"), query_string=NOV).data
    assert len(postings.data.decode().splitlines()) == 1 + 5
    words = pdf_text(attachment.data)
    for fact in ("Account Portal", f"Statement for Acme Plumbing (#{bw.solo.id})",
                 "November 1, 2026 – November 23, 2026", "Dates and times in UTC",
                 "Opening balance $95.00", "Payment $250.00", "Usage -$8.00",
                 "Plan fee -$179.00", "Tax -$0.36", "Closing balance $157.64",
                 activity["november"].receipt_number, activity["failed"].receipt_number):
        assert fact in words, (fact, words)
    assert activity["october"].receipt_number not in words


def test_send_statement_from_htmx_answers_in_the_dialog(client, session, bw, activity):
    """No reload (issue 14): the dialog again, saying it was sent, its range kept."""
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "statements"),
                    {**NOV, "recipient": "ann@example.test"}, headers=HX)
    assert response.status_code == 200
    assert "HX-Redirect" not in response.headers
    html = assert_fragment(response, "<dialog")
    assert flash("success", "The statement for November 1, 2026 – November 23, 2026 was sent "
                            "to ann@example.test.") in html
    assert f'name="from" value="{NOV["from"]}"' in html
    assert len(statement_mail(session)) == 1


def test_send_statement_to_another_address(client, session, bw, activity):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "statements"), {
        "from": "2026-10-01", "to": "2026-10-31", "recipient": "other",
        "other": " Books@Acme.example "})
    assert response.status_code == 303
    [message] = statement_mail(session)
    assert message.to_address == "books@acme.example"
    assert message.subject == "Statement for Acme Plumbing: Oct 1, 2026 – Oct 31, 2026"
    attachment, postings = attachments(session, message)
    assert postings.data.decode().splitlines()[1:] == [
        "2026-10-20T12:00:00Z,Payment,"
        f"Payment: Visa ending 4242 ({activity['october'].receipt_number}),,100.00,100.00,"
        f"{activity['october'].id}",
        "2026-10-31T23:59:00Z,Usage,Usage: 100 minutes,,-5.00,95.00,oct-usage"]
    words = pdf_text(attachment.data)
    assert "Opening balance $0.00" in words and "Closing balance $95.00" in words
    assert activity["october"].receipt_number in words


def test_each_send_queues_its_own_message(client, session, bw, activity):
    sign_in_as(client, bw.ann)
    for _ in range(2):
        assert post(client, url(bw.solo, "statements"),
                    {**NOV, "recipient": "ann@example.test"}).status_code == 303
    assert len(statement_mail(session)) == 2


@pytest.mark.parametrize("form", [
    {"recipient": ""}, {"recipient": "other", "other": ""},
    {"recipient": "other", "other": "not an address"},
])
def test_a_bad_recipient_is_refused_beside_the_field(client, session, bw, form):
    sign_in_as(client, bw.ann)
    before = snapshot(session)
    for headers in (HX, {}):
        response = post(client, url(bw.solo, "statements"), {**NOV, **form}, headers=headers)
        assert response.status_code == 422
        html = assert_fragment(response, "<dialog") if headers else assert_full_page(response)
        assert field_error("recipient", "Choose who receives the statement, or enter an "
                                        "email address.") in html
        assert 'aria-describedby="recipient-error"' in html
        assert 'name="from" value="2026-11-01"' in html  # the form comes back as sent
    assert snapshot(session) == before


# --- Download PDF and the page ---------------------------------------------------------------

def test_download_returns_the_pdf_and_queues_nothing(client, session, bw, activity):
    sign_in_as(client, bw.ann)
    response = client.get(url(bw.solo, "statements.pdf"), query_string=NOV)
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == (
        f'inline; filename="statement-{bw.solo.id}-20261101-20261123.pdf"')
    words = pdf_text(response.data)
    assert "Opening balance $95.00" in words and "Closing balance $157.64" in words
    assert "Download PDF" not in words  # the page's link is not printed
    assert statement_mail(session) == []
    # the dialog's own form sends everything else too: ignored
    extra = client.get(url(bw.solo, "statements.pdf"), query_string={
        **NOV, "recipient": "other", "other": "", "frequency": "weekly", "csrf_token": "x"})
    assert extra.status_code == 200 and extra.mimetype == "application/pdf"


def test_download_postings_csv_is_every_posting_of_the_period(client, session, bw, activity):
    sign_in_as(client, bw.ann)
    before = snapshot(session)
    response = client.get(url(bw.solo, "statements.csv"), query_string=NOV)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="statement-{bw.solo.id}-20261101-20261123-postings.csv"')
    november = activity["november"]
    assert response.data.decode().splitlines() == [
        "posted_at_utc,kind,description,sub_account,amount,balance_after,reference",
        "2026-11-01T00:00:00Z,Plan fee,\"Plan fee: Pro, November 2026\",,-179.00,-84.00,",
        "2026-11-01T00:00:00Z,Tax,Sales tax (CA 7.25%) on October 2026 usage of $5.00,,-0.36,"
        "-84.36,",
        f"2026-11-02T09:30:00Z,Payment,Payment: Visa ending 4242 ({november.receipt_number}),,"
        f"250.00,165.64,{november.id}",
        "2026-11-05T08:15:00Z,Usage,Usage: 100 minutes,,-5.00,160.64,nov-usage-1",
        "2026-11-23T11:00:00Z,Usage,Usage: 1 number,,-3.00,157.64,nov-usage-2",
    ]
    assert snapshot(session) == before and statement_mail(session) == []


def test_the_statement_lists_every_charge_usage_fee_and_tax(client, session, bw, activity):
    sign_in_as(client, bw.ann)
    response = client.get(url(bw.solo, "statements/view"), query_string=NOV)
    assert response.status_code == 200
    html = body(response)
    summary = dict(re.findall(r'<tr(?: class="total")?><th scope="row">([^<]+)</th>'
                              r'<td class="num"[^>]*>([^<]+)</td></tr>', html))
    assert summary == {"Opening balance": "$95.00", "Payment": "$250.00", "Usage": "-$8.00",
                       "Plan fee": "-$179.00", "Tax": "-$0.36", "Closing balance": "$157.64"}
    assert list(summary) == ["Opening balance", "Payment", "Usage", "Plan fee", "Tax",
                             "Closing balance"]
    rows = [r.cells for r in table_rows(html)]
    november, failed = activity["november"], activity["failed"]
    # Usage summed per day and item (issue 17): the items of the period as columns (the
    # quantity and the amount), then the day's total; every other entry its own line.
    usage_rows = [
        ["100 · $5.00", "", "$5.00"],
        ["", "1 · $3.00", "$3.00"],
    ]
    entry_rows = [
        ["2026-11-01 00:00", "Plan fee", "Plan fee: Pro, November 2026", "-$179.00",
         "-$84.00"],
        ["2026-11-01 00:00", "Tax", "Sales tax (CA 7.25%) on October 2026 usage of $5.00",
         "-$0.36", "-$84.36"],
        ["2026-11-02 09:30", "Payment",
         f"Payment: Visa ending 4242 ({november.receipt_number})", "$250.00", "$165.64"],
    ]
    assert rows == [
        ["2026-11-02 09:30", november.receipt_number, "Payment", "Visa ending 4242", "Paid",
         "$250.00"],
        ["2026-11-03 10:00", failed.receipt_number, "Payment", "Visa ending 0341",
         "Failed: The card was declined.", "$30.00"],
        *usage_rows,
        *entry_rows,
    ]
    assert re.findall(r'<th scope="row" class="nowrap day">([^<]+)</th>', html) == [
        "Nov 5", "Nov 23"]
    assert re.findall(r'<th scope="col" class="num item">(.+?)</th>', html) == [
        'Minutes <span class="unit-head">(min)</span>', "Numbers"]
    assert ('<tfoot><tr><th scope="row">Total</th>'
            '<td class="num" data-label="Minutes (min)">100 · $5.00</td>'
            '<td class="num" data-label="Numbers">1 · $3.00</td>'
            '<td class="num" data-label="Usage">$8.00</td></tr></tfoot>') in html
    assert ('<tfoot><tr><th colspan="3">Net change, usage included (5 entries)</th>'
            '<td class="num" data-label="Amount">$62.64</td>'
            '<td class="num" data-label="Balance">$157.64</td></tr></tfoot>') in html
    assert "2 usage postings in 2 days" in text(html)
    session.refresh(bw.solo)
    assert bw.solo.balance_cents == 15_764  # the closing balance is the ledger's
    assert "No activity in this period" not in html
    assert (f'<a href="{url(bw.solo, "statements.pdf")}?from=2026-11-01&amp;to=2026-11-23">'
            "Download PDF</a>") in html
    assert (f'<a href="{url(bw.solo, "statements.csv")}?from=2026-11-01&amp;to=2026-11-23" '
            "download>Download postings (CSV)</a>") in html
    # the PDF says the same
    words = pdf_text(client.get(url(bw.solo, "statements.pdf"), query_string=NOV).data)
    for row in entry_rows:
        assert " ".join(row[-2:]) in words, row
    # the unit in the column's heading (beside the number on a phone only)
    assert "Day Minutes (min) Numbers Day total" in words
    assert "Nov 5 100 · $5.00 $5.00" in words and "Nov 23 1 · $3.00 $3.00" in words
    assert "Total 100 · $5.00 1 · $3.00 $8.00" in words
    assert "Net change, usage included (5 entries) $62.64 $157.64" in words
    assert "Usage: 100 minutes" not in words  # the postings are in the CSV


def test_a_range_with_no_activity_says_so(client, session, bw, activity):
    sign_in_as(client, bw.ann)
    quiet = {"from": "2026-11-06", "to": "2026-11-22"}
    html = body(client.get(url(bw.solo, "statements/view"), query_string=quiet))
    assert ("No activity in this period: no card charges, usage, fees or taxes. The balance "
            "stayed at $160.64.") in text(html)
    assert table_rows(html) == []
    words = pdf_text(client.get(url(bw.solo, "statements.pdf"), query_string=quiet).data)
    assert "No activity in this period" in words
    assert "Opening balance $160.64 Closing balance $160.64" in words
    assert post(client, url(bw.solo, "statements"),
                {**quiet, "recipient": "ann@example.test"}).status_code == 303
    [message] = statement_mail(session)
    assert "No activity in this period." in message.text_body
    attachment, postings = attachments(session, message)
    assert postings.data.decode().splitlines() == [",".join(statements.CSV_HEADER)]
    assert "No activity in this period" in pdf_text(attachment.data)


def test_a_new_account_with_no_ledger_has_an_empty_statement(client, bw):
    sign_in_as(client, bw.ann)
    words = pdf_text(client.get(url(bw.solo, "statements.pdf"), query_string=NOV).data)
    assert "Opening balance $0.00 Closing balance $0.00" in words
    assert "No activity in this period" in words


def test_an_agencys_statement_itemizes_its_agency_billed_sub_accounts(client, session, bw):
    clock.freeze(at(10, 9))
    usage.post(session, bw.bayside, {"minutes": 200}, "bayside-1")  # $10.00 from the agency
    usage.post(session, bw.agency, {"numbers": 2}, "agency-1")  # the agency's own: $6.00
    usage.post(session, bw.harbor, {"minutes": 40}, "harbor-1")  # its own balance: $2.00
    session.commit()
    clock.freeze(NOW)
    sign_in_as(client, bw.avery)
    html = body(client.get(url(bw.agency, "statements/view"), query_string=NOV))
    assert "<h2>Usage by sub-account (agency billing)</h2>" in html
    rows = [r.cells for r in table_rows(html)]
    assert ["Bayside Dental", "-$10.00"] in rows
    assert not any("Harbor Law" in " ".join(r) for r in rows)
    # the day's usage summed per item, the sub-account's and the agency's own together;
    # the CSV names whose each posting was
    assert ["200 · $10.00", "2 · $6.00", "$16.00"] in rows
    csv_text = client.get(url(bw.agency, "statements.csv"), query_string=NOV).data.decode()
    assert csv_text.splitlines()[1:] == [
        "2026-11-10T09:00:00Z,Usage,Usage (Bayside Dental): 200 minutes,Bayside Dental,"
        "-10.00,-10.00,bayside-1",
        "2026-11-10T09:00:00Z,Usage,Usage: 2 numbers,,-6.00,-16.00,agency-1"]
    words = pdf_text(client.get(url(bw.agency, "statements.pdf"), query_string=NOV).data)
    assert "Usage by sub-account (agency billing)" in words
    assert "Bayside Dental -$10.00" in words
    assert "Usage -$16.00" in words and "Closing balance -$16.00" in words
    # the customer-billed sub-account's own statement has its own usage
    sign_in_as(client, bw.hal)
    words = pdf_text(client.get(url(bw.harbor, "statements.pdf"), query_string=NOV).data)
    assert "Usage -$2.00" in words and "Usage by sub-account" not in words


BAD_DATES = [
    pytest.param({"from": "", "to": ""}, {"from": "Choose the first day of the statement.",
                                          "to": "Choose the last day of the statement."},
                 id="none"),
    pytest.param({"from": "2026-13-01", "to": "2026-11-23"},
                 {"from": "From must be a date like 2026-11-23."}, id="bad-from"),
    pytest.param({"from": "2026-11-01", "to": "yesterday"},
                 {"to": "To must be a date like 2026-11-23."}, id="bad-to"),
    pytest.param({"from": "2026-11-20", "to": "2026-11-10"},
                 {"to": "To must be on or after From."}, id="reversed"),
    pytest.param({"from": "2026-11-01", "to": "2026-11-24"},
                 {"to": "The statement can't end after today."}, id="after-today"),
    pytest.param({"from": "2020-01-01", "to": "2026-11-23"},
                 {"to": "A statement covers at most 3 years."}, id="too-long"),
]


@pytest.mark.parametrize("dates,errors", BAD_DATES)
def test_bad_dates_are_refused_with_messages(client, session, bw, dates, errors):
    sign_in_as(client, bw.ann)
    before = snapshot(session)
    for path in ("statements.pdf", "statements/view", "statements.csv"):
        for headers in (HX, {}):
            response = client.get(url(bw.solo, path), query_string=dates, headers=headers)
            assert response.status_code == 422, (path, headers)
            assert response.mimetype == "text/html"
            html = (assert_fragment(response, "<dialog") if headers
                    else assert_full_page(response))
            for field, message in errors.items():
                assert field_error(field, message) in html, (path, field)
                assert f'aria-describedby="{field}-error"' in html
            assert f'name="from" value="{dates["from"]}"' in html  # as typed
    for headers in (HX, {}):
        response = post(client, url(bw.solo, "statements"),
                        {**dates, "recipient": "ann@example.test"}, headers=headers)
        assert response.status_code == 422
        html = body(response)
        for field, message in errors.items():
            assert field_error(field, message) in html
    assert snapshot(session) == before
    assert statement_mail(session) == []


def test_dates_and_recipient_are_all_checked_at_once(client, session, bw):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "statements"),
                    {"from": "2026-11-01", "to": "2026-12-01", "recipient": ""}, headers=HX)
    assert response.status_code == 422
    html = body(response)
    assert field_error("to", "The statement can't end after today.") in html
    assert field_error("recipient", "Choose who receives the statement, or enter an email "
                                    "address.") in html


# --- who may --------------------------------------------------------------------------------------

STATEMENT_GETS = ["statements", "statements.pdf?from=2026-11-01&to=2026-11-23",
                  "statements/view?from=2026-11-01&to=2026-11-23",
                  "statements.csv?from=2026-11-01&to=2026-11-23"]


def statement_posts(schedule_id):
    return [("statements", {**NOV, "recipient": "ann@example.test"}),
            ("statements/schedules", {"frequency": "weekly", "recipient": "ann@example.test"}),
            (f"statements/schedules/{schedule_id}/remove", {})]


def test_statements_are_for_the_accounts_admins_only(client, session, bw):
    schedule = statements.add_schedule(session, bw.solo, bw.ann, "weekly", "ann@example.test")
    session.commit()
    before = snapshot(session)
    for path in STATEMENT_GETS:  # signed out
        response = client.get(url(bw.solo, path))
        assert response.status_code == 302, path
        assert login_location(response)[0] == "/login"
    sign_in_as(client, bw.vic)  # a role-user
    for path in STATEMENT_GETS:
        response = client.get(url(bw.solo, path))
        assert response.status_code == 403, path
        assert shown(BILLING_ONLY) in body(response)
        assert "Content-Disposition" not in response.headers
    for path, data in statement_posts(schedule.id):
        assert post(client, url(bw.solo, path), data).status_code == 403, path
    sign_in_as(client, bw.rex)  # another tenant
    for path in STATEMENT_GETS:
        response = client.get(url(bw.solo, path))
        assert response.status_code == 404, path
        assert NOT_FOUND in body(response) and "Acme Plumbing" not in body(response)
    for path, data in statement_posts(schedule.id):
        assert post(client, url(bw.solo, path), data).status_code == 404, path
    assert snapshot(session) == before
    assert session.get(StatementSchedule, schedule.id) is not None


@pytest.mark.parametrize("who", ["bea", "avery"])
def test_a_sub_on_agency_billing_has_no_statements_of_its_own(client, session, bw, who):
    sign_in_as(client, getattr(bw, who))
    message = shown(AGENCY_BILLED.format("Bayside Dental"))
    for path in STATEMENT_GETS:
        response = client.get(url(bw.bayside, path))
        assert response.status_code == 403, path
        assert message in body(response)
    for path, data in statement_posts(1):
        response = post(client, url(bw.bayside, path), data)
        assert response.status_code == 403, path
        assert message in body(response)
    assert session.scalars(select(StatementSchedule)).all() == []
    assert statement_mail(session) == []


def test_a_canceled_account_can_download_but_not_send(client, session, bw):
    sign_in_as(client, bw.ann)
    response = client.get(url(bw.closed, "statements.pdf"), query_string=NOV)
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    response = client.get(url(bw.closed, "statements.csv"), query_string=NOV)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    response = post(client, url(bw.closed, "statements"), {**NOV, "recipient": "ann@example.test"})
    assert response.status_code == 403
    assert statement_mail(session) == []


# --- recurring schedules ---------------------------------------------------------------------

def schedules_of(session, account):
    session.expire_all()
    return [(s.frequency, s.recipient) for s in statements.schedules(session, account)]


def test_a_recurring_schedule_is_saved_listed_and_removed(client, session, bw):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "statements/schedules"),
                    {**NOV, "frequency": "weekly", "recipient": "ann@example.test"})
    assert response.status_code == 303
    assert response.location == url(bw.solo)
    assert flash("success", "Saved: the weekly statement will be emailed to ann@example.test."
                 ) in body(client.get(response.location))
    response = post(client, url(bw.solo, "statements/schedules"), {
        "frequency": "monthly", "recipient": "other", "other": "books@acme.example"},
        headers=HX)
    # htmx (issue 14): the dialog again, the new schedule listed, the message a success
    assert response.status_code == 200 and "HX-Redirect" not in response.headers
    saved = assert_fragment(response, "<dialog")
    assert flash("success", "Saved: the monthly statement will be emailed to "
                            "books@acme.example.") in saved
    assert "Monthly to books@acme.example" in text(saved)
    assert schedules_of(session, bw.solo) == [
        (ScheduleFrequency.WEEKLY, "ann@example.test"),
        (ScheduleFrequency.MONTHLY, "books@acme.example")]
    weekly, monthly = statements.schedules(session, bw.solo)
    assert weekly.created_by_id == bw.ann.id

    html = body(dialog(client, bw.solo, HX))
    listed = html[html.index('data-testid="schedules"'):]
    assert [text(li) for li in re.findall(r"<li>(.*?)</li>", listed, re.S)] == [
        "Weekly to ann@example.test Remove", "Monthly to books@acme.example Remove"]
    remove = url(bw.solo, f"statements/schedules/{weekly.id}/remove")
    assert f'action="{remove}"' in listed
    assert 'aria-label="Remove the weekly schedule to ann@example.test"' in listed

    assert f'hx-post="{remove}" hx-target="#dialog-slot"' in listed
    response = post(client, remove)
    assert response.status_code == 303
    assert flash("success", "The recurring statement was removed.") in body(
        client.get(response.location))
    assert schedules_of(session, bw.solo) == [(ScheduleFrequency.MONTHLY, "books@acme.example")]
    monthly_remove = url(bw.solo, f"statements/schedules/{monthly.id}/remove")
    response = post(client, monthly_remove, headers=HX)
    assert response.status_code == 200
    left = assert_fragment(response, "<dialog")
    assert flash("success", "The recurring statement was removed.") in left
    assert 'data-testid="schedules"' not in left
    assert post(client, remove).status_code == 404  # already gone
    assert statement_mail(session) == []  # saving a schedule sends nothing by itself


def test_the_dialog_shows_the_last_period_sent(client, session, bw):
    schedule = statements.add_schedule(session, bw.solo, bw.ann, "monthly", "ann@example.test")
    session.commit()
    assert statements.claim_due(session, schedule, NOW) is not None
    session.commit()
    sign_in_as(client, bw.ann)
    html = text(body(dialog(client, bw.solo, HX)))
    assert "Monthly to ann@example.test (last sent for the period from 2026-10-01)" in html


@pytest.mark.parametrize("form,field,message", [
    ({"frequency": "daily", "recipient": "ann@example.test"}, "frequency",
     "Choose weekly or monthly."),
    ({"frequency": "", "recipient": "ann@example.test"}, "frequency",
     "Choose weekly or monthly."),
    ({"frequency": "weekly", "recipient": "other", "other": "nope"}, "recipient",
     "Choose who receives the statement, or enter an email address."),
])
def test_a_bad_schedule_is_refused(client, session, bw, form, field, message):
    sign_in_as(client, bw.ann)
    for headers in (HX, {}):
        response = post(client, url(bw.solo, "statements/schedules"), form, headers=headers)
        assert response.status_code == 422
        html = assert_fragment(response, "<dialog") if headers else assert_full_page(response)
        assert field_error(field, message) in html
    assert schedules_of(session, bw.solo) == []


def test_another_accounts_schedule_is_not_found(client, session, bw):
    theirs = statements.add_schedule(session, bw.rival, bw.rex, "weekly", "rex@example.test")
    mine = statements.add_schedule(session, bw.solo, bw.ann, "weekly", "ann@example.test")
    session.commit()
    sign_in_as(client, bw.ann)
    for schedule_id in (theirs.id, 2147483647):
        response = post(client, url(bw.solo, f"statements/schedules/{schedule_id}/remove"))
        assert response.status_code == 404
        assert NOT_FOUND in body(response)
    assert post(client, url(bw.solo, "statements/schedules/2147483648/remove")).status_code \
        == 404
    # nor through the other account's own URL
    response = post(client, url(bw.rival, f"statements/schedules/{mine.id}/remove"))
    assert response.status_code == 404
    assert schedules_of(session, bw.rival) == [(ScheduleFrequency.WEEKLY, "rex@example.test")]
    assert schedules_of(session, bw.solo) == [(ScheduleFrequency.WEEKLY, "ann@example.test")]
    html = body(dialog(client, bw.solo, HX))
    assert "rex@example.test" not in html


def test_the_pdf_is_made_from_the_lean_html_and_the_page_keeps_its_screen_parts(
        client, session, bw, activity, app):
    """Round two of issue 17: the PDF's HTML leaves out the screen's stylesheet, the phone's
    per-cell labels and the links (WeasyPrint's time grows with the HTML and its cells); the
    page keeps them. Both fix the tables' column widths."""
    from portal import pdf

    sign_in_as(client, bw.ann)
    page = body(client.get(url(bw.solo, "statements/view"), query_string=NOV))
    assert 'href="/static/statement-screen.css" media="screen"' in page
    assert 'data-label="Minutes (min)"' in page and "Download PDF" in page
    with app.test_request_context():
        lean = pdf.statement(session, bw.solo, datetime(2026, 11, 1).date(),
                             datetime(2026, 11, 23).date(), for_pdf=True).html
    assert "statement-screen.css" not in lean and "data-label" not in lean
    assert "Download PDF" not in lean and "statement.css" in lean
    for html in (page, lean):
        assert html.count("<colgroup>") == 3 and html.count('class="lines') == 3
        assert html.count('class="lines fixed"') == 2  # card charges, entries
        assert html.count('class="lines usage fixed"') == 1
