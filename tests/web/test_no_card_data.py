"""No card data reaches the portal (issue 16, design16 §7 D): card entry is the processor's
(its frame: the sandbox blueprint, /sandbox/v1, stands in for the processor's host), and the
portal's routes, pages and functions only ever see the processor's ids.

- every page the portal renders (every GET rule of the url_map, signed in as an agency's
  owner, and every template file) has no input shaped like card data: named card,
  card_number, cc*, pan, cvc, cvv, csc, security_code, exp_month, exp_year, routing or
  account_number, a `number` that isn't type=tel (a phone number), or autocomplete=cc-*;
- no view or service function outside portal/sandbox has a cvc/cvv/pan/card_number/
  account_number/routing parameter, or a `number` beside exp_*/cvc;
- POSTing those fields with Luhn-valid values to every POST rule (with a valid CSRF token,
  signed in) leaves them in no table, outbox row or log line.
The sandbox's own endpoints (sandbox.*) and portal/sandbox/ are the processor: excepted.
"""

import importlib
import inspect
import logging
import pkgutil
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import select

import billing_links
import portal
from portal.extensions import db
from tests.conftest import csrf_token
from tests.web.conftest import sign_in_as
from tests.web.link_world import build, configure, issue, token_of

ROOT = Path(portal.__file__).resolve().parent.parent
CARD_NAME = re.compile(r"^(card|card_?number|cc.*|pan|cvc|cvv|csc|security_code|exp_month|"
                       r"exp_year|routing(_number)?|account_number)$", re.I)
CARD_PARAM = re.compile(r"^(cvc|cvv|pan|card_number|account_number|routing(_number)?)$")
# Luhn-valid, and unlike anything else in the data (not a sandbox test card).
PAN, CVC, ROUTING, ACCOUNT = "4000056655665556", "7391", "011000015", "000987654321"
POSTED = {"number": PAN, "card_number": PAN, "card": PAN, "cc_number": PAN, "pan": PAN,
          "cvc": CVC, "cvv": CVC, "security_code": CVC, "exp_month": "12", "exp_year": "2031",
          "routing": ROUTING, "routing_number": ROUTING, "account_number": ACCOUNT}
SECRETS = (PAN, ROUTING, ACCOUNT, PAN[-8:])  # a card number's tail would do too


def is_processor(endpoint: str) -> bool:
    return endpoint.startswith("sandbox.") or endpoint == "static"


class Inputs(HTMLParser):
    """The form controls of a page: (tag, attributes)."""

    def __init__(self):
        super().__init__()
        self.found: list[dict] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("input", "select", "textarea"):
            self.found.append({"tag": tag, **{k: (v or "") for k, v in attrs}})


# A hidden `number` that is a phone number: Privacy's erase form carries the caller number
# it looked up (the lookup's own field is type=tel).
PHONE_NUMBER_FORMS = {"privacy/index.html"}


def card_shaped(html: str, template: str = "") -> list[str]:
    parser = Inputs()
    parser.feed(html)
    bad = []
    for field in parser.found:
        name, kind = field.get("name", ""), field.get("type", "text").lower()
        autocomplete = field.get("autocomplete", "").lower()
        if kind == "hidden" and name in ("csrf_token", "payment_method"):
            continue
        if kind == "hidden" and name == "number" and template in PHONE_NUMBER_FORMS:
            continue
        if (CARD_NAME.match(name) or (name == "number" and kind != "tel")
                or autocomplete.startswith("cc-")):
            bad.append(f"{field['tag']} name={name!r} type={kind!r} "
                       f"autocomplete={autocomplete!r}")
    return bad


@pytest.fixture
def w(app, session):
    configure(app)
    w = build(session)
    w.link = token_of(issue(session, w))
    return w


def _args(rule, w) -> dict:
    known = {"account_id": w.agency.id, "sub_id": w.bayside.id, "token": w.link,
             "kind": "card", "fmt": "csv", "filename": "portal.css", "intent": "pi_x"}
    args = {}
    for name in rule.arguments - set(rule.defaults or ()):
        items = getattr(rule._converters.get(name), "items", None)  # any(…): its first value
        args[name] = sorted(items)[0] if items else known.get(name, 1)
    return args


