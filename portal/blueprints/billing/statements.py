"""Payment History → Printable Statements: the dialog, the statement as a page and as a PDF,
Send Statement, recurring statements."""

from flask import Response, g, request, stream_with_context, url_for
from flask_login import current_user

from portal import clock, pdf
from portal.blueprints.billing import bp
from portal.blueprints.views import back, own_billing, submit
from portal.errors import ValidationFailed
from portal.extensions import db
from portal.rendering import is_partial, pdf_response, render
from portal.services import statements


def _statement_dialog(status: int = 200, form=None, errors=None, saved=None):
    today = clock.now().date()
    return render("billing/statements.html", "dialog", status=status, form=form or {},
                  errors=errors or {}, saved=saved,
                  choices=statements.recipient_choices(db.session, g.account),
                  schedules=statements.schedules(db.session, g.account),
                  presets=statements.presets(today),
                  default_from=today.replace(day=1).isoformat(), default_to=today.isoformat())


def _done(message: str, form=None):
    """Sent, saved or removed: for htmx the dialog again with the message and the schedules
    as they are now (the page behind, and the reader's place on it, untouched; issue 14);
    else the flash and back to the page."""
    if is_partial():
        return _statement_dialog(form=form, saved=message)
    return back(url_for("billing.index"), message)


@bp.get("/statements")
@own_billing
def statements_dialog():
    """Payment History → Printable Statements (a dialog; a page without JavaScript). A
    preset's link or a changed date asks it again with ?from=&to= (the range, the presets
    and the Download PDF link drawn for it)."""
    return _statement_dialog(form=request.args)


def _document(start, end, for_pdf: bool = True):
    return pdf.statement(db.session, g.account, start, end, for_pdf)


@bp.get("/statements.pdf")
@own_billing
def statement_pdf():
    """Download the statement for ?from=&to= directly."""
    try:
        start, end = statements.parse_period(request.args.get("from"), request.args.get("to"),
                                             clock.now().date())
    except ValidationFailed as e:
        return _statement_dialog(422, request.args, e.errors)
    return pdf_response(_document(start, end).html,
                        f"statement-{g.account.id}-{start:%Y%m%d}-{end:%Y%m%d}.pdf")


@bp.get("/statements.csv")
@own_billing
def statement_csv():
    """The statement's postings, one a row, for ?from=&to= (issue 17: the PDF sums the
    usage per day and item; this itemizes it)."""
    try:
        start, end = statements.parse_period(request.args.get("from"), request.args.get("to"),
                                             clock.now().date())
    except ValidationFailed as e:
        return _statement_dialog(422, request.args, e.errors)
    return Response(
        stream_with_context(statements.postings_csv(db.session, g.account, start, end)),
        mimetype="text/csv",
        headers={"Content-Disposition":
                 f'attachment; filename="{statements.csv_filename(g.account, start, end)}"'})


@bp.get("/statements/view")
@own_billing
def statement_view():
    """The statement as a page (what the PDF is made from)."""
    try:
        start, end = statements.parse_period(request.args.get("from"), request.args.get("to"),
                                             clock.now().date())
    except ValidationFailed as e:
        return _statement_dialog(422, request.args, e.errors)
    return _document(start, end, for_pdf=False).html


@bp.post("/statements")
@own_billing
def send_statement():
    """Send Statement: the PDF emailed to the chosen address."""
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
    from portal.mail import notices

    document = _document(start, end)
    notices.statement(db.session, g.account, document.statement, recipient, document.pdf,
                      postings=statements.postings_csv_bytes(db.session, g.account, start, end))
    db.session.commit()
    return _done(f"The statement for {start:%B %-d, %Y} – {end:%B %-d, %Y} was sent to "
                 f"{recipient}.", form)


@bp.post("/statements/schedules")
@own_billing
def add_schedule():
    form = request.form

    def add():
        recipient = statements.parse_recipient(form.get("recipient"), form.get("other"))
        return statements.add_schedule(db.session, g.account, current_user,
                                       form.get("frequency", ""), recipient)

    return submit(add, lambda errors: _statement_dialog(422, form, errors),
                  lambda schedule: _done(f"Saved: the {schedule.frequency.value} statement "
                                         f"will be emailed to {schedule.recipient}.", form))


@bp.post("/statements/schedules/<id:schedule_id>/remove")
@own_billing
def remove_schedule(schedule_id: int):
    statements.remove_schedule(db.session, g.account, schedule_id)
    db.session.commit()
    return _done("The recurring statement was removed.")
