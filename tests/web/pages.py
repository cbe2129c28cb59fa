"""Helpers for reading the pages the test client gets back."""

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

from markupsafe import escape


def shown(message: str) -> str:
    """A message as the page's HTML has it (autoescaped: ' is &#39;)."""
    return str(escape(message))


NOT_FOUND = shown("There is nothing here, or you don't have access.")


def body(response) -> str:
    return response.get_data(as_text=True)


def text(html: str) -> str:
    """The words of a page, tags dropped and whitespace collapsed (still HTML-escaped)."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def assert_full_page(response, nav: bool = True) -> str:
    """The whole page: the document, the top bar and, on account pages, the main nav."""
    html = body(response)
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert "<html" in html
    assert '<header class="topbar">' in html
    assert ('<nav class="mainnav"' in html) is nav
    assert "HX-Request" in response.vary
    return html


def assert_fragment(response, root: str) -> str:
    """Just one block: starts with the block's root element, no document around it."""
    html = body(response)
    assert "<html" not in html
    assert "<header" not in html
    assert html.strip().startswith(root), html[:200]
    tag = root[1:].split()[0].rstrip(">")
    assert html.strip().endswith(f"</{tag}>")
    assert "HX-Request" in response.vary
    return html


def login_location(response) -> tuple[str, str | None]:
    """(path, next) of a redirect to the sign-in page, from Location or HX-Redirect."""
    target = response.headers.get("HX-Redirect") or response.headers["Location"]
    parts = urlsplit(target)
    return parts.path, parse_qs(parts.query).get("next", [None])[0]


@dataclass
class Row:
    cells: list[str] = field(default_factory=list)
    hrefs: list[str] = field(default_factory=list)


class _Rows(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows: list[Row] = []
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self.rows.append(Row())
        elif self._in_body and tag == "td":
            self._cell = []
        elif self._in_body and tag == "a" and self.rows:
            self.rows[-1].hrefs.append(dict(attrs).get("href", ""))

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].cells.append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table_rows(html: str) -> list[Row]:
    """The rows of every table body on the page, each as its cells' text and its links."""
    parser = _Rows()
    parser.feed(html)
    return parser.rows


def pager_links(html: str) -> dict[str, str]:
    """{"prev": href, "next": href} of the pager's links that are present."""
    links = {}

    class _Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "a" and attrs.get("rel") in ("prev", "next"):
                links[attrs["rel"]] = attrs["href"]

    _Links().feed(html)
    return links


def query(href: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()}
