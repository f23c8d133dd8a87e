"""Trace and bounce text of the relay: its Received header (RFC 5321 section 4.4) and the delivery
status notification of a copy that failed for good (RFC 3464 in RFC 6522's multipart/report)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.utils import formatdate, parseaddr
from typing import NamedTuple

from mailpit_py.ids import new_id
from mailpit_py.relay.send import one_line, split_message

# An enhanced status code at the start of a reply's text (RFC 3463: class.subject.detail).
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")


class Failure(NamedTuple):
    """One recipient the relay gave up on: the reply code (0: no SMTP reply) and its text."""

    recipient: str
    code: int
    reply: str


def received(
    *, helo: str, rdns: str, ip: str, hostname: str, protocol: str, uid: str, rcpts: Sequence[str]
) -> bytes:
    """The relay's own trace field, put on top of the copy it sends: where the message came from
    (the client's HELO name, its reverse DNS name and address), this host, how it came in and
    the message's ID; `for` names the recipient when there is exactly one (as MTAs do, so one
    copy does not list the others)."""
    source = f"from {one_line(helo) or 'unknown'} ({one_line(rdns) or 'unknown'} [{ip}])"
    if not ip:
        source = f"from {one_line(helo) or 'unknown'}"
    with_ = f" with {protocol}" if re.fullmatch(r"[A-Za-z0-9-]+", protocol or "") else ""
    rcpt = f" for <{rcpts[0]}>" if len(rcpts) == 1 else ""
    return (
        f"Received: {source}\r\n\tby {hostname} (mailpit_py){with_} id {uid}{rcpt};\r\n"
        f"\t{formatdate(localtime=True)}\r\n"
    ).encode("utf-8", "replace")


def status_of(code: int, reply: str) -> str:
    """The RFC 3463 status of a failure: the reply's own enhanced code when it has one of the
    same class, else the class of the reply (4.4.1 for no reply at all: no answer from host)."""
    if code == 0:
        return "4.4.1"
    found = _ENHANCED.match(reply.strip())
    if found and found.group(1)[0] == str(code)[0]:
        return found.group(1)
    return f"{str(code)[0]}.0.0"


def build(
    *,
    hostname: str,
    original: bytes,
    original_uid: str,
    sender: str,
    failures: Sequence[Failure],
    remote: str,
    arrival: float,
) -> bytes:
    """The notification a sender's MTA would get: a human-readable part, the machine-readable
    message/delivery-status (one block per failed recipient) and the original's header section
    as text/rfc822-headers (RFC 6522: the headers only, never the body)."""
    fields, _ = split_message(original)
    message_id = ""
    subject = ""
    for line in fields:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        text = re.sub(r"\r\n[ \t]", " ", value.decode("utf-8", "replace")).strip()
        if lowered == b"message-id" and not message_id:
            found = parseaddr(text)[1].strip("<>")
            message_id = f"<{found}>" if found else ""
        elif lowered == b"subject" and not subject:
            subject = text
    boundary = f"dsn-{new_id()}"
    mailer = f"MAILER-DAEMON@{hostname}"
    head = [
        f"From: Mail Delivery System <{mailer}>",
        f"To: <{sender}>",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {formatdate(localtime=True)}",
        f"Message-ID: <{new_id()}@{hostname}>",
        # RFC 3834: an automatic message, so auto-responders do not answer it.
        "Auto-Submitted: auto-replied",
        f"X-Mailpit-Original-ID: {original_uid}",
    ]
    if message_id:
        head += [f"In-Reply-To: {message_id}", f"References: {message_id}"]
    head += [
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    lines = [
        f"This is the mail system at host {hostname} (mailpit_py).",
        "",
        "Your message could not be delivered to one or more recipients.",
        f"Subject: {one_line(subject)}" if subject else "",
        "",
    ]
    for f in failures:
        reply = f"{f.code} {f.reply}" if f.code else f.reply
        lines.append(f"<{f.recipient}>: {one_line(reply)}")
    status = [f"Reporting-MTA: dns; {hostname}", f"Arrival-Date: {formatdate(arrival, True)}"]
    for f in failures:
        # RFC 6533 section 3: an address that is not ASCII is of type utf-8, not rfc822.
        kind = "rfc822" if f.recipient.isascii() else "utf-8"
        status += [
            "",
            f"Final-Recipient: {kind}; {f.recipient}",
            "Action: failed",
            f"Status: {status_of(f.code, f.reply)}",
        ]
        if remote:
            status.append(f"Remote-MTA: dns; {remote}")
        if f.code:
            status.append(f"Diagnostic-Code: smtp; {f.code} {one_line(f.reply)}")
        else:  # no SMTP reply: the connection error, under a private diagnostic type
            status.append(f"Diagnostic-Code: X-mailpit-py; {one_line(f.reply)}")
        status.append(f"Last-Attempt-Date: {formatdate(localtime=True)}")
    headers = b"\r\n".join(fields) + b"\r\n"
    # RFC 6533 section 6: UTF-8 in the report or in the returned header section (an
    # SMTPUTF8 message's) makes them message/global-delivery-status and message/global-headers;
    # the 7-bit types must stay ASCII.
    report = "\r\n".join(status)
    report_type = "delivery-status" if report.isascii() else "global-delivery-status"
    headers_type = "text/rfc822-headers" if headers.isascii() else "message/global-headers"
    parts = [
        "\r\n".join(head),
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Description: Notification",
        "",
        "\r\n".join(lines),
        f"--{boundary}",
        f"Content-Type: message/{report_type}",
        "Content-Description: Delivery report",
        "",
        report,
        "",
        f"--{boundary}",
        f"Content-Type: {headers_type}",
        "Content-Description: Undelivered Message Headers",
        "",
    ]
    return (
        "\r\n".join(parts).encode("utf-8", "replace")
        + b"\r\n"
        + headers
        + f"\r\n--{boundary}--\r\n".encode()
    )
