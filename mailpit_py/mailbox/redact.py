"""An SMTP log as one mailbox shows it: without the recipients, routes and IDs of another's copy."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

# The lines smtp/routing.py writes at DATA: "mailbox NAME for RCPT (route RULE)", and
# "mailbox default for RCPT (no route: unrouted default)".
ROUTED = re.compile(r"mailbox (\S+) for (.*?) \((?:route |no route)")
RCPT = re.compile(r"rcpt\s+to:\s*<([^>]*)>", re.IGNORECASE)
QUEUED = re.compile(r"(.* queued as )(\S+)(.*)", re.DOTALL)


def for_box(
    lines: Sequence[Sequence[Any]],
    box: str,
    is_own: Callable[[str], bool],
    own_uid: str | None = None,
) -> list[list[Any]]:
    """The log `lines` ([time, direction, line]) as mailbox `box` shows it.

    A message routed to several mailboxes is stored once in each, its envelope naming only
    the recipients routed there, but the session's log is one: it names every recipient (a
    blind copy to another project's address too), the route that sent each to its mailbox, and
    the ID of the first copy. Shown in one mailbox, the other mailboxes' recipients (their
    RCPT and its reply) and routes are left out, and an ID `is_own` denies is replaced by
    `own_uid` (the copy being read) or left out. A log that routed nothing elsewhere (every log
    without mailbox settings) is returned as it is."""
    mine: set[str] = set()
    others: set[str] = set()
    for _, direction, line in lines:
        if direction == "I" and (m := ROUTED.match(str(line))):
            (mine if m[1] == box else others).add(m[2].casefold())
    if not others:
        return [list(entry) for entry in lines]
    hidden = others - mine
    out: list[list[Any]] = []
    skip_reply = False
    for when, direction, line in lines:
        text = str(line)
        if skip_reply and direction == "S" and text.startswith("250"):
            skip_reply = False
            continue  # the reply to a hidden RCPT
        skip_reply = False
        if direction == "I" and (m := ROUTED.match(text)) and m[1] != box:
            continue
        if direction == "C" and (m := RCPT.match(text)) and m[1].casefold() in hidden:
            skip_reply = True
            continue
        if direction == "S" and (m := QUEUED.match(text)) and not is_own(m[2]):
            text = m[1] + own_uid + m[3] if own_uid else m[1].rstrip().removesuffix(" as")
        out.append([when, direction, text])
    return out
