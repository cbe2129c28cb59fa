"""Issue 17 (J): a statement PDF past rules.STATEMENT_SYNC_MAX_ENTRIES is made by the jobs:
the request answers 202 "being prepared" (htmx polls its status block, which turns into the
Download link), the jobs step statements-prepare builds it and emails the requester the
link; a ready file is served at once; the download is tenant- and role-checked; Send
Statement for a big period goes the same way. The threshold is lowered here (the Acme
Plumbing November of test_statements has 5 entries)."""

import io
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from portal import jobs, rules
from portal.models import OutboxAttachment, OutboxMessage, Role, StatementFile
from portal.models.statement_files import FileStatus
from portal.services import statement_files
from tests import factories as f
from tests.conftest import HX
from tests.web import test_statements
from tests.web.billing_world import BILLING_ONLY, flash, post, snapshot, url
from tests.web.conftest import sign_in_as
from tests.web.pages import NOT_FOUND, body, shown
from tests.web.test_statements import NOV, pdf_text

# Acme Plumbing's October and November (test_statements' fixtures)
bw, activity = test_statements.bw, test_statements.activity

PREPARING = "Your statement for Nov 1, 2026 – Nov 23, 2026 is being prepared."


@pytest.fixture
def big(monkeypatch):
    monkeypatch.setattr(rules, "STATEMENT_SYNC_MAX_ENTRIES", 3)


def files(session):
    session.expire_all()
    return session.scalars(select(StatementFile).order_by(StatementFile.id)).all()


def ready_mail(session):
    session.expire_all()
    return session.scalars(select(OutboxMessage).where(
        OutboxMessage.subject.like("Your statement for%")).order_by(OutboxMessage.id)).all()


def test_at_the_limit_the_pdf_is_made_in_the_request(client, session, bw, activity,
                                                     monkeypatch):
    monkeypatch.setattr(rules, "STATEMENT_SYNC_MAX_ENTRIES", 5)  # November: exactly 5
    sign_in_as(client, bw.ann)
    response = client.get(url(bw.solo, "statements.pdf"), query_string=NOV)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/pdf"
    assert files(session) == []


def test_a_big_statement_is_prepared_by_the_jobs_and_emailed(client, session, bw, activity,
                                                            big):
    sign_in_as(client, bw.ann)
    response = client.get(url(bw.solo, "statements.pdf"), query_string=NOV)
    assert response.status_code == 202
    page = body(response)
    assert PREPARING in page
    assert "It holds 5 entries" in page
    assert "it will be emailed to ann@example.test and listed under Printable Statements" in page
    [file] = files(session)
    assert (file.account_id, file.requested_by_id, file.status) == (
        bw.solo.id, bw.ann.id, FileStatus.PENDING)
    status_url = url(bw.solo, f"statements/files/{file.id}")
    assert f'hx-get="{status_url}" hx-trigger="every 5s" hx-swap="outerHTML"' in page
    assert f'<a href="{status_url}" hx-boost="false">Refresh</a>' in page  # without JS
    # a second request (and the poll) reuse the same file
    assert client.get(url(bw.solo, "statements.pdf"), query_string=NOV).status_code == 202
    fragment = client.get(status_url, headers=HX)
    assert fragment.status_code == 202
    html = body(fragment)
    assert html.lstrip().startswith('<div id="statement-file-status"') and "<html" not in html
    assert PREPARING in html  # the fragment names the period too
    assert len(files(session)) == 1
    # the download before it is ready: the page, not a PDF
    early = client.get(url(bw.solo, f"statements/files/{file.id}.pdf"))
    assert early.status_code == 202 and PREPARING in body(early)

    assert jobs.prepare_statements(session) == 1
    [file] = files(session)
    assert file.status == FileStatus.READY and file.pdf.startswith(b"%PDF-")
    assert file.pages == len(PdfReader(io.BytesIO(file.pdf)).pages) >= 1
    assert file.size == len(file.pdf) and file.ready_at is not None
    assert (file.expires_at - file.ready_at) == rules.STATEMENT_FILE_TTL
    # the same document as the request would have made
    assert "Closing balance $157.64" in pdf_text(file.pdf)
    [mail] = ready_mail(session)
    download = url(bw.solo, f"statements/files/{file.id}.pdf")
    assert mail.to_address == "ann@example.test" and mail.account_id == bw.solo.id
    assert mail.subject == ("Your statement for Acme Plumbing is ready: Nov 1, 2026 – "
                            "Nov 23, 2026")
    assert download in mail.text_body and 'href="http' in mail.html_body
    assert re.search(r"https?://[^\s]+" + re.escape(download), mail.text_body)
    # the poll turns into the Download link (and stops polling)
    fragment = body(client.get(status_url, headers=HX))
    assert "hx-trigger" not in fragment
    assert "Your statement for Nov 1, 2026 – Nov 23, 2026 is ready: 1 page." in fragment
    assert f'href="{download}"' in fragment and "Download the statement (PDF)" in fragment
    # the download, and the statement PDF of that period, served at once from the file
    got = client.get(download)
    assert got.status_code == 200 and got.headers["Content-Type"] == "application/pdf"
    assert got.data == file.pdf
    again = client.get(url(bw.solo, "statements.pdf"), query_string=NOV)
    assert again.status_code == 200 and again.data == file.pdf
    # listed in the Printable Statements dialog
    listed = body(client.get(url(bw.solo, "statements"), headers=HX))
    assert 'data-testid="statement-files"' in listed and f'href="{download}"' in listed
    # a second run makes nothing more, emails nobody again
    assert jobs.prepare_statements(session) == 0
    assert len(ready_mail(session)) == 1


