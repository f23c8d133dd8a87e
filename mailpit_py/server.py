"""Wires config, store, bus and listeners together: the one way to run mailpit_py."""

from __future__ import annotations

import logging
from types import TracebackType

from mailpit_py import events
from mailpit_py.config import Config
from mailpit_py.mailbox import Mailbox
from mailpit_py.smtp import SmtpServer

log = logging.getLogger("mailpit_py")


class Server:
    """A running instance: `with Server(Config(...)) as mp: ...` (CLI, fixture and tests)."""

    def __init__(self, config: Config | None = None, *, busy_timeout: float = 5.0) -> None:
        self.config = (config or Config()).validate()
        self._busy_timeout = busy_timeout  # how long a write waits on a locked database
        self.bus = events.Bus()
        self.mailbox: Mailbox | None = None
        self.smtp: SmtpServer | None = None

    def start(self) -> Server:
        self.mailbox = Mailbox(self.config, self.bus, busy_timeout=self._busy_timeout)
        try:
            self.smtp = SmtpServer(self.config, self.mailbox, self.bus)
            self.smtp.start()
        except BaseException:
            self.mailbox.close()
            raise
        return self

    def stop(self) -> None:
        """Stop listening, let in-flight messages commit, close (and maybe remove) the store."""
        if self.smtp is not None:
            self.smtp.stop()
            self.smtp = None
        if self.mailbox is not None:
            self.mailbox.close()
            self.mailbox = None

    @property
    def smtp_address(self) -> tuple[str, int]:
        """(host, port) the SMTP listener is bound to (the real port when 0 was asked)."""
        assert self.smtp is not None, "server not started"
        return self.smtp.address

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
