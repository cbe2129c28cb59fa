"""Numbers → Tracking Numbers."""

from datetime import UTC, datetime

from tests import factories as f
from tests.web.conftest import sign_in_as
from tests.web.pages import assert_full_page, body, table_rows


def test_lists_only_this_accounts_active_numbers(client, session):
    owner = f.user(session)
    agency = f.agency(session, "Northwind Agency", owner=owner)
    bayside = f.sub(session, agency, "Bayside Dental")
    harbor = f.sub(session, agency, "Harbor Law")
    main = f.number(session, bayside, label="Main line")
    ads = f.number(session, bayside, label="Google Ads")
    released = f.number(session, bayside, label="Old flyer",
                        released_at=datetime(2026, 11, 1, tzinfo=UTC))
    sibling = f.number(session, harbor, label="Harbor line")
    agency_number = f.number(session, agency, label="Agency line")
    session.commit()
    sign_in_as(client, owner)

    response = client.get(f"/accounts/{bayside.id}/numbers/")
    assert response.status_code == 200
    html = assert_full_page(response)
    listed = sorted((row.cells[0], row.cells[1]) for row in table_rows(html))
    assert listed == sorted([(main.number, "Main line"), (ads.number, "Google Ads")])
    for other in (released, sibling, agency_number):
        assert other.number not in html
        assert other.label not in html


def test_no_active_numbers_says_so(client, session):
    admin = f.user(session)
    solo = f.standalone(session, "Solo Shop", admin=admin)
    f.number(session, solo, released_at=datetime(2026, 11, 1, tzinfo=UTC))
    session.commit()
    sign_in_as(client, admin)
    rows = table_rows(body(client.get(f"/accounts/{solo.id}/numbers/")))
    assert [r.cells for r in rows] == [["No active tracking numbers."]]
