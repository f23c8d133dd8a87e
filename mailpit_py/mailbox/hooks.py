"""The delivery hooks: what other services add to a delivery, handed to Mailbox when it is built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailpit_py.models import Envelope

# (kind, envelope sender, recipients): one copy to queue in the relay outbox with a message.
OutboxItem = tuple[str, str, list[str]]


@dataclass(frozen=True, slots=True)
class DeliveryHooks:
    """The one way to plug into delivery, fixed for the life of a Mailbox (frozen), so the
    wiring is read in one place (server.py) and a service started late misses nothing.

    - `plan_outbox(envelope, origin)`: before the commit (on the delivering or a parse thread),
      the outbox items written in the same transaction as the message. An exception is logged
      and queues nothing: a relay bug must not cost the message its 250.
    - `outbox_ready()`: after a commit that queued outbox items, to wake the relay worker.
    - `after_commit(uid)`: each, in order, with a new message's ID after its commit, on the
      store's writer thread (the message checks queue it). An exception is logged.
    - `relay_inline(uid, envelope, raw)`: called by the SMTP session after the commit and before
      its reply (the relay's forward-smtp-errors): the reply to give instead of 250, or "".

    Every hook but `relay_inline` runs on a path every message takes: it must return at once.
    """

    plan_outbox: Callable[[Envelope, dict[str, Any]], list[OutboxItem]] | None = None
    outbox_ready: Callable[[], None] | None = None
    after_commit: tuple[Callable[[str], None], ...] = ()
    relay_inline: Callable[[str, Envelope, bytes], str] | None = None


NO_HOOKS = DeliveryHooks()

_SINGLE = ("plan_outbox", "outbox_ready", "relay_inline")


def combine(*parts: DeliveryHooks) -> DeliveryHooks:
    """The hooks of several services as one: their after-commit hooks in the order given; a
    single hook (plan_outbox, outbox_ready, relay_inline) may come from one service only."""
    single: dict[str, Any] = {}
    for part in parts:
        for name in _SINGLE:
            hook = getattr(part, name)
            if hook is None:
                continue
            if name in single:
                raise ValueError(f"two services set the delivery hook {name}: only one may")
            single[name] = hook
    after = tuple(hook for part in parts for hook in part.after_commit)
    return DeliveryHooks(after_commit=after, **single)
