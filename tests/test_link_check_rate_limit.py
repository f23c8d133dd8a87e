"""The link check's limits per registered domain, as Mailpit's, and
--disable-link-check-rate-limit turning them off; local HTTP servers stand in for the sites."""

from __future__ import annotations

import json
import smtplib
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from helpers import make_server
from mailpit_py.checks.link_throttle import Bucket, registered_domain
from mailpit_py.server import Server


class Site(BaseHTTPRequestHandler):
    """Answers 200; /slow ones are held until released, so concurrent requests overlap."""

    hits: list[str] = []
    active = 0
    most = 0
    lock = threading.Lock()
    release = threading.Event()

    def _answer(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.hits.append(self.path)
            cls.active += 1
            cls.most = max(cls.most, cls.active)
        try:
            if self.path.startswith("/slow"):
                cls.release.wait(0.3)
        finally:
            with cls.lock:
                cls.active -= 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = _answer
    do_GET = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    Site.hits, Site.active, Site.most = [], 0, 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def send_links(mp: Server, urls: list[str]) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.com", "links"
    msg.set_content("links")
    msg.add_alternative("".join(f'<a href="{u}">x</a> ' for u in urls), subtype="html")
    with smtplib.SMTP(*mp.smtp_address, timeout=10) as client:
        client.send_message(msg)


def link_check(mp: Server) -> dict[str, Any]:
    url = mp.http_url + "api/v1/message/latest/link-check"
    with urllib.request.urlopen(url, timeout=60) as resp:
        report: dict[str, Any] = json.load(resp)
    return report


@pytest.mark.parametrize("disabled", [False, True])
def test_a_result_of_the_last_minute_is_reused_unless_disabled(site: str, disabled: bool) -> None:
    with make_server(
        allow_internal_http_requests=True,
        disable_checks=True,
        disable_link_check_rate_limit=disabled,
    ) as mp:
        send_links(mp, [f"{site}/ok"])
        first, again = link_check(mp), link_check(mp)
    assert first == again and first["Links"][0]["StatusCode"] == 200
    # Mailpit's minute cache: checking the same mail again sends nothing, unless disabled.
    assert Site.hits == ["/ok", "/ok"] if disabled else Site.hits == ["/ok"]


def test_two_requests_at_most_to_a_domain_across_concurrent_checks(site: str) -> None:
    with make_server(allow_internal_http_requests=True, disable_checks=True) as mp:
        send_links(mp, [f"{site}/slow{i}" for i in range(4)])
        with ThreadPoolExecutor(max_workers=2) as pool:
            # Two checks at once, each allowed two requests per host of its own.
            reports = list(pool.map(lambda _: link_check(mp), range(2)))
    assert all(r["Errors"] == 0 for r in reports)
    assert Site.most <= 2, Site.most


def test_the_bucket_is_full_at_first_then_refills_a_token_a_second() -> None:
    bucket = Bucket(now=100.0)
    assert [bucket.take(100.0) for _ in range(100)] == [0.0] * 100
    assert bucket.take(100.0) == pytest.approx(1.0)  # the 101st waits a second
    assert bucket.take(100.5) == pytest.approx(1.5)  # reserved behind it
    assert bucket.take(110.0) == 0.0  # refilled meanwhile
    assert not bucket.full(110.0) and bucket.full(300.0)


def test_subdomains_share_their_registered_domain() -> None:
    assert registered_domain("https://a.b.example.co.uk/x") == "example.co.uk"
    assert registered_domain("http://shop.example.com:8080/") == "example.com"
    assert registered_domain("http://127.0.0.1:9/") == "127.0.0.1"


def test_the_flag_is_no_longer_warned_of_as_without_effect() -> None:
    from mailpit_py.cli import config_from
    from mailpit_py.config.validate import notices

    env = {"MP_DISABLE_LINK_CHECK_RATE_LIMIT": "true"}
    cfg = config_from([], env)
    assert cfg.disable_link_check_rate_limit
    assert not [n for n in notices(cfg, env, []) if "rate-limit" in n]
