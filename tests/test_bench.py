"""The benchmarks in bench/ still run: each one, tiny, must finish and report what it checks.

Benchmarks are not part of `make test` otherwise, so nothing else notices when one breaks (one
ran its browser step on a database it had just emptied, and waited for rows that never came).
These runs assert what the scripts verify (no message lost, every event in order, downloads
byte-exact, retention held), never a speed or a ratio: speed is for `make bench`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_ui_browser import _need_browser

from helpers import REPO, make_server

BENCH = REPO / "bench"


def bench(*argv: str, ok: bool = True) -> str:
    """Run `bench/<argv>`; its output, after checking its exit status when `ok`."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / argv[0]), *argv[1:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    if ok:
        assert proc.returncode == 0, f"bench/{argv[0]} exited {proc.returncode}:\n{out[-3000:]}"
    return out


def smtpload(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / "smtpload.py"), *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )


# What bench/ingest.py and ab.py parse from the load generator's one line.
SMTPLOAD_LINE = re.compile(
    r"^sent=(\d+) seconds=[\d.]+ rate=\d+/s p50=[\d.]+ms p99=[\d.]+ms$", re.ASCII
)


@pytest.mark.parametrize("fresh", [False, True], ids=["reuse", "fresh"])
def test_smtpload_sends_every_message_and_prints_the_line_the_benches_parse(fresh: bool) -> None:
    with make_server() as mp:
        host, port = mp.smtp_address
        extra = ["--fresh"] if fresh else []
        proc = smtpload(host, str(port), "-n", "25", "-c", "3", "--size", "3000", *extra)
        assert proc.returncode == 0, proc.stderr
        line = proc.stdout.strip()
        m = SMTPLOAD_LINE.match(line)
        assert m and m[1] == "25", line
        assert mp.mailbox is not None and mp.mailbox.counts()[0] == 25
        sizes = {s["Size"] for s in mp.mailbox.list_messages(limit=25)}
        assert all(2900 < size < 3400 for size in sizes), sizes


def test_smtpload_fails_with_the_reply_when_the_server_refuses_a_message() -> None:
    # A refused message must not count as sent: the run ends with the server's reply.
    with make_server(max_message_size=1000) as mp:
        host, port = mp.smtp_address
        proc = smtpload(host, str(port), "-n", "5", "--size", "5000")
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout
    assert f"smtpload: {host}:{port}: expected b'250', got b'552" in proc.stderr, proc.stderr


def test_smtpload_says_how_to_call_it() -> None:
    proc = smtpload("127.0.0.1", "1025", "-n", "0")
    assert proc.returncode == 2
    assert "-n, -c and --size must be at least 1" in proc.stderr, proc.stderr


def test_ingest_stores_every_message_it_sends_in_each_mode() -> None:
    out = bench("ingest.py", "-n", "30", "--repeat", "1", "--warmup", "5")
    for mode in ("reuse", "serial", "fresh"):
        assert re.search(rf"^\s+{mode}\s+OK, none lost$", out, re.M), out
    stored = re.search(r"mailpit_py stored (\d+) of (\d+) messages sent", out)
    assert stored and stored[1] == stored[2] and int(stored[1]) >= 3 * 30, out  # (+ warm-ups)


def test_smtpload_spreads_recipients_over_the_domains_it_is_given() -> None:
    # bench/mailboxes.py spreads its load over mailboxes routed by recipient domain.
    with make_server() as mp:
        host, port = mp.smtp_address
        proc = smtpload(host, str(port), "-n", "6", "-c", "2", "--rcpt", "u@p{n}.test",
                        "--spread", "3")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert mp.mailbox is not None
        # An envelope recipient no header names shows as Bcc (as in Mailpit).
        rcpts = sorted(m["Bcc"][0]["Address"] for m in mp.mailbox.list_messages(limit=6))
    assert rcpts == ["u@p0.test"] * 2 + ["u@p1.test"] * 2 + ["u@p2.test"] * 2, rcpts


def test_mailboxes_routes_every_message_and_reads_one_mailbox() -> None:
    out = bench("mailboxes.py", "--boxes", "3", "-n", "20", "--repeat", "1", "--warmup", "5",
                "--messages", "600", "--box", "p1", "--rounds", "1")  # fmt: skip
    assert "every message stored, each in its routed mailbox" in out, out
    assert re.search(r"^routing one recipient: [\d.]+ us", out, re.M), out
    for mode in ("8 conns, reused sessions", "1 conn, sequential", "8 conns, new conn per msg"):
        assert re.search(rf"^{mode}\s+\d+\s+\d+\s+[\d.]+", out, re.M), out
    assert "mailbox 'p1' holds 200" in out, out
    for label in ("GET messages (first page)", "GET search header:X-Campaign:c3", "open a message"):
        assert label in out, f"{label!r} missing:\n{out}"
    assert "problem:" not in out, out


def test_ab_compares_this_checkout_with_head() -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: ab.py compares against a git revision")
    out = bench("ab.py", "-n", "30", "--rounds", "1", "--warmup", "5", "--mode", "serial")
    assert "round  1: base" in out and "this / base median" in out, out


