"""/api/v1/accounts/<id>/users and /invitations: Settings → Users over the API, with the
people service's rules (portal/services/people.py): owners and admins manage people
(Can.PEOPLE); only an owner key gives, takes or removes the owner role; nobody raises their
own role (the key acts as its maker); an account always keeps an owner. A refusal is a 403
problem with the page's sentence, as the page's dialog answers it; a canceled account is
read-only (409).

A user is named in paths by their user id; an invitation by its id. The invitation's link
is only in the invited person's email."""

import marshmallow as ma
from flask.views import MethodView
from marshmallow import fields, validate
from sqlalchemy import select

from portal import roles
from portal.blueprints.api_v1 import auth, blueprint, paging
from portal.blueprints.api_v1.accounts import reach
from portal.blueprints.api_v1.schemas import PageArgsSchema, page_schema
from portal.blueprints.people.routes import link_settings
from portal.errors import NotAllowed, NotFound
from portal.extensions import db
from portal.models import Account, Invitation, InvitationStatus, Membership, Role
from portal.services import people

bp = blueprint("people", "Users and invitations.")

USERS = "/accounts/<id:account_id>/users"
INVITATIONS = "/accounts/<id:account_id>/invitations"
ROLE_DESCRIPTION = ("owner (everything), admin (all but owners and closing), billing "
                    "(Billing Settings only), user (calls, numbers, agent statuses).")


class UserSchema(ma.Schema):
    id = fields.Integer(required=True, attribute="user.id", metadata={
        "description": "The user's id (the path's user_id)."})
    name = fields.String(required=True, attribute="user.name")
    email = fields.String(required=True, attribute="user.email")
    role = fields.Enum(Role, by_value=True, required=True, metadata={
        "description": ROLE_DESCRIPTION})
    two_factor = fields.Boolean(required=True, attribute="user.has_two_factor")
    last_sign_in_at = fields.DateTime(allow_none=True, required=True,
                                      attribute="last_sign_in")
    joined_at = fields.DateTime(required=True, attribute="membership.created_at")


class RoleSchema(ma.Schema):
    role = fields.String(required=True, validate=validate.Length(max=20), metadata={
        "description": "owner, admin, billing or user (owner: an owner key only).",
        "enum": [r.value for r in Role]})


class InvitationSchema(ma.Schema):
    """An invitation to join the account. Its link is only in the email."""

    id = fields.Integer(required=True)
    email = fields.String(required=True)
    role = fields.Enum(Role, by_value=True, required=True)
    status = fields.Enum(InvitationStatus, by_value=True, required=True, metadata={
        "description": "pending, accepted, revoked, or replaced (a newer one was sent)."})
    invited_by_id = fields.Integer(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)
    closed_at = fields.DateTime(allow_none=True, required=True)


class InviteSchema(RoleSchema):
    email = fields.String(required=True, validate=validate.Length(max=254))


UserPage = page_schema(UserSchema, "UserPage")
InvitationPage = page_schema(InvitationSchema, "InvitationPage")


def _membership_id(account: Account, user_id: int) -> int:
    found = db.session.scalar(select(Membership.id).where(
        Membership.account_id == account.id, Membership.user_id == user_id))
    if found is None:
        raise NotFound("No such user on this account.")
    return found


def _member(account: Account, user_id: int) -> people.Member:
    return next(m for m in people.members(db.session, account) if m.user.id == user_id)


@bp.route(USERS)
class Users(MethodView):
    @bp.doc(operationId="listUsers")
    @bp.arguments(PageArgsSchema, location="query")
    @bp.response(200, UserPage)
    def get(self, args, account_id: int):
        """List the users

        The account's own users, newest member first, with their role, two-factor
        sign-in and last sign-in (the agency's owners and admins reach a sub-account
        without being listed here)."""
        account = reach(account_id, roles.Can.PEOPLE).account
        after = paging.decode(args["cursor"])
        members = sorted(people.members(db.session, account),
                         key=lambda m: m.membership.id, reverse=True)
        if after is not None:
            members = [m for m in members if m.membership.id < after]
        rows, more = members[:args["limit"]], len(members) > args["limit"]
        return {"data": rows, "has_more": more,
                "next_cursor": paging.encode(rows[-1].membership.id) if more else None}


