"""Which Host names and Origins the web server answers (DNS rebinding, CORS): plain rules, no web.

A web page in the user's browser can reach a server on 127.0.0.1 two ways the same-origin
policy does not stop by itself: a DNS name the attacker controls that resolves to 127.0.0.1
(DNS rebinding: the browser then sends that name as Host), and requests that need no answer to
be read (a no-cors POST, a websocket). The Host rule refuses names a rebinding attack could use;
the Origin rule refuses requests from pages of other origins unless `--api-cors` names them.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from urllib.parse import urlsplit

from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import Config

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# Names no public DNS answers, so no attacker can point them at this machine: `localhost` and
# its subdomains (RFC 6761), and `.internal` (reserved for private use; Docker's
# host.docker.internal is the usual way a container reaches a server on its host).
SAFE_SUFFIXES = (".localhost", ".internal")
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")


def split_host(value: str) -> tuple[str, int | None]:
    """`Example.COM.:8025` -> ("example.com", 8025); `[::1]` -> ("::1", None)."""
    value = value.strip().lower()
    port: int | None = None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        host, rest = value[1:end], value[end + 1 :]
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
        return host, port
    if value.count(":") == 1:
        host, _, tail = value.partition(":")
        if tail.isdigit():
            port, value = int(tail), host
    return value.rstrip("."), port


def parse_allowed_hosts(value: str) -> tuple[str, ...]:
    """`--allowed-hosts`: `mail.example.com, *.dev.example.com` -> lower-case names (or `*`)."""
    names = []
    for item in re.split(r"[,\s]+", value.strip().lower()):
        if not item:
            continue
        if item == "*":
            return ("*",)
        bare = item[2:] if item.startswith("*.") else item
        host, port = split_host(bare)
        if port is not None or not (_HOSTNAME.fullmatch(host) or _is_ip(host)):
            raise ConfigError(
                f"--allowed-hosts: {item!r} is not a host name: give names as the browser's "
                "address bar shows them, without scheme or port, e.g. mail.example.com, "
                "*.example.com for its subdomains, or * for any"
            )
        names.append(item[:2] + host if item.startswith("*.") else host)
    return tuple(names)


def parse_cors(value: str) -> frozenset[str]:
    """`--api-cors` as Mailpit reads it: origins separated by commas or spaces, the scheme
    optional, matched on host and port (`example.com` does not admit `example.com:8080`);
    `*` admits every origin."""
    origins: set[str] = set()
    for item in re.split(r"[,\s]+", value.strip()):
        if not item:
            continue
        if item == "*":
            return frozenset({"*"})
        text = item if re.match(r"https?://", item, re.I) else "http://" + item
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if (
            parts is None
            or not parts.hostname
            or "*" in item
            or parts.path not in ("", "/")
            or parts.query
            or parts.username
        ):
            raise ConfigError(
                f"--api-cors: {item!r} is not an origin: use e.g. example.com, "
                "http://localhost:3000 or https://app.example.com, or * for any origin"
            )
        origins.add(_origin_key(parts.scheme, parts.hostname, port))
    return frozenset(origins)


def _origin_key(scheme: str, host: str, port: int | None) -> str:
    host = host.lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    if port is None or DEFAULT_PORTS.get(scheme.lower()) == port:
        return host
    return f"{host}:{port}"


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return True


class HostPolicy:
    """Decides whether a request's Host header names this server (against DNS rebinding)."""

    def __init__(self, config: Config) -> None:
        from mailpit_py.config.values import split_hostport
        from mailpit_py.net.tls import sans_hosts

        extra = parse_allowed_hosts(config.allowed_hosts)
        self.any = extra == ("*",)
        machine = socket.gethostname().lower().rstrip(".")  # no DNS: it reads the kernel's name
        names = {"localhost", machine, f"{machine}.local", config.smtp_hostname.lower()}
        if not config.http_addr.startswith("unix:"):  # a Unix socket (Mailpit's) has no host
            names.add(split_hostport(config.http_addr, "--listen")[0].lower())
        names.update(h.lower() for h in sans_hosts(config.ui_tls_cert) or ())
        names.update(n for n in extra if not n.startswith("*."))
        self.names = frozenset(n.rstrip(".") for n in names if n)
        self.suffixes = SAFE_SUFFIXES + tuple(n[1:] for n in extra if n.startswith("*."))
        self._fqdn: str | None = None
        self._lock = threading.Lock()

    def allows(self, host_header: str) -> bool:
        if self.any or not host_header:
            return True  # every browser sends Host; a client without one is no browser
        host, _ = split_host(host_header)
        if (
            host in self.names
            or ("." not in host and _HOSTNAME.fullmatch(host))  # one label: a service name
            or host.endswith(self.suffixes)
            or _is_ip(host)
        ):
            return True
        return host == self._fully_qualified()

    def _fully_qualified(self) -> str:
        # getfqdn() may ask DNS, so it runs only for a name that would otherwise be refused.
        with self._lock:
            if self._fqdn is None:
                self._fqdn = socket.getfqdn().lower().rstrip(".")
            return self._fqdn


class OriginPolicy:
    """Decides whether a page's Origin may use the API: its own pages, or those --api-cors names."""

    def __init__(self, api_cors: str) -> None:
        self.allowed = parse_cors(api_cors)
        self.configured = bool(self.allowed)
        self.any = "*" in self.allowed

    def allows(self, origin: str, host_header: str) -> bool:
        if "*" in self.allowed:
            return True
        key = self.key(origin)
        if key is None:
            return False  # `null` (a sandboxed frame, a file) or garbage
        if key in self.allowed:
            return True
        # Same origin: the page came from this server under the name it used to reach it. The
        # scheme is not compared: a proxy that ends TLS forwards plain HTTP, and one host and
        # port cannot serve both schemes.
        scheme = urlsplit(origin.strip()).scheme.lower()
        host, port = split_host(host_header)
        return bool(host) and key == _origin_key(scheme, host, port)

    @staticmethod
    def key(origin: str) -> str | None:
        """`http://Example.com:80` -> `example.com`; None when it is no http(s) origin."""
        try:
            parts = urlsplit(origin.strip())
            port = parts.port
        except ValueError:
            return None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return None
        return _origin_key(parts.scheme, parts.hostname, port)
