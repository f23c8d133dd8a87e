"""The PostgreSQL backend at its edges: start-up errors that say what to fix, and a database
that goes away while the catcher runs (451 and 503 meanwhile, recovery by itself after)."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import REPO, make_server, wait_until
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.server import Server
from mailpit_py.store.records import StoreError
from pgserver import APP_PASSWORD, APP_USER, PgServer, free_port


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def send(mp: Server, subject: str) -> tuple[int, str]:
    """One message over SMTP: the DATA reply (code, text)."""
    with smtplib.SMTP(*mp.smtp_address, timeout=60) as client:
        client.ehlo()
        client.mail("ann@example.com")
        client.rcpt("bob@example.org")
        code, reply = client.data(
            f"From: ann@example.com\r\nTo: bob@example.org\r\nSubject: {subject}\r\n\r\nHi.\r\n"
        )
    return code, reply.decode()


@pytest.fixture
def pg_catcher(pg_url: str) -> Iterator[Server]:
    with make_server(database=pg_url) as mp:
        yield mp


def test_a_database_that_goes_away_answers_451_and_503_then_recovers(
    pg_catcher: Server, pg_server: PgServer
) -> None:
    mp = pg_catcher
    acknowledged = []
    for n in range(3):
        code, reply = send(mp, f"before {n}")
        assert code == 250, reply
        acknowledged.append(reply.rsplit(" ", 1)[1])
    with pg_server.down("fast"):
        code, reply = send(mp, "while down")
        assert code == 451 and reply.startswith("4.3.0"), reply
        status, text = get(mp.http_url + "api/v1/messages")
        assert status == 503 and "database is unavailable" in text and "PostgreSQL" in text
        status, text = get(mp.http_url + "readyz")
        assert status == 503
    # Back: the pools reconnect by themselves, and the writer never died.
    ok = wait_until(lambda: send(mp, "after")[0] == 250, timeout=60, what="a delivery after")
    assert ok
    status, body = get(mp.http_url + "api/v1/messages")
    assert status == 200
    listed = json.loads(body)
    subjects = {m["Subject"] for m in listed["messages"]}
    assert {m["ID"] for m in listed["messages"]} >= set(acknowledged)
    assert "while down" not in subjects and "after" in subjects
    assert wait_until(lambda: get(mp.http_url + "readyz")[0] == 200, timeout=30, what="ready")


def test_wrong_url_unreachable_server_and_bad_login_say_what_to_fix(
    pg_server: PgServer, pg_url: str
) -> None:
    port = pg_server.port
    cases = {
        f"postgresql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{free_port()}/x": (
            "cannot reach PostgreSQL at 127.0.0.1:",
            "check that the server runs",
        ),
        f"postgresql://{APP_USER}:wrong-password@127.0.0.1:{port}/postgres": (
            f"refused the login of user '{APP_USER}'",
            "check the user name and password",
        ),
        f"postgres://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{port}/no_such_db": (
            "has no database 'no_such_db'",
            "createdb no_such_db",
        ),
        "postgresql://host:notaport/db": ("is not a PostgreSQL URL", "postgresql://user:"),
        "mysql://root@localhost/mail": ("mysql:// is not a database", "SQLite file path"),
    }
    for url, (what, fix) in cases.items():
        with pytest.raises(StoreError) as caught:
            Mailbox(Config(database=url)).close()
        message = str(caught.value)
        assert what in message and fix in message, message
        assert "wrong-password" not in message and APP_PASSWORD not in message


def run_cli(
    *args: str, env: dict[str, str] | None = None, code: str = ""
) -> subprocess.CompletedProcess[str]:
    prelude = code or "pass"
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"{prelude}\nfrom mailpit_py.cli import main\nraise SystemExit(main())",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=dict(os.environ, **(env or {})),
    )


def test_the_cli_names_the_problem_and_mp_database_selects_postgres(pg_server: PgServer) -> None:
    url = f"postgresql://{APP_USER}:wrong-password@127.0.0.1:{pg_server.port}/postgres"
    proc = run_cli("--smtp", "127.0.0.1:0", "--listen", "127.0.0.1:0", env={"MP_DATABASE": url})
    assert proc.returncode == 2
    assert "mailpit-py: error: PostgreSQL at 127.0.0.1" in proc.stderr
    assert "check the user name and password in --database (MP_DATABASE)" in proc.stderr
    assert "wrong-password" not in proc.stderr


def test_without_psycopg_a_postgres_url_says_what_to_install() -> None:
    proc = run_cli(
        "--smtp",
        "127.0.0.1:0",
        "--listen",
        "127.0.0.1:0",
        "--database",
        "postgresql://u:secret@127.0.0.1:1/db",
        # as if psycopg were not installed: its import fails
        code="import sys; sys.modules['psycopg'] = None; sys.modules['psycopg_pool'] = None",
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'mailpit-py[postgres]'" in proc.stderr
    assert "secret" not in proc.stderr


def test_the_api_shows_the_database_url_without_its_password(pg_catcher: Server) -> None:
    status, body = get(pg_catcher.http_url + "api/v1/info")
    assert status == 200
    shown = json.loads(body)["Database"]
    assert shown.startswith(f"postgresql://{APP_USER}:***@127.0.0.1:")
    assert APP_PASSWORD not in body


def test_an_older_schema_is_upgraded_step_by_step_keeping_its_messages(pg_url: str) -> None:
    import psycopg

    from mailpit_py.store.postgres.schema import MIGRATIONS, schema_version

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(MIGRATIONS[0].encode())  # a database as version 1 left it, one message
        conn.execute("CREATE TABLE mailpit_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO mailpit_schema VALUES (1)")
        conn.execute(
            "INSERT INTO messages (uid, created, size, message_id, subject, from_json, to_json, "
            "cc_json, bcc_json, reply_to_json, snippet, attachments) VALUES ('old1', 1.0, 10, "
            "'m@x', 'from version 1', '[]', '[]', '[]', '[]', '[]', '', 0)"
        )
    mb = Mailbox(Config(database=pg_url))
    try:
        assert mb.counts() == (1, 1)
        old = mb.summary("old1")
        assert old["Subject"] == "from version 1" and old["Refused"] is False
        assert mb.search("is:refused")[1] == 0
    finally:
        mb.close()
    with psycopg.connect(pg_url) as conn:
        assert schema_version(conn) == len(MIGRATIONS) > 1


def test_two_instances_prune_each_message_once(pg_url: str) -> None:
    import threading

    from mailpit_py.store.postgres.backend import PgStore

    first = Mailbox(Config(database=pg_url, max_messages=0))
    other = PgStore(pg_url)
    gate, started = threading.Event(), threading.Event()
    try:
        for n in range(6):
            first.deliver(
                Envelope("ann@example.com", ("bob@example.org",)),
                f"From: ann@example.com\r\nSubject: m{n}\r\n\r\nHi.\r\n".encode(),
            ).result(30)

        def prune_and_hold(s: Any) -> list[str]:
            pruned = s.prune(2, None)
            started.set()
            gate.wait(30)  # its deletions stay locked, uncommitted, meanwhile
            return pruned

        held = first.store.submit(prune_and_hold)
        assert started.wait(30)
        # The other instance's retention, meanwhile, skips what the first is deleting.
        assert other.write(lambda s: s.prune(2, None), timeout=30) == []
        gate.set()
        assert len(held.result(30)) == 4
        assert first.counts() == (2, 2)
    finally:
        gate.set()
        other.close()
        first.close()


def test_two_instances_take_each_due_outbox_item_once(pg_url: str) -> None:
    from mailpit_py.store.postgres.backend import PgStore
    from mailpit_py.store.postgres.outbox import CLAIM_LEASE

    first, other = PgStore(pg_url), PgStore(pg_url)
    try:
        for n in range(3):
            first.write(lambda s, n=n: s.outbox_add(f"m{n}", "relay", "a@x", ["b@y"], b"r", 1.0))
        mine = [r["id"] for r in first.outbox_due(5.0, limit=2)]
        theirs = [r["id"] for r in other.outbox_due(5.0)]
        assert len(mine) == 2 and len(theirs) == 1 and not set(mine) & set(theirs)
        assert first.outbox_due(5.0) == [] == other.outbox_due(5.0)  # all claimed
        # A claim not followed up runs out (the lease outlasts one relay attempt's longest wait).
        assert other.outbox_due(5.0 + CLAIM_LEASE - 1) == []
        assert len(other.outbox_due(5.0 + CLAIM_LEASE + 1)) == 3
    finally:
        other.close()
        first.close()


def test_the_message_id_lookup_goes_through_its_index(pg_url: str) -> None:
    import psycopg

    Mailbox(Config(database=pg_url)).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # (an empty table: the plan, not its cost)
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT uid FROM messages WHERE message_id = 'x@y' LIMIT 1"
            ).fetchall()
        )
    assert "messages_message_id" in plan


def test_an_instance_draws_its_ids_only_after_the_others_commit(pg_url: str) -> None:
    """Ids are IMAP UIDs: one drawn while a lower one is still uncommitted elsewhere would let
    a client see the higher first, and never look back for the lower."""
    import threading

    import psycopg

    first = Mailbox(Config(database=pg_url, max_messages=0))
    other = Mailbox(Config(database=pg_url, max_messages=0))
    gate, started = threading.Event(), threading.Event()
    env = Envelope("ann@example.com", ("bob@example.org",))
    try:
        first.deliver(env, b"Subject: warm\r\n\r\nx\r\n").result(30)

        def hold(s: Any) -> None:
            started.set()
            gate.wait(30)  # the first instance's transaction stays open meanwhile

        first.store.submit(lambda s: (s.insert_message(_record(env, "held")), hold(s)))
        assert started.wait(30)
        waiting = other.deliver(env, b"Subject: later\r\n\r\ny\r\n")

        def other_waits() -> bool:
            with psycopg.connect(pg_url) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                ).fetchone()
            return bool(row and row[0])

        wait_until(other_waits, what="the other instance to wait for the lock")
        with psycopg.connect(pg_url) as conn:
            drawn = conn.execute("SELECT last_value FROM messages_id_seq").fetchone()
        # None for the other yet (the held message's, 2, is written with its batch: the
        # sequence stays at 1 or moves to 2, never past)
        assert drawn is not None and drawn[0] <= 2
        gate.set()
        later = waiting.result(30)
        ids = {e.uid: e.imap_uid for e in other.index()}
        assert ids[later] == 3
    finally:
        gate.set()
        other.close()
        first.close()


def _record(env: Envelope, subject: str) -> Any:
    from mailpit_py.mailbox.record import build_record
    from mailpit_py.parse.message import parse_message

    raw = f"Subject: {subject}\r\n\r\nheld\r\n".encode()
    return build_record(
        subject, parse_message(raw, env), raw, created=1.0, username="", session_uid="",
        transcript=(), envelope=env,
    )  # fmt: skip
