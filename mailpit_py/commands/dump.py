"""`mailpit-py dump DIR`: export messages as ID.eml files, byte for byte as stored, from a
database file or from a running instance's API."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mailpit_py.commands._common import (
    EX_CANTCREAT,
    EX_DATAERR,
    EX_NOINPUT,
    EX_OK,
    EX_TEMPFAIL,
    EX_USAGE,
    CommandError,
    Progress,
    add_source_options,
    error,
)
from mailpit_py.commands.readyz import default_url

PROG = "mailpit-py dump"
PAGE = 200

EXAMPLES = """\
Each message is written as DIR/ID.eml with the exact bytes received; DIR is created if
needed and existing files of the same name are overwritten.

exit status: 0 done; 66 the database file is missing; 75 the instance cannot be reached;
65 a bad --query; 73 DIR cannot be written; 64 bad usage.

examples:
  mailpit-py dump backup/                                  # from http://127.0.0.1:8025/
  mailpit-py dump --url http://mail.test:8025/ --query 'from:alerts is:unread' out/
  mailpit-py dump --database mail.db out/                  # no server needed
  mailpit-py dump --database old.db out/ && mailpit-py ingest out/   # move messages
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export messages as .eml files, from a running instance's API or from a "
        "database file.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dir", metavar="DIR", help="folder to write ID.eml files into")
    add_source_options(parser)
    parser.add_argument(
        "--query", default="", help="only messages matching this search, e.g. 'from:bob'"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return parser


class ApiSource:
    def __init__(self, url: str) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.total: int | None = None  # known once the first page arrives

    def _get(self, path: str) -> bytes:
        try:
            with urllib.request.urlopen(self.url + path, timeout=60) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            body = exc.read(500).decode(errors="replace").strip()
            code = EX_DATAERR if exc.code == 400 else EX_TEMPFAIL
            raise CommandError(f"GET {self.url}{path} answered {exc.code}: {body}", code) from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise CommandError(
                f"cannot reach {self.url} ({reason}): is mailpit-py running there? Start it "
                "with `mailpit-py`, pass --url with the address of its web UI, or read a "
                "database file with --database",
                EX_TEMPFAIL,
            ) from None

    def ids(self, query: str) -> Iterator[str]:
        start = 0
        while True:
            if query:
                q = urllib.parse.urlencode({"query": query, "start": start, "limit": PAGE})
                page: dict[str, Any] = json.loads(self._get(f"api/v1/search?{q}"))
            else:
                page = json.loads(self._get(f"api/v1/messages?start={start}&limit={PAGE}"))
            found = page.get("messages") or []
            self.total = int(page.get("messages_count", 0))
            for m in found:
                yield m["ID"]
            start += len(found)
            if not found or start >= int(page.get("messages_count", 0)):
                return

    def raw(self, msg_id: str) -> bytes:
        return self._get(f"api/v1/message/{urllib.parse.quote(msg_id)}/raw")

    def close(self) -> None:
        pass


class DatabaseSource:
    def __init__(self, path: str) -> None:
        from mailpit_py.config.settings import Config
        from mailpit_py.mailbox.facade import Mailbox
        from mailpit_py.store.records import StoreError

        self.total: int | None = None
        if not Path(path).is_file():
            raise CommandError(f"{path}: no such database file", EX_NOINPUT)
        try:
            self.mb = Mailbox(Config(database=path, max_messages=0))
        except (StoreError, OSError) as exc:
            raise CommandError(f"cannot open database {path}: {exc}", EX_NOINPUT) from None

    def ids(self, query: str) -> Iterator[str]:
        from mailpit_py.store.search import SearchError

        # All IDs first: the listing is newest first, and paging by offset is stable only
        # while nothing arrives, which a live database does not promise.
        out: list[str] = []
        start = 0
        while True:
            try:
                page = (
                    self.mb.search(query, start, PAGE)[0]
                    if query
                    else self.mb.list_messages(start, PAGE)
                )
            except SearchError as exc:
                raise CommandError(f"--query: {exc}", EX_DATAERR) from None
            out.extend(m["ID"] for m in page)
            start += len(page)
            if len(page) < PAGE:
                break
        self.total = len(out)
        yield from out

    def raw(self, msg_id: str) -> bytes:
        return bytes(self.mb.raw(msg_id))

    def close(self) -> None:
        self.mb.close()


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        error(PROG, f"cannot create {out}: {exc.strerror or exc}")
        return EX_CANTCREAT
    progress = Progress("dump")
    written = 0
    source: ApiSource | DatabaseSource | None = None
    try:
        if args.database:
            source = DatabaseSource(args.database)
            origin = f"database {args.database}"
        else:
            source = ApiSource(args.url or default_url(dict(os.environ)))
            origin = source.url
        for msg_id in source.ids(args.query):
            if "/" in msg_id or msg_id.startswith("."):
                raise CommandError(
                    f"refusing a message ID that is not a file name: {msg_id!r}", EX_DATAERR
                )
            data = source.raw(msg_id)
            try:
                (out / f"{msg_id}.eml").write_bytes(data)
            except OSError as exc:
                raise CommandError(
                    f"cannot write {out / msg_id}.eml: {exc}", EX_CANTCREAT
                ) from None
            written += 1
            progress.total = source.total
            progress.update(f"{written} written", count=written)
    except CommandError as exc:
        progress.done()
        error(PROG, str(exc))
        return exc.code if exc.code else EX_USAGE
    finally:
        if source is not None:
            source.close()
    progress.done()
    if not args.quiet:
        what = f" matching {args.query!r}" if args.query else ""
        print(f"{written} messages{what} written to {out} from {origin}")
    return EX_OK
