"""Content-Transfer-Encoding (RFC 2045 section 6): base64, quoted-printable and uuencode."""

from __future__ import annotations

import binascii
import re

from mailpit_py.parse.warnings import Warn

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_B64_JUNK_RE = re.compile(rb"[^A-Za-z0-9+/]+")
# Words separated by spaces inside a line: prose, not base64 (RFC 2045 section 6.8 lines).
_PROSE_RE = re.compile(rb"[A-Za-z0-9+/]{2}[ \t]+[A-Za-z0-9+/]{2}")
_B64_PAD_RE = re.compile(rb"=+")
_B64_TRAILER = "text after the end of the data"
# A "=" in quoted-printable must start a soft line break or a hex pair (RFC 2045 section 6.7).
_QP_BAD_RE = re.compile(rb"=(?![0-9A-Fa-f]{2}|[ \t]*\r?\n|[ \t]*\Z)")
_IDENTITY_CTE = frozenset({"", "7bit", "8bit", "binary"})
_UU_CTE = frozenset({"x-uuencode", "uuencode", "x-uue", "uue"})


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
