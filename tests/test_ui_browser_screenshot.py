"""The HTML view's screenshot: a PNG drawn in the browser and downloaded, of the mail as shown
(its inline image included), while nothing in the mail runs in the UI's page (Playwright and
Debian's Chromium, as tests/test_ui_browser.py)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image
from test_ui_browser import (  # noqa: F401 (fixtures)
    browser,
    open_message,
    open_page,
    send,
    server,
    shared_server,
    tiny_png,
)
from ui_visible import ARTIFACTS

from mailpit_py.server import Server

HTML = """<html><head><style>.band { background: #e11d48; height: 40px; width: 300px; }</style>
</head><body><h1>Quarterly numbers</h1><div class="band"></div>
<p><img src="cid:logo@test" width="96" height="48"></p>
<img src="x" onerror="window.top.__pwned = 1; window.parent.__pwned = 1">
<script>window.top.__pwned = 2;</script>
<p style="margin-top: 600px">The end.</p></body></html>"""


def _count(img: Image.Image, colour: tuple[int, int, int], tolerance: int = 24) -> int:
    raw = img.convert("RGB").tobytes()
    r, g, b = colour
    return sum(
        1
        for i in range(0, len(raw), 3)
        if abs(raw[i] - r) <= tolerance
        and abs(raw[i + 1] - g) <= tolerance
        and abs(raw[i + 2] - b) <= tolerance
    )


def test_screenshot_downloads_a_png_of_the_html_view(
    open_page: Any,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    send(server, "Shoot me", html=HTML, inline_png=tiny_png())
    page = open_page(server.http_url)
    open_message(page, "Shoot me")
    expect(page.frame_locator("#html-frame").locator("h1")).to_have_text("Quarterly numbers")
    with page.expect_download() as info:
        page.locator("#screenshot-btn").click()
    download = info.value
    assert download.suggested_filename.endswith(".png")
    data = Path(download.path()).read_bytes()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "html-screenshot.png").write_bytes(data)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    img = Image.open(io.BytesIO(data))
    img.verify()  # a whole, valid PNG
    img = Image.open(io.BytesIO(data))
    frame_width = page.locator("#html-frame").evaluate("f => Math.round(f.clientWidth)")
    assert img.width == frame_width
    # Down to the last line (600 px below the rest), not the whole 10,000 px canvas.
    assert 700 <= img.height <= 1200, img.size
    assert _count(img, (0xE1, 0x1D, 0x48)) >= 300 * 40 * 0.9  # the red band, drawn
    assert _count(img, (0x25, 0x63, 0xEB)) >= 96 * 48 * 0.8  # the inline image, scaled
    assert _count(img, (0, 0, 0), tolerance=60) > 50  # text
    # Nothing the mail holds ran in the UI's page, neither in the view nor the screenshot.
    assert page.evaluate("window.__pwned") is None

    # At the phone width, the PNG is as wide as the phone preview.
    page.get_by_role("button", name="Phone").click()
    with page.expect_download() as info:
        page.locator("#screenshot-btn").click()
    assert Image.open(info.value.path()).width == 375
