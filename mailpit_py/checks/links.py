"""Link and image URLs of a message body: from the HTML (href, src) and from the text part."""

from __future__ import annotations

import html.parser
import re
import urllib.parse

_TEXT_URL = re.compile(r"https?://[^\s<>\"'()\[\]]+", re.I)
_HTTP = re.compile(r"https?:", re.I)


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {"a": ("href",), "area": ("href",), "img": ("src",), "link": ("href",)}
        for name, value in attrs:
            if value and name in names.get(tag, ()):
                self.urls.append(value.strip())


def extract_links(html: str, text: str = "", limit: int | None = None) -> list[str]:
    """http(s) URLs in order of appearance, each once; the first `limit` of them when given."""
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
    # A dict keeps the order and finds a repeat at once: a list's `in` made a mail of 60,000
    # distinct links cost two minutes of the checks' CPU.
    out: dict[str, None] = {}
    for url in found:
        # The scheme is read without urlsplit, which raises on a host such as `[x` (the link
        # check then reports such a link as broken, as it is).
        if url not in out and _HTTP.match(url):
            out[url] = None
            if limit is not None and len(out) >= limit:
                break
    return list(out)


def link_domains(urls: list[str]) -> list[str]:
    """Host names of the URLs (not IP literals), each once, lower-case."""
    out: dict[str, None] = {}
    for url in urls:
        try:
            host = (urllib.parse.urlsplit(url).hostname or "").rstrip(".").lower()
        except ValueError:
            continue
        if host and host not in out and not re.fullmatch(r"[\d.]+|[0-9a-f:]+", host):
            out[host] = None
    return list(out)
