from sqlalchemy import func, select

from portal.mail import outbox
from portal.models import MailStatus, OutboxMessage
from tests import factories as f


def count(session):
    return session.scalar(select(func.count()).select_from(OutboxMessage))


def test_a_message_is_queued_pending(session):
    account = f.standalone(session)
    message = outbox.queue(session, to="pat@example.test", subject="Hello", text="Body",
                           html="<p>Body</p>", kind="receipt", account_id=account.id)
    stored = session.get(OutboxMessage, message.id)
    assert (stored.to_address, stored.subject, stored.text_body, stored.html_body, stored.kind,
            stored.account_id, stored.dedupe_key) == (
        "pat@example.test", "Hello", "Body", "<p>Body</p>", "receipt", account.id, None)
    assert (stored.status, stored.attempts, stored.sent_at) == (MailStatus.PENDING, 0, None)


def test_the_same_dedupe_key_queues_the_notice_once(session):
    first = outbox.queue(session, to="pat@example.test", subject="Receipt R-1", text="one",
                         kind="receipt", dedupe_key="receipt:1:7")
    again = outbox.queue(session, to="pat@example.test", subject="Receipt R-1 (again)",
                         text="two", kind="receipt", dedupe_key="receipt:1:7")
    assert again.id == first.id
    assert count(session) == 1
    assert session.get(OutboxMessage, first.id).text_body == "one"  # the first one is kept


def test_other_keys_and_no_key_queue_again(session):
    for key in ("receipt:1:7", "receipt:1:8", None, None):
        outbox.queue(session, to="pat@example.test", subject="s", text="t", kind="receipt",
                     dedupe_key=key)
    assert count(session) == 4


def test_a_duplicate_key_written_by_someone_else_is_returned(session, monkeypatch):
    """Two writers at the same moment: the loser's insert hits the unique key, and it returns
    the winner's message instead of failing."""
    winner = outbox.queue(session, to="a@example.test", subject="s", text="first",
                          kind="decline", dedupe_key="decline:5:1")
    real_scalar = session.scalar
    calls = []

    def blind_first_lookup(statement, *args, **kwargs):
        calls.append(statement)
        if len(calls) == 1:
            return None  # the lookup ran before the winner committed
        return real_scalar(statement, *args, **kwargs)

    monkeypatch.setattr(session, "scalar", blind_first_lookup)
    loser = outbox.queue(session, to="a@example.test", subject="s", text="second",
                         kind="decline", dedupe_key="decline:5:1")
    monkeypatch.undo()
    assert loser.id == winner.id and len(calls) == 2
    assert count(session) == 1


def test_long_subjects_are_cut_to_200_characters(session):
    message = outbox.queue(session, to="a@example.test", subject="x" * 250, text="t",
                           kind="receipt")
    assert session.get(OutboxMessage, message.id).subject == "x" * 200


def test_latest_lists_newest_first(session):
    for i in range(3):
        outbox.queue(session, to=f"{i}@example.test", subject=f"s{i}", text="t", kind="k")
    assert [m.subject for m in outbox.latest(session)] == ["s2", "s1", "s0"]
    assert [m.subject for m in outbox.latest(session, limit=2)] == ["s2", "s1"]
