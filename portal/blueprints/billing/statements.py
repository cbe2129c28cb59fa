"""Payment History → Printable Statements: the dialog, the statement as a page and as a PDF,
Send Statement, recurring statements."""

from flask import flash, g, render_template, request, url_for
from flask_login import current_user

from portal import clock
from portal.blueprints.billing import bp
from portal.blueprints.billing.settings import own_billing
from portal.errors import ValidationFailed
from portal.extensions import db
from portal.rendering import pdf_response, render, see_other
from portal.services import billing, statements


def _statement_dialog(status: int = 200, form=None, errors=None):
    today = clock.now().date()
    return render("billing/statements.html", "dialog", status=status, form=form or {},
                  errors=errors or {},
                  choices=statements.recipient_choices(db.session, g.account),
                  schedules=statements.schedules(db.session, g.account),
                  default_from=today.replace(day=1).isoformat(), default_to=today.isoformat())


@bp.get("/statements")
def statements_dialog():
    """Payment History → Printable Statements (a dialog; a page without JavaScript)."""
    own_billing()
    return _statement_dialog()


def _statement_html(start, end) -> tuple:
    built = statements.build(db.session, g.account, start, end)
    html = render_template("billing/statement.html", statement=built,
                           settings=billing.settings_for(db.session, g.account))
    return built, html


@bp.get("/statements.pdf")
def statement_pdf():
    """Download the statement for ?from=&to= directly."""
    own_billing()
    try:
        start, end = statements.parse_period(request.args.get("from"), request.args.get("to"),
                                             clock.now().date())
    except ValidationFailed as e:
        return _statement_dialog(422, request.args, e.errors)
    _, html = _statement_html(start, end)
    return pdf_response(html, f"statement-{g.account.id}-{start:%Y%m%d}-{end:%Y%m%d}.pdf")


@bp.get("/statements/view")
def statement_view():
    """The statement as a page (what the PDF is made from)."""
    own_billing()
    try:
        start, end = statements.parse_period(request.args.get("from"), request.args.get("to"),
                                             clock.now().date())
    except ValidationFailed as e:
        return _statement_dialog(422, request.args, e.errors)
    _, html = _statement_html(start, end)
    return html


@bp.post("/statements")
def send_statement():
    """Send Statement: the PDF emailed to the chosen address."""
    own_billing()
    form = request.form
    errors = {}
    try:
        start, end = statements.parse_period(form.get("from"), form.get("to"),
                                             clock.now().date())
    except ValidationFailed as e:
        errors.update(e.errors)
    try:
        recipient = statements.parse_recipient(form.get("recipient"), form.get("other"))
    except ValidationFailed as e:
        errors.update(e.errors)
    if errors:
        return _statement_dialog(422, form, errors)
    from portal import notices, pdf

    built, html = _statement_html(start, end)
    notices.statement(db.session, g.account, built, recipient, pdf.render(html))
    db.session.commit()
    flash(f"The statement for {start:%B %-d, %Y} – {end:%B %-d, %Y} was sent to {recipient}.",
          "success")
    return see_other(url_for("billing.index"))


@bp.post("/statements/schedules")
def add_schedule():
    own_billing()
    form = request.form
    try:
        recipient = statements.parse_recipient(form.get("recipient"), form.get("other"))
        schedule = statements.add_schedule(db.session, g.account, current_user,
                                           form.get("frequency", ""), recipient)
    except ValidationFailed as e:
        db.session.rollback()
        return _statement_dialog(422, form, e.errors)
    db.session.commit()
    flash(f"Saved: the {schedule.frequency.value} statement will be emailed to "
          f"{schedule.recipient}.", "success")
    return see_other(url_for("billing.index"))


@bp.post("/statements/schedules/<int(max=2147483647):schedule_id>/remove")
def remove_schedule(schedule_id: int):
    own_billing()
    statements.remove_schedule(db.session, g.account, schedule_id)
    db.session.commit()
    flash("The recurring statement was removed.", "success")
    return see_other(url_for("billing.index"))
