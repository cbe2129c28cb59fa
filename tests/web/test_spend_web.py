"""Billing Settings → Where the money goes (issue 17) through the test client: the section
for each role that may open Billing Settings (and nobody else, and no other tenant), full
page vs fragment, the chart's numbers equal the table's and the ledger's, the agency's
spend by sub-account, Settings → Accounts' spend column and its sort, and a bounded number
of statements whatever the data."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import event

from portal import clock, rules
from portal.extensions import db
from portal.models import BillingMode, Role
from portal.services import spend, usage
from tests import factories as f
from tests.conftest import HX
from tests.web.billing_world import BILLING_ONLY, NOW, build, url
from tests.web.conftest import sign_in_as
from tests.web.pages import NOT_FOUND, assert_fragment, assert_full_page, body, shown

M, N, T = (rules.USAGE_PRICES[k] for k in ("minutes", "numbers", "transcriptions"))


def _usage(session, account, days_ago, key, **items):
    with clock.at(NOW - timedelta(days=days_ago)):
        usage.post(session, account, items, key)


@pytest.fixture
def sw(session):
    clock.freeze(NOW)
    w = build(session)
    w.owner, w.billy = f.user(session, name="Olive"), f.user(session, name="Billy")
    f.member(session, w.owner, w.solo, Role.OWNER)
    f.member(session, w.billy, w.solo, Role.BILLING)
    f.funds(session, w.solo, 20_000, when=NOW - timedelta(days=60))
    _usage(session, w.solo, 40, "s40", minutes=1000)  # only in the 90 days
    _usage(session, w.solo, 2, "s2", minutes=100, numbers=2)
    _usage(session, w.solo, 0, "s0", transcriptions=30)
    f.funds(session, w.agency, 50_000, when=NOW - timedelta(days=30))
    f.funds(session, w.harbor, 5_000, when=NOW - timedelta(days=30))
    _usage(session, w.bayside, 1, "b1", minutes=300)  # on the agency's ledger
    _usage(session, w.harbor, 1, "h1", numbers=4)  # on its own
    session.commit()
    return w


def spend_section(client, account, days=None):
    query = f"?days={days}" if days else ""
    response = client.get(url(account, f"spend{query}"), headers=HX)
    assert response.status_code == 200
    return assert_fragment(response, '<section class="card spend" id="spend"')


def chart_cells(html: str) -> dict[tuple[str, str], int]:
    return {(d, i): int(c) for d, i, c in re.findall(
        r'<rect class="series-[a-z_]+"[^>]*data-day="([0-9-]+)" data-item="([a-z_]+)" '
        r'data-cents="([0-9]+)"', html)}


def table_cells(html: str) -> dict[tuple[str, str], int]:
    table = html[html.index('data-testid="spend-table"'):]
    cells = {}
    for day, row in re.findall(r'<tr data-day="([0-9-]+)">(.*?)</tr>', table, re.S):
        for item, cents in re.findall(r'data-item="([a-z_]+)" data-cents="([0-9]+)"', row):
            if int(cents):
                cells[(day, item)] = int(cents)
    return cells


@pytest.mark.parametrize("who", ["owner", "ann", "billy"])
def test_each_role_that_opens_billing_settings_sees_the_spend(client, sw, who):
    sign_in_as(client, getattr(sw, who))
    page = body(client.get(url(sw.solo)))
    assert 'data-testid="spend-slot"' in page
    assert f'hx-get="/accounts/{sw.solo.id}/billing/spend"' in page  # loaded after the page
    assert f'<a href="/accounts/{sw.solo.id}/billing/spend">' in page  # and without JS
    html = spend_section(client, sw.solo)
    assert "Upcoming charges" in html and "Spend per day, last 30 days" in html
    full = assert_full_page(client.get(url(sw.solo, "spend")))
    assert "<h1>Where the money goes" in full and 'id="spend"' in full


def test_a_role_user_and_another_tenant_are_refused(client, sw):
    sign_in_as(client, sw.vic)
    response = client.get(url(sw.solo, "spend"))
    assert response.status_code == 403 and shown(BILLING_ONLY) in body(response)
    sign_in_as(client, sw.rex)
    response = client.get(url(sw.solo, "spend"))
    assert response.status_code == 404 and NOT_FOUND in body(response)
    sign_in_as(client, sw.bea)  # a sub-account's admin: never the agency's billing
    assert client.get(url(sw.agency, "spend")).status_code == 404


def test_the_table_has_the_charts_numbers_and_the_ledgers(client, sw):
    sign_in_as(client, sw.ann)
    html = spend_section(client, sw.solo)
    day = lambda ago: (NOW - timedelta(days=ago)).date().isoformat()  # noqa: E731
    expected = {(day(2), "minutes"): 100 * M, (day(2), "numbers"): 2 * N,
                (day(0), "transcriptions"): 30 * T}
    assert chart_cells(html) == expected
    assert table_cells(html) == expected
    assert f"Spend per day, last 30 days: ${(100 * M + 2 * N + 30 * T) / 100:,.2f}" in html
    ninety = spend_section(client, sw.solo, 90)
    assert chart_cells(ninety)[(day(40), "minutes")] == 1000 * M
    assert chart_cells(ninety) == table_cells(ninety)
    assert 'aria-current="true">Last 90 days' in ninety
    assert spend_section(client, sw.solo, "7") == html  # not a choice: 30 days


def test_upcoming_charges_say_the_fee_the_recharge_and_the_months(client, session, sw):
    f.recharge_settings(session, sw.solo, "20", "100")
    session.commit()
    sign_in_as(client, sw.ann)
    html = spend_section(client, sw.solo)
    fee = rules.PLAN_FEES[sw.solo.plan]
    assert f"${fee / 100:,.2f} on December 1, 2026" in html and "from the balance" in html
    assert "Next auto recharge" in html and "when the balance falls below $20.00" in html
    assert "November 2026 so far" in html


def test_the_agency_sees_spend_by_sub_account_and_the_subs_their_own(client, sw):
    sign_in_as(client, sw.avery)
    html = spend_section(client, sw.agency)
    table = html[html.index('data-testid="spend-by-sub"'):]
    rows = re.findall(r'<tr data-sub="([0-9]+)"><td>([^<]+)</td>.*?data-cents="([0-9]+)"',
                      table, re.S)
    assert rows == [(str(sw.bayside.id), "Bayside Dental", str(300 * M)),
                    (str(sw.harbor.id), "Harbor Law", str(4 * N))]
    sign_in_as(client, sw.hal)  # customer-billed: its own picture, no sub-accounts
    own = spend_section(client, sw.harbor)
    assert "Spend by sub-account" not in own and table_cells(own) == {
        ((NOW - timedelta(days=1)).date().isoformat(), "numbers"): 4 * N}
    assert "None: Northwind Agency's plan covers Harbor Law" in own
    sign_in_as(client, sw.bea)  # agency-billed: paid from the agency's balance
    assert "usage is paid from Northwind Agency's balance" in spend_section(client, sw.bayside)


def test_accounts_list_shows_spend_and_sorts_by_it(client, session, sw):
    sign_in_as(client, sw.avery)
    base = f"/accounts/{sw.agency.id}/sub-accounts"
    html = body(client.get(base))
    assert f'data-testid="spend-{sw.bayside.id}">${300 * M / 100:,.2f}' in html
    assert f'data-testid="sub-balance-{sw.harbor.id}">${(5_000 - 4 * N) / 100:,.2f}' in html
    assert (f'data-testid="sub-balance-{sw.bayside.id}"><span class="muted small">'
            "Agency's balance") in html

    def names(query):
        page = body(client.get(base + query))
        # The name cell (its label wraps the row's bulk-action checkbox: issue 17, K).
        return re.findall(r"<tr>\s*<td>(?:<label[^>]*><input[^>]*>)?([^<]+)<", page)

    assert names("") == ["Bayside Dental", "Harbor Law"]
    by_spend = "?sort=spend" if 300 * M > 4 * N else "?sort=spend_asc"
    assert names(by_spend) == ["Bayside Dental", "Harbor Law"]
    other = "?sort=spend_asc" if by_spend == "?sort=spend" else "?sort=spend"
    assert names(other) == ["Harbor Law", "Bayside Dental"]
    assert names("?sort=nonsense") == ["Bayside Dental", "Harbor Law"]
    assert 'aria-sort="descending"' in body(client.get(base + "?sort=spend"))


def _statements(client, path):
    assert client.get(path, headers=HX).status_code == 200
    db.session.remove()
    found = []

    def count(conn, cursor, statement, *rest):
        found.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert client.get(path, headers=HX).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return found


def test_the_spend_section_runs_a_few_statements_whatever_the_data(client, session, sw):
    """One grouped query for the picture and one for the sub-accounts: not one a day, item or
    sub-account."""
    sign_in_as(client, sw.avery)
    path = url(sw.agency, "spend?days=90")
    small = _statements(client, path)
    subs = [f.sub(session, sw.agency, billing=BillingMode.AGENCY) for _ in range(20)]
    session.commit()
    for i, sub in enumerate(subs):
        for ago in range(0, 80, 4):
            _usage(session, sub, ago, f"more-{i}-{ago}", minutes=ago + 1, numbers=1)
    session.commit()
    large = _statements(client, path)
    assert len(large) == len(small) <= 7, "\n".join(large)
    ledger_reads = [s for s in large if "ledger_entries" in s]
    assert len(ledger_reads) == 2, "\n".join(ledger_reads)


def test_past_twelve_sub_accounts_the_rest_is_one_row_with_their_sum(client, session, sw):
    subs = [f.sub(session, sw.agency, f"Extra {i:02d}") for i in range(14)]
    session.commit()
    for i, sub in enumerate(subs):
        _usage(session, sub, 0, f"extra-{i}", minutes=i + 1)
    session.commit()
    sign_in_as(client, sw.avery)
    html = spend_section(client, sw.agency)
    table = html[html.index('data-testid="spend-by-sub"'):]
    shown = [int(c) for c in re.findall(
        r'<tr data-sub="[0-9]+">.*?data-label="Total" data-cents="([0-9]+)"', table, re.S)]
    assert len(shown) == spend.SHOWN_SUB_ACCOUNTS and shown == sorted(shown, reverse=True)
    everyone = 300 * M + 4 * N + sum(i + 1 for i in range(14)) * M
    rest = everyone - sum(shown)
    assert ("4 more sub-accounts" in table
            and f'data-label="Total">${rest / 100:,.2f}</td>' in table.split("other-subs")[1])
    assert f'href="/accounts/{sw.agency.id}/sub-accounts?sort=spend"' in html


def test_a_guardrail_stop_holds_the_projected_recharge_instead_of_a_date(client, session, sw):
    """Round two of issue 17: the next recharge's date respects the recharge guardrails."""
    from html import unescape

    from portal.models import BillingSettings

    f.recharge_settings(session, sw.solo, "20", "100")
    settings = session.query(BillingSettings).filter_by(account_id=sw.solo.id).one()
    settings.recharge_cap_cents = 50_000  # nothing recharged this month: all of it left
    session.commit()
    sign_in_as(client, sw.ann)
    html = " ".join(unescape(spend_section(client, sw.solo)).split())
    assert "when the balance falls below $20.00" in html
    assert "The monthly recharge cap allows $500.00 more this month" in html
    settings.recharge_stopped_at = clock.now()  # the third declined recharge in a row
    session.commit()
    html = " ".join(unescape(spend_section(client, sw.solo)).split())
    assert ("None for now: auto recharge stopped after declined cards. It starts again when "
            "a payment succeeds or a card is added") in html
    assert "Around " not in html and "allows" not in html
