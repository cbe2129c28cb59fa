"""Issue 15: closing an account revokes its pending invitations (in the closing transaction),
and so does canceling an agency, for the agency and each sub-account it cancels; a link to a
closed account is refused with a page that says the account is closed, and accepting it
changes nothing. A reactivated account's old invitations stay revoked."""

import pytest
from sqlalchemy import select

from portal.models import Invitation, InvitationStatus, Role, User
from portal.services import agency, lifecycle, people
from tests import factories as f
from tests.web.conftest import sign_in_as
from tests.web.test_people import (
    accept_new,
    anonymous,
    body,
    invitation_of,
    invite,
    last_link,
    memberships,
    post,
)


class World:
    pass


@pytest.fixture
def w(session):
    world = World()
    world.owner = f.user(session, "olive@northwind.test", name="Olive Owner")
    world.agency = f.agency(session, "Northwind Agency", owner=world.owner)
    world.sub = f.sub(session, world.agency, "Bayside Dental")
    world.sub_owner = f.user(session, "sam@bayside.test", name="Sam Bayside")
    f.member(session, world.sub_owner, world.sub, Role.OWNER)
    world.other_owner = f.user(session, "otto@elsewhere.test", name="Otto Other")
    world.other = f.standalone(session, "Elsewhere Inc", owner=world.other_owner)
    session.commit()
    return world


def statuses(session, *emails):
    session.expire_all()
    return [invitation_of(session, email).status for email in emails]


def closed_page(response, account_name):
    page = body(response)
    return (response.status_code == 410 and 'data-reason="closed"' in page
            and "This account is closed" in page
            and f"{account_name} is closed, so this invitation no longer works." in page)


def test_closing_an_account_revokes_its_invitations_and_the_link_says_it_is_closed(
        app, client, session, w):
    sign_in_as(client, w.sub_owner)
    invite(client, w.sub, "new@client.test")
    invite(client, w.sub, "otto@elsewhere.test", "billing")  # an existing user
    new_link = last_link(session, "new@client.test")
    existing_link = last_link(session, "otto@elsewhere.test")
    sign_in_as(client, w.other_owner)
    invite(client, w.other, "keep@elsewhere.test")
    assert anonymous(app).get(new_link).status_code == 200

    sign_in_as(client, w.sub_owner)
    assert post(client, f"/accounts/{w.sub.id}/close", {"confirm": "yes"},
                token_page=f"/accounts/{w.sub.id}/").status_code == 303
    assert statuses(session, "new@client.test", "otto@elsewhere.test") == [
        InvitationStatus.REVOKED] * 2
    assert invitation_of(session, "new@client.test").closed_at is not None
    assert statuses(session, "keep@elsewhere.test") == [InvitationStatus.PENDING]  # another

    stranger = anonymous(app, "198.51.100.61")
    assert closed_page(stranger.get(new_link), "Bayside Dental")
    assert closed_page(accept_new(stranger, new_link), "Bayside Dental")
    assert session.scalar(select(User.id).where(User.email == "new@client.test")) is None

    # the invited existing user, signed in, is refused the same way and doesn't join
    sign_in_as(client, w.other_owner)
    assert closed_page(client.get(existing_link), "Bayside Dental")
    assert closed_page(post(client, existing_link, {}, token_page="/"), "Bayside Dental")
    assert "otto@elsewhere.test" not in memberships(session, w.sub)


def test_canceling_an_agency_revokes_the_invitations_of_it_and_each_sub_account(
        app, client, session, w):
    sign_in_as(client, w.owner)
    invite(client, w.agency, "staff@northwind.test", "admin")
    invite(client, w.sub, "front@bayside.test")
    links = {email: last_link(session, email)
             for email in ("staff@northwind.test", "front@bayside.test")}
    response = post(client, f"/accounts/{w.agency.id}/parent/cancel",
                    {"confirm": "yes", "reason": "Closing the business"},
                    token_page=f"/accounts/{w.agency.id}/")
    assert response.status_code == 303
    assert statuses(session, *links) == [InvitationStatus.REVOKED] * 2
    visitor = anonymous(app, "198.51.100.62")
    assert closed_page(visitor.get(links["staff@northwind.test"]), "Northwind Agency")
    assert closed_page(accept_new(visitor, links["front@bayside.test"]), "Bayside Dental")
    assert set(memberships(session, w.sub)) == {"sam@bayside.test"}


def test_a_refused_or_rolled_back_close_revokes_nothing(app, client, session, w):
    sign_in_as(client, w.sub_owner)
    invite(client, w.sub, "new@client.test")
    # no confirmation: refused (back with the reason), nothing changes
    refused = post(client, f"/accounts/{w.sub.id}/close", {},
                   token_page=f"/accounts/{w.sub.id}/")
    assert "Closing needs the confirmation: nothing was changed." in body(
        client.get(refused.location))
    assert statuses(session, "new@client.test") == [InvitationStatus.PENDING]
    lifecycle.close(session, session.merge(w.sub), session.merge(w.sub_owner))
    assert invitation_of(session, "new@client.test").status == InvitationStatus.REVOKED
    session.rollback()
    assert statuses(session, "new@client.test") == [InvitationStatus.PENDING]
    assert anonymous(app).get(last_link(session, "new@client.test")).status_code == 200


def test_a_reactivated_accounts_old_invitations_stay_revoked(app, client, session, w):
    sign_in_as(client, w.sub_owner)
    invite(client, w.sub, "new@client.test")
    link = last_link(session, "new@client.test")
    post(client, f"/accounts/{w.sub.id}/close", {"confirm": "yes"},
         token_page=f"/accounts/{w.sub.id}/")
    assert post(client, f"/accounts/{w.sub.id}/reactivate", {},
                token_page=f"/accounts/{w.sub.id}/").status_code == 303
    page = anonymous(app).get(link)
    assert page.status_code == 410 and 'data-reason="revoked"' in body(page)
    # a new invitation works again
    invite(client, w.sub, "new@client.test")
    assert anonymous(app, "198.51.100.63").get(
        last_link(session, "new@client.test")).status_code == 200


def test_an_accept_that_meets_a_close_is_refused_as_closed(session, w):
    """The invitation read open, then the account closes before the accept's consume: the
    conditional update matches nothing and the reason read afresh is the close."""
    sub = session.merge(w.sub)
    invitation = Invitation(link_id="a" * 32, account_id=sub.id, email="late@client.test",
                            role=Role.USER, status=InvitationStatus.PENDING,
                            created_at=lifecycle.clock_now(),
                            expires_at=lifecycle.clock_now() + people.rules.INVITATION_TTL)
    session.add(invitation)
    session.commit()
    agency.cancel(session, session.merge(w.agency), session.merge(w.owner),
                  "Closing the business")
    with pytest.raises(people.InvitationAccountClosed) as refused:
        people._consume(session, invitation, lifecycle.clock_now())
    assert "Bayside Dental is closed" in refused.value.message
