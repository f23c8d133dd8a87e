"""An asyncio TCP listener on its own thread for line protocols (POP3, IMAP): implicit TLS,
in-session TLS upgrades, idle timeouts, and a worker pool for blocking mailbox calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from mailpit_py.config.values import split_hostport
from mailpit_py.net.listen import bind
from mailpit_py.net.loopthread import LoopThread
from mailpit_py.observability.telemetry import Telemetry

if TYPE_CHECKING:
    from mailpit_py.mailaccess.access import Access
    from mailpit_py.mailbox.facade import Mailbox

log = logging.getLogger("mailpit_py.lineserver")
T = TypeVar("T")

MAX_LINE = 64 * 1024  # a command line longer than this is refused, not buffered without end
HANG_UP_DRAIN = 1024 * 1024  # what hang_up reads and drops at most, and for how long:
HANG_UP_WAIT = 2.0


class LineTooLong(Exception):
    """The client sent a line longer than MAX_LINE."""


class Connection:
    """One client: line reads with a timeout, writes, and a TLS upgrade (STLS/STARTTLS)."""

    def __init__(
        self,
        listener: LineServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.listener = listener
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "")
        self.tls = writer.get_extra_info("ssl_object") is not None
        # Answers go out as written, not held for the client's ACK of the previous write
        # (Nagle): an untagged response then its tagged OK waited for the client's delayed ACK,
        # 40 ms a command. asyncio sets this only on a socket made with IPPROTO_TCP, and the
        # listening socket (socket.create_server) has protocol 0.
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def readline(self, timeout: float | None) -> bytes:
        """The next line with its ending; b"" at end of stream; TimeoutError when idle."""
        try:
            return await asyncio.wait_for(self.reader.readuntil(b"\n"), timeout)
        except asyncio.IncompleteReadError as exc:
            return exc.partial
        except asyncio.LimitOverrunError as exc:
            # Drop what was buffered of the long line so the session can go on (or end).
            await self.reader.readexactly(exc.consumed)
            raise LineTooLong from None
        except (ConnectionError, ssl.SSLError):
            return b""

    async def readexactly(self, n: int, timeout: float | None) -> bytes:
        try:
            return await asyncio.wait_for(self.reader.readexactly(n), timeout)
        except asyncio.IncompleteReadError:
            return b""
        except (ConnectionError, ssl.SSLError):
            return b""

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def start_tls(self) -> None:
        """Switch to TLS now (after the client asked and was told to go ahead).

        What the client sent after STARTTLS (STLS) and before the handshake came in plain
        text, where anyone on the way may have added it: read after the handshake, it would
        run as if it came over TLS (the command injection of CVE-2011-0411). A client must wait
        for the go-ahead (RFC 3501 section 6.2.1, RFC 2595 section 4), so it is dropped."""
        context = self.listener.tls
        assert context is not None
        pending: bytearray | None = getattr(self.reader, "_buffer", None)
        if pending:
            log.warning("%s: %d octets sent before TLS began were dropped", self.peer, len(pending))
            pending.clear()
        await self.writer.start_tls(context)
        self.tls = True

    async def hang_up(self) -> None:
        """End a session the server gives up on (its last words written) while the client may
        still be sending, as after a line too long: closed on unread input, the socket would
        answer with a reset, which can make the client lose those last words and see an
        error instead of them. So this side's end is sent, and what still comes is read and
        dropped (1 MB and 2 s at most) before the connection is closed."""
        try:
            if self.writer.can_write_eof():
                self.writer.write_eof()
            deadline = asyncio.get_running_loop().time() + HANG_UP_WAIT
            left = HANG_UP_DRAIN
            while left > 0:
                wait = deadline - asyncio.get_running_loop().time()
                chunk = await asyncio.wait_for(self.reader.read(min(left, 65536)), max(wait, 0))
                if not chunk:
                    break
                left -= len(chunk)
        except (OSError, ssl.SSLError, TimeoutError, asyncio.LimitOverrunError):
            pass

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking mailbox call off the event loop (SQLite reads, waits for commits)."""
        return await asyncio.get_running_loop().run_in_executor(self.listener.workers, fn, *args)

    async def close(self) -> None:
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except (OSError, ssl.SSLError, TimeoutError, asyncio.CancelledError):
            pass


Handler = Callable[[Connection], Awaitable[None]]


class LineServer:
    """Listens on `addr` in a thread with its own event loop; each client runs `handler`."""

    def __init__(
        self,
        name: str,
        addr: str,
        flag: str,
        handler: Handler,
        *,
        tls: ssl.SSLContext | None = None,
        implicit: bool = False,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.name = name
        self.addr = addr
        self.flag = flag
        self.handler = handler
        self.tls = tls
        self.implicit = implicit and tls is not None
        self.telemetry = telemetry  # <name>_connections: clients connected now
        self.loop = asyncio.new_event_loop()
        self.workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"{name}-io")
        self._runner = LoopThread(name, name.upper(), self.loop)
        self._tasks: set[asyncio.Task[None]] = set()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Connection(self, reader, writer)
        if self.telemetry is not None:
            self.telemetry.add_gauge(f"{self.name}_connections", 1)
        try:
            await self.handler(conn)
        except asyncio.CancelledError:
            pass
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            log.debug("%s client %s: %s", self.name, conn.peer, exc)
        except Exception:
            log.exception("%s session with %s failed", self.name, conn.peer)
        finally:
            await conn.close()
            self._tasks.discard(task)
            if self.telemetry is not None:
                self.telemetry.add_gauge(f"{self.name}_connections", -1)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the listener is bound to: the real port when 0 was asked."""
        return self._runner.address

    def start(self) -> None:
        host, port = split_hostport(self.addr, self.flag)
        self._runner.start(
            lambda: asyncio.start_server(
                self._client,
                # bind() makes `[::]` (POP3's default) dual-stack as in Mailpit; asyncio's own
                # binding of `::` would leave 127.0.0.1 unanswered.
                sock=bind(host, port),
                ssl=self.tls if self.implicit else None,
                limit=MAX_LINE,
            ),
            self.addr,
            self.flag,
        )
        log.debug("%s listening on %s:%d", self.name, *self.address)

    def stop(self) -> None:
        """Stop accepting, end every session, then the loop and the worker pool."""

        async def end_sessions() -> None:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=5)

        self._runner.stop(end_sessions, wait=15)
        self.workers.shutdown(wait=True)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn` on this listener's loop (from any thread); ignored once it stopped."""
        try:
            self.loop.call_soon_threadsafe(fn)
        except RuntimeError:
            pass


class MailReader:
    """What the POP3 and IMAP servers share: a LineServer on their `access` settings whose
    sessions run `_session`, with the mailbox's telemetry."""

    protocol: ClassVar[str]  # "pop3" or "imap": its flag, thread and gauge names

    def __init__(self, access: Access, mailbox: Mailbox, label: str = "") -> None:
        self.access = access
        self.mailbox = mailbox
        self.label = label
        self.listener = LineServer(
            self.protocol,
            access.addr,
            f"--{self.protocol}",
            self._session,
            tls=access.tls,
            implicit=access.implicit,
            telemetry=mailbox.telemetry,
        )

    @property
    def address(self) -> tuple[str, int]:
        return self.listener.address

    def start(self) -> None:
        self.listener.start()

    def stop(self) -> None:
        self.listener.stop()

    async def _session(self, conn: Connection) -> None:
        raise NotImplementedError
