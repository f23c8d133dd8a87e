"""The stored form of a message's detail: a pickle of plain data that loads without importing
anything, JSON text for anything else, and rows written before the change still read."""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpers import CORPORA, corpus_names, corpus_root
from mailpit_py import jsontext
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.mailbox.record import build_record, message_detail
from mailpit_py.models import Envelope
from mailpit_py.parse.message import parse_message
from mailpit_py.store import detailcodec

ENVELOPE = Envelope(mail_from="sender@example.com", rcpt_to=("rcpt@example.com",))
ORIGIN = {"Helo": "client.example", "Peer": "127.0.0.1:4321", "TLS": False, "Username": ""}


def as_json(value: object) -> object:
    """What the value was when the store kept JSON text."""
    return json.loads(jsontext.dumps(value))


@pytest.mark.parametrize("which", CORPORA)
def test_every_corpus_message_is_pickled_and_reads_back_as_its_json_did(which: str) -> None:
    root = corpus_root(which)
    names = corpus_names(root)
    assert len(names) > (50 if which == "external" else 15)
    for name in names:
        raw = (root / name).read_bytes()
        parsed = parse_message(raw, ENVELOPE)
        detail = message_detail(parsed, ENVELOPE, ORIGIN)
        stored = detailcodec.encode(detail)
        assert isinstance(stored, bytes), f"{name}: fell back to JSON"
        assert detailcodec.decode(stored) == as_json(detail), name
        rec = build_record(
            "x",
            parsed,
            raw,
            created=0.0,
            username="",
            session_uid="",
            transcript=(),
            envelope=ENVELOPE,
            origin=ORIGIN,
        )
        assert rec.detail == stored, name


def test_detail_holding_more_than_plain_data_is_kept_as_json_text() -> None:
    class Label(str):  # the parser's RFC 2231 values are a str subclass
        pass

    detail = {"Attachments": [{"FileName": Label("résumé.pdf")}], "Headers": [("A", "b")]}
    stored = detailcodec.encode(detail)
    assert isinstance(stored, str)
    assert detailcodec.decode(stored) == {
        "Attachments": [{"FileName": "résumé.pdf"}],
        "Headers": [["A", "b"]],
    }


class _Hostile:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch pwned",))


def test_a_pickle_that_names_any_class_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system"):
            detailcodec.decode(pickle.dumps({"Headers": [], "X": _Hostile()}))
        with pytest.raises(pickle.UnpicklingError, match="not plain data"):
            detailcodec.decode(pickle.dumps({"Headers": [], "When": datetime.now(UTC)}))
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "pwned").exists()


def test_rows_stored_as_json_before_schema_12_still_open(tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    mb = Mailbox(Config(database=str(db)))
    try:
        raw = b"From: a@example.com\r\nSubject: old row\r\n\r\nThe body.\r\n"
        uid = mb.deliver(ENVELOPE, raw).result(10)
        fresh = mb.get(uid).detail
    finally:
        mb.close()
    conn = sqlite3.connect(db)
    (stored,) = conn.execute("SELECT detail FROM message_data").fetchone()
    assert isinstance(stored, bytes)
    old = dict(fresh, Text="as JSON text")
    with conn:
        conn.execute("UPDATE message_data SET detail = ?", (jsontext.dumps(old),))
    conn.close()
    mb = Mailbox(Config(database=str(db)))
    try:
        assert mb.get(uid).detail == old
        assert mb.get(uid).detail["Headers"] == fresh["Headers"]
        assert all(isinstance(pair, list) for pair in fresh["Headers"])
    finally:
        mb.close()


def test_stored_detail_is_readable_by_a_fresh_interpreter(tmp_path: Path) -> None:
    # The pickle names no module of ours: a process that never imported mailpit_py loads it.
    parsed = parse_message(b"From: a@example.com\r\nSubject: hi\r\n\r\nBody\r\n", ENVELOPE)
    stored = detailcodec.encode(message_detail(parsed, ENVELOPE, ORIGIN))
    assert isinstance(stored, bytes)
    (tmp_path / "d.pickle").write_bytes(stored)
    code = (
        "import pickle, sys, json; d = pickle.loads(open(sys.argv[1], 'rb').read()); "
        "assert not any(m.startswith('mailpit_py') for m in sys.modules); print(repr(d['Text']))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "d.pickle")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == "'Body\\n'\n"
