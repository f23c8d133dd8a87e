"""A thread running an asyncio event loop that serves one listener: bind, serve, stop cleanly."""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future

from mailpit_py.net.listen import remove_socket_file, socket_file

log = logging.getLogger("mailpit_py.loopthread")

STOP_WAIT = 10.0  # seconds stop() waits for the loop's thread to end


class AddressInUse(OSError):
    """The listen address cannot be bound; the message says what to do."""

    @classmethod
    def explain(cls, exc: OSError, addr: str, flag: str) -> AddressInUse:
        if exc.errno == errno.EADDRINUSE:
            # A Unix socket's own text names its file ("socket already in use: PATH").
            what = exc.strerror if addr.startswith("unix:") and exc.strerror else addr
            if what == addr:
                what = f"{addr} is already in use"
            return cls(f"{what}: is another mail catcher running? Choose another with {flag}")
        return cls(f"cannot listen on {addr}: {exc.strerror or exc}")


class LoopThread:
    """Runs `loop` on a daemon thread named `name` while it serves what start() binds.

    `label` names the listener in log lines ("SMTP", "POP3").
    """

    def __init__(self, name: str, label: str, loop: asyncio.AbstractEventLoop) -> None:
        self.name = name
        self.label = label
        self.loop = loop
        self.server: asyncio.Server | None = None
        self.address: tuple[str, int] = ("", 0)
        self._thread: threading.Thread | None = None
        self._socket_file: tuple[str, int, int] | None = None  # a Unix socket's, removed at stop

    def start(self, listen: Callable[[], Awaitable[asyncio.Server]], addr: str, flag: str) -> None:
        """Bind with `listen` in the loop's thread, then serve until stop().

        AddressInUse (naming `addr` and `flag`) when it cannot bind.
        """
        started: Future[None] = Future()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.server = self.loop.run_until_complete(listen())
            except Exception as exc:
                started.set_exception(exc)
                return
            # Port 0 asks the OS for a free port; read back what it chose (DESIGN.md trap).
            listening = self.server.sockets[0]
            sockname = listening.getsockname()
            if isinstance(sockname, str):  # a Unix socket: its path, and no port
                self.address = (sockname, 0)
                self._socket_file = socket_file(listening)
            else:
                self.address = (sockname[0], sockname[1])
            started.set_result(None)
            self.loop.run_forever()

        thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread = thread
        thread.start()
        try:
            started.result(timeout=30)
        except OSError as exc:
            thread.join(timeout=5)
            if not thread.is_alive():  # it never ran the loop: nothing left for stop() to do
                self._thread = None
                self.loop.close()
            raise AddressInUse.explain(exc, addr, flag) from exc

    def stop(self, close_connections: Callable[[], Awaitable[None]], wait: float) -> None:
        """Stop accepting, run `close_connections` on the loop (waiting up to `wait` seconds),
        then stop the loop, join its thread and close the loop."""
        if self._thread is None:
            return
        server = self.server

        async def shutdown() -> None:
            if server is not None:
                server.close()
            await close_connections()

        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(wait)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=STOP_WAIT)
        self._thread = None
        remove_socket_file(self._socket_file)  # as Mailpit removes its socket files at exit
        self._socket_file = None
        if self.loop.is_running():
            # The loop thread did not stop in time (a very loaded machine): leave the loop to it
            # rather than close a running loop.
            log.warning("the %s event loop did not stop within %d s", self.label, STOP_WAIT)
            return
        # Let closed transports run their callbacks (SMTP records sessions there); not possible
        # from a thread that runs an event loop of its own (Playwright's sync API does), where
        # the shutdown coroutine's last steps have already given them their turn.
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # none here: run the loop once more
            self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()
