"""Warning sentences collected while parsing, and the checks that look at the whole message."""

from __future__ import annotations

from collections.abc import Callable

Warn = Callable[[str], None]

# RFC 5322 section 2.1.1: a line must not exceed 998 characters excluding CRLF.
MAX_LINE = 998


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
