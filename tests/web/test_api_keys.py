"""Settings → Developers (issue 18 K): the API keys' list, Create API key (the token shown
once, only a hash kept; owners alone make owner keys; the form's errors), Revoke behind a
confirmation, the Change History and the owners' emails of both, the menu link for owners
and admins only, tenancy and CSRF; `flask api-key create`."""

import re

import pytest
from sqlalchemy import select

from portal import clock
from portal.errors import NotAllowed
from portal.models import ApiKey, OutboxMessage, Role, Version
from portal.services import api_keys
from tests import factories as f
from tests.conftest import csrf_token
from tests.web.conftest import sign_in_as

TOKEN = re.compile(r"apk_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}")


class World:
    pass


@pytest.fixture
def w(session):
    world = World()
    world.owner = f.user(session, "olive@northwind.test", name="Olive Owner")
    world.owner2 = f.user(session, "otis@northwind.test", name="Otis Owner")
    world.admin = f.user(session, "adam@northwind.test", name="Adam Admin")
    world.billing = f.user(session, "bea@northwind.test", name="Bea Billing")
    world.agency = f.agency(session, "Northwind Agency", owner=world.owner)
    f.member(session, world.owner2, world.agency, Role.OWNER)
    f.member(session, world.admin, world.agency, Role.ADMIN)
    f.member(session, world.billing, world.agency, Role.BILLING)
    world.sub = f.sub(session, world.agency, "Bayside Dental")
    world.other_owner = f.user(session, "otto@elsewhere.test", name="Otto Other")
    world.other = f.standalone(session, "Elsewhere Inc", owner=world.other_owner)
    session.commit()
    return world


def page_path(account) -> str:
    return f"/accounts/{account.id}/developers/"


def create(client, account, name="Billing sync", scopes=("read", "write"), role="admin",
           **kwargs):
    data = {"csrf_token": csrf_token(client, page_path(account)), "name": name,
            "scopes": list(scopes), "role": role}
    return client.post(f"/accounts/{account.id}/developers/keys", data=data, **kwargs)


def body(response) -> str:
    return response.get_data(as_text=True)


def test_owners_and_admins_open_the_page_others_do_not(client, w):
    sign_in_as(client, w.owner)
    page = client.get(page_path(w.agency))
    assert page.status_code == 200
    text = body(page)
    assert "<title>Developers" in text and "No API keys yet." in text
    assert 'href="/api/v1/docs"' in text
    assert f'href="/accounts/{w.agency.id}/developers/"' in text  # the menu's link
    sign_in_as(client, w.admin)
    assert client.get(page_path(w.agency)).status_code == 200
    sign_in_as(client, w.billing)
    assert client.get(page_path(w.agency)).status_code == 403
    home = body(client.get(f"/accounts/{w.agency.id}/billing/"))
    assert "/developers/" not in home  # no menu link for a billing user
    sign_in_as(client, w.other_owner)
    assert client.get(page_path(w.agency)).status_code == 404


def test_create_shows_the_token_once_and_keeps_only_its_hash(client, session, w):
    sign_in_as(client, w.owner)
    response = create(client, w.agency, "Billing sync", ("read", "metering"), "owner")
    assert response.status_code == 200
    text = body(response)
    tokens = TOKEN.findall(text)
    assert len(tokens) == 1
    token = tokens[0]
    assert "won't be shown again" in text
    assert f'<code class="token" id="token" data-testid="token">{token}</code>' in text
    assert response.headers["Cache-Control"] == "no-store"
    key = session.scalar(select(ApiKey).where(ApiKey.account_id == w.agency.id))
    assert key.name == "Billing sync" and key.scopes == "read metering"
    assert key.role == Role.OWNER and key.created_by_id == w.owner.id
    secret = token.split("_", 2)[2]
    assert secret not in key.secret_hash and token not in str(vars(key))
    # the list shows its hint, never the token again
    listed = body(client.get(page_path(w.agency)))
    assert TOKEN.search(listed) is None
    assert f"apk_{key.prefix}_…" in listed and "Billing sync" in listed
    assert "read, metering" in listed and "Olive Owner" in listed and "Never" in listed
    # and the token works
    who = client.get("/api/v1/key", headers={"Authorization": f"Bearer {token}"})
    assert who.status_code == 200 and who.get_json()["id"] == key.id
    # a reload of the creation's address is the page, not a second key
    assert client.get(f"/accounts/{w.agency.id}/developers/keys").status_code == 303


