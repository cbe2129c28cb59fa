"""SMTP delivery of the outbox (portal/mail/delivery.py, portal.jobs.deliver_mail), against a
real SMTP server on loopback (aiosmtpd): messages arrive with their text and HTML parts and
the statement's PDF; each is sent once, even when delivery runs twice or two runs race; a
server that refuses ("451") or is down is retried with backoff (1, 2, 4, 8 minutes) and after
5 attempts the message is marked failed with its error kept, shown in the dev outbox."""

import asyncio
import io
import socket
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from pypdf import PdfReader
from sqlalchemy import func, select

from portal import clock, jobs
from portal.extensions import db
from portal.mail import delivery, notices, outbox
from portal.models import MailStatus, OutboxAttachment, OutboxMessage
from portal.services import charges, statements
from portal.services.gateway import SandboxGateway
from tests import factories as f
from tests.conftest import make_app
from tests.threads import in_own_session

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """An SMTP handler that keeps every message it accepts.

    refuse: how many DATA commands to answer "451 Try again later" before accepting.
    gates: {recipient: (arrived, release)}: hold that recipient's first message until
    release is set (without blocking the server's event loop)."""

    def __init__(self):
        self.envelopes = []
        self.refuse = 0
        self.refused = 0
        self.gates = {}

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            gate = self.gates.pop(rcpt, None)
            if gate is not None:
                arrived, release = gate
                arrived.set()
                while not release.is_set():
                    await asyncio.sleep(0.01)
        if self.refused < self.refuse:
            self.refused += 1
            return "451 Try again later"
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self):
        return [message_from_bytes(e.content, policy=policy.default) for e in self.envelopes]


@pytest.fixture
def smtp(app):
    """An SMTP server on a loopback port, and the app configured to deliver to it."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
    clock.freeze(NOW)
    yield SimpleNamespace(inbox=inbox, port=port, controller=controller)
    controller.stop()


def queue(session, n=1, to="pat@example.test", **kw):
    ids = []
    for i in range(n):
        message = outbox.queue(session, to=to if n == 1 else f"{i}-{to}", subject=f"Hello {i}",
                               text=f"Plain text {i}", html=f"<p>HTML {i}</p>", kind="test",
                               **kw)
        ids.append(message.id)
    session.commit()
    return ids


def rows(session):
    session.expire_all()
    return session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text() or "" for page in reader.pages).split())


def statement_mail(session, account, recipient="books@example.test"):
    """A statement of the account's last month queued as Send Statement queues it."""
    from flask import current_app, render_template

    from portal import pdf
    from portal.services import billing

    built = statements.build(session, account, datetime(2026, 10, 1).date(),
                             datetime(2026, 10, 31).date())
    with current_app.test_request_context():
        html = render_template("billing/statement.html", statement=built,
                               settings=billing.settings_for(session, account))
    notices.statement(session, account, built, recipient, pdf.render(html))
    session.commit()
    return session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "statement")
                          .order_by(OutboxMessage.id.desc()))


# --------------------------------------------------------------- what arrives

def test_a_receipt_arrives_with_its_text_and_html_parts(session, smtp):
    admin = f.user(session, "ann@example.test")
    account = f.standalone(session, "Acme Plumbing", admin=admin)
    visa = f.card(session, account)
    charge = charges.pay(session, account, admin, str(visa.id), "25.50", charges.new_form_key())
    session.commit()
    charge = charges.attempt(session, SandboxGateway(), charge)
    [queued] = rows(session)

    result = jobs.deliver_mail(session)
    assert (result.sent, result.retried, result.failed) == (1, 0, 0)
    [envelope] = smtp.inbox.envelopes
    assert envelope.mail_from == "billing@portal.invalid"
    assert envelope.rcpt_tos == ["ann@example.test"]
    [email] = smtp.inbox.messages()
    assert email["From"] == "Account Portal <billing@portal.invalid>"
    assert email["To"] == "ann@example.test"
    assert email["Subject"] == (f"Receipt {charge.receipt_number}: payment of $25.50 for "
                                "Acme Plumbing")
    assert email["Message-ID"] == f"<outbox-{queued.id}.20261123120000@portal.invalid>"
    assert email["Date"].datetime == NOW
    assert email.get_content_type() == "multipart/alternative"
    plain = email.get_body(("plain",)).get_content()
    html = email.get_body(("html",)).get_content()
    assert "Payment: $25.50" in plain and "Charged to: Visa ending 4242" in plain
    assert charge.receipt_number in html and "<" in html
    assert plain.replace("\r\n", "\n").strip() == queued.text_body.strip()  # as queued
    [sent] = rows(session)
    assert (sent.status, sent.attempts, sent.sent_at, sent.last_error) == (
        MailStatus.SENT, 1, NOW, "")


