"""Bound listening sockets: `[::]` listens on every interface, IPv4 included, as Mailpit does;
`unix:PATH:MODE` is a Unix socket, as Mailpit spells one."""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import stat
from dataclasses import dataclass

from mailpit_py.config.errors import ConfigError
from mailpit_py.config.values import split_hostport

log = logging.getLogger("mailpit_py")

# The hosts that mean every interface; Go (and so Mailpit) binds both families for each.
ALL_INTERFACES = ("::", "")

# Errors of a machine without IPv6: the listener then takes every IPv4 interface instead.
_NO_IPV6 = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)


def bind(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening socket on (host, port); `::` is dual-stack, or 0.0.0.0 without IPv6.

    Python sets IPV6_V6ONLY on `::` (socket.create_server and asyncio alike), which would
    leave 127.0.0.1 and every other IPv4 address unanswered where Mailpit answers them.
    """
    if host in ALL_INTERFACES:
        if socket.has_ipv6 and socket.has_dualstack_ipv6():
            try:
                return socket.create_server(
                    ("::", port), family=socket.AF_INET6, backlog=backlog, dualstack_ipv6=True
                )
            except OSError as exc:
                if exc.errno not in _NO_IPV6:
                    raise
        log.debug("IPv6 is unavailable: listening on 0.0.0.0:%d instead of [::]:%d", port, port)
        return socket.create_server(("0.0.0.0", port), backlog=backlog)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=backlog)


# Mailpit's form: unix:<path>:<mode>, the mode three or four octal digits (0666, 660).
_UNIX = re.compile(r"unix:(.*):(\d{3,4})")
UNIX_HELP = "a Unix socket is unix:PATH:MODE, e.g. unix:/run/mailpit.sock:0660"


@dataclass(frozen=True)
class UnixAddress:
    """A Unix-socket listen address: where its file goes and the permissions it gets."""

    path: str
    mode: int


def unix_address(addr: str, flag: str = "address") -> UnixAddress | None:
    """The Unix socket `addr` names (`unix:/path/to/socket:0666`), None for HOST:PORT; a
    malformed `unix:` address is a ConfigError saying how to write one."""
    if not addr.startswith("unix:"):
        return None
    m = _UNIX.fullmatch(addr)
    if m is None or not m.group(1) or re.search(r"[89]", m.group(2)):
        raise ConfigError(f"{flag}: {addr!r} is not usable: {UNIX_HELP}")
    return UnixAddress(os.path.normpath(m.group(1)), int(m.group(2), 8))


def check_address(addr: str, flag: str) -> None:
    """ConfigError unless `addr` is HOST:PORT or unix:PATH:MODE."""
    if unix_address(addr, flag) is None:
        split_hostport(addr, flag)


def listen_on(addr: str, flag: str, backlog: int = 128) -> socket.socket:
    """A listening socket for HOST:PORT (see bind) or unix:PATH:MODE (see bind_unix)."""
    unix = unix_address(addr, flag)
    if unix is not None:
        return bind_unix(unix, backlog)
    host, port = split_hostport(addr, flag)
    return bind(host, port, backlog)


def bind_unix(addr: UnixAddress, backlog: int = 128) -> socket.socket:
    """A listening Unix socket at addr.path with addr.mode, as Mailpit makes one: a stale socket
    file (nobody listening) is replaced, a live one is an error. Unlike Mailpit, a file that is
    not a socket is an error too, never removed: a mistyped path must not delete data."""
    _clear_stale(addr.path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(addr.path)
        os.chmod(addr.path, addr.mode)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _clear_stale(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket: move it or choose another")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing the stale socket file %s (nothing listens on it)", path)
        os.unlink(path)
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"socket already in use: {path}")


def socket_file(sock: socket.socket) -> tuple[str, int, int] | None:
    """(path, device, inode) of a bound Unix socket's file, to remove at stop only the file this
    socket made (another process may have replaced it since); None for other sockets."""
    if sock.family != socket.AF_UNIX:
        return None
    path = sock.getsockname()
    if not isinstance(path, str) or not path:
        return None
    info = os.stat(path)
    return path, info.st_dev, info.st_ino


def remove_socket_file(made: tuple[str, int, int] | None) -> None:
    """Remove the socket file socket_file() recorded, if it is still that file."""
    if made is None:
        return
    path, dev, ino = made
    try:
        info = os.lstat(path)
        if (info.st_dev, info.st_ino) == (dev, ino):
            os.unlink(path)
    except OSError:
        pass
