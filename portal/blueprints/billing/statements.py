"""Payment History → Printable Statements: the dialog, the statement as a page and as a PDF,
Send Statement, recurring statements."""

from flask import Response, g, make_response, redirect, request, stream_with_context, url_for
from flask_login import current_user

from portal import clock, pdf, rules
from portal.blueprints.billing import bp
from portal.blueprints.views import back, own_billing, submit
from portal.errors import ValidationFailed
from portal.extensions import db
from portal.rendering import is_partial, pdf_response, render
from portal.services import statement_files, statements


def _statement_dialog(status: int = 200, form=None, errors=None, saved=None):
    today = clock.now().date()
    return render("billing/statements.html", "dialog", status=status, form=form or {},
                  errors=errors or {}, saved=saved,
                  choices=statements.recipient_choices(db.session, g.account),
                  schedules=statements.schedules(db.session, g.account),
                  files=statement_files.recent(db.session, g.account),
                  file_days=rules.STATEMENT_FILE_TTL.days,
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
    filename = f"statement-{g.account.id}-{start:%Y%m%d}-{end:%Y%m%d}.pdf"
    found = statement_files.download(db.session, g.account, current_user, start, end)
    if found.ready is not None:  # made by the jobs: served at once
        return _file_response(found.ready.pdf, filename)
    if found.preparing is not None:  # issue 17 (J): made by the jobs
        db.session.commit()
        return _file_page(found.preparing, found.entries, status=202)
    return pdf_response(_document(start, end).html, filename)


def _file_response(data: bytes, filename: str):
    response = make_response(data)
    response.headers["Content-Type"] = "application/pdf"
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


def _file_page(file, entries: int | None = None, status: int = 200):
    """The prepared statement's page (its status block alone for the htmx poll)."""
    from portal.models import User

    requester = db.session.get(User, file.requested_by_id) if file.requested_by_id else None
    return render("billing/statement_file.html", "status", status=status, file=file,
                  entries=entries, requester=requester, days=rules.STATEMENT_FILE_TTL.days)


@bp.get("/statements/files/<id:file_id>")
@own_billing
def statement_file_status(file_id: int):
    """A prepared statement's page: being prepared (202, htmx polls it), ready (the
    Download link) or failed (Try again)."""
    file = statement_files.get(db.session, g.account, file_id)
    return _file_page(file, status=202 if file.is_open else 200)


@bp.get("/statements/files/<id:file_id>.pdf")
@own_billing
def statement_file(file_id: int):
    """A prepared statement's PDF; not ready yet: its page."""
    file = statement_files.get(db.session, g.account, file_id)
    if not file.is_ready:
        return _file_page(file, status=202 if file.is_open else 200)
    return _file_response(file.pdf, f"statement-{g.account.id}-{file.period_from:%Y%m%d}-"
                                    f"{file.period_to:%Y%m%d}.pdf")


@bp.post("/statements/files/<id:file_id>/retry")
@own_billing
def statement_file_retry(file_id: int):
    """Try again after a failure: the period asked anew (its page)."""
    file = statement_files.get(db.session, g.account, file_id)
    if file.is_failed:
        file = statement_files.retry(db.session, g.account, current_user, file)
        db.session.commit()
    return redirect(url_for("billing.statement_file_status", file_id=file.id), 303)


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

    period = f"{start:%B %-d, %Y} – {end:%B %-d, %Y}"
    ready = statement_files.ready_file(db.session, g.account, start, end)
    if ready is None and statement_files.is_big(db.session, g.account, start, end):
        # Issue 17 (J): made by the jobs, emailed to the address when ready.
        statement_files.request(db.session, g.account, current_user, start, end,
                                send_to=recipient)
        db.session.commit()
        return _done(f"The statement for {period} is being prepared: it will be emailed to "
                     f"{recipient} when ready (it is listed below).", form)
    if ready is not None:  # already made by the jobs: its PDF, not a second rendering
        notices.statement(db.session, g.account,
                          statements.build(db.session, g.account, start, end), recipient,
                          ready.pdf, postings=statements.postings_csv_bytes(
                              db.session, g.account, start, end))
        db.session.commit()
        return _done(f"The statement for {period} was sent to {recipient}.", form)
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
