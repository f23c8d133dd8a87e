"""The MIME structure of a stored message as IMAP shows it (RFC 3501 sections 6.4.5 and 7.4.2):
byte ranges of every entity, BODY[section] contents, ENVELOPE and BODYSTRUCTURE."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, unquote
from urllib.parse import quote

from mailpit_py.mailaccess.imap.syntax import ImapSyntaxError, plist, string

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_PARSER = BytesHeaderParser(policy=compat32)


@dataclass
class Entity:
    """One MIME entity: raw[start:body_start] is its header (blank line included), then body."""

    raw: bytes
    start: int
    body_start: int
    end: int
    headers: Message
    maintype: str
    subtype: str
    parts: list[Entity] = field(default_factory=list)  # multipart children
    message: Entity | None = None  # the encapsulated message of a message/rfc822 part

    @property
    def header(self) -> bytes:
        return self.raw[self.start : self.body_start]

    @property
    def body(self) -> bytes:
        return self.raw[self.body_start : self.end]

    @property
    def multipart(self) -> bool:
        return self.maintype == "multipart"


def crlf(raw: bytes) -> bytes:
    """A stored message as IMAP sends it: a bare LF line ending (kept as received) becomes
    CRLF, since a client reads RFC 5322 mail, whose lines end in CRLF, and RFC822.SIZE is that
    message's size (RFC 3501 section 7.4.2); CRLF messages are unchanged. A NUL octet, which
    no IMAP4rev1 literal may hold (CHAR8, RFC 3501 section 9) and which ends a C client's
    string, is sent as 0x80, as Dovecot does: the size stays the same."""
    if b"\0" in raw:
        raw = raw.replace(b"\0", b"\x80")
    return raw if raw.count(b"\n") == raw.count(b"\r\n") else _BARE_LF.sub(b"\r\n", raw)


def crlf_size(raw: bytes) -> int:
    """The octets of crlf(raw), without making it."""
    return len(raw) + raw.count(b"\n") - raw.count(b"\r\n")


def parse_entity(
    raw: bytes, start: int = 0, end: int | None = None, default: str = "text/plain", depth: int = 0
) -> Entity:
    """The entity in raw[start:end] with its parts; never raises on malformed mail."""
    end = len(raw) if end is None else end
    if raw.startswith(b"\r\n", start) or raw.startswith(b"\n", start):
        body_start = start + (2 if raw.startswith(b"\r\n", start) else 1)  # no header at all
    else:
        m = _HEADER_END.search(raw, start, end)
        body_start = m.end() if m else end
    headers = _PARSER.parsebytes(_lenient_header(raw[start:body_start]))
    ctype = (headers.get_content_type() if "content-type" in headers else default).lower()
    maintype, _, subtype = ctype.partition("/")
    entity = Entity(raw, start, body_start, end, headers, maintype, subtype or "plain")
    if depth > 50:  # nesting this deep is an attack, not mail
        return entity
    if entity.multipart:
        boundary = headers.get_param("boundary")
        if not isinstance(boundary, str) or not boundary:
            # e.g. "multipart/mixed\n\tboundary=x" without its ";": find it as readers do.
            found = _LOOSE_BOUNDARY.search(_raw_value(headers, "content-type") or "")
            boundary = found.group(1) if found else None
        if isinstance(boundary, str) and boundary:
            child_default = "message/rfc822" if subtype == "digest" else "text/plain"
            for a, b in _split(raw, body_start, end, boundary.encode("utf-8", "surrogateescape")):
                entity.parts.append(parse_entity(raw, a, b, child_default, depth + 1))
    elif ctype == "message/rfc822":
        entity.message = parse_entity(raw, body_start, end, "text/plain", depth + 1)
    return entity


_LOOSE_BOUNDARY = re.compile(r'boundary\s*=\s*"?([^";\s]+)', re.I)
_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")


def _lenient_header(header: bytes) -> bytes:
    """The header for parsing only: `Name :` read as `Name:` (RFC 5322 obsolete syntax) and
    lines that are no field dropped, where the email package would end the header instead."""
    out = []
    for line in header.splitlines(keepends=True):
        m = _FIELD.match(line)
        if m:
            out.append(m.group(1) + b":" + line[m.end() :])
        elif line[:1] in (b" ", b"\t") and out:
            out.append(line)
    return b"".join(out) + b"\r\n"


def _split(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the body parts between `--boundary` lines (RFC 2046 section 5.1.1): the
    line break before a delimiter belongs to the delimiter."""
    delim = re.compile(rb"(?:^|(?<=\n))--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r?\n|$)", re.M)
    ranges: list[tuple[int, int]] = []
    part_start: int | None = None
    for m in delim.finditer(raw, start, end):
        if part_start is not None:
            stop = m.start()
            if raw[stop - 2 : stop] == b"\r\n":
                stop -= 2
            elif raw[stop - 1 : stop] == b"\n":
                stop -= 1
            ranges.append((part_start, max(part_start, stop)))
        if m.group(1):  # the close delimiter
            return ranges
        part_start = m.end()
    if part_start is not None and part_start < end:
        ranges.append((part_start, end))  # no close delimiter: the last part runs to the end
    return ranges


