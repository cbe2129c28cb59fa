"""Settings → Accounts: an agency's sub-accounts, searched, filtered and paged."""

from datetime import UTC, datetime

import pytest

from portal.models import AccountStatus, BillingMode, Role
from tests import factories as f
from tests.conftest import HX
from tests.web.conftest import sign_in_as
from tests.web.pages import (
    NOT_FOUND,
    assert_fragment,
    assert_full_page,
    body,
    pager_links,
    query,
    table_rows,
    text,
)

CANCELED_AT = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
BAD_FILTER = "Choose Active sub-accounts, Canceled sub-accounts or All sub-accounts."


@pytest.fixture
def owner(session):
    return f.user(session, email="owner@example.test")


@pytest.fixture
def agency(session, owner):
    return f.agency(session, "Northwind Agency", owner=owner)


def names(response) -> list[str]:
    return [row.cells[0] for row in table_rows(body(response))]


def listing(client, agency, **params):
    return client.get(f"/accounts/{agency.id}/sub-accounts", query_string=params)


def test_rows_show_name_status_billing_numbers_and_edit_link(client, session, owner, agency):
    bayside = f.sub(session, agency, "Bayside Dental", billing=BillingMode.AGENCY)
    harbor = f.sub(session, agency, "Harbor Law", billing=BillingMode.CUSTOMER,
                   status=AccountStatus.SWAPPING_PAUSED)
    f.number(session, bayside)
    f.number(session, bayside)
    f.number(session, bayside, released_at=CANCELED_AT)  # released: not counted
    f.number(session, harbor, released_at=CANCELED_AT)
    session.commit()
    sign_in_as(client, owner)

    response = listing(client, agency)
    assert response.status_code == 200
    rows = table_rows(assert_full_page(response))
    assert [r.cells[:4] for r in rows] == [
        ["Bayside Dental", "Active", "Balance from: agency", "2"],
        ["Harbor Law", "Swapping paused", "Balance from: customer", "0"],
    ]
    # the Billing column's pencil, then Edit
    assert rows[0].hrefs == [f"/accounts/{agency.id}/sub-accounts/{bayside.id}/billing",
                             f"/accounts/{bayside.id}/"]
    assert rows[1].hrefs == [f"/accounts/{agency.id}/sub-accounts/{harbor.id}/billing",
                             f"/accounts/{harbor.id}/"]
    assert 'aria-label="Edit Bayside Dental">Edit</a>' in body(response)


def test_edit_link_opens_the_sub_account(client, session, owner, agency):
    bayside = f.sub(session, agency, "Bayside Dental")
    session.commit()
    sign_in_as(client, owner)
    href = table_rows(body(listing(client, agency)))[0].hrefs[-1]  # Edit (after the pencil)
    page = client.get(href)
    assert page.status_code == 200
    assert "<dt>Agency</dt><dd>Northwind Agency</dd>" in body(page)
    assert f"Account Settings <span class=\"muted\">· {bayside.name}</span>" in body(page)


def test_only_this_agencys_sub_accounts_are_listed(client, session, owner, agency):
    f.sub(session, agency, "Bayside Dental")
    f.sub(session, f.agency(session, "Rival Agency"), "Rival Customer")
    f.standalone(session, "Solo Shop")
    session.commit()
    sign_in_as(client, owner)
    html = body(listing(client, agency, status="all"))
    assert names(listing(client, agency, status="all")) == ["Bayside Dental"]
    assert "Rival" not in html and "Solo Shop" not in html


def test_empty_list_says_so(client, session, owner, agency):
    session.commit()
    sign_in_as(client, owner)
    words = text(body(listing(client, agency)))
    assert "Active sub-accounts: none" in words
    assert "No sub-accounts to show." in words


# --- search -------------------------------------------------------------------------------

@pytest.fixture
def searchable(session, owner, agency):
    for name in ("Bayside Dental", "BAYVIEW Realty", "50% Off Store", "5000 Widgets",
                 "Half_Price", "Half Price Co", "Harbor Law"):
        f.sub(session, agency, name)
    session.commit()
    return agency


@pytest.mark.parametrize("q,expected", [
    ("bay", ["Bayside Dental", "BAYVIEW Realty"]),
    ("BAYSIDE", ["Bayside Dental"]),
    ("  harbor  ", ["Harbor Law"]),
    ("50%", ["50% Off Store"]),  # % is a character, not "anything"
    ("f_p", ["Half_Price"]),  # _ is a character, not "any one character"
    ("%", ["50% Off Store"]),
    ("nothing like this", []),
    ("bay\x00", []),  # no name holds a NUL (PostgreSQL refused the query: once a 500)
])
def test_search_by_name(client, owner, searchable, q, expected):
    sign_in_as(client, owner)
    response = listing(client, searchable, q=q)
    assert response.status_code == 200
    # sorted here: SQLite orders "BAYVIEW" before "Bayside", PostgreSQL's collation may not
    assert sorted(names(response)) == sorted(expected or ["No sub-accounts to show."])