def test_a_statement_arrives_with_its_pdf_attached(session, smtp):
    account = f.standalone(session, "Acme Plumbing")
    f.funds(session, account, 12_345, when=datetime(2026, 10, 7, 9, tzinfo=UTC))
    session.commit()
    queued = statement_mail(session, account)
    [attachment] = session.scalars(select(OutboxAttachment)).all()

    assert jobs.deliver_mail(session).sent == 1
    [envelope] = smtp.inbox.envelopes
    assert envelope.rcpt_tos == ["books@example.test"]
    [email] = smtp.inbox.messages()
    assert email.get_content_type() == "multipart/mixed"
    assert email["Subject"] == "Statement for Acme Plumbing: Oct 1, 2026 – Oct 31, 2026"
    plain = email.get_body(("plain",)).get_content()
    assert "Opening balance: $0.00" in plain and "Closing balance: $123.45" in plain
    [pdf_part] = list(email.iter_attachments())
    assert pdf_part.get_content_type() == "application/pdf"
    assert pdf_part.get_filename() == f"statement-{account.id}-20261001-20261031.pdf"
    data = pdf_part.get_content()
    assert data == attachment.data
    words = pdf_text(data)
    assert "Opening balance $0.00" in words and "Payment $123.45" in words
    assert "Closing balance $123.45" in words
    assert rows(session)[0].id == queued.id and rows(session)[0].status == MailStatus.SENT


def test_a_statement_email_has_an_html_part_too(session, smtp):
    """Every billing email arrives with a text and an HTML part; the statement's PDF is an
    attachment beside them."""
    account = f.standalone(session, "Acme Plumbing")
    session.commit()
    statement_mail(session, account)
    assert jobs.deliver_mail(session).sent == 1
    [email] = smtp.inbox.messages()
    assert email.get_body(("plain",)) is not None
    html = email.get_body(("html",))
    assert html is not None, "the statement email has no HTML part"
    assert "Acme Plumbing" in html.get_content()
    assert [p.get_content_type() for p in email.iter_attachments()] == ["application/pdf"]


def test_jobs_run_queues_and_delivers_a_recurring_statement_once(app, session, smtp):
    clock.freeze(datetime(2026, 10, 5, 9, tzinfo=UTC))
    admin = f.user(session, "ann@example.test")
    account = f.standalone(session, "Acme Plumbing", admin=admin)
    f.funds(session, account, 5_000)
    statements.add_schedule(session, account, admin, "monthly", "ann@example.test")
    session.commit()
    clock.freeze(NOW)
    runner = app.test_cli_runner()
    first = runner.invoke(args=["jobs", "run"])
    assert first.exit_code == 0, first.output
    assert "statements: 1 recurring statement(s) queued" in first.output
    assert "mail: 1 sent, 0 to retry, 0 failed" in first.output
    second = runner.invoke(args=["jobs", "run"])
    assert "statements: 0 recurring statement(s) queued" in second.output
    assert "mail: 0 sent, 0 to retry, 0 failed" in second.output
    [email] = smtp.inbox.messages()
    assert email["To"] == "ann@example.test"
    assert email["Subject"] == "Statement for Acme Plumbing: Oct 1, 2026 – Oct 31, 2026"
    assert "Closing balance: $50.00" in email.get_body(("plain",)).get_content()
    # The PDF, and the itemized postings beside it as a CSV (issue 17).
    pdf_part, csv_part = list(email.iter_attachments())
    assert pdf_part.get_content_type() == "application/pdf"
    words = pdf_text(pdf_part.get_content())
    assert "Opening balance $0.00" in words and "Closing balance $50.00" in words
    assert csv_part.get_content_type() == "text/csv"
    assert csv_part.get_filename().endswith(".csv")
    assert csv_part.get_content().splitlines()[0].startswith("posted_at_utc,kind,")


# --------------------------------------------------------------- once

