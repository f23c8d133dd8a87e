"""The one HTML-to-text (parse/html_text.py): what snippets and the search index read of HTML."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import urllib.parse
import urllib.request

from helpers import REPO, send_raw
from mailpit_py.parse import html_text
from mailpit_py.parse.html_text import html_to_text
from mailpit_py.server import Server


def html_only(body: str, subject: str = "html") -> bytes:
    return (
        "From: a@example.com\r\nTo: b@example.com\r\n"
        f"Subject: {subject}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


# CPU seconds a child interpreter may use for work that must be linear. Each input below costs
# the linear code well under a second; with the per-opener scans to the end these tests were
# written against, the same input needs minutes. The kernel ends the child at the limit
# (SIGXCPU): no clock is read, and a loaded machine does not add CPU seconds the way it adds
# wall-clock ones.
CPU_SECONDS = 10


def run_with_cpu_limit(code: str) -> str:
    """Run `code` in a new interpreter held to CPU_SECONDS of CPU; its output. Fails when the
    kernel ended it for using them all, or when it failed otherwise."""
    # (the hard limit a little above: the kernel sends SIGXCPU at the soft one, SIGKILL there)
    limit = "import resource\nresource.setrlimit(resource.RLIMIT_CPU, ({0}, {0} + 5))\n"
    limit = limit.format(CPU_SECONDS)
    proc = subprocess.run(
        [sys.executable, "-c", limit + code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert proc.returncode not in (-signal.SIGXCPU, -signal.SIGKILL), (
        f"used up {CPU_SECONDS} CPU seconds: the work grows faster than its input"
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def search(server: Server, query: str) -> list[str]:
    url = f"{server.http_url}api/v1/search?query={urllib.parse.quote(query)}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        return [m["ID"] for m in json.load(resp)["messages"]]


def test_search_reads_html_as_the_snippet_does(server: Server) -> None:
    # Inline tags join their neighbours into one word; comments and the title are not text.
    body = (
        "<html><head><title>titleword</title></head><body><p>Our <b>mega</b>saver offer"
        "<!-- a > commentword --></p><template>templateword</template></body></html>"
    )
    msg_id = send_raw(server, html_only(body))
    assert search(server, "megasaver") == [msg_id]
    assert search(server, "offer") == [msg_id]
    for hidden in ("commentword", "titleword", "templateword"):
        assert search(server, hidden) == [], hidden


def test_hostile_html_is_stored_and_searchable(server: Server) -> None:
    # Openers that never close: a pattern that looks for each one's end from each one is
    # quadratic, and ingest waits for it (this took minutes).
    raw = html_only("<p>findme</p>" + "<style>" * 40000 + "<head>" * 40000)
    msg_id = send_raw(server, raw)
    assert search(server, "findme") == [msg_id]


def test_hostile_html_is_parsed_and_indexed_in_linear_time() -> None:
    # What ingest does with a message before storing it (parse, then the record with its search
    # columns), on 2.5 times the openers of the test above: the search index's old pattern,
    # which looked for each opener's end from each opener, needs about a quarter of an hour of
    # CPU here, far past the limit; the linear way, a fraction of a second.
    out = run_with_cpu_limit(
        "from mailpit_py.mailbox.record import index_record\n"
        "raw = b'Subject: html\\r\\nContent-Type: text/html\\r\\n\\r\\n<p>findme</p>'\n"
        "raw += b'<style>' * 100_000 + b'<head>' * 100_000\n"
        "print(index_record('x', raw, '{}').fts[2])\n"
    )
    assert out.split() == ["findme"]


def test_bare_head_and_title_openers_cost_linear_time() -> None:
    # A head or title that never closes is only a tag; each used to cost a scan to the end:
    # for 100,000 of them, minutes of CPU per opener, past the limit; read linearly, well
    # under a second.
    out = run_with_cpu_limit(
        "from mailpit_py.parse.html_text import html_to_text\n"
        "for opener in ('<head>', '<title>', '<div><head>', '<b><title>x'):\n"
        "    text, _ = html_to_text('<p>a</p>' + opener * 100_000)\n"
        "    print(opener, text.startswith('a'))\n"
    )
    assert out.split() == ["<head>", "True", "<title>", "True", "<div><head>", "True"] + [
        "<b><title>x",
        "True",
    ]


def test_what_html_to_text_keeps() -> None:
    cases = {
        "<b>H</b>ello <i>w</i>orld": "Hello world",
        "a<br>b<div>c</div>d": "a b c d",
        "x<!-- hidden -->y": "xy",
        "<!DOCTYPE html><?xml x?>text": "text",
        "<head><style>p{}</style><title>t</title></head>body": "body",
        "<head><meta charset=utf-8><body>after": "after",  # no </head>: the body still starts
        "<title>shown": "shown",  # a title that never closes is only a tag
        "before<script>if (a < b) {}</script>after": "before after",
        "a < b &amp; c": "a < b & c",
        "tail<script>never closed": "tail",
        "<div class='x'": "",
        "zero\u200bwidth&zwnj;joined": "zerowidthjoined",
    }
    for markup, expected in cases.items():
        assert html_to_text(markup) == (expected, False), markup


def test_the_quick_route_reads_as_the_tag_by_tag_route() -> None:
    # Without a limit html_to_text takes a route of three regex passes when no "<" hides inside
    # another token; with one it reads token by token, the reference the quick route must match.
    pieces = ["<b>", "</b>", '<div class="x">', "</div>", "<style>", "</style>", "<!-- c -->"]
    pieces += ["<!--", "-->", "<head>", "</Head>", "<title>", "</title>", "<body>", "<script>"]
    pieces += ["</SCRIPT>", "<!DOCTYPE html>", "<?x?>", "<Span>", "<br/>", "<template>", "<p"]
    pieces += ["</template>", "<header>", "<tt>", "<a href=x>", "word", " ", "\n", "&amp;"]
    pieces += ["&", "amp;", ">", "\u200b", "<bdi>", "<SUP>", "<table>", "x", "<"]
    rnd = random.Random(2)
    quick = 0
    for _ in range(20000):
        markup = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 30)))
        if html_text._NESTED_LT_RE.search(markup) is None:
            quick += 1
        assert html_to_text(markup) == html_to_text(markup, 10**9), markup
    assert quick > 5000


def test_snippets_stop_early_and_agree_with_the_whole_text() -> None:
    row = "<tr><td><a href='x'>Link &amp; text</a> <b>bo</b>ld words</td></tr>"
    markup = "<html><head><style>p{}</style></head><body><table>" + row * 5000
    whole, stopped = html_to_text(markup)
    assert not stopped
    part, stopped = html_to_text(markup, 800)
    assert stopped and whole.startswith(part[:-20]) and len(part) < 2000
    assert html_text._snippet("", markup) == whole[:200] + "..."


def test_long_text_collapses_as_short_text_does() -> None:
    # Past a size the collapse is a regex instead of a word list: the same result.
    words = ["a", " ", "  ", "\n", "\t", "\u00a0", "\u2003", "\x1c", "b\u200bc", "\r\n", "é"]
    rnd = random.Random(3)
    text = "".join(rnd.choice(words) for _ in range(200000))
    assert len(text) > html_text._SPLIT_MAX
    expected = " ".join(text.replace("\u200b", "").split())
    assert html_text._collapse(text) == expected
    assert html_text._collapse(" \n" + text + "\t") == expected


def test_the_quick_route_knows_the_same_inline_tags() -> None:
    # The quick route finds inline tags by a trie written out by hand; it must name the set.
    for name in html_text._INLINE_TAGS:
        for tag in (f"<{name}>", f"</{name.upper()}>", f"<{name.title()} class=x>"):
            assert html_text._INLINE_TAG_RE.fullmatch(tag), tag
    for name in ("td", "br", "div", "p", "bd", "su", "ab", "spanx", "b2", "title", "table"):
        assert not html_text._INLINE_TAG_RE.fullmatch(f"<{name}>"), name
