"""Link check: the HTTP status of each link and image URL of a message (Mailpit's shape), with
quick timeouts, a per-host concurrency limit, and no way into private networks by default."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any

TIMEOUT = 5.0  # seconds per request
WORKERS = 8
PER_HOST = 2  # concurrent requests to one host: a link check must not look like a flood
MAX_REDIRECTS = 5
USER_AGENT = "mailpit-py link check"


class Refused(Exception):
    """The URL may not be fetched (an internal address, a bad URL)."""


def _internal(addr: str) -> bool:
    ip = ipaddress.ip_address(addr.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


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
        bad = [a for a in addrs if _internal(a)]
        if bad:
            raise Refused(
                f"{host} resolves to the internal address {bad[0]}; not fetched (start with "
                "--allow-internal-http-requests to allow it)"
            )
    return addrs[0]


class _Pinned(http.client.HTTPConnection):
    """Connects to the vetted address while Host (and TLS SNI) keep the name."""

    def __init__(self, host: str, port: int, addr: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addr = addr

    def connect(self) -> None:
        self.sock = socket.create_connection((self._addr, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, addr: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._addr = addr

    def connect(self) -> None:
        sock = socket.create_connection((self._addr, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _request(url: str, method: str, allow_internal: bool) -> tuple[int, str, str]:
    """(status, reason, Location) of one request, no redirects followed."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"not an http(s) URL: {url}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addr = vetted_address(parts.hostname, port, allow_internal)
    cls = _PinnedTLS if parts.scheme == "https" else _Pinned
    conn = cls(parts.hostname, port, addr, TIMEOUT)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(method, path, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
        resp = conn.getresponse()
        resp.read(65536 if method == "GET" else 0)
        return resp.status, resp.reason, resp.getheader("Location") or ""
    finally:
        conn.close()


def check_url(url: str, follow: bool, allow_internal: bool) -> dict[str, Any]:
    """Mailpit's Link: URL, StatusCode (0 when no answer), Status (reason or the error)."""
    current = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            status, reason, location = _request(current, "HEAD", allow_internal)
            if status in (405, 501, 403):  # some servers refuse HEAD; ask again with GET
                status, reason, location = _request(current, "GET", allow_internal)
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


def check(urls: list[str], follow: bool, allow_internal: bool) -> dict[str, Any]:
    """Every URL checked concurrently, at most PER_HOST at a time per host; order kept."""
    limits: dict[str, threading.Semaphore] = {}
    lock = threading.Lock()

    def one(url: str) -> dict[str, Any]:
        host = (urllib.parse.urlsplit(url).hostname or "").lower()
        with lock:
            sem = limits.setdefault(host, threading.Semaphore(PER_HOST))
        with sem:
            return check_url(url, follow, allow_internal)

    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="linkcheck") as pool:
        links = list(pool.map(one, urls))
    errors = sum(1 for link in links if not 200 <= link["StatusCode"] < 400)
    return {"Errors": errors, "Links": links}
