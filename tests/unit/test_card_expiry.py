"""Issue 16, card health: the billing recipients are emailed 30 days and 7 days before the
Primary or Backup card expires (portal/jobs.py card_expiry_notices, daily; once per card and
threshold: the outbox's dedupe key card-expiry:<method>:<days>)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from portal import clock
from portal.jobs import card_expiry_notices
from portal.models import MethodKind, MethodRole, OutboxMessage, PaymentMethod, Role
from tests import factories as f

# The Visa below expires 2026-12 (it works through December 31): 30 days before is Dec 1.
EXPIRES = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)


@pytest.fixture
def w(app, session):
    owner = f.user(session, email="owner@example.test")
    admin = f.user(session, email="admin@example.test")
    account = f.standalone(session, "Acme Dental", owner=owner)
    f.member(session, admin, account, Role.ADMIN)
    cards = {}
    for last4, role, year, month in (("4242", MethodRole.PRIMARY, 2026, 12),
                                     ("4444", MethodRole.BACKUP, 2027, 1),
                                     ("1881", MethodRole.OTHER, 2026, 12)):
        method = PaymentMethod(account_id=account.id, kind=MethodKind.CARD, brand="Visa",
                               last4=last4, holder="Pat Doe", token=f"pm_sbx_{last4}",
                               exp_month=month, exp_year=year, role=role,
                               created_at=EXPIRES - timedelta(days=400))
        session.add(method)
        cards[last4] = method
    session.commit()
    return account, cards


def sent(session) -> list[tuple[str, str]]:
    session.expire_all()
    return [(m.to_address, m.dedupe_key.rsplit(":", 1)[0]) for m in session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "card_expiry")
        .order_by(OutboxMessage.id))]


def run_on(session, day: datetime) -> int:
    clock.freeze(day)
    return card_expiry_notices(session)


def test_the_primary_and_backup_are_announced_30_then_7_days_before_once_each(session, w):
    account, cards = w
    primary, backup = cards["4242"].id, cards["4444"].id
    assert run_on(session, EXPIRES - timedelta(days=31)) == 0
    assert run_on(session, EXPIRES - timedelta(days=30)) == 2  # the owner and the admin
    assert sorted(sent(session)) == [("admin@example.test", f"card-expiry:{primary}:30"),
                                     ("owner@example.test", f"card-expiry:{primary}:30")]
    for days in (29, 20, 8):  # the daily runs in between: nothing more
        assert run_on(session, EXPIRES - timedelta(days=days)) == 0
    assert run_on(session, EXPIRES - timedelta(days=7)) == 2
    assert run_on(session, EXPIRES - timedelta(days=6)) == 0
    # the Backup (January 2027) gets its own 30-day notice on January 1
    assert run_on(session, EXPIRES + timedelta(days=1)) == 2
    keys = [key for _to, key in sent(session)]
    assert keys.count(f"card-expiry:{primary}:30") == keys.count(
        f"card-expiry:{primary}:7") == keys.count(f"card-expiry:{backup}:30") == 2
    # a card that isn't Primary or Backup is never announced
    assert not any(f":{cards['1881'].id}:" in key for key in keys)
    [message] = session.scalars(select(OutboxMessage).where(
        OutboxMessage.dedupe_key.startswith(f"card-expiry:{primary}:7:"),
        OutboxMessage.to_address == "owner@example.test")).all()
    assert message.subject == ("Your Primary card for Acme Dental, Visa ending 4242, expires "
                               "December 31, 2026")
    assert "Settings → Billing Settings → Payment Methods" in message.text_body


def test_a_missed_day_catches_up_with_the_nearest_threshold_only(session, w):
    account, cards = w
    assert run_on(session, EXPIRES - timedelta(days=5)) == 2  # the job didn't run for weeks
    assert {key for _to, key in sent(session)} == {f"card-expiry:{cards['4242'].id}:7"}


def test_an_expired_or_removed_card_is_not_announced(session, w):
    account, cards = w
    assert run_on(session, EXPIRES + timedelta(days=40)) == 0  # both past their expiry
    cards["4444"].removed_at = EXPIRES
    session.commit()
    assert run_on(session, EXPIRES + timedelta(days=1)) == 0
