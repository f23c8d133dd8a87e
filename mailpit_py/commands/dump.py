"""`mailpit-py dump DIR`: export messages as ID.eml files, byte for byte as stored, from a
database file or from a running instance's API; each mailbox but the default into DIR/NAME/."""

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
    add_max_message_size,
    add_source_options,
    error,
    split_credentials,
)
from mailpit_py.commands.readyz import default_url

PROG = "mailpit-py dump"
PAGE = 200

EXAMPLES = """\
Each message is written as DIR/ID.eml with the exact bytes received; DIR is created if
needed and existing files of the same name are overwritten. With mailboxes, the default
mailbox's messages go to DIR/ID.eml as well (as Mailpit's dump), and each other mailbox's to
DIR/NAME/ID.eml (made when it has messages); --mailbox NAME writes that mailbox alone, to
DIR/ID.eml.

exit status: 0 done; 66 the database file or the --mailbox is missing; 75 the instance cannot
be reached; 65 a bad --query; 73 DIR cannot be written; 64 bad usage.

examples:
  mailpit-py dump backup/                                  # from http://127.0.0.1:8025/
  mailpit-py dump --url http://mail.test:8025/ --query 'from:alerts is:unread' out/
  mailpit-py dump --database mail.db out/                  # no server needed
  mailpit-py dump --database old.db out/ && mailpit-py ingest out/   # move messages
  mailpit-py dump --database mail.db --mailbox shop shop/   # one mailbox
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
    parser.add_argument(
        "--mailbox",
        metavar="NAME",
        help="only this mailbox's messages, written to DIR/ID.eml (default: every mailbox, "
        "the default one's in DIR, each other's in DIR/NAME)",
    )
    add_max_message_size(parser, "from --url, skip a message larger than this", "dump")
    parser.add_argument(
        "--tenant-id",
        default="",
        metavar="ID",
        help="with --database, the data of this tenant (the server's --tenant-id)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    parser.add_argument("-v", "--verbose", action="store_true", help="name each file written")
    return parser


class ApiSource:
    def __init__(self, url: str, limit: int = 0) -> None:
        url, self.auth = split_credentials(url)
        self.url = url if url.endswith("/") else url + "/"
        self.total: int | None = None  # known once the first page arrives
        self.limit = limit  # bytes of a message, 0: none

    def _get(self, path: str, missing_ok: bool = False, limit: int = 0) -> bytes:
        request = urllib.request.Request(self.url + path)
        if self.auth is not None:
            request.add_header("Authorization", self.auth)
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                # A limit reads one byte more, so a larger answer shows without reading it all.
                return bytes(resp.read(limit + 1) if limit else resp.read())
        except urllib.error.HTTPError as exc:
            if missing_ok and exc.code == 404:
                return b""
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

    def boxes(self) -> list[str] | None:
        """The mailboxes this instance lets us read; None when it has none (Mailpit, or an
        older mailpit-py): its un-prefixed API is then the whole store."""
        found = self._get("api/v1/mailboxes", missing_ok=True)
        if not found:
            return None
        try:
            return [str(b["Name"]) for b in json.loads(found)["Mailboxes"]]
        except (ValueError, KeyError, TypeError):
            return None  # some other server's page: read it as one without mailboxes

    @staticmethod
    def _prefix(box: str | None) -> str:
        return "" if box is None else f"mailbox/{urllib.parse.quote(box, safe='@+')}/"

    def ids(self, query: str, box: str | None = None) -> Iterator[str]:
        api = self._prefix(box) + "api/v1"
        start = 0
        while True:
            if query:
                q = urllib.parse.urlencode({"query": query, "start": start, "limit": PAGE})
                page: dict[str, Any] = json.loads(self._get(f"{api}/search?{q}"))
            else:
                page = json.loads(self._get(f"{api}/messages?start={start}&limit={PAGE}"))
            found = page.get("messages") or []
            self.total = int(page.get("messages_count", 0))
            for m in found:
                yield m["ID"]
            start += len(found)
            if not found or start >= int(page.get("messages_count", 0)):
                return

    def raw(self, msg_id: str, box: str | None = None) -> bytes | None:
        """The message's bytes; None when it is larger than --max-message-size."""
        path = f"{self._prefix(box)}api/v1/message/{urllib.parse.quote(msg_id)}/raw"
        data = self._get(path, limit=self.limit)
        return None if self.limit and len(data) > self.limit else data

    def close(self) -> None:
        pass


