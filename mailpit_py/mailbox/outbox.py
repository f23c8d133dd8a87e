"""The relay's outbox as the mailbox keeps it: copies of stored messages to send, attempts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from mailpit_py.mailbox.base import MailboxBase, MessageNotFound
from mailpit_py.mailbox.shapes import relay_history_to_api


class RelayOutbox(MailboxBase):
    """Mailbox's relay outbox (mailbox/facade.py): the relay worker reads and records here."""

    def queue_relay(
        self,
        msg_id: str,
        kind: str,
        mail_from: str,
        rcpts: Sequence[str],
        raw: bytes,
        box: str | None = None,
    ) -> int:
        """Queue what to send for a stored message (the relay worker sends it); its outbox id."""
        uid = self.resolve(msg_id, box)
        now = time.time()
        item = self.store.write(lambda s: s.outbox_add(uid, kind, mail_from, rcpts, raw, now))
        if self.hooks.outbox_ready is not None:
            self.hooks.outbox_ready()
        return item

    def outbox_due(self, now: float) -> Sequence[Any]:
        return self.store.outbox_due(now)

    def outbox_next_time(self) -> float | None:
        return self.store.outbox_next_time()

    def outbox_item(self, item_id: int) -> Any:
        return self.store.outbox_item(item_id)

    def record_relay_attempt(
        self,
        item_id: int,
        attempt: dict[str, Any],
        *,
        state: str,
        recipients: Sequence[str],
        next_attempt: float,
    ) -> None:
        self.store.write(
            lambda s: s.outbox_record(
                item_id, attempt, state=state, recipients=recipients, next_attempt=next_attempt
            )
        )
        self.telemetry.inc("relay_attempts", attempt["outcome"])

    def relay_history(self, msg_id: str, box: str | None = None) -> dict[str, Any]:
        """The message's relay queue entries and attempts, as the API shows them."""
        uid = self.resolve(msg_id, box)
        if self.store.summary(uid) is None:
            raise MessageNotFound(msg_id)
        items, attempts = self.store.relay_history(uid)
        return relay_history_to_api(uid, items, attempts)
