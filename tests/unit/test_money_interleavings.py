"""Money under random interleavings (issue 12, item 4): a Hypothesis state machine drives
one agency with three sub-accounts through usage postings (with keys that come back, also
across billing switches), Make a Payment, auto recharges, Add to / Remove from Agency
Billing, billing-link payments (some of whose answers come late), canceled and replaced
requests, closes and reactivations, and the jobs that settle late answers. Charges and link
payments are split into the step that records them and the step that settles them, so
everything else also happens between the two.

Each step picks its action by weight, and its account, key and amount, with a random
generator Hypothesis seeds (Hypothesis's own draws lean to the first choice of every list,
which left most sub-accounts and keys untried); Hypothesis chooses how many steps and
shrinks a failure to fewer. A failure prints the steps taken.

After every step:
- `ledger check` is clean (every cached balance is the sum of its entries);
- no sub-account on agency billing holds money or is billing-paused on its own ledger;
- each usage key of a metered account was debited once, on the ledger of the account that
  was paying when it was written (the machine reads who pays just before each posting: the
  steps run one at a time, so that is who pays when the entry is written; the races between
  concurrent writers are tests/unit/test_payer_lock.py's);
- each charge the processor took was settled once: credited once, or refunded once;
- at most one recharge is pending per account;
- all balances together are what the charges, usage and transfers say.

It runs on the suite's database: SQLite, and PostgreSQL under `make test-postgres`.
HYPOTHESIS_EXAMPLES sets the number of runs (default 30, of up to 40 steps).
"""

import os
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, func, select

import portal.models  # noqa: F401  (first: billing_links.models needs portal.models loaded)
from billing_links import service as links
from portal import clock
from portal.errors import DomainError
from portal.extensions import db
from portal.models import (
    Account,
    AccountStatus,
    BillingMode,
    BillingRequest,
    Charge,
    ChargePurpose,
    ChargeStatus,
    LedgerEntry,
    LedgerKind,
    PaymentMethod,
    Refund,
    RefundStatus,
    RequestStatus,
    SandboxCharge,
    SandboxRefund,
    User,
)
from portal.sandbox.testing import paying_card
from portal.services import charges, ledger, lifecycle, refunds, usage
from portal.services.gateway import SandboxGateway
from tests import factories as f

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SETTINGS = links.LinkSettings(keys=["prop-key"], ttl=timedelta(days=7),
                              base_url="https://portal.example/")
GOOD, LATE = "4242424242424242", "4000000000000259"  # approved; approved, answer times out
SUBS = ("Bayside Dental", "Cedar Law", "Harbor Fitness")
KEYS = [f"batch-{i}" for i in range(3)]  # few: a key comes back often, across switches


def _empty_database() -> None:
    db.session.rollback()
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(delete(table))
    db.session.commit()


