"""Mailboxes per project: the --mailbox-* flags and the --mailbox-config YAML file, read into one
MailboxConfig (which mailboxes exist from start-up, the routing rules in order, who sees what).

The file is read once per process for a given set of settings (`mailbox_config`); the layers
above ask it, never the file:

- `Config.allowed_boxes(username) -> set[str] | None` (or `mailbox_config(cfg).allowed_boxes`):
  the mailboxes a UI/API/POP3/IMAP user may see; None means every mailbox (an unrestricted user,
  also every user not listed under `access:`).
- `Config.box_max(name) -> int | None` (or `mailbox_config(cfg).box_max`): a mailbox's own
  `max:` from the file, None when it has none (then --max applies).
- `mailbox_config(cfg).names`: the mailboxes named in the settings, created at start-up.

Names are checked as mailbox names by mailbox/routing.py (`Router.from_config`), which
config/validate.py runs at start-up, so the names here are clean once a server runs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailpit_py.config.errors import ConfigError
from mailpit_py.config.listeners import parse_listener
from mailpit_py.config.yamlfile import line_of, read_yaml

if TYPE_CHECKING:
    from mailpit_py.config.settings import Config

ROUTE_KINDS = ("auth", "rcpt", "listener", "header")
UNROUTED_MODES = ("default", "refuse")
CAPTURE = "{mailbox}"  # in a rcpt or auth glob: that part of the address names the mailbox
ROUTE_EXAMPLE = "e.g. shop=rcpt:*@shop.test, ci=auth:ci-*, {mailbox}=rcpt:*@{mailbox}.test"
_FILE_KEYS = ("access", "auto", "header", "mailboxes", "unrouted")
_BOX_KEYS = ("max", "name", "routes")
_HEADER_NAME = r"[!-9;-~]+"  # RFC 5322 field name: printable ASCII but the colon


@dataclass(frozen=True)
class RouteRule:
    """Mail matching `kind:pattern` goes to mailbox `box`: a name, or a template holding
    {mailbox}, filled with what the pattern's {mailbox} matched. `where` names the source."""

    box: str
    kind: str
    pattern: str
    where: str


@dataclass(frozen=True)
class BoxSpec:
    """A mailbox the file names: its own `max:` (None: --max applies) and where it is."""

    name: str
    max: int | None
    where: str


@dataclass(frozen=True)
class MailboxConfig:
    """Everything mailbox routing and access read: the file's values, then the flags'."""

    boxes: tuple[BoxSpec, ...] = ()
    rules: tuple[RouteRule, ...] = ()  # file order, then --mailbox-route, then listeners
    unrouted: str = "default"  # or "refuse": 550 5.1.1 for a recipient no rule routes
    auto: bool = False  # a mailbox per SMTP AUTH username, made on first use
    header: str = ""  # the header naming a message's mailbox; "" = header routing off
    # username -> the mailboxes it may see (None: every one); users not listed see every one
    access: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    access_where: str = ""  # where access: is, for errors about its names

    @property
    def names(self) -> tuple[str, ...]:
        """The mailboxes the settings name (templates left out): they exist from start-up."""
        named = [b.name for b in self.boxes if CAPTURE not in b.name]
        named += [r.box for r in self.rules if CAPTURE not in r.box]
        for boxes in self.access.values():
            named += sorted(boxes or ())
        return tuple(dict.fromkeys(named))

    def box_max(self, name: str) -> int | None:
        """The mailbox's own `max:` from the file; None when it has none (--max applies)."""
        for box in self.boxes:
            if box.name == name:
                return box.max
        return None

    def allowed_boxes(self, username: str | None) -> set[str] | None:
        """The mailboxes `username` may see in the UI, API, POP3 and IMAP; None means every
        mailbox: no login, a user not listed under `access:`, or one given "*"."""
        if not username or username not in self.access:
            return None
        boxes = self.access[username]
        return None if boxes is None else set(boxes)


def parse_route(text: str, flag: str = "--mailbox-route") -> RouteRule:
    """`NAME=KIND:PATTERN` (a --mailbox-route value) -> the rule; ConfigError says the form."""
    name, eq, rule = text.partition("=")
    kind, colon, pattern = rule.partition(":")
    kind = kind.strip().lower()
    if not eq or not colon or not name.strip():
        raise ConfigError(
            f"{flag}: {text!r} must be NAME=KIND:PATTERN, KIND one of "
            f"{', '.join(ROUTE_KINDS)}: {ROUTE_EXAMPLE}"
        )
    return _rule(name.strip(), kind, pattern.strip(), f"{flag} {text}")


