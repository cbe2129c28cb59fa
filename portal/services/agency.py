"""An agency's own actions on its accounts: cancel the agency with every sub-account still
active, and transfer a sub-account out to a new owner as a standalone account.

Like the rest of the lifecycle (services/lifecycle.py), every change is a conditional UPDATE
that must match exactly the rows it expects, and each appends an AccountEvent and emails the
people it affects (mail.notices: agency_canceled, transferred), in its transaction.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.clock import now as clock_now
from portal.errors import NotAllowed, NotFound, ValidationFailed
from portal.mail import notices
from portal.models import (
    PLANS,
    Account,
    AccountKind,
    AccountStatus,
    BillingMode,
    EventKind,
    Membership,
    Role,
    User,
)
from portal.services.auth import user_for_email
from portal.services.inputs import clean_email, clean_text
from portal.services.lifecycle import cancel_now, record

STANDALONE_PLANS = tuple(p for p in PLANS if p != "Agency")
CANCEL_REASONS = (
    "Too expensive",
    "Moving to another provider",
    "Closing the business",
    "Missing features",
    "Not using it enough",
    "Other",
)


def active_sub_accounts(session: Session, agency: Account) -> list[Account]:
    return list(session.scalars(
        select(Account).where(Account.parent_id == agency.id,
                              Account.status != AccountStatus.CANCELED)
        .order_by(Account.name, Account.id)
    ))


def cancel(session: Session, agency: Account, actor: User, reason: str,
                  comments: str = "", now: datetime | None = None) -> list[Account]:
    """Cancel the agency and every sub-account still active; release all their numbers."""
    now = now or clock_now()
    if not agency.is_agency:
        raise NotFound("Only an agency is canceled this way.")
    errors = {}
    if reason not in CANCEL_REASONS:
        errors["reason"] = "Choose why you are canceling."
    try:
        comments = clean_text(comments, "comments", "Comments", multiline=True)
    except ValidationFailed as e:
        errors.update(e.errors)
    else:
        if len(comments) > 2000:
            errors["comments"] = "Comments are at most 2,000 characters."
    if errors:
        raise ValidationFailed(errors)
    released = cancel_now(session, agency, actor, now)
    if released is None:
        raise NotAllowed(f"{agency.name} is already canceled.")
    subs = active_sub_accounts(session, agency)
    canceled_subs = []
    for sub in subs:
        sub_released = cancel_now(session, sub, actor, now)
        if sub_released is None:  # closed on its own meanwhile: keep its own date
            continue
        canceled_subs.append(sub)
        record(session, sub, EventKind.CLOSED, actor, now, by_agency=agency.name,
               released=[n.number for n in sub_released])
    event = record(session, agency, EventKind.AGENCY_CANCELED, actor, now, reason=reason,
                   comments=comments, sub_accounts=[s.name for s in canceled_subs],
                   released=[n.number for n in released])
    notices.agency_canceled(session, agency, event, canceled_subs, actor)
    return canceled_subs


@dataclass(frozen=True)
class Transferred:
    account: Account
    owner: User  # to be told (mail.notices.new_owner), with a set-password link if it needs one


def transfer_out(session: Session, sub: Account, actor: User, new_owner_email: str,
                 plan: str, now: datetime | None = None) -> Transferred:
    """Take a sub-account out of its agency: a standalone account with its numbers, calls
    and history, owned by `new_owner_email`; the agency no longer reaches it.

    The answer is the same whether or not the email has a user (it must not tell the agency
    who has one): without one, a user is made for it without a password, which its owner
    sets from the emailed link (portal/mail/notices.py: new_owner)."""
    now = now or clock_now()
    if not sub.is_sub:
        raise NotFound("Only a sub-account can be transferred out of an agency.")
    agency = session.get(Account, sub.parent_id)
    errors = {}
    if sub.is_canceled:
        errors[""] = f"{sub.name} is canceled: reactivate it before transferring it."
    elif sub.billing_mode == BillingMode.AGENCY:
        errors[""] = (f"{sub.name} is paid from the agency balance and has no payment "
                      "method of its own. Remove it from agency billing (the customer adds a "
                      "card) before transferring it.")
    if plan not in STANDALONE_PLANS:
        errors["plan"] = f"Choose a plan: {', '.join(STANDALONE_PLANS)}."
    try:
        email = clean_email(new_owner_email, "email",
                            "Enter the new owner's email address, like name@example.com.")
    except ValidationFailed as e:
        errors.update(e.errors)
    if errors:
        raise ValidationFailed(errors)
    sub_people = notices.people_told(session, sub)  # as it is before it leaves the agency
    result = session.execute(
        update(Account).where(Account.id == sub.id, Account.kind == AccountKind.SUB,
                              Account.parent_id == agency.id,
                              Account.billing_mode == BillingMode.CUSTOMER,
                              Account.status != AccountStatus.CANCELED)
        .values(kind=AccountKind.STANDALONE, parent_id=None, plan=plan,
                billing_mode=BillingMode.CUSTOMER, updated_at=now)
    )
    if result.rowcount != 1:
        raise NotAllowed(f"{sub.name} is no longer a sub-account of {agency.name}.")
    session.refresh(sub)
    owner = user_for_email(session, email)
    membership = session.scalar(select(Membership).where(
        Membership.user_id == owner.id, Membership.account_id == sub.id))
    if membership is None:
        session.add(Membership(user_id=owner.id, account_id=sub.id, role=Role.OWNER))
    else:
        membership.role = Role.OWNER
    out_event = record(session, agency, EventKind.TRANSFERRED_OUT, actor, now,
                       account=sub.name, account_id=sub.id, new_owner=email)
    in_event = record(session, sub, EventKind.TRANSFERRED_IN, actor, now, agency=agency.name,
                      new_owner=email, plan=plan)
    notices.transferred(session, agency, sub, out_event, in_event, actor, email, sub_people)
    return Transferred(sub, owner)
