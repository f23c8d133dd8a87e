"""`mailpit-py queue`: list the relay outbox like `mailq`, from a running instance or a database
file: one line per queued copy with its age, attempts, next attempt, recipients and last error."""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mailpit_py.commands._common import (
    EX_NOINPUT,
    EX_OK,
    EX_TEMPFAIL,
    EX_USAGE,
    CommandError,
    add_source_options,
    error,
    split_credentials,
)
from mailpit_py.commands.readyz import default_url

PROG = "mailpit-py queue"

EXAMPLES = """\
Each queued copy is one line: outbox ID, age, attempts, when it is tried next, the message
ID, the recipients, then (indented on the next line) the upstream's last reply. An empty
queue prints "relay queue is empty". --json prints what GET /api/v1/relay/queue answers.

exit status: 0 listed (empty or not); 66 the database file is missing; 75 the instance
cannot be reached; 64 bad usage.

examples:
  mailpit-py queue                                    # from http://127.0.0.1:8025/
  mailpit-py queue --url http://mail.test:8025/mail/  # one with a --webroot
  mailpit-py queue --database mail.db                 # no server needed
  mailpit-py queue --json | jq '.Queue[].To'
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="List the relay outbox (copies waiting to be relayed or retried), like "
        "mailq, from a running instance's API or from a database file.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_source_options(parser)
    parser.add_argument(
        "--json", action="store_true", help="print the listing as JSON (the API's answer)"
    )
    return parser


def from_api(url: str) -> dict[str, Any]:
    url, auth = split_credentials(url)
    url = url if url.endswith("/") else url + "/"
    target = url + "api/v1/relay/queue"
    request = urllib.request.Request(target)
    if auth is not None:
        request.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data
    except urllib.error.HTTPError as exc:
        body = exc.read(500).decode(errors="replace").strip()
        hint = " (an instance without the relay queue route: Mailpit itself?)" * (exc.code == 404)
        raise CommandError(f"GET {target} answered {exc.code}: {body}{hint}", EX_TEMPFAIL) from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise CommandError(
            f"cannot reach {url} ({reason}): is mailpit-py running there? Start it with "
            "`mailpit-py`, pass --url with the address of its web UI, or read a database file "
            "with --database",
            EX_TEMPFAIL,
        ) from None


def from_database(path: str) -> dict[str, Any]:
    from mailpit_py.config.settings import Config
    from mailpit_py.mailbox.facade import Mailbox
    from mailpit_py.store.records import StoreError

    if not Path(path).is_file():
        raise CommandError(f"{path}: no such database file", EX_NOINPUT)
    try:
        mb = Mailbox(Config(database=path, max_messages=0))
    except (StoreError, OSError) as exc:
        raise CommandError(f"cannot open database {path}: {exc}", EX_NOINPUT) from None
    try:
        return mb.relay_queue(time.time())
    finally:
        mb.close()


def age(seconds: float) -> str:
    """Short like mailq's: 42s, 5m07s, 3h02m, 2d04h."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def render(listing: dict[str, Any]) -> str:
    items = listing.get("Queue") or []
    total = int(listing.get("Total", len(items)))
    if not total:
        return "relay queue is empty"
    lines = [f"{'ID':>6}  {'AGE':>7}  {'TRIES':>5}  {'NEXT ATTEMPT':<24}  MESSAGE  RECIPIENTS"]
    for item in items:
        lines.append(
            f"{item['ID']:>6}  {age(item['AgeSeconds']):>7}  {item['Attempts']:>5}  "
            f"{item['NextAttempt']:<24}  {item['MessageID']}  {' '.join(item['To'])}"
        )
        lines.append(f"        ({item['LastError'] or 'not attempted yet'})")
    shown = f"{len(items)} shown, " if len(items) < total else ""
    lines.append(f"-- {total} queued ({shown}oldest {age(listing.get('OldestSeconds', 0))})")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.database:
            listing = from_database(args.database)
        else:
            listing = from_api(args.url or default_url(dict(os.environ)))
    except CommandError as exc:
        error(PROG, str(exc))
        return exc.code if exc.code else EX_USAGE
    print(json.dumps(listing, indent=2) if args.json else render(listing))
    return EX_OK