def test_each_message_is_sent_once_even_if_delivery_runs_twice(session, smtp):
    ids = queue(session, 3)
    first = jobs.deliver_mail(session)
    again = jobs.deliver_mail(session)
    assert (first.sent, again.sent, again.retried, again.failed) == (3, 0, 0, 0)
    assert sorted(m["Message-ID"] for m in smtp.inbox.messages()) == sorted(
        f"<outbox-{i}.20261123120000@portal.invalid>" for i in ids)
    clock.freeze(NOW + timedelta(days=1))
    assert jobs.deliver_mail(session).sent == 0
    assert len(smtp.inbox.envelopes) == 3
    assert [(m.status, m.attempts) for m in rows(session)] == [(MailStatus.SENT, 1)] * 3


def test_a_message_claimed_by_another_run_is_not_sent_again(session, smtp):
    [claimed, free] = queue(session, 2)
    assert delivery._claim(session, claimed, NOW)  # another run has it (and is sending it)
    result = jobs.deliver_mail(session)
    assert result.sent == 1
    assert [e.rcpt_tos for e in smtp.inbox.envelopes] == [["1-pat@example.test"]]
    # the other run died without a word: once its lease is over, the message goes out
    clock.freeze(NOW + delivery.LEASE)
    assert jobs.deliver_mail(session).sent == 1
    assert sorted(e.rcpt_tos[0] for e in smtp.inbox.envelopes) == [
        "0-pat@example.test", "1-pat@example.test"]
    assert {m.id: m.attempts for m in rows(session)} == {claimed: 1, free: 1}


def test_two_concurrent_deliveries_send_each_message_once(app, session, smtp):
    ids = queue(session, 12)
    barrier = threading.Barrier(2, timeout=10)

    def deliver(s):
        barrier.wait()
        return jobs.deliver_mail(s)

    runs = [in_own_session(app, deliver) for _ in range(2)]
    for thread, _ in runs:
        thread.start()
    for thread, _ in runs:
        thread.join(60)
    assert [r.get("error") for _, r in runs] == [None, None]
    assert sum(r["value"].sent for _, r in runs) == 12
    assert sum(r["value"].retried + r["value"].failed for _, r in runs) == 0
    got = sorted(m["Message-ID"] for m in smtp.inbox.messages())
    assert got == sorted(f"<outbox-{i}.20261123120000@portal.invalid>" for i in ids)
    assert [(m.status, m.attempts) for m in rows(session)] == [(MailStatus.SENT, 1)] * 12


def test_a_run_that_outlasts_the_lease_does_not_send_a_message_twice(app, session, smtp):
    """A run starts at NOW; its first message takes 6 minutes at the server. When it then
    claims its second message, a run started meanwhile must not take that message too."""
    queue(session, 2)
    first_arrived, first_release = threading.Event(), threading.Event()
    second_arrived, second_release = threading.Event(), threading.Event()
    smtp.inbox.gates = {"0-pat@example.test": (first_arrived, first_release),
                        "1-pat@example.test": (second_arrived, second_release)}
    thread, result = in_own_session(app, lambda s: jobs.deliver_mail(s, NOW))
    thread.start()
    try:
        assert first_arrived.wait(10)
        clock.freeze(NOW + 6 * MINUTE)  # the first message took six minutes
        first_release.set()
        assert second_arrived.wait(10)  # the slow run has claimed and is sending the second
        later = jobs.deliver_mail(session)  # the next cron run, at NOW + 6 minutes
    finally:
        first_release.set()
        second_release.set()
        thread.join(30)
    assert "error" not in result
    assert later.sent == 0, "the second message was claimed again while being sent"
    assert sorted(e.rcpt_tos[0] for e in smtp.inbox.envelopes) == [
        "0-pat@example.test", "1-pat@example.test"]


# --------------------------------------------------------------- failures