def test_search_as_htmx_returns_the_results_fragment(client, owner, searchable):
    sign_in_as(client, owner)
    response = client.get(f"/accounts/{searchable.id}/sub-accounts?q=bay", headers=HX)
    html = assert_fragment(response, '<div id="results">')
    assert sorted(names(response)) == ["BAYVIEW Realty", "Bayside Dental"]
    assert "Active sub-accounts matching “bay”: 1–2 of 2" in text(html)


# --- status filter ------------------------------------------------------------------------

@pytest.fixture
def mixed(session, owner, agency):
    f.sub(session, agency, "Active One")
    f.sub(session, agency, "Paused One", status=AccountStatus.BILLING_PAUSED)
    f.sub(session, agency, "Closed One", canceled_at=CANCELED_AT)
    session.commit()
    return agency


@pytest.mark.parametrize("params,expected", [
    ({}, ["Active One", "Paused One"]),
    ({"status": ""}, ["Active One", "Paused One"]),
    ({"status": "active"}, ["Active One", "Paused One"]),
    ({"status": "canceled"}, ["Closed One"]),
    ({"status": "all"}, ["Active One", "Closed One", "Paused One"]),
])
def test_status_filter(client, owner, mixed, params, expected):
    sign_in_as(client, owner)
    response = listing(client, mixed, **params)
    assert response.status_code == 200
    assert names(response) == expected


def test_canceled_rows_show_the_label_and_date(client, owner, mixed):
    sign_in_as(client, owner)
    rows = table_rows(body(listing(client, mixed, status="canceled")))
    assert rows[0].cells[1] == "Canceled 2026-11-02"
    html = body(listing(client, mixed, status="canceled"))
    assert '<option value="canceled" selected>Canceled sub-accounts</option>' in html


def test_search_and_filter_combine(client, owner, mixed):
    sign_in_as(client, owner)
    assert names(listing(client, mixed, status="all", q="one")) == [
        "Active One", "Closed One", "Paused One"]
    assert names(listing(client, mixed, status="canceled", q="active")) == [
        "No sub-accounts to show."]


@pytest.mark.parametrize("headers", [{}, HX], ids=["full", "htmx"])
def test_unknown_status_is_422_with_the_message(client, owner, mixed, headers):
    sign_in_as(client, owner)
    response = client.get(f"/accounts/{mixed.id}/sub-accounts?status=bogus", headers=headers)
    assert response.status_code == 422
    assert f'<p class="form-error" role="alert">{BAD_FILTER}</p>' in body(response)
    if headers:
        assert_fragment(response, '<div id="results">')


@pytest.mark.parametrize("page_number,message", [
    ("abc", "Page must be a whole number."),
    ("1.5", "Page must be a whole number."),
    ("0", "Page must be 1 or more."),
    ("-2", "Page must be 1 or more."),
    # more than the database's OFFSET can take: once a 500
    ("99999999999999999999", "Page must be 1,000,000 or less."),
])
def test_bad_page_is_422_with_the_message(client, owner, mixed, page_number, message):
    sign_in_as(client, owner)
    response = listing(client, mixed, page=page_number)
    assert response.status_code == 422
    assert f'<p class="form-error" role="alert">{message}</p>' in body(response)


def test_bad_page_keeps_the_chosen_filter_and_search(client, owner, mixed):
    """A bad page number doesn't swap the list the user asked for for another one."""
    sign_in_as(client, owner)
    response = listing(client, mixed, status="canceled", q="closed", page="abc")
    assert response.status_code == 422
    html = body(response)
    assert '<p class="form-error" role="alert">Page must be a whole number.</p>' in html
    assert names(response) == ["Closed One"]
    assert '<option value="canceled" selected>Canceled sub-accounts</option>' in html
    assert "Canceled sub-accounts matching “closed”: 1–1 of 1" in text(html)


def test_bad_status_and_bad_page_show_both_messages(client, owner, mixed):
    sign_in_as(client, owner)
    response = listing(client, mixed, status="bogus", page="0")
    assert response.status_code == 422
    html = body(response)
    assert f'<p class="form-error" role="alert">{BAD_FILTER}</p>' in html
    assert '<p class="form-error" role="alert">Page must be 1 or more.</p>' in html
    assert names(response) == ["Active One", "Paused One"]


