"""Turn the raw bytes of one message into a ParsedMessage: pure, fast and never raising."""

from __future__ import annotations

import binascii
import codecs
import hashlib
import html as html_lib
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from email.utils import getaddresses, parsedate_tz
from functools import lru_cache
from urllib.parse import unquote_to_bytes

from mailpit_py.models import Address, Envelope, ListUnsubscribe, ParsedMessage, Part

__all__ = ["parse_message"]

try:
    # Python 3.13+ (and security releases) default to strict=True, which turns any oddity into
    # [("", "")]; a mail catcher wants the lenient, pre-CVE-2023-27043 behaviour.
    getaddresses(["a@example.com"], strict=False)  # type: ignore[call-arg]
    _GETADDRESSES_OPTIONS: dict[str, bool] = {"strict": False}
except TypeError:
    _GETADDRESSES_OPTIONS = {}

Warn = Callable[[str], None]

# Guards against hostile structure: real mail never comes close to these numbers, and without
# them a crafted message could make ingest slow (the SMTP handler waits for us).
MAX_DEPTH = 64
MAX_PARTS = 5000
SNIPPET_LENGTH = 200
# RFC 5322 section 2.1.1: a line must not exceed 998 characters excluding CRLF.
MAX_LINE = 998
# HTML beyond this is not looked at when making a snippet out of HTML.
SNIPPET_HTML_SCAN = 512 * 1024
# A text or HTML body larger than this (encoded) is decoded in chunks of BODY_CHUNK, holding
# about two copies of it at a time instead of five; smaller ones take the quicker route.
BIG_BODY = 1024 * 1024
BODY_CHUNK = 1024 * 1024

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
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_B64_JUNK_RE = re.compile(rb"[^A-Za-z0-9+/]+")
# Words separated by spaces inside a line: prose, not base64 (RFC 2045 section 6.8 lines).
_PROSE_RE = re.compile(rb"[A-Za-z0-9+/]{2}[ \t]+[A-Za-z0-9+/]{2}")
_B64_PAD_RE = re.compile(rb"=+")
_B64_TRAILER = "text after the end of the data"
# A "=" in quoted-printable must start a soft line break or a hex pair (RFC 2045 section 6.7).
_QP_BAD_RE = re.compile(rb"=(?![0-9A-Fa-f]{2}|[ \t]*\r?\n|[ \t]*\Z)")
_WS_RE = re.compile(r"\s+")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u034f\u00ad"), None)
_INVISIBLE_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u034f\u00ad]")
_TAG_NAME_RE = re.compile(r"/?([a-zA-Z][a-zA-Z0-9]*)")
_META_CHARSET_RE = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I
)
_MSGID_RE = re.compile(r"<([^<>]*)>")
_ADDR_SPEC = r"[^\s\"<>,;:@()\[\]\\]+@[^\s\"<>,;:@()\[\]\\]+"
_SIMPLE_ADDRESS_RE = re.compile(
    rf"""\s*(?:(?:"([^"\\]*)"|([^"<>,;:@()\[\]\\]*?))\s*<({_ADDR_SPEC})>|({_ADDR_SPEC}))\s*"""
)
_ZONE_RE = re.compile(r"(?:[+-]\d{4}|UT|GMT|UTC|Z|[ECMP][SD]T)$", re.I)
_PLUS_RE = re.compile(r"^(.*?)\+(.*?)@", re.S)
_TAG_INVALID_RE = re.compile(r"[^a-zA-Z0-9\-_. ]")
_COMMENT_RE = re.compile(r"\(.*?\)", re.S)
_ANGLE_RE = re.compile(r"<(.*?)>")
_JOIN_RE = re.compile(r">(.*?)<", re.S)

