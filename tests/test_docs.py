"""The README keeps up with the code: every setting, flag and variable is documented."""

from __future__ import annotations

import re

from helpers import REPO
from mailpit_py.cli import OPTIONS
from mailpit_py.config import field_names

README = (REPO / "README.md").read_text()


def test_readme_starts_with_the_two_command_quick_start() -> None:
    head = README[:2500]
    assert "make run" in head
    assert "make test" in head


def test_every_config_field_is_in_the_readme() -> None:
    documented = set(re.findall(r"`([a-z][a-z0-9_]*)`", README))
    missing = [name for name in field_names() if name not in documented]
    assert not missing, f"README does not document Config fields {missing}"


def test_every_flag_and_variable_is_in_the_options_table() -> None:
    rows = [line for line in README.splitlines() if line.startswith("|")]
    for opt in OPTIONS:
        row = next((r for r in rows if f"`{opt.flags[-1]}" in r), None)
        assert row is not None, f"{opt.flags[-1]} has no row in the README options table"
        assert f"`{opt.env}`" in row, f"{opt.flags[-1]} row lacks {opt.env}"
        assert f"`{opt.field}`" in row, f"{opt.flags[-1]} row lacks the field {opt.field}"


def test_ci_script_runs_make_test() -> None:
    assert "make test" in (REPO / ".ci" / "run").read_text()
