from tests import factories as f


def test_sign_in_lands_on_account_settings(client, auth, session):
    u = f.user(session)
    account = f.standalone(session, "Acme", admin=u)
    session.commit()
    response = auth.login(u.email)
    assert response.status_code == 303
    page = client.get("/", follow_redirects=True)
    assert page.request.path == f"/accounts/{account.id}/"
    assert "Acme" in page.get_data(as_text=True)
