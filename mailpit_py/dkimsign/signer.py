"""--dkim-sign DOMAIN:SELECTOR:KEYFILE: which key signs a message (by its From domain) and the
signing itself with dkimpy, relaxed/relaxed over the usual header fields."""

from __future__ import annotations

import email.utils
import functools
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

import dkim

from mailpit_py.config.errors import ConfigError
from mailpit_py.dkimsign.keys import KeyFileError, SigningKey, load_key

log = logging.getLogger("mailpit_py.dkimsign")

# Signed when present (RFC 6376 section 5.4.1's list, less the trace and resent fields): what a
# receiver shows or acts on, so a change to any of them breaks the signature. From is required.
SIGNED_HEADERS = (
    "from",
    "sender",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "to",
    "cc",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-id",
    "content-description",
    "in-reply-to",
    "references",
    "list-id",
    "list-help",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
)

_SPEC = (
    "DOMAIN:SELECTOR:KEYFILE, e.g. example.com:mail:/keys/example.pem (DOMAIN may be * or "
    "*.example.com)"
)
_DOMAIN = re.compile(r"(\*|(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_-]+)*)")
_SELECTOR = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


@dataclass(frozen=True)
class SignRule:
    """One --dkim-sign value: the From domains it covers, the selector and the key."""

    domain: str  # example.com, *.example.com (subdomains) or * (every domain)
    selector: str
    key: SigningKey

    def covers(self, domain: str) -> bool:
        if self.domain == "*":
            return True
        if self.domain.startswith("*."):
            return domain.endswith(self.domain[1:])
        return domain == self.domain

    def rank(self) -> int:
        """Exact beats a longer suffix beats a shorter one beats *."""
        if self.domain == "*":
            return 0
        return len(self.domain) + (1000 if not self.domain.startswith("*.") else 0)


def parse_rule(value: str, flag: str) -> tuple[str, str, str]:
    """`DOMAIN:SELECTOR:KEYFILE` -> its three parts (the key file may hold colons)."""
    parts = value.strip().split(":", 2)
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise ConfigError(f"{flag}: {value!r} is not {_SPEC}")
    domain, selector, path = (p.strip() for p in parts)
    domain, selector = domain.lower().rstrip("."), selector.lower()
    if not _DOMAIN.fullmatch(domain):
        raise ConfigError(f"{flag}: {domain!r} in {value!r} is not a domain: use {_SPEC}")
    if not _SELECTOR.fullmatch(selector):
        raise ConfigError(
            f"{flag}: {selector!r} in {value!r} is not a selector (letters, digits, - and _, "
            f"dot-separated): use {_SPEC}"
        )
    return domain, selector, path


