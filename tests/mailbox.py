"""A real SMTP mailbox for tests that read an email as it is delivered: an aiosmtpd server on
a loopback port, and the outbox delivered to it by the mail job (portal.jobs.deliver_mail,
what `flask jobs` runs) with the app's MAIL_SERVER / MAIL_PORT pointed at it.

    with Mailbox() as mailbox:
        mailbox.deliver(app, session)           # the job: every queued message, over SMTP
        email = mailbox.one(to="bea@example.test")
        text, html = Mailbox.text(email), Mailbox.html(email)

(tests/unit/test_mail_delivery.py tests the delivery itself against the same kind of server.)
"""

import socket
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Keep:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


class Mailbox:
    def __init__(self):
        self._handler = _Keep()
        self.port = free_port()
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "Mailbox":
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()

    def deliver(self, app, session) -> int:
        """Run the mail job against this server; how many messages it sent."""
        from portal import jobs

        app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=self.port, MAIL_USE_TLS=False,
                          MAIL_USERNAME="", MAIL_PASSWORD="")
        with app.app_context():
            result = jobs.deliver_mail(session)
        session.commit()
        return result.sent

    def messages(self, to: str | None = None) -> list[EmailMessage]:
        return [message_from_bytes(e.content, policy=policy.default)
                for e in self._handler.envelopes
                if to is None or to.lower() in (r.lower() for r in e.rcpt_tos)]

    def one(self, to: str) -> EmailMessage:
        found = self.messages(to)
        assert len(found) == 1, f"{len(found)} emails to {to} in the SMTP mailbox"
        return found[0]

    @staticmethod
    def text(message: EmailMessage) -> str:
        return message.get_body(preferencelist=("plain",)).get_content()

    @staticmethod
    def html(message: EmailMessage) -> str:
        return message.get_body(preferencelist=("html",)).get_content()
