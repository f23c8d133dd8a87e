"""Parsers of setting values (addresses, sizes, durations, networks); each raises ConfigError."""

from __future__ import annotations

import ipaddress
import os
import re

from mailpit_py.config.errors import ConfigError

# The words an on/off MP_* variable may hold, as Mailpit reads them.
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


def parse_networks(
    value: str, flag: str
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`10.0.0.0/8, ::1 192.168.1.7` -> networks (a bare address is a /32 or /128)."""
    nets = []
    for item in re.split(r"[,\s]+", value.strip()):
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"{flag}: {item!r} is not an IP address or CIDR network: use e.g. "
                "127.0.0.1, 10.0.0.0/8 or fd00::/8"
            ) from None
    return tuple(nets)


def normalize_webroot(value: str, flag: str = "--webroot") -> str:
    """`mail`, `/mail`, `/mail/` -> `/mail/` (Mailpit accepts each form)."""
    parts = [p for p in value.strip().split("/") if p]
    return "/" + "".join(p + "/" for p in parts)


def split_hostport(value: str, flag: str = "address") -> tuple[str, int]:
    """Split `host:port`, `[v6]:port` or `:port` (all interfaces) into a bindable pair."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.%a-zA-Z]+)\]:(\d+)|([^:\[\]]*):(\d+)", value.strip())
    if not m:
        raise ConfigError(
            f"{flag}: {value!r} is not an address: use HOST:PORT, e.g. 127.0.0.1:1025, "
            "[::1]:1025 or 0.0.0.0:1025"
        )
    host = m.group(1) if m.group(1) is not None else m.group(3)
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise ConfigError(f"{flag}: port {port} is out of range (0-65535)")
    return host or "0.0.0.0", port


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2}
_SIZE_UNITS |= {"g": 1024**3, "gb": 1024**3}


def parse_size(value: str, flag: str = "size") -> int:
    """`52428800`, `50MB`, `512k` -> bytes (binary multiples, as Mailpit uses)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ConfigError(f"{flag}: {value!r} is not a size: use bytes or a unit, e.g. 50MB, 512k")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_message_size(value: str, flag: str = "--max-message-size") -> int:
    """`10` -> 10 MB in bytes, as Mailpit reads the flag (0 = unlimited); a size with a unit
    (`512KB`, `10MB`, `1000b`) is our extension, read as parse_size reads it."""
    text = str(value).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return int(float(text) * 1024**2)
    try:
        return parse_size(text, flag)
    except ConfigError:
        raise ConfigError(
            f"{flag}: {value!r} is not a size: use megabytes as Mailpit does (10 = 10 MB, "
            "0 = unlimited) or a unit, e.g. 512KB or 50MB"
        ) from None


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str, flag: str = "duration") -> float:
    """`90`, `30s`, `5m`, `12h`, `3d`, `1h30m` -> seconds."""
    text = str(value).strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw]?)", text)
    if not text or not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"{flag}: {value!r} is not a duration: use e.g. 30s, 12h, 3d or 1h30m")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def age_limit(value: str, flag: str) -> float | None:
    """--max-age: a duration in seconds; 0 (0h, 0d) is no limit, as Mailpit reads it."""
    return parse_duration(value, flag) or None


def max_recipients(value: str, flag: str) -> int:
    """--smtp-max-recipients: 0 is Mailpit's default of 100, as its SMTP server reads it."""
    return parse_int(value, flag) or 100


def parse_int(value: str, flag: str) -> int:
    """`42` -> 42; anything else names the flag or variable it came from."""
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{flag}: {value!r} is not a whole number") from None


def optional_text(value: str, flag: str) -> str | None:
    """An empty value means the setting is off (None), as for a database or override file."""
    return value or None


def database_path(value: str, flag: str) -> str | None:
    """--database: empty is none (a temporary file); an existing folder means the file
    mailpit.db in it, as Mailpit reads `--database /data`."""
    if value and os.path.isdir(value):
        return os.path.join(value, "mailpit.db")
    return value or None


def one_line(value: str, flag: str) -> str:
    """Runs of white space, line breaks included, made one space and the ends trimmed, as
    Mailpit normalizes --label: it is sent in a webhook's Mailpit-Label header."""
    return " ".join(value.split())


def parse_zones(value: str, flag: str) -> tuple[str, ...]:
    """`zen.spamhaus.org, dbl.example` -> the DNS zones, blanks dropped."""
    return tuple(z.strip() for z in value.split(",") if z.strip())


def parse_semicolon_list(value: str, flag: str) -> tuple[str, ...]:
    """`a; b;c` -> ("a", "b", "c"), blanks dropped: the values of a repeatable flag (given
    more than once, they come ;-joined) or of its variable."""
    return tuple(item.strip() for item in value.split(";") if item.strip())


def parse_prometheus(value: str, flag: str) -> str:
    """`true`/`false` (Mailpit's boolean) or a listen address for a separate listener."""
    text = value.strip()
    if text.lower() in TRUE_WORDS:
        return "true"
    if text.lower() in FALSE_WORDS:
        return ""
    return text


# The SMTP AUTH mechanisms the server implements (RFC 4954; CRAM-MD5 is RFC 2195).
AUTH_MECHANISMS = ("CRAM-MD5", "LOGIN", "PLAIN")


def parse_auth_mechanisms(value: str, flag: str) -> str:
    """`PLAIN LOGIN`, `plain,login` -> `LOGIN PLAIN` (known names, upper case, in a fixed order);
    empty means every mechanism the credentials can check."""
    names = {item.upper() for item in re.split(r"[,\s]+", value.strip()) if item}
    unknown = sorted(names - set(AUTH_MECHANISMS))
    if unknown:
        raise ConfigError(
            f"{flag}: unknown mechanism {', '.join(unknown)}: the known ones are "
            f"{', '.join(AUTH_MECHANISMS)} (a list such as 'PLAIN LOGIN' or 'PLAIN,LOGIN')"
        )
    return " ".join(m for m in AUTH_MECHANISMS if m in names)
