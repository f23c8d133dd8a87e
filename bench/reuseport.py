"""Prototype, not the feature: SMTP worker processes on one port, one writer process.

Measures whether mailpit_py's ingest gains from the machine's second core when the SMTP
sessions, parsing and building the record run in ``--workers`` processes that share the SMTP
port (``SO_REUSEPORT``: the kernel spreads new connections over them), each handing the finished
record (pickled) to one writer process over a Unix socket and answering ``250`` only when the
writer says it committed. Everything else is the real code with the default settings:

* the writer: the real CLI (``cli.main``, default settings: ``--max 500``, the log line per
  message, the checks), whose ``Mailbox.deliver_then`` is called for each record that comes in,
  with parsing and building the record replaced by the record the worker built (so the commit,
  retention, events, the log line, the checks' hook and the session log are the real ones);
* each worker: the real CLI too (its own idle store), whose SMTP listener binds the shared port
  with ``SO_REUSEPORT`` and whose ``Mailbox.deliver_then`` parses and builds the record as the
  real one does (``parse_message``, the auto tags, ``build_record``), then ships it; its
  ``record_session`` ships the session's record for the writer's session log.

Not handled (a prototype): a delivery cancelled at the 30 s deadline is not cancelled in the
writer; routes to several mailboxes (one copy only); the relay's ``forward-smtp-errors``; events
published by the workers (SMTP refusals) stay in their process.

Run against the single-process default in paired rounds, as ``bench/ab.py`` runs two versions:
new processes every round, each warmed up, the same ``smtpload`` load in turns, the order
alternating. CPU per message is every process of each side (all threads), the load generator
not included; it runs on the same machine.

Usage: .venv/bin/python bench/reuseport.py [--mode reuse] [-n 2000] [--rounds 8] [--workers 2]
"""

from __future__ import annotations

import argparse
import itertools
import os
import pickle
import signal
import socket
import statistics
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import HOST, REPO
from ab import sign_test
from ingest import (
    MODES,
    Child,
    Tally,
    _exit_on_stdin_eof,
    find_smtpload,
    one_run,
    report_ready,
    start_child,
)

_LEN = 4  # every frame: a 4-byte little-endian length, then a pickle


def _frame(obj: Any) -> bytes:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(_LEN, "little") + body


def _read_frames(buf: bytearray) -> list[Any]:
    """Take every whole frame off the front of `buf`."""
    out = []
    while len(buf) >= _LEN:
        n = int.from_bytes(buf[:_LEN], "little")
        if len(buf) < _LEN + n:
            break
        out.append(pickle.loads(bytes(buf[_LEN : _LEN + n])))
        del buf[: _LEN + n]
    return out


# -- the writer process ----------------------------------------------------------------------


class _Stub:
    """Stands for the parsed message inside the writer: the worker parsed it already and the
    record it shipped carries everything the store needs (its tags included)."""

    to = cc = bcc = headers = tags = ()
    from_addr = date = None

    def _replace(self, **_kw: Any) -> _Stub:
        return self


def _serve_writer(sock_path: str) -> int:
    sys.path.insert(0, str(REPO))
    from mailpit_py import cli
    from mailpit_py.mailbox import delivery
    from mailpit_py.server import Server

    shipped = threading.local()
    parse_orig, build_orig = delivery.parse_message, delivery.build_record

    def parse_message(raw: bytes, env: Any) -> Any:
        return _Stub() if getattr(shipped, "rec", None) is not None else parse_orig(raw, env)

    def build_record(*args: Any, **kw: Any) -> Any:
        rec = getattr(shipped, "rec", None)
        return rec if rec is not None else build_orig(*args, **kw)

    delivery.parse_message = parse_message  # type: ignore[assignment]
    delivery.build_record = build_record  # type: ignore[assignment]

    def serve_worker(conn: socket.socket, mailbox: Any) -> None:
        lock = threading.Lock()
        buf = bytearray()
        while True:
            data = conn.recv(262144)
            if not data:
                return
            buf += data
            for kind, req, payload in _read_frames(buf):
                if kind == "s":
                    mailbox.record_session(payload)
                    continue
                rec, envelope, kw = payload

                def then(uid: str | None, exc: BaseException | None, req: int = req) -> None:
                    out = _frame((req, uid, None if exc is None else repr(exc)))
                    with lock:
                        conn.sendall(out)

                shipped.rec = rec
                try:
                    mailbox.deliver_then(then, envelope, rec.raw, **kw)
                finally:
                    shipped.rec = None

    def after_start(server: Server) -> None:
        mailbox = server.mailbox
        # The auto tags ran in the worker; the stub parsed message carries nothing to tag.
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(sock_path)
        listener.listen(16)

        def accept() -> None:
            while True:
                conn, _ = listener.accept()
                threading.Thread(
                    target=serve_worker, args=(conn, mailbox), name="records", daemon=True
                ).start()

        threading.Thread(target=accept, name="records-accept", daemon=True).start()

    report_ready(after_start)
    _exit_on_stdin_eof(lambda: os.kill(os.getpid(), signal.SIGTERM))
    return cli.main(["-s", f"{HOST}:0", "-l", f"{HOST}:0", "--enable-prometheus", "true"])


