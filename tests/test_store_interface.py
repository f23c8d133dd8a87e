"""The store's interface: complete for what the layers above use, documented, implemented, and
kept alike by both backends: every contract test here runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store.interface import StoreBackend
from mailpit_py.store.open import open_store
from mailpit_py.store.postgres.backend import PgStore
from mailpit_py.store.records import StoreError
from mailpit_py.store.sqlite import Store

PACKAGE = Path(__file__).resolve().parent.parent / "mailpit_py"


def interface_members() -> dict[str, object]:
    return {
        name: value
        for name, value in vars(StoreBackend).items()
        if not name.startswith("_") and callable(value)
    }


def store_calls_above_the_store() -> set[str]:
    """Every `<x>.store.NAME` and every method a write job calls on its store argument,
    outside store/: what a backend must provide."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "store":
            continue
        tree = ast.parse(path.read_text())
        job_args: set[str] = set()
        for node in ast.walk(tree):
            # `def job(store: StoreBackend)` and `lambda s: s.set_read(...)` given to the writer
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for arg in node.args.args:
                    if isinstance(arg.annotation, ast.Name) and arg.annotation.id in (
                        "StoreBackend",
                        "Store",
                    ):
                        job_args.add(arg.arg)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                target = node.func.value
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr == "store"
                    and node.func.attr in ("write", "submit", "submit_then")
                ):
                    for job in node.args[:1]:
                        if isinstance(job, ast.Lambda):
                            job_args |= {a.arg for a in job.args.args}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            target = node.value
            on_store = isinstance(target, ast.Attribute) and target.attr == "store"
            on_job_arg = isinstance(target, ast.Name) and target.id in job_args
            if on_store or on_job_arg:
                names.add(node.attr)
    return names


def test_the_interface_names_every_store_operation_the_layers_above_use() -> None:
    used = store_calls_above_the_store()
    assert {"submit_then", "insert_message", "summary", "size_bytes", "outbox_add"} <= used
    members = set(interface_members()) | {"on_batch"}
    assert used - members == set(), "used above the store but not in store/interface.py"


def test_every_operation_of_the_interface_says_what_it_promises() -> None:
    undocumented = [name for name, fn in interface_members().items() if not inspect.getdoc(fn)]
    assert undocumented == []
    assert "commit" in (inspect.getdoc(StoreBackend.submit) or "")


@pytest.mark.parametrize("backend", [Store, PgStore], ids=["sqlite", "postgresql"])
def test_each_backend_implements_every_operation_with_the_same_parameters(backend: type) -> None:
    for name, fn in interface_members().items():
        mine = getattr(backend, name, None)
        assert mine is not None, f"{backend.__name__} has no {name}"
        want = list(inspect.signature(fn).parameters.values())  # type: ignore[arg-type]
        got = list(inspect.signature(mine).parameters.values())
        assert [(p.name, p.kind, p.default) for p in got] == [
            (p.name, p.kind, p.default) for p in want
        ], name


def test_no_sql_above_the_store() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "store":
            continue
        text = path.read_text()
        if "import sqlite3" in text or ".execute(" in text or "executemany(" in text:
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_the_mailbox_works_through_the_interface_alone(database: str) -> None:
    """A mailbox on a store reduced to the interface's operations delivers, lists, searches,
    tags and deletes: it needs nothing the interface does not promise."""
    allowed = set(interface_members()) | {"on_batch"}

    class OnlyTheInterface:
        def __init__(self, inner: StoreBackend) -> None:
            object.__setattr__(self, "_inner", inner)

        def __getattr__(self, name: str) -> object:
            assert name in allowed, f"the mailbox used {name}, which is not in the interface"
            value = getattr(self._inner, name)
            if name in ("submit", "submit_then", "write"):
                # the job sees the narrowed store too
                return lambda job, *a, **k: value(lambda _s: job(self), *a, **k)
            return value

        def __setattr__(self, name: str, value: object) -> None:
            assert name in allowed
            setattr(self._inner, name, value)

    mb = Mailbox(Config(database=database))
    try:
        mb.store = OnlyTheInterface(mb.store)  # type: ignore[assignment]
        raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: narrow\r\n\r\nHi.\r\n"
        uid = mb.deliver(Envelope("a@example.com", ("b@example.com",)), raw).result(10)
        assert mb.search("narrow")[1:] == (1, 1)
        assert mb.get(uid, mark_read=True).summary["Subject"] == "narrow"
        assert mb.counts() == (1, 0)
        mb.set_tags([uid], ["x"])
        assert mb.tags() == ["x"]
        mb.delete([uid])
        assert mb.counts() == (0, 0)
    finally:
        mb.close()


def _make_newer(database: str) -> None:
    """Mark `database` as written by a mailpit_py newer than this one."""
    if database.startswith("postgresql://"):
        import psycopg

        from mailpit_py.store.postgres.schema import MIGRATIONS as PG_MIGRATIONS

        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("CREATE TABLE mailpit_schema (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO mailpit_schema VALUES (%s)", (len(PG_MIGRATIONS) + 1,))
        return
    import sqlite3

    from mailpit_py.store.schema import MIGRATIONS

    conn = sqlite3.connect(database)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()


def test_a_newer_schema_is_refused_with_a_store_error(database: str) -> None:
    _make_newer(database)
    with pytest.raises(StoreError, match="newer than this mailpit_py knows") as caught:
        open_store(database).close()
    assert "upgrade mailpit_py or use another" in str(caught.value)