def _check_may_give(key_role: Role, asked) -> None:
    """The owner role asked of a key that may not give it: 403, as taking it away is (the
    pages only offer the roles one may give; their service says so as a field's error)."""
    if str(asked or "") == Role.OWNER.value and not roles.can(key_role, roles.Can.OWNERS):
        raise NotAllowed("Only an owner can make someone an owner.")


@bp.route(f"{USERS}/<id:user_id>")
class UserItem(MethodView):
    @bp.doc(operationId="changeUserRole")
    @bp.arguments(RoleSchema, location="json")
    @bp.response(200, UserSchema)
    def patch(self, body, account_id: int, user_id: int):
        """Change a user's role

        The owner role (giving or taking it) needs an owner key;
        the last owner can't be demoted."""
        access = reach(account_id, roles.Can.PEOPLE, write=True)
        _check_may_give(access.role, body["role"])
        people.change_role(db.session, access.account, auth.actor(), access.role,
                           _membership_id(access.account, user_id), body["role"])
        member = _member(access.account, user_id)
        db.session.commit()
        return member

    @bp.doc(operationId="removeUser")
    @bp.response(204)
    def delete(self, account_id: int, user_id: int):
        """Remove a user

        Their membership goes (their user stays, for other accounts and the
        history). An owner: an owner key only, never the last one."""
        access = reach(account_id, roles.Can.PEOPLE, write=True)
        people.remove(db.session, access.account, auth.actor(), access.role,
                      _membership_id(access.account, user_id))
        db.session.commit()


@bp.route(INVITATIONS)
class Invitations(MethodView):
    @bp.doc(operationId="listInvitations")
    @bp.arguments(PageArgsSchema, location="query")
    @bp.response(200, InvitationPage)
    def get(self, args, account_id: int):
        """List the pending invitations

        Newest first."""
        account = reach(account_id, roles.Can.PEOPLE).account
        query = select(Invitation).where(Invitation.account_id == account.id,
                                         Invitation.status == InvitationStatus.PENDING)
        return paging.page(db.session, query, Invitation.id, args["limit"], args["cursor"])

    @bp.doc(operationId="inviteUser")
    @bp.arguments(InviteSchema, location="json")
    @bp.response(201, InvitationSchema)
    def post(self, body, account_id: int):
        """Invite a user

        An email with a one-time link (7 days) to join with this role,
        replacing any pending invitation to the same email. At most 20 an hour per account
        (429)."""
        access = reach(account_id, roles.Can.PEOPLE, write=True)
        _check_may_give(access.role, body["role"])
        invitation, _url = people.invite(db.session, link_settings(), access.account,
                                         auth.actor(), access.role, body["email"],
                                         body["role"])
        db.session.commit()
        return invitation


@bp.route(f"{INVITATIONS}/<id:invitation_id>")
class InvitationItem(MethodView):
    @bp.doc(operationId="revokeInvitation")
    @bp.response(200, InvitationSchema)
    def delete(self, account_id: int, invitation_id: int):
        """Revoke an invitation

        Only a pending one; its link stops working."""
        access = reach(account_id, roles.Can.PEOPLE, write=True)
        revoked = people.revoke(db.session, access.account, access.role, invitation_id)
        db.session.commit()
        return revoked


@bp.route(f"{INVITATIONS}/<id:invitation_id>/resend")
class ResendInvitation(MethodView):
    @bp.doc(operationId="resendInvitation")
    @bp.response(201, InvitationSchema)
    def post(self, account_id: int, invitation_id: int):
        """Resend an invitation

        A new invitation (a new id, 7 days again) for the same email and role; the
        earlier link stops working."""
        access = reach(account_id, roles.Can.PEOPLE, write=True)
        invitation, _url = people.resend(db.session, link_settings(), access.account,
                                         auth.actor(), access.role, invitation_id)
        db.session.commit()
        return invitation