def _rules(app, method: str):
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if method in rule.methods and not is_processor(rule.endpoint):
            yield rule


def test_no_page_the_portal_renders_has_a_card_shaped_field(app, client, session, w):
    sign_in_as(client, w.avery)
    problems, pages = [], 0
    with app.test_request_context():
        from flask import url_for

        urls = [(r.endpoint, url_for(r.endpoint, **_args(r, w))) for r in _rules(app, "GET")]
    for endpoint, url in urls:
        for headers in ({}, {"HX-Request": "true"}):  # the page, and its dialog fragment
            response = client.get(url, headers=headers)
            if response.status_code != 200 or "html" not in response.content_type:
                response.close()  # a streamed CSV ends its generator (and its context) here
                continue
            pages += 1
            problems += [f"{endpoint} {url}: {p}" for p in card_shaped(
                response.get_data(as_text=True))]
    assert problems == []
    assert pages >= 40  # the walk reached the app's pages, not only its error pages


def test_no_template_outside_the_sandbox_has_a_card_shaped_field():
    problems = []
    templates = [p for base in (ROOT / "portal", Path(billing_links.__file__).parent)
                 for p in base.rglob("*.html") if "sandbox" not in p.parts]
    for path in templates:
        # Jinja expressions out of the way: only the markup's own names count.
        text = re.sub(r"{[{%#].*?[}%#]}", "", path.read_text(), flags=re.S)
        template = path.relative_to(path.parents[1]).as_posix()
        problems += [f"{path.relative_to(ROOT)}: {p}" for p in card_shaped(text, template)]
    assert len(templates) > 50
    assert problems == []


def _functions():
    """Every function and method defined in the portal's and the billing links' modules,
    except the processor's (portal/sandbox) and the gateway adapters' compatibility shims."""
    seen = set()
    for package in (portal, billing_links):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".sandbox" in info.name or info.name.startswith("portal.cli"):
                continue
            module = importlib.import_module(info.name)
            for _name, obj in inspect.getmembers(module):
                for fn in ([obj] if inspect.isfunction(obj) else
                           [m for _n, m in inspect.getmembers(obj, inspect.isfunction)]
                           if inspect.isclass(obj) else []):
                    if getattr(fn, "__module__", "") != info.name or fn in seen:
                        continue
                    seen.add(fn)
                    yield info.name, fn


def test_no_view_or_service_function_takes_card_data(app):
    problems = []
    for module, fn in _functions():
        try:
            params = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            continue
        names = set(params)
        if any(CARD_PARAM.match(p) for p in params) or (
                "number" in names and names & {"exp_month", "exp_year", "cvc"}):
            problems.append(f"{module}.{fn.__qualname__}{inspect.signature(fn)}")
    assert problems == []


def test_card_data_posted_to_every_route_is_kept_nowhere(app, client, session, w, caplog):
    caplog.set_level(logging.DEBUG)
    sign_in_as(client, w.avery)
    token = csrf_token(client, f"/accounts/{w.agency.id}/billing/")
    with app.test_request_context():
        from flask import url_for

        urls = [(r.endpoint, url_for(r.endpoint, **_args(r, w))) for r in _rules(app, "POST")]
    answered = 0
    for _endpoint, url in urls:
        for headers in ({}, {"HX-Request": "true"}):
            response = client.post(url, data={**POSTED, "csrf_token": token}, headers=headers)
            answered += response.status_code < 500
    assert answered == 2 * len(urls)  # no route fell over on them

    db.session.remove()
    found = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            if table.name.startswith("sandbox_"):
                continue  # the processor's own storage
            for row in conn.execute(select(table)):
                text = " ".join(str(v) for v in row)
                found += [f"{table.name}: {s}" for s in SECRETS if s in text]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    found += [f"log: {s}" for s in SECRETS if s in logged]
    assert found == []
