"""/api/v1: Statements: a PDF for a date range, statements made by the jobs, recurring
schedules (issue 18 E2).

Printable Statements' services: statements.parse_period (its messages), then
statement_files.download: a file the jobs made is served at once; a period over
STATEMENT_SYNC_MAX_ENTRIES ledger entries is made by the jobs (202, the statement file with
a Location to poll; the requester is emailed when it is ready); else it is rendered now."""

import marshmallow as ma
from flask import jsonify, url_for
from flask.views import MethodView
from marshmallow import fields, validate

from portal import clock, pdf
from portal.blueprints.api import problems
from portal.blueprints.api_v1 import auth, blueprint
from portal.blueprints.api_v1.billing_common import PDF, pdf_answer, problem, reach
from portal.blueprints.api_v1.schemas import ProblemSchema
from portal.extensions import db
from portal.models import ScheduleFrequency
from portal.models.statement_files import FileStatus
from portal.services import statement_files, statements

bp = blueprint("statements", "Statements: a PDF for a date range, statements made by the "
                             "jobs, recurring schedules.")


class PeriodArgsSchema(ma.Schema):
    from_ = fields.String(data_key="from", load_default="", metadata={
        "description": "First day, YYYY-MM-DD (UTC)."})
    to = fields.String(load_default="", metadata={
        "description": "Last day, YYYY-MM-DD (UTC), at most today; at most 3 years."})


class StatementFileSchema(ma.Schema):
    id = fields.Integer(required=True)
    period_from = fields.Date(required=True)
    period_to = fields.Date(required=True)
    status = fields.Enum(FileStatus, by_value=True, required=True, metadata={
        "description": "pending, building, ready or failed."})
    status_label = fields.String(required=True)
    pages = fields.Integer(allow_none=True, required=True)
    size = fields.Integer(allow_none=True, required=True, metadata={"description": "Bytes."})
    error = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    ready_at = fields.DateTime(allow_none=True, required=True)
    expires_at = fields.DateTime(allow_none=True, required=True)
    pdf_url = fields.Function(lambda f: url_for(
        "api_v1_statements.StatementFilePdf", account_id=f.account_id, file_id=f.id)
        if f.is_ready else None, allow_none=True, required=True,
        metadata={"type": "string", "description": "Once ready: the PDF's path."})


class ScheduleSchema(ma.Schema):
    id = fields.Integer(required=True)
    frequency = fields.Enum(ScheduleFrequency, by_value=True, required=True)
    recipient = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class ScheduleList(ma.Schema):
    data = fields.List(fields.Nested(ScheduleSchema), required=True)


class ScheduleArgsSchema(ma.Schema):
    frequency = fields.String(required=True, validate=validate.Length(max=20), metadata={
        "description": "weekly (the last Monday–Sunday) or monthly (the last month)."})
    recipient = fields.String(required=True, validate=validate.Length(max=320), metadata={
        "description": "The email address it is sent to."})


def _file_url(file) -> str:
    return url_for("api_v1_statements.StatementFileItem", account_id=file.account_id,
                   file_id=file.id)


@bp.route("/accounts/<id:account_id>/statements.pdf")
class StatementPdf(MethodView):
    @bp.doc(operationId="getStatementPdf")
    @bp.arguments(PeriodArgsSchema, location="query")
    @bp.response(200, PDF, content_type="application/pdf", description="The statement.")
    @bp.alt_response(202, schema=StatementFileSchema, description=(
        "Over the size made in a request: being prepared by the jobs (Location: the "
        "statement file to poll; its pdf_url once ready)."))
    def get(self, args, account_id: int):
        """Download a statement (PDF)

        The statement for ?from=&to= (both days included, UTC)."""
        account = reach(account_id, own_billing=True).account
        start, end = statements.parse_period(args["from_"], args["to"], clock.now().date())
        filename = f"statement-{account.id}-{start:%Y%m%d}-{end:%Y%m%d}.pdf"
        found = statement_files.download(db.session, account, auth.actor(), start, end)
        if found.ready is not None:
            return pdf_answer(found.ready.pdf, filename)
        if found.preparing is not None:
            db.session.commit()
            response = jsonify(StatementFileSchema().dump(found.preparing))
            response.status_code = 202
            response.headers["Location"] = _file_url(found.preparing)
            return response
        return pdf_answer(pdf.statement(db.session, account, start, end, for_pdf=True).pdf,
                          filename)


@bp.route("/accounts/<id:account_id>/statement-files/<id:file_id>")
class StatementFileItem(MethodView):
    @bp.doc(operationId="getStatementFile")
    @bp.response(200, StatementFileSchema)
    def get(self, account_id: int, file_id: int):
        """Read a prepared statement's status

        A statement the jobs make: its status (poll it), and pdf_url once ready."""
        return statement_files.get(db.session, reach(account_id, own_billing=True).account,
                                   file_id)


@bp.route("/accounts/<id:account_id>/statement-files/<id:file_id>.pdf")
class StatementFilePdf(MethodView):
    @bp.doc(operationId="getStatementFilePdf")
    @bp.response(200, PDF, content_type="application/pdf", description="The statement.")
    @bp.alt_response(409, schema=ProblemSchema, content_type=problems.MEDIA_TYPE,
                     description="Not ready yet, or failed: `status_of_file` says which.")
    def get(self, account_id: int, file_id: int):
        """Download a prepared statement (PDF)

        A ready statement's PDF; not ready (or failed): 409 saying so."""
        account = reach(account_id, own_billing=True).account
        file = statement_files.get(db.session, account, file_id)
        if not file.is_ready:
            detail = (f"The statement could not be made: {file.error} Ask for it again."
                      if file.is_failed else "The statement is being prepared: poll "
                      f"{_file_url(file)} until its status is ready.")
            return problem(409, detail, status_of_file=file.status.value)
        return pdf_answer(file.pdf, f"statement-{account.id}-{file.period_from:%Y%m%d}-"
                                    f"{file.period_to:%Y%m%d}.pdf")


@bp.route("/accounts/<id:account_id>/statement-schedules")
class Schedules(MethodView):
    @bp.doc(operationId="listStatementSchedules")
    @bp.response(200, ScheduleList)
    def get(self, account_id: int):
        """List the recurring statements

        Recurring statements: each period's statement emailed once."""
        account = reach(account_id, own_billing=True).account
        return {"data": statements.schedules(db.session, account)}

    @bp.doc(operationId="createStatementSchedule")
    @bp.arguments(ScheduleArgsSchema)
    @bp.response(201, ScheduleSchema)
    def post(self, args, account_id: int):
        """Schedule a recurring statement

        Email the statement weekly or monthly to an address."""
        account = reach(account_id, own_billing=True).account
        recipient = statements.parse_recipient(args["recipient"], None)
        schedule = statements.add_schedule(db.session, account, auth.actor(),
                                           args["frequency"], recipient)
        db.session.commit()
        return schedule


@bp.route("/accounts/<id:account_id>/statement-schedules/<id:schedule_id>")
class ScheduleItem(MethodView):
    @bp.doc(operationId="deleteStatementSchedule")
    @bp.response(204)
    def delete(self, account_id: int, schedule_id: int):
        """Stop a recurring statement

        Stop a recurring statement."""
        account = reach(account_id, own_billing=True).account
        statements.remove_schedule(db.session, account, schedule_id)
        db.session.commit()
