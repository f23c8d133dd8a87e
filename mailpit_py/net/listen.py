"""Bound listening sockets: `[::]` listens on every interface, IPv4 included, as Mailpit does."""

from __future__ import annotations

import errno
import logging
import socket

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
