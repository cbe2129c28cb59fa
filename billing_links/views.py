"""Signed one-time billing links and the public customer pages.

GET  /billing-link/<token>   the customer's page: the agency, the sub-account, the amount
                             asked, a card form (opening it never uses the link up)
POST /billing-link/<token>   pay with the payment-method id the processor's card form gave
                             (never card data): on success (or while the processor hasn't
                             answered) a 303 to the thank-you page; a decline or bad input
                             shows the form again; a 3-D Secure card gets the challenge
POST /billing-link/<token>/confirm   back from the challenge: settled from the processor
GET  /billing-link/paid/<receipt token>          the thank-you page: the receipt's link,
                             what happens next and the payer's invitation to manage billing
                             (safe to reload: it only reads)
GET  /billing-link/receipt/<receipt token>[/pdf] the payment's receipt (HTML, PDF)

No sign-in. Every answer carries Referrer-Policy: no-referrer (the token is in the URL) and
Cache-Control: no-store, and each client address is rate-limited.
"""

from datetime import timedelta

from flask import Blueprint, current_app, render_template, request, session, url_for

import billing_links
from billing_links import service as link_service
from billing_links import tokens
from portal.errors import ValidationFailed
from portal.extensions import db, payment_gateway
from portal.headers import card_entry_page
from portal.rendering import pdf_response, render, see_other
from portal.services.money import plain

bp = Blueprint("billing_links", __name__, template_folder="templates", static_folder="static",
               static_url_path="/billing-link-static")

PAGE = "billing_links/pay.html"
PAYER = "billing_link_paid"  # the session key: the charge this browser paid
PROBLEMS = {
    # reason: (status, title, what happened)
    "tampered": (404, "This link isn't valid",
                 "The link is incomplete or was changed. Copy it again from the email, or ask "
                 "the agency for a new link."),
    "expired": (410, "This link has expired",
                "Billing links work for a limited time. Ask the agency to send you a new "
                "link."),
    "used": (410, "This link was already used",
             "The payment was made and billing is set up. Nothing more to do; if that wasn't "
             "you, contact the agency."),
    "revoked": (410, "This link no longer works",
                "The agency canceled this request or sent a newer link. Use the newest email, "
                "or ask the agency for a new link."),
}


def public_link_pages(blueprint: Blueprint, problem_template: str) -> None:
    """A blueprint of public signed-link pages (no sign-in: billing links, single-task links,
    invitations): each client address is rate-limited (one counter for all of them), and no
    answer leaks the token in the URL (no Referer) or is cached."""

    @blueprint.before_request
    def rate_limit():
        config = current_app.config
        address = request.remote_addr or "unknown"
        window = timedelta(minutes=config["BILLING_LINK_RATE_WINDOW_MINUTES"])
        limited = link_service.throttled(db.session, address,
                                         config["BILLING_LINK_RATE_LIMIT"], window)
        db.session.commit()
        if limited:
            return render(problem_template, status=429, title="Too many attempts",
                          message="Too many requests from your network. Wait a few minutes "
                                  "and try again.")
        return None

    @blueprint.after_request
    def private(response):
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Robots-Tag"] = "noindex"
        return response


public_link_pages(bp, "billing_links/problem.html")


@bp.context_processor
def processor_setup() -> dict:
    """The processor's card-entry script for the pages that mount it (pay, task card/pay)."""
    browser = getattr(payment_gateway(), "browser", None)
    return {"processor": browser() if browser is not None else None}


def _problem(error: tokens.LinkError, token: str | None = None):
    db.session.rollback()
    status, title, message = PROBLEMS[error.reason]
    paid_url = None
    if error.reason == "used" and token:  # back after paying: where the receipt is
        used = link_service.paid_by_link(db.session, billing_links.settings(current_app), token)
        if used is not None:
            paid_url = url_for("billing_links.thank_you", token=used)
    return render("billing_links/problem.html", status=status, title=title, message=message,
                  reason=error.reason, paid_url=paid_url)


@bp.get("/billing-link/<token>")
@card_entry_page  # the processor's card entry or challenge: its CSP
def show(token: str):
    try:
        link = link_service.open_link(db.session, billing_links.settings(current_app), token)
    except tokens.LinkError as e:
        return _problem(e, token)
    return render(PAGE, link=link, form={}, errors={})