class DatabaseSource:
    def __init__(self, path: str, tenant_id: str = "") -> None:
        from mailpit_py.config.settings import Config
        from mailpit_py.mailbox.facade import Mailbox
        from mailpit_py.store.open import tenant_file, tenant_name
        from mailpit_py.store.records import StoreError

        self.total: int | None = None
        tenant = tenant_name(tenant_id)
        file = tenant_file(path, tenant) if tenant else path
        if not Path(file).is_file():
            raise CommandError(f"{file}: no such database file", EX_NOINPUT)
        try:
            self.mb = Mailbox(Config(database=path, max_messages=0, tenant_id=tenant_id))
        except (StoreError, OSError) as exc:
            raise CommandError(f"cannot open database {path}: {exc}", EX_NOINPUT) from None

    def boxes(self) -> list[str] | None:
        return [info.name for info in self.mb.boxes()]

    def ids(self, query: str, box: str | None = None) -> Iterator[str]:
        from mailpit_py.store.search import SearchError

        # All IDs first: the listing is newest first, and paging by offset is stable only
        # while nothing arrives, which a live database does not promise.
        out: list[str] = []
        start = 0
        while True:
            try:
                page = (
                    self.mb.search(query, start, PAGE, box=box)[0]
                    if query
                    else self.mb.list_messages(start, PAGE, box=box)
                )
            except SearchError as exc:
                raise CommandError(f"--query: {exc}", EX_DATAERR) from None
            out.extend(m["ID"] for m in page)
            start += len(page)
            if len(page) < PAGE:
                break
        self.total = len(out)
        yield from out

    def raw(self, msg_id: str, box: str | None = None) -> bytes | None:
        return bytes(self.mb.raw(msg_id, box=box))

    def close(self) -> None:
        self.mb.close()


DEFAULT_BOX = "default"  # (mailbox/boxes.py's name; imported late there, as the store is)


def plan(names: list[str] | None, only: str | None, out: Path) -> list[tuple[str | None, Path]]:
    """(mailbox, folder) to write: the --mailbox alone into DIR; else the default mailbox into
    DIR, as Mailpit's dump writes every message, and each other mailbox into DIR/NAME, so a
    store with one mailbox dumps as before. None as the mailbox: a server without mailboxes."""
    if only is not None:
        if names is None:
            raise CommandError(
                f"--mailbox {only}: this instance has no mailboxes (Mailpit, or an older "
                "mailpit-py, or --url without the server's --webroot): dump without --mailbox",
                EX_NOINPUT,
            )
        if only not in names:
            raise CommandError(
                f"no mailbox named {only!r}: there are {', '.join(names) or 'none you may see'}",
                EX_NOINPUT,
            )
        return [(only, out)]
    if names is None:
        return [(None, out)]
    for name in names:
        if name in (".", ".."):  # a valid mailbox name, but no folder of its own
            raise CommandError(
                f"the mailbox {name!r} cannot be written into a folder named after it: dump it "
                f"alone with --mailbox {name} into a DIR of its own, and the others one by one",
                EX_USAGE,
            )
    ordered = sorted(names, key=lambda name: name != DEFAULT_BOX)  # the default mailbox first
    return [(name, out if name == DEFAULT_BOX else out / name) for name in ordered]


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        error(PROG, f"cannot create {out}: {exc.strerror or exc}")
        return EX_CANTCREAT
    progress = Progress("dump")
    written = skipped = 0
    folders: list[str] = []  # the other mailboxes' folders written into
    source: ApiSource | DatabaseSource | None = None
    try:
        if args.database:
            source = DatabaseSource(args.database, args.tenant_id)
            origin = f"database {args.database}"
        else:
            source = ApiSource(args.url or default_url(dict(os.environ)), args.max_message_size)
            origin = source.url
        todo = [
            (box, folder, list(source.ids(args.query, box)))
            for box, folder in plan(source.boxes(), args.mailbox, out)
        ]
        progress.total = sum(len(ids) for _, _, ids in todo)
        for box, folder, ids in todo:
            made = folder == out  # a mailbox's folder is made with its first message
            for msg_id in ids:
                if "/" in msg_id or msg_id.startswith("."):
                    raise CommandError(
                        f"refusing a message ID that is not a file name: {msg_id!r}", EX_DATAERR
                    )
                data = source.raw(msg_id, box)
                if data is None:
                    skipped += 1
                    error(PROG, f"{msg_id} is larger than --max-message-size: skipped")
                    continue
                try:
                    if not made:
                        folder.mkdir(exist_ok=True)
                        folders.append(f"{folder.name}/")
                        made = True
                    (folder / f"{msg_id}.eml").write_bytes(data)
                except OSError as exc:
                    raise CommandError(
                        f"cannot write {folder / msg_id}.eml: {exc}", EX_CANTCREAT
                    ) from None
                written += 1
                if args.verbose:
                    print(folder / f"{msg_id}.eml")
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
        where = ""
        if folders:
            where = f" (the default mailbox's in {out}, the others' in {', '.join(folders)})"
        larger = f", {skipped} larger than --max-message-size skipped" if skipped else ""
        print(f"{written} messages{what} written to {out} from {origin}{where}{larger}")
    return EX_OK
