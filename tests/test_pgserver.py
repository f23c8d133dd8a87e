"""The PostgreSQL fixture: a real server, a fresh database per test, stop/start and cleanup."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import pgserver
from helpers import REPO, wait_until
from pgserver import APP_USER, PgServer, PgServerError


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def postmaster_pid(data: Path) -> int:
    return int((data / "postmaster.pid").read_text().splitlines()[0])


def test_pg_url_is_an_empty_database_the_app_role_owns_with_pg_trgm_available(
    pg_url: str, pg_server: PgServer
) -> None:
    assert pg_url.startswith(f"postgresql://{APP_USER}:")
    assert f"@127.0.0.1:{pg_server.port}/t_" in pg_url
    db = pg_url.rsplit("/", 1)[1]
    app = {"db": db, "user": APP_USER}
    assert pg_server.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", **app) == "0"
    # The app role is no superuser, yet owns the database: it may create the trusted extension.
    assert pg_server.sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", **app) == "f"
    pg_server.sql("CREATE EXTENSION IF NOT EXISTS pg_trgm", **app)
    pg_server.sql("CREATE TABLE m (id serial PRIMARY KEY, subject text)", **app)
    pg_server.sql("INSERT INTO m (subject) VALUES ('hello world'), ('other')", **app)
    got = pg_server.sql("SELECT subject FROM m WHERE subject % 'hello wrld'", **app)
    assert got == "hello world"


def test_each_database_is_fresh_and_dropped_after(pg_server: PgServer) -> None:
    first = pg_server.create_database()
    pg_server.sql("CREATE TABLE only_here (x int)", db=first, user=APP_USER)
    second = pg_server.create_database()
    assert first != second
    tables = "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'"
    assert pg_server.sql(tables, db=second) == "0"
    for name in (first, second):
        pg_server.drop_database(name)
    listed = pg_server.sql("SELECT datname FROM pg_database").split()
    assert first not in listed and second not in listed


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_stop_and_start_within_a_test_keep_the_port_and_committed_rows(
    pg_url: str, pg_server: PgServer, mode: str
) -> None:
    db = pg_url.rsplit("/", 1)[1]
    pg_server.sql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)", db=db)
    port = pg_server.port
    with pg_server.down(mode):
        assert not pg_server.is_running()
        with pytest.raises(PgServerError, match="psql failed"):
            pg_server.sql("SELECT 1")
    assert pg_server.port == port
    # A committed row survives even a crash (immediate: no checkpoint) with fsync off: the
    # kernel holds what postgres wrote, and synchronous_commit stays on.
    assert pg_server.sql("SELECT x FROM kept", db=db) == "42"


def test_a_stopped_server_is_started_again_for_the_next_database(pg_server: PgServer) -> None:
    pg_server.kill()
    name = pg_server.create_database()
    assert pg_server.is_running()
    pg_server.drop_database(name)


SCRIPT = f"""
import sys
sys.path.insert(0, {str(REPO / "tests")!r})
from pgserver import start_server
server = start_server()
print(server.data, flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_no_postgres_is_left_running_when_the_test_process_ends_or_is_killed(
    pg_server: PgServer, how: str
) -> None:
    # pg_server: the binaries are there (else this skips); the cluster is the child's own.
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout and proc.stdin
    data = Path(proc.stdout.readline().strip())
    pid = postmaster_pid(data)
    assert alive(pid)
    if how == "exit":
        proc.stdin.close()  # the script returns: atexit closes the server
    else:
        proc.send_signal(signal.SIGKILL)  # nothing runs in it: the watchdog does the work
    proc.wait(30)
    wait_until(lambda: not alive(pid), timeout=30, what="the postmaster to stop")
    wait_until(lambda: not data.parent.exists(), timeout=30, what="the cluster dir to go")


@pytest.mark.parametrize("ci", ["true", ""])
def test_missing_binaries_skip_locally_and_fail_under_ci(
    ci: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgserver, "PG_LIB", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected) as info:
        pgserver.need_bin_dir()
    message = str(info.value)
    assert "PostgreSQL server is not installed" in message
    assert "sudo apt-get install -y postgresql" in message
    assert ("must run in CI" in message) == bool(ci)


def test_the_test_cluster_skips_fsync_but_keeps_synchronous_commit(pg_server: PgServer) -> None:
    assert pg_server.sql("SHOW fsync") == "off"
    assert pg_server.sql("SHOW synchronous_commit") == "on"


def test_a_durable_cluster_can_be_had_for_a_test_that_needs_fsync() -> None:
    durable = pgserver.start_server(fsync=True)
    try:
        assert durable.sql("SHOW fsync") == "on"
        assert durable.sql("SHOW full_page_writes") == "on"
    finally:
        durable.close()
    assert not durable.root.exists()


def test_a_port_taken_before_the_first_start_is_given_up_for_another(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process takes the port between its choice and postgres binding it.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        monkeypatch.setattr(pgserver, "free_port", lambda: busy)
        server = PgServer(pg_server.bin_dir)
        monkeypatch.undo()
        try:
            server.init()
            assert server.port != busy
            assert server.sql("SELECT 1") == "1"
        finally:
            server.close()