@bp.post("/billing-link/<token>")
@card_entry_page  # the processor's card entry or challenge: its CSP
def pay(token: str):
    settings = billing_links.settings(current_app)
    try:
        link = link_service.open_link(db.session, settings, token)
        payment = link_service.pay(db.session, payment_gateway(), settings, token,
                                   request.form)
    except tokens.LinkError as e:
        return _problem(e, token)
    except ValidationFailed as e:
        db.session.rollback()
        return render(PAGE, status=422, link=link, form=_echo(), errors=e.errors)
    return _answer(token, settings, link, payment)


@bp.post("/billing-link/<token>/confirm")
@card_entry_page  # the processor's card entry or challenge: its CSP
def confirm(token: str):
    """Back from the processor's challenge: settle the payment from the processor's answer
    (the browser sends nothing but the link and its CSRF token)."""
    settings = billing_links.settings(current_app)
    try:
        link = link_service.open_link(db.session, settings, token)
        payment = link_service.confirm(db.session, payment_gateway(), settings, token)
    except tokens.LinkError as e:
        return _problem(e, token)
    if payment is None:
        return render(PAGE, link=link, form={}, errors={})
    return _answer(token, settings, link, payment)


def _echo() -> dict:
    """What the form shows again: the amount only (the card is the processor's)."""
    return {"amount": request.form.get("amount", "")[:32]}


def _answer(token: str, settings, link, payment):
    charge = payment.charge
    form = _echo() if "amount" in request.form else {"amount": plain(charge.amount_cents)}
    if payment.action:  # 3-D Secure: the page runs the processor's challenge, then confirms
        return render(PAGE, link=link, form=form, errors={}, action=payment.action,
                      confirm_url=url_for("billing_links.confirm", token=token))
    if charge.status.value == "failed":
        return render(PAGE, status=402, link=link, form=form, errors={
            "": f"The payment didn't go through: {charge.failure_message} Nothing was "
                "charged. Try again, or use another card."})
    # Paid, or waiting for the processor's answer: the thank-you page is a GET (reloading it,
    # or going back and forward, charges nothing and never asks to resubmit the form).
    receipt = link_service.receipt_token(settings, link.request, charge)
    # This browser paid: its thank-you page may show the invitation link itself (a receipt
    # link passed on to someone else shows that the invitation was emailed, not the link).
    session[PAYER] = charge.id
    return see_other(url_for("billing_links.thank_you", token=receipt))


def _paid(token: str):
    return link_service.paid(db.session, billing_links.settings(current_app), token)


@bp.get("/billing-link/paid/<token>")
def thank_you(token: str):
    """After paying: the receipt, the balance, what happens next and, once billing switched,
    the payer's invitation to be the sub-account's billing user (its link only in the
    browser that paid)."""
    settings = billing_links.settings(current_app)
    try:
        paid = link_service.paid(db.session, settings, token)
    except tokens.LinkError as e:
        return _problem(e)
    access = (link_service.payer_access(db.session, settings, paid)
              if paid.switched and paid.charge.is_succeeded else None)
    return render("billing_links/done.html", paid=paid, token=token, access=access,
                  payer=session.get(PAYER) == paid.charge.id)


def _receipt_html(paid, token: str) -> str:
    return render_template(
        "billing/receipt.html", charge=paid.charge, account=paid.sub, settings=paid.settings,
        public_links={"pdf": url_for("billing_links.receipt_pdf", token=token),
                      "back": url_for("billing_links.thank_you", token=token)})


@bp.get("/billing-link/receipt/<token>")
def receipt(token: str):
    try:
        paid = _paid(token)
    except tokens.LinkError as e:
        return _problem(e)
    return _receipt_html(paid, token)


@bp.get("/billing-link/receipt/<token>/pdf")
def receipt_pdf(token: str):
    try:
        paid = _paid(token)
    except tokens.LinkError as e:
        return _problem(e)
    return pdf_response(_receipt_html(paid, token), f"receipt-{paid.charge.receipt_number}.pdf")


# The single-task links' pages and the 3-D Secure link's page, on this blueprint.
from billing_links import authenticate_views, task_views  # noqa: E402,F401
