"""The MIME tree: multipart bodies split into parts, walked in document order."""

from __future__ import annotations

from mailpit_py.parse.headers import _Decoded, _parse_params, _read_header_block
from mailpit_py.parse.transfer import _IDENTITY_CTE, _decode_transfer
from mailpit_py.parse.warnings import Warn, _short

# Guards against hostile structure: real mail never comes close to these numbers, and without
# them a crafted message could make ingest slow (the SMTP handler waits for us).
MAX_DEPTH = 64
MAX_PARTS = 5000


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
    params: dict[str, str]
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
