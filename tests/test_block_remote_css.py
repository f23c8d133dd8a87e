"""--block-remote-css-and-fonts, as Mailpit's: the HTML view and the UI load no remote CSS or
fonts (a Content-Security-Policy), checked in a real Chromium against a local web server."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from test_api import send
from test_ui_browser import CHROMIUM, CHROMIUM_ARGS, _need_browser

from helpers import make_server, wait_until


class Remote:
    """A stand-in for a sender's web server: serves a stylesheet and a font, noting each hit."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                owner.hits.append(self.path)
                body = b"p { color: rgb(1, 2, 3); }" if self.path.endswith(".css") else b"x"
                self.send_response(200)
                kind = "text/css" if self.path.endswith(".css") else "application/octet-stream"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def remote() -> Iterator[Remote]:
    r = Remote()
    yield r
    r.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def html_mail(remote: Remote) -> bytes:
    html = (
        f'<html><head><link rel="stylesheet" href="{remote.base}/remote.css">'
        f"<style>@font-face {{ font-family: Far; src: url({remote.base}/far.woff); }}"
        " p { font-family: Far; }</style></head>"
        f'<body><p>Styled from afar</p><img src="{remote.base}/pixel.png"></body></html>'
    )
    return (
        "From: a@example.com\r\nTo: b@example.com\r\nSubject: remote css\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html
    ).encode()


@pytest.mark.parametrize("block", [False, True])
def test_the_html_view_loads_remote_css_and_fonts_unless_blocked(
    browser: Any, remote: Remote, block: bool
) -> None:
    with make_server(block_remote_css_and_fonts=block) as mp:
        send(mp, html_mail(remote))
        context = browser.new_context()
        refused: list[str] = []
        try:
            page = context.new_page()
            page.on(
                "console",
                lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
            )
            page.goto(mp.http_url + "view/latest.html")
            wait_until(lambda: "/pixel.png" in remote.hits, what="the image (always allowed)")
            if block:
                wait_until(
                    lambda: (
                        any("the stylesheet" in r for r in refused)
                        and any("the font" in r for r in refused)
                    ),
                    what="Chromium refusing the stylesheet and the font",
                )
                assert "/remote.css" not in remote.hits and "/far.woff" not in remote.hits
            else:
                wait_until(lambda: "/remote.css" in remote.hits, what="the remote stylesheet")
                wait_until(lambda: "/far.woff" in remote.hits, what="the remote font")
        finally:
            context.close()


def test_the_ui_page_blocks_them_too_when_asked() -> None:
    for block in (False, True):
        with (
            make_server(block_remote_css_and_fonts=block) as mp,
            urllib.request.urlopen(mp.http_url, timeout=10) as resp,
        ):
            csp = resp.headers["Content-Security-Policy"]
        # The preview frame is a srcdoc page: it is held to its embedder's policy as well.
        assert ("style-src 'self' 'unsafe-inline'" in csp) == block, csp
        assert ("font-src 'self' data:" in csp) == block, csp


def test_the_flag_is_no_longer_warned_of_as_without_effect() -> None:
    from mailpit_py.cli import config_from
    from mailpit_py.config.validate import notices

    env = {"MP_BLOCK_REMOTE_CSS_AND_FONTS": "true"}
    cfg = config_from([], env)
    assert cfg.block_remote_css_and_fonts
    assert not [n for n in notices(cfg, env, []) if "block-remote" in n]
