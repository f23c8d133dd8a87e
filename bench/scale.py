"""Reads at scale: fills a database with N messages, then times the calls the UI and API make.

Messages go in through `Mailbox.deliver` (the same parse and store path as SMTP, without the
sockets): mostly small ones; 1 in 100 has an attachment, of 100 KB mostly, and of 500 KB (1 in
500 messages), 1 MB (1 in 2,000) and 5 MB (1 in 10,000): at 100,000 messages about 250 MB of
attachments. Then it times, best of 5, opening the existing database, the first page of the
list, a deep page and the middle one, the counts, a word search, a `header:` and a `from:`
search, substring searches (a rare one, one inside numbers, one found in every message), and
opening a small message and one with a 5 MB attachment; then the same reads, and the 5 MB
attachment's download, through the REST API of a server on the file; with `--ui`, the first
screen of the web UI in headless Chromium. Without --keep it then times deleting everything.
The performance targets (docs/performance.md: first page < 10 ms, deep page < 20 ms, searches
< 50 ms, open < 10 ms, delete all < 2 s, start-up < 1 s, RSS < 150 MB).

    .venv/bin/python bench/scale.py [-n 100000] [--db PATH] [--keep] [--ui]
    .venv/bin/python bench/scale.py -n 20000 --database postgresql://user:pw@host/db

With --database (or --db) a postgresql:// URL, the same runs on PostgreSQL: an empty database is
filled first, one that holds messages is reused.
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store.open import is_postgres

ENVELOPE = Envelope("sender@example.com", ("user@example.org",))
# Attachment sizes by how often they come (every Nth message), the rarest first; see message().
SIZES = ((10_000, 5_000_000), (2_000, 1_000_000), (500, 500_000), (100, 100_000))
ATTACHMENTS = {
    size: base64.encodebytes(os.urandom(size)).replace(b"\n", b"\r\n") for _, size in SIZES
}


def attachment(i: int) -> bytes:
    """The base64 attachment of message `i` (one in 100 has one)."""
    return next(ATTACHMENTS[size] for every, size in SIZES if i % every == 0)


def message(i: int) -> bytes:
    head = (
        f"From: Sender {i % 97} <s{i % 97}@example.com>\r\nTo: user{i % 50}@example.org\r\n"
        f"X-Campaign: c{i % 10}\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n"
    )
    if i % 100:
        return (
            f"{head}Subject: Hello {i} word{i % 1000}\r\n\r\n"
            f"Body of message {i}, lorem ipsum dolor sit amet {i % 777}.\r\n"
        ).encode()
    return (
        (
            f"{head}Subject: Report {i} quarterly\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=B\r\n\r\n"
            "--B\r\nContent-Type: text/plain\r\n\r\n"
            f"See the attached report {i}.\r\n"
            f"--B\r\nContent-Type: application/pdf; name=r{i}.pdf\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + attachment(i)
        + b"--B--\r\n"
    )


def fill(path: str, n: int, box_of: Callable[[int], str] | None = None) -> None:
    """Store messages 0..n-1; `box_of(i)`, when given, names message i's mailbox (as routing
    would: bench/mailboxes.py), else every one goes to the default mailbox."""
    mb = Mailbox(Config(database=path, max_messages=0))
    started = time.perf_counter()
    pending = []
    for i in range(n):
        boxes = None if box_of is None else {box_of(i): ENVELOPE.rcpt_to}
        pending.append(mb.deliver(ENVELOPE, message(i), boxes=boxes))
        if len(pending) >= 2000:  # keep memory flat; the writer batches what is queued
            for fut in pending:
                fut.result()
            pending.clear()
    for fut in pending:
        fut.result()
    mb.close()
    print(f"stored {n} messages in {time.perf_counter() - started:.1f} s")


def best(label: str, fn: Callable[[], Any], runs: int = 5) -> None:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    print(f"  {label:<34} {min(times) * 1000:8.2f} ms")


def over_http(path: str, total: int, uid: str, big: str, part: str) -> None:
    """The same reads through the REST API of a server on this database, timed by the client.

    Each request opens its own connection, as urllib does, so the times are an upper bound of
    the server's: they include the loopback round trip and the HTTP parsing on both ends.
    """
    from mailpit_py.server import Server

    cfg = Config(
        smtp_addr="127.0.0.1:0",
        http_addr="127.0.0.1:0",
        database=path,
        max_messages=0,
        disable_checks=True,  # checking the stored messages would compete with the timings
    )
    with Server(cfg) as mp:
        api = mp.http_url.rstrip("/") + "/api/v1"

        def get(url: str) -> bytes:
            with urllib.request.urlopen(url, timeout=60) as resp:
                return resp.read()

        print(f"  over HTTP ({mp.http_url}, a new connection per request):")
        best("  GET messages (first page)", lambda: get(f"{api}/messages?limit=50"))
        best(
            f"  GET messages?start={total - 1000}",
            lambda: get(f"{api}/messages?start={max(0, total - 1000)}&limit=50"),
        )
        best("  GET search?query=quarterly", lambda: get(f"{api}/search?query=quarterly"))
        best("  GET search?query=uarterl", lambda: get(f"{api}/search?query=uarterl"))
        best(
            "  GET search?query=header:...",
            lambda: get(f"{api}/search?query=" + quote("header:X-Campaign:c3")),
        )
        best("  GET message/ID", lambda: get(f"{api}/message/{uid}"))
        size = len(get(f"{api}/message/{big}/part/{part}"))
        best(
            f"  GET part ({size / 1e6:.1f} MB attachment)",
            lambda: get(f"{api}/message/{big}/part/{part}"),
        )


def ui_first_screen(path: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from playwright.sync_api import sync_playwright

    from mailpit_py.server import Server

    cfg = Config(smtp_addr="127.0.0.1:0", http_addr="127.0.0.1:0", database=path, max_messages=0)
    with Server(cfg) as mp, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("MAILPIT_PY_CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for _ in range(3):
            t = time.perf_counter()
            page.goto(mp.http_url)
            page.locator("#list .row").first.wait_for()
            rows = page.locator("#list .row").count()
            print(f"  UI first screen (rows: {rows}) {(time.perf_counter() - t) * 1000:12.0f} ms")
        browser.close()


def _holds_messages(path: str) -> bool:
    """Whether the database exists (a file) or holds messages (a PostgreSQL URL)."""
    if not is_postgres(path):
        return os.path.exists(path)
    mb = Mailbox(Config(database=path, max_messages=0))
    try:
        return mb.counts()[0] > 0
    finally:
        mb.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument(
        "--db",
        "--database",
        help="database file (reused when it exists) or postgresql:// URL (reused unless empty)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database file")
    parser.add_argument("--ui", action="store_true", help="also time the web UI's first screen")
    args = parser.parse_args()
    path = args.db or os.path.join(tempfile.mkdtemp(prefix="mailpit-scale-"), "scale.db")
    try:
        if not _holds_messages(path):
            fill(path, args.n)
        t = time.perf_counter()
        mb = Mailbox(Config(database=path, max_messages=0))
        opened = (time.perf_counter() - t) * 1000
        total, _ = mb.counts()
        size = mb.store.size_bytes()
        print(f"{total} messages, {size / 1e6:.0f} MB; opened in {opened:.1f} ms")
        best("list, first page (50)", lambda: mb.list_messages(0, 50))
        best(f"list, page at {total - 1000}", lambda: mb.list_messages(max(0, total - 1000), 50))
        # The deepest walk: a page is found from the nearer end of the list (store/queries.py).
        best(f"list, page at {total // 2}", lambda: mb.list_messages(total // 2, 50))
        best("counts (total, unread)", mb.counts)
        best("search 'quarterly'", lambda: mb.search("quarterly", 0, 50))
        best("search header:X-Campaign:c3", lambda: mb.search("header:X-Campaign:c3", 0, 50))
        best("search from:s42@", lambda: mb.search("from:s42@", 0, 50))
        # Substrings, as Mailpit's free text finds them: rare, inside numbers, in every message.
        best("search 'uarterl' (substring)", lambda: mb.search("uarterl", 0, 50))
        best("search '4711' (inside numbers)", lambda: mb.search("4711", 0, 50))
        best("search 'ample.com' (everywhere)", lambda: mb.search("ample.com", 0, 50))
        uid = mb.list_messages(min(500, total - 1), 1)[0]["ID"]
        best("open a message", lambda: mb.get(uid))
        # One with a 5 MB attachment (message 0 has one, whatever -n).
        big = mb.search("larger:4M", 0, 1)[0][0]
        best(f"open one of {big['Size'] / 1e6:.1f} MB", lambda: mb.get(big["ID"]))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  {'peak RSS (the fill included)':<34} {rss:8.0f} MB")
        over_http(path, total, uid, big["ID"], mb.get(big["ID"]).detail["Attachments"][0]["PartID"])
        if args.ui:  # before deleting: an empty list would never show a row
            ui_first_screen(path)
        if not args.keep:  # destructive, so only on a database this run may throw away
            t = time.perf_counter()
            mb.delete_all()
            print(f"  {'delete all':<34} {(time.perf_counter() - t) * 1000:8.0f} ms")
        mb.close()
    finally:
        if not args.keep and not args.db:
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)  # made for this run
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