def parse_route_list(value: str, flag: str) -> tuple[str, ...]:
    """`a=rcpt:*@a.test; b=auth:b` or one per line (the variable, or repeated flags joined)
    -> one rule text each, each checked now so that a typo stops start-up naming the flag."""
    items = tuple(part.strip() for part in re.split(r"[;\n]", value) if part.strip())
    for item in items:
        parse_route(item, flag)
    return items


def parse_unrouted(value: str, flag: str) -> str:
    """`default` or `refuse` ("" leaves it to the file, else default)."""
    text = value.strip().lower()
    if text and text not in UNROUTED_MODES:
        raise ConfigError(f"{flag}: {value!r}: use default (keep it there) or refuse (550)")
    return text


def _rule(box: str, kind: str, pattern: str, where: str) -> RouteRule:
    if kind not in ROUTE_KINDS:
        raise ConfigError(
            f"{where}: {kind!r} is not a kind of route: use {', '.join(ROUTE_KINDS)}, "
            + ROUTE_EXAMPLE
        )
    if not pattern:
        raise ConfigError(f"{where}: {kind}: needs a pattern, {ROUTE_EXAMPLE}")
    captures = pattern.count(CAPTURE)
    if captures and kind not in ("auth", "rcpt"):
        # A header would let any sender make mailboxes; a listener name is fixed anyway.
        raise ConfigError(
            f"{where}: {CAPTURE} captures only in auth: and rcpt: patterns, so a sender "
            f"cannot make mailboxes by {kind}: route to a named mailbox instead"
        )
    if captures > 1:
        raise ConfigError(f"{where}: {CAPTURE} may appear once in a pattern")
    if CAPTURE in box and not captures:
        raise ConfigError(
            f"{where}: the mailbox {box!r} takes {CAPTURE} from the pattern, which has none: "
            f"put {CAPTURE} where the name is in the address, e.g. *@{CAPTURE}.test"
        )
    return RouteRule(box=box, kind=kind, pattern=pattern, where=where)


def load(config: Config) -> MailboxConfig:
    """The file's settings (--mailbox-config), then the flags': rules in file order then flag
    order, each --smtp-listener's mailbox= last; a flag given wins over the file's value."""
    file = _load_file(config.mailbox_config) if config.mailbox_config else MailboxConfig()
    rules = list(file.rules)
    rules += [parse_route(text) for text in config.mailbox_routes]
    for text in config.smtp_listeners:
        spec = parse_listener(text)
        if spec.mailbox:
            where = f"--smtp-listener {spec.name} mailbox="
            rules.append(RouteRule(spec.mailbox, "listener", spec.name, where))
    header = config.mailbox_header.strip()
    if header and not re.fullmatch(_HEADER_NAME, header):
        raise ConfigError(f"--mailbox-header: {header!r} is not a header name: use e.g. X-Mailbox")
    return MailboxConfig(
        boxes=file.boxes,
        rules=tuple(rules),
        unrouted=config.mailbox_unrouted or file.unrouted,
        auto=config.mailbox_auto or file.auto,
        header=header or file.header,
        access=file.access,
        access_where=file.access_where,
    )


def mailbox_config(config: Config) -> MailboxConfig:
    """The MailboxConfig of these settings, the file read once per process (see `load`)."""
    return _cached(
        config.mailbox_config,
        config.mailbox_routes,
        config.mailbox_unrouted,
        config.mailbox_auto,
        config.mailbox_header,
        config.smtp_listeners,
    )


@functools.lru_cache(maxsize=16)
def _cached(
    path: str,
    routes: tuple[str, ...],
    unrouted: str,
    auto: bool,
    header: str,
    listeners: tuple[str, ...],
) -> MailboxConfig:
    from mailpit_py.config.settings import Config

    return load(
        Config(
            mailbox_config=path,
            mailbox_routes=routes,
            mailbox_unrouted=unrouted,
            mailbox_auto=auto,
            mailbox_header=header,
            smtp_listeners=listeners,
        )
    )


