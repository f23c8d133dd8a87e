"""SpamAssassin: score a message with a running spamd over the spamc protocol (REPORT), in
Mailpit's sa-check shape: IsSpam, Score, Rules (Name, Score, Description), Error."""

from __future__ import annotations

import re
import socket
from typing import Any

from mailpit_py.config.values import split_hostport

MAX_SIZE = 10 * 1024 * 1024  # spamc's default limit is 500 KB; spamd copes with more


def result(
    is_spam: bool = False,
    score: float = 0.0,
    rules: list[dict[str, Any]] | None = None,
    error: str = "",
) -> dict[str, Any]:
    return {"IsSpam": is_spam, "Score": score, "Rules": rules or [], "Error": error}


def _read_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def parse_report(text: str) -> list[dict[str, Any]]:
    """The rule table of a REPORT answer: ` pts rule name  description` lines after `----`."""
    rules: list[dict[str, Any]] = []
    in_table = False
    for line in text.splitlines():
        if line.startswith("----"):
            in_table = True
            continue
        if not in_table:
            continue
        m = re.match(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$", line)
        if m:
            rules.append(
                {"Name": m.group(2), "Score": float(m.group(1)), "Description": m.group(3).strip()}
            )
        elif rules and line.startswith(" " * 10) and line.strip():
            rules[-1]["Description"] += " " + line.strip()  # a wrapped description
        elif not line.strip():
            continue
    return rules


def check(address: str, raw: bytes, timeout: float = 30.0) -> dict[str, Any]:
    """Ask spamd at HOST:PORT; an unreachable or misbehaving spamd is reported in Error."""
    host, port = split_hostport(address, "--enable-spamassassin")
    body = raw[:MAX_SIZE]
    request = (
        f"REPORT SPAMC/1.5\r\nContent-length: {len(body)}\r\nUser: mailpit\r\n\r\n".encode() + body
    )
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            answer = _read_all(sock)
    except OSError as exc:
        return result(error=f"spamd at {address} is unreachable: {exc}")
    head, _, content = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = re.match(r"SPAMD/[\d.]+\s+(\d+)\s+(.*)", lines[0] if lines else "")
    if not status:
        return result(error=f"spamd at {address} answered something else: {lines[0]!r}")
    if status.group(1) != "0":
        return result(error=f"spamd at {address} answered {status.group(1)} {status.group(2)}")
    spam = next((line for line in lines if line.lower().startswith("spam:")), "")
    m = re.match(r"spam:\s*(\w+)\s*;\s*(-?[\d.]+)\s*/\s*(-?[\d.]+)", spam, re.I)
    if not m:
        return result(error=f"spamd at {address} gave no Spam: header")
    return result(
        is_spam=m.group(1).lower() in ("true", "yes"),
        score=float(m.group(2)),
        rules=parse_report(content.decode("utf-8", "replace")),
    )
