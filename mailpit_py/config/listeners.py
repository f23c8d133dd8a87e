"""More SMTP listeners (--smtp-listener): the spec syntax, read into one value per listener."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailpit_py.config.errors import ConfigError
from mailpit_py.config.values import split_hostport

TLS_MODES = ("off", "optional", "starttls", "implicit")
AUTH_MODES = ("", "off", "optional", "required")
EXAMPLE = "e.g. submission=0.0.0.0:587,tls=starttls,auth=required"


@dataclass(frozen=True)
class ListenerSpec:
    """One listener: its name, address, TLS mode (off, optional: STARTTLS offered, starttls:
    required before mail, implicit: TLS from the first byte), AUTH mode ("" as the credentials
    say), receiver profile ("" for --receiver's) and the mailbox its mail goes to ("" as the
    other routes say; docs/mailboxes.md)."""

    name: str
    addr: str
    tls: str = "off"
    auth: str = ""
    receiver: str = ""
    mailbox: str = ""


def parse_listener_list(value: str, flag: str) -> tuple[str, ...]:
    """`a=...;b=...` (the variable, or repeated flags joined) -> one spec text per listener,
    each checked now so that a typo stops start-up naming the flag."""
    specs = tuple(part.strip() for part in value.split(";") if part.strip())
    for spec in specs:
        parse_listener(spec, flag)
    return specs


def parse_listener(spec: str, flag: str = "--smtp-listener") -> ListenerSpec:
    head, *options = [p.strip() for p in spec.split(",")]
    name, eq, addr = head.partition("=")
    name = name.strip()
    if not eq or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,31}", name) or name == "default":
        raise ConfigError(
            f"{flag}: {spec!r} must start with NAME=ADDR, NAME a word of letters, digits, - or _ "
            f"other than default (the --smtp listener's), {EXAMPLE}"
        )
    split_hostport(addr.strip(), f"{flag} {name}")
    values = {"tls": "off", "auth": "", "receiver": "", "mailbox": ""}
    for option in options:
        key, eq, val = option.partition("=")
        key, val = key.strip().lower(), val.strip()
        if not eq or key not in values:
            raise ConfigError(
                f"{flag} {name}: {option!r} is not an option: use tls=, auth=, receiver= or "
                "mailbox=, " + EXAMPLE
            )
        allowed = {"tls": TLS_MODES, "auth": AUTH_MODES[1:]}.get(key)
        if allowed is not None and val.lower() not in allowed:
            raise ConfigError(f"{flag} {name}: {key}={val!r}: use one of {', '.join(allowed)}")
        if key in ("receiver", "mailbox") and not val:
            what = "a profile name or file" if key == "receiver" else "a mailbox name"
            raise ConfigError(f"{flag} {name}: {key}= needs {what}")
        values[key] = val.lower() if allowed else val
    return ListenerSpec(
        name, addr.strip(), values["tls"], values["auth"], values["receiver"], values["mailbox"]
    )