# --- pagination ---------------------------------------------------------------------------

@pytest.fixture
def thirty(app, session, owner, agency):
    assert app.config["ACCOUNTS_PER_PAGE"] == 25
    for i in range(1, 31):
        f.sub(session, agency, f"Client {i:02d}")
    f.sub(session, agency, "Client 99 closed", canceled_at=CANCELED_AT)
    session.commit()
    return agency


def test_first_page_has_25_and_a_next_link(client, owner, thirty):
    sign_in_as(client, owner)
    response = listing(client, thirty)
    assert names(response) == [f"Client {i:02d}" for i in range(1, 26)]
    html = body(response)
    assert "Active sub-accounts: 1–25 of 30" in text(html)
    assert "Page 1 of 2" in html
    links = pager_links(html)
    assert set(links) == {"next"}
    assert links["next"].startswith(f"/accounts/{thirty.id}/sub-accounts?")
    assert query(links["next"]) == {"page": "2"}


def test_second_page_has_the_last_5_and_a_previous_link(client, owner, thirty):
    sign_in_as(client, owner)
    response = listing(client, thirty, page="2")
    assert response.status_code == 200
    assert names(response) == [f"Client {i:02d}" for i in range(26, 31)]
    html = body(response)
    assert "Active sub-accounts: 26–30 of 30" in text(html)
    assert "Page 2 of 2" in html
    links = pager_links(html)
    assert set(links) == {"prev"}
    assert query(links["prev"]) == {"page": "1"}
    assert body(client.get(links["prev"])).count(">Edit</a>") == 25


def test_pager_links_keep_the_search_and_filter(client, owner, thirty):
    sign_in_as(client, owner)
    html = body(listing(client, thirty, status="all", q="client"))
    assert "All sub-accounts matching “client”: 1–25 of 31" in text(html)
    assert query(pager_links(html)["next"]) == {"status": "all", "q": "client", "page": "2"}
    second = listing(client, thirty, status="all", q="client", page="2")
    assert names(second)[-1] == "Client 99 closed"


def test_pages_as_htmx_fragments(client, owner, thirty):
    sign_in_as(client, owner)
    response = client.get(f"/accounts/{thirty.id}/sub-accounts?page=2", headers=HX)
    html = assert_fragment(response, '<div id="results">')
    assert len(table_rows(html)) == 5
    assert 'hx-target="#results"' in html


def test_a_page_past_the_end_is_empty(client, owner, thirty):
    sign_in_as(client, owner)
    response = listing(client, thirty, page="9")
    assert response.status_code == 200
    assert names(response) == ["No sub-accounts to show."]


# --- who sees the list --------------------------------------------------------------------

def test_standalone_account_has_no_sub_accounts_page(client, session):
    admin = f.user(session)
    solo = f.standalone(session, "Solo Shop", admin=admin)
    session.commit()
    sign_in_as(client, admin)
    response = client.get(f"/accounts/{solo.id}/sub-accounts")
    assert response.status_code == 404
    assert NOT_FOUND in body(response)


def test_sub_account_id_has_no_sub_accounts_page(client, session, owner, agency):
    bayside = f.sub(session, agency, "Bayside Dental")
    session.commit()
    sign_in_as(client, owner)
    assert client.get(f"/accounts/{bayside.id}/").status_code == 200
    response = client.get(f"/accounts/{bayside.id}/sub-accounts")
    assert response.status_code == 404
    assert NOT_FOUND in body(response)


# A role user reaches the agency but its role doesn't open the list: 403 with the reason
# (the role matrix, issue 15; a 404 before it).
@pytest.mark.parametrize("role,status", [(Role.USER, 403),
                                         (Role.ADMIN, 200), (Role.OWNER, 200)])
def test_only_agency_owners_and_admins_see_the_list(client, session, agency, role, status):
    member = f.user(session)
    f.member(session, member, agency, role)
    f.sub(session, agency, "Bayside Dental")
    session.commit()
    sign_in_as(client, member)
    assert client.get(f"/accounts/{agency.id}/").status_code == 200  # reaches the agency
    response = listing(client, agency)
    assert response.status_code == status
    assert ("Bayside Dental" in body(response)) is (status == 200)
    nav_link = f'href="/accounts/{agency.id}/sub-accounts"'
    assert (nav_link in body(client.get(f"/accounts/{agency.id}/"))) is (status == 200)