def test_create_is_recorded_in_change_history_and_emailed_to_the_owners(client, session, w):
    sign_in_as(client, w.admin)
    assert create(client, w.agency, "Zapier").status_code == 200
    key = session.scalar(select(ApiKey))
    versions = list(session.scalars(select(Version).where(Version.record_type == "api_key")))
    assert [(v.action, v.actor_id, v.account_id) for v in versions] == \
        [("created", w.admin.id, w.agency.id)]
    assert "secret" not in str(versions[0].changes).lower()
    mails = list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "api_key")
                                 .order_by(OutboxMessage.to_address)))
    assert [m.to_address for m in mails] == ["olive@northwind.test", "otis@northwind.test"]
    assert mails[0].subject == "An API key was created on Northwind Agency"
    text = mails[0].text_body
    assert "A new API key “Zapier”" in text and "was created by Adam Admin" in text
    assert f"apk_{key.prefix}_…" in mails[0].text_body
    assert key.secret_hash not in mails[0].text_body
    history = body(client.get(f"/accounts/{w.agency.id}/history/"))
    assert "API key" in history and "Zapier" in history


@pytest.mark.parametrize("form, field", [
    ({"name": ""}, "name"),
    ({"name": "x" * 81}, "name"),
    ({"scopes": ()}, "scopes"),
    ({"scopes": ("read", "admin")}, "scopes"),
    ({"role": "billing"}, "role"),
    ({"role": "nonsense"}, "role"),
    ({"name": "\u200b\u200b"}, "name"),  # zero-width spaces: nothing shows
    ({"name": "\u202eprobe"}, "name"),  # a right-to-left override would reverse the text
    ({"name": "nightly\x00sync"}, "name"),
])
def test_an_invalid_form_is_422_with_the_field_error_and_no_key(client, session, w, form,
                                                                   field):
    sign_in_as(client, w.owner)
    response = create(client, w.agency, **form)
    assert response.status_code == 422
    assert f'id="{field}-error"' in body(response)
    assert session.scalar(select(ApiKey)) is None


def test_each_error_puts_focus_on_its_field(client, w):
    sign_in_as(client, w.owner)
    scopes = body(create(client, w.agency, scopes=()))
    assert re.search(r'<input type="checkbox" name="scopes" value="read"[^>]*autofocus', scopes)
    both = body(create(client, w.agency, name="", scopes=()))
    assert both.count("autofocus") == 1 and re.search(r'id="key-name"[^>]*autofocus', both)


def test_a_live_key_s_name_is_not_given_twice_a_revoked_one_s_may_be(client, session, w):
    sign_in_as(client, w.owner)
    assert create(client, w.agency, "Billing sync").status_code == 200
    again = create(client, w.agency, "billing  SYNC")
    assert again.status_code == 422
    assert "There is already a key named billing SYNC" in body(again)
    assert len(session.scalars(select(ApiKey)).all()) == 1
    other = create(client, w.sub, "Billing sync")  # another account's keys are its own
    assert other.status_code == 200
    key = session.scalar(select(ApiKey).where(ApiKey.account_id == w.agency.id))
    api_keys.revoke(session, w.agency, key.id, w.owner)
    session.commit()
    assert create(client, w.agency, "Billing sync").status_code == 200


def test_the_token_page_stays_out_of_the_tabs_history_and_offers_copy(client, w):
    sign_in_as(client, w.owner)
    page = body(create(client, w.agency, "Billing sync"))
    assert 'hx-history="false"' in page  # htmx never caches it (Back asks the server)
    assert re.search(r'<h1 tabindex="-1" autofocus>API key created', page)
    assert '<button type="button" data-copy="token"' in page


def test_an_admin_cannot_make_an_owner_key(client, session, w):
    sign_in_as(client, w.admin)
    page = body(client.get(page_path(w.agency)))
    assert 'value="owner"' not in page
    response = create(client, w.agency, role="owner")
    assert response.status_code == 422
    assert "Only an owner can create a key that acts as an owner." in body(response)
    assert session.scalar(select(ApiKey)) is None


