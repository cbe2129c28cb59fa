"""The single-task links' public pages (issue 15), on the billing links' blueprint (its rate
limit and its no-referrer, no-store headers apply):

GET  /task-link/<token>                 the task's page: whose account, the agency, and a card
                                        form (update the card, or pay the amount asked)
POST /task-link/<token>                 do the task with the payment-method id the processor's
                                        card form gave (never card data): 303 to the done
                                        page; bad input or a decline shows the form again,
                                        changing nothing; a 3-D Secure card gets the challenge
POST /task-link/<token>/confirm         back from the challenge: settled from the processor
GET  /task-link/done/<done token>       what was done (safe to reload: it only reads)
GET  /task-link/receipt/<done token>[/pdf]  a payment's receipt (HTML, PDF)

No sign-in; the forms carry the CSRF token like the billing link's.
"""

from flask import current_app, render_template, request, session, url_for

import billing_links
from billing_links import tasks, tokens
from billing_links.models import TaskKind
from billing_links.views import bp
from portal.errors import ValidationFailed
from portal.extensions import db, payment_gateway
from portal.headers import card_entry_page
from portal.rendering import pdf_response, render, see_other

PAGES = {TaskKind.CARD: "billing_links/task_card.html", TaskKind.PAY: "billing_links/task_pay.html"}
PROBLEMS = {
    # reason: (status, title, what happened)
    "tampered": (404, "This link isn't valid",
                 "The link is incomplete or was changed. Copy it again from the email, or ask "
                 "the agency for a new link."),
    "expired": (410, "This link has expired",
                "These links work for a limited time. Ask the agency to send you a new link."),
    "used": (410, "This link was already used",
             "What it asked for is done. Nothing more to do; if that wasn't you, contact the "
             "agency."),
    "revoked": (410, "This link no longer works",
                "The agency sent a newer link, or the account was closed or its billing "
                "changed. Use the newest email, or ask the agency for a new link."),
}


@bp.record_once
def _wire(state) -> None:
    """When create_app registers the blueprint: the payment hooks, and the receipt's URL
    for the emails."""
    tasks.wire()
    state.app.jinja_env.globals["task_receipt_url"] = receipt_url


def receipt_url(link, charge) -> str:
    settings = billing_links.settings(current_app)
    token = tasks.sign_done(settings.keys, link, charge.id)
    return f"{settings.base_url.rstrip('/')}/task-link/receipt/{token}"


def _settings():
    return billing_links.settings(current_app)


def _problem(error: tokens.LinkError, token: str | None = None):
    db.session.rollback()
    status, title, message = PROBLEMS[error.reason]
    done_url = label = None
    if error.reason == "used" and token:
        done = tasks.done_by_link(db.session, _settings(), token)
        if done is not None:
            done_url = url_for("billing_links.task_done", token=done)
            label = ("See the card saved" if tasks.done(db.session, _settings(), done).method
                     else "See the payment and its receipt")
    return render("billing_links/problem.html", status=status, title=title, message=message,
                  reason=error.reason, paid_url=done_url, paid_label=label)


def _safe(form) -> dict:
    """Nothing of the card comes back into the page (it is the processor's form's)."""
    return {}


SETUP = "task_card_setup"  # the signed session: the card setup waiting for its challenge


@bp.get("/task-link/<token>")
@card_entry_page  # the processor's card entry or challenge: its CSP
def task_show(token: str):
    try:
        task = tasks.open_task(db.session, _settings(), token)
    except tokens.LinkError as e:
        return _problem(e, token)
    return render(PAGES[task.link.kind], task=task, form={}, errors={})