class Signer:
    """The --dkim-sign rules of a process, keys loaded; sign() adds the signature a message's
    From domain calls for (or returns it unchanged when no rule covers it)."""

    def __init__(self, rules: Iterable[SignRule]) -> None:
        self.rules = sorted(rules, key=lambda r: r.rank(), reverse=True)

    @classmethod
    def from_values(cls, values: Iterable[str], flag: str = "--dkim-sign") -> Signer:
        """Parse and load every rule; a bad value or key file is a ConfigError naming it."""
        rules = []
        for value in values:
            domain, selector, path = parse_rule(value, flag)
            try:
                key = load_key(path)
            except KeyFileError as exc:
                raise ConfigError(f"{flag} {value}: {exc}") from None
            rules.append(SignRule(domain, selector, key))
        return cls(rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def rule_for(self, domain: str) -> SignRule | None:
        name = domain.lower().rstrip(".")
        return next((r for r in self.rules if r.covers(name)), None)

    def sign(self, raw: bytes) -> bytes:
        """`raw` (CRLF line ends) with a DKIM-Signature on top, d= its From domain; a signature
        of ours (same d= and s=) made before, now stale, is dropped first. Unsigned when no rule
        covers the From domain or the message cannot be signed (logged: mail still goes)."""
        if not self.rules:
            return raw
        domain = from_domain(raw)
        rule = self.rule_for(domain) if domain else None
        if rule is None:
            return raw
        try:
            d = domain.encode("idna")
        except UnicodeError:
            log.warning("DKIM: From domain %r cannot be signed (not a valid IDN)", domain)
            return raw
        if not _HOSTNAME.fullmatch(d):
            # d= is a domain-name of two labels or more, no address literal (RFC 6376 section
            # 3.5): such a From stays unsigned rather than carrying a signature none can check.
            log.warning("DKIM: From domain %r is no domain name: not signed", domain)
            return raw
        raw = drop_signature(raw, d.decode(), rule.selector)
        present = header_names(raw)
        headers = [h.encode() for h in SIGNED_HEADERS if h in present or h == "from"]
        try:
            signature = dkim.sign(
                raw,
                rule.selector.encode(),
                d,
                rule.key.private,
                canonicalize=(b"relaxed", b"relaxed"),
                signature_algorithm=rule.key.algorithm,
                include_headers=headers,
            )
        except dkim.DKIMException as exc:
            log.warning("DKIM: could not sign a message from %s: %s", domain, exc)
            return raw
        return bytes(signature) + raw


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_HOSTNAME = re.compile(rb"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)+")


def _fields(raw: bytes) -> tuple[list[bytes], bytes]:
    """(header fields with their folded lines, the rest from the blank line on)."""
    m = _HEADER_END.search(raw)
    head, rest = (raw[: m.start()], raw[m.start() :]) if m else (raw, b"")
    fields: list[bytes] = []
    for line in re.split(rb"(?<=\n)", head):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        elif line:
            fields.append(line)
    return fields, rest


def _name(field: bytes) -> str:
    return field.split(b":", 1)[0].strip().decode("ascii", "replace").lower()


def header_names(raw: bytes) -> set[str]:
    return {_name(f) for f in _fields(raw)[0]}


def from_domain(raw: bytes) -> str:
    """The domain of the first From address, lower-case; "" when there is none."""
    for field in _fields(raw)[0]:
        if _name(field) == "from":
            value = field.split(b":", 1)[1].decode("utf-8", "replace")
            addresses = email.utils.getaddresses([re.sub(r"\r?\n[ \t]", " ", value)])
            for _, address in addresses:
                if "@" in address:
                    return address.rpartition("@")[2].strip().lower().rstrip(".")
            return ""
    return ""


_TAG = re.compile(rb"(?:^|;)\s*([a-z]+)\s*=\s*([^;]*)", re.IGNORECASE)


def drop_signature(raw: bytes, domain: str, selector: str) -> bytes:
    """`raw` without the DKIM-Signature fields of this d= and s= (a stale one of ours: a relayed
    release gets a fresh Date and Message-ID, which would make it fail beside the new one)."""
    fields, rest = _fields(raw)

    def ours(field: bytes) -> bool:
        if _name(field) != "dkim-signature":
            return False
        value = re.sub(rb"\s+", b"", field.split(b":", 1)[1])
        tags = {k.lower(): v for k, v in _TAG.findall(value)}
        return (
            tags.get(b"d", b"").decode("ascii", "replace").lower() == domain
            and tags.get(b"s", b"").decode("ascii", "replace").lower() == selector
        )

    kept = [f for f in fields if not ours(f)]
    if len(kept) == len(fields):
        return raw
    return b"".join(kept).rstrip(b"\r\n") + rest if kept else rest.lstrip(b"\r\n")


def signer_for(values: tuple[str, ...]) -> Signer:
    """The Signer of a config's --dkim-sign values. Keys are read once, and again when a key
    file changes (a test suite that makes new keys at one path must not sign with old ones)."""
    stamps = []
    for value in values:
        path = value.split(":", 2)[-1].strip()
        try:
            info = os.stat(path)
            stamps.append((info.st_mtime_ns, info.st_size, info.st_ino))
        except OSError:
            stamps.append((0, 0, 0))  # from_values says what is wrong with it
    return _signer(values, tuple(stamps))


@functools.lru_cache(maxsize=8)
def _signer(values: tuple[str, ...], stamps: tuple[tuple[int, int, int], ...]) -> Signer:
    return Signer.from_values(values)
