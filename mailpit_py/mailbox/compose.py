"""Builds a MIME message from a Mailpit send-API request body (no web imports; the only I/O is
reading the --dkim-sign keys, once per process)."""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from typing import Any

from mailpit_py.dkimsign.signer import signer_for
from mailpit_py.models import Envelope

_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 section 2.2: printable ASCII except ':'
# Everything str.splitlines() breaks on: the email package treats each as a line break, so a
# value holding one would split a header (header injection) or be refused deep inside it.
_LINE_BREAK = re.compile(r"[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_STRUCTURAL = {"content-type", "content-transfer-encoding", "mime-version"}


class ComposeError(ValueError):
    """The request body cannot become a message; the text says which field and why."""


def _text(body: dict[str, Any], key: str, *, one_line: bool = False) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ComposeError(f"{key} must be a string")
    if one_line:
        _single_line(value, key)
    return value


def _single_line(value: str, where: str) -> None:
    if _LINE_BREAK.search(value):
        raise ComposeError(f"{where} must be a single line (it contains a line break)")


def _address(value: Any, where: str) -> tuple[str, str]:
    if not isinstance(value, dict):
        raise ComposeError(f"{where} must be an object with Email and Name")
    email, name = value.get("Email"), value.get("Name", "") or ""
    if (
        not isinstance(email, str)
        or "@" not in email
        or any(c in email for c in '<>" ,;()[]\\')
        or _LINE_BREAK.search(email)
        or not email.isprintable()
    ):
        raise ComposeError(f"{where}.Email must be an email address, got {email!r}")
    if not isinstance(name, str):
        raise ComposeError(f"{where}.Name must be a string")
    _single_line(name, f"{where}.Name")
    return name, email


def _addresses(body: dict[str, Any], key: str) -> list[tuple[str, str]]:
    value = body.get(key) or []
    if not isinstance(value, list):
        raise ComposeError(f"{key} must be a list of {{Email, Name}} objects")
    return [_address(v, f"{key}[{i}]") for i, v in enumerate(value)]


def _plain_addresses(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and "@" in v for v in value):
        raise ComposeError(f"{key} must be a list of email address strings")
    return list(value)


def _format(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(
        formataddr(p) if p[0].isascii() and p[1].isascii() else _utf8_addr(*p) for p in pairs
    )


def _utf8_addr(name: str, email: str) -> str:
    local, _, domain = email.rpartition("@")
    return str(HeaderAddress(display_name=name, username=local, domain=domain))


def _attachments(body: dict[str, Any]) -> list[dict[str, Any]]:
    value = body.get("Attachments") or []
    if not isinstance(value, list):
        raise ComposeError("Attachments must be a list of objects")
    out = []
    for i, att in enumerate(value):
        where = f"Attachments[{i}]"
        if not isinstance(att, dict):
            raise ComposeError(f"{where} must be an object")
        content, filename = att.get("Content"), att.get("Filename")
        if not isinstance(content, str):
            raise ComposeError(f"{where}.Content must be base64 text")
        if not isinstance(filename, str) or not filename.strip():
            raise ComposeError(f"{where}.Filename is required")
        _single_line(filename, f"{where}.Filename")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise ComposeError(f"{where}.Content is not valid base64") from None
        ctype = att.get("ContentType") or mimetypes.guess_type(filename)[0]
        ctype = ctype or "application/octet-stream"
        if not isinstance(ctype, str) or ctype.count("/") != 1:
            raise ComposeError(f"{where}.ContentType must look like type/subtype")
        cid = att.get("ContentID") or ""
        if not isinstance(cid, str) or any(c in cid for c in "<> ") or _LINE_BREAK.search(cid):
            raise ComposeError(f"{where}.ContentID must be a single word without <> or spaces")
        out.append({"data": data, "filename": filename, "ctype": ctype.lower(), "cid": cid})
    return out


def compose(
    body: dict[str, Any], dkim_sign: tuple[str, ...] = ()
) -> tuple[Envelope, bytes, list[str]]:
    """(envelope, raw message, tags) for a send-API body; ComposeError when it is not valid.
    With `dkim_sign` (--dkim-sign's values) the message is signed when a rule covers its From
    domain, as a mail server would sign what its users send."""
    if "From" not in body:
        raise ComposeError("From is required")
    sender = _address(body["From"], "From")
    to, cc = _addresses(body, "To"), _addresses(body, "Cc")
    reply_to = _addresses(body, "ReplyTo")
    bcc = _plain_addresses(body, "Bcc")
    if not (to or cc or bcc):
        raise ComposeError("at least one recipient is required in To, Cc or Bcc")
    subject = _text(body, "Subject", one_line=True)
    text, html = _text(body, "Text"), _text(body, "HTML")
    tags = body.get("Tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ComposeError("Tags must be a list of strings")
    headers = body.get("Headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ComposeError("Headers must be an object of header names to string values")
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise ComposeError(f"Headers: {name!r} is not a valid header name")
        if name.lower() in _STRUCTURAL:
            raise ComposeError(f"Headers: {name} is set by the MIME structure and cannot be given")
        _single_line(value, f"Headers: the value of {name}")
    attachments = _attachments(body)

    msg = EmailMessage(policy=policy.SMTPUTF8)
    msg["From"] = _format([sender])
    if to:
        msg["To"] = _format(to)
    if cc:
        msg["Cc"] = _format(cc)
    if reply_to:
        msg["Reply-To"] = _format(reply_to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=sender[1].rpartition("@")[2] or "mailpit-py")
    for name, value in headers.items():
        del msg[name]
        msg[name] = value

    inline = [a for a in attachments if a["cid"]]
    files = [a for a in attachments if not a["cid"]]
    if text or not html:
        msg.set_content(text)
    if html:
        if text:
            msg.add_alternative(html, subtype="html")
            *_, html_part = msg.iter_parts()
        else:
            msg.set_content(html, subtype="html")
            html_part = msg
        for a in inline:
            maintype, subtype = a["ctype"].split("/")
            html_part.add_related(
                a["data"],
                maintype,
                subtype,
                cid=f"<{a['cid']}>",
                filename=a["filename"],
                disposition="inline",
            )
    else:
        files += inline  # inline parts without HTML to refer to them are plain attachments
    for a in files:
        maintype, subtype = a["ctype"].split("/")
        # As bytes (base64), text files too: their bytes come back exactly, with no line
        # ending added and no charset guessed.
        msg.add_attachment(a["data"], maintype, subtype, filename=a["filename"])

    recipients = [e for _, e in to] + [e for _, e in cc] + bcc
    raw = signer_for(dkim_sign).sign(msg.as_bytes()) if dkim_sign else msg.as_bytes()
    return Envelope(sender[1], tuple(recipients)), raw, list(tags)
