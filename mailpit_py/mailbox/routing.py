"""Which mailbox each recipient of a message goes to: the routing rules, pure (no I/O).

A recipient goes to the mailbox of the first rule that matches it, in the order of
config/mailboxes.py (the file's mailboxes and their routes, then --mailbox-route, then each
--smtp-listener's mailbox=); then, with --mailbox-header, to the mailbox the header names if it
exists; then, with --mailbox-auto and an authenticated session, to the mailbox of the AUTH
username; else it is unrouted: the default mailbox, or refused (--mailbox-unrouted refuse).

A mailbox may be made by a message only through a `{mailbox}` capture of an auth: or rcpt:
pattern, or --mailbox-auto. A header names only mailboxes that exist, so a sender cannot make
mailboxes by writing headers.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from mailpit_py.config.errors import ConfigError
from mailpit_py.config.listeners import parse_listener
from mailpit_py.config.mailboxes import CAPTURE, MailboxConfig, RouteRule, mailbox_config
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.boxes import (
    BOX_NAME_ALLOWED,
    BOX_NAME_MAX,
    DEFAULT_BOX,
    clean_box_name,
    is_box_name,
)

# The refusal of a recipient no rule routes, with --mailbox-unrouted refuse (RFC 3463 X.1.1:
# bad destination mailbox address), at RCPT or, when a header could have routed it, at DATA.
UNROUTED_REPLY = "550 5.1.1 <{rcpt}>: no mailbox for this recipient"
# (recipient, username, listener) answers of the route globs kept per router, at most.
ROUTE_CACHE = 4096


@dataclass(frozen=True)
class Match:
    """Where one recipient goes: the mailbox, and the rule that sent it there (for the log)."""

    box: str
    rule: str


@dataclass(frozen=True)
class _Rule:
    box: str  # a name, or a template holding {mailbox}
    kind: str
    regex: re.Pattern[str]
    where: str


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A case-insensitive glob (`*` any text, `?` one character, `{mailbox}` any text, captured
    as the group `box`) as a regular expression matched against the whole value."""
    return re.compile(_glob_source(pattern, "box"), _FLAGS)


_FLAGS = re.IGNORECASE | re.DOTALL
# The route kinds matched by one alternation of all their rules' globs: each matches a value
# that is the same for every rule of its kind (the recipient, the username, the listener).
_ALTERNATED = ("rcpt", "auth", "listener")


def _glob_source(pattern: str, group: str) -> str:
    """glob_regex's expression, its `{mailbox}` capture named `group`."""
    out = []
    for piece in re.split(r"(\*|\?|\{mailbox\})", pattern):
        if piece == "*":
            out.append(".*")
        elif piece == "?":
            out.append(".")
        elif piece == CAPTURE:
            out.append(f"(?P<{group}>.+?)")
        else:
            out.append(re.escape(piece))
    return "".join(out)


def _alternation(rules: Sequence[tuple[int, RouteRule]]) -> re.Pattern[str]:
    """One expression for several rules' globs, each an alternative in the rules' order, in a
    group named `r` and its index: matched against a whole value, the first alternative that
    matches it is taken (the regular expression engine tries them in order, as the loop did),
    and the match's outermost group, the one that closes last, names the rule."""
    return re.compile(
        "|".join(f"(?P<r{i}>{_glob_source(rule.pattern, f'b{i}')})" for i, rule in rules),
        _FLAGS,
    )


