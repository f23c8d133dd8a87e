"""Building the stored record of a message from its parse: what the store keeps, the search
index columns and the message detail (pure; runs off the writer thread)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mailpit_py import jsontext
from mailpit_py.models import Address, Envelope, ParsedMessage, Part
from mailpit_py.parse.html_text import html_to_text
from mailpit_py.parse.message import parse_message
from mailpit_py.store import detailcodec
from mailpit_py.store.records import MessageRecord
from mailpit_py.store.search import index_text
from mailpit_py.timefmt import rfc3339

# Address lists -> their JSON: an app sends from the same few addresses to the same few, so
# most messages find theirs here (bounded: emptied when full).
_ADDR_JSON: dict[tuple[Address, ...], str] = {}
ADDR_JSON_CACHE = 4096


def _addr_json(addrs: Sequence[Address]) -> str:
    if not addrs:
        return "[]"  # most messages have no Cc, Bcc or Reply-To: skip the encoder
    key = tuple(addrs)
    text = _ADDR_JSON.get(key)
    if text is None:
        if len(_ADDR_JSON) >= ADDR_JSON_CACHE:
            _ADDR_JSON.clear()
        text = _ADDR_JSON[key] = jsontext.dumps([a.to_api() for a in addrs])
    return text


def build_record(
    uid: str,
    parsed: ParsedMessage,
    raw: bytes,
    *,
    created: float,
    username: str,
    session_uid: str,
    transcript: Sequence[Sequence[Any]] | str,
    envelope: Envelope,
    origin: dict[str, Any] | None = None,
    refused: dict[str, Any] | None = None,
    mailbox: str = "default",
) -> MessageRecord:
    """Turn a parsed message into what the store keeps (pure; runs off the writer thread).
    `refused` is the receiver's refusal of a message kept anyway (--receiver); `mailbox` the
    mailbox it is stored in."""
    parts = [*parsed.inline, *parsed.attachments]
    return MessageRecord(
        uid=uid,
        mailbox=mailbox,
        created=created,
        size=len(raw),
        message_id=parsed.message_id,
        subject=parsed.subject,
        from_json=_addr_json([parsed.from_addr] if parsed.from_addr else []),
        to_json=_addr_json(parsed.to),
        cc_json=_addr_json(parsed.cc),
        bcc_json=_addr_json(parsed.bcc),
        reply_to_json=_addr_json(parsed.reply_to),
        username=username,
        snippet=parsed.snippet,
        attachments=len(parsed.attachments),
        inline_count=len(parsed.inline),
        session_uid=session_uid,
        raw=raw,
        detail=detailcodec.encode(message_detail(parsed, envelope, origin, refused)),
        transcript=transcript if isinstance(transcript, str) else jsontext.dumps(list(transcript)),
        parts=[(p.part_id, p.content_type, p.data) for p in parts],
        tags=list(parsed.tags),
        headers=list(parsed.headers),
        fts=_index_columns(parsed, parts),
        refused=jsontext.dumps(refused) if refused else "",
        listener=str((origin or {}).get("Listener") or ""),
    )


def index_record(uid: str, raw: bytes, detail: bytes | str) -> MessageRecord:
    """A stored message's record made again from its raw bytes, for its lost search index rows
    (the fields the index does not read are left empty)."""
    env = detailcodec.decode(detail).get("Envelope") or {}
    envelope = Envelope(str(env.get("From", "")), tuple(env.get("To") or ()))
    return build_record(
        uid,
        parse_message(raw, envelope),
        raw,
        created=0.0,
        username="",
        session_uid="",
        transcript=(),
        envelope=envelope,
    )


def message_detail(
    parsed: ParsedMessage,
    envelope: Envelope,
    origin: dict[str, Any] | None,
    refused: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the message view shows beyond the summary, as the store keeps it."""
    detail = {
        "ReturnPath": parsed.return_path,
        "ListUnsubscribe": parsed.list_unsubscribe.to_api(),
        "Date": rfc3339(parsed.date) if parsed.date else "",
        "Text": parsed.text,
        "HTML": parsed.html,
        "Inline": [p.to_api() for p in parsed.inline],
        "Attachments": [p.to_api() for p in parsed.attachments],
        "Headers": parsed.headers,  # (name, value) tuples, read back as lists (detailcodec)
        "Warnings": list(parsed.warnings),
        # The envelope and where it came from (HELO name, peer, TLS, AUTH user): ours, additive.
        "Envelope": {
            "From": envelope.mail_from,
            "To": list(envelope.rcpt_to),
            **(origin or {}),
        },
        "MessageIDGenerated": parsed.message_id_generated,
    }
    if refused:
        detail["Refused"] = refused  # the receiver's refusal: the message view shows why
    return detail


# Search sees this much of a body: a bounded prefix, so that a 50 MB body costs the index (and
# the memory of its ingest) no more than a 1 MB one; the whole body stays in the message.
SEARCH_BODY_CHARS = 1024 * 1024
# HTML read to find that much visible text (markup is mostly tags and attributes).
SEARCH_HTML_CHARS = 4 * SEARCH_BODY_CHARS


def _search_body(parsed: ParsedMessage) -> str:
    """The start of the text body (else of the HTML body's visible text) that search indexes."""
    if parsed.text:
        return parsed.text[:SEARCH_BODY_CHARS]
    if parsed.html:
        return html_to_text(parsed.html[:SEARCH_HTML_CHARS])[0][:SEARCH_BODY_CHARS]
    return ""


def _index_columns(parsed: ParsedMessage, parts: Sequence[Part]) -> tuple[str, str, str, str, str]:
    """The search index's columns: subject, addresses, body, attachment names, headers."""
    every = [
        *([parsed.from_addr] if parsed.from_addr else []),
        *parsed.to,
        *parsed.cc,
        *parsed.bcc,
        *parsed.reply_to,
    ]
    return (
        index_text(parsed.subject),
        index_text(" ".join(f"{a.name} {a.address}" for a in every)),
        index_text(_search_body(parsed)),
        index_text(" ".join(p.filename for p in parts)),
        # The headers column stays empty: no query reads it (free text searches what Mailpit's
        # does, and header:Name:value has the headers table). Filling it cost ~10% of the index.
        "",
    )
