"""The DATA reader: the message up to CRLF "." CRLF, dot-unstuffed, within the size limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def read_data(
    reader: asyncio.StreamReader, limit: int, activity: Callable[[], None]
) -> tuple[bytes | None, bool, int, int]:
    """Read up to the lone-dot line; returns (unstuffed bytes, over the size limit, octets
    received, lines received); the bytes are None at EOF (the client gave up mid-DATA; the
    caller closes the connection so the session ends and is recorded). `reader` is the stream
    itself, not the recording wrapper (its __getattr__ ran for every read): the data is
    recorded as one summary line, not line by line. `activity` is called for each chunk that
    comes: the idle timeout counts from the last one (as RFC 5321 section 4.5.3.2 times each
    read), so a big message on a slow link is not cut off while its data keeps coming.

    Only CRLF "." CRLF ends the data (RFC 5321 section 4.1.1.4). A dot between a bare LF or
    CR and a line end of any kind is data: a server that took it for the end would read what
    follows as new commands, a second message smuggled in with an envelope of the sender's
    choosing, that a relay in front of this one had passed on as the body of the first (SMTP
    smuggling). Bare LF and bare CR are kept as they came, and lines may be longer than 998
    octets: real apps send both, and the parser warns (RFC 5321 section 4.5.3.1.6). A line
    after a bare LF is still a line for dot-unstuffing: clients stuff those too.

    The size limit counts the unstuffed octets (what is stored), not the wire's, and is
    enforced while reading: past it, the data is dropped as it comes, and only its octets and
    lines are counted, for the transcript (the client did send them).
    """
    # The CRLF that ended the DATA command starts the buffer, so a dot line at the very
    # start (an empty message, a stuffed first line) is found like any other.
    buf = bytearray(b"\r\n")
    scan = 0
    stuffed = 0  # dots to be removed before `scan`
    too_big = False
    dropped = dropped_lines = 0  # octets (and line ends) of data dropped over the limit
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return None, False, 0, 0  # EOF mid-DATA
        activity()
        buf += chunk
        end, scan, dots = find_terminator(buf, scan)
        stuffed += dots
        if end is None:
            if limit and not too_big and scan - 2 - stuffed > limit:
                too_big = True
            if too_big:
                # Keep only what may still begin the terminator (and the octet before it,
                # which says whether a line ended in CRLF): memory stays bounded.
                dropped += scan - 1
                dropped_lines += buf.count(b"\n", 0, scan - 1)
                del buf[: scan - 1]
                scan = 1
            continue
        body_end, after = end
        leftover = bytes(buf[after:])
        if leftover:
            # Pipelined commands after the data belong to the command loop: back into the
            # stream's buffer (asyncio's own attribute; StreamReader has no unread()).
            reader._buffer[0:0] = leftover  # type: ignore[attr-defined]
        if too_big or (limit and body_end - 2 - stuffed > limit):
            # (the 2 and the 1: the CRLF that began the buffer, dropped or not)
            size = dropped + body_end - 2 - stuffed
            return b"", True, size, dropped_lines + buf.count(b"\n", 0, body_end) - 1
        # One copy out, then the buffer goes, so a 50 MB message is held at most twice here
        # (slicing first would copy it twice more). Deleting from a bytearray's front is
        # cheap (it moves its start).
        del buf[body_end:]
        del buf[:2]
        if buf.startswith(b"."):
            del buf[0]
        data = bytes(buf)
        del buf
        # Dot-unstuffing (RFC 5321 section 4.5.2): a leading dot on any line is removed;
        # replace() returns the same object when there is none.
        data = data.replace(b"\n.", b"\n")
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        return data, False, len(data), lines


def find_terminator(buf: bytearray, start: int) -> tuple[tuple[int, int] | None, int, int]:
    """Look for CRLF "." CRLF in `buf` from `start` (`buf` begins with the CRLF before the data).

    Returns ((end of the data, index after the terminator) or None, where the next search
    starts, how many stuffed dots lie between `start` and there). Every other line that starts
    with a dot, after a CRLF or a bare LF, loses that dot when unstuffed (as Postfix does, and
    as clients such as Python's smtplib stuff them); the count keeps the size limit to the
    octets that are stored.
    """
    pos = start
    dots = 0
    while True:
        i = buf.find(b"\n.", pos)
        if i < 0:
            # A LF at the very end may begin the next dot line.
            return None, max(pos, len(buf) - 1), dots
        if buf[i - 1] == 13:  # "\r": a CRLF line, which a lone dot may end
            tail = buf[i + 2 : i + 4]
            if tail == b"\r\n":
                return (i + 1, i + 4), i, dots
            if tail == b"\r" or not tail:
                return None, i, dots  # may complete with the next read
        dots += 1
        pos = i + 2


def crcrlf_in_headers(raw: bytes) -> bool:
    """Whether a header line of the message ends in <CR><CR><LF> (what --smtp-strict-rfc-headers
    refuses, as Mailpit does); the body is not looked at."""
    for line in raw.split(b"\n"):
        if line in (b"", b"\r", b"\r\r"):  # the blank line that ends the headers
            return line == b"\r\r"
        if line.endswith(b"\r\r"):
            return True
    return False
