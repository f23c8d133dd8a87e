"""Header sections: fields, 8-bit recovery, RFC 2047 encoded-words, MIME parameters."""

from __future__ import annotations

import binascii
import re
from urllib.parse import unquote_to_bytes

from mailpit_py.parse.charsets import _charset_label, _codecs_for, _decode_text
from mailpit_py.parse.transfer import _b64_lenient
from mailpit_py.parse.warnings import Warn, _ignore

# Accept anything printable up to the colon, plus 8-bit bytes (seen in the wild) and obsolete
# whitespace before the colon (RFC 5322 section 4.5.1).
_FIELD_RE = re.compile(rb"([^\x00-\x20\x7f:]+)[ \t]*:")
# The same, taking the value and its continuation lines (RFC 5322 section 2.2.3) in one go.
_FIELD_LINES_RE = re.compile(rb"([^\x00-\x20\x7f:]+)[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)\n?")
# RFC 2047 section 2 encoded-word; "*lang" after the charset is RFC 2231 section 5.
_ENCODED_WORD_RE = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?]*)\?=")
# RFC 2045 section 5.1 parameters, read leniently: spaces around "=", missing ";" separators,
# unquoted values containing tspecials (Outlook boundaries with "=") and missing end quotes.
_PARAM_RE = re.compile(r'(?:^|[;\s])\s*([^\s;="]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))', re.S)
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)
_TOKEN_RE = re.compile(r"[^;\s]*")
_MSGID_RE = re.compile(r"<([^<>]*)>")
# Header fields kept per header section. Real mail has a few hundred at most, Received lines
# included; a million of them (14 MB) kept as pairs in the record and the headers table took
# ~700 MB and seconds per read. The raw message keeps them all.
MAX_FIELDS = 10_000
# Past MAX_FIELDS the first field of each of these names is still kept: the parser, the auto
# tags and the receiver profiles read them, wherever in the section they are.
_LATE_FIELDS = frozenset(
    b"from to cc bcc reply-to sender subject date message-id in-reply-to references "
    b"mime-version content-type content-transfer-encoding content-disposition content-id "
    b"list-unsubscribe list-unsubscribe-post list-id precedence x-tags return-path".split()
)


def _read_header_block(
    data: bytes, start: int, end: int, where: str, warn: Warn
) -> tuple[list[tuple[str, bytes]], int]:
    """Split the header section at data[start:end] into (name, unfolded raw value) pairs.

    Returns the fields and the offset where the body starts. RFC 5322 section 2.1: fields, an
    empty line, the body. Tolerated: bare LF, an mbox "From " line, a leading whitespace line,
    obsolete whitespace before the colon and a missing empty line (the body then starts at the
    first line that is not a field, as most parsers do).
    """
    fields: list[tuple[bytes, bytes]] = []
    match_field = _FIELD_LINES_RE.match
    pos = start
    first = True
    body_start = end
    total = 0  # fields seen, kept or not
    late: set[bytes] = set()  # the names kept past MAX_FIELDS
    dropped = False  # whether the last field seen was left out (and so its continuations)
    while pos < end:
        # Fast path: one regex call takes a field with all its continuation lines.
        match = match_field(data, pos, end)
        if match is not None:
            total += 1
            dropped = total > MAX_FIELDS and not _keep_late(match.group(1), late)
            if not dropped:
                fields.append((match.group(1), match.group(2)))
            pos = match.end()
            first = False
            continue
        nl = data.find(b"\n", pos, end)
        line_end, next_pos = (end, end) if nl < 0 else (nl, nl + 1)
        line = data[pos:line_end]
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            body_start = next_pos
            break
        if line[0] in (32, 9):
            if fields and not dropped:
                fields[-1] = (fields[-1][0], fields[-1][1] + b"\n" + line)
            elif not fields:
                stripped = line.lstrip(b" \t")
                match = _FIELD_RE.match(stripped)
                if match:
                    warn(f"{where}: the first header line starts with whitespace")
                    fields.append((match.group(1), stripped[match.end() :]))
                    total += 1
                elif stripped:
                    warn(f"{where}: the first header line starts with whitespace; ignored")
        elif not (first and line.startswith(b"From ")):
            # RFC 5322 section 2.1: only an empty line may end the header section.
            if fields:
                warn(
                    f"{where}: the header section does not end with an empty line "
                    "(RFC 5322 section 2.1); the rest is read as the body"
                )
            else:
                warn(f"{where}: there are no header fields")
            body_start = pos
            break
        first = False
        pos = next_pos
    if total > MAX_FIELDS:
        warn(
            f"{where}: {total:,} header fields; only the first {MAX_FIELDS:,} are shown, and "
            "after them the first of each field the message's display needs (the raw message "
            "has them all)"
        )
    result: list[tuple[str, bytes]] = []
    for raw_name, value in fields:
        try:
            name = raw_name.decode("ascii")
        except UnicodeDecodeError:
            name = raw_name.decode("utf-8", "replace")
        if b"\n" in value:
            # Unfold (RFC 5322 section 2.2.3), one space per fold like Go's textproto, dropping
            # whitespace-only continuation lines (obsolete syntax, RFC 5322 section 4.2).
            value = b" ".join(
                p for p in (piece.strip(b" \t\r") for piece in value.split(b"\n")) if p
            )
        else:
            value = value.strip(b" \t\r")
        result.append((name, value))
    return result, body_start


def _keep_late(name: bytes, late: set[bytes]) -> bool:
    """Whether a field past MAX_FIELDS is kept: the first of each name in _LATE_FIELDS."""
    key = name.lower()
    if key not in _LATE_FIELDS or key in late:
        return False
    late.add(key)
    return True


