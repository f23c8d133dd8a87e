"""The store backends the contract tests run on: a fixture giving a new database of each."""

from __future__ import annotations

from pathlib import Path

import pytest

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new empty database of each backend: a SQLite file, or a database on the test suite's
    PostgreSQL server (tests/pgserver.py)."""
    if request.param == "sqlite":
        return str(tmp_path / "contract.db")
    return str(request.getfixturevalue("pg_url"))
