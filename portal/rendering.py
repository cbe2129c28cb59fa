"""One way to answer a page request: the whole page, or one block of it for htmx."""

import json
from typing import Any
from urllib.parse import urlsplit

from flask import make_response, redirect, render_template, request
from jinja2_fragments.flask import render_block


def is_partial() -> bool:
    """An htmx request that swaps part of a page.

    Boosted requests and history restores (the back button after a cache miss) want the
    whole page.
    """
    hx = request.htmx
    return bool(hx) and not hx.boosted and not hx.history_restore_request


def render(template: str, block: str | None = None, status: int = 200,
           trigger: dict[str, Any] | None = None, **context):
    if block and is_partial():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    response = make_response(body, status)
    response.vary.add("HX-Request")
    if trigger:
        response.headers["HX-Trigger"] = json.dumps(trigger)
    return response


# Where a refused htmx request's message goes: the page's message region (base.html), or
# the dialog slot when the request was a dialog's (opening one, or its form).
MESSAGES, DIALOG_SLOT = "messages", "dialog-slot"


def refused(status: int, title: str, message: str):
    """A refusal (404, 403, 422 unhandled, 500...) as a message. A full page gets the error
    page; a partial request never swaps a page into its section: a dialog's request gets a
    dialog saying so, any other the message in the page's message region (HX-Retarget and
    HX-Reswap override the section it targeted), the section left as it was."""
    if not is_partial():
        return render("errors/error.html", status=status, title=title, message=message)
    if request.htmx.target == DIALOG_SLOT:
        return render("errors/error.html", "refusal_dialog", status=status, title=title,
                      message=message)
    response = render("errors/error.html", "refusal_message", status=status, title=title,
                      message=message)
    response.headers["HX-Retarget"] = f"#{MESSAGES}"
    response.headers["HX-Reswap"] = "innerHTML"
    return response


def see_other(location: str):
    """After a successful POST: 303 for full pages, HX-Redirect for partial requests."""
    if is_partial():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = location
        return response
    return redirect(location, code=303)


def safe_path(target: str | None) -> str | None:
    """A same-site path to go back to, or None: never redirect to another host."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return None
    return target


def pdf_response(html: str, filename: str):
    """HTML rendered as a PDF, shown inline under `filename`."""
    from portal import pdf  # it reads the models and services: imported when first used

    response = make_response(pdf.render(html))
    response.headers["Content-Type"] = "application/pdf"
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return response