def test_scale_times_every_read_and_the_ui_on_a_filled_mailbox() -> None:
    _need_browser()
    out = bench("scale.py", "-n", "300", "--ui")
    assert "300 messages" in out, out
    for label in (
        "list, first page (50)",
        "search header:X-Campaign:c3",
        "open one of",
        "GET messages (first page)",
        "GET part (5.0 MB attachment)",
        "UI first screen (rows: 50)",
        "delete all",
    ):
        assert label in out, f"{label!r} missing:\n{out}"


def test_bigmail_downloads_come_back_byte_exact() -> None:
    out = bench("bigmail.py", "--mb", "2", "--attachment-mb", "1")
    assert "downloads byte-exact" in out, out


def test_livepath_clients_get_every_event_in_order() -> None:
    out = bench("livepath.py", "--seconds", "1", "--repeat", "1", "--rate", "100", "--clients", "3")
    assert "every event received, in order" in out, out


def test_soak_holds_retention_without_errors() -> None:
    # Too short to judge flatness (the verdict may say it is not), long enough to fill --max 500.
    out = bench("soak.py", "--minutes", "0.2", "--rate", "60", "--interval", "1", ok=False)
    assert ", 0 errors" in out, out
    kept = re.search(r"messages kept at the end: (\d+), expected (\d+) \(--max 500", out)
    assert kept and kept[1] == kept[2] and 500 <= int(kept[1]) <= 550, out
    assert "server exit status 0" in out, out
    assert "verdict: " in out, out


def test_compress_measures_each_mix() -> None:
    out = bench("compress.py", "--rounds", "1")
    for mix in ("2 KB text (smtpload)", "100 KB attachment", "5 MB attachment"):
        assert mix in out and "zlib-1" in out, f"{mix!r} missing:\n{out}"


def test_parse_times_every_hand_written_message() -> None:
    # The limit is an hour: what is checked is that every file is parsed and listed, not a speed.
    out = bench("parse.py", "--messages-only", "--repeat", "1", "--top", "3", "--limit", "3600")
    count = len(json.loads((REPO / "tests" / "messages" / "manifest.json").read_text())["files"])
    assert f"parsed {count} files," in out and ", 0 over 3600 s" in out, out
    assert len(re.findall(r"^ +[\d.]+ ms  \S+$", out, re.M)) == 3, out


def test_uptime_keeps_descriptors_and_threads_flat() -> None:
    # Descriptors and threads are exact counts once the server is idle, so even a tiny run shows
    # a per-request or per-connection leak; memory needs the full run (bench/NOTES.md).
    out = bench(
        "uptime.py",
        "--requests",
        "600",
        "--websockets",
        "60",
        "--messages",
        "500",
        "--rounds",
        "5",
        "--rate",
        "500",
        ok=False,
    )
    assert re.search(
        r"^done: 600 HTTP requests answered 200, 60 websocket sessions, 500 messages "
        r"sent with 0 SMTP errors; 500 kept",
        out,
        re.M,
    ), out
    for what in ("open fds", "threads"):
        assert re.search(rf"^  {what} .* flat$", out, re.M), out


def test_readload_times_both_reads_during_ingest() -> None:
    out = bench("readload.py", "-n", "300", "--pause", "0.01")
    assert re.search(r"^ingest: sent=300 ", out, re.M), out
    for label in ("list, first page", "search 'ipsum' (every message)"):
        assert re.search(rf"^{re.escape(label)}\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+$", out, re.M), out
    assert "verdict: ok" in out, out


def test_smtpfill_keeps_what_retention_keeps_and_reports_memory() -> None:
    out = bench("smtpfill.py", "-n", "700", "--interval", "0.5")
    kept = re.search(
        r"RSS ([\d.]+) MB, peak [\d.]+ MB .* (\d+) messages kept \(expected (\d+)\)", out
    )
    assert kept and kept[2] == kept[3] == "547", out  # 500 + (700 - 550 - 1) % 51
    assert "verdict: ok" in out, out


def test_reuseport_prototype_stores_every_message_through_its_writer_process() -> None:
    # The prototype's workers hand records to a writer process: a 250 must mean stored there.
    out = bench("reuseport.py", "-n", "30", "--rounds", "1", "--warmup", "5", "--workers", "2")
    assert re.search(r"^  round  1: single +\d+  workers +\d+ msgs/s", out, re.M), out
    assert "workers / single median" in out and "FAILED" not in out, out


def test_profile_ingest_splits_each_threads_cpu_per_message() -> None:
    spy = Path(sys.executable).parent / "py-spy"
    if shutil.which("py-spy") is None and not spy.is_file():
        pytest.skip("py-spy is not installed (.venv/bin/pip install py-spy)")
    out = bench("profile_ingest.py", "-n", "300")
    assert re.search(r"^8 conns, reused sessions: 300 msgs at \d+/s, server CPU \d+ us/msg", out,
                     re.M), out  # fmt: skip
    assert re.search(r"^  store-writer +\d+ us/msg", out, re.M), out
    assert re.search(r"^  smtp +\d+ us/msg", out, re.M), out
