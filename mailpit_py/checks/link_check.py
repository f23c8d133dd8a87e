"""Link check: the HTTP status of each link and image URL of a message (Mailpit's shape), with
quick timeouts, per-host and per-domain limits, and no way into private networks by default."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

from mailpit_py.checks.link_throttle import Throttle

TIMEOUT = 5.0  # seconds per request
WORKERS = 8
PER_HOST = 2  # concurrent requests to one host: a link check must not look like a flood
MAX_REDIRECTS = 5
MAX_LINKS = 100  # distinct URLs checked per message, the first ones in it (Mailpit's limit)
USER_AGENT = "mailpit-py link check"


class Refused(Exception):
    """The URL may not be fetched (an internal address, a bad URL)."""


# IPv6 ranges that carry an IPv4 address a packet may end up at: the address inside is vetted
# too, so that [64:ff9b::7f00:1] or [2002:7f00:1::] cannot stand in for 127.0.0.1.
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # IPv4-compatible, deprecated (RFC 4291 2.5.5.1)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # NAT64 well-known prefix (RFC 6052)
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # NAT64 local use (RFC 8215)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, NAT64, 6to4, Teredo)."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _NAT64 or ip in _COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client), the client's address de-obfuscated
    return found


# Not globally reachable (IANA's special-purpose registries) though Python 3.11's is_global
# says they are: the rest of 192.0.0.0/24 (3.11.10 and 3.12.4 learnt it), the 6to4 relay
# anycast 192.88.99.0/24 (RFC 7526) and IPv6 site-local fec0::/10 (deprecated, still routed
# inside some sites).
_NOT_GLOBAL = (
    ipaddress.IPv4Network("192.0.0.0/24"),
    ipaddress.IPv4Network("192.88.99.0/24"),
    ipaddress.IPv6Network("fec0::/10"),
)
# 192.0.0.9 (Port Control Protocol anycast) and 192.0.0.10 (TURN anycast) are global.
_GLOBAL = frozenset({ipaddress.IPv4Address("192.0.0.9"), ipaddress.IPv4Address("192.0.0.10")})


def _not_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if ip in _GLOBAL:
        return False
    return (
        not ip.is_global
        or ip.is_multicast
        or any(ip.version == net.version and ip in net for net in _NOT_GLOBAL)
    )


def internal_reason(addr: str) -> str:
    """Why a connection to `addr` would reach an internal network ("" when it is public):
    loopback, private, link-local, unspecified, reserved, multicast, or an IPv6 address whose
    IPv4 inside is one of those; IPv4-compatible and NAT64 local-use addresses always."""
    ip = ipaddress.ip_address(addr.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # the packet goes to the IPv4 address: judge that alone
            return f"internal address {addr}" if _not_public(ip.ipv4_mapped) else ""
        if ip in _COMPATIBLE or ip in _NAT64_LOCAL:
            return f"internal address {addr}"
        for inner in _embedded_ipv4(ip):
            if _not_public(inner):
                return f"internal address {addr} (it carries {inner})"
    return f"internal address {addr}" if _not_public(ip) else ""


def _refusal(host: str, reason: str) -> Refused:
    return Refused(
        f"{host} resolves to the {reason}; not fetched (start with "
        "--allow-internal-http-requests to allow it)"
    )


def vetted_address(host: str, port: int, allow_internal: bool) -> str:
    """Resolve `host` and return an address to connect to; every address it resolves to must
    be public unless internal requests are allowed (so a name cannot smuggle in one)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Refused(f"cannot resolve {host}: {exc.strerror}") from None
    addrs = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addrs:
        raise Refused(f"{host} has no address")
    if not allow_internal:
        for addr in addrs:
            reason = internal_reason(addr)
            if reason:
                raise _refusal(host, reason)
    return addrs[0]


def _connect(host: str, addr: str, port: int, timeout: float | None, allow: bool) -> socket.socket:
    """A connection to the vetted address, whose peer is vetted once more: the decision rests
    on the address actually connected to, not on how the URL spelled it."""
    sock = socket.create_connection((addr, port), timeout)
    if not allow:
        reason = internal_reason(str(sock.getpeername()[0]))
        if reason:
            sock.close()
            raise _refusal(host, reason)
    return sock


