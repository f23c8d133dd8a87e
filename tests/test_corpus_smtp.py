"""Every test message (hand-written and real-world) goes in over SMTP and comes out intact."""

from __future__ import annotations

import json
import smtplib
import urllib.request

import pytest

from helpers import CORPORA, MESSAGES, corpus_names, corpus_root, make_server, send_raw, wait_until


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
        assert mp.mailbox is not None
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


@pytest.mark.parametrize(
    ("name", "selectors"),
    [("dkim-rsa.eml", ["rsa2026"]), ("dkim-ed25519-rsa.eml", ["ed2026", "rsa2026"])],
)
def test_hand_written_signed_messages_pass_dkim_in_the_checks_at_ingest(
    name: str, selectors: list[str]
) -> None:
    # The keys beside the messages stand in for DNS, as a developer's override file would.
    keys = MESSAGES / "dkim-keys" / "dns-records.txt"
    raw = (MESSAGES / name).read_bytes()
    with make_server(dns_override=str(keys), dns_offline=True) as mp:
        mailbox = mp.mailbox
        assert mailbox is not None
        msg_id = send_raw(mp, raw)
        stored = wait_until(lambda: mailbox.checks(msg_id), what="the checks at ingest")
        with urllib.request.urlopen(f"{mp.http_url}api/v1/message/{msg_id}/auth-check") as resp:
            report = json.loads(resp.read())
    assert [d["Result"] for d in stored["Auth"]["DKIM"]] == ["pass"] * len(selectors)
    assert report == stored["Auth"]
    for selector in selectors:
        assert (
            f"dkim=pass header.d=signed.example.com header.s={selector}"
            in report["AuthenticationResults"]
        )