def test_a_refusing_server_is_retried_with_backoff_then_the_message_fails(client, session,
                                                                          smtp):
    smtp.inbox.refuse = 99
    [message_id] = queue(session)
    moment = NOW
    for attempt, wait in enumerate([1, 2, 4, 8], start=1):
        clock.freeze(moment)
        result = jobs.deliver_mail(session)
        assert (result.sent, result.retried, result.failed) == (0, 1, 0), attempt
        [row] = rows(session)
        assert (row.status, row.attempts) == (MailStatus.PENDING, attempt)
        assert row.next_attempt_at == moment + wait * MINUTE, attempt
        assert row.last_error == "SMTPDataError: (451, b'Try again later')"
        # not due before the backoff is over
        clock.freeze(moment + wait * MINUTE - timedelta(seconds=1))
        assert jobs.deliver_mail(session).retried == 0
        assert smtp.inbox.refused == attempt
        moment += wait * MINUTE
    clock.freeze(moment)
    result = jobs.deliver_mail(session)
    assert (result.sent, result.retried, result.failed) == (0, 0, 1)
    [row] = rows(session)  # nothing lost: the message stays, failed, with its error
    assert (row.id, row.status, row.attempts, row.sent_at) == (
        message_id, MailStatus.FAILED, 5, None)
    assert row.last_error == "SMTPDataError: (451, b'Try again later')"
    assert (row.subject, row.text_body, row.html_body) == (
        "Hello 0", "Plain text 0", "<p>HTML 0</p>")
    # never tried again
    clock.freeze(moment + timedelta(days=1))
    smtp.inbox.refuse = 0
    assert jobs.deliver_mail(session).sent == 0
    assert smtp.inbox.refused == 5 and smtp.inbox.envelopes == []

    # the dev outbox shows the status and the error
    page = client.get("/dev/outbox").get_data(as_text=True)
    assert '<td data-label="Kind">test</td><td data-label="Status">failed</td>' in page
    page = client.get(f"/dev/outbox/{message_id}").get_data(as_text=True)
    assert ("<dt>Status</dt><dd>failed, 5 attempts (SMTPDataError: (451, b&#39;Try again "
            "later&#39;))</dd>") in page


def test_a_server_that_is_down_is_retried_until_it_is_back(app, client, session):
    port = free_port()  # nothing listens here
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
    clock.freeze(NOW)
    [message_id] = queue(session)
    result = jobs.deliver_mail(session)
    assert (result.sent, result.retried, result.failed) == (0, 1, 0)
    [row] = rows(session)
    assert (row.status, row.attempts, row.next_attempt_at) == (
        MailStatus.PENDING, 1, NOW + MINUTE)
    assert row.last_error.startswith("ConnectionRefusedError: ")
    page = client.get(f"/dev/outbox/{message_id}").get_data(as_text=True)
    assert "<dt>Status</dt><dd>pending, 1 attempt (ConnectionRefusedError: " in page

    clock.freeze(NOW + MINUTE)
    assert jobs.deliver_mail(session).retried == 1
    assert rows(session)[0].next_attempt_at == NOW + 3 * MINUTE

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock.freeze(NOW + 3 * MINUTE)
        assert jobs.deliver_mail(session).sent == 1
    finally:
        controller.stop()
    [row] = rows(session)
    assert (row.status, row.attempts, row.sent_at, row.last_error) == (
        MailStatus.SENT, 3, NOW + 3 * MINUTE, "")
    [email] = inbox.messages()
    assert email["Message-ID"] == f"<outbox-{message_id}.20261123120000@portal.invalid>"
    page = client.get(f"/dev/outbox/{message_id}").get_data(as_text=True)
    assert "<dt>Status</dt><dd>sent, 3 attempts</dd>" in page


def test_a_message_that_fails_then_goes_through_is_sent_once(session, smtp):
    smtp.inbox.refuse = 2
    queue(session)
    for minutes in (0, 1, 3):
        clock.freeze(NOW + minutes * MINUTE)
        jobs.deliver_mail(session)
    [row] = rows(session)
    assert (row.status, row.attempts, row.last_error) == (MailStatus.SENT, 3, "")
    assert len(smtp.inbox.envelopes) == 1
    clock.freeze(NOW + timedelta(hours=1))
    jobs.deliver_mail(session)
    assert len(smtp.inbox.envelopes) == 1


def test_one_failing_message_does_not_hold_up_the_others(session, smtp):
    ids = queue(session, 3)
    smtp.inbox.refuse = 1  # the first one sent is refused
    result = jobs.deliver_mail(session)
    assert (result.sent, result.retried, result.failed) == (2, 1, 0)
    assert [(m.id, m.status) for m in rows(session)] == [
        (ids[0], MailStatus.PENDING), (ids[1], MailStatus.SENT), (ids[2], MailStatus.SENT)]


# --------------------------------------------------------------- configuration, the command

