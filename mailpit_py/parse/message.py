"""Turn the raw bytes of one message into a ParsedMessage: pure, fast and never raising."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from mailpit_py.models import Address, Envelope, ListUnsubscribe, ParsedMessage
from mailpit_py.parse.addresses import _addresses, _clean_tag, _list_unsubscribe, _parse_date
from mailpit_py.parse.bodies import _bodies
from mailpit_py.parse.headers import _MSGID_RE, _decode_words, _header_text
from mailpit_py.parse.html_text import SNIPPET_LENGTH, _collapse, _snippet
from mailpit_py.parse.mime import _walk
from mailpit_py.parse.warnings import _line_warnings, _short, _Warnings

__all__ = ["parse_message"]

_PLUS_RE = re.compile(r"^(.*?)\+(.*?)@", re.S)
_ADDRESS_FIELDS = ("from", "to", "cc", "bcc", "reply-to")
# Addresses kept per address field: a To of a million (16 MB) took 36 s and 1.8 GB to accept
# and open, and every list page carried them all. No real message comes near.
MAX_ADDRESSES = 10_000
# Fields RFC 5322 section 3.6 allows at most once.
_SINGLE_FIELDS = ("date", "from", "sender", "reply-to", "to", "cc", "bcc", "message-id") + (
    "in-reply-to",
    "references",
    "subject",
)


def parse_message(
    raw: bytes, envelope: Envelope, *, received_at: datetime | None = None
) -> ParsedMessage:
    """Parse one message as received over SMTP into everything the views show.

    Never raises: malformed input is parsed as far as possible and each problem is reported as a
    sentence in `warnings`. `received_at`, when given, is only used to flag a Date in the future.
    Text and HTML bodies are returned with CRLF line breaks turned into LF.
    """
    warnings = _Warnings()
    try:
        return _parse(_as_bytes(raw), envelope, received_at, warnings)
    except Exception as exc:  # last resort: the message must still be stored and shown
        warnings(f"Message could not be parsed ({type(exc).__name__}); shown as raw text")
        return _minimal(raw, envelope, warnings)


def _as_bytes(raw: object) -> bytes:
    """Accept bytes-like input (and str, for callers that already decoded)."""
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    if raw is None:
        return b""
    return bytes(raw)  # type: ignore[call-overload]


def _envelope_parts(envelope: Envelope) -> tuple[str, tuple[str, ...]]:
    """MAIL FROM and RCPT TO, defensively (an Envelope is expected but not trusted)."""
    mail_from = getattr(envelope, "mail_from", "") or ""
    rcpts = getattr(envelope, "rcpt_to", ()) or ()
    if isinstance(rcpts, str):
        rcpts = (rcpts,)
    clean = tuple(str(r).strip().strip("<>").strip() for r in rcpts)
    return str(mail_from).strip().strip("<>").strip(), tuple(r for r in clean if r)


def _minimal(raw: object, envelope: Envelope, warnings: _Warnings) -> ParsedMessage:
    """The smallest useful result: the whole message as text."""
    try:
        data = _as_bytes(raw)
        text = data.decode("utf-8", "replace")
    except Exception:
        text = ""
    try:
        mail_from, rcpts = _envelope_parts(envelope)
    except Exception:
        mail_from, rcpts = "", ()
    return ParsedMessage(
        message_id=f"{uuid.uuid4().hex}@mailpit-py",
        message_id_generated=True,
        from_addr=None,
        to=(),
        cc=(),
        bcc=tuple(Address("", r) for r in rcpts),
        reply_to=(),
        return_path=mail_from,
        subject="",
        date=None,
        headers=(),
        list_unsubscribe=ListUnsubscribe(),
        text=text,
        html="",
        snippet=_collapse(text[:1000])[:SNIPPET_LENGTH],
        attachments=(),
        inline=(),
        warnings=tuple(warnings.items),
        tags=(),
    )


def _parse(
    raw: bytes, envelope: Envelope, received_at: datetime | None, warn: _Warnings
) -> ParsedMessage:
    mail_from, rcpts = _envelope_parts(envelope)
    # RFC 6532 section 3: with SMTPUTF8 (RFC 6531) header fields may hold raw UTF-8.
    smtputf8 = getattr(envelope, "smtputf8", False) is True
    if not raw or raw.isspace():
        warn("Message is empty")
    _line_warnings(raw, warn)
    root_fields, _root_lookup, root_params, leaves = _walk(raw, warn)

    # The charset of the message body is the best guess for raw 8-bit bytes in its headers.
    fallback = root_params.get("charset")

    headers: list[tuple[str, str]] = []
    # Lowercased name -> [(name, 8-bit-recovered text, fully decoded text)], in order.
    by_name: dict[str, list[tuple[str, str, str]]] = {}
    for name, value in root_fields:
        text = _header_text(value, name, fallback, warn, smtputf8)
        decoded = _decode_words(text, f"{name} header", warn) if "=?" in text else text
        headers.append((name, decoded))
        by_name.setdefault(name.lower(), []).append((name, text, decoded))
    # (only when some name repeats: fewer names than fields)
    for key in _SINGLE_FIELDS if len(by_name) < len(root_fields) else ():
        if len(by_name.get(key, ())) > 1:
            name = by_name[key][0][0]
            count = len(by_name[key])
            warn(f"{name} header appears {count} times; RFC 5322 section 3.6 allows one")

    def text_of(key: str) -> str | None:
        values = by_name.get(key)
        return values[0][1] if values else None

    def decoded_of(key: str) -> str:
        values = by_name.get(key)
        return values[0][2] if values else ""

    lists: dict[str, list[Address]] = {}
    for key in _ADDRESS_FIELDS:
        found: list[Address] = []
        for name, text, _decoded in by_name.get(key, ()):
            found.extend(_addresses(text, f"{name} header", warn, MAX_ADDRESSES))
        if len(found) > MAX_ADDRESSES:
            warn(
                f"{by_name[key][0][0]} header has more than {MAX_ADDRESSES:,} addresses; only "
                "the first are shown (the raw message has them all)"
            )
            del found[MAX_ADDRESSES:]
        lists[key] = found

    from_text = text_of("from")
    from_addr: Address | None = None
    if from_text is None:
        warn("Message has no From header")
    elif lists["from"]:
        from_addr = lists["from"][0]
    elif from_text.strip():
        # Mailpit keeps an unparsable From as a name so the list still shows something.
        from_addr = Address(name=decoded_of("from").strip(), address="")
        warn(f"From header {_short(from_addr.name)!r} has no valid address")
    else:
        warn("From header is empty")

    to, cc, bcc = lists["to"], lists["cc"], lists["bcc"]
    named = {a.address.lower() for a in (*to, *cc, *bcc)}
    for rcpt in rcpts:
        if rcpt.lower() not in named:
            # Apps send Bcc recipients only in the envelope (RFC 5322 section 3.6.3).
            named.add(rcpt.lower())
            bcc.append(Address(name="", address=rcpt))
            warn(f"Envelope recipient {rcpt} is not named in any header (shown as Bcc)")

    subject = decoded_of("subject").strip()

    date: datetime | None = None
    date_text = text_of("date")
    if date_text is None:
        warn("Message has no Date header")
    else:
        date = _parse_date(date_text, warn)
        if date is not None and received_at is not None:
            try:
                received = received_at
                if received.tzinfo is None:
                    received = received.replace(tzinfo=UTC)
                if date - received > timedelta(days=1):
                    warn("Date header is more than a day in the future")
            except (TypeError, ValueError, OverflowError):
                pass

    message_id = ""
    id_text = text_of("message-id")
    if id_text is not None:
        match = _MSGID_RE.search(id_text)
        message_id = (match.group(1) if match else id_text).strip().strip("<>").strip()
    generated = not message_id
    if generated:
        message_id = f"{uuid.uuid4().hex}@mailpit-py"
        warn("Message has no Message-ID header")

    list_unsubscribe = ListUnsubscribe()
    unsubscribe = decoded_of("list-unsubscribe")
    if unsubscribe.strip():
        list_unsubscribe = _list_unsubscribe(
            unsubscribe, decoded_of("list-unsubscribe-post").strip()
        )

    text, markup, attachments, inline = _bodies(leaves, warn, smtputf8)

    tags: dict[str, str] = {}
    for _name, _text, tag_list in by_name.get("x-tags", ()):
        for tag in tag_list.split(","):
            cleaned = _clean_tag(tag)
            if cleaned:
                tags.setdefault(cleaned.lower(), cleaned)
    for address in (*to, *cc, *bcc):
        match = _PLUS_RE.match(address.address)
        if match:
            for tag in match.group(2).split("+"):
                cleaned = _clean_tag(tag)
                if cleaned:
                    tags.setdefault(cleaned.lower(), cleaned)

    return ParsedMessage(
        message_id=message_id,
        message_id_generated=generated,
        from_addr=from_addr,
        to=tuple(to),
        cc=tuple(cc),
        bcc=tuple(bcc),
        reply_to=tuple(lists["reply-to"]),
        return_path=mail_from,
        subject=subject,
        date=date,
        headers=tuple(headers),
        list_unsubscribe=list_unsubscribe,
        text=text,
        html=markup,
        snippet=_snippet(text, markup),
        attachments=tuple(attachments),
        inline=tuple(inline),
        warnings=tuple(warn.items),
        tags=tuple(tags.values()),
    )
