"""Big mail: a 50 MB message with a 40 MB attachment in, stored, and downloaded again.

Starts mailpit_py (the CLI, own process, default temporary store, --max-message-size 100MB),
reads its resident memory (VmRSS) when idle, sends the message over SMTP with smtplib, then
downloads the attachment and the raw message over HTTP in 1 MB reads, checking both byte for
byte. It prints the server's peak RSS growth (VmHWM - idle VmRSS, from /proc) as a ratio to the
message size; the target is under 3x. Run it alone: /proc is read, not sampled.

With --text it measures big text bodies instead: for each of a text/plain body in
quoted-printable, the same in base64, and a text/html body in quoted-printable (each --mb MB of
text), the peak of Python's allocations (tracemalloc) while parsing the message and building the
record the store keeps, then the server's peak RSS growth while it stores the message sent over
SMTP, both as a multiple of the message size; then that the message shows its text, that a word
near its start is found by search, and that the raw download is byte-exact.

    .venv/bin/python bench/bigmail.py [--mb 50] [--attachment-mb 40]
    .venv/bin/python bench/bigmail.py --text [--mb 50]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import os
import smtplib
import sys
import time
import tracemalloc
import urllib.parse
import urllib.request
from email.message import EmailMessage
from email.policy import SMTP

from _common import REPO, proc_kb, start_mailpit

sys.path.insert(0, str(REPO))

from mailpit_py.mailbox.record import build_record  # noqa: E402
from mailpit_py.models import Envelope  # noqa: E402
from mailpit_py.parse.message import parse_message  # noqa: E402

TEXT_KINDS = ("text/plain, quoted-printable", "text/plain, base64", "text/html, quoted-printable")
NEEDLE = "zanzibarquokka"  # a word near the start of each text body, looked for by search


def build(total_mb: int, attachment_mb: int) -> tuple[bytes, bytes]:
    attachment = os.urandom(attachment_mb * 1000 * 1000)  # random: incompressible, like media
    msg = EmailMessage()
    msg["From"] = "big@example.com"
    msg["To"] = "you@example.com"
    msg["Subject"] = "big mail"
    # Text filler brings the message up to about the asked total (base64 grows the attachment
    # by 4/3, and its 76-character lines by a line break each).
    filler = total_mb * 1000 * 1000 - len(attachment) * 4 // 3 * 78 // 76
    msg.set_content("line of text filler for a big message\n" * max(filler // 38, 1))
    msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="b")
    return msg.as_bytes(policy=SMTP), attachment  # CRLF, as it goes over the wire


def build_text(kind: str, total_mb: int) -> bytes:
    """One message whose only part is about total_mb MB of text (UTF-8, a few non-ASCII)."""
    line = "The quick brown fox jumps over the lazy dog; caf\u00e9 au lait = 2 \u20ac.\n"
    text = (f"{NEEDLE} starts the text.\n" + line * (total_mb * 1000 * 1000 // len(line))).encode()
    if kind.startswith("text/html"):
        text = b"<html><body><p>" + text.replace(b"\n", b"</p>\n<p>") + b"</p></body></html>\n"
    ctype = "text/html" if kind.startswith("text/html") else "text/plain"
    if kind.endswith("base64"):
        cte, body = "base64", base64.encodebytes(text)
    else:
        cte, body = "quoted-printable", binascii.b2a_qp(text)
    head = (
        "From: big@example.com\nTo: you@example.com\nSubject: big text\n"
        "Date: Mon, 01 Jan 2024 00:00:00 +0000\nMessage-ID: <big-text@example.com>\n"
        f"MIME-Version: 1.0\nContent-Type: {ctype}; charset=utf-8\n"
        f"Content-Transfer-Encoding: {cte}\n\n"
    ).encode()
    return (head + body).replace(b"\n", b"\r\n")  # CRLF, as it goes over the wire


def traced_peak(raw: bytes) -> int:
    """Peak bytes Python allocates while parsing `raw` and building its record (raw excluded)."""
    envelope = Envelope("big@example.com", ("you@example.com",))
    tracemalloc.start()
    try:
        parsed = parse_message(raw, envelope)
        build_record(
            "x",
            parsed,
            raw,
            created=0.0,
            username="",
            session_uid="",
            transcript=(),
            envelope=envelope,
        )
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def text_bodies(total_mb: int) -> int:
    """The --text mode: memory per big text body, in process and in the server."""
    ok = True
    for kind in TEXT_KINDS:
        raw = build_text(kind, total_mb)
        traced = traced_peak(raw)
        server = start_mailpit("--max-message-size", "200MB")
        try:
            idle = proc_kb(server.pid, "VmRSS")
            t = time.perf_counter()
            with smtplib.SMTP("127.0.0.1", server.port, timeout=300) as client:
                client.sendmail("big@example.com", ["you@example.com"], raw)
            took = time.perf_counter() - t
            peak = proc_kb(server.pid, "VmHWM")
            with urllib.request.urlopen(server.url + "api/v1/messages", timeout=60) as resp:
                uid = json.loads(resp.read())["messages"][0]["ID"]
            with urllib.request.urlopen(server.url + f"api/v1/message/{uid}", timeout=300) as resp:
                detail = json.loads(resp.read())
            shown = NEEDLE in (detail["HTML"] if kind.startswith("text/html") else detail["Text"])
            query = urllib.parse.quote(NEEDLE)
            with urllib.request.urlopen(server.url + f"api/v1/search?query={query}") as resp:
                found = [m["ID"] for m in json.loads(resp.read())["messages"]] == [uid]
            raw_size, raw_digest = download(server.url + f"api/v1/message/{uid}/raw")
            exact = (raw_size, raw_digest) == (len(raw), hashlib.sha256(raw).hexdigest())
        finally:
            server.stop()
        good = shown and found and exact
        ok = ok and good
        print(f"{kind}: message {len(raw) / 1e6:.1f} MB, stored in {took:.2f} s")
        print(f"  parse + record, Python peak  {traced / len(raw):5.2f}x message")
        print(f"  server peak RSS growth       {(peak - idle) * 1024 / len(raw):5.2f}x message")
        print(
            "  text shown, found by search, raw byte-exact"
            if good
            else f"  FAILED: shown={shown} found={found} raw byte-exact={exact}"
        )
    return 0 if ok else 1


def download(url: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with urllib.request.urlopen(url, timeout=300) as resp:
        while chunk := resp.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--attachment-mb", type=int, default=40)
    parser.add_argument("--text", action="store_true", help="measure big text bodies instead")
    args = parser.parse_args()
    if args.text:
        return text_bodies(args.mb)
    raw, attachment = build(args.mb, args.attachment_mb)
    server = start_mailpit("--max-message-size", "200MB")
    proc, port, url = server.proc, server.port, server.url
    try:
        idle = proc_kb(proc.pid, "VmRSS")
        t = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", port, timeout=300) as client:
            client.sendmail("big@example.com", ["you@example.com"], raw)
        took = time.perf_counter() - t
        after_ingest = proc_kb(proc.pid, "VmHWM")
        with urllib.request.urlopen(url + "api/v1/messages", timeout=60) as resp:
            summary = json.loads(resp.read())["messages"][0]
        with urllib.request.urlopen(url + f"api/v1/message/{summary['ID']}", timeout=60) as resp:
            detail = json.loads(resp.read())
        part = detail["Attachments"][0]["PartID"]
        t = time.perf_counter()
        size, digest = download(url + f"api/v1/message/{summary['ID']}/part/{part}")
        part_took = time.perf_counter() - t
        raw_size, raw_digest = download(url + f"api/v1/message/{summary['ID']}/raw")
        peak = proc_kb(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(30)
    ok = (size, digest) == (len(attachment), hashlib.sha256(attachment).hexdigest()) and (
        raw_size,
        raw_digest,
    ) == (len(raw), hashlib.sha256(raw).hexdigest())
    mb = len(raw) / 1e6
    print(f"message {mb:.1f} MB, attachment {len(attachment) / 1e6:.1f} MB")
    print(f"  SMTP send + commit      {took:6.2f} s")
    print(f"  attachment download     {part_took:6.2f} s")
    print(f"  idle RSS                {idle / 1024:6.0f} MB")
    print(f"  peak growth, ingest     {(after_ingest - idle) / 1024:6.0f} MB")
    ratio = (peak - idle) * 1024 / len(raw)
    print(f"  peak growth, all        {(peak - idle) / 1024:6.0f} MB = {ratio:.2f}x message")
    print("  downloads byte-exact" if ok else "  DOWNLOAD MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
