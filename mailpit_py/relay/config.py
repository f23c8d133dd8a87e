"""Relay and forward settings: Mailpit's YAML keys or MP_SMTP_RELAY_*/MP_SMTP_FORWARD_*
variables, read strictly (an unknown key or a wrong type is an error naming it)."""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import yaml

from mailpit_py.config.errors import ConfigError

AUTH_METHODS = ("none", "plain", "login", "cram-md5")

# YAML key -> (type, attribute). Mailpit's keys (docs: configuration/smtp-relay, smtp-forward).
_COMMON: dict[str, tuple[type, str]] = {
    "host": (str, "host"),
    "port": (int, "port"),
    "starttls": (bool, "starttls"),
    "tls": (bool, "tls"),
    "allow-insecure": (bool, "allow_insecure"),
    "auth": (str, "auth"),
    "username": (str, "username"),
    "password": (str, "password"),
    "secret": (str, "secret"),
    "return-path": (str, "return_path"),
    "override-from": (str, "override_from"),
    "forward-smtp-errors": (bool, "forward_smtp_errors"),
}
RELAY_KEYS: dict[str, tuple[type, str]] = {
    **_COMMON,
    "allowed-recipients": (str, "allowed_recipients"),
    "blocked-recipients": (str, "blocked_recipients"),
    "preserve-message-ids": (bool, "preserve_message_ids"),
}
# Mailpit's deprecated spelling of allowed-recipients, still read by it: it stands in when
# allowed-recipients is not given, and start-up names it (file_notices).
_OLD_ALLOWED = "recipient-allowlist"
FORWARD_KEYS: dict[str, tuple[type, str]] = {**_COMMON, "to": (str, "to")}

RELAY_ENV = "MP_SMTP_RELAY_"
FORWARD_ENV = "MP_SMTP_FORWARD_"
# Variables with these prefixes that are flags of their own (cli.py OPTIONS), not YAML keys.
FLAG_VARS = frozenset(
    {
        "MP_SMTP_RELAY_CONFIG",
        "MP_SMTP_RELAY_ALL",
        "MP_SMTP_RELAY_MATCHING",
        "MP_SMTP_RELAY_MX",
        "MP_SMTP_RELAY_MX_NAMESERVER",
        "MP_SMTP_RELAY_RETRY_DELAY",
        "MP_SMTP_RELAY_MAX_ATTEMPTS",
        "MP_SMTP_FORWARD_CONFIG",
    }
)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Upstream:
    """One upstream SMTP server and what to change on the way (relay or forward)."""

    host: str = ""
    port: int = 25
    starttls: bool = False
    tls: bool = False
    allow_insecure: bool = False
    auth: str = "none"
    username: str = ""
    password: str = field(default="", repr=False)
    secret: str = field(default="", repr=False)
    return_path: str = ""
    override_from: str = ""
    forward_smtp_errors: bool = False
    allowed_recipients: str = ""  # regex: who a manual release may go to
    blocked_recipients: str = ""  # regex: who nothing is ever relayed to
    preserve_message_ids: bool = False
    to: tuple[str, ...] = field(default=())  # forward only: the fixed recipients

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    def allowed(self, address: str) -> str:
        """Empty when `address` may receive a release; else why not."""
        if self.blocked(address):
            return f"{address} is blocked by blocked-recipients ({self.blocked_recipients})"
        if self.allowed_recipients and not address_rule(self.allowed_recipients).search(address):
            return f"{address} is not allowed by allowed-recipients ({self.allowed_recipients})"
        return ""

    def blocked(self, address: str) -> bool:
        return bool(
            self.blocked_recipients and address_rule(self.blocked_recipients).search(address)
        )


def address_rule(pattern: str) -> re.Pattern[str]:
    """A recipient rule (blocked-recipients, allowed-recipients, --smtp-relay-matching) as a
    case-insensitive regular expression: domains are case-insensitive and mail systems treat
    local parts so too, so `^ceo@` must also stop CEO@ (`(?-i:...)` makes a part exact)."""
    return re.compile(pattern, re.IGNORECASE)  # re caches compiled patterns


def load_relay(path: str, environ: Mapping[str, str], *, mx: bool) -> Upstream | None:
    """The relay upstream from the file (wins) and MP_SMTP_RELAY_* variables; None if unset."""
    values = _from_env(environ, RELAY_ENV, RELAY_KEYS)
    if path:
        values.update(_from_file(path, RELAY_KEYS, "--smtp-relay-config"))
    if not values:
        return None
    where = f"--smtp-relay-config {path}" if path else f"{RELAY_ENV}* variables"
    return _finish(values, where, require_host=not mx, resolve=True)


