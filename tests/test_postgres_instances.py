"""Several instances on one PostgreSQL database: a message sent to one is listed by the other,
and the other's websocket clients hear of it (LISTEN/NOTIFY through the store)."""

from __future__ import annotations

import contextlib
import email
import json
import re
import signal
import smtplib
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from test_relay import relay_yaml
from test_webhook import Receiver
from upstream import UpstreamServer

from helpers import REPO, WsClient, make_server, wait_until
from mailpit_py.server import Server
from pgserver import PgServer


@pytest.fixture
def pair(pg_url: str) -> Iterator[tuple[Server, Server]]:
    with make_server(database=pg_url) as a, make_server(database=pg_url) as b:
        yield a, b


def api(mp: Server, path: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(mp.http_url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
        return json.loads(raw) if "json" in resp.headers.get("Content-Type", "") else raw


def next_frame(ws: Any, kind: str) -> dict[str, Any]:
    def frame() -> dict[str, Any] | None:
        got = json.loads(ws.receive(timeout=10) or "{}")
        return got if got.get("Type") == kind else None

    return wait_until(frame, timeout=20, what=f"a {kind} frame")


def test_a_message_sent_to_one_instance_reaches_the_others_api_and_websocket(
    pair: tuple[Server, Server],
) -> None:
    a, b = pair
    ws = WsClient.connect(b.http_url.replace("http://", "ws://") + "api/events")
    try:
        with smtplib.SMTP(*a.smtp_address, timeout=30) as client:
            client.sendmail(
                "ann@example.com",
                ["bob@example.org"],
                b"From: ann@example.com\r\nTo: bob@example.org\r\nSubject: via A\r\n\r\nHi.\r\n",
            )
        new = next_frame(ws, "new")
        assert new["Data"]["Subject"] == "via A"
        assert next_frame(ws, "stats")["Data"]["Total"] == 1  # B's counts follow A's delivery
        uid = new["Data"]["ID"]
        assert [m["ID"] for m in api(b, "api/v1/messages")["messages"]] == [uid]
        # A change made through B is heard by A's clients in turn.
        ws_a = WsClient.connect(a.http_url.replace("http://", "ws://") + "api/events")
        try:
            api(b, "api/v1/messages", "PUT", {"IDs": [uid], "Read": True})
            update = next_frame(ws_a, "update")
            assert update["Data"] == {"ID": uid, "Read": True}
        finally:
            ws_a.close()
    finally:
        ws.close()


# -- instances as processes of their own (one can be killed), under load and faults ---------


BANNER = re.compile(r"SMTP on 127\.0\.0\.1:(\d+), web UI and API on http://127\.0\.0\.1:(\d+)/")


class Instance:
    """`python -m mailpit_py` on the shared database, in a process of its own so that a test
    can SIGKILL it; its log goes to a file (a pipe nobody reads would fill and block it)."""

    def __init__(self, url: str, log: Path, *extra: str) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mailpit_py", "--smtp", "127.0.0.1:0", "--listen"]
                + ["127.0.0.1:0", "--database", url, *extra],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        found = wait_until(self._banner, timeout=60, what=f"the banner in {log}")
        self.smtp_port, self.http_port = int(found.group(1)), int(found.group(2))
        self.http_url = f"http://127.0.0.1:{self.http_port}/"
        self.ws_url = f"ws://127.0.0.1:{self.http_port}/api/events"

    def _banner(self) -> re.Match[str] | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the instance exited: {self.log.read_text(errors='replace')}")
        text = self.log.read_text(errors="replace")
        return BANNER.search(text)

    def listening_again(self) -> bool:
        """Its log says its LISTEN connection was lost and is back."""
        return "listening to the other instances again" in self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def processes(pg_url: str, tmp_path: Path) -> Iterator[tuple[Instance, Instance]]:
    """Two instances as processes on one fresh database (the first creates the schema), keeping
    every message (the default retention of 500 would prune the load tests' mail)."""
    a = Instance(pg_url, tmp_path / "a.log", "--max", "0")
    try:
        b = Instance(pg_url, tmp_path / "b.log", "--max", "0")
        try:
            yield a, b
        finally:
            b.close()
    finally:
        a.close()


def get_json(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=60) as resp:
        return json.loads(resp.read())


def listed_message_ids(inst: Instance) -> list[str]:
    """Every message's Message-ID as the instance's API lists it, paged."""
    ids: list[str] = []
    while True:
        page = get_json(inst.http_url, f"api/v1/messages?start={len(ids)}&limit=1000")
        ids += [m["MessageID"] for m in page["messages"]]
        if not page["messages"] or len(ids) >= page["messages_count"]:
            return ids


def mail(mid: str) -> bytes:
    return (
        f"From: load@example.com\r\nTo: sink@example.org\r\nSubject: {mid}\r\n"
        f"Message-ID: <{mid}>\r\n\r\nBody of {mid}.\r\n"
    ).encode()


class Acked:
    """The Message-IDs each instance answered 250 to (recorded by the clients)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by: dict[int, list[str]] = {}

    def add(self, port: int, mid: str) -> None:
        with self.lock:
            self.by.setdefault(port, []).append(mid)

    def of(self, port: int) -> list[str]:
        with self.lock:
            return list(self.by.get(port, ()))

    def all(self) -> list[str]:
        with self.lock:
            return [mid for mids in self.by.values() for mid in mids]


def sender(
    port: int, prefix: str, acked: Acked, stop: threading.Event, count: int | None = None
) -> None:
    """One client: messages over one session (a new one after an error) until `count` are
    acknowledged or `stop` is set; a message whose answer is not 250 is not recorded."""
    n = 0
    client: smtplib.SMTP | None = None
    while not stop.is_set() and (count is None or n < count):
        mid = f"{prefix}.{n}@load.test"
        try:
            if client is None:
                client = smtplib.SMTP("127.0.0.1", port, timeout=30)
            client.sendmail("load@example.com", ["sink@example.org"], mail(mid))
        except (OSError, smtplib.SMTPException):
            if client is not None:
                with contextlib.suppress(OSError, smtplib.SMTPException):
                    client.close()
            client = None
            if count is None:
                stop.wait(0.05)  # the instance is gone or its database is: try again soon
            n += 1  # this Message-ID may have been stored unacknowledged: never reused
            continue
        acked.add(port, mid)
        n += 1
    if client is not None:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client.quit()


class NewFrames:
    """A websocket client of one instance, recording the Message-ID of every `new` frame."""

    def __init__(self, url: str) -> None:
        self.ws = WsClient.connect(url)
        self.lock = threading.Lock()
        self.seen: list[str] = []
        self.broke = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                raw = self.ws.receive(timeout=60)
            except Exception:  # closed: by us, or by the server when the client fell behind
                self.broke = True
                return
            if raw is None:
                if not self.ws.connected:
                    self.broke = True
                    return
                continue
            frame = json.loads(raw)
            if frame.get("Type") == "new":
                with self.lock:
                    self.seen.append(frame["Data"]["MessageID"])

    def heard(self, count: int) -> bool:
        with self.lock:
            return len(set(self.seen)) >= count

    def ids(self) -> set[str]:
        with self.lock:
            return set(self.seen)

    def close(self) -> None:
        self.ws.close()


def test_sixteen_clients_of_200_messages_split_over_two_instances_are_all_listed_once(
    processes: tuple[Instance, Instance],
) -> None:
    a, b = processes
    acked, stop = Acked(), threading.Event()
    ports = [a.smtp_port, b.smtp_port]
    threads = [
        threading.Thread(target=sender, args=(ports[i % 2], f"c{i}", acked, stop, 200))
        for i in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    sent = acked.all()
    assert len(sent) == 16 * 200 and len(set(sent)) == 16 * 200
    assert len(acked.of(a.smtp_port)) == len(acked.of(b.smtp_port)) == 1600
    for inst in (a, b):
        listed = listed_message_ids(inst)
        assert len(listed) == len(set(listed)) == 3200, "a message lost or listed twice"
        assert set(listed) == set(sent)


def test_an_instance_killed_under_load_loses_nothing_it_or_the_other_acknowledged(
    processes: tuple[Instance, Instance],
) -> None:
    a, b = processes
    frames = NewFrames(b.ws_url)
    acked = Acked()
    stop_a, stop_b = threading.Event(), threading.Event()
    threads = [
        threading.Thread(target=sender, args=(inst.smtp_port, f"{name}{i}", acked, stop))
        for i in range(3)
        for inst, name, stop in ((a, "a", stop_a), (b, "b", stop_b))
    ]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(acked.of(a.smtp_port)) >= 150, timeout=120, what="A under load")
        a.kill()  # mid-stream: sessions cut, commits in flight, notifications unsent
        stop_a.set()
        after = len(acked.of(b.smtp_port))
        wait_until(
            lambda: len(acked.of(b.smtp_port)) >= after + 150, timeout=120, what="B carrying on"
        )
    finally:
        stop_a.set()
        stop_b.set()
        for t in threads:
            t.join(timeout=120)
    by_a, by_b = acked.of(a.smtp_port), acked.of(b.smtp_port)
    listed = listed_message_ids(b)
    assert len(listed) == len(set(listed)), "a message listed twice"
    assert set(by_a) <= set(listed), "a message the killed instance acknowledged is lost"
    assert set(by_b) <= set(listed), "a message the survivor acknowledged is lost"
    # Every message the survivor acknowledged reached its websocket clients as a `new` frame.
    wait_until(lambda: set(by_b) <= frames.ids(), timeout=60, what="B's new frames")
    assert not frames.broke
    frames.close()


def test_both_instances_recover_from_a_database_restart_by_themselves(
    processes: tuple[Instance, Instance], pg_server: PgServer
) -> None:
    a, b = processes
    frames_a, frames_b = NewFrames(a.ws_url), NewFrames(b.ws_url)
    acked = Acked()
    stop = threading.Event()
    threads = [
        threading.Thread(target=sender, args=(inst.smtp_port, f"{name}{i}", acked, stop))
        for i in range(2)
        for inst, name in ((a, "a"), (b, "b"))
    ]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(acked.all()) >= 40, timeout=60, what="mail before the restart")
        pg_server.stop("fast")
        pg_server.start()
        before = len(acked.all())
        wait_until(lambda: len(acked.all()) >= before + 40, timeout=120, what="mail accepted again")
        restarted = set(acked.all())
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    # Each instance's clients hear the other's new mail again: the LISTEN connection came back.
    for inst in (a, b):
        wait_until(inst.listening_again, timeout=60, what=f"{inst.log.name} listening again")
    final_a, final_b = set(acked.of(a.smtp_port)), set(acked.of(b.smtp_port))
    fresh_a = {"a0.probe@load.test"}
    fresh_b = {"b0.probe@load.test"}
    for inst, mid in ((a, "a0.probe@load.test"), (b, "b0.probe@load.test")):
        with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=30) as client:
            client.sendmail("load@example.com", ["sink@example.org"], mail(mid))
    wait_until(lambda: fresh_b <= frames_a.ids(), timeout=60, what="A hearing B's new mail")
    wait_until(lambda: fresh_a <= frames_b.ids(), timeout=60, what="B hearing A's new mail")
    for inst in (a, b):
        listed = listed_message_ids(inst)
        assert len(listed) == len(set(listed)), "a message listed twice"
        assert final_a | final_b | fresh_a | fresh_b <= set(listed), "an acknowledged one lost"
    assert restarted <= final_a | final_b
    frames_a.close()
    frames_b.close()


# -- what runs once per message: the checks, the webhook, relay on arrival -----------------


def idle(mp: Server) -> bool:
    """Nothing left in flight for this instance's checks, webhook and relay workers."""
    checks, hook = mp.checks, mp.webhook
    assert checks is not None and hook is not None and hook._sub is not None
    return (
        checks._queue.empty()
        and not checks._inflight
        and hook.pending == 0
        and hook._sub.queue.empty()
    )


def checks_done(mp: Server) -> float:
    """How many messages this instance's checks have run for (and saved)."""
    assert mp.mailbox is not None
    return mp.mailbox.telemetry.counter("message_checks").get(("done",), 0)


def test_checks_webhook_and_relay_run_once_per_message_across_two_instances(
    pg_url: str, tmp_path: Path
) -> None:
    n = 20
    zone = tmp_path / "zone.txt"
    zone.write_text("example.org TXT v=spf1 -all\n")
    hook = Receiver()
    with UpstreamServer() as upstream, contextlib.ExitStack() as stack:
        stack.callback(hook.close)
        settings = {
            "database": pg_url,
            "webhook_url": hook.url,
            "webhook_limit": 0,
            "smtp_relay_config": relay_yaml(tmp_path, upstream.port),
            "smtp_relay_all": True,
            "dns_override": str(zone),
            "dns_offline": True,  # the checks ask no real DNS
        }
        a = stack.enter_context(make_server(**settings))
        b = stack.enter_context(make_server(**settings))
        listeners = [
            stack.enter_context(
                contextlib.closing(
                    NewFrames(mp.http_url.replace("http://", "ws://") + "api/events")
                )
            )
            for mp in (a, b)
        ]
        subjects = [f"once.{i}@load.test" for i in range(n)]
        for i, subject in enumerate(subjects):
            with smtplib.SMTP(*(a, b)[i % 2].smtp_address, timeout=30) as client:
                client.sendmail("ann@example.com", ["bob@example.org"], mail(subject))
        # Both instances' buses carried all twenty (their own and the other's, as `new`).
        for frames in listeners:
            wait_until(partial(frames.heard, n), timeout=60, what="every new frame")
        wait_until(lambda: len(upstream.received) >= n, timeout=60, what="the relayed copies")
        wait_until(lambda: len(hook.received) >= n, timeout=60, what="the webhook posts")

        def done() -> bool:
            return checks_done(a) + checks_done(b) >= n and idle(a) and idle(b)

        wait_until(done, timeout=60, what="the checks done and every worker idle")

        def outbox_pending() -> int:
            with psycopg.connect(pg_url) as conn:
                row = conn.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()
            return int(row[0]) if row else -1

        # (the upstream holds a copy once it has the data, a moment before the relay worker
        # hears its 250 and marks the item sent: the item is waited for, not assumed done)
        wait_until(lambda: outbox_pending() == 0, timeout=60, what="every outbox item sent")
        # Each message: one relayed copy, one webhook post, one run of its checks in all.
        relayed = [email.message_from_bytes(r.data)["Subject"] for r in upstream.received]
        assert sorted(relayed) == sorted(subjects)
        assert sorted(body["Subject"] for body in hook.received) == sorted(subjects)
        assert [checks_done(a), checks_done(b)] == [
            n / 2,
            n / 2,
        ]  # each instance checked what it received


def test_the_instances_bench_runs_and_counts_every_message(pg_url: str) -> None:
    """bench/instances.py still works (it fails a run that lost a message); no speed asserted."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "instances.py"), "--database", pg_url]
        + ["-n", "40", "-c", "4", "--events", "3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"run 1: one instance \d+ msgs/s, two \d+ msgs/s", proc.stdout), proc.stdout
    assert "other instance median" in proc.stdout


def test_a_new_event_heard_just_after_a_database_restart_is_not_dropped(
    pair: tuple[Server, Server],
    pg_server: PgServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first reads after a restart may take pooled connections the restart closed (those
    given back moments before are not checked, to save a round trip per read): the other
    instance's `new` event must not be lost to such a read."""
    import mailpit_py.store.postgres.backend as pg_backend

    a, b = pair
    # Every pooled connection counts as given back moments ago: none is checked when taken.
    monkeypatch.setattr(pg_backend, "CHECK_AFTER", 3600.0)
    assert b.mailbox is not None
    for _ in range(4):
        b.mailbox.counts()  # B's read pool holds open connections
    # (B's websocket client connects before: its own first read is not what is tested here)
    frames = NewFrames(b.http_url.replace("http://", "ws://") + "api/events")
    try:
        caplog.set_level("WARNING", logger="mailpit_py.store.postgres.notify")
        pg_server.stop("fast")
        pg_server.start()
        wait_until(
            lambda: caplog.text.count("listening to the other instances again") >= 2,
            timeout=30,
            what="both instances listening again",
        )
        mid = "after.restart@load.test"
        with smtplib.SMTP(*a.smtp_address, timeout=30) as client:
            client.sendmail("load@example.com", ["sink@example.org"], mail(mid))
        wait_until(lambda: mid in frames.ids(), timeout=30, what="B's new frame")
    finally:
        frames.close()


def test_a_mailbox_made_renamed_or_deleted_on_one_instance_is_told_to_the_others_clients(
    pair: tuple[Server, Server],
) -> None:
    """The other instance's websocket hears the new list of mailboxes, read from the database
    (no instance keeps a copy of it)."""
    a, b = pair
    assert a.mailbox is not None
    ws = WsClient.connect(b.http_url.replace("http://", "ws://") + "api/events")

    def names_heard(expected: list[str]) -> bool:
        got = json.loads(ws.receive(timeout=10) or "{}")
        return got.get("Type") == "mailboxes" and [d["Name"] for d in got["Data"]] == expected

    try:
        a.mailbox.create_box("project")
        wait_until(lambda: names_heard(["default", "project"]), timeout=20, what="the new one")
        a.mailbox.rename_box("project", "renamed")
        wait_until(lambda: names_heard(["default", "renamed"]), timeout=20, what="the rename")
        a.mailbox.delete_box("renamed")
        wait_until(lambda: names_heard(["default"]), timeout=20, what="the deletion")
        assert [info.name for info in b.mailbox.boxes()] == ["default"]  # type: ignore[union-attr]
    finally:
        ws.close()