class Money(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.session = db.session
        self.gw = SandboxGateway()
        self.now = START
        # (metered account, key) -> (entry id, minutes); entry id -> the ledger it is on
        self.posted: dict[tuple[int, str], tuple[int, int]] = {}
        self.paid_by: dict[int, int] = {}

    # ----------------------------------------------------------------- the world

    @initialize(rng=st.randoms(use_true_random=False))
    def world(self, rng):
        # Hypothesis chooses the steps; the steps choose their accounts, keys and amounts
        # with this (its own draws lean to the first choice of every list, which would
        # leave most sub-accounts and keys untried)
        self.rng = rng
        _empty_database()
        clock.freeze(self.now)
        s = self.session
        self.owner = f.user(s, "owner@example.test")
        agency = f.agency(s, "Northwind Agency", owner=self.owner)
        f.card(s, agency)
        f.recharge_settings(s, agency, "10", "50")
        f.funds(s, agency, 3000)
        subs = [f.sub(s, agency, SUBS[0], billing=BillingMode.AGENCY),
                f.sub(s, agency, SUBS[1], billing=BillingMode.CUSTOMER),
                f.sub(s, agency, SUBS[2], billing=BillingMode.AGENCY)]
        f.card(s, subs[1])
        f.recharge_settings(s, subs[1], "5", "30")
        f.funds(s, subs[1], 1000)
        s.commit()
        self.owner_id = self.owner.id
        self.agency_id = agency.id
        self.sub_ids = [sub.id for sub in subs]
        self.urls: dict[int, str] = {}  # sub id -> the newest link's URL

    def tick(self, seconds: int = 30) -> None:
        self.now += timedelta(seconds=seconds)
        clock.freeze(self.now)

    def account(self, account_id: int) -> Account:
        return self.session.get(Account, account_id, populate_existing=True)

    def subs(self, mode: BillingMode | None = None, canceled: bool | None = False) -> list[int]:
        """The sub-accounts in this state (the steps pick among those a user could act on,
        plus, now and then, any: a refusal must change nothing)."""
        found = []
        for sub_id in self.sub_ids:
            sub = self.account(sub_id)
            if (mode is None or sub.billing_mode == mode) and (
                    canceled is None or sub.is_canceled == canceled):
                found.append(sub_id)
        return found

    def pick(self, candidates: list[int]) -> int:
        """One of the candidates, or (one time in five) any sub-account."""
        if candidates and self.rng.random() < 0.8:
            return self.rng.choice(candidates)
        return self.rng.choice(self.sub_ids)

    def payer_of(self, account_id: int) -> int:
        account = self.account(account_id)
        if account.is_sub and account.billing_mode == BillingMode.AGENCY:
            return account.parent_id
        return account.id

    def actor(self) -> User:
        return self.session.get(User, self.owner_id)

    def attempt(self, step) -> bool:
        """Run a step; a domain refusal (the step didn't apply in this state) changes
        nothing. Anything else is a failure."""
        try:
            step()
        except DomainError:
            self.session.rollback()
            return False
        self.session.commit()
        return True

    # ----------------------------------------------------------------- steps

    def post_usage(self):
        """Usage for the agency or (mostly) a sub-account."""
        self.tick()
        metered_id = self.rng.choice([self.agency_id] + 2 * self.sub_ids)
        key = self.rng.choice(KEYS)
        minutes = self.rng.choice([20, 300, 2000])
        metered = self.account(metered_id)
        expected_payer = self.payer_of(metered_id)
        canceled = metered.is_canceled
        result = {}

        def post():
            result["posted"] = usage.post(self.session, metered, {"minutes": minutes}, key)
        applied = self.attempt(post)
        first = self.posted.get((metered_id, key))
        note(f"  {metered.name}, {key}, {minutes} minutes: "
             f"{'refused' if not applied else 'posted'}")
        if not applied:
            # refused: a canceled account takes no new usage, and a key reused with other
            # usage is refused
            assert canceled or first is not None
            return
        posted = result["posted"]
        if first is None:
            assert not posted.duplicate
            assert posted.entry.account_id == expected_payer, "debited the wrong ledger"
            assert posted.entry.amount_cents == -5 * minutes
            self.posted[(metered_id, key)] = (posted.entry.id, minutes)
            self.paid_by[posted.entry.id] = expected_payer
        else:
            assert posted.duplicate and posted.entry.id == first[0], "a key debited twice"
            assert first[1] == minutes

    def retry_a_posting(self):
        """The metering system sends a posting again (its answer was lost), maybe after the
        account moved between agency and customer billing: nothing more is debited."""
        if not self.posted:
            return self.post_usage()
        self.tick()
        postings = sorted(self.posted.items())
        # mostly one whose payer has changed since it was written: the retry that matters
        moved = [p for p in postings if self.payer_of(p[0][0]) != self.paid_by[p[1][0]]]
        (metered_id, key), (entry_id, minutes) = self.rng.choice(
            moved if moved and self.rng.random() < 0.8 else postings)
        posted = usage.post(self.session, self.account(metered_id), {"minutes": minutes}, key)
        self.session.commit()
        assert (posted.duplicate, posted.entry.id, posted.recharge) == (True, entry_id, None)

    def make_a_payment(self):
        """The agency or a customer-billed sub-account pays; recorded now, charged by
        `settle`."""
        self.tick()
        account = self.account(self.rng.choice([self.agency_id]
                                               + self.subs(BillingMode.CUSTOMER)))
        dollars = self.rng.choice(["25", "40"])
        method = self.session.scalar(select(PaymentMethod.id).where(
            PaymentMethod.account_id == account.id, PaymentMethod.removed_at.is_(None)))
        if method is None:
            return
        self.attempt(lambda: charges.pay(self.session, account, self.actor(), str(method),
                                         dollars, charges.new_form_key()))

    def settle(self):
        """The processor answers one recorded charge (a recharge tries the Backup on a
        decline)."""
        self.tick()
        pending = self.session.scalars(select(Charge).where(
            Charge.status == ChargeStatus.PENDING).order_by(Charge.id)).all()
        if not pending:
            return
        charge = self.rng.choice(pending)
        if charge.purpose == ChargePurpose.RECHARGE:
            charges.run_recharge(self.session, self.gw, charge, self.now)
        else:
            charges.attempt(self.session, self.gw, charge, self.now)

    def add_to_agency_billing(self):
        self.tick()
        sub = self.account(self.pick(self.subs(BillingMode.CUSTOMER)))
        self.attempt(lambda: links.add_to_agency_billing(
            self.session, self.account(self.agency_id), sub, self.actor()))

    def remove_from_agency_billing(self):
        """Email Client (a new link replaces the pending one)."""
        self.tick()
        sub = self.account(self.pick(self.subs(BillingMode.AGENCY)))
        dollars = self.rng.choice(["25", "30"])
        result = {}

        def send():
            result["sent"] = links.request_removal(
                self.session, SETTINGS, self.account(self.agency_id), sub, self.actor(),
                "pat@customer.example", dollars, "")
        if self.attempt(send):
            self.urls[sub.id] = result["sent"][1]

    def pay_link(self):
        """The customer pays the newest link of a sub-account (maybe used or revoked), with
        a card whose answer comes at once or late."""
        if not self.urls:
            return self.remove_from_agency_billing()
        self.tick()
        url = self.urls[self.rng.choice(sorted(self.urls))]
        number = self.rng.choice([GOOD, LATE])
        # typed into the sandbox's card form: the page posts its payment-method id
        form = {"payment_method": paying_card(number, exp_month=12, exp_year=2030),
                "amount": "30"}
        try:
            links.pay(self.session, self.gw, SETTINGS, url.rsplit("/", 1)[1], form)
        except (DomainError, links.tokens.LinkError):
            self.session.rollback()

    def cancel_request(self):
        self.tick()
        pending = sorted(links.pending_for(self.session, self.sub_ids))
        sub = self.account(self.pick(pending))
        self.attempt(lambda: links.cancel_request(
            self.session, self.account(self.agency_id), sub, self.actor()))

    def close(self):
        self.tick()
        sub = self.account(self.pick(self.subs()))
        self.attempt(lambda: lifecycle.close(self.session, sub, self.actor()))

    def reactivate(self):
        self.tick()
        sub = self.account(self.pick(self.subs(canceled=True)))
        self.attempt(lambda: lifecycle.reactivate(self.session, sub, self.actor()))

    def jobs(self):
        """`jobs run`, a while later: late answers are asked for again."""
        self.tick(600)
        charges.retry_pending(self.session, self.gw, self.now)
        refunds.retry_pending(self.session, self.gw, self.now)

    # Each step is one of these, by weight.
    ACTIONS = {"post_usage": 6, "retry_a_posting": 3, "make_a_payment": 2, "settle": 3,
               "add_to_agency_billing": 2, "remove_from_agency_billing": 2, "pay_link": 3,
               "cancel_request": 1, "close": 1, "reactivate": 1, "jobs": 2}

    @rule()
    def step(self):
        names = sorted(self.ACTIONS)
        action = self.rng.choices(names, weights=[self.ACTIONS[n] for n in names])[0]
        note(f"{self.now:%H:%M:%S} {action}")
        getattr(self, action)()

    # ----------------------------------------------------------------- invariants

    @invariant()
    def ledgers_add_up(self):
        self.session.rollback()
        self.session.expire_all()
        assert ledger.check(self.session) == []

    @invariant()
    def an_agency_billed_sub_account_holds_nothing_and_is_never_billing_paused(self):
        for sub_id in self.sub_ids:
            sub = self.account(sub_id)
            if sub.billing_mode == BillingMode.AGENCY:
                assert sub.balance_cents == 0, f"{sub.name} holds money on agency billing"
                assert sub.status != AccountStatus.BILLING_PAUSED, \
                    f"{sub.name} is billing-paused on agency billing"

    @invariant()
    def each_usage_key_is_debited_once(self):
        twice = self.session.execute(
            select(LedgerEntry.idempotency_key, func.count()).where(
                LedgerEntry.kind == LedgerKind.USAGE)
            .group_by(LedgerEntry.idempotency_key).having(func.count() > 1)).all()
        assert twice == []
        debited = self.session.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.kind == LedgerKind.USAGE))
        assert debited == len(self.posted)

    @invariant()
    def each_charge_the_processor_took_is_settled_once(self):
        s = self.session
        taken = {key: ok for key, ok in s.execute(
            select(SandboxCharge.idempotency_key, SandboxCharge.succeeded)).all()}
        for charge in s.scalars(select(Charge)):
            if charge.attempts == 0:  # recorded, not yet asked
                assert charge.status == ChargeStatus.PENDING
                assert charge.idempotency_key not in taken
                continue
            assert charge.idempotency_key in taken  # every charge asked was asked once
            credits = s.scalar(select(func.count()).select_from(LedgerEntry).where(
                LedgerEntry.idempotency_key == f"charge:{charge.id}"))
            refund = s.scalar(select(Refund).where(Refund.charge_id == charge.id))
            if charge.status == ChargeStatus.SUCCEEDED:
                assert taken[charge.idempotency_key] is True
                # credited once, or (a link payment that came too late) refunded instead
                assert (credits, refund is None) in ((1, True), (0, False))
            else:
                assert (credits, refund) == (0, None)
        assert s.scalar(select(func.count()).select_from(SandboxCharge)) == \
            s.scalar(select(func.count()).select_from(Charge).where(Charge.attempts > 0))
        refunded = s.scalar(select(func.count()).select_from(SandboxRefund).where(
            SandboxRefund.succeeded.is_(True)))
        assert refunded == s.scalar(select(func.count()).select_from(Refund).where(
            Refund.status == RefundStatus.SUCCEEDED))

    @invariant()
    def at_most_one_recharge_is_pending_per_account(self):
        rows = self.session.execute(
            select(Charge.account_id, func.count()).where(
                Charge.status == ChargeStatus.PENDING, Charge.purpose == ChargePurpose.RECHARGE)
            .group_by(Charge.account_id).having(func.count() > 1)).all()
        assert rows == []

    @invariant()
    def the_money_adds_up(self):
        """All balances together: the funds given, plus what charges credited, minus usage
        and refunds taken back. Transfers between ledgers cancel out."""
        s = self.session
        total = s.scalar(select(func.coalesce(func.sum(Account.balance_cents), 0)))
        credited = s.scalar(select(func.coalesce(func.sum(Charge.amount_cents), 0)).where(
            Charge.status == ChargeStatus.SUCCEEDED,
            Charge.id.not_in(select(Refund.charge_id))))
        used = sum(5 * minutes for _entry, minutes in self.posted.values())
        assert int(total) == 3000 + 1000 + int(credited) - used

    @invariant()
    def a_paid_request_has_switched_its_sub_account(self):
        for request in self.session.scalars(select(BillingRequest).where(
                BillingRequest.status == RequestStatus.PAID)):
            assert request.charge_id is not None
            charge = self.session.get(Charge, request.charge_id)
            assert charge.status == ChargeStatus.SUCCEEDED
            assert self.session.scalar(select(func.count()).select_from(Refund).where(
                Refund.charge_id == charge.id)) == 0

    def teardown(self):
        self.session.rollback()
        clock.freeze(None)


def test_money_under_random_interleavings(app):
    examples = int(os.environ.get("HYPOTHESIS_EXAMPLES", "30"))
    run_state_machine_as_test(Money, settings=settings(
        max_examples=examples, stateful_step_count=40, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck), database=None))
