"""Parse time of every message of the test corpora: CPU seconds each, the slowest first.

Parses, in process, each file that the hand-written tests/messages/ and the real-world corpus
($MAILPIT_PY_CORPUS, else ../shared/corpus beside the checkout; left out when absent) list in
their manifest.json, --repeat times, and prints the best CPU time (time.process_time: a loaded
machine adds less to it than to the clock) of the --top slowest files, then the total. A file
over --limit seconds is named and the exit status is 1. The tests do not time parsing: they
count what a parse reads (tests/test_corpus.py).

    .venv/bin/python bench/parse.py [--repeat 3] [--top 10] [--limit 2] [--messages-only]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailpit_py.models import Envelope  # noqa: E402
from mailpit_py.parse.message import parse_message  # noqa: E402

ENVELOPE = Envelope(mail_from="sender@example.com", rcpt_to=())


def corpus_files(root: Path) -> list[Path]:
    """The files a corpus's manifest.json lists, in its order; none when it is absent."""
    manifest = root / "manifest.json"
    if not manifest.is_file():
        return []
    return [root / entry["file"] for entry in json.loads(manifest.read_text("utf-8"))["files"]]


def best_cpu_seconds(raw: bytes, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        parse_message(raw, ENVELOPE)
        best = min(best, time.process_time() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="parses per file (best is kept)")
    parser.add_argument("--top", type=int, default=10, help="slowest files listed")
    parser.add_argument("--limit", type=float, default=2.0, help="CPU seconds a file may take")
    parser.add_argument(
        "--messages-only", action="store_true", help="tests/messages/ only, not the corpus"
    )
    args = parser.parse_args()
    roots = [REPO / "tests" / "messages"]
    if not args.messages_only:
        roots.append(Path(os.environ.get("MAILPIT_PY_CORPUS", REPO.parent / "shared" / "corpus")))
    times = [
        (best_cpu_seconds(path.read_bytes(), max(args.repeat, 1)), path)
        for root in roots
        for path in corpus_files(root)
    ]
    times.sort(key=lambda item: item[0], reverse=True)
    for seconds, path in times[: args.top]:
        print(f"{seconds * 1000:9.1f} ms  {path}")
    over = [path for seconds, path in times if seconds > args.limit]
    total = sum(seconds for seconds, _ in times)
    print(f"parsed {len(times)} files, {total:.2f} CPU s in all, {len(over)} over {args.limit:g} s")
    for path in over:
        print(f"over the limit: {path}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
