"""/api/v1/docs: the API's reference, rendered in the browser by a vendored copy of ReDoc
2.5.4 (portal/static/vendor/redoc-2.5.4, MIT; its README says what was changed) from
/api/v1/openapi.json; nothing is loaded from elsewhere. No key is needed to read it (nor the
document).

ReDoc starts itself from the page's <redoc spec-url> element: the page has no inline
script. It styles its elements with styled-components, which writes <style> elements
at run time: under style-src 'self' it stops at "Something went wrong" (tried in Chromium),
so this page alone adds 'unsafe-inline' to style-src (scripts stay 'self' only: no inline
script, no eval); its search runs in a Web Worker made from a blob: URL (worker-src blob:).
"""

from flask import Blueprint, render_template

from portal.headers import policy

bp = Blueprint("api_reference", __name__)

CSP = policy({"style-src": ("'unsafe-inline'",), "worker-src": ("'self'", "blob:")})


@bp.get("/api/v1/docs")
def docs():
    response = render_template("api_v1/docs.html")
    return response, 200, {"Content-Security-Policy": CSP}