# -- a worker process ------------------------------------------------------------------------


def _serve_worker(sock_path: str, port: int) -> int:
    sys.path.insert(0, str(REPO))
    from mailpit_py import cli
    from mailpit_py.mailbox import delivery
    from mailpit_py.mailbox.facade import Mailbox
    from mailpit_py.mailbox.record import build_record
    from mailpit_py.mailbox.tags import clean_tags
    from mailpit_py.parse.message import parse_message
    from mailpit_py.server import Server
    from mailpit_py.smtp import server as smtp_server

    def listen_on(addr: str, flag: str, backlog: int = 128) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((HOST, port))
        sock.listen(backlog)
        return sock

    smtp_server.listen_on = listen_on  # type: ignore[assignment]
    link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    link.connect(sock_path)
    pending: dict[int, Any] = {}
    counter = iter(range(1, 1 << 62))
    send_lock = threading.Lock()

    def send(frame: bytes) -> None:
        with send_lock:  # the session log's records may come from another thread
            link.sendall(frame)

    def deliver_then(self: Mailbox, then: Any, envelope: Any, raw: bytes, **kw: Any) -> None:
        # What the real deliver_then's prepare_one does, for one copy (the default routing).
        copies = delivery.routed_envelopes(envelope, kw.get("boxes"))
        box, env = copies[0]
        username = kw.get("username", "")
        parsed = parse_message(raw, env)
        addresses = (*parsed.to, *parsed.cc, *parsed.bcc)
        if parsed.from_addr is not None:
            addresses = (*addresses, parsed.from_addr)
        found = self.auto_tags.tags(parsed.headers, addresses, username, raw)
        parsed = parsed._replace(tags=tuple(clean_tags([*found, *kw.get("tags", ())])))
        rec = build_record(
            kw["uid"],
            parsed,
            raw,
            created=kw["received_at"],
            username=username,
            session_uid=kw.get("session_uid", ""),
            transcript=kw.get("transcript", ()),
            envelope=env,
            origin=kw.get("origin"),
            refused=kw.get("refused"),
            mailbox=box,
        )
        kw.pop("ticket", None)  # (not cancellable across the hop in this prototype)
        req = next(counter)
        pending[req] = then
        send(_frame(("m", req, (rec, envelope, kw))))

    def record_session(self: Mailbox, rec: Any) -> None:
        send(_frame(("s", 0, rec)))

    Mailbox.deliver_then = deliver_then  # type: ignore[method-assign]
    Mailbox.record_session = record_session  # type: ignore[method-assign]

    def after_start(server: Server) -> None:
        assert server.smtp is not None
        loop = server.smtp.loop
        buf = bytearray()

        def on_acks() -> None:
            try:
                data = link.recv(262144, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if not data:
                loop.remove_reader(link.fileno())
                return
            buf.extend(data)
            for req, uid, err in _read_frames(buf):
                then = pending.pop(req)
                then(uid, None if err is None else RuntimeError(err))

        loop.call_soon_threadsafe(loop.add_reader, link.fileno(), on_acks)

    report_ready(after_start)
    _exit_on_stdin_eof(lambda: os.kill(os.getpid(), signal.SIGTERM))
    return cli.main(["-s", f"{HOST}:{port}", "-l", f"{HOST}:0"])


# -- the driver ------------------------------------------------------------------------------


@dataclass
class Group(Child):
    """The writer (its database, metrics and port stand for the group) and its workers."""

    workers: list[Child] = field(default_factory=list)

    def cpu_seconds(self) -> float | None:
        total = 0.0
        for child in [self, *self.workers]:
            got = Child.cpu_seconds(child)
            if got is None:
                return None
            total += got
        return total

    def stop(self, grace: float = 15.0) -> None:
        for child in self.workers:
            child.stop(grace)
        Child.stop(self, grace)


def _start_serving(args: list[str], name: str) -> Child:
    """A writer or a worker, through bench/ingest.py's start_child (its READY line)."""
    import ingest

    orig = ingest.subprocess.Popen

    def popen(cmd: list[str], **kw: Any) -> Any:
        cmd = [sys.executable, str(Path(__file__).resolve()), *args]
        return orig(cmd, **kw)

    ingest.subprocess.Popen = popen  # type: ignore[assignment,misc]
    try:
        return start_child("mailpit_py", name=name)
    finally:
        ingest.subprocess.Popen = orig  # type: ignore[misc]


_GROUPS = itertools.count(1)


def start_group(workers: int, tmp: Path) -> Group:
    sock_path = str(tmp / f"records-{next(_GROUPS)}.sock")
    writer = _start_serving(["--serve-writer", sock_path], "writer")
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = int(probe.getsockname()[1])
    group = Group(
        name="workers", proc=writer.proc, stderr=writer.stderr, db=writer.db, web=writer.web
    )
    try:
        for i in range(workers):
            group.workers.append(
                _start_serving(["--serve-worker", sock_path, "--port", str(port)], f"worker{i}")
            )
    except BaseException:
        group.stop()
        raise
    group.port = port
    return group


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--mode", default="reuse", choices=[m.name for m in MODES])
    ap.add_argument("-n", type=int, default=2000, help="messages per run (2000)")
    ap.add_argument("--rounds", type=int, default=8, help="paired rounds (8)")
    ap.add_argument("--workers", type=int, default=2, help="SMTP worker processes (2)")
    ap.add_argument("--warmup", type=int, default=200, help="warm-up messages per side (200)")
    ap.add_argument("--serve-writer", metavar="SOCK", help=argparse.SUPPRESS)
    ap.add_argument("--serve-worker", metavar="SOCK", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--serve", help=argparse.SUPPRESS)  # (start_child's own flags, unused)
    ap.add_argument("--tree", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_writer:
        return _serve_writer(args.serve_writer)
    if args.serve_worker:
        return _serve_worker(args.serve_worker, args.port)
    mode = next(m for m in MODES if m.name == args.mode)
    smtpload = find_smtpload()
    tally = Tally()
    print(
        f"{mode.label}: one process (default settings) against {args.workers} SMTP worker "
        f"processes + 1 writer process; {os.cpu_count()} CPUs, load generator on this machine",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="mailpit-reuseport-") as tmp:
        for rnd in range(args.rounds):
            sides: list[Child] = []
            try:
                sides.append(start_child("mailpit_py", name="single"))
                sides.append(start_group(args.workers, Path(tmp)))
                if rnd % 2:
                    sides.reverse()
                for side in sides:
                    one_run(tally, smtpload, side, mode, args.warmup, 2000, "warmup", [side])
                rates = {}
                for side in sides:
                    res = one_run(tally, smtpload, side, mode, args.n, 2000, f"#{rnd + 1}", sides)
                    rates[side.name] = res.rate if res else float("nan")
            finally:
                for side in sides:
                    side.stop()
            load = os.getloadavg()[0]
            print(
                f"  round {rnd + 1:2d}: single {rates['single']:6.0f}  workers "
                f"{rates['workers']:6.0f} msgs/s  ratio {rates['workers'] / rates['single']:.3f}"
                f"  (load average {load:.1f})",
                flush=True,
            )
    single = tally.rates.get((mode.name, "single"), [])
    multi = tally.rates.get((mode.name, "workers"), [])
    ratios = [m / s for m, s in zip(multi, single, strict=False) if s > 0]
    if ratios:
        wins, losses = sum(r > 1 for r in ratios), sum(r < 1 for r in ratios)
        print(
            f"\n{mode.label}, {args.n} msgs x {len(ratios)} rounds: workers / single median "
            f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}); "
            f"workers faster in {wins}, slower in {losses} (sign test p = "
            f"{sign_test(wins, wins + losses):.3f})"
        )
        for name in ("single", "workers"):
            rates = tally.rates.get((mode.name, name), [])
            cpu = tally.cpu_us.get((mode.name, name), [])
            commit = tally.commit_ms.get((mode.name, name), [])
            print(
                f"  {name}: median {statistics.median(rates):.0f} msgs/s, "
                f"{statistics.median(cpu):.0f} us CPU/msg (every process)"
                + (f", DATA to commit {statistics.median(commit):.2f} ms" if commit else "")
            )
    for failure in tally.failures:
        print(f"FAILED: {failure}")
    return 1 if tally.failures or tally.lost or not ratios else 0


if __name__ == "__main__":
    sys.exit(main())
