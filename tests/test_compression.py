"""--compression 1-3 (Mailpit's flag): raw messages are stored compressed, and every way of
reading one back (API, streamed download, POP3, search index rebuild, dump) gets the exact bytes."""

from __future__ import annotations

import os
import poplib
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from helpers import REPO, make_server, send_raw
from mailpit_py.store.open import open_store
from mailpit_py.store.rawcodec import MARK, pack, unpack, unpack_stream


def big_message(lines: int, tag: str) -> bytes:
    body = "\r\n".join(f"{tag} line {i}: the same words again and again" for i in range(lines))
    return (
        f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {tag}\r\n"
        f"Message-ID: <{tag}@example.com>\r\n\r\n{body}\r\n"
    ).encode()


def stored_sizes(database: str) -> list[int]:
    """The bytes each raw message takes in the database."""
    if database.startswith("postgresql"):
        import psycopg

        with psycopg.connect(database) as conn:
            return [r[0] for r in conn.execute("SELECT octet_length(raw) FROM message_data")]
    conn = sqlite3.connect(database)
    try:
        return [r[0] for r in conn.execute("SELECT length(raw) FROM message_data")]
    finally:
        conn.close()


def test_compressed_messages_read_back_byte_exact_every_way(database: str) -> None:
    small = big_message(20, "small")
    large = big_message(60_000, "large")  # ~3.5 MB: streamed in pieces on the way out
    with make_server(
        database=database, compression=2, pop3_addr="127.0.0.1:0", pop3_auth="u:p"
    ) as mp:
        uids = [send_raw(mp, small), send_raw(mp, large)]
        assert max(stored_sizes(database)) < len(large) // 10  # really compressed
        for uid, raw in zip(uids, (small, large), strict=True):
            with urllib.request.urlopen(mp.http_url + f"api/v1/message/{uid}/raw") as resp:
                assert int(resp.headers["Content-Length"]) == len(raw)
                assert resp.read() == raw
        pop = poplib.POP3(*mp.pop3_address, timeout=30)
        pop.user("u")
        pop.pass_("p")
        assert pop.stat()[1] == len(small) + len(large)
        assert b"\r\n".join(pop.retr(2)[1]) + b"\r\n" == large
        pop.quit()
        found = mp.mailbox.search("again", 0, 10)[1] if mp.mailbox else 0
        assert found == 2
    # The search index is made again from the compressed bytes.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MP_")}
    done = subprocess.run(
        [sys.executable, "-m", "mailpit_py", "reindex", database],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    store = open_store(database)
    try:
        assert store.raw(uids[1]) == large
    finally:
        store.close()


def test_without_compression_messages_are_stored_as_they_came(tmp_path: Path) -> None:
    db = str(tmp_path / "plain.db")
    raw = big_message(2000, "plain")
    with make_server(database=db) as mp:
        send_raw(mp, raw)
    assert stored_sizes(db) == [len(raw)]


def test_dump_writes_the_messages_uncompressed(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    raw = big_message(500, "dumped")
    with make_server(database=db, compression=3) as mp:
        uid = send_raw(mp, raw)
    assert stored_sizes(db)[0] < len(raw) // 5
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "mailpit_py", "dump", "--database", db, str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (out / f"{uid}.eml").read_bytes() == raw


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_the_codec_keeps_every_message_and_marks_what_it_compressed(level: int) -> None:
    for raw in (b"", b"x", b"Subject: a\r\n\r\nb\r\n" * 1000, MARK + b"hostile", MARK[:3]):
        stored = pack(raw, level)
        assert unpack(stored) == raw
        pieces = [stored[i : i + 7] for i in range(0, len(stored), 7)]
        assert b"".join(unpack_stream(pieces)) == raw
        # Mail that starts with the mark is always compressed, so the mark never misleads.
        assert stored.startswith(MARK) == (level > 0 or raw.startswith(MARK))


def test_the_level_is_checked_and_no_longer_warned_of() -> None:
    from mailpit_py.cli import config_from
    from mailpit_py.config.errors import ConfigError
    from mailpit_py.config.validate import notices

    cfg = config_from([], {"MP_COMPRESSION": "3"})
    assert cfg.compression == 3
    assert not [n for n in notices(cfg, {"MP_COMPRESSION": "3"}, []) if "compression" in n]
    with pytest.raises(ConfigError, match="--compression must be 0"):
        config_from(["--compression", "4"], {})