@bp.post("/task-link/<token>")
@card_entry_page  # the processor's card entry or challenge: its CSP
def task_do(token: str):
    settings = _settings()
    try:
        task = tasks.open_task(db.session, settings, token)
        if task.link.kind == TaskKind.CARD:
            saved = tasks.update_card(db.session, payment_gateway(), settings, token,
                                      request.form)
            if not isinstance(saved, tuple):  # the card's bank asks to authenticate first
                session[SETUP] = {"link": task.link.link_id, "setup": saved.reference}
                return _challenge(task, token, saved.client_secret)
            return _card_saved(settings, *saved)
        charge, action = tasks.pay(db.session, payment_gateway(), settings, token,
                                   request.form)
    except tokens.LinkError as e:
        return _problem(e, token)
    except ValidationFailed as e:
        db.session.rollback()
        return render(PAGES[task.link.kind], status=422, task=task, form={}, errors=e.errors)
    return _paid_answer(settings, task, token, charge, action)


@bp.post("/task-link/<token>/confirm")
@card_entry_page  # the processor's card entry or challenge: its CSP
def task_confirm(token: str):
    """Back from the processor's challenge (3-D Secure): the card saved, or the payment
    settled, from the processor's answer (the browser sends nothing but the link)."""
    settings = _settings()
    try:
        task = tasks.open_task(db.session, settings, token)
        if task.link.kind == TaskKind.CARD:
            waiting = session.get(SETUP) or {}
            setup = waiting.get("setup") if waiting.get("link") == task.link.link_id else None
            saved = tasks.confirm_setup(db.session, payment_gateway(), settings, token, setup)
            session.pop(SETUP, None)
            return _card_saved(settings, *saved)
        answer = tasks.confirm_payment(db.session, payment_gateway(), settings, token)
    except tokens.LinkError as e:
        return _problem(e, token)
    except ValidationFailed as e:
        db.session.rollback()
        return render(PAGES[task.link.kind], status=422, task=task, form={}, errors=e.errors)
    if answer is None:
        return render(PAGES[task.link.kind], task=task, form={}, errors={})
    return _paid_answer(settings, task, token, *answer)


def _challenge(task, token: str, client_secret: str):
    return render(PAGES[task.link.kind], task=task, form={}, errors={}, action=client_secret,
                  confirm_url=url_for("billing_links.task_confirm", token=token))


def _card_saved(settings, link, method):
    db.session.commit()
    return see_other(url_for("billing_links.task_done",
                             token=tasks.sign_done(settings.keys, link, method.id)))


def _paid_answer(settings, task, token: str, charge, action: str):
    if action:
        return _challenge(task, token, action)
    if charge.is_failed:
        return render(PAGES[task.link.kind], status=402, task=task, form={},
                      errors={"": f"The payment didn't go through: {charge.failure_message} "
                                  "Nothing was charged. Try again, or use another card."})
    return see_other(url_for("billing_links.task_done",
                             token=tasks.sign_done(settings.keys, task.link, charge.id)))


@bp.get("/task-link/done/<token>")
def task_done(token: str):
    try:
        done = tasks.done(db.session, _settings(), token)
    except tokens.LinkError as e:
        return _problem(e)
    return render("billing_links/task_done.html", done=done, token=token)


def _receipt(token: str):
    done = tasks.done(db.session, _settings(), token)
    if done.charge is None or not done.charge.is_succeeded:
        raise tokens.LinkTampered()
    from portal.services import billing

    return render_template(
        "billing/receipt.html", charge=done.charge, account=done.sub,
        settings=billing.settings_for(db.session, done.sub),
        public_links={"pdf": url_for("billing_links.task_receipt_pdf", token=token),
                      "back": url_for("billing_links.task_done", token=token)}), done


@bp.get("/task-link/receipt/<token>")
def task_receipt(token: str):
    try:
        html, _ = _receipt(token)
    except tokens.LinkError as e:
        return _problem(e)
    return html


@bp.get("/task-link/receipt/<token>/pdf")
def task_receipt_pdf(token: str):
    try:
        html, done = _receipt(token)
    except tokens.LinkError as e:
        return _problem(e)
    return pdf_response(html, f"receipt-{done.charge.receipt_number}.pdf")