def test_a_failed_build_says_so_and_try_again_asks_anew(client, session, bw, activity, big,
                                                       monkeypatch):
    sign_in_as(client, bw.ann)
    client.get(url(bw.solo, "statements.pdf"), query_string=NOV)
    from portal import pdf

    def broken(*_args, **_kwargs):
        raise RuntimeError("the renderer fell over")

    monkeypatch.setattr(pdf, "statement", broken)
    assert jobs.prepare_statements(session) == 0
    [file] = files(session)
    assert file.status == FileStatus.FAILED and "the renderer fell over" in file.error
    assert ready_mail(session) == []
    page = body(client.get(url(bw.solo, f"statements/files/{file.id}")))
    assert "could not be prepared" in page and ">Try again</button>" in page
    monkeypatch.undo()
    monkeypatch.setattr(rules, "STATEMENT_SYNC_MAX_ENTRIES", 3)
    response = post(client, url(bw.solo, f"statements/files/{file.id}/retry"))
    assert response.status_code == 303
    old, new = files(session)
    assert (old.status, new.status) == (FileStatus.FAILED, FileStatus.PENDING)
    assert response.location.endswith(f"statements/files/{new.id}")
    assert jobs.prepare_statements(session) == 1
    assert files(session)[1].status == FileStatus.READY


def test_send_statement_for_a_big_period_goes_through_the_jobs(client, session, bw, activity,
                                                              big):
    sign_in_as(client, bw.ann)
    response = post(client, url(bw.solo, "statements"),
                    {**NOV, "recipient": "other", "other": "books@example.test"})
    assert response.status_code == 303
    assert flash("success", "The statement for November 1, 2026 – November 23, 2026 is being "
                            "prepared: it will be emailed to books@example.test when ready "
                            "(it is listed below).") in body(client.get(response.location))
    [file] = files(session)
    assert file.send_to == "books@example.test"
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.kind == "statement")) == 0  # nothing sent in the request
    assert jobs.prepare_statements(session) == 1
    sent = session.scalars(select(OutboxMessage).where(
        OutboxMessage.to_address == "books@example.test")).all()
    assert len(sent) == 1 and sent[0].subject.startswith("Statement for Acme Plumbing")
    assert len(ready_mail(session)) == 1  # and the requester's link


