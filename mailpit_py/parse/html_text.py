"""Visible text of HTML, and the snippet of a message."""

from __future__ import annotations

import html as html_lib
import re

SNIPPET_LENGTH = 200
# HTML beyond this is not looked at when making a snippet out of HTML.
SNIPPET_HTML_SCAN = 512 * 1024
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u034f\u00ad"), None)
_INVISIBLE_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u034f\u00ad]")
_TAG_NAME_RE = re.compile(r"/?([a-zA-Z][a-zA-Z0-9]*)")

# Tags whose content is not text (dropped entirely) and tags that do not break words.
_SKIP_CONTENT_TAGS = frozenset({"script", "style", "head", "title", "template"})
_CLOSING_TAG_RE = {name: re.compile(f"</{name}", re.I) for name in _SKIP_CONTENT_TAGS}
_BODY_TAG_RE = re.compile("<body", re.I)
_INLINE_TAGS = frozenset(
    {"a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "dfn", "em", "font", "i"}
    | {"kbd", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup"}
    | {"time", "tt", "u", "var", "wbr"}
)


def _html_to_text(markup: str, enough: int | None = None) -> tuple[str, bool]:
    """Visible text of HTML, whitespace collapsed: tags removed, script/style/head dropped.

    Linear time on hostile input (every search moves forward). Stops early once `enough`
    non-blank characters were seen; returns the text and whether it stopped early.
    """
    out: list[str] = []
    size = len(markup)
    pos = 0
    collected = 0
    stopped = False
    while pos < size:
        lt = markup.find("<", pos)
        if lt < 0:
            out.append(markup[pos:])
            break
        if lt > pos:
            chunk = markup[pos:lt]
            out.append(chunk)
            collected += len(chunk.strip())
            if enough is not None and collected > enough:
                stopped = True
                break
        if markup.startswith("<!--", lt):
            end = markup.find("-->", lt + 4)
            pos = size if end < 0 else end + 3
            continue
        match = _TAG_NAME_RE.match(markup, lt + 1)
        if match is None:
            if lt + 1 < size and markup[lt + 1] in "!?":
                gt = markup.find(">", lt + 1)
                pos = size if gt < 0 else gt + 1
            else:
                out.append("<")
                pos = lt + 1
            continue
        gt = markup.find(">", match.end())
        if gt < 0:
            break
        name = match.group(1).lower()
        pos = gt + 1
        if name in _SKIP_CONTENT_TAGS and markup[lt + 1] != "/":
            found = _CLOSING_TAG_RE[name].search(markup, pos)
            if found is None and name == "head":
                # Sloppy HTML without </head>: the body still starts at <body>.
                found = _BODY_TAG_RE.search(markup, pos)
            if found is None:
                if name in ("head", "title"):
                    continue
                break
            gt = markup.find(">", found.start())
            pos = size if gt < 0 else gt + 1
            out.append(" ")
            continue
        if name not in _INLINE_TAGS:
            out.append(" ")
    text = "".join(out)
    if "&" in text:
        text = html_lib.unescape(text)
    return _collapse(text), stopped


def _collapse(text: str) -> str:
    """Whitespace runs to one space, invisible formatting characters removed."""
    if not text.isascii() and _INVISIBLE_RE.search(text):  # (isascii reads a flag)
        text = text.translate(_INVISIBLE)
    return " ".join(text.split())


def _snippet(text: str, markup: str) -> str:
    """About SNIPPET_LENGTH characters of text, cut at a word boundary."""
    if text and not text.isspace():
        # Only the start matters; widen the window when it is mostly whitespace. A quarter more
        # than the snippet is almost always enough (ordinary text loses a little to line
        # breaks), and collapsing is a split and a join: its cost follows the window.
        window = SNIPPET_LENGTH + SNIPPET_LENGTH // 4
        collapsed = _collapse(text[:window])
        while len(collapsed) <= SNIPPET_LENGTH and window < len(text):
            window *= 8
            collapsed = _collapse(text[:window])
    elif markup and not markup.isspace():
        scan = markup[:SNIPPET_HTML_SCAN]
        collapsed, stopped = _html_to_text(scan, SNIPPET_LENGTH * 4)
        if stopped and len(collapsed) < SNIPPET_LENGTH:
            # Mostly invisible padding (&zwnj;&nbsp; preheaders): read the whole thing.
            collapsed, _ = _html_to_text(scan)
    else:
        return ""
    if len(collapsed) <= SNIPPET_LENGTH:
        return collapsed
    cut = collapsed.rfind(" ", 0, SNIPPET_LENGTH + 1)
    if cut <= 0:
        # No word boundary (e.g. CJK text): cut at the limit.
        return collapsed[:SNIPPET_LENGTH]
    return collapsed[:cut].rstrip()
