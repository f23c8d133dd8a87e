"""Tags as Mailpit makes them: clean names, plus-address and X-Tags tags, and tagging rules."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import Config
from mailpit_py.models import Address
from mailpit_py.store.search import SearchError, Term, parse_query

log = logging.getLogger("mailpit_py.mailbox")

# Mailpit keeps letters, digits, space, '-', '_', '.' and '@' in a tag; anything else becomes a
# space, spaces collapse, and a name is at most 100 characters.
# Mailpit keeps ASCII letters and digits, space, '-', '_', '.' and '@'; letters and digits of
# other scripts are kept here too (a German "Größe" or a Japanese tag would be cut to pieces,
# and IMAP clients show such folder names): a documented difference, the rest as Mailpit.
_TAG_INVALID = re.compile(r"[^\w\- .@]")
_TAG_SPACE = re.compile(r"\s+")
TAG_MAX = 100
# Tags a message names itself (X-Tags, plus addresses) are kept up to this many: one 160 KB
# X-Tags field made 20,000 tags, each a row, a UI filter and an IMAP folder. Mailpit sets no
# bound; no real message comes near it. Rule tags and the user name come on top.
MESSAGE_TAGS_MAX = 100
# user+tag@ (or user+one+two@): everything from the first '+' to the '@', split at '+'.
_PLUS = re.compile(r"^(.*?)\+(.*?)@", re.S)
# A word starts after anything but a letter, digit, '_', '.' or an apostrophe (roughly the
# Unicode word breaks Go's title casing follows: "beta/gamma" -> "Beta/Gamma", "o'neil" ->
# "O'neil").
_TITLE_WORD = re.compile(r"(^|[^\w.'])([^\W\d_])")


def clean_tag(tag: str) -> str:
    """A tag name cleaned as Mailpit cleans it, non-ASCII letters and digits kept ('' when
    nothing is left)."""
    return _TAG_SPACE.sub(" ", _TAG_INVALID.sub(" ", str(tag))).strip()[:TAG_MAX]


def clean_tags(tags: Iterable[str]) -> list[str]:
    """Clean each name, drop empties and duplicates (ignoring case, as Mailpit), keep order."""
    out: list[str] = []
    seen: set[str] = set()
    for tag in tags:
        t = clean_tag(tag)
        if t and t.lower() not in seen:
            seen.add(t.lower())
            out.append(t)
    return out


def title_case(tag: str) -> str:
    """--tags-title-case: each word's first letter upper-cased, the rest left as written."""
    return _TITLE_WORD.sub(lambda m: m.group(1) + m.group(2).upper(), tag)


def plus_address_tags(addresses: Iterable[Address]) -> list[str]:
    """The tags of plus-addresses (user+tag@example.com), in the order given."""
    out: list[str] = []
    for address in addresses:
        match = _PLUS.match(address.address)
        if match:
            out += match.group(2).split("+")
    return out


@dataclass(frozen=True)
class TagRule:
    """Tag messages that match `match` with `tags` (Mailpit's --tag and --tags-config)."""

    match: str
    terms: tuple[Term, ...]
    tags: tuple[str, ...]


def _rule(match: str, tags: Sequence[str], where: str) -> TagRule | None:
    match = match.strip()
    names = clean_tags(tags)
    if not match or not names:
        return None
    try:
        terms = tuple(parse_query(match))
    except SearchError as exc:
        raise ConfigError(f"{where}: the search {match!r} cannot be used: {exc}") from None
    return TagRule(match, terms, tuple(names))


def _args(text: str) -> list[str]:
    """Mailpit's argument splitting: at spaces outside double quotes, the quotes dropped."""
    out: list[str] = []
    buf, quoted = "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            buf += ch
        elif ch == " " and not quoted:
            out.append(buf)
            buf = ""
        else:
            buf += ch
    out.append(buf)
    return [v for v in (a.replace('"', "").strip() for a in out) if v]


