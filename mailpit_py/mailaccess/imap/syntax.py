"""IMAP4rev1 syntax (RFC 3501 section 9): command tokens with literals, sequence sets, and the
strings, lists and mailbox names of responses."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class ImapSyntaxError(ValueError):
    """A command that does not parse; answered with BAD and this message."""


class Atom(str):
    """An atom as the client sent it (as opposed to a quoted string or a literal)."""


Token = Atom | bytes | list  # bytes: a quoted string or a literal; list: a parenthesized list

_LITERAL_AT_END = re.compile(rb"\{(\d{1,10})(\+?)\}\r?\n?$")
_LITERAL = re.compile(rb"\{(\d{1,10})\+?\}\r?\n")


def literal_at_end(line: bytes) -> tuple[int, bool] | None:
    """(size, non-synchronizing) when the line ends in a literal announcement `{n}`/`{n+}`."""
    m = _LITERAL_AT_END.search(line)
    if m is None:
        return None
    return int(m.group(1)), bool(m.group(2))


def tokenize(data: bytes) -> list[Token]:
    """Split a whole command (literals inline, as `{n}\\r\\n` then n bytes) into tokens."""
    tokens, pos = _parse_list(data, 0, top=True)
    return tokens


def _parse_list(data: bytes, pos: int, top: bool) -> tuple[list[Token], int]:
    out: list[Token] = []
    n = len(data)
    while pos < n:
        c = data[pos : pos + 1]
        if c == b" ":
            pos += 1
        elif c in (b"\r", b"\n"):
            if not top:
                raise ImapSyntaxError("missing ')'")
            pos += 1
        elif c == b"(":
            inner, pos = _parse_list(data, pos + 1, top=False)
            out.append(inner)
        elif c == b")":
            if top:
                raise ImapSyntaxError("unexpected ')'")
            return out, pos + 1
        elif c == b'"':
            value, pos = _parse_quoted(data, pos + 1)
            out.append(value)
        elif c == b"{":
            m = _LITERAL.match(data, pos)
            if m is None:
                raise ImapSyntaxError("bad literal")
            size = int(m.group(1))
            start = m.end()
            if start + size > n:
                raise ImapSyntaxError("literal shorter than announced")
            out.append(data[start : start + size])
            pos = start + size
        else:
            atom, pos = _parse_atom(data, pos)
            out.append(Atom(atom.decode("utf-8", "replace")))
    if not top:
        raise ImapSyntaxError("missing ')'")
    return out, pos


def _parse_quoted(data: bytes, pos: int) -> tuple[bytes, int]:
    out = bytearray()
    while pos < len(data):
        c = data[pos]
        if c == 0x5C:  # backslash quotes the next character
            pos += 1
            if pos >= len(data):
                break
            out.append(data[pos])
        elif c == 0x22:
            return bytes(out), pos + 1
        elif c in (0x0D, 0x0A):
            break
        else:
            out.append(c)
        pos += 1
    raise ImapSyntaxError("unterminated quoted string")


def _parse_atom(data: bytes, pos: int) -> tuple[bytes, int]:
    """An atom; `[...]` inside it (BODY[HEADER.FIELDS (A B)]) is kept whole, spaces and all."""
    start = pos
    depth = 0
    while pos < len(data):
        c = data[pos : pos + 1]
        if c == b"[":
            depth += 1
        elif c == b"]":
            depth = max(0, depth - 1)
        elif c in (b"\r", b"\n") or (depth == 0 and c in (b" ", b"(", b")")):
            break
        pos += 1
    if depth:
        raise ImapSyntaxError("missing ']'")
    return data[start:pos], pos


def text(token: Token) -> str:
    """A token as text (atom, quoted string or literal); a list is a syntax error."""
    if isinstance(token, list):
        raise ImapSyntaxError("a string was expected, not a list")
    if isinstance(token, bytes):
        return token.decode("utf-8", "surrogateescape")
    return str(token)


# -- sequence sets (RFC 3501 section 9, sequence-set) ------------------------------------------


@dataclass(frozen=True)
class SequenceSet:
    """Ranges of numbers; `*` is resolved against the largest number when matching."""

    ranges: tuple[tuple[int | None, int | None], ...]  # None stands for *

    @classmethod
    def parse(cls, value: str) -> SequenceSet:
        ranges: list[tuple[int | None, int | None]] = []
        for item in value.split(","):
            lo, sep, hi = item.partition(":")
            a = _seq_number(lo)
            b = _seq_number(hi) if sep else a
            ranges.append((a, b))
        return cls(tuple(ranges))

    def contains(self, number: int, largest: int) -> bool:
        for a, b in self.ranges:
            lo = largest if a is None else a
            hi = largest if b is None else b
            if lo > hi:
                lo, hi = hi, lo
            if lo <= number <= hi:
                return True
        return False

    def select(self, numbers: Sequence[int], largest: int) -> list[int]:
        return [n for n in numbers if self.contains(n, largest)]

    def bounded(self, largest: int) -> bool:
        """True when every number named exists (for message sequence numbers). A range to `*`
        always names the last message, as `3291:*` names the last UID even when it is lower
        (RFC 3501 section 9, seq-range): a client that fetches `5:*` for what is new since
        message 4 gets the last message, not an error, when some went meanwhile."""
        for a, b in self.ranges:
            if a is None or b is None:
                continue
            if a > largest or b > largest:
                return False
        return True


def _seq_number(value: str) -> int | None:
    if value == "*":
        return None
    if not value.isdigit() or int(value) == 0:
        raise ImapSyntaxError(f"{value!r} is not a message number or *")
    return int(value)


def is_sequence_set(value: object) -> bool:
    return isinstance(value, Atom) and bool(re.fullmatch(r"[0-9*:,]+", value))


def compact(numbers: Iterable[int]) -> str:
    """1,2,3,5 -> 1:3,5 (for UID sets in responses)."""
    out: list[str] = []
    run: list[int] = []
    for n in sorted(numbers):
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            out.append(f"{run[0]}:{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [n]
    if run:
        out.append(f"{run[0]}:{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


# -- response data ----------------------------------------------------------------------------

_QUOTABLE = re.compile(rb"[\x20-\x7e]*")


def string(value: str | bytes | None) -> bytes:
    """nstring: NIL, a quoted string, or a literal when quoting cannot carry the value."""
    if value is None:
        return b"NIL"
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(data) < 1000 and _QUOTABLE.fullmatch(data):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(data)


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def plist(items: Iterable[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


# -- mailbox names (RFC 3501 section 5.1.3, modified UTF-7) --------------------------------------


def encode_mailbox(name: str) -> str:
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            chunk = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(chunk).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode_mailbox(name: str) -> str:
    def swap(m: re.Match[str]) -> str:
        body = m.group(1)
        if not body:
            return "&"
        data = body.replace(",", "/")
        data += "=" * (-len(data) % 4)
        try:
            return base64.b64decode(data).decode("utf-16-be")
        except (ValueError, UnicodeDecodeError):
            return m.group(0)

    return re.sub(r"&([A-Za-z0-9+,]*)-", swap, name)


def list_match(pattern: str, name: str) -> bool:
    """LIST wildcards: `*` matches anything, `%` anything but the hierarchy delimiter."""
    regex = "".join(
        ".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch) for ch in pattern
    )
    return re.fullmatch(regex, name, re.S) is not None