class Router:
    """The routing rules of one instance, checked and compiled once (see the module's text)."""

    def __init__(self, settings: MailboxConfig, listeners: Collection[str] = ()) -> None:
        """ConfigError, naming the file's line or the flag, for a name that is no mailbox name,
        a listener: route to a listener that does not exist (`listeners`: the --smtp-listener
        names; given empty, listener names are not checked) or header: routes without a
        header to match."""
        self.settings = settings
        self.unrouted = settings.unrouted
        self.auto = settings.auto
        self.header = settings.header
        for box in settings.boxes:
            _check_name(box.name, box.where)
        for names in settings.access.values():
            for name in sorted(names or ()):
                _check_name(name, settings.access_where)
        self._rules = tuple(self._compile(rule, listeners) for rule in settings.rules)
        # Per kind, its rules' globs as one alternation: with a route per mailbox, a recipient
        # is one match instead of one per rule before its own (50 mailboxes: 7-55 us each).
        self._alternations = tuple(
            (kind, _alternation(of_kind))
            for kind in _ALTERNATED
            if (of_kind := [(i, r) for i, r in enumerate(settings.rules) if r.kind == kind])
        )
        self._first_header = next(
            (i for i, rule in enumerate(self._rules) if rule.kind == "header"), len(self._rules)
        )
        # A development setup sends to the same few addresses again and again: their answers
        # are kept, a bounded number (lru_cache: safe to call from any thread).
        self.first_alternated = lru_cache(maxsize=ROUTE_CACHE)(self._first_alternated)
        self.names: frozenset[str] = frozenset({DEFAULT_BOX, *settings.names})
        # Nothing but the default mailbox can come out: the SMTP layer skips routing.
        self.active = bool(self._rules or self.auto or self.header or self.unrouted == "refuse")

    @classmethod
    def from_config(cls, config: Config) -> Router:
        """The router of these settings (the file read once per process); ConfigError."""
        names = [parse_listener(text).name for text in config.smtp_listeners]
        return cls(mailbox_config(config), ("default", *names))

    def _compile(self, rule: RouteRule, listeners: Collection[str]) -> _Rule:
        _check_name(rule.box, rule.where)
        if rule.kind == "listener" and listeners and rule.pattern not in listeners:
            raise ConfigError(
                f"{rule.where}: there is no SMTP listener named {rule.pattern!r}: use default "
                f"(the --smtp listener) or a name given to --smtp-listener NAME=ADDR"
            )
        if rule.kind == "header" and not self.header:
            raise ConfigError(
                f"{rule.where}: header: routes match the header --mailbox-header names: add "
                "--mailbox-header X-Mailbox (or header: X-Mailbox in the file)"
            )
        return _Rule(rule.box, rule.kind, glob_regex(rule.pattern), rule.where)

    def match(
        self,
        rcpt: str,
        *,
        username: str = "",
        listener: str = "default",
        header_values: Sequence[str] | None = (),
        existing: Collection[str] = (),
    ) -> Match | None:
        """The mailbox of one recipient; None when no rule routes it (unrouted).

        `username` is the session's AUTH username ("" when it has not authenticated),
        `header_values` the values of the --mailbox-header header in the message (None before
        DATA: header: routes are then skipped), `existing` the mailboxes that exist beyond
        those the settings name (a header may name only those)."""
        values = header_values or ()
        for rule in self._rules[self._first_match(rcpt, username, listener, values) :]:
            if rule.kind == "rcpt":
                box = _matched(rule, rcpt)
            elif rule.kind == "auth":
                box = _matched(rule, username) if username else None
            elif rule.kind == "listener":
                box = rule.box if rule.regex.fullmatch(listener) else None
            else:
                box = rule.box if any(rule.regex.fullmatch(v.strip()) for v in values) else None
            if box is not None:
                return Match(box, rule.where)
        if self.header:
            for value in values:
                box = _clean(value)
                if box is not None and (box in self.names or box in existing):
                    return Match(box, f"header {self.header}")
        if self.auto and username:
            box = _clean(username)
            if box is not None:
                return Match(box, "--mailbox-auto")
        return None

    def _first_match(self, rcpt: str, username: str, listener: str, values: Sequence[str]) -> int:
        """The index of the first rule that may route the recipient: every rule before it is
        known not to match (each kind's alternation found its first match there or none; a
        header: rule, whose values vary by message, is tried in the loop). From there the
        loop decides as before, also when that rule's capture names no mailbox."""
        first = self.first_alternated(rcpt, username, listener)
        return min(first, self._first_header) if values else first

    def _first_alternated(self, rcpt: str, username: str, listener: str) -> int:
        """_first_match without the header: rules (so it can be kept for the next message)."""
        first = len(self._rules)
        for kind, regex in self._alternations:
            value = rcpt if kind == "rcpt" else username if kind == "auth" else listener
            if kind == "auth" and not username:
                continue
            found = regex.fullmatch(value)
            if found is not None and found.lastgroup is not None:
                first = min(first, int(found.lastgroup[1:]))
        return first

    def refused_at_rcpt(self, rcpt: str, *, username: str = "", listener: str = "default") -> bool:
        """Whether a recipient is refused now, at RCPT: unrouted is refuse, no rule routes it,
        and no header could (header routing off); else what DATA's header says decides."""
        if self.unrouted != "refuse" or self.header:
            return False
        return self.match(rcpt, username=username, listener=listener) is None

    def matches(
        self,
        username: str,
        listener: str,
        rcpts: Iterable[str],
        header_values: Sequence[str] = (),
        existing: Collection[str] = (),
    ) -> list[tuple[str, Match | None]]:
        """(recipient, where it goes or None when unrouted) for each recipient, in order."""
        return [
            (
                rcpt,
                self.match(
                    rcpt,
                    username=username,
                    listener=listener,
                    header_values=header_values,
                    existing=existing,
                ),
            )
            for rcpt in rcpts
        ]

    def group(
        self, matches: Iterable[tuple[str, Match | None]]
    ) -> tuple[dict[str, list[str]], list[str]]:
        """(mailbox -> its recipients, the refused recipients): mailboxes in the order of their
        first recipient; an unrouted recipient goes to the default mailbox, or, with unrouted
        refuse, to the refused list (the caller answers UNROUTED_REPLY)."""
        boxes: dict[str, list[str]] = {}
        refused: list[str] = []
        for rcpt, found in matches:
            if found is None and self.unrouted == "refuse":
                refused.append(rcpt)
            else:
                boxes.setdefault(found.box if found else DEFAULT_BOX, []).append(rcpt)
        return boxes, refused

    def route(
        self,
        username: str,
        listener: str,
        rcpts: Iterable[str],
        header_values: Sequence[str] = (),
        existing: Collection[str] = (),
    ) -> dict[str, list[str]]:
        """mailbox -> the recipients routed there (see `group`); refused recipients left out."""
        found = self.matches(username, listener, rcpts, header_values, existing)
        return self.group(found)[0]


def _matched(rule: _Rule, value: str) -> str | None:
    m = rule.regex.fullmatch(value)
    if m is None:
        return None
    if CAPTURE not in rule.box:
        return rule.box
    return _clean(rule.box.replace(CAPTURE, m.group("box")))


def _clean(text: str) -> str | None:
    try:
        return clean_box_name(text)
    except ValueError:
        return None  # empty or too long: no mailbox, so the next rule decides


def _check_name(name: str, where: str) -> None:
    if is_box_name(name.replace(CAPTURE, "x")):
        return
    try:
        hint = f"use {clean_box_name(name)!r}: "
    except ValueError:
        hint = ""
    raise ConfigError(
        f"{where}: {name!r} is not a mailbox name: {hint}a name is 1 to {BOX_NAME_MAX} of "
        f"{BOX_NAME_ALLOWED} (lower case)"
    )
