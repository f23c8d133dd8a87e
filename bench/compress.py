"""Compression of raw messages: CPU per message against bytes on disk, for none, zlib and zstd.

mailpit_py stores each message's raw bytes as they came (compression is to be measured before it
is adopted). This prints, per codec and message mix, the compress and decompress CPU per message,
the stored size as a fraction of the raw size, and, for the 2 KB messages, the compress CPU as a
fraction of what ingest costs per message (--ingest-us, from bench/ingest.py).

zstd is measured when the `zstandard` package is installed (`.venv/bin/pip install zstandard`;
it is not a dependency of mailpit_py); zlib is the standard library's.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from pace import make_msg  # ~2 KB of plain text, as bench/smtpload.py sends

REPO = Path(__file__).resolve().parents[1]
# The hand-written messages are always there; the real-world corpus beside the checkout (CI has
# it) or at $MAILPIT_PY_CORPUS is measured too when present.
MESSAGES = REPO / "tests" / "messages"
CORPUS = Path(os.environ.get("MAILPIT_PY_CORPUS", REPO.parent / "shared" / "corpus"))

Codec = tuple[str, Callable[[bytes], bytes], Callable[[bytes], bytes]]


def codecs() -> list[Codec]:
    found: list[Codec] = [
        ("none", bytes, bytes),
        ("zlib-1", lambda b: zlib.compress(b, 1), zlib.decompress),
        ("zlib-6", lambda b: zlib.compress(b, 6), zlib.decompress),
    ]
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        print("(zstd not measured: the zstandard package is not installed)")
        return found
    for level in (1, 3):
        c = zstandard.ZstdCompressor(level=level)
        d = zstandard.ZstdDecompressor()
        found.append((f"zstd-{level}", c.compress, d.decompress))
    return found


def attachment_message(size: int) -> bytes:
    """A short HTML mail with a binary attachment (random bytes: a JPEG or PDF compresses
    little better), base64 in 76-character lines as mail clients send it."""
    data = base64.encodebytes(os.urandom(size)).replace(b"\n", b"\r\n")
    return (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: report\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Your report is attached.</p>\r\n"
        b"--b1\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="report.pdf"\r\n\r\n' + data + b"--b1--\r\n"
    )


def mixes() -> list[tuple[str, list[bytes]]]:
    out = [("2 KB text (smtpload)", [make_msg(i, 2000) for i in range(2000)])]
    written = [p.read_bytes() for p in sorted(MESSAGES.glob("*.eml"))]
    if written:
        out.append((f"tests/messages ({len(written)} hand-written)", written))
    if CORPUS.is_dir():
        files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".eml", ".txt"))
        corpus = [p.read_bytes() for p in files if p.name != "SOURCES.md"]
        out.append((f"corpus ({len(corpus)} real messages)", corpus))
    out.append(("100 KB attachment", [attachment_message(100_000) for _ in range(50)]))
    out.append(("5 MB attachment", [attachment_message(5_000_000) for _ in range(3)]))
    return out


def measure(codec: Codec, messages: list[bytes], rounds: int) -> tuple[float, float, float]:
    """(compress us/msg, decompress us/msg, stored/raw) for one codec over one mix."""
    _, compress, decompress = codec
    best_c = best_d = float("inf")
    stored = [compress(m) for m in messages]
    for _ in range(rounds):
        t0 = time.process_time()
        for m in messages:
            compress(m)
        t1 = time.process_time()
        for s in stored:
            decompress(s)
        t2 = time.process_time()
        best_c, best_d = min(best_c, t1 - t0), min(best_d, t2 - t1)
    raw = sum(len(m) for m in messages)
    n = len(messages)
    return best_c / n * 1e6, best_d / n * 1e6, sum(len(s) for s in stored) / raw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=3, help="best of N (3)")
    ap.add_argument(
        "--ingest-us",
        type=float,
        default=1100.0,
        help="server CPU per ~2 KB message in bench/ingest.py, to compare with (1100)",
    )
    args = ap.parse_args(argv)
    found = codecs()
    head = (
        f"{'mix':<28} {'codec':<7} {'compress us':>11} {'decompress us':>13} "
        f"{'stored/raw':>10} {'compress/ingest':>15}"
    )
    print(head)
    print("-" * len(head))
    for label, messages in mixes():
        for codec in found:
            c, d, ratio = measure(codec, messages, args.rounds)
            # Only the 2 KB mix is what --ingest-us was measured with.
            share = f"{c / args.ingest_us:.1%}" if codec[0] != "none" and "2 KB" in label else "-"
            print(f"{label:<28} {codec[0]:<7} {c:>11.1f} {d:>13.1f} {ratio:>10.2f} {share:>15}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