# Tags whose content is not text (dropped entirely) and tags that do not break words.
_SKIP_CONTENT_TAGS = frozenset({"script", "style", "head", "title", "template"})
_CLOSING_TAG_RE = {name: re.compile(f"</{name}", re.I) for name in _SKIP_CONTENT_TAGS}
_BODY_TAG_RE = re.compile("<body", re.I)
_INLINE_TAGS = frozenset(
    {"a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "dfn", "em", "font", "i"}
    | {"kbd", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup"}
    | {"time", "tt", "u", "var", "wbr"}
)
_IDENTITY_CTE = frozenset({"", "7bit", "8bit", "binary"})
_UU_CTE = frozenset({"x-uuencode", "uuencode", "x-uue", "uue"})
_ADDRESS_FIELDS = ("from", "to", "cc", "bcc", "reply-to")
# Fields RFC 5322 section 3.6 allows at most once.
_SINGLE_FIELDS = ("date", "from", "sender", "reply-to", "to", "cc", "bcc", "message-id")
_SINGLE_FIELDS += ("in-reply-to", "references", "subject")

# Charset labels Python lacks or decodes too narrowly. Real mail labels text with the legacy
# name while using the vendor superset, so map to the superset (as the WHATWG Encoding standard
# does); a tuple is tried in order. None marks labels that name no charset at all.
_CHARSET_ALIASES: dict[str, tuple[str, ...] | None] = {
    "us-ascii": ("ascii",),
    "ascii": ("ascii",),
    "ansi_x3.4-1968": ("ascii",),
    "iso-8859-1": ("cp1252", "latin-1"),
    "iso8859-1": ("cp1252", "latin-1"),
    "iso_8859-1": ("cp1252", "latin-1"),
    "latin1": ("cp1252", "latin-1"),
    "latin-1": ("cp1252", "latin-1"),
    "l1": ("cp1252", "latin-1"),
    "iso-8859-9": ("cp1254", "iso8859-9"),
    "iso-8859-11": ("cp874",),
    "tis-620": ("cp874",),
    "windows-874": ("cp874",),
    "iso-8859-8-i": ("iso8859-8",),
    "iso-8859-8-e": ("iso8859-8",),
    "iso-8859-6-i": ("iso8859-6",),
    "iso-8859-6-e": ("iso8859-6",),
    "ks_c_5601-1987": ("cp949",),
    "ks_c_5601-1989": ("cp949",),
    "ks_c_5601": ("cp949",),
    "ksc5601": ("cp949",),
    "ksc_5601": ("cp949",),
    "korean": ("cp949",),
    "euc-kr": ("cp949",),
    "windows-949": ("cp949",),
    "uhc": ("cp949",),
    "gb2312": ("gb18030",),
    "gb_2312-80": ("gb18030",),
    "csgb2312": ("gb18030",),
    "euc-cn": ("gb18030",),
    "chinese": ("gb18030",),
    "gbk": ("gb18030",),
    "cp936": ("gb18030",),
    "windows-936": ("gb18030",),
    "big5": ("big5hkscs", "cp950"),
    "big-5": ("big5hkscs", "cp950"),
    "cn-big5": ("big5hkscs", "cp950"),
    "csbig5": ("big5hkscs", "cp950"),
    "x-x-big5": ("big5hkscs", "cp950"),
    "shift_jis": ("cp932", "shift_jis_2004"),
    "shift-jis": ("cp932", "shift_jis_2004"),
    "sjis": ("cp932", "shift_jis_2004"),
    "x-sjis": ("cp932", "shift_jis_2004"),
    "ms_kanji": ("cp932",),
    "csshiftjis": ("cp932",),
    "windows-31j": ("cp932",),
    "iso-2022-jp": ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_3", "iso2022_jp_2"),
    "csiso2022jp": ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_3", "iso2022_jp_2"),
    "euc-jp": ("euc_jp", "euc_jis_2004"),
    "unicode-1-1-utf-7": ("utf-7",),
    "x-unicode20utf7": ("utf-7",),
    "csunicode11utf7": ("utf-7",),
    "unicode-1-1-utf-8": ("utf-8",),
    "unicode-2-0-utf-8": ("utf-8",),
    "x-unicode20utf8": ("utf-8",),
    "ucs-2": ("utf-16",),
    "unicode": ("utf-16",),
    "x-mac-roman": ("mac_roman",),
    "x-mac-cyrillic": ("mac_cyrillic",),
    "x-mac-ce": ("mac_latin2",),
    "x-mac-greek": ("mac_greek",),
    "x-mac-turkish": ("mac_turkish",),
    "x-mac-icelandic": ("mac_iceland",),
    "koi8": ("koi8_r",),
    "koi8-ru": ("koi8_u",),
    "x-unknown": None,
    "unknown": None,
    "unknown-8bit": None,
    "x-unknown-8bit": None,
    "x-user-defined": None,
    "none": None,
    "default": None,
    "charset": None,
}
# Text codecs that are not charsets: never let a message pick them.
_CODEC_BLOCKLIST = frozenset(
    {"unicode-escape", "raw-unicode-escape", "undefined", "punycode", "idna", "mbcs", "oem"}
)
_ASCII_CODECS = ("ascii",)


class _Warnings:
    """Ordered, deduplicated list of warning sentences."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: dict[str, None] = {}

    def __call__(self, text: str) -> None:
        self.items.setdefault(text, None)


def _ignore(_text: str) -> None:
    """Warning sink for text nobody will see (headers of an enclosed message)."""


def _short(value: str, limit: int = 60) -> str:
    """A header value clipped for quoting inside a warning."""
    value = value.strip()
    return value if len(value) <= limit else value[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Charsets


@lru_cache(maxsize=512)
def _codecs_for(label: str) -> tuple[str, ...] | None:
    """Python codecs to try for a MIME charset label, or None when the label is unusable."""
    name = label.strip().strip("\"'").strip().lower()
    if not name:
        return None
    if name in _CHARSET_ALIASES:
        return _CHARSET_ALIASES[name]
    candidates = [name]
    # Common decorations Python does not understand: "x-cp1250", "cp-1252", "win-1251".
    bare = name[2:] if name.startswith("x-") else name
    for prefix in ("windows-", "win-", "cp-", "ms-"):
        if bare.startswith(prefix) and bare[len(prefix) :].isdigit():
            bare = "cp" + bare[len(prefix) :]
    candidates.append(bare)
    for candidate in candidates:
        if candidate in _CHARSET_ALIASES:
            return _CHARSET_ALIASES[candidate]
        try:
            info = codecs.lookup(candidate)
        except (LookupError, ValueError):
            continue
        if not getattr(info, "_is_text_encoding", True) or info.name in _CODEC_BLOCKLIST:
            return None
        return (info.name,)
    return None


def _charset_label(label: str) -> str:
    """How a declared charset is quoted in warnings."""
    return label.strip().strip("\"'").strip()


def _decode_text(raw: bytes, label: str | None, where: str, warn: Warn) -> str:
    """Decode text bytes declared as `label`, falling back instead of failing.

    Order: the declared charset (and its supersets), then UTF-8, then windows-1252 and latin-1
    for undeclared 8-bit data; errors="replace" only when a known multi-byte charset is broken.
    """
    if not raw:
        return ""
    chain = _codecs_for(label) if label else _ASCII_CODECS
    if chain:
        for codec in chain:
            try:
                return raw.decode(codec)
            except (UnicodeError, LookupError, ValueError, TypeError):
                continue
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    shown = _charset_label(label) if label else ""
    if text is not None:
        if not label:
            warn(f"{where}: 8-bit text has no charset, decoded as UTF-8")
        elif chain is None:
            warn(f"{where}: unknown charset {shown!r}, decoded as UTF-8")
        else:
            warn(f"{where}: text is not valid {shown}, decoded as UTF-8")
        return text
    if chain and chain[0] not in _ASCII_CODECS:
        warn(f"{where}: text is not valid {shown}; undecodable bytes were replaced")
        return raw.decode(chain[0], "replace")
    try:
        text, used = raw.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        text, used = raw.decode("latin-1"), "ISO-8859-1"
    if not label:
        warn(f"{where}: 8-bit text has no charset, decoded as {used}")
    elif chain is None:
        warn(f"{where}: unknown charset {shown!r}, decoded as {used}")
    else:
        warn(f"{where}: text is not valid {shown}, decoded as {used}")
    return text


# ---------------------------------------------------------------------------------------------
# Header fields


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
    while pos < end:
        # Fast path: one regex call takes a field with all its continuation lines.
        match = match_field(data, pos, end)
        if match is not None:
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
            if fields:
                fields[-1] = (fields[-1][0], fields[-1][1] + b"\n" + line)
            else:
                stripped = line.lstrip(b" \t")
                match = _FIELD_RE.match(stripped)
                if match:
                    warn(f"{where}: the first header line starts with whitespace")
                    fields.append((match.group(1), stripped[match.end() :]))
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


def _utf8_or_cp1252(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: a byte that is not part of valid UTF-8 is read as windows-1252."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    chunk = error.object[error.start : error.end]
    return chunk.decode("cp1252", "replace").replace("\ufffd", ""), error.end


codecs.register_error("mailpit_py.cp1252", _utf8_or_cp1252)


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


def _b64_lenient(data: bytes) -> tuple[bytes, str]:
    """Decode base64, skipping junk and repairing padding. Returns (bytes, problem or "")."""
    pad = data.find(b"=")
    after = data[pad:].lstrip(b"=") if pad >= 0 else b""
    if after.strip():
        if after.translate(None, _B64_ALPHABET + b" \t\r\n"):
            # Text after the padding (a mailing-list footer appended to base64): drop it.
            decoded, problem = _b64_lenient(data[: len(data) - len(after)])
            return decoded, problem or _B64_TRAILER
        # Several base64 blobs glued together, each padded: binascii stops at the first.
        out = bytearray()
        for chunk in _B64_PAD_RE.split(data):
            out += _b64_lenient(chunk)[0]
        return bytes(out), "data after the padding"
    if not data.translate(None, _B64_ALPHABET + b" \t\r\n"):
        try:
            return binascii.a2b_base64(data), ""
        except binascii.Error:
            problem = "bad padding"
    else:
        problem = "invalid characters"
    chunk = _B64_JUNK_RE.sub(b"", data)
    extra = len(chunk) % 4
    if extra == 1:
        # A single leftover character carries no complete byte.
        chunk = chunk[:-1]
        if problem == "invalid characters":
            problem = "invalid characters and bad padding"
    elif extra:
        chunk += b"=" * (4 - extra)
    try:
        return binascii.a2b_base64(chunk), problem
    except binascii.Error:
        return b"", problem


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


# ---------------------------------------------------------------------------------------------
# Addresses, dates and the other special headers


def _addresses(value: str, where: str, warn: Warn) -> list[Address]:
    """Parse an address-list; groups are flattened, entries without an addr-spec dropped."""
    pairs = _simple_addresses(value)
    if pairs is None:
        try:
            pairs = getaddresses([value], **_GETADDRESSES_OPTIONS)
        except Exception:
            # The stdlib parser recurses once per ":" (group syntax) and gives up on hostile
            # input; parse the comma-separated pieces one by one so good addresses survive.
            warn(f"{where} could not be parsed as a whole; unparsable entries were dropped")
            pairs = []
            for piece in _split_list(value):
                try:
                    pairs.extend(getaddresses([piece], **_GETADDRESSES_OPTIONS))
                except Exception:
                    continue
    result: list[Address] = []
    for name, addr in pairs:
        addr = addr.strip()
        if "@" not in addr:
            continue
        if "=?" in name:
            name = _decode_words(name, where, warn)
        result.append(Address(name=name.strip(), address=addr))
    return result


def _split_list(value: str) -> list[str]:
    """Split an address-list at commas that are outside quotes, comments and angle brackets."""
    pieces: list[str] = []
    depth = 0
    quoted = False
    start = 0
    index = 0
    size = len(value)
    while index < size:
        char = value[index]
        if quoted:
            if char == "\\":
                index += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "(<":
            depth += 1
        elif char in ")>":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            pieces.append(value[start:index])
            start = index + 1
        index += 1
    pieces.append(value[start:])
    return [piece for piece in pieces if piece.strip()]


def _simple_addresses(value: str) -> list[tuple[str, str]] | None:
    """Fast path for the everyday forms ('a@b', 'Name <a@b>', '"Name" <a@b>', lists of them).

    Returns None when anything unusual (comments, groups, escapes, quoted commas) is present,
    leaving those to the full RFC 5322 parser in the standard library.
    """
    match = _SIMPLE_ADDRESS_RE.fullmatch(value)
    if match is not None:
        pieces = [match]
    elif '"' in value:
        return None
    else:
        pieces = []
        for piece in value.split(","):
            if not piece or piece.isspace():
                continue
            match = _SIMPLE_ADDRESS_RE.fullmatch(piece)
            if match is None:
                return None
            pieces.append(match)
    result = []
    for match in pieces:
        quoted, phrase, angle, bare = match.groups()
        if bare is not None:
            result.append(("", bare))
        else:
            name = quoted if quoted is not None else " ".join((phrase or "").split())
            result.append((name, angle))
    return result


# The date-time nearly every mailer writes (RFC 5322 section 3.3, numeric zone): read directly,
# at a quarter of the cost of the general parser below, which takes everything else.
_COMMON_DATE_RE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) "
    r"(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})"
)
_MONTHS = {
    m: n
    for n, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


# The fixed-offset zones met so far: few in practice, and a timedelta and a timezone per message
# cost more than the lookup. Bounded all the same by what an offset can be (under +-24 h).
_ZONES: dict[int, timezone] = {}


def _parse_date(value: str, warn: Warn) -> datetime | None:
    """RFC 5322 section 3.3 date-time to an aware datetime, tolerating obsolete forms."""
    m = _COMMON_DATE_RE.fullmatch(value.strip())
    if m is not None:
        day, month, year, hh, mm, ss, sign, zh, zm = m.groups()
        try:
            offset = (int(zh) * 3600 + int(zm) * 60) * (-1 if sign == "-" else 1)
            zone = _ZONES.get(offset) or _ZONES.setdefault(
                offset, timezone(timedelta(seconds=offset))
            )
            return datetime(
                int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss), tzinfo=zone
            )
        except ValueError:
            pass  # an impossible date or zone: the general route says what is wrong
    try:
        parts = parsedate_tz(value)
    except Exception:
        parts = None
    if not parts:
        warn(f"Date header {_short(value)!r} could not be parsed")
        return None
    offset = parts[9] or 0
    bare = _COMMENT_RE.sub("", value).split()
    if not bare or not _ZONE_RE.search(bare[-1]):
        warn(f"Date header {_short(value)!r} has no valid time zone; UTC assumed")
        offset = 0
    try:
        zone = timezone(timedelta(seconds=offset))
    except ValueError:
        warn(f"Date header {_short(value)!r} has an impossible time zone; UTC assumed")
        zone = UTC
    try:
        return datetime(*parts[:6], tzinfo=zone)
    except (ValueError, OverflowError, TypeError):
        warn(f"Date header {_short(value)!r} could not be parsed")
        return None


def _list_unsubscribe(value: str, post: str) -> ListUnsubscribe:
    """List-Unsubscribe (RFC 2369 section 3.2, RFC 8058) checked the way Mailpit reports it."""
    header = value
    v = value.strip()
    v = _COMMENT_RE.sub("", v).strip()
    if not _ANGLE_RE.search(v):
        return ListUnsubscribe(header, (), f'"{v}" no valid unsubscribe links found', post)
    if not (v.startswith("<") and v.endswith(">")):
        return ListUnsubscribe(header, (), f'"{v}" should be enclosed in <>', post)
    links: list[str] = []
    errors: list[str] = []
    matches = _ANGLE_RE.findall(v)
    if len(matches) > 2:
        errors.append(f'"{v}" should include a maximum of one email and one HTTP link')
    else:
        for join in _JOIN_RE.findall(v):
            if join.strip() != ",":
                message = f'"{v}" <> should be split with a comma and optional spaces'
                return ListUnsubscribe(header, (), message, post)
        has_mailto = has_http = False
        for link in matches:
            if _WS_RE.search(link):
                errors.append(f'"{link}" should not contain spaces')
            elif re.match(r"mailto:[a-zA-Z0-9]", link):
                if has_mailto:
                    errors.append(f'"{link}" should only contain one mailto:')
                else:
                    has_mailto = True
                    links.append(link)
            elif re.match(r"(?i)https?://[a-zA-Z0-9]", link):
                if has_http:
                    errors.append(f'"{link}" should only contain one HTTP link')
                else:
                    has_http = True
                    links.append(link)
            else:
                errors.append(f'"{link}" should start with either http(s):// or mailto:')
    return ListUnsubscribe(header, tuple(links), ", ".join(errors), post)


def _clean_tag(tag: str) -> str:
    """Mailpit's tag cleaning: odd characters become spaces, spaces collapse."""
    return " ".join(_TAG_INVALID_RE.sub(" ", tag).split())


# ---------------------------------------------------------------------------------------------
# Bodies


def _decode_transfer(body: bytes, cte: str, where: str, warn: Warn) -> tuple[bytes, str]:
    """Undo the Content-Transfer-Encoding (RFC 2045 section 6). Returns (data, uu filename)."""
    if cte in _IDENTITY_CTE:
        return body, ""
    if cte == "base64":
        if any(_PROSE_RE.search(line) for line in body[:1024].lstrip().split(b"\n", 3)[:3]):
            # Encoders never put spaces inside base64 lines: this is text mislabelled as base64.
            warn(f"{where}: declared as base64 but the content is not base64; shown as it is")
            return body, ""
        data, problem = _b64_lenient(body)
        if problem:
            warn(f"{where}: base64 data has {problem}; decoded what was possible")
        return data, ""
    if cte == "quoted-printable":
        if _QP_BAD_RE.search(body):
            warn(f"{where}: invalid quoted-printable sequences were kept as they are")
        return binascii.a2b_qp(body), ""
    if cte in _UU_CTE:
        return _uudecode(body, where, warn)
    loose = cte.replace("-", "").replace("_", "")
    if loose in ("base64", "b64"):
        warn(f"{where}: unknown Content-Transfer-Encoding {cte!r}, treated as base64")
        return _decode_transfer(body, "base64", where, warn)
    if loose in ("quotedprintable", "qp"):
        warn(f"{where}: unknown Content-Transfer-Encoding {cte!r}, treated as quoted-printable")
        return _decode_transfer(body, "quoted-printable", where, warn)
    warn(f"{where}: unknown Content-Transfer-Encoding {cte!r}, treated as 7bit")
    return body, ""


def _uudecode(body: bytes, where: str, warn: Warn) -> tuple[bytes, str]:
    """Decode uuencoded data between "begin" and "end", tolerating sloppy encoders."""
    lines = body.splitlines()
    begin = next((i for i, line in enumerate(lines) if line.startswith(b"begin ")), -1)
    if begin < 0:
        if body.strip():
            warn(f"{where}: uuencoded data has no 'begin' line")
        return body, ""
    fields = lines[begin].split(None, 2)
    name = fields[2].decode("utf-8", "replace").strip() if len(fields) == 3 else ""
    out = bytearray()
    ended = False
    for line in lines[begin + 1 :]:
        stripped = line.rstrip(b" \t\r")
        if stripped == b"end":
            ended = True
            break
        if not stripped:
            continue
        try:
            out += binascii.a2b_uu(stripped)
        except binascii.Error:
            # Some encoders pad lines wrongly; the length byte says how much is real.
            count = (((stripped[0] - 32) & 63) * 4 + 5) // 3
            try:
                out += binascii.a2b_uu(stripped[:count])
            except binascii.Error:
                warn(f"{where}: uuencoded data has invalid lines; they were skipped")
    if not ended:
        warn(f"{where}: uuencoded data has no 'end' line")
    return bytes(out), name


def _html_to_text(markup: str, enough: int | None = None) -> tuple[str, bool]:
    """Visible text of HTML, whitespace collapsed: tags removed, script/style/head dropped.

    Linear time on hostile input (every search moves forward). Stops early once `enough`
    non-blank characters were seen; returns the text and whether it stopped early.
    """
    out: list[str] = []
    size = len(markup)
    pos = 0
    collected = 0
    stopped = False
    while pos < size:
        lt = markup.find("<", pos)
        if lt < 0:
            out.append(markup[pos:])
            break
        if lt > pos:
            chunk = markup[pos:lt]
            out.append(chunk)
            collected += len(chunk.strip())
            if enough is not None and collected > enough:
                stopped = True
                break
        if markup.startswith("<!--", lt):
            end = markup.find("-->", lt + 4)
            pos = size if end < 0 else end + 3
            continue
        match = _TAG_NAME_RE.match(markup, lt + 1)
        if match is None:
            if lt + 1 < size and markup[lt + 1] in "!?":
                gt = markup.find(">", lt + 1)
                pos = size if gt < 0 else gt + 1
            else:
                out.append("<")
                pos = lt + 1
            continue
        gt = markup.find(">", match.end())
        if gt < 0:
            break
        name = match.group(1).lower()
        pos = gt + 1
        if name in _SKIP_CONTENT_TAGS and markup[lt + 1] != "/":
            found = _CLOSING_TAG_RE[name].search(markup, pos)
            if found is None and name == "head":
                # Sloppy HTML without </head>: the body still starts at <body>.
                found = _BODY_TAG_RE.search(markup, pos)
            if found is None:
                if name in ("head", "title"):
                    continue
                break
            gt = markup.find(">", found.start())
            pos = size if gt < 0 else gt + 1
            out.append(" ")
            continue
        if name not in _INLINE_TAGS:
            out.append(" ")
    text = "".join(out)
    if "&" in text:
        text = html_lib.unescape(text)
    return _collapse(text), stopped


def _collapse(text: str) -> str:
    """Whitespace runs to one space, invisible formatting characters removed."""
    if not text.isascii() and _INVISIBLE_RE.search(text):  # (isascii reads a flag)
        text = text.translate(_INVISIBLE)
    return " ".join(text.split())


def _snippet(text: str, markup: str) -> str:
    """About SNIPPET_LENGTH characters of text, cut at a word boundary."""
    if text and not text.isspace():
        # Only the start matters; widen the window when it is mostly whitespace. A quarter more
        # than the snippet is almost always enough (ordinary text loses a little to line
        # breaks), and collapsing is a split and a join: its cost follows the window.
        window = SNIPPET_LENGTH + SNIPPET_LENGTH // 4
        collapsed = _collapse(text[:window])
        while len(collapsed) <= SNIPPET_LENGTH and window < len(text):
            window *= 8
            collapsed = _collapse(text[:window])
    elif markup and not markup.isspace():
        scan = markup[:SNIPPET_HTML_SCAN]
        collapsed, stopped = _html_to_text(scan, SNIPPET_LENGTH * 4)
        if stopped and len(collapsed) < SNIPPET_LENGTH:
            # Mostly invisible padding (&zwnj;&nbsp; preheaders): read the whole thing.
            collapsed, _ = _html_to_text(scan)
    else:
        return ""
    if len(collapsed) <= SNIPPET_LENGTH:
        return collapsed
    cut = collapsed.rfind(" ", 0, SNIPPET_LENGTH + 1)
    if cut <= 0:
        # No word boundary (e.g. CJK text): cut at the limit.
        return collapsed[:SNIPPET_LENGTH]
    return collapsed[:cut].rstrip()


# ---------------------------------------------------------------------------------------------
# MIME structure


class _Leaf:
    """A non-multipart entity found while walking the MIME tree."""

    __slots__ = ("part_id", "lookup", "data", "start", "end", "ctype", "params", "in_related")

    def __init__(
        self,
        part_id: str,
        lookup: dict[str, bytes],
        data: bytes,
        start: int,
        end: int,
        ctype: str,
        params: dict[str, str],
        in_related: bool,
    ) -> None:
        self.part_id = part_id
        self.lookup = lookup  # lowercased field name -> first value
        self.data = data
        self.start = start
        self.end = end
        self.ctype = ctype
        self.params = params
        self.in_related = in_related


def _lookup(fields: list[tuple[str, bytes]]) -> dict[str, bytes]:
    """Lowercased field name -> value of its first occurrence."""
    result: dict[str, bytes] = {}
    for name, value in fields:
        result.setdefault(name.lower(), value)
    return result


def _split_multipart(
    data: bytes, start: int, end: int, boundary: bytes
) -> tuple[list[tuple[int, int]], bool]:
    """Find the body parts of a multipart body (RFC 2046 section 5.1.1).

    A delimiter is "--" boundary at the start of a line, optionally "--" (the close delimiter),
    then only whitespace to the end of the line. The line break before a delimiter belongs to
    the delimiter. Returns the (start, end) ranges and whether the close delimiter was seen.
    """
    delimiter = b"--" + boundary
    parts: list[tuple[int, int]] = []
    current = -1
    pos = start
    closed = False
    while True:
        i = data.find(delimiter, pos, end)
        if i < 0:
            break
        if i != start and data[i - 1] != 10:
            pos = i + 1
            continue
        j = i + len(delimiter)
        is_close = data[j : j + 2] == b"--"
        k = j + 2 if is_close else j
        nl = data.find(b"\n", k, end)
        line_end = end if nl < 0 else nl
        if line_end - k > 200 or data[k:line_end].strip(b" \t\r"):
            pos = i + 1
            continue
        if current >= 0:
            part_end = i
            if part_end > current and data[part_end - 1] == 10:
                part_end -= 1
                if part_end > current and data[part_end - 1] == 13:
                    part_end -= 1
            parts.append((current, part_end))
        if is_close:
            closed = True
            break
        current = end if nl < 0 else nl + 1
        pos = current
    if not closed and current >= 0:
        parts.append((current, end))
    return parts, closed


def _walk(
    data: bytes, warn: Warn
) -> tuple[list[tuple[str, bytes]], dict[str, bytes], dict[str, str], list[_Leaf]]:
    """Read the root header and walk the MIME tree iteratively, in document order.

    Returns the root fields (their lookup, and the parameters of the root's Content-Type) and
    the leaves with IMAP-style part numbers
    (RFC 3501 section 6.4.5): a non-multipart root is "1"; message/rfc822 parts are leaves, not
    descended into (an enclosed message is an attachment).
    """
    root_fields, body_start = _read_header_block(data, 0, len(data), "Message", warn)
    root_lookup = _lookup(root_fields)
    leaves: list[_Leaf] = []
    # Stack entries: part_id, lookup, buffer, start, end, default type, in_related, depth.
    stack: list[tuple[str, dict[str, bytes], bytes, int, int, str, bool, int]] = [
        ("", root_lookup, data, body_start, len(data), "text/plain", False, 0)
    ]
    too_many = False
    root_params: dict[str, str] = {}
    while stack:
        part_id, lookup, buf, start, end, default_type, in_related, depth = stack.pop()
        where = f"Part {part_id}" if part_id else "Message"
        leaf_id = part_id or "1"
        raw_type = lookup.get("content-type")
        if raw_type is None:
            ctype, params = default_type, {}
        else:
            ctype, params = _parse_params(raw_type.decode("latin-1"), f"{where} Content-Type", warn)
            if ctype.count("/") != 1 or not all(ctype.split("/")):
                # RFC 2045 section 5.2: an invalid Content-Type means text/plain.
                if ctype:
                    warn(f"{where}: invalid Content-Type {_short(ctype)!r}, read as text/plain")
                ctype = "text/plain"
        if not part_id:
            root_params = params
        if not ctype.startswith("multipart/"):
            leaves.append(_Leaf(leaf_id, lookup, buf, start, end, ctype, params, in_related))
            continue
        if depth >= MAX_DEPTH:
            warn(f"{where}: MIME nesting is deeper than {MAX_DEPTH} levels; not parsed further")
            leaves.append(_Leaf(leaf_id, lookup, buf, start, end, ctype, params, in_related))
            continue
        cte_raw = lookup.get("content-transfer-encoding")
        cte = cte_raw.decode("latin-1").strip().lower() if cte_raw else ""
        if cte not in _IDENTITY_CTE:
            # RFC 2045 section 6.4 forbids encoding a multipart; undo it and carry on.
            warn(f"{where}: {ctype} must not use Content-Transfer-Encoding {cte!r}")
            buf, _ = _decode_transfer(buf[start:end], cte, where, warn)
            start, end = 0, len(buf)
        boundary = params.get("boundary", "")
        if not boundary:
            warn(f"{where}: {ctype} has no boundary parameter (RFC 2046 section 5.1.1)")
            # Show the body as text rather than lose it.
            leaves.append(_Leaf(leaf_id, lookup, buf, start, end, "text/plain", params, in_related))
            continue
        codec = "utf-8" if isinstance(boundary, _Decoded) else "latin-1"
        ranges, closed = _split_multipart(buf, start, end, boundary.encode(codec, "replace"))
        if not ranges:
            warn(f"{where}: {ctype} boundary {_short(boundary)!r} never appears in the body")
            if buf[start:end].strip():
                leaves.append(
                    _Leaf(leaf_id, lookup, buf, start, end, "text/plain", params, in_related)
                )
            continue
        if not closed:
            warn(f"{where}: {ctype} has no closing boundary delimiter (RFC 2046 section 5.1.1)")
        # RFC 2046 section 5.1.5: in a digest, parts are messages unless they say otherwise.
        child_default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
        child_related = in_related or ctype == "multipart/related"
        room = MAX_PARTS - len(leaves) - len(stack)
        if len(ranges) > room:
            too_many = True
            ranges = ranges[: max(0, room)]
        children = []
        for number, (s, e) in enumerate(ranges, 1):
            child_id = f"{part_id}.{number}" if part_id else str(number)
            child_fields, child_body = _read_header_block(buf, s, e, f"Part {child_id}", warn)
            child = (child_id, _lookup(child_fields), buf, child_body, e, child_default)
            children.append((*child, child_related, depth + 1))
        stack.extend(reversed(children))
    if too_many:
        warn(f"Message has more than {MAX_PARTS} MIME parts; the rest were not parsed")
    return root_fields, root_lookup, root_params, leaves


# ---------------------------------------------------------------------------------------------
# Whole-message checks


def _line_warnings(raw: bytes, warn: Warn) -> None:
    """Long lines (RFC 5322 section 2.1.1) and bare LF line endings (RFC 5322 section 2.3)."""
    lf = raw.count(b"\n")
    crlf = raw.count(b"\r\n")
    if lf > crlf:
        if crlf == 0:
            warn("Message uses bare LF line endings; RFC 5322 section 2.3 requires CRLF")
        else:
            warn(
                f"Message has {lf - crlf} bare LF line endings; RFC 5322 section 2.3 requires CRLF"
            )
    if len(raw) <= MAX_LINE:
        return
    # The usual case without splitting the message: a line longer than MAX_LINE octets covers
    # a whole aligned window of half that, so a line feed in every window rules one out.
    find = raw.find
    step = (MAX_LINE + 1) // 2
    if all(find(b"\n", at, at + step) >= 0 for at in range(0, len(raw) - step + 1, step)):
        return
    lines = raw.split(b"\n")
    if max(map(len, lines)) <= MAX_LINE:
        return
    longest = 0
    longest_line = 0
    count = 0
    for number, line in enumerate(lines, 1):
        size = len(line)
        if size > MAX_LINE:
            if line.endswith(b"\r"):
                size -= 1
            if size > MAX_LINE:
                count += 1
                if size > longest:
                    longest, longest_line = size, number
    if count == 1:
        warn(
            f"Line {longest_line} is {longest} octets long; "
            f"RFC 5322 section 2.1.1 limits lines to {MAX_LINE}"
        )
    elif count:
        warn(
            f"{count} lines are longer than {MAX_LINE} octets (the longest, line {longest_line}, "
            f"is {longest}); RFC 5322 section 2.1.1 limits lines to {MAX_LINE}"
        )


def _hashes(data: bytes) -> tuple[str, str, str]:
    """MD5, SHA-1 and SHA-256 hex digests (checksums for display, not security)."""
    return (
        hashlib.md5(data, usedforsecurity=False).hexdigest(),
        hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        hashlib.sha256(data).hexdigest(),
    )


# ---------------------------------------------------------------------------------------------
# Entry point


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
        lists[key] = []
        for name, text, _decoded in by_name.get(key, ()):
            lists[key].extend(_addresses(text, f"{name} header", warn))

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
    for _name, _text, value in by_name.get("x-tags", ()):
        for tag in value.split(","):
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


def _bodies(
    leaves: list[_Leaf], warn: Warn, utf8: bool = False
) -> tuple[str, str, list[Part], list[Part]]:
    """Pick the text and HTML bodies and turn every other leaf into an attachment or inline part.

    Like Mailpit (via enmime): the first text/plain and the first text/html leaf whose
    disposition is not "attachment" are the bodies. Another leaf is inline when it has a
    Content-ID and sits in multipart/related, is declared inline, or is referenced as cid: from
    the HTML (RFC 2392); every other leaf is an attachment.
    """
    text = ""
    markup = ""
    have_text = have_html = False
    others: list[tuple[_Leaf, str, dict[str, str], bytes, str]] = []
    for leaf in leaves:
        where = f"Part {leaf.part_id}"
        charset = leaf.params.get("charset", "")
        raw_disp = leaf.lookup.get("content-disposition")
        disposition, disp_params = ("", {})
        if raw_disp is not None:
            disp_text = raw_disp.decode("latin-1")
            disposition, disp_params = _parse_params(
                disp_text, f"{where} Content-Disposition", warn
            )
        if disposition not in ("attachment", "inline"):
            disposition = ""
        cte_raw = leaf.lookup.get("content-transfer-encoding")
        cte = cte_raw.decode("latin-1").strip().lower() if cte_raw else ""
        if cte_raw is not None and not cte:
            warn(f"{where}: empty Content-Transfer-Encoding, treated as 7bit")
        is_body_type = leaf.ctype in ("text/plain", "text/html")
        if is_body_type and disposition != "attachment":
            if leaf.ctype == "text/plain" and not have_text:
                have_text = True
                text = _body_text(leaf, cte, charset, where, warn)
                continue
            if leaf.ctype == "text/html" and not have_html:
                have_html = True
                markup = _body_text(leaf, cte, charset, where, warn)
                continue
        if leaf.ctype.startswith("message/") and cte not in _IDENTITY_CTE:
            # RFC 2046 section 5.2.1: message/rfc822 may only be 7bit, 8bit or binary.
            warn(f"{where}: {leaf.ctype} must not use Content-Transfer-Encoding {cte!r}")
        data, uu_name = _decode_transfer(leaf.data[leaf.start : leaf.end], cte, where, warn)
        others.append((leaf, disposition, disp_params, data, uu_name))

    attachments: list[Part] = []
    inline: list[Part] = []
    cid_refs: set[str] | None = None  # made when first needed: most messages never need it
    for leaf, disposition, disp_params, data, uu_name in others:
        where = f"Part {leaf.part_id}"
        charset = leaf.params.get("charset", "")
        fallback = charset or None
        filename = ""
        for params, header in ((disp_params, "Content-Disposition"), (leaf.params, "Content-Type")):
            for key in ("filename", "name"):
                if params.get(key):
                    filename = _param_text(params[key], f"{where} {header}", fallback, warn, utf8)
                    break
            if filename:
                break
        if not filename and uu_name:
            filename = uu_name
        if not filename and leaf.ctype in ("message/rfc822", "message/global"):
            filename = _enclosed_subject(data) + ".eml"
        raw_cid = leaf.lookup.get("content-id")
        content_id = ""
        if raw_cid is not None:
            cid_text = _header_text(raw_cid, f"{where} Content-ID", fallback, warn, utf8).strip()
            match = _MSGID_RE.search(cid_text)
            content_id = (match.group(1) if match else cid_text).strip().strip("<>").strip()
        md5, sha1, sha256 = _hashes(data)
        part = Part(
            part_id=leaf.part_id,
            content_type=leaf.ctype,
            filename=filename.strip(),
            content_id=content_id,
            disposition=disposition,
            size=len(data),
            md5=md5,
            sha1=sha1,
            sha256=sha256,
            data=data,
        )
        is_inline = False
        if content_id and disposition != "attachment":
            is_inline = disposition == "inline" or leaf.in_related
            if not is_inline and markup:
                if cid_refs is None:
                    cid_refs = _cid_refs(markup)
                is_inline = _cid_referenced(content_id, cid_refs, markup)
        (inline if is_inline else attachments).append(part)
    return text, markup, attachments, inline


def _strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def _body_text(leaf: _Leaf, cte: str, charset: str, where: str, warn: Warn) -> str:
    """A text or HTML body leaf as str with LF line breaks.

    A body over BIG_BODY bytes takes the route of _big_body_text, which holds fewer copies of
    it at once; the result is the same.
    """
    if leaf.end - leaf.start > BIG_BODY:
        return _big_body_text(leaf, cte, charset, where, warn)
    data, _ = _decode_transfer(leaf.data[leaf.start : leaf.end], cte, where, warn)
    label = charset
    if not label and leaf.ctype == "text/html":
        found = _META_CHARSET_RE.search(data[:4096])
        label = found.group(1).decode("ascii") if found else ""
    text = _decode_text(data, label or None, where, warn)
    return _strip_bom(text).replace("\r\n", "\n")


def _big_body_text(leaf: _Leaf, cte: str, charset: str, where: str, warn: Warn) -> str:
    """_body_text for a big body: at most about two copies of it are alive at any moment.

    The straightforward route holds up to five (the encoded part copied out of the message,
    binascii's scratch buffer and result, the str, the str with CRLF replaced): a 50 MB body
    cost several hundred MB. Here quoted-printable and identity bodies are read through a
    memoryview of the message in line-aligned chunks; CRLF becomes LF on the bytes before the
    str exists, when the charset keeps CR and LF single bytes (every ASCII-compatible one);
    and each intermediate goes as soon as the next exists.
    """
    label = charset
    if not label and leaf.ctype == "text/html":
        found = _META_CHARSET_RE.search(leaf.data, leaf.start, min(leaf.end, leaf.start + 4096))
        label = found.group(1).decode("ascii") if found else ""
    crlf_bytes = _crlf_is_bytes(label)
    data: bytes | bytearray
    if cte in _IDENTITY_CTE or cte == "quoted-printable":
        if cte == "quoted-printable" and _QP_BAD_RE.search(leaf.data, leaf.start, leaf.end):
            warn(f"{where}: invalid quoted-printable sequences were kept as they are")
        step: Callable[[memoryview], bytes] = (
            binascii.a2b_qp if cte == "quoted-printable" else bytes  # type: ignore[assignment]
        )
        data = _by_lines(leaf.data, leaf.start, leaf.end, step, crlf_bytes)
    else:
        # base64 and the rarer encodings: the decoded bytes are smaller than the encoded.
        data, _ = _decode_transfer(leaf.data[leaf.start : leaf.end], cte, where, warn)
        if crlf_bytes and b"\r\n" in data:
            data = data.replace(b"\r\n", b"\n")
    text = _decode_text(data, label or None, where, warn)
    del data
    if text.startswith("\ufeff"):
        text = text[1:]
    # CR and LF that were not single bytes, or a CRLF split across two chunks (an encoded CR
    # just before a soft line break): rare, and what the straightforward route does anyway.
    return text.replace("\r\n", "\n") if "\r\n" in text else text


def _by_lines(
    data: bytes, start: int, end: int, step: Callable[[memoryview], bytes], crlf: bool
) -> bytearray:
    """step() applied to data[start:end] in chunks of about BODY_CHUNK that end at a line
    break (quoted-printable decodes line by line), CRLF replaced by LF when `crlf`."""
    view = memoryview(data)
    out = bytearray()
    pos = start
    while pos < end:
        nl = data.find(b"\n", min(pos + BODY_CHUNK, end) - 1, end)
        stop = end if nl < 0 else nl + 1
        chunk = step(view[pos:stop])
        out += chunk.replace(b"\r\n", b"\n") if crlf else chunk
        pos = stop
    return out


@lru_cache(maxsize=256)
def _crlf_is_bytes(label: str) -> bool:
    """Whether CR LF can be replaced on the bytes of text in this charset: true when every
    codec _decode_text may use reads the two bytes as CR LF (ASCII-compatible charsets, whose
    multi-byte sequences never contain them), not for UTF-16, UTF-32 or EBCDIC."""
    chain = _codecs_for(label) if label else _ASCII_CODECS
    for codec in chain or ():
        try:
            if b"\r\n".decode(codec) != "\r\n":
                return False
        except (UnicodeError, LookupError, ValueError, TypeError):
            return False
    return True


# A cid: URL in HTML (RFC 2392) runs up to a quote, a space, a bracket or the end of the tag.
_CID_URL_RE = re.compile(r"""cid:([^\s"'<>()]{1,998})""", re.I)


def _cid_refs(markup: str) -> set[str]:
    """The cid: references of an HTML body, lowercased (never the whole body lowercased:
    str.lower() of non-ASCII text takes 12 bytes a character while it works)."""
    return {m.group(1).lower() for m in _CID_URL_RE.finditer(markup)}


def _cid_referenced(content_id: str, refs: set[str], markup: str) -> bool:
    """Whether "cid:" + content_id appears in the HTML, ignoring case."""
    wanted = content_id.lower()
    if len(wanted) < 998 and _CID_URL_RE.fullmatch("cid:" + wanted):
        return any(ref.startswith(wanted) for ref in refs)
    # A Content-ID with a space or quote in it, or a very long one: look for it directly.
    return re.search(re.escape("cid:" + content_id), markup, re.I) is not None


def _enclosed_subject(data: bytes) -> str:
    """The Subject of an enclosed message, for naming it "<subject>.eml"."""
    fields, _ = _read_header_block(data, 0, min(len(data), 256 * 1024), "", _ignore)
    value = _lookup(fields).get("subject")
    if value is None:
        return "message"
    subject = " ".join(_decoded_header(value, "Subject", None, _ignore).split())
    return subject or "message"
