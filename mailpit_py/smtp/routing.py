"""The SMTP session's side of mailbox routing: an unrouted recipient refused at RCPT, and at DATA
the mailboxes each recipient goes to (mailbox/routing.py decides; this reads the routing header
and asks which mailboxes exist, off the event loop), written in the session log."""

from __future__ import annotations

import asyncio
import email.errors
import email.header
import email.policy
import logging
from collections.abc import Collection
from dataclasses import dataclass
from email.parser import BytesHeaderParser

from aiosmtpd.smtp import Session

from mailpit_py.mailbox.boxes import clean_box_name
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.mailbox.routing import UNROUTED_REPLY, Router
from mailpit_py.smtp.policy import Refusal
from mailpit_py.smtp.trace import username
from mailpit_py.smtp.transcript import Transcript

log = logging.getLogger("mailpit_py.smtp")

# How much of a message is read for its routing header: a header block longer than this is
# hostile or broken, and a routing header past it is not looked for.
HEADER_LIMIT = 64 * 1024
RULE = "mailbox-unrouted"


@dataclass(frozen=True)
class Routed:
    """A message's routing: mailbox -> its recipients (None: all to the default mailbox, as
    with no mailbox settings), or the refusal of a recipient no route matched."""

    boxes: dict[str, list[str]] | None = None
    refusal: Refusal | None = None


def refusal_of(rcpt: str) -> Refusal:
    """The refusal of a recipient no route matched (--mailbox-unrouted refuse)."""
    detail = f"no route to a mailbox for {rcpt} (--mailbox-unrouted refuse)"
    return Refusal(UNROUTED_REPLY.format(rcpt=rcpt), RULE, detail)


def header_values(raw: bytes, name: str) -> list[str]:
    """The values of header `name` in the message's header block (its first HEADER_LIMIT
    bytes), unfolded, RFC 2047 words decoded, stripped."""
    head = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw[:HEADER_LIMIT])
    out = []
    for value in head.get_all(name) or ():
        try:
            text = str(email.header.make_header(email.header.decode_header(str(value))))
        except (ValueError, LookupError, email.errors.HeaderParseError):
            text = str(value)  # an encoded word that does not decode: kept as written
        out.append(" ".join(text.split()))
    return out


class SessionRouting:
    """One listener's routing (SmtpServer.routing); every method runs on its event loop."""

    def __init__(self, router: Router, mailbox: Mailbox, listener: str) -> None:
        self.router = router
        self.mailbox = mailbox
        self.listener = listener

    def rcpt_refusal(self, rcpt: str, session: Session) -> Refusal | None:
        """The refusal of a recipient already known unrouted at RCPT, with unrouted refuse
        (without mailbox settings it costs one attribute test per recipient)."""
        if self.router.active and self.router.refused_at_rcpt(
            rcpt, username=username(session), listener=self.listener
        ):
            return refusal_of(rcpt)
        return None

    async def at_data(
        self, rcpts: Collection[str], raw: bytes, username: str, transcript: Transcript
    ) -> Routed:
        """Where the message goes, each recipient's mailbox and route in the session log."""
        router = self.router
        if not router.active:
            return Routed()
        values = header_values(raw, router.header) if router.header else []
        existing = await self._existing(values)
        found = router.matches(username, self.listener, rcpts, values, existing)
        boxes, refused = router.group(found)
        for rcpt, match in found:
            if match is not None:
                transcript.add("I", f"mailbox {match.box} for {rcpt} (route {match.rule})")
            elif not refused:
                transcript.add("I", f"mailbox default for {rcpt} (no route: unrouted default)")
        if refused:
            return Routed(refusal=refusal_of(refused[0]))
        return Routed(boxes)

    async def _existing(self, values: list[str]) -> set[str]:
        """The mailboxes that exist among those the header names beyond the settings' own:
        read from the store, off the event loop, only when the header names such a one."""
        names = set()
        for value in values:
            try:
                names.add(clean_box_name(value))
            except ValueError:
                continue
        if not names - self.router.names:
            return set()
        loop = asyncio.get_running_loop()
        try:
            boxes = await loop.run_in_executor(None, self.mailbox.boxes)
        except Exception as exc:  # the store failing: the delivery's own 451 will say so
            log.warning("could not list the mailboxes for header routing: %s", exc)
            return set()
        return {info.name for info in boxes}
