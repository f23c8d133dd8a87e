"""Mailpit-syntax search queries parsed into terms, and text normalization for the FTS index."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["MAX_TERMS", "SearchError", "Term", "index_text", "parse_query"]


class SearchError(ValueError):
    """A query that cannot be understood; the message says what is wrong (HTTP 400)."""


@dataclass(frozen=True)
class Term:
    """One search term; every term of a query must hold (they are ANDed).

    kind is one of KINDS. value is already converted: the text to look for (word, phrase,
    from, to, cc, bcc, reply-to, addressed, subject, message-id, tag, header); "read",
    "unread", "tagged" or "refused" for is; "attachment" or "inline" for has; UTC epoch
    seconds (float) for after and before; bytes (int) for larger and smaller. For header, name
    is the header name and value the text its value must contain ("" when the header only has
    to be present).
    """

    kind: str
    value: str | int | float = ""
    negated: bool = False
    name: str = ""


ADDRESS_KINDS = ("from", "to", "cc", "bcc", "reply-to")
TEXT_KINDS = (*ADDRESS_KINDS, "addressed", "subject", "message-id", "tag")
KINDS = (
    "word",
    "phrase",
    *TEXT_KINDS,
    "is",
    "has",
    "after",
    "before",
    "larger",
    "smaller",
    "header",
)
_PREFIXES = frozenset(KINDS) - {"word", "phrase"}
_IS_VALUES = ("read", "unread", "tagged", "refused")  # refused: kept by --receiver
# Mailpit accepts the plural too (has:attachments, has:inlines).
_HAS_VALUES = {"attachment": "attachment", "attachments": "attachment"}
_HAS_VALUES |= {"inline": "inline", "inlines": "inline"}

_PREFIX_RE = re.compile(r"([A-Za-z][A-Za-z-]*):(.*)", re.S)
# Header field names are printable ASCII except colon (RFC 5322 section 3.6.8).
_HEADER_NAME_RE = re.compile(r"[!-9;-~]+")
_SIZE_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmg]?)(?:i?b)?", re.I)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}  # 1024-based, as Mailpit
_DAY_RE = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})")


# Terms a query may have. Each is a condition of one SQL statement, and SQLite refuses an
# expression nested about a thousand deep, so a query of thousands of words (a few KB of URL)
# failed inside the database; no search a person or a test writes comes near this.
MAX_TERMS = 500


def parse_query(query: str, tz: str = "") -> list[Term]:
    """Parse a search query into terms; [] (everything matches) for an empty query.

    `tz` is an IANA zone name (Mailpit's ?tz=) for dates without an offset; UTC by default.
    Raises SearchError for a value it cannot use (a bad date, is:, has: or zone) and for more
    than MAX_TERMS terms; larger: and smaller: with something that is not a size are plain
    words, as in Mailpit.
    """
    zone = _zone(tz)
    terms: list[Term] = []
    # Control characters (NUL included) separate words; none can be searched for.
    query = _CONTROL_RE.sub(" ", query)
    for token, starts_quoted in _tokens(query):
        term = _term(token, starts_quoted, zone)
        if term is not None:
            terms.append(term)
            if len(terms) > MAX_TERMS:
                raise SearchError(f"a search may have at most {MAX_TERMS} terms")
    return terms


def _zone(tz: str) -> tzinfo:
    name = tz.strip()
    if not name or name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise SearchError(
            f"unknown time zone {tz!r}: use an IANA name such as Europe/Berlin"
        ) from None


def _tokens(query: str) -> list[tuple[str, bool]]:
    """Split on whitespace outside double quotes, keeping the quotes.

    Each token comes with whether its body (after a leading - or !) starts with a quote.
    An unbalanced quote runs to the end of the query: the rest is one phrase, never an error.
    """
    out: list[tuple[str, bool]] = []
    i, n = 0, len(query)
    while i < n:
        if query[i].isspace():
            i += 1
            continue
        start = i
        in_quote = False
        while i < n and (in_quote or not query[i].isspace()):
            if query[i] == '"':
                in_quote = not in_quote
            i += 1
        token = query[start:i]
        body = token[1:] if len(token) > 1 and token[0] in "-!" else token
        out.append((token, body.startswith('"')))
    return out


def _term(token: str, starts_quoted: bool, zone: tzinfo) -> Term | None:
    negated = False
    # A lone "-" or "!" is not a negation of nothing (Mailpit: only when more follows).
    if len(token) > 1 and token[0] in "-!":
        negated = True
        token = token[1:]
    if starts_quoted:
        text = token.replace('"', "").strip()
        return _free_text(text, negated, quoted=True)
    match = _PREFIX_RE.fullmatch(token)
    if match is None or match.group(1).lower() not in _PREFIXES:
        # Unknown prefixes (a URL, "re:", "foo:bar") are plain text.
        return _free_text(token.replace('"', ""), negated, quoted='"' in token)
    kind = match.group(1).lower()
    raw = match.group(2)
    value = raw.replace('"', "").strip()
    if kind == "header":
        return _header_term(raw, negated)
    if not value:
        return None  # "from:" alone, as while typing: ignored, like Mailpit does
    if kind in TEXT_KINDS:
        if kind == "message-id":
            value = value.strip("<>").strip()
            if not value:
                return None
        return Term(kind, value, negated)
    lower = value.lower()
    if kind == "is":
        if lower not in _IS_VALUES:
            raise SearchError(f"is: needs read, unread, tagged or refused, got {value!r}")
        return Term(kind, lower, negated)
    if kind == "has":
        if lower not in _HAS_VALUES:
            raise SearchError(f"has: needs attachment or inline, got {value!r}")
        return Term(kind, _HAS_VALUES[lower], negated)
    if kind in ("after", "before"):
        return Term(kind, _timestamp(kind, value, zone), negated)
    size = _size(value)  # larger, smaller
    if size is None:
        # Not a size Mailpit reads: the whole token is free text, as in Mailpit.
        return _free_text(token.replace('"', ""), negated, quoted='"' in token)
    return Term(kind, size, negated)


def _free_text(text: str, negated: bool, quoted: bool) -> Term | None:
    text = text.strip()
    if not text:
        return None
    # Terms of ASCII punctuation only ("-", "&", "...") carry nothing to search for; Mailpit
    # skips them too. Other symbols (emoji) are kept: search_sql matches them in subjects.
    if text.isascii() and not any(ch.isalnum() for ch in text):
        return None
    kind = "phrase" if quoted or any(ch.isspace() for ch in text) else "word"
    return Term(kind, text, negated)


def _header_term(raw: str, negated: bool) -> Term | None:
    """header:Name (present) or header:Name:value (value contains), the value maybe quoted."""
    name, sep, value = raw.partition(":")
    name = name.replace('"', "").strip()
    value = value.replace('"', "").strip()
    if not name:
        if sep or value:
            raise SearchError(
                "header: needs a header name, such as header:X-Campaign or header:X-Campaign:spring"
            )
        return None
    if not _HEADER_NAME_RE.fullmatch(name):
        raise SearchError(f"header: {name!r} is not a valid header name")
    return Term("header", value, negated, name=name)


def _timestamp(kind: str, value: str, zone: tzinfo) -> float:
    """A date (start of that day) or date and time, in `zone` unless it carries an offset."""
    when: datetime | None = None
    day = _DAY_RE.fullmatch(value)
    try:
        if day:
            when = datetime(int(day[1]), int(day[2]), int(day[3]), tzinfo=zone)
        else:
            when = datetime.fromisoformat(value)
            if when.tzinfo is None:
                when = when.replace(tzinfo=zone)
    except ValueError:
        when = None
    if when is None:
        raise SearchError(
            f"{kind}: needs a date such as 2026-11-21 or 2026-11-21T14:30, got {value!r}"
        )
    return when.timestamp()


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_MAX_SIZE = 2**62  # SQLite integers are 64-bit; no message is anywhere near this


def _size(value: str) -> int | None:
    """Bytes for a size such as 1M or 500k; None for anything else, and for a size under one
    byte (Mailpit reads those as no size at all). A size too large for SQLite is clamped."""
    match = _SIZE_RE.fullmatch(value)
    if match is None:
        return None
    size = float(match[1]) * _SIZE_UNITS[match[2].lower()]
    if size < 1:
        return None
    return int(min(size, _MAX_SIZE))


# Scripts written without spaces between words. FTS5's unicode61 tokenizer would take a whole
# run of them as one token, so a word inside a sentence could never be found: each character
# becomes its own token instead, and a query word becomes a phrase of single characters
# (adjacent characters, so a substring match). Ranges: CJK symbols that are letters (々〆〇,
# Hangzhou numerals, kana repeat marks), Hiragana, Katakana, Bopomofo, Hangul compatibility
# jamo, Katakana extensions, CJK ideographs (extension A, unified, compatibility), Hangul
# syllables, half-width Katakana, and the supplementary ideograph planes.
_CJK_RE = re.compile(
    "["
    "\u3005-\u3007\u3021-\u3029\u3031-\u3035"
    "\u3040-\u30ff\u3100-\u318f\u31a0-\u31bf\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\uac00-\ud7af\uff66-\uff9f"
    "\U00020000-\U0003134f"
    "]"
)


def index_text(text: str) -> str:
    """Text as the FTS index should see it: CJK characters spaced apart into single tokens.

    Applied to every indexed column at ingest and to every query word, so both sides agree.
    """
    if text.isascii():
        return text
    return _CJK_RE.sub(r" \g<0> ", text)