def test_without_a_mail_server_the_outbox_stays_for_the_dev_page(app, session):
    app.config["MAIL_SERVER"] = ""
    queue(session, 2)
    assert jobs.deliver_mail(session) is None
    assert [(m.status, m.attempts) for m in rows(session)] == [(MailStatus.PENDING, 0)] * 2
    result = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert result.exit_code == 0, result.output
    assert "mail: no MAIL_SERVER; the outbox stays in the dev outbox page" in result.output
    assert [m.status for m in rows(session)] == [MailStatus.PENDING] * 2


def test_mail_config_from_the_app():
    assert delivery.MailConfig.from_app({"MAIL_SERVER": ""}) is None
    config = delivery.MailConfig.from_app({
        "MAIL_SERVER": "smtp.example.test", "MAIL_PORT": "2525", "MAIL_USERNAME": "u",
        "MAIL_PASSWORD": "p", "MAIL_USE_TLS": True, "MAIL_DEFAULT_SENDER": "Billing <b@x.test>"})
    assert config == delivery.MailConfig("smtp.example.test", 2525, "u", "p", True,
                                     "Billing <b@x.test>")
    assert delivery.MailConfig.from_app({"MAIL_SERVER": "h"}).sender == (
        "Account Portal <billing@portal.invalid>")
    assert [delivery.backoff(n) for n in (1, 2, 3, 4)] == [MINUTE, 2 * MINUTE, 4 * MINUTE,
                                                       8 * MINUTE]


def test_jobs_run_delivers_through_the_configured_server(app, database_url, session):
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    clock.freeze(NOW)
    queue(session, 2)
    configured = make_app(database_url, MAIL_SERVER="127.0.0.1", MAIL_PORT=port,
                          MAIL_DEFAULT_SENDER="Acme Billing <billing@acme.example>")
    try:
        # (the test's own app context is pushed: the command would use it, not this app)
        with configured.app_context():
            runner = configured.test_cli_runner()
            first = runner.invoke(args=["jobs", "run"])
            assert first.exit_code == 0, first.output
            assert "mail: 2 sent, 0 to retry, 0 failed" in first.output
            second = runner.invoke(args=["jobs", "run"])
            assert "mail: 0 sent, 0 to retry, 0 failed" in second.output
            db.session.remove()
            db.engine.dispose()
    finally:
        controller.stop()
    assert [e.mail_from for e in inbox.envelopes] == ["billing@acme.example"] * 2
    assert [m["From"] for m in inbox.messages()] == ["Acme Billing <billing@acme.example>"] * 2
    assert session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.status == MailStatus.SENT)) == 2


# --------------------------------------------------------------- a message that can't be composed

def _bad_first(session):
    """A message whose address is not one address (a header injection typed before addresses
    were checked where they are entered), queued in front of two good ones."""
    bad = outbox.queue(session, to="a@b.test\r\nBcc: x@y.test", subject="Statement",
                       text="Plain", kind="statement")
    session.commit()
    return bad.id, queue(session, 2)


def test_a_message_that_cannot_be_composed_fails_at_once_and_the_rest_go(session, smtp):
    """`compose` was outside the try: the bad message raised out of `jobs run` every time its
    lease ended, and the messages after it waited."""
    bad_id, good_ids = _bad_first(session)
    result = jobs.deliver_mail(session)
    assert (result.sent, result.retried, result.failed) == (2, 0, 1)
    by_id = {m.id: m for m in rows(session)}
    assert [by_id[i].status for i in good_ids] == [MailStatus.SENT] * 2
    bad = by_id[bad_id]
    assert (bad.status, bad.attempts, bad.sent_at) == (MailStatus.FAILED, 1, None)
    assert bad.last_error == ("Could not compose the message: 'a@b.test\\r\\nBcc: x@y.test' is "
                              "not one valid email address.")
    assert sorted(e.rcpt_tos[0] for e in smtp.inbox.envelopes) == [
        "0-pat@example.test", "1-pat@example.test"]
    assert all("x@y.test" not in e.rcpt_tos for e in smtp.inbox.envelopes)
    # never tried again, never in the way
    clock.freeze(NOW + timedelta(hours=1))
    queue(session, 1, to="later@example.test")
    assert (jobs.deliver_mail(session).sent, len(smtp.inbox.envelopes)) == (1, 3)
    assert rows(session)[0].attempts == 1