def _load_file(path: str) -> MailboxConfig:
    data = read_yaml(path, "--mailbox-config")
    if data is None:
        return MailboxConfig()
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the file is a mapping with mailboxes:, unrouted:, auto:, header: and "
            "access: keys (see docs/mailboxes.md)"
        )
    _known(data, _FILE_KEYS, f"{path} line {line_of(data, 1)}", "the file")
    boxes, rules = _mailboxes(data.get("mailboxes"), path)
    unrouted = data.get("unrouted", "default")
    if unrouted not in UNROUTED_MODES:
        raise ConfigError(
            f"{path}: unrouted: {unrouted!r}: use default (keep it there) or refuse (550)"
        )
    auto = data.get("auto", False)
    if not isinstance(auto, bool):
        raise ConfigError(f"{path}: auto: {auto!r}: use true or false")
    header = data.get("header") or ""
    if not isinstance(header, str) or (header and not re.fullmatch(_HEADER_NAME, header)):
        raise ConfigError(f"{path}: header: {header!r}: use a header name such as X-Mailbox")
    access, access_where = _access(data.get("access"), path)
    return MailboxConfig(boxes, rules, unrouted, auto, header, access, access_where)


def _mailboxes(items: Any, path: str) -> tuple[tuple[BoxSpec, ...], tuple[RouteRule, ...]]:
    if items is None:
        return (), ()
    if not isinstance(items, list):
        raise ConfigError(
            f"{path}: mailboxes: is a list of mailboxes, each a mapping such as "
            "{name: shop, max: 200, routes: [{rcpt: '*@shop.test'}]}"
        )
    boxes: list[BoxSpec] = []
    rules: list[RouteRule] = []
    for number, item in enumerate(items, 1):
        where = f"{path} line {line_of(item)}, mailbox {number}"
        if not isinstance(item, dict):
            raise ConfigError(
                f"{where}: a mailbox is a mapping with name:, and max: and routes: if wanted"
            )
        _known(item, _BOX_KEYS, where, "the mailbox")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: name: is missing: give the mailbox's name, e.g. shop")
        name = name.strip()
        if any(b.name == name for b in boxes):
            raise ConfigError(f"{where}: a mailbox named {name!r} is already listed above")
        limit = item.get("max")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ConfigError(f"{where}: max: {limit!r}: use a whole number (0 = unlimited)")
        if limit is not None and limit < 0:
            raise ConfigError(f"{where}: max: {limit}: use 0 (unlimited) or more")
        if limit is not None and CAPTURE in name:
            raise ConfigError(
                f"{where}: max: applies to one named mailbox; those made by {CAPTURE} keep "
                "--max: drop max: here"
            )
        boxes.append(BoxSpec(name, limit, where))
        routes = item.get("routes") or []
        if not isinstance(routes, list):
            raise ConfigError(f"{where}: routes: is a list such as [{{rcpt: '*@shop.test'}}]")
        for route in routes:
            rules.append(_file_route(route, name, f"{path} line {line_of(route, line_of(item))}"))
    return tuple(boxes), tuple(rules)


def _file_route(route: Any, box: str, where: str) -> RouteRule:
    if not isinstance(route, dict) or len(route) != 1:
        raise ConfigError(
            f"{where}: a route is one of {', '.join(k + ': PATTERN' for k in ROUTE_KINDS)}, "
            "e.g. {rcpt: '*@shop.test'}"
        )
    ((kind, pattern),) = route.items()
    if not isinstance(pattern, str):
        raise ConfigError(f"{where}: {kind}: {pattern!r}: the pattern is text; quote it")
    return _rule(box, kind.lower(), pattern.strip(), where)


def _access(value: Any, path: str) -> tuple[dict[str, frozenset[str] | None], str]:
    if value is None:
        return {}, ""
    where = f"{path} line {line_of(value)}, access"
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: is a mapping of username: [mailbox, ...] or username: '*'")
    out: dict[str, frozenset[str] | None] = {}
    for user, boxes in value.items():
        if boxes == "*":
            out[user] = None
        elif isinstance(boxes, str) and boxes.strip():
            out[user] = frozenset({boxes.strip()})
        elif isinstance(boxes, list) and boxes and all(isinstance(b, str) for b in boxes):
            out[user] = frozenset(b.strip() for b in boxes)
        else:
            raise ConfigError(
                f"{where}: {user}: {boxes!r}: give a list of mailboxes, e.g. [shop, ci], "
                "or '*' for every mailbox"
            )
    return out, where


def _known(data: Mapping[str, Any], keys: tuple[str, ...], where: str, what: str) -> None:
    unknown = sorted(str(k) for k in data if k not in keys)
    if unknown:
        raise ConfigError(
            f"{where}: {what} has unknown key {unknown[0]!r}: the keys are {', '.join(keys)}"
        )