# -- sections (RFC 3501 section 6.4.5) --------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A parsed BODY[...] section: part path, then "", HEADER, HEADER.FIELDS(.NOT), TEXT, MIME."""

    path: tuple[int, ...]
    kind: str
    fields: tuple[str, ...] = ()


_SECTION = re.compile(
    r"((?:[1-9][0-9]*)(?:\.[1-9][0-9]*)*)?\.?"
    r"(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)?(?:\s*\((.*)\))?",
    re.I | re.S,
)


def parse_section(spec: str) -> Section:
    m = _SECTION.fullmatch(spec.strip())
    if m is None:
        raise ImapSyntaxError(f"bad section [{spec}]")
    path = tuple(int(n) for n in m.group(1).split(".")) if m.group(1) else ()
    kind = (m.group(2) or "").upper()
    fields: tuple[str, ...] = ()
    if kind.startswith("HEADER.FIELDS"):
        if m.group(3) is None:
            raise ImapSyntaxError(f"{kind} needs a list of header names")
        fields = tuple(f.strip('"').lower() for f in m.group(3).split())
    elif m.group(3) is not None:
        raise ImapSyntaxError(f"bad section [{spec}]")
    if kind == "MIME" and not path:
        raise ImapSyntaxError("MIME needs a part number")
    return Section(path, kind, fields)


def _part(message: Entity, path: tuple[int, ...]) -> Entity | None:
    node = message
    for i, number in enumerate(path):
        if node.multipart:
            if number > len(node.parts):
                return None
            node = node.parts[number - 1]
        elif number != 1:
            return None  # a single-part message has only part 1, itself
        if node.message is not None and i < len(path) - 1:
            node = node.message  # further numbers go into the encapsulated message
    return node


def section_bytes(message: Entity, section: Section) -> bytes | None:
    """The bytes of a section, or None when it names a part that does not exist."""
    node = _part(message, section.path)
    if node is None:
        return None
    if section.kind == "MIME":
        return node.header
    if section.kind in ("HEADER", "TEXT") or section.kind.startswith("HEADER."):
        if section.path:
            if node.message is None:
                return None  # HEADER and TEXT of a part exist only for message/rfc822 parts
            node = node.message
        if section.kind == "TEXT":
            return node.body
        if section.kind == "HEADER":
            return node.header
        return header_fields(node.header, section.fields, section.kind.endswith(".NOT"))
    if not section.path:
        return message.raw[message.start : message.end]
    return node.body


def header_fields(header: bytes, names: tuple[str, ...], exclude: bool) -> bytes:
    """The header lines (continuations included) whose names are (or are not) in `names`."""
    out = bytearray()
    keep = False
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out += line
            continue
        name = line.split(b":", 1)[0].strip().decode("ascii", "replace").lower()
        keep = (name in names) != exclude
        if keep:
            out += line
    return bytes(out) + b"\r\n"


# -- ENVELOPE and BODYSTRUCTURE (RFC 3501 section 7.4.2) --------------------------------------


def _raw_value(headers: Message, name: str) -> str | None:
    """The first such header as it was sent, unfolded (8-bit bytes kept as surrogates)."""
    for key, value in headers.raw_items():
        if key.lower() == name:
            return re.sub(r"\r?\n(?=[ \t])", "", str(value)).strip()
    return None


def _groups(value: str) -> list[tuple[str, str | None]]:
    """An address list cut at its groups (RFC 5322 `name: a, b;`): ("", addresses) for
    addresses, (name, None) where a group starts and ("", None) where it ends. A ':' or ';'
    inside quotes, a comment or angle brackets (a source route) cuts nothing."""
    out: list[tuple[str, str | None]] = []
    depth, angle, quoted, escaped = 0, False, False, False
    start, in_group = 0, False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth:
            continue
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == ":" and not angle and not in_group:
            head, _, group = value[start:i].rpartition(",")
            if head.strip():
                out.append(("", head))
            out.append((unquote(group.strip()) or " ", None))
            start, in_group = i + 1, True
        elif ch == ";" and not angle and in_group:
            out += [("", value[start:i]), ("", None)]
            start, in_group = i + 1, False
    out.append(("", value[start:]))
    if in_group:
        out.append(("", None))  # a group never closed ends with the header
    return out