def load_forward(path: str, environ: Mapping[str, str]) -> Upstream | None:
    values = _from_env(environ, FORWARD_ENV, FORWARD_KEYS)
    if path:
        values.update(_from_file(path, FORWARD_KEYS, "--smtp-forward-config"))
    if not values:
        return None
    where = f"--smtp-forward-config {path}" if path else f"{FORWARD_ENV}* variables"
    up = _finish(values, where, require_host=True, resolve=True)
    if not up.to:
        raise ConfigError(f"{where}: 'to' is required: the addresses every message is copied to")
    return up


def env_pairs(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The relay and forward variables the CLI hands to Config (flags' own variables excluded)."""
    return tuple(
        sorted(
            (k, v)
            for k, v in environ.items()
            if k.startswith((RELAY_ENV, FORWARD_ENV)) and k not in FLAG_VARS
        )
    )


def _from_file(path: str, keys: dict[str, tuple[type, str]], flag: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{flag}: cannot read {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{flag}: {path}{line} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{flag}: {path} must be a mapping of keys such as host: and port:")
    lines = _key_lines(text)
    out: dict[str, Any] = {}
    old = data.pop(_OLD_ALLOWED, None) if keys is RELAY_KEYS else None
    if old is not None:
        data.setdefault("allowed-recipients", old)
    for key, value in data.items():
        where = f"{flag}: {path} line {lines.get(str(key), '?')}"
        if key not in keys:
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: {', '.join(keys)}")
        kind, attr = keys[key]
        if value is None:
            continue
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{where}: {key} must be a whole number, got {value!r}")
        if kind is bool and not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
        if kind is str and (isinstance(value, bool) or not isinstance(value, str | int | float)):
            raise ConfigError(f"{where}: {key} must be text, got {value!r}")
        out[attr] = str(value) if kind is str else value
    return out


def file_notices(path: str) -> list[str]:
    """Start-up warnings for a --smtp-relay-config file: Mailpit's deprecated key in it."""
    try:
        data = yaml.safe_load(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []  # validation reports an unreadable file
    if isinstance(data, dict) and _OLD_ALLOWED in data:
        return [
            f"--smtp-relay-config {path}: '{_OLD_ALLOWED}' is deprecated, as in Mailpit: use "
            "'allowed-recipients'"
        ]
    return []


def _key_lines(text: str) -> dict[str, int]:
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        m = re.match(r"""\s*["']?([A-Za-z0-9_-]+)["']?\s*:""", line)
        if m and m.group(1) not in lines:
            lines[m.group(1)] = number
    return lines


# Mailpit spells forward-smtp-errors' variable MP_SMTP_RELAY_FWD_SMTP_ERRORS (and _FORWARD_).
_ENV_ALIASES = {"FWD_SMTP_ERRORS": "forward-smtp-errors"}


def env_names(prefix: str, keys: dict[str, tuple[type, str]]) -> dict[str, tuple[type, str]]:
    """Each MP_SMTP_RELAY_*/MP_SMTP_FORWARD_* variable read for `keys`, Mailpit's names too."""
    names = {prefix + k.upper().replace("-", "_"): spec for k, spec in keys.items()}
    names |= {prefix + alias: keys[key] for alias, key in _ENV_ALIASES.items() if key in keys}
    return names


def known_env() -> set[str]:
    """Every relay and forward variable mailpit_py reads (the flags' own ones included)."""
    return set(env_names(RELAY_ENV, RELAY_KEYS)) | set(env_names(FORWARD_ENV, FORWARD_KEYS))


def _from_env(
    environ: Mapping[str, str], prefix: str, keys: dict[str, tuple[type, str]]
) -> dict[str, Any]:
    by_var = env_names(prefix, keys)
    out: dict[str, Any] = {}
    for var, raw in environ.items():
        if var not in by_var or raw == "":  # another's, or unknown: reported at start, never
            continue  # fatal; empty: not set, as Mailpit reads its variables
        kind, attr = by_var[var]
        if kind is bool:
            if raw.strip().lower() not in _TRUE | _FALSE:
                raise ConfigError(f"{var}: {raw!r} is not true or false")
            out[attr] = raw.strip().lower() in _TRUE
        elif kind is int:
            try:
                out[attr] = int(raw)
            except ValueError:
                raise ConfigError(f"{var}: {raw!r} is not a whole number") from None
        else:
            out[attr] = raw
    return out


def _finish(values: dict[str, Any], where: str, *, require_host: bool, resolve: bool) -> Upstream:
    to_text = values.pop("to", "")
    auth = str(values.get("auth", "none") or "none").lower()
    if auth == "false":
        auth = "none"
    if auth.startswith("cram"):
        auth = "cram-md5"
    if auth not in AUTH_METHODS:
        raise ConfigError(f"{where}: auth {auth!r} is not one of {', '.join(AUTH_METHODS)}")
    values["auth"] = auth
    up = Upstream(**values)
    if require_host and not up.host:
        raise ConfigError(f"{where}: host is required (the upstream SMTP server)")
    if not 0 < up.port <= 65535:
        raise ConfigError(f"{where}: port {up.port} is out of range (1-65535)")
    if up.starttls and up.tls:
        raise ConfigError(f"{where}: starttls and tls cannot both be on: choose one")
    if auth in ("plain", "login") and not (up.username and up.password):
        raise ConfigError(f"{where}: auth {auth} needs username and password")
    if auth == "cram-md5" and not (up.username and up.secret):
        raise ConfigError(f"{where}: auth cram-md5 needs username and secret")
    for key, pattern in (
        ("allowed-recipients", up.allowed_recipients),
        ("blocked-recipients", up.blocked_recipients),
    ):
        if pattern:
            try:
                address_rule(pattern)
            except re.error as exc:
                raise ConfigError(f"{where}: {key} is not a regular expression: {exc}") from None
    for key, addr in (("return-path", up.return_path), ("override-from", up.override_from)):
        if addr and re.search(r"[\x00-\x1f\x7f]", addr):
            # Both are written into headers of every copy: a line break would add fields.
            raise ConfigError(
                f"{where}: {key} {addr!r} has a line break or control character: give one "
                "address on one line, such as bounces@example.com"
            )
        if addr and "@" not in parseaddr(addr)[1]:
            raise ConfigError(f"{where}: {key} {addr!r} is not an email address")
    to: list[str] = []
    for part in str(to_text).split(","):
        if part.strip():
            addr = parseaddr(part.strip())[1]
            if "@" not in addr:
                raise ConfigError(f"{where}: to: {part.strip()!r} is not an email address")
            to.append(addr)
    up = replace(up, to=tuple(to))
    if up.override_from:
        up = replace(up, override_from=parseaddr(up.override_from)[1])
    if up.return_path:
        # The envelope sender and the Return-Path header take the bare address.
        up = replace(up, return_path=parseaddr(up.return_path)[1])
    if resolve and up.host:
        try:
            socket.getaddrinfo(up.host, up.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConfigError(f"{where}: host {up.host!r} cannot be resolved: {exc}") from None
    return up


@dataclass(frozen=True)
class RelaySettings:
    """Everything the relay service needs, checked: built once from the Config."""

    relay: Upstream | None
    forward: Upstream | None
    relay_all: bool
    matching: str
    mx: bool
    nameserver: tuple[str, int] | None
    retry_delay: float
    max_attempts: int

    @property
    def enabled(self) -> bool:
        return self.relay is not None


def settings(config: Any) -> RelaySettings:
    """Read and check the relay settings of a Config; ConfigError names what to fix."""
    from mailpit_py.config.values import split_hostport

    environ = dict(config.smtp_relay_env)
    relay = load_relay(config.smtp_relay_config, environ, mx=config.smtp_relay_mx)
    if relay is None and config.smtp_relay_mx:
        relay = Upstream()  # MX delivery needs no file: every key keeps its default
    forward = load_forward(config.smtp_forward_config, environ)
    if config.smtp_relay_all and config.smtp_relay_matching:
        raise ConfigError("--smtp-relay-all and --smtp-relay-matching cannot be used together")
    if (config.smtp_relay_all or config.smtp_relay_matching) and relay is None:
        raise ConfigError(
            "--smtp-relay-all/--smtp-relay-matching need a relay: give --smtp-relay-config, "
            "MP_SMTP_RELAY_HOST or --smtp-relay-mx"
        )
    if config.smtp_relay_matching:
        try:
            address_rule(config.smtp_relay_matching)
        except re.error as exc:
            raise ConfigError(f"--smtp-relay-matching is not a regular expression: {exc}") from None
    nameserver = None
    if config.smtp_relay_mx_nameserver:
        nameserver = split_hostport(config.smtp_relay_mx_nameserver, "--smtp-relay-mx-nameserver")
    if config.smtp_relay_retry_delay <= 0:
        raise ConfigError("--smtp-relay-retry-delay must be a positive duration such as 30s")
    if config.smtp_relay_max_attempts < 1:
        raise ConfigError("--smtp-relay-max-attempts must be 1 or more")
    return RelaySettings(
        relay=relay,
        forward=forward,
        relay_all=config.smtp_relay_all,
        matching=config.smtp_relay_matching,
        mx=config.smtp_relay_mx,
        nameserver=nameserver,
        retry_delay=config.smtp_relay_retry_delay,
        max_attempts=config.smtp_relay_max_attempts,
    )


def validate(config: Any) -> None:
    settings(config)
