"""The layering rules of DESIGN.md, checked on the source: imports point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mailpit_py"

FORBIDDEN = {
    "parse": {"flask", "flask_sock", "aiosmtpd", "mailpit_py.webapp", "sqlite3"},
    "store": {"flask", "flask_sock", "aiosmtpd", "mailpit_py.webapp", "mailpit_py.smtp"},
    "models": {"flask", "flask_sock", "aiosmtpd", "mailpit_py.webapp", "sqlite3"},
    "mailbox": {"flask", "flask_sock", "aiosmtpd", "mailpit_py.webapp", "mailpit_py.smtp"},
    "events": {"flask", "flask_sock", "aiosmtpd", "mailpit_py.webapp"},
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upper_ones(module: str) -> None:
    imports = imported_modules(PACKAGE / f"{module}.py")
    bad = {
        name
        for name in imports
        for banned in FORBIDDEN[module]
        if name == banned or name.startswith(banned + ".")
    }
    assert not bad, f"{module}.py imports {sorted(bad)}"


def test_every_module_has_a_docstring() -> None:
    for path in PACKAGE.rglob("*.py"):
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path.name} has no docstring"