def test_a_sub_account_key_by_its_agency_and_the_agency_owners_told(client, session, w):
    sign_in_as(client, w.owner)
    assert create(client, w.sub, "Sub key").status_code == 200
    mails = list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "api_key")))
    assert sorted(m.to_address for m in mails) == ["olive@northwind.test", "otis@northwind.test"]
    key = session.scalar(select(ApiKey))
    assert key.account_id == w.sub.id


def test_revoke_needs_the_confirmation_then_the_key_stops(client, session, w):
    made = api_keys.create(session, w.agency, w.owner, Role.OWNER, "CI", ["read"], Role.ADMIN)
    session.commit()
    key_id = made.key.id
    sign_in_as(client, w.admin)
    path = f"/accounts/{w.agency.id}/developers/keys/{key_id}/revoke"
    dialog = client.get(path)
    assert dialog.status_code == 200
    assert "<dialog" in body(dialog) and 'name="confirm" value="yes"' in body(dialog)
    token = csrf_token(client, page_path(w.agency))
    refused = client.post(path, data={"csrf_token": token})
    assert refused.status_code == 422 and "needs the confirmation" in body(refused)
    assert client.get("/api/v1/key", headers={
        "Authorization": f"Bearer {made.token}"}).status_code == 200
    done = client.post(path, data={"csrf_token": token, "confirm": "yes"})
    assert done.status_code == 303
    session.expire_all()
    key = session.get(ApiKey, key_id)
    assert key.revoked_at is not None and key.revoked_by_id == w.admin.id
    assert client.get("/api/v1/key", headers={
        "Authorization": f"Bearer {made.token}"}).status_code == 401
    listed = body(client.get(page_path(w.agency), follow_redirects=True))
    assert "Revoked the API key “CI”" in listed and "Revoked" in listed
    assert f"/keys/{key_id}/revoke" not in listed
    actions = [v.action for v in session.scalars(
        select(Version).where(Version.record_type == "api_key").order_by(Version.id))]
    assert actions == ["created", "changed"]
    subjects = sorted(m.subject for m in session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "api_key",
                                    OutboxMessage.to_address == "olive@northwind.test")))
    assert subjects == ["An API key was created on Northwind Agency",
                        "An API key was revoked on Northwind Agency"]
    # a second revoke changes nothing more
    again = client.post(path, data={"csrf_token": token, "confirm": "yes"})
    assert again.status_code == 303
    assert session.scalar(select(OutboxMessage).where(
        OutboxMessage.subject.like("%revoked%"),
        OutboxMessage.to_address == "otis@northwind.test")) is not None


def test_another_tenants_key_or_account_is_404_and_csrf_is_checked(client, session, w):
    made = api_keys.create(session, w.other, w.other_owner, Role.OWNER, "Theirs", ["read"])
    session.commit()
    sign_in_as(client, w.owner)
    token = csrf_token(client, page_path(w.agency))
    # their key through our account's address
    response = client.post(f"/accounts/{w.agency.id}/developers/keys/{made.key.id}/revoke",
                           data={"csrf_token": token, "confirm": "yes"})
    assert response.status_code == 404
    response = client.post(f"/accounts/{w.other.id}/developers/keys",
                           data={"csrf_token": token, "name": "x", "scopes": ["read"],
                                 "role": "admin"})
    assert response.status_code == 404
    no_csrf = client.post(f"/accounts/{w.agency.id}/developers/keys",
                          data={"name": "x", "scopes": ["read"], "role": "admin"})
    assert no_csrf.status_code in (400, 403)
    session.expire_all()
    assert session.get(ApiKey, made.key.id).revoked_at is None
    assert session.scalars(select(ApiKey)).all() == [session.get(ApiKey, made.key.id)]


def test_a_billing_user_cannot_create_or_revoke(client, session, w):
    made = api_keys.create(session, w.agency, w.owner, Role.OWNER, "CI", ["read"])
    session.commit()
    sign_in_as(client, w.billing)
    token = csrf_token(client, f"/accounts/{w.agency.id}/billing/")
    response = client.post(f"/accounts/{w.agency.id}/developers/keys",
                           data={"csrf_token": token, "name": "x", "scopes": ["read"],
                                 "role": "admin"})
    assert response.status_code == 403
    response = client.post(f"/accounts/{w.agency.id}/developers/keys/{made.key.id}/revoke",
                           data={"csrf_token": token, "confirm": "yes"})
    assert response.status_code == 403
    assert session.scalars(select(ApiKey)).one().revoked_at is None