def rules_from_arg(text: str) -> list[TagRule]:
    """--tag 'tag1,tag2=search "tag three=search with spaces"': tags, '=', a search."""
    rules: list[TagRule] = []
    for arg in _args(text):
        tags, sep, match = arg.partition("=")
        if not sep:
            raise ConfigError(
                f"--tag: {arg!r} has no '=': write tags=search, e.g. "
                "--tag 'invoice=subject:invoice' or --tag '\"big one=larger:1M\"'"
            )
        rule = _rule(match.lower(), tags.split(","), "--tag")
        if rule is not None:
            rules.append(rule)
    return rules


def rules_from_file(path: str) -> list[TagRule]:
    """--tags-config: Mailpit's YAML, `filters:`, a list of `match:` and `tags:` (a,b)."""
    import yaml  # only when a file is given

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--tags-config: cannot read {path!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--tags-config: {path!r} is not valid YAML: {exc}") from None
    filters = data.get("filters") if isinstance(data, dict) else None
    if not isinstance(filters, list):
        raise ConfigError(
            f"--tags-config: {path!r} needs a 'filters:' list of items with 'match:' and "
            "'tags:', e.g.\nfilters:\n  - match: subject:invoice\n    tags: Invoices,Billing"
        )
    rules: list[TagRule] = []
    for item in filters:
        if not isinstance(item, dict):
            raise ConfigError(f"--tags-config: {path!r}: each filter needs 'match:' and 'tags:'")
        tags = item.get("tags") or ""
        names = tags if isinstance(tags, list) else str(tags).split(",")
        rule = _rule(str(item.get("match") or ""), [str(n) for n in names], "--tags-config")
        if rule is not None:
            rules.append(rule)
    return rules


def tags_disabled(text: str) -> set[str]:
    """--tags-disable: 'x-tags' and/or 'plus-addresses' (Mailpit's spellings)."""
    out: set[str] = set()
    for part in text.lower().split(","):
        word = part.strip()
        if word in ("x-tags", "xtags"):
            out.add("x-tags")
        elif word in ("plus-addresses", "plus-addressing"):
            out.add("plus-addresses")
        elif word:
            raise ConfigError(
                f"--tags-disable: {word!r} is not a kind of tag: use x-tags, plus-addresses "
                "or both, comma-separated"
            )
    return out


@dataclass(frozen=True)
class AutoTags:
    """What tags a new message gets besides those the deliverer gives (built from Config)."""

    rules: tuple[TagRule, ...] = ()
    title_case: bool = False
    x_tags: bool = True
    plus_addresses: bool = True
    username: bool = False

    @classmethod
    def from_config(cls, config: Config) -> AutoTags:
        """Raises ConfigError for a rule or option that cannot be used, saying how to fix it."""
        disabled = tags_disabled(config.tags_disable)
        rules = rules_from_arg(config.tag)
        if config.tags_config:
            rules += rules_from_file(config.tags_config)
        return cls(
            rules=tuple(rules),
            title_case=config.tags_title_case,
            x_tags="x-tags" not in disabled,
            plus_addresses="plus-addresses" not in disabled,
            username=config.tags_username,
        )

    def tags(
        self,
        headers: Sequence[tuple[str, str]],
        addresses: Iterable[Address],
        username: str,
        raw: bytes,
    ) -> list[str]:
        """X-Tags, plus-address tags (Title Cased with --tags-title-case), the user name and
        the rules whose text the raw message holds (Mailpit matches a rule both that way and
        as a search; the search is the store's, after the insert)."""
        found: list[str] = []
        if self.x_tags:
            for name, value in headers:
                if name.lower() == "x-tags":
                    found += self._cased(value.strip().split(","))
        if self.plus_addresses:
            found += self._cased(plus_address_tags(addresses))
        own = clean_tags(found)
        if len(own) > MESSAGE_TAGS_MAX:
            log.warning(
                "a message names %d tags (X-Tags, plus addresses): only the first %d are kept",
                len(own),
                MESSAGE_TAGS_MAX,
            )
            found = own[:MESSAGE_TAGS_MAX]
        if self.username and username:
            found.append(username)
        if self.rules:
            lower = raw.lower()
            for rule in self.rules:
                if rule.match.lower().encode("utf-8", "replace") in lower:
                    found += rule.tags
        return clean_tags(found)

    def _cased(self, tags: Iterable[str]) -> list[str]:
        return [title_case(t) for t in tags] if self.title_case else list(tags)
