"""Issue 15 audit, throttles: Change email sends a link to any address the signed-in user
types (with their password), so the links a user may ask for are capped
(rules.EMAIL_CHANGE_MAX_PER_USER in rules.EMAIL_CHANGE_WINDOW), asks for an address that
already has a user included (else the form would tell, without limit, which emails have
users). A refused ask says why by the field, sends nothing, keeps the session, and doesn't
count as a failed sign-in; the security page lists each ask as "Link asked"."""

from datetime import timedelta

from sqlalchemy import select

from portal import clock, rules
from portal.models import SigninAttempt
from portal.services import auth
from tests import factories as f
from tests.web.conftest import sign_in_as
from tests.web.test_passwords_and_email import T0, body, can_sign_in, change_email, mails, pat

__all__ = ["pat"]  # the fixture


def test_email_change_links_are_capped_per_user_and_the_cap_passes(client, session, pat):
    user, _account = pat
    f.user(session, email="taken@example.test")
    session.commit()
    sign_in_as(client, user)
    limit = rules.EMAIL_CHANGE_MAX_PER_USER
    assert change_email(client, "taken@example.test").status_code == 422  # counts too
    for n in range(limit - 1):
        assert change_email(client, f"new{n}@example.test").status_code == 303
    assert len(mails(session, "email_change")) == limit - 1

    clock.freeze(T0 + timedelta(minutes=10))
    refused = change_email(client, "one-more@example.test")
    assert refused.status_code == 422
    assert (f"You asked for {limit} email changes in the last hour. Try again in 50 "
            "minutes.") in body(refused)
    assert len(mails(session, "email_change")) == limit - 1  # nothing sent
    assert client.get("/security/").status_code == 200  # still signed in
    # the asks are no failed sign-ins: the password still signs in (5 failures would lock)
    assert can_sign_in(session, "pat@example.test", f.PASSWORD)
    page = body(client.get("/security/"))
    assert page.count("Email change link asked") >= limit

    clock.freeze(T0 + rules.EMAIL_CHANGE_WINDOW + timedelta(seconds=1))
    sign_in_as(client, user)  # (the idle session ended meanwhile)
    assert change_email(client, "later@example.test").status_code == 303
    assert len(mails(session, "email_change")) == limit


def test_another_users_cap_is_their_own(client, session, pat):
    user, _account = pat
    other = f.user(session, email="kim@example.test")
    session.commit()
    for _n in range(rules.EMAIL_CHANGE_MAX_PER_USER):
        session.add(SigninAttempt(email=other.email, address="198.51.100.9", succeeded=False,
                                  step=auth.EMAIL_STEP, user_id=other.id, at=T0))
    session.commit()
    sign_in_as(client, user)
    assert change_email(client, "fresh@example.test").status_code == 303
    session.expire_all()
    assert session.scalars(select(SigninAttempt.step).where(
        SigninAttempt.user_id == user.id, SigninAttempt.step == auth.EMAIL_STEP)).all() == [
        auth.EMAIL_STEP]
