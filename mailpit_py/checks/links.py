"""Link and image URLs of a message body: from the HTML (href, src) and from the text part."""

from __future__ import annotations

import html.parser
import re
import urllib.parse

_TEXT_URL = re.compile(r"https?://[^\s<>\"'()\[\]]+", re.I)


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {"a": ("href",), "area": ("href",), "img": ("src",), "link": ("href",)}
        for name, value in attrs:
            if value and name in names.get(tag, ()):
                self.urls.append(value.strip())


def extract_links(html: str, text: str = "") -> list[str]:
    """http(s) URLs in order of appearance, each once."""
    found: list[str] = []
    if html:
        collector = _Collector()
        try:
            collector.feed(html)
            collector.close()
        except Exception:  # html.parser is lenient; a torture message must not end the check
            pass
        found += collector.urls
    if text:
        found += [u.rstrip(".,;:!?") for u in _TEXT_URL.findall(text)]
    out: list[str] = []
    for url in found:
        if urllib.parse.urlsplit(url).scheme.lower() in ("http", "https") and url not in out:
            out.append(url)
    return out


def link_domains(urls: list[str]) -> list[str]:
    """Host names of the URLs (not IP literals), each once, lower-case."""
    out: list[str] = []
    for url in urls:
        try:
            host = (urllib.parse.urlsplit(url).hostname or "").rstrip(".").lower()
        except ValueError:
            continue
        if host and not re.fullmatch(r"[\d.]+|[0-9a-f:]+", host) and host not in out:
            out.append(host)
    return out