def test_the_cli_makes_a_key_and_prints_its_token(app, session, w):
    result = app.test_cli_runner().invoke(args=[
        "api-key", "create", "--account", str(w.agency.id), "--email", "olive@northwind.test",
        "--name", "Script", "--scopes", "read,write"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert TOKEN.fullmatch(token)
    key = session.scalar(select(ApiKey))
    assert key.name == "Script" and key.scopes == "read write" and key.role == Role.OWNER
    bad = app.test_cli_runner().invoke(args=[
        "api-key", "create", "--account", str(w.agency.id), "--email", "bea@northwind.test",
        "--name", "Script", "--scopes", "read"])
    assert bad.exit_code != 0 and "owners and admins" in bad.output


def test_a_canceled_account_lists_and_revokes_its_keys_but_makes_none(client, session, w):
    made = api_keys.create(session, w.agency, w.owner, Role.OWNER, "Old", ["read"])
    canceled = f.sub(session, w.agency, "Gone Co", canceled_at=clock.now())
    session.commit()
    with pytest.raises(NotAllowed):
        api_keys.create(session, canceled, w.owner, Role.OWNER, "New", ["read"])
    session.rollback()
    sign_in_as(client, w.owner)
    page = body(client.get(page_path(canceled)))
    assert "Create API key" not in page
    assert made.key.id  # the agency's key is unaffected
    key = api_keys.create(session, w.sub, w.owner, Role.OWNER, "Sub", ["read"]).key
    session.commit()
    token = csrf_token(client, page_path(w.agency))
    # a canceled account may still revoke (allowed_when_canceled): here, its own key
    from portal.models import Account, AccountStatus

    sub = session.get(Account, w.sub.id)
    sub.status, sub.canceled_at = AccountStatus.CANCELED, clock.now()
    session.commit()
    done = client.post(f"/accounts/{w.sub.id}/developers/keys/{key.id}/revoke",
                       data={"csrf_token": token, "confirm": "yes"})
    assert done.status_code == 303
    session.expire_all()
    assert session.get(ApiKey, key.id).revoked_at is not None


def test_the_demo_key_is_known_and_works(client, session):
    owner = f.user(session, api_keys.DEMO_OWNER, name="Avery Agency")
    agency = f.agency(session, "Northwind Agency", owner=owner)
    session.commit()
    made = api_keys.seed_demo_key(session)
    session.commit()
    assert made.token == api_keys.DEMO_TOKEN and made.key.account_id == agency.id
    who = client.get("/api/v1/key", headers={"Authorization": f"Bearer {api_keys.DEMO_TOKEN}"})
    assert who.status_code == 200 and who.get_json()["scopes"] == ["read", "write", "metering"]


def test_a_key_acts_at_most_with_its_makers_role_now(client, session):
    """Issue 18: the key's power goes with its maker: an owner key whose maker is now an
    admin cannot close; once the maker is removed from the account the key is refused."""
    from sqlalchemy import delete as sql_delete

    from portal.models import AccountStatus, Membership

    account = f.standalone(session)
    maker = f.user(session)
    f.member(session, maker, account, Role.OWNER)
    f.member(session, f.user(session), account, Role.OWNER)  # keeps an owner
    token = f.api_key(session, account, maker, role=Role.OWNER)
    headers = {"Authorization": f"Bearer {token}"}
    membership = session.scalar(select(Membership).where(Membership.user_id == maker.id))
    membership.role = Role.ADMIN
    session.commit()
    closed = client.post(f"/api/v1/accounts/{account.id}/close", json={"confirm": True},
                         headers=headers)
    assert closed.status_code == 403
    session.refresh(account)
    assert account.status != AccountStatus.CANCELED
    assert client.get(f"/api/v1/accounts/{account.id}", headers=headers).status_code == 200
    session.execute(sql_delete(Membership).where(Membership.user_id == maker.id))
    session.commit()
    assert client.get(f"/api/v1/accounts/{account.id}", headers=headers).status_code == 401
