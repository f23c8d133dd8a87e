"""Addresses, dates and the other header fields with a structure of their own."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import getaddresses, parsedate_tz

from mailpit_py.models import Address, ListUnsubscribe
from mailpit_py.parse.headers import _decode_words
from mailpit_py.parse.warnings import Warn, _short

try:
    # Python 3.13+ (and security releases) default to strict=True, which turns any oddity into
    # [("", "")]; a mail catcher wants the lenient, pre-CVE-2023-27043 behaviour.
    getaddresses(["a@example.com"], strict=False)
    _GETADDRESSES_OPTIONS: dict[str, bool] = {"strict": False}
except TypeError:
    _GETADDRESSES_OPTIONS = {}

_ADDR_SPEC = r"[^\s\"<>,;:@()\[\]\\]+@[^\s\"<>,;:@()\[\]\\]+"
_SIMPLE_ADDRESS_RE = re.compile(
    rf"""\s*(?:(?:"([^"\\]*)"|([^"<>,;:@()\[\]\\]*?))\s*<({_ADDR_SPEC})>|({_ADDR_SPEC}))\s*"""
)
_ZONE_RE = re.compile(r"(?:[+-]\d{4}|UT|GMT|UTC|Z|[ECMP][SD]T)$", re.I)
_TAG_INVALID_RE = re.compile(r"[^a-zA-Z0-9\-_. ]")
_COMMENT_RE = re.compile(r"\(.*?\)", re.S)
_ANGLE_RE = re.compile(r"<(.*?)>")
_JOIN_RE = re.compile(r">(.*?)<", re.S)
_WS_RE = re.compile(r"\s+")


def _addresses(value: str, where: str, warn: Warn, limit: int = 0) -> list[Address]:
    """Parse an address-list; groups are flattened, entries without an addr-spec dropped.
    With a `limit`, the everyday forms are read no further than one past it."""
    pairs = _simple_addresses(value, limit)
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


def _simple_addresses(value: str, limit: int = 0) -> list[tuple[str, str]] | None:
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
            if len(pieces) == limit + 1:
                break  # (limit 0: never) past the limit: the caller keeps no more
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