def _addresses(headers: Message, name: str) -> bytes:
    """An address list as ENVELOPE gives it, a group as RFC 3501 section 7.4.2 says: its
    name in a NIL-host entry, then its members, then an entry of NILs."""
    value = _raw_value(headers, name)
    if not value:
        return b"NIL"
    items = []
    for group, part in _groups(value):
        if part is None:
            items.append(plist([b"NIL", b"NIL", string(group) if group else b"NIL", b"NIL"]))
        else:
            items += _mailboxes(part)
    # 1*address: the addresses follow each other without a space (RFC 3501 section 9).
    return b"(" + b"".join(items) + b")" if items else b"NIL"


def _mailboxes(value: str) -> list[bytes]:
    """The ENVELOPE entries of a list of addresses without groups."""
    try:
        pairs = getaddresses([value])
    except Exception:  # the parser trips on some broken headers; show the text as a name
        pairs = [(value, "")]
    items = []
    for display, addr in pairs:
        if not addr and not display:
            continue
        local, at, host = addr.rpartition("@")
        if not at:
            local, host = addr, ""
        items.append(
            plist(
                [
                    string(display) if display else b"NIL",
                    b"NIL",
                    string(local) if local else b"NIL",
                    string(host) if host else b"NIL",
                ]
            )
        )
    return items


def envelope(entity: Entity) -> bytes:
    h = entity.headers
    sender = "sender" if _raw_value(h, "sender") else "from"
    reply_to = "reply-to" if _raw_value(h, "reply-to") else "from"
    return plist(
        [
            string(_raw_value(h, "date")),
            string(_raw_value(h, "subject")),
            _addresses(h, "from"),
            _addresses(h, sender),
            _addresses(h, reply_to),
            _addresses(h, "to"),
            _addresses(h, "cc"),
            _addresses(h, "bcc"),
            string(_raw_value(h, "in-reply-to")),
            string(_raw_value(h, "message-id")),
        ]
    )


def _params(headers: Message, name: str, default: list[tuple[str, str]]) -> bytes:
    raw = headers.get_params(header=name, unquote=True)
    pairs = [(k, v) for k, v in (raw or [])[1:] if k] if raw else default
    items: list[bytes] = []
    for key, value in pairs:
        if isinstance(value, tuple):
            # An RFC 2231 value, its continuations joined by the parser: passed on still
            # encoded, as RFC 2231 asks of IMAP servers (the client decodes it).
            charset, language, text = value
            octets = text.encode("latin-1", "replace")
            key, value = key + "*", f"{charset or ''}'{language or ''}'{quote(octets, safe='')}"
        items += [string(key.upper()), string(str(value))]
    return plist(items) if items else b"NIL"


def _disposition(headers: Message) -> bytes:
    value = headers.get("content-disposition")
    if value is None:
        return b"NIL"
    kind = str(value).split(";", 1)[0].strip()
    params = _params(headers, "content-disposition", [])
    return plist([string(kind.upper() or "ATTACHMENT"), params])


def _lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def bodystructure(entity: Entity, extended: bool = True) -> bytes:
    """BODYSTRUCTURE (extended) or BODY (without extension data) of an entity."""
    h = entity.headers
    if entity.multipart and entity.parts:
        items = [bodystructure(p, extended) for p in entity.parts]
        out = b"(" + b"".join(items) + b" " + string(entity.subtype.upper())
        if extended:
            out += b" " + b" ".join(
                [
                    _params(h, "content-type", []),
                    _disposition(h),
                    string(_raw_value(h, "content-language")),
                    string(_raw_value(h, "content-location")),
                ]
            )
        return out + b")"
    maintype, subtype = entity.maintype, entity.subtype
    if entity.multipart:  # a multipart without parts is shown as what it is: empty text
        maintype, subtype = "text", "plain"
    default_params = [("charset", "us-ascii")] if maintype == "text" else []
    body = entity.body
    fields = [
        string(maintype.upper()),
        string(subtype.upper()),
        _params(h, "content-type", default_params),
        string(_raw_value(h, "content-id")),
        string(_raw_value(h, "content-description")),
        string((_raw_value(h, "content-transfer-encoding") or "7BIT").upper()),
        str(len(body)).encode(),
    ]
    if entity.message is not None:
        fields += [
            envelope(entity.message),
            bodystructure(entity.message, extended),
            str(_lines(body)).encode(),
        ]
    elif maintype == "text":
        fields.append(str(_lines(body)).encode())
    if extended:
        fields += [
            string(_raw_value(h, "content-md5")),
            _disposition(h),
            string(_raw_value(h, "content-language")),
            string(_raw_value(h, "content-location")),
        ]
    return plist(fields)
