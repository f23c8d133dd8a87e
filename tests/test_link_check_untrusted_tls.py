"""--allow-untrusted-tls, as Mailpit's: the link check accepts a certificate it cannot verify
(a local HTTPS server with a self-signed one stands in for a staging site)."""

from __future__ import annotations

import json
import smtplib
import threading
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from helpers import make_server
from mailpit_py.net.tls import server_context


class Ok(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = _answer
    do_GET = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def https_site() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    context = server_context("sans:localhost,127.0.0.1", None, "--test-tls")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def link_report(untrusted: bool, url: str) -> dict[str, Any]:
    with make_server(
        disable_checks=True, allow_internal_http_requests=True, allow_untrusted_tls=untrusted
    ) as mp:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.com", "staging"
        msg.set_content(f"see {url}/ok")
        msg.add_alternative(f'<a href="{url}/ok">the staging site</a>', subtype="html")
        with smtplib.SMTP(*mp.smtp_address, timeout=10) as client:
            client.send_message(msg)
        with urllib.request.urlopen(
            mp.http_url + "api/v1/message/latest/link-check", timeout=60
        ) as resp:
            report: dict[str, Any] = json.load(resp)
    return report


def test_an_untrusted_certificate_fails_the_link_check_unless_allowed(https_site: str) -> None:
    refused = link_report(False, https_site)
    (link,) = refused["Links"]
    assert link["StatusCode"] == 0 and "CERTIFICATE_VERIFY_FAILED" in link["Status"]
    allowed = link_report(True, https_site)
    assert [(x["URL"], x["StatusCode"]) for x in allowed["Links"]] == [(f"{https_site}/ok", 200)]
    assert allowed["Errors"] == 0


def test_the_flag_is_no_longer_warned_of_as_without_effect() -> None:
    from mailpit_py.cli import config_from
    from mailpit_py.config.validate import notices

    env = {"MP_ALLOW_UNTRUSTED_TLS": "true"}
    cfg = config_from([], env)
    assert cfg.allow_untrusted_tls
    assert not [n for n in notices(cfg, env, []) if "untrusted" in n]