def _header_text(
    value: bytes, name: str, charset: str | None, warn: Warn, utf8: bool = False
) -> str:
    """Header bytes to str, recovering raw 8-bit bytes.

    Raw UTF-8 is what RFC 6532 allows (with SMTPUTF8: `utf8`, and then it is no fault);
    anything else is legacy software writing its local charset, best guessed as the charset
    of the message body (`charset`).
    """
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        pass
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if not utf8:
            warn(f"{name} header contains raw 8-bit bytes (not RFC 2047 encoded), decoded as UTF-8")
        return text
    for codec in (_codecs_for(charset) or ()) if charset else ():
        if codec in ("ascii", "utf-8"):
            continue
        try:
            text = value.decode(codec)
        except (UnicodeError, LookupError, ValueError, TypeError):
            continue
        label = _charset_label(charset or codec)
        warn(f"{name} header contains raw 8-bit bytes that are not UTF-8, decoded as {label}")
        return text
    warn(
        f"{name} header contains raw 8-bit bytes that are not all UTF-8, "
        "decoded as UTF-8 and windows-1252"
    )
    return value.decode("utf-8", "mailpit_py.cp1252")


def _decode_words(text: str, where: str, warn: Warn) -> str:
    """Decode RFC 2047 encoded-words in an unstructured value or a phrase.

    Whitespace between adjacent encoded-words is dropped (RFC 2047 section 6.2), and adjacent
    words in one charset are decoded together because encoders split multi-byte characters.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    pos = 0
    pending_charset = ""
    pending = bytearray()
    have_pending = False

    def flush() -> None:
        nonlocal have_pending
        if have_pending:
            out.append(_decode_text(bytes(pending), pending_charset, where, warn))
            pending.clear()
            have_pending = False

    for match in _ENCODED_WORD_RE.finditer(text):
        gap = text[pos : match.start()]
        if not (have_pending and not gap.strip()):
            flush()
            out.append(gap)
        charset, encoding, payload = match.group(1), match.group(2), match.group(3)
        encoded = payload.encode("utf-8", "replace")
        if encoding in "bB":
            raw, problem = _b64_lenient(encoded)
            if problem:
                warn(f"{where}: RFC 2047 encoded-word has base64 with {problem}")
        else:
            raw = binascii.a2b_qp(encoded, header=True)
        if have_pending and charset.lower() != pending_charset.lower():
            flush()
        pending_charset = charset
        pending += raw
        have_pending = True
        pos = match.end()
    flush()
    out.append(text[pos:])
    return "".join(out)


def _decoded_header(value: bytes, name: str, charset: str | None, warn: Warn) -> str:
    """A header value fully decoded for display: 8-bit recovered, then RFC 2047 decoded."""
    text = _header_text(value, name, charset, warn)
    return _decode_words(text, f"{name} header", warn) if "=?" in text else text


class _Decoded(str):
    """A parameter value already decoded from RFC 2231 form (other values are latin-1 text)."""

    __slots__ = ()


def _parse_params(value: str, where: str = "", warn: Warn = _ignore) -> tuple[str, dict[str, str]]:
    """Split "type/subtype; a=b; c*=utf-8''x" into the lowercased token and its parameters.

    `value` is latin-1 text (each byte kept as one character). Plain parameter values stay in
    that form; RFC 2231 values (sections 3 and 4: continuations, charset'language'%XX) are
    joined and decoded, and returned as _Decoded.
    """
    stripped = value.lstrip()
    token_match = _TOKEN_RE.match(stripped)
    token = token_match.group(0) if token_match else ""
    if "=" in token:
        # No type at all, just parameters ("Content-Disposition: filename=a.pdf").
        token = ""
    rest = stripped[len(token) :]
    params: dict[str, str] = {}
    extended: dict[str, dict[int, tuple[bool, str]]] = {}
    for match in _PARAM_RE.finditer(rest):
        key = match.group(1).lower()
        if match.group(2) is not None:
            val = match.group(2)
            if "\\" in val:
                val = _QUOTED_PAIR_RE.sub(r"\1", val)
        else:
            val = (match.group(3) or "").strip().strip('"')
        if "*" in key:
            base, _, section = key.partition("*")
            number = section.rstrip("*")
            index = int(number) if number.isdigit() and len(number) < 6 else 0
            encoded = section.endswith("*") or not section
            extended.setdefault(base, {}).setdefault(index, (encoded, val))
        else:
            # The first occurrence wins on duplicates (Microsoft CDO repeats name=).
            params.setdefault(key, val)
    for base, sections in extended.items():
        params[base] = _join_rfc2231(sections, f"{where} {base}".strip(), warn)
    return token.lower(), params


def _join_rfc2231(sections: dict[int, tuple[bool, str]], where: str, warn: Warn) -> _Decoded:
    """Join RFC 2231 continuations (section 3) and decode charset'language'%XX (section 4)."""
    charset = ""
    raw = bytearray()
    order = sorted(sections)
    for index in order:
        encoded, val = sections[index]
        if encoded:
            if index == order[0] and val.count("'") >= 2:
                charset, _language, val = val.split("'", 2)
            raw += unquote_to_bytes(val.encode("latin-1", "replace"))
        else:
            raw += val.encode("latin-1", "replace")
    return _Decoded(_decode_text(bytes(raw), charset or None, where, warn))


def _param_text(value: str, where: str, charset: str | None, warn: Warn, utf8: bool = False) -> str:
    """A parameter value for display: RFC 2231 already decoded, else 8-bit and RFC 2047."""
    if isinstance(value, _Decoded):
        return str(value)
    text = _header_text(value.encode("latin-1", "replace"), where, charset, warn, utf8)
    # Encoded-words inside a quoted parameter are not allowed (RFC 2047 section 5) yet common.
    return _decode_words(text, f"{where} header", warn) if "=?" in text else text
