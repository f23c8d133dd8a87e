"""Instructions the server executes per SMTP message (valgrind): a CPU measure that repeats exactly.

Rates on this shared 2-CPU machine move by 15% between identical runs, and `bench/ab.py` needs a
dozen paired rounds to see a 5% change. Counting instructions does not depend on the machine's
load: with one sequential client (the default) two runs of the same code agree to within 0.1%,
so a change in the per-message work of parsing, building the record, storing it or the SMTP
exchange shows after one run of each version. It is not a rate: valgrind runs the server about
50 times slower (so group commit gathers no company), and system calls and cache misses are not
counted. Use it to see where work went; judge speed with `bench/ab.py` and `bench/ingest.py`.

Each version runs the real server (``bench/ingest.py --serve mailpit_py``) under callgrind, with
the message checks off (at 50x slower they would run mid-burst); callgrind dumps its counts after
the warm-up and again after the measured messages, and the second dump is what the load cost.
With 8 sessions (`--mode reuse`) batches vary from run to run, and so does the count, by ~4%.

Usage: .venv/bin/python bench/instructions.py [--base REV] [--mode serial|reuse|fresh] [-n 1024]
       [--keep FILE]
Needs valgrind (Debian: `apt-get install valgrind`); without it, says so and exits 2.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO
from ab import remove_worktree, worktree
from ingest import find_smtpload

# smtpload's arguments for each mode; `fresh` is one client at a time with a new connection per
# message, so serial and fresh differ by what a connection costs.
SESSIONS = {"serial": ["-c", "1"], "reuse": [], "fresh": ["-c", "1", "--fresh"]}
SETTLE = 3.0  # seconds of quiet before each dump (see count)
_SUMMARY = re.compile(rb"^(?:summary|totals):\s*(\d+)", re.M)


def _ready(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """The SMTP port from the server's READY line."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.5)[0]:
            line = proc.stdout.readline()
            found = re.match(rb"READY port=(\d+)", line)
            if found:
                return int(found.group(1))
            if not line:
                break
        if proc.poll() is not None:
            break
    raise RuntimeError(f"the server under valgrind did not start within {timeout:.0f}s")


def count(
    tree: Path, mode: str, n: int, warmup: int, size: int, smtpload: Path, keep: Path | None = None
) -> float:
    """Instructions per message of the server in `tree`, over `n` messages after `warmup`.

    With `keep`, the measured dump is copied there for `callgrind_annotate`.
    """
    with tempfile.TemporaryDirectory(prefix="mailpit-instr-") as tmp:
        out = Path(tmp) / "callgrind.out"
        proc = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                str(tree / "bench" / "ingest.py"),
                "--serve",
                "mailpit_py",
            ],
            stdin=subprocess.PIPE,  # the server stops when this closes
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=tree,
            # The database in the temporary directory: a server stopped under valgrind does
            # not always get to remove a temporary database of its own.
            env={**os.environ, "MP_DISABLE_CHECKS": "true", "MP_DATABASE": f"{tmp}/mail.db"},
        )
        try:
            port = _ready(proc, timeout=300)
            load = [sys.executable, str(smtpload), "127.0.0.1", str(port), "--size", str(size)]
            load += SESSIONS[mode]
            for messages in (warmup, n):
                subprocess.run([*load, "-n", str(messages)], check=True, capture_output=True)
                # The search index of the last messages is written once the server has been
                # idle for a moment (store/writer.py INDEX_DELAY, 50 ms; far longer under valgrind):
                # it belongs to these messages, so the dump waits for it.
                time.sleep(SETTLE)
                subprocess.run(
                    ["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True
                )
            dump = Path(f"{out}.2")
            found = _SUMMARY.search(dump.read_bytes()) if dump.is_file() else None
            if found is None:
                raise RuntimeError(f"no instruction total in {dump}")
            if keep is not None:
                shutil.copyfile(dump, keep)
            return int(found.group(1)) / n
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.terminate()  # (under valgrind the server misses its own SIGTERM on EOF)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--base", help="a git revision to count too, and compare against")
    ap.add_argument("--mode", default="serial", choices=sorted(SESSIONS))
    # A multiple of the search index's batch (INDEX_BATCH in store/writer.py, 256), so every run
    # writes it the same number of times.
    ap.add_argument("-n", type=int, default=1024, help="messages counted (1024)")
    ap.add_argument("--warmup", type=int, default=300, help="messages before counting (300)")
    ap.add_argument("--size", type=int, default=2000, help="approximate message size (2000)")
    ap.add_argument("--keep", type=Path, help="copy this checkout's callgrind dump to this file")
    args = ap.parse_args(argv)
    if args.n <= 0 or args.warmup < 0:
        ap.error("need -n > 0 and --warmup >= 0")
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    smtpload = find_smtpload()
    this = count(REPO, args.mode, args.n, args.warmup, args.size, smtpload, args.keep)
    print(f"this ({REPO}): {this / 1000:,.0f}k instructions per message ({args.mode})")
    if args.base:
        with tempfile.TemporaryDirectory(prefix="mailpit-instr-base-") as tmp:
            tree = worktree(args.base, Path(tmp))
            try:
                base = count(tree, args.mode, args.n, args.warmup, args.size, smtpload)
            finally:
                remove_worktree(tree)
        print(f"base ({args.base}): {base / 1000:,.0f}k instructions per message")
        print(f"this / base: {this / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
