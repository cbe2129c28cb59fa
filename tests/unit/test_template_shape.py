"""The templates' shape (issue 13), checked over every file of portal/templates and
billing_links/templates: what one helper writes is never written out by hand again.

- the hidden CSRF field: {{ csrf_input() }}
- an enum compared by its value, or a label looked up by it: the model's predicate
  (account.is_billing_paused, charge.is_succeeded, method.is_primary, ...)
- a confirmation dialog and its "open unless partial" rule: macros/dialog.html, is_partial()
- a payment method as "brand ending last4": PaymentMethod.short_label
- a rule's number (60/90/14 days, $25, the last 30 days, a plan's fee): rules.* or a model
  property (Account.plan_fee_cents)
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIRS = (ROOT / "portal" / "templates", ROOT / "billing_links" / "templates")
DIALOG_MACRO = ROOT / "portal" / "templates" / "macros" / "dialog.html"

RULES = {
    "csrf field written out (use {{ csrf_input() }})":
        re.compile(r"""name=["']csrf_token["']"""),
    "enum compared by .value (use the model's predicate)":
        re.compile(r"\.value\s*(==|!=|\bnot\s+in\b|\bin\b)|(==|!=)\s*[\w.]+\.value\b"),
    "enum compared to its string (use the model's predicate)":
        re.compile(r"\.(status|role|kind|billing_mode|frequency|purpose)\s*(==|!=)\s*['\"]"),
    "label looked up by an enum's .value (use the model's predicates)":
        re.compile(r"\}\[[\w.]+\.value\]"),
    "dialog written out (use macros/dialog.html)":
        re.compile(r"<dialog\b"),
    "request.htmx read in a template (use is_partial())":
        re.compile(r"request\.htmx"),
    "'brand ending last4' written out (use PaymentMethod.short_label)":
        re.compile(r"brand\s*(\}\}|~)\s*(\"|')?\s*ending"),
    "plan fee looked up in a template (use Account.plan_fee_cents)":
        re.compile(r"PLAN_FEES"),
    "a rule's number written out (use rules.*)":
        re.compile(r"\b(7|14|30|60|90|120) days\b|\$25\b|'25\.00'"),
}


def _templates():
    for folder in TEMPLATE_DIRS:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                yield path


def test_the_templates_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in _templates()}
    assert "portal/templates/base.html" in names
    assert "billing_links/templates/billing_links/pay.html" in names
    assert len(names) > 50


@pytest.mark.parametrize("rule", list(RULES))
def test_no_template_writes_out_what_a_helper_writes(rule):
    pattern = RULES[rule]
    found = []
    for path in _templates():
        if path == DIALOG_MACRO and rule.startswith("dialog"):
            continue  # the one place a dialog is written
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == [], f"{rule}:\n" + "\n".join(found)


@pytest.mark.parametrize("line", [
    '<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">',
    "{% if account.status.value == 'billing_paused' %}",
    "{% if 'primary' == m.role.value %}",
    "{% if current_filter.value != 'active' %}",
    "{% if c.status.value in ('failed', 'pending') %}",
    '{% if refund.status == "succeeded" %}',
    "{{ {'agency': 'Agency', 'sub': 'Sub-account'}[a.kind.value] }}",
    '<dialog class="confirm" open>',
    "{% if not request.htmx or request.htmx.boosted %}open{% endif %}",
    "{{ m.brand }} ending {{ m.last4 }}",
    '"Remove " ~ method.brand ~ " ending " ~ method.last4',
    "{{ rules.PLAN_FEES.get(account.plan, 0)|money }}",
    "kept for 90 days;",
    "minimum $25)",
])
def test_the_rules_catch_what_they_are_for(line):
    assert any(pattern.search(line) for pattern in RULES.values())


@pytest.mark.parametrize("line", [
    "{{ csrf_input() }}",
    "{% if account.is_billing_paused %}",
    "{{ m.role.value|capitalize }}",
    '<option value="{{ value.value }}">',
    "{{ rules.DATA_RETENTION.days }} days",
    "within 5 to 10 business days.",
    "{{ method.short_label }}",
])
def test_the_rules_let_the_helpers_through(line):
    assert not any(pattern.search(line) for pattern in RULES.values())