@pytest.mark.parametrize("to", ["a@b.test, c@d.test", "Pat <a@b.test>", "", "a@b.invalid",
                                "nobody"])
def test_an_address_that_is_not_one_valid_address_is_never_sent(session, smtp, to):
    outbox.queue(session, to=to, subject="Hi", text="x", kind="test")
    session.commit()
    result = jobs.deliver_mail(session)
    assert (result.sent, result.failed) == (0, 1)
    assert smtp.inbox.envelopes == []
    assert rows(session)[0].last_error.startswith("Could not compose the message: ")


def test_jobs_run_reports_the_failure_and_carries_on(app, session, smtp):
    _bad_first(session)
    result = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert result.exit_code == 0, result.output
    assert "mail: 2 sent, 0 to retry, 1 failed" in result.output


# --------------------------------------------------------------- requeueing failed mail

def _failed(session, smtp):
    """Two messages failed after five refusals, one sent."""
    smtp.inbox.refuse = 99
    ids = queue(session, 2)
    moment = NOW
    for wait in (0, 1, 2, 4, 8):
        moment += wait * MINUTE
        clock.freeze(moment)
        jobs.deliver_mail(session)
    smtp.inbox.refuse = 0
    [sent] = queue(session, 1, to="sent@example.test")
    jobs.deliver_mail(session)
    assert [m.status for m in rows(session)] == [MailStatus.FAILED] * 2 + [MailStatus.SENT]
    return ids, sent


def test_mail_retry_requeues_one_failed_message(app, session, smtp):
    (first, second), sent = _failed(session, smtp)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["mail", "retry", str(first)])
    assert result.exit_code == 0, result.output
    assert f"1 message(s) queued again: #{first}" in result.output
    row = {m.id: m for m in rows(session)}[first]
    assert (row.status, row.attempts, row.next_attempt_at, row.last_error) == (
        MailStatus.PENDING, 0, None, "")
    assert jobs.deliver_mail(session).sent == 1
    assert [m.status for m in rows(session)] == [MailStatus.SENT, MailStatus.FAILED,
                                                 MailStatus.SENT]
    assert len(smtp.inbox.envelopes) == 2  # the retried one and the one sent before, once each
    # a message that did not fail, or does not exist, is refused with the reason
    for args, message in [([str(sent)], f"Message #{sent} is sent: only failed messages are "
                                         "queued again."),
                          (["999999"], "No outbox message #999999.")]:
        result = runner.invoke(args=["mail", "retry", *args])
        assert result.exit_code == 1 and message in result.output, result.output
    assert rows(session)[1].status == MailStatus.FAILED


def test_mail_retry_all_failed_and_the_usage_errors(app, session, smtp):
    ids, _sent = _failed(session, smtp)
    runner = app.test_cli_runner()
    for args in ([], [str(ids[0]), "--all-failed"]):
        result = runner.invoke(args=["mail", "retry", *args])
        assert result.exit_code == 2, args
        assert "Give one message id, or --all-failed." in result.output
    result = runner.invoke(args=["mail", "retry", "--all-failed"])
    assert result.exit_code == 0, result.output
    assert f"2 message(s) queued again: #{ids[0]}, #{ids[1]}" in result.output
    assert jobs.deliver_mail(session).sent == 2
    assert [m.status for m in rows(session)] == [MailStatus.SENT] * 3
    assert "No failed messages." in runner.invoke(args=["mail", "retry", "--all-failed"]).output


def test_the_dev_outbox_says_how_many_failed(client, session, smtp):
    _bad_first(session)
    page = client.get("/dev/outbox").get_data(as_text=True)
    assert 'data-testid="failed-count"' not in page
    jobs.deliver_mail(session)
    page = client.get("/dev/outbox").get_data(as_text=True)
    assert ('<p class="flash flash-error" role="status" data-testid="failed-count">1 message '
            "failed (each says why). Queue it again with <code>flask --app wsgi mail retry "
            "--all-failed</code> (or <code>mail retry ID</code>).</p>") in page


@pytest.mark.parametrize("arg", ["１", "1_0", "+1", "²", "2147483648"])
def test_mail_retry_takes_an_id_in_the_digits_0_to_9(app, session, arg):
    result = app.test_cli_runner().invoke(args=["mail", "retry", arg])
    assert result.exit_code == 2
    assert "is not a whole number from 0 to 2147483647 in the digits 0-9." in result.output
