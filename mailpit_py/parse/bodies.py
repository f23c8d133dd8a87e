"""The text and HTML bodies of a message, and its attachments and inline parts."""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Callable
from functools import lru_cache

from mailpit_py.models import Part
from mailpit_py.parse.charsets import _ASCII_CODECS, _codecs_for, _decode_text
from mailpit_py.parse.headers import (
    _MSGID_RE,
    _decoded_header,
    _header_text,
    _param_text,
    _parse_params,
    _read_header_block,
)
from mailpit_py.parse.mime import _Leaf, _lookup
from mailpit_py.parse.transfer import _IDENTITY_CTE, _QP_BAD_RE, _decode_transfer
from mailpit_py.parse.warnings import Warn, _ignore

# A text or HTML body larger than this (encoded) is decoded in chunks of BODY_CHUNK, holding
# about two copies of it at a time instead of five; smaller ones take the quicker route.
BIG_BODY = 1024 * 1024
BODY_CHUNK = 1024 * 1024
_META_CHARSET_RE = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I
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
        disposition = ""
        disp_params: dict[str, str] = {}
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


def _hashes(data: bytes) -> tuple[str, str, str]:
    """MD5, SHA-1 and SHA-256 hex digests (checksums for display, not security)."""
    return (
        hashlib.md5(data, usedforsecurity=False).hexdigest(),
        hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        hashlib.sha256(data).hexdigest(),
    )


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
            binascii.a2b_qp if cte == "quoted-printable" else bytes
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
