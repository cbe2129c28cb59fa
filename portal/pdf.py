"""HTML to PDF with WeasyPrint, from the same templates the pages use.

Stylesheets and images under /static/ are read from the app's static folder, never fetched
over HTTP (a server rendering a PDF must not call itself); any other URL is refused.
"""

from dataclasses import dataclass
from datetime import date
from functools import cache, cached_property
from pathlib import Path
from urllib.parse import urlsplit

from flask import current_app, render_template
from sqlalchemy.orm import Session

from portal.models import Account
from portal.services import billing, statements
from portal.services.statements import Statement

# WeasyPrint takes seconds to import: it loads with the first PDF, not with this module (the
# statement page is built here and shows no PDF).


@cache
def _static_fetcher():
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticFetcher(URLFetcher):
        """Serves /static/ from the static folder and data: URLs; refuses everything else."""

        def __init__(self, static_folder: Path, static_url: str):
            super().__init__(allowed_protocols=["http", "data"])
            self._folder = static_folder
            self._prefix = static_url + "/"

        def __call__(self, url: str, headers=None) -> URLFetcherResponse:
            return self.fetch(url, headers)

        def fetch(self, url: str, headers=None) -> URLFetcherResponse:
            if url.startswith("data:"):
                return super().fetch(url, headers)
            path = urlsplit(url).path
            if path.startswith(self._prefix):
                file = (self._folder / path[len(self._prefix):]).resolve()
                if file.is_file() and self._folder in file.parents:
                    return URLFetcherResponse(url, file.read_bytes(),
                                              {"Content-Type": _mime(file)})
            raise ValueError(f"not fetched in a PDF: {url}")

    return StaticFetcher


def _mime(file: Path) -> str:
    return {".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}.get(
        file.suffix, "application/octet-stream")


def render(html: str) -> bytes:
    from weasyprint import HTML

    app = current_app
    static = Path(app.static_folder).resolve()
    return HTML(string=html, base_url="http://portal.invalid/",
                url_fetcher=_static_fetcher()(static, app.static_url_path)).write_pdf()


@dataclass(frozen=True)
class StatementDocument:
    """A printable statement: what it lists, its page (HTML) and, when asked, its PDF."""

    statement: Statement
    html: str

    @cached_property
    def pdf(self) -> bytes:
        return render(self.html)


def statement(session: Session, account: Account, start: date, end: date,
              for_pdf: bool = False) -> StatementDocument:
    """The statement of `account` from `start` to `end`, from billing/statement.html (the
    page, the PDF, the emailed and the scheduled statement are one document). In a request
    context: outside a request, open one against the external address first (links).
    `for_pdf`: the HTML the PDF is made from (without what only a screen uses: the screen's
    stylesheet, the phone's cell labels, the download links)."""
    built = statements.build(session, account, start, end)
    html = render_template("billing/statement.html", statement=built,
                           settings=billing.settings_for(session, account), for_pdf=for_pdf)
    return StatementDocument(built, html)
