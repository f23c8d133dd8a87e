"""The Checks tab of the web UI in headless Chromium: authentication verdicts and the
Authentication-Results header of a DKIM-signed corpus message, HTML compatibility, header
requirements, and a link check run from the tab against a local HTTP server."""

from __future__ import annotations

import json
import smtplib
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from test_ui_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT, _need_browser

from helpers import corpus_dir, make_server
from mailpit_py.server import Server


@pytest.fixture(scope="module")
def page_factory() -> Iterator[Any]:
    _need_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        errors: list[str] = []

        def new_page(url: str) -> Any:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            return page

        yield new_page
        browser.close()
        assert not errors, f"JavaScript errors in the page: {errors}"


class Ok(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self.send_response(200 if self.path == "/fine" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def site() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    keys = corpus_dir() / "dkim-keys" / "dns-records.txt"
    with make_server(
        dns_override=str(keys), dns_offline=True, allow_internal_http_requests=True
    ) as mp:
        yield mp


def latest_id(mp: Server) -> str:
    with urllib.request.urlopen(mp.http_url + "api/v1/messages", timeout=10) as resp:
        return str(json.loads(resp.read())["messages"][0]["ID"])


def test_checks_tab_shows_dkim_pass_and_the_authentication_results(
    server: Server, page_factory: Any
) -> None:
    from playwright.sync_api import expect

    raw = (corpus_dir() / "mimekit/rfc8463-example.msg").read_bytes()
    with smtplib.SMTP(*server.smtp_address) as client:
        client.sendmail("joe@football.example.com", ["jdoe@example.org"], raw)
    page = page_factory(server.http_url + f"?m={latest_id(server)}")
    page.locator("#tab-checks").click()
    verdicts = page.locator("#auth-verdicts .verdict")
    expect(verdicts.first).to_have_text("DKIM (football.example.com) pass")
    expect(verdicts).to_have_count(4)  # two signatures, SPF, DMARC
    expect(page.locator("#auth-results")).to_contain_text(
        "dkim=pass header.d=football.example.com header.s=brisbane"
    )
    expect(page.locator(".check-note").first).to_contain_text("simulation")
    # The flag the note names stays on one line (it broke after its first hyphen).
    flag = page.locator(".check-note code.flag").first
    expect(flag).to_have_text("--checks-client-ip")
    assert flag.evaluate("el => getComputedStyle(el).whiteSpace") == "nowrap"
    expect(page.locator('#requirements li[data-name="DKIM"]')).to_have_class("req-ok")
    page.locator("#checks-rerun").click()  # runs the checks again and redraws the tab
    expect(page.locator("#checks-rerun")).to_have_text("Run the checks again")
    expect(page.locator("#auth-verdicts .verdict").first).to_have_text(
        "DKIM (football.example.com) pass"
    )


def test_checks_tab_shows_html_problems_and_runs_the_link_check(
    server: Server, page_factory: Any, site: str
) -> None:
    from playwright.sync_api import expect

    html = (
        "<html><body><style>.a{display:flex}</style>"
        f'<div style="display:flex"><a href="{site}/fine">ok</a> <a href="{site}/gone">x</a>'
        "</div></body></html>"
    )
    body = {
        "From": {"Email": "app@example.com"},
        "To": [{"Email": "dev@example.org"}],
        "Subject": "flex",
        "HTML": html,
    }
    req = urllib.request.Request(
        server.http_url + "api/v1/send",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        uid = json.loads(resp.read())["ID"]
    page = page_factory(server.http_url + f"?m={uid}")
    page.locator("#tab-checks").click()
    expect(page.locator("#html-score")).to_contain_text("% supported")
    expect(page.locator("#checks-view")).to_contain_text("display:flex")
    expect(page.locator("#checks-view")).to_contain_text("<style> element inside <body>")
    page.locator("#link-check-btn").click()
    results = page.locator("#link-results")
    expect(results).to_contain_text("2 links, 1 with errors")
    expect(results.locator(".verdict-ok")).to_have_text("200")
    expect(results.locator(".verdict-bad")).to_have_text("404")
