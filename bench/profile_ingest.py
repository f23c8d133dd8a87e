"""Where the server's CPU per message goes at full ingest load, with the default settings.

Starts mailpit_py as ``bench/ingest.py`` does (the real CLI, default settings), warms it up, then
sends ``-n`` messages in one of ``bench/ingest.py``'s modes while py-spy samples every thread
(``--threads --nonblocking``: the server is not paused). Each thread's exact CPU over the run
(``/proc/PID/task/TID/stat``) is split over what its samples were doing, the innermost frame
that matches a category deciding, and printed as microseconds of CPU per message.

Why both: py-spy counts a thread whenever the OS shows it running or ready to run, so on a busy
machine its counts include time spent waiting for a core, and it cannot tell one thread's CPU
from another's; /proc gives each thread's CPU exactly but not what it was spent on. The split
assumes each thread's waits for a core are spread evenly over its work.

Usage: .venv/bin/python bench/profile_ingest.py [--mode reuse] [-n 8000] [--rate 400]
    [--raw FILE]   (needs py-spy, e.g. ``.venv/bin/pip install py-spy``)
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import thread_cpu
from ingest import MODES, find_smtpload, run_load, start_child

# (category, pattern on one frame "function (file:line)"), tried innermost frame first: the
# first frame that matches any pattern names the sample's category.
RULES: tuple[tuple[str, str], ...] = (
    ("logging", r"\(logging/|observability/logs\.py"),
    ("events", r"events\.py|_announce_new|record_summary"),
    ("parse", r"mailpit_py/parse/"),
    ("record", r"build_record|record\.py|detailcodec\.py|jsontext\.py"),
    ("transcript", r"smtp/transcript\.py"),
    ("retention", r"MessageWrites\.prune|_delete_rowids|retention\.py"),
    ("index writer", r"_run_index|_insert_index"),
    ("message rows", r"insert_message|outbox_add|store_it\.<locals>\.job"),
    ("commit + callbacks", r"Completion\.|committed|_transaction|_begin|_run_batch"),
    ("hand-off to writer", r"submit_then|_enqueue"),
    ("ids, tags, routing", r"ids\.py|routed_envelopes|auto_tags|prepare_one"),
    ("SMTP session", r"mailpit_py/smtp/|aiosmtpd/|asyncio/|uvloop|loopthread\.py"),
    ("checks", r"mailpit_py/checks/"),
)


# A sample whose innermost Python frame is a thread's own loop is C code under it (uvloop's
# polling and callbacks, SQLite's wait for the queue) or time spent ready but waiting for a
# core after a wake-up: told apart from the Python work above it.
LOOP_LEAF = re.compile(r"^(LoopThread\.start\.<locals>\.run|GroupCommitWriter\._write_loop) ")


def categorize(frames: list[str]) -> str:
    if frames and LOOP_LEAF.match(frames[-1]):
        return "loop (C) or ready"
    for frame in reversed(frames):
        for name, pattern in RULES:
            if re.search(pattern, frame):
                return name
    return "other"


def read_samples(raw: Path) -> dict[str, collections.Counter[str]]:
    """tid -> category -> samples, and the thread names, from py-spy's raw (collapsed) output."""
    by_tid: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        m = re.match(r"thread \((\d+)\): (\S+)", frames[0])
        if not m or not count.isdigit():
            continue
        tid, name = m.groups()
        by_tid[tid][categorize(frames[1:])] += int(count)
        by_tid[tid]["_name:" + name] = 0
    return by_tid


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--mode", default="reuse", choices=[m.name for m in MODES])
    ap.add_argument("-n", type=int, default=8000, help="messages in the profiled run (8000)")
    ap.add_argument("--rate", type=int, default=400, help="py-spy samples per second (400)")
    ap.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks in this file")
    ap.add_argument(
        "--gil", action="store_true", help="sample only the thread holding the GIL (py-spy --gil)"
    )
    args = ap.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.access(spy, os.X_OK):
        ap.error("py-spy not found: .venv/bin/pip install py-spy")
    mode = next(m for m in MODES if m.name == args.mode)
    smtpload = find_smtpload()
    raw = args.raw or Path(tempfile.mkstemp(prefix="profile-ingest-", suffix=".txt")[1])
    child = start_child("mailpit_py")
    try:
        run_load(smtpload, child.port, 500, mode, 2000)  # warm-up
        sampler = subprocess.Popen(
            [spy, "record", "-p", str(child.proc.pid), "--threads", "--nonblocking"]
            + ["-r", str(args.rate), "-f", "raw", "-o", str(raw)]
            + (["--gil"] if args.gil else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # py-spy attaches
        before, wall0 = thread_cpu(child.proc.pid), time.monotonic()
        res = run_load(smtpload, child.port, args.n, mode, 2000)
        after, wall = thread_cpu(child.proc.pid), time.monotonic() - wall0
        sampler.send_signal(2)  # SIGINT: py-spy writes what it has and exits
        sampler.wait(timeout=60)
    finally:
        child.stop()
    load = os.getloadavg()[0]
    samples = read_samples(raw)
    per_msg = {tid: (after[tid] - before.get(tid, 0.0)) / res.sent * 1e6 for tid in after}
    total = sum(per_msg.values())
    print(
        f"{mode.label}: {res.sent} msgs at {res.rate:.0f}/s, server CPU {total:.0f} us/msg over "
        f"{wall:.1f} s (load average {load:.1f}); py-spy samples in {raw}"
    )
    rows: collections.Counter[tuple[str, str]] = collections.Counter()
    for tid, us in sorted(per_msg.items(), key=lambda kv: -kv[1]):
        cats = samples.get(tid)
        name = next((k[6:] for k in (cats or {}) if k.startswith("_name:")), f"tid {tid}")
        counted = sum(v for k, v in (cats or {}).items() if not k.startswith("_name:"))
        if not cats or counted == 0:
            rows[(name, "(not sampled)")] += us
            continue
        for cat, n in cats.items():
            if not cat.startswith("_name:"):
                rows[(name, cat)] += us * n / counted
    thread_tot: collections.Counter[str] = collections.Counter()
    for (name, _cat), us in rows.items():
        thread_tot[name] += us
    for name, us in thread_tot.most_common():
        if us < 1:
            continue
        print(f"  {name:<14} {us:6.0f} us/msg ({us / total:5.1%})")
        for (tname, cat), cus in rows.most_common():
            if tname == name and cus >= 1:
                print(f"      {cat:<22} {cus:6.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
