"""The services and the mail package import no Flask: create_app hands them what they need
(the emails' renderer, the billing links' hooks), where a reader of create_app sees it."""

import ast
from pathlib import Path

import pytest

from portal import create_app
from portal.mail import compose, notices
from portal.models import ChargePurpose
from portal.services import charges, lifecycle

ROOT = Path(__file__).resolve().parents[2]
FLASK_FREE = sorted([*(ROOT / "portal" / "services").rglob("*.py"),
                     *(ROOT / "portal" / "mail").rglob("*.py")])


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_flask_free_modules_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in FLASK_FREE}
    assert {"portal/services/charges.py", "portal/services/fees.py",
            "portal/mail/notices.py", "portal/mail/compose.py"} <= names


def _flask_imports(path: Path) -> set[str]:
    return {name for name in _imported_modules(path)
            if name.split(".")[0] == "flask" or name.startswith("flask_")}


@pytest.mark.parametrize("path", FLASK_FREE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_imports_nothing_from_flask(path):
    flask = _flask_imports(path)
    assert not flask, f"{path.relative_to(ROOT).as_posix()} imports {sorted(flask)}"


def test_notices_render_with_the_renderer_they_are_given(monkeypatch):
    seen = []

    class Plain:
        def template(self, name, **context):
            seen.append(name)
            return f"{name}: {context['account'].name}"

        def external_url(self, endpoint, **values):
            return f"https://portal.test/{endpoint}"

    monkeypatch.setattr(compose, "_renderer", None)
    compose.use_renderer(Plain())
    assert compose.render("mail/receipt.txt", account=type("A", (), {"name": "Acme"})) == \
        "mail/receipt.txt: Acme"
    assert compose.external_url("auth.login") == "https://portal.test/auth.login"
    assert seen == ["mail/receipt.txt"]
    assert notices.compose is compose


def test_without_a_renderer_composing_says_so(monkeypatch):
    monkeypatch.setattr(compose, "_renderer", None)
    with pytest.raises(RuntimeError, match="create_app gives it one"):
        compose.render("mail/receipt.txt")


def test_create_app_wires_the_billing_links_once(tmp_path):
    config = {"TESTING": True, "SECRET_KEY": "test-secret",
              "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'wiring.sqlite3'}"}
    create_app(config)
    create_app(config)
    from billing_links import service

    assert charges.ON_SUCCESS[ChargePurpose.OPENING_BALANCE] is service._paid
    assert charges.ON_FAILURE[ChargePurpose.OPENING_BALANCE] is service._declined
    assert lifecycle.ON_CLOSE.count(service.revoke_for_closed) == 1
    assert compose._renderer is not None
