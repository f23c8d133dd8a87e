"""Every test message (hand-written and real-world) goes in over SMTP and comes out intact."""

from __future__ import annotations

import json
import smtplib

import pytest

from helpers import CORPORA, corpus_names, corpus_root, make_server


def smtp_form(raw: bytes) -> bytes:
    """What smtplib's data() transmits for bytes: the bytes as they are (bare LFs included),
    dot-stuffed (undone on receipt), with CRLF appended unless already there."""
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


@pytest.mark.parametrize("which", CORPORA)
def test_every_corpus_message_is_accepted_stored_and_readable(which: str) -> None:
    root = corpus_root(which)
    names = corpus_names(root)
    assert len(names) >= (100 if which == "external" else 20)
    with make_server(max_messages=0, database=None) as mp:
        ids: dict[str, str] = {}
        with smtplib.SMTP(*mp.smtp_address) as client:
            client.ehlo()
            for name in names:
                raw = (root / name).read_bytes()
                client.mail("sender@example.com", ["BODY=8BITMIME"])
                client.rcpt("rcpt@example.org")
                code, reply = client.data(raw)
                assert code == 250, (name, reply)
                ids[name] = reply.decode().rsplit(" ", 1)[1]
        for name, msg_id in ids.items():
            raw = (root / name).read_bytes()
            assert mp.mailbox.raw(msg_id) == smtp_form(raw), name
            message = mp.mailbox.get(msg_id).to_api()
            assert message["Size"] == len(smtp_form(raw)), name
            json.dumps(message)  # serialisable as the API sends it
            for part in (*message["Attachments"], *message["Inline"]):
                ctype, data = mp.mailbox.part(msg_id, part["PartID"])
                assert len(data) == part["Size"], (name, part["PartID"])
        assert mp.mailbox.counts()[0] == len(names)