class _Pinned(http.client.HTTPConnection):
    """Connects to the vetted address while Host (and TLS SNI) keep the name."""

    def __init__(self, host: str, port: int, addr: str, timeout: float, allow: bool) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addr, self._allow = addr, allow

    def connect(self) -> None:
        self.sock = _connect(self.host, self._addr, self.port, self.timeout, self._allow)


def _tls_context(untrusted: bool) -> ssl.SSLContext:
    """Certificates verified, unless --allow-untrusted-tls (Mailpit's flag: a staging site's
    self-signed certificate is then no broken link)."""
    context = ssl.create_default_context()
    if untrusted:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _PinnedTLS(http.client.HTTPSConnection):
    def __init__(
        self, host: str, port: int, addr: str, timeout: float, allow: bool, untrusted: bool
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=_tls_context(untrusted))
        self._addr, self._allow = addr, allow

    def connect(self) -> None:
        sock = _connect(self.host, self._addr, self.port, self.timeout, self._allow)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _request(
    url: str, method: str, allow_internal: bool, untrusted: bool = False
) -> tuple[int, str, str]:
    """(status, reason, Location) of one request, no redirects followed."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"not an http(s) URL: {url}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addr = vetted_address(parts.hostname, port, allow_internal)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = _PinnedTLS(parts.hostname, port, addr, TIMEOUT, allow_internal, untrusted)
    else:
        conn = _Pinned(parts.hostname, port, addr, TIMEOUT, allow_internal)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(method, path, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
        resp = conn.getresponse()
        resp.read(65536 if method == "GET" else 0)
        return resp.status, resp.reason, resp.getheader("Location") or ""
    finally:
        conn.close()


def check_url(
    url: str, follow: bool, allow_internal: bool, untrusted: bool = False
) -> dict[str, Any]:
    """Mailpit's Link: URL, StatusCode (0 when no answer), Status (reason or the error)."""
    current = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            status, reason, location = _request(current, "HEAD", allow_internal, untrusted)
            if status in (405, 501, 403):  # some servers refuse HEAD; ask again with GET
                status, reason, location = _request(current, "GET", allow_internal, untrusted)
            if follow and status in (301, 302, 303, 307, 308) and location:
                current = urllib.parse.urljoin(current, location)
                continue
            return {"URL": url, "StatusCode": status, "Status": reason or http_reason(status)}
        return {"URL": url, "StatusCode": 0, "Status": f"more than {MAX_REDIRECTS} redirects"}
    except Refused as exc:
        return {"URL": url, "StatusCode": 0, "Status": str(exc)}
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return {"URL": url, "StatusCode": 0, "Status": f"{type(exc).__name__}: {exc}"}


def http_reason(status: int) -> str:
    try:
        return http.client.responses[status]
    except KeyError:
        return str(status)


def check(
    urls: list[str],
    follow: bool,
    allow_internal: bool,
    untrusted: bool = False,
    throttle: Throttle | None = None,
) -> dict[str, Any]:
    """Every URL checked concurrently, at most PER_HOST at a time per host; order kept. With a
    throttle (the server's, unless --disable-link-check-rate-limit), Mailpit's limits per
    registered domain across all checks apply too, and a result of the last minute is reused."""
    limits: dict[str, threading.Semaphore] = {}
    lock = threading.Lock()

    def one(url: str) -> dict[str, Any]:
        key = (url, follow, allow_internal, untrusted)
        if throttle is not None:
            kept = throttle.cached(key)
            if kept is not None:
                return dict(kept)
        try:
            host = (urllib.parse.urlsplit(url).hostname or "").lower()
        except ValueError:  # a host such as `[x`: check_url reports the link broken
            host = ""
        with lock:
            sem = limits.setdefault(host, threading.Semaphore(PER_HOST))
        with sem, throttle.slot(url) if throttle is not None else nullcontext():
            result = check_url(url, follow, allow_internal, untrusted)
        if throttle is not None:
            throttle.keep(key, dict(result))
        return result

    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="linkcheck") as pool:
        links = list(pool.map(one, urls))
    errors = sum(1 for link in links if not 200 <= link["StatusCode"] < 400)
    return {"Errors": errors, "Links": links}
