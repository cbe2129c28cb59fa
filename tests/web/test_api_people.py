"""/api/v1/accounts/<id>/users and /invitations over the people service: the list, a role
change, a removal, invitations (emailed, listed, resent, revoked); the owner rules (an
admin key can't give, touch or take the owner role: 403; the last owner stays), 422 with the
service's messages, 403 for the role rules, 409 on a canceled account, 404 across tenants,
429 with Retry-After past 20 invitations an hour."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from portal import clock
from portal.models import (
    AccountStatus,
    Invitation,
    InvitationStatus,
    Membership,
    OutboxMessage,
    Role,
)
from tests import factories as f
from tests.web.api_problems import PROBLEM_JSON, problem
from tests.web.conftest import bearer

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
ROLE_CHOICE = "Choose a role: Owner, Admin, Billing or User."


@pytest.fixture
def w(session):
    clock.freeze(NOW)
    olive = f.user(session, "olive@example.test", name="Olive Owner")
    adam = f.user(session, "adam@example.test", name="Adam Admin")
    uma = f.user(session, "uma@example.test", name="Uma User")
    account = f.standalone(session, "Harbor Dental", owner=olive, admin=adam)
    f.member(session, uma, account, Role.USER)
    other = f.standalone(session, "Other Co")
    session.commit()
    return {"olive": olive, "adam": adam, "uma": uma, "account": account, "other": other,
            "key": f.api_key(session, account, olive),
            "admin_key": f.api_key(session, account, adam, role=Role.ADMIN),
            "other_key": f.api_key(session, other)}




def assert_problem(response, status, detail, errors=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    assert response.get_json() == problem(status, detail, errors)


def roles_of(session, account) -> dict[str, Role]:
    session.expire_all()
    from portal.models import User

    return dict(session.execute(select(User.email, Membership.role)
                                .join(Membership, Membership.user_id == User.id)
                                .where(Membership.account_id == account.id)).all())


def users_url(w, user=None) -> str:
    return f"/api/v1/accounts/{w['account'].id}/users" + (f"/{user.id}" if user else "")


def invitations_url(w, suffix="") -> str:
    return f"/api/v1/accounts/{w['account'].id}/invitations{suffix}"


BEFORE = {"olive@example.test": Role.OWNER, "adam@example.test": Role.ADMIN,
          "uma@example.test": Role.USER}


# --------------------------------------------------------------- users

def test_list_the_users_with_a_cursor(client, w):
    response = client.get(users_url(w) + "?limit=2", headers=bearer(w["key"]))
    assert response.status_code == 200, response.get_json()
    page = response.get_json()
    # newest member first (the factory adds the admin before the owner)
    assert [u["email"] for u in page["data"]] == ["uma@example.test", "olive@example.test"]
    assert page["has_more"] is True
    uma = page["data"][0]
    assert uma == {"id": w["uma"].id, "name": "Uma User", "email": "uma@example.test",
                   "role": "user", "two_factor": False, "last_sign_in_at": None,
                   "joined_at": uma["joined_at"]}
    rest = client.get(users_url(w) + f"?limit=2&cursor={page['next_cursor']}",
                      headers=bearer(w["key"])).get_json()
    assert [u["email"] for u in rest["data"]] == ["adam@example.test"]
    assert rest["has_more"] is False and rest["next_cursor"] is None


def test_change_a_role(client, session, w):
    response = client.patch(users_url(w, w["uma"]), headers=bearer(w["key"]),
                            json={"role": "billing"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["role"] == "billing"
    assert roles_of(session, w["account"])["uma@example.test"] == Role.BILLING


@pytest.mark.parametrize("role", ["boss", "", "OWNER"])
def test_a_role_that_isnt_one_is_422(client, session, w, role):
    response = client.patch(users_url(w, w["uma"]), headers=bearer(w["key"]),
                            json={"role": role})
    assert_problem(response, 422, ROLE_CHOICE, {"role": ROLE_CHOICE})
    assert roles_of(session, w["account"]) == BEFORE


def test_an_admin_key_cant_make_or_touch_an_owner(client, session, w):
    headers = bearer(w["admin_key"])
    response = client.patch(users_url(w, w["uma"]), headers=headers, json={"role": "owner"})
    assert_problem(response, 403, "Only an owner can make someone an owner.")  # as taking it
    response = client.patch(users_url(w, w["olive"]), headers=headers, json={"role": "user"})
    assert_problem(response, 403, "Only an owner can add, change or remove an owner.")
    response = client.delete(users_url(w, w["olive"]), headers=headers)
    assert_problem(response, 403, "Only an owner can add, change or remove an owner.")
    assert roles_of(session, w["account"]) == BEFORE


def test_an_admin_key_cant_make_its_maker_an_owner(client, session, w):
    # the admin key acts as Adam: Adam can't make himself more than admin
    key = f.api_key(session, w["account"], w["adam"], role=Role.ADMIN)
    response = client.patch(users_url(w, w["adam"]), headers=bearer(key),
                            json={"role": "owner"})
    assert response.status_code == 403
    assert roles_of(session, w["account"]) == BEFORE


def test_the_last_owner_stays(client, session, w):
    detail = ("Harbor Dental must keep at least one owner: make someone else an owner first, "
              "then change Olive Owner's role.")
    response = client.patch(users_url(w, w["olive"]), headers=bearer(w["key"]),
                            json={"role": "admin"})
    assert_problem(response, 403, detail)
    response = client.delete(users_url(w, w["olive"]), headers=bearer(w["key"]))
    assert_problem(response, 403, "Harbor Dental must keep at least one owner: make someone "
                                  "else an owner first, then remove Olive Owner.")
    assert roles_of(session, w["account"]) == BEFORE


def test_remove_a_user(client, session, w):
    response = client.delete(users_url(w, w["uma"]), headers=bearer(w["key"]))
    assert response.status_code == 204
    assert "uma@example.test" not in roles_of(session, w["account"])
    response = client.delete(users_url(w, w["uma"]), headers=bearer(w["key"]))
    assert_problem(response, 404, "No such user on this account.")


def test_another_tenants_key_finds_nothing(client, session, w):
    headers = bearer(w["other_key"])
    for response in (
        client.get(users_url(w), headers=headers),
        client.patch(users_url(w, w["uma"]), headers=headers, json={"role": "admin"}),
        client.delete(users_url(w, w["uma"]), headers=headers),
        client.get(invitations_url(w), headers=headers),
        client.post(invitations_url(w), headers=headers,
                    json={"email": "x@example.test", "role": "user"}),
    ):
        assert_problem(response, 404, "No such account, or this key does not reach it.")
    assert roles_of(session, w["account"]) == BEFORE
    assert session.scalars(select(Invitation)).all() == []
    # on its own account, a user of another account is not found
    response = client.patch(f"/api/v1/accounts/{w['other'].id}/users/{w['uma'].id}",
                            headers=headers, json={"role": "admin"})
    assert_problem(response, 404, "No such user on this account.")
    assert roles_of(session, w["account"]) == BEFORE


def test_a_canceled_account_is_read_only(client, session, w):
    w["account"].status, w["account"].canceled_at = AccountStatus.CANCELED, NOW
    session.commit()
    response = client.patch(users_url(w, w["uma"]), headers=bearer(w["key"]),
                            json={"role": "admin"})
    assert_problem(response, 409, "Harbor Dental is canceled: you can read and export its "
                                  "data, but not change it. Reactivate it to make changes.")
    assert roles_of(session, w["account"]) == BEFORE
    assert client.get(users_url(w), headers=bearer(w["key"])).status_code == 200


# --------------------------------------------------------------- invitations

def invitation_mail(session) -> list[OutboxMessage]:
    return session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "invitation")
                           .order_by(OutboxMessage.id)).all()


def invite(client, w, key=None, **body):
    return client.post(invitations_url(w), headers=bearer(key or w["key"]),
                       json={"email": "new@example.test", "role": "billing", **body})


def test_invite_emails_the_link_and_lists_it(client, session, w):
    response = invite(client, w)
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    [invitation] = session.scalars(select(Invitation)).all()
    assert data == {"id": invitation.id, "email": "new@example.test", "role": "billing",
                    "status": "pending", "invited_by_id": w["olive"].id,
                    "created_at": "2026-12-03T12:00:00+00:00",
                    "expires_at": "2026-12-10T12:00:00+00:00", "closed_at": None}
    assert invitation.link_id not in response.get_data(as_text=True)
    [mail] = invitation_mail(session)
    assert (mail.kind, mail.to_address, mail.subject) == (
        "invitation", "new@example.test", "Olive Owner invited you to Harbor Dental")
    assert "/invitations/" in mail.text_body

    listed = client.get(invitations_url(w), headers=bearer(w["key"])).get_json()
    assert [i["id"] for i in listed["data"]] == [invitation.id]


@pytest.mark.parametrize("body, errors", [
    ({"email": "nope"}, {"email": "Enter their email address, like name@example.com."}),
    ({"role": "boss"}, {"role": ROLE_CHOICE}),
    ({"email": "uma@example.test"},
     {"email": "uma@example.test is already a user of Harbor Dental: change their role in "
               "the list instead."}),
])
def test_invite_refuses_bad_input(client, session, w, body, errors):
    assert_problem(invite(client, w, **body), 422, "; ".join(errors.values()), errors)
    assert session.scalars(select(Invitation)).all() == []
    assert invitation_mail(session) == []


def test_an_admin_key_cant_invite_an_owner(client, session, w):
    response = invite(client, w, key=w["admin_key"], role="owner")
    assert_problem(response, 403, "Only an owner can make someone an owner.")
    assert session.scalars(select(Invitation)).all() == []
    assert invite(client, w, key=w["admin_key"], role="admin").status_code == 201


def test_resend_and_revoke(client, session, w):
    first = invite(client, w).get_json()
    response = client.post(invitations_url(w, f"/{first['id']}/resend"),
                           headers=bearer(w["key"]))
    assert response.status_code == 201, response.get_json()
    second = response.get_json()
    assert second["id"] != first["id"] and second["email"] == first["email"]
    assert len(invitation_mail(session)) == 2

    response = client.delete(invitations_url(w, f"/{second['id']}"), headers=bearer(w["key"]))
    assert response.status_code == 200
    assert response.get_json()["status"] == "revoked"
    session.expire_all()
    assert [i.status for i in session.scalars(select(Invitation).order_by(Invitation.id))] == [
        InvitationStatus.REPLACED, InvitationStatus.REVOKED]
    assert client.get(invitations_url(w), headers=bearer(w["key"])).get_json()["data"] == []
    response = client.delete(invitations_url(w, f"/{second['id']}"), headers=bearer(w["key"]))
    assert_problem(response, 403, "The invitation to new@example.test is no longer pending.")
    response = client.delete(invitations_url(w, "/999999"), headers=bearer(w["key"]))
    assert_problem(response, 404, "No such invitation.")


def test_a_read_key_lists_but_cant_invite(client, session, w):
    key = f.api_key(session, w["account"], w["olive"], scopes=("read",))
    assert client.get(users_url(w), headers=bearer(key)).status_code == 200
    assert_problem(invite(client, w, key=key), 403,
                   "This API key does not have the write scope.")


def test_past_20_invitations_an_hour_is_429_with_when_to_try_again(client, session, w):
    from datetime import timedelta

    from portal import rules

    start = clock.now()
    for i in range(rules.INVITATIONS_PER_HOUR):
        clock.freeze(start + timedelta(minutes=i))
        assert invite(client, w, email=f"n{i}@example.test").status_code == 201
    clock.freeze(start + timedelta(minutes=30))
    response = invite(client, w, email="late@example.test")
    assert response.status_code == 429 and response.mimetype == PROBLEM_JSON
    # the first of the 20 (at start) leaves the hour at start + 60 min: 30 min from now
    assert int(response.headers["Retry-After"]) == 30 * 60 + 1
    clock.freeze(start + timedelta(minutes=60, seconds=1))
    assert invite(client, w, email="late@example.test").status_code == 201
