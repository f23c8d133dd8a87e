"""Visible text of HTML, and the snippet of a message."""

from __future__ import annotations

import html as html_lib
import re

SNIPPET_LENGTH = 200
# HTML beyond this is not looked at when making a snippet out of HTML.
SNIPPET_HTML_SCAN = 512 * 1024
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u034f\u00ad"), None)
_INVISIBLE_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u034f\u00ad]")

# Longer text is collapsed by a regex: only runs other than a single space are replaced (\s and
# str.split() agree on what whitespace is).
_SPLIT_MAX = 64 * 1024
_WHITESPACE_RE = re.compile(r"\s{2,}|[^\S ]")

# Tags that do not break words: their neighbours join ("<b>H</b>ello" reads "Hello").
_INLINE_TAGS = frozenset(
    {"a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "dfn", "em", "font", "i"}
    | {"kbd", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup"}
    | {"time", "tt", "u", "var", "wbr"}
)
_NAME_END = r"(?![a-zA-Z0-9])"  # a tag name is all its letters and digits
# Elements whose content is not text, through their end tag: script, style and template (to
# the end of the input when they never close), head (or up to <body> when </head> is missing)
# and title. A head or title with neither is a tag alone ("bare"), and its content is text.
_NOT_TEXT = (
    "|".join(
        rf"(?i:{name}){_NAME_END}[^>]*>(?:.*?</(?i:{name})[^>]*>?|.*)(?P<{name}>)"
        for name in ("script", "style", "template")
    )
    + rf"|(?i:head){_NAME_END}[^>]*>(?:.*?</(?i:head)|.*?<(?i:body))[^>]*>?(?P<head>)"
    + rf"|(?i:title){_NAME_END}[^>]*>.*?</(?i:title)[^>]*>?(?P<title>)"
    + rf"|(?P<bare>(?i:head|title)){_NAME_END}[^>]*>"
)
_COMMENT = r"!--(?:.*?-->|.*)|[!?][^>]*>?"  # also a doctype or processing instruction
# What is not text in HTML, one token a match, roughly as a browser's lexer sees it: the
# elements above, any tag (an unterminated one takes the rest of the input), a comment. A "<"
# that starts none of them is text. Each match moves forward or takes the rest, so a pass is
# linear time, except that a bare head or title costs a scan to the end: html_to_text disarms
# those (see _BareOpener).
_HTML_TOKEN_RE = re.compile(
    rf"<(?:{_NOT_TEXT}|/?(?P<name>[a-zA-Z][a-zA-Z0-9]*)[^>]*>?|{_COMMENT})", re.S
)
# The quick route, three passes without a Python call per tag, is taken when every "<" of the
# markup starts a tag that ends before the next "<" (no "<" in text, attributes, comments or
# scripts): then no tag hides inside another token, and removing one joins no new one.
_NESTED_LT_RE = re.compile(r"<[^>]*<")
_NOT_TEXT_RE = re.compile(rf"<(?=[sStThH!?])(?:{_NOT_TEXT}|{_COMMENT})", re.S)
# _INLINE_TAGS as a trie, letters of either case as classes (much quicker than re.I).
_INLINE_TRIE = re.sub(
    "[a-z]",
    lambda m: f"[{m.group(0)}{m.group(0).upper()}]",
    r"a(?:bbr)?|b(?:di|do|ig)?|c(?:ite|ode)|d(?:ata|fn)|em|font|i|kbd|mark|q"
    r"|s(?:amp|mall|pan|trike|trong|ub|up)?|t(?:ime|t)|u|var|wbr",
)
_INLINE_TAG_RE = re.compile(rf"</?(?:{_INLINE_TRIE}){_NAME_END}[^>]*>?")
_TAG_RE = re.compile(r"</?[a-zA-Z][^>]*>?")
# Head and title openers, to disarm the bare ones.
_OPENER_RE = {name: re.compile(rf"<(?i:{name}){_NAME_END}") for name in ("head", "title")}


class _BareOpener(Exception):
    """A head or title without an end (nor a <body>) after it, at `at` in the markup."""

    def __init__(self, name: str, at: int) -> None:
        super().__init__(name)
        self.name = name
        self.at = at


def _token_space(match: re.Match[str]) -> str:
    """What a token leaves in the text: a space where it breaks words, else nothing."""
    kind = match.lastgroup
    if kind == "name":
        return "" if match.group("name").lower() in _INLINE_TAGS else " "
    if kind is None:  # a comment, doctype or processing instruction
        return ""
    if kind == "bare":
        raise _BareOpener(match.group("bare").lower(), match.start())
    return " "  # an element whose content is not text


def html_to_text(markup: str, enough: int | None = None) -> tuple[str, bool]:
    """Visible text of HTML, whitespace collapsed: tags removed, script/style/head dropped.

    The one HTML-to-text of the project: snippets and the search index both read HTML with
    it. Linear time on hostile input. Stops early once `enough` non-blank characters were
    seen; returns the text and whether it stopped early.
    """
    while True:
        try:
            return _html_to_text(markup, enough)
        except _BareOpener as bare:
            # Every such opener from here on is bare too (no end after the first means none
            # after the later ones): an inline tag reads the same, without the scans to the end.
            tail = _OPENER_RE[bare.name].sub("<span", markup[bare.at :])
            markup = markup[: bare.at] + tail


def _html_to_text(markup: str, enough: int | None) -> tuple[str, bool]:
    stopped = False
    if enough is None:
        if _NESTED_LT_RE.search(markup) is None:
            text = _NOT_TEXT_RE.sub(_token_space, markup)
            text = _TAG_RE.sub(" ", _INLINE_TAG_RE.sub("", text))
        else:
            text = _HTML_TOKEN_RE.sub(_token_space, markup)
    else:
        out: list[str] = []
        pos = 0
        collected = 0
        for match in _HTML_TOKEN_RE.finditer(markup):
            start = match.start()
            if start > pos:
                chunk = markup[pos:start]
                out.append(chunk)
                collected += len(chunk.strip())
                if collected > enough:
                    stopped = True
                    break
            out.append(_token_space(match))
            pos = match.end()
        else:
            out.append(markup[pos:])
        text = "".join(out)
    if "&" in text:
        text = html_lib.unescape(text)
    return _collapse(text), stopped


def _collapse(text: str) -> str:
    """Whitespace runs to one space, invisible formatting characters removed."""
    if not text.isascii() and _INVISIBLE_RE.search(text):  # (isascii reads a flag)
        text = text.translate(_INVISIBLE)
    if len(text) > _SPLIT_MAX:
        # The same result without a list of every word (about 60 bytes each): the search index
        # reads megabytes of HTML, whose words would cost several times the text.
        return _WHITESPACE_RE.sub(" ", text).strip()
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
        collapsed, stopped = html_to_text(scan, SNIPPET_LENGTH * 4)
        if stopped and len(collapsed) < SNIPPET_LENGTH:
            # Mostly invisible padding (&zwnj;&nbsp; preheaders): read the whole thing.
            collapsed, _ = html_to_text(scan)
    else:
        return ""
    return mailpit_cut(collapsed)


def mailpit_cut(collapsed: str) -> str:
    """Mailpit's snippet cut: at most SNIPPET_LENGTH bytes of UTF-8, never inside a character,
    then `...` (its tools.CreateSnippet and truncate, byte for byte)."""
    data = collapsed.encode("utf-8")
    if len(data) <= SNIPPET_LENGTH:
        return collapsed
    n = SNIPPET_LENGTH
    while n > 0 and data[n - 1] & 0xC0 == 0x80:  # back over continuation bytes
        n -= 1
    if n > 0 and data[n - 1] & 0xC0 == 0xC0:  # and the lead byte they belong to
        n -= 1
    return data[:n].decode("utf-8", "ignore") + "..."
