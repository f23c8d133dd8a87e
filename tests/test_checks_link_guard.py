"""The link check's guard against private networks decides on the address it connects to: IPv6
forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo), the unspecified
address, numeric IPv4 spellings and names that resolve to loopback are refused, on the first
request and on every redirect. Local HTTP servers stand in for both sides; nothing leaves the
machine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mailpit_py.checks import link_check

# Spellings of an internal address, each with the port of the server it would reach put in.
INTERNAL_HOSTS = [
    "[::127.0.0.1]",  # IPv4-compatible (deprecated): ::7f00:1
    "[64:ff9b::7f00:1]",  # NAT64 well-known prefix around 127.0.0.1
    "[64:ff9b:1::7f00:1]",  # NAT64 local-use prefix (RFC 8215)
    "[64:ff9b::a00:1]",  # NAT64 around 10.0.0.1
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:7f00:1]",
    "[2002:7f00:1::]",  # 6to4 around 127.0.0.1
    "[2002:c0a8:101::1]",  # 6to4 around 192.168.1.1
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
    "0.0.0.0",
    "[::]",
    "[::1]",
    "2130706433",  # 127.0.0.1 as one decimal number
    "0x7f.1",
    "017700000001",  # octal
    "127.1",
    "localhost",
]


class Recorder(BaseHTTPRequestHandler):
    """Answers 200, or a redirect to `target` on /go; records every request it gets."""

    hits: list[str]
    target = ""

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        type(self).hits.append(f"{self.command} {self.path}")
        if self.path.startswith("/go"):
            self.send_response(302)
            self.send_header("Location", type(self).target)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = _answer
    do_GET = _answer


def serve(address: str) -> Iterator[tuple[type[Recorder], int]]:
    handler = type("Handler", (Recorder,), {"hits": [], "target": ""})
    httpd = ThreadingHTTPServer((address, 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield handler, int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def private() -> Iterator[tuple[type[Recorder], int]]:
    """A server on loopback: what the guard protects."""
    yield from serve("127.0.0.1")


@pytest.fixture
def public(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[type[Recorder], int]]:
    """A server on 127.0.0.2 standing in for a site on the internet: the guard is told that
    this one address is public (the only stand-in here; the rest of the guard is real)."""
    real = link_check.internal_reason
    monkeypatch.setattr(
        link_check, "internal_reason", lambda addr: "" if addr == "127.0.0.2" else real(addr)
    )
    yield from serve("127.0.0.2")


@pytest.mark.parametrize("host", INTERNAL_HOSTS)
def test_internal_addresses_are_refused_in_any_spelling(
    private: tuple[type[Recorder], int], host: str
) -> None:
    handler, port = private
    result = link_check.check_url(f"http://{host}:{port}/x", follow=False, allow_internal=False)
    assert result["StatusCode"] == 0
    assert "internal address" in result["Status"], result
    assert "--allow-internal-http-requests" in result["Status"]
    assert handler.hits == []


@pytest.mark.parametrize("host", INTERNAL_HOSTS)
def test_a_redirect_to_an_internal_address_is_refused(
    public: tuple[type[Recorder], int], private: tuple[type[Recorder], int], host: str
) -> None:
    site, site_port = public
    inside, inside_port = private
    site.target = f"http://{host}:{inside_port}/secret"
    url = f"http://127.0.0.2:{site_port}/go"
    result = link_check.check_url(url, follow=True, allow_internal=False)
    assert site.hits  # the first hop was fetched
    assert result["StatusCode"] == 0
    assert "internal address" in result["Status"], result
    assert inside.hits == []
    # Without following, the redirect itself is the answer.
    assert link_check.check_url(url, follow=False, allow_internal=False)["StatusCode"] == 302


def test_the_stand_in_public_site_is_reached_and_followed_to_another_public_page(
    public: tuple[type[Recorder], int],
) -> None:
    site, port = public
    site.target = f"http://127.0.0.2:{port}/page"
    result = link_check.check_url(f"http://127.0.0.2:{port}/go", follow=True, allow_internal=False)
    assert result["StatusCode"] == 200
    assert site.hits == ["HEAD /go", "HEAD /page"]


@pytest.mark.parametrize(
    "addr",
    [
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "8.8.8.8",
        "2606:4700::1111",
        "192.0.0.9",  # Port Control Protocol anycast: globally reachable, per IANA
        "192.0.0.10",  # TURN anycast
    ],
)
def test_public_addresses_and_public_embedded_ipv4_pass(addr: str) -> None:
    assert link_check.internal_reason(addr) == ""


@pytest.mark.parametrize(
    "addr",
    [
        "192.0.0.8",  # IPv4 dummy address (RFC 7600)
        "192.0.0.200",  # IETF protocol assignments
        "192.88.99.1",  # 6to4 relay anycast, deprecated (RFC 7526)
        "fec0::1",  # IPv6 site-local, deprecated but routed inside some sites
        "::ffff:192.0.0.8",
        "2002:c000:8::1",  # 6to4 around 192.0.0.8
    ],
)
def test_ranges_python_311_calls_global_are_refused(addr: str) -> None:
    # IANA's special-purpose registries mark these not globally reachable; Python 3.11's
    # is_global (before 3.11.10) says they are, and the link check fetched them.
    assert "internal address" in link_check.internal_reason(addr)


def test_allow_internal_reaches_loopback_in_another_spelling(
    private: tuple[type[Recorder], int],
) -> None:
    handler, port = private
    url = f"http://2130706433:{port}/ok"
    assert link_check.check_url(url, follow=False, allow_internal=True)["StatusCode"] == 200
    assert handler.hits == ["HEAD /ok"]