def test_the_download_is_tenant_and_role_checked(client, session, bw, activity, big):
    sign_in_as(client, bw.ann)
    client.get(url(bw.solo, "statements.pdf"), query_string=NOV)
    assert jobs.prepare_statements(session) == 1
    [file] = files(session)
    paths = (f"statements/files/{file.id}.pdf", f"statements/files/{file.id}")
    before = snapshot(session)
    sign_in_as(client, bw.vic)  # a role-user of the account
    for path in paths:
        response = client.get(url(bw.solo, path))
        assert response.status_code == 403, path
        assert shown(BILLING_ONLY) in body(response)
        assert "Content-Disposition" not in response.headers
    sign_in_as(client, bw.rex)  # another tenant, by its own account's URL and by Acme's
    for account in (bw.solo, bw.rival):
        for path in paths:
            response = client.get(url(account, path))
            assert response.status_code == 404, (account.name, path)
            assert NOT_FOUND in body(response) and not response.data.startswith(b"%PDF")
    assert post(client, url(bw.rival, f"statements/files/{file.id}/retry")).status_code == 404
    sign_in_as(client, bw.ann)  # unknown ids
    for file_id in (file.id + 1, 2147483647):
        response = client.get(url(bw.solo, f"statements/files/{file_id}.pdf"))
        assert response.status_code == 404 and NOT_FOUND in body(response)
    assert client.get(url(bw.solo, "statements/files/abc.pdf")).status_code == 404
    assert snapshot(session) == before


def test_try_again_needs_the_csrf_token(client, session, bw, activity, big, monkeypatch):
    sign_in_as(client, bw.ann)
    client.get(url(bw.solo, "statements.pdf"), query_string=NOV)
    [file] = files(session)
    statement_files.fail(session, file.id, "boom")
    before = snapshot(session)
    response = post(client, url(bw.solo, f"statements/files/{file.id}/retry"), csrf=False)
    assert response.status_code == 400
    assert [f.status for f in files(session)] == [FileStatus.FAILED]
    assert snapshot(session) == before


def test_send_statement_of_a_ready_period_sends_the_stored_pdf(client, session, bw, activity,
                                                              big, monkeypatch):
    sign_in_as(client, bw.ann)
    client.get(url(bw.solo, "statements.pdf"), query_string=NOV)
    assert jobs.prepare_statements(session) == 1
    [file] = files(session)
    from portal import pdf

    def no_rendering(_html):
        raise AssertionError("rendered again in the request")

    monkeypatch.setattr(pdf, "render", no_rendering)  # the stored PDF, not a second one
    response = post(client, url(bw.solo, "statements"),
                    {**NOV, "recipient": "other", "other": "books@example.test"})
    assert response.status_code == 303
    assert flash("success", "The statement for November 1, 2026 – November 23, 2026 was sent "
                            "to books@example.test.") in body(client.get(response.location))
    session.expire_all()
    [sent] = session.scalars(select(OutboxMessage).where(
        OutboxMessage.to_address == "books@example.test")).all()
    pdf_file, csv_file = session.scalars(select(OutboxAttachment).where(
        OutboxAttachment.message_id == sent.id).order_by(OutboxAttachment.id)).all()
    assert pdf_file.data == file.pdf and csv_file.content_type == "text/csv"
    assert len(files(session)) == 1  # no second file made


def test_a_billing_user_downloads_it(client, session, bw, activity, big):
    sign_in_as(client, bw.ann)
    client.get(url(bw.solo, "statements.pdf"), query_string=NOV)
    assert jobs.prepare_statements(session) == 1
    [file] = files(session)
    f.member(session, bw.staff, bw.solo, Role.BILLING)
    session.commit()
    sign_in_as(client, bw.staff)
    response = client.get(url(bw.solo, f"statements/files/{file.id}.pdf"))
    assert response.status_code == 200 and response.data == file.pdf
