"""The PostgreSQL benches still run (tiny): bench/boxscale.py times every read in one mailbox,
bench/backends.py stores every message it sends on both stores. No speed is asserted."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def test_boxscale_fills_the_mailboxes_and_times_each_read_in_one(pg_url: str) -> None:
    proc = run(
        "bench/boxscale.py", "-n", "600", "--boxes", "3", "--box", "project1",
        "--database", pg_url,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stored 600 messages in 3 mailboxes" in proc.stdout
    assert "mailbox 'project1' (200 messages)" in proc.stdout
    for read in ("first page", "counts", "search header:X-Campaign:c3", "search ample.com"):
        assert proc.stdout.count(read) == 2, proc.stdout  # in the mailbox, and over all


def test_backends_stores_every_message_on_both_stores(pg_url: str) -> None:
    proc = run(
        "bench/backends.py", "--rounds", "1", "-n", "30", "--warmup", "5", "--modes", "reuse",
        "--database", pg_url,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr  # (1 when a message was lost)
    assert "PostgreSQL / SQLite median" in proc.stdout and "CPU ratio" in proc.stdout
