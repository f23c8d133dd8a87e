"""The one settings object: a frozen Config, its value parsers and validation."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path

DEFAULT_MAX_MESSAGE_SIZE = 50 * 1024 * 1024


class ConfigError(ValueError):
    """A setting that cannot work; the message says which and how to fix it."""


@dataclass(frozen=True)
class Config:
    """Every setting of a mailpit_py instance; the CLI maps flags and MP_* variables onto it."""

    smtp_addr: str = "127.0.0.1:1025"
    http_addr: str = "127.0.0.1:8025"
    webroot: str = "/"  # URL path prefix of the UI and API, e.g. "/mail/"
    database: str | None = None  # None: a temporary file removed at exit; ":memory:" in memory
    max_messages: int = 500  # 0 = unlimited
    max_age: float | None = None  # seconds; None = keep regardless of age
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    smtp_max_recipients: int = 100
    smtp_timeout: float = 300.0  # idle seconds before 421 (RFC 5321 section 4.5.3.2.7)
    # The greeting names this host; gethostname() asks no DNS (peers stall on lookups here).
    smtp_hostname: str = field(default_factory=socket.gethostname)
    session_history: int = 1000  # SMTP sessions kept, newest first
    label: str = ""
    quiet: bool = False
    verbose: bool = False
    # --- observability and integrations (issue 8) ---
    enable_prometheus: str = ""  # "": off; "true": /metrics on the UI listener; or ADDR:PORT
    webhook_url: str = ""  # POST each new message's summary here
    webhook_limit: int = 1  # webhook requests per second (0 = no limit), as Mailpit
    log_file: str = ""  # append logs to this file instead of stderr
    log_format: str = "text"  # text or json (one JSON object per line)
    # --- web UI and API access control (issue 5) ---
    ui_auth_file: str = ""  # htpasswd-style user:password lines (bcrypt allowed) for UI and API
    ui_auth: str = ""  # the same as space-separated user:password pairs (MP_UI_AUTH)
    send_api_auth_file: str = ""  # the send API's own credentials (else the UI's)
    send_api_auth: str = ""  # the same, inline (MP_SEND_API_AUTH)
    send_api_auth_accept_any: bool = False  # the send API needs no credentials
    ui_tls_cert: str = ""  # PEM file or sans:host1,host2 (self-signed): serve HTTPS
    ui_tls_key: str = ""

    def validate(self) -> Config:
        """Raise ConfigError for settings that cannot work; return self for chaining."""
        split_hostport(self.smtp_addr, "--smtp")
        split_hostport(self.http_addr, "--listen")
        if not re.fullmatch(r"/([A-Za-z0-9._~!$&'()*+,;=:@%-]+/)*", self.webroot):
            raise ConfigError(
                f"--webroot: {self.webroot!r} is not a URL path: use e.g. / or /mail/"
            )
        if self.max_messages < 0:
            raise ConfigError("--max must be 0 (unlimited) or a positive number of messages")
        if self.max_age is not None and self.max_age <= 0:
            raise ConfigError("--max-age must be a positive duration such as 12h or 3d")
        if self.max_message_size <= 0:
            raise ConfigError("--max-message-size must be a positive size such as 50MB")
        if self.smtp_max_recipients <= 0:
            raise ConfigError("--smtp-max-recipients must be a positive number")
        if self.smtp_timeout <= 0:
            raise ConfigError("--smtp-timeout must be a positive duration such as 300s or 5m")
        if self.session_history < 0:
            raise ConfigError("--smtp-session-history must be 0 or a positive number")
        # --- observability and integrations (issue 8) ---
        if self.enable_prometheus not in ("", "true"):
            split_hostport(self.enable_prometheus, "--enable-prometheus (true, false or ADDR:PORT)")
        if self.webhook_url and not re.match(r"https?://[^/\s]+", self.webhook_url):
            raise ConfigError(
                f"--webhook-url: {self.webhook_url!r} is not an http:// or https:// URL"
            )
        if self.webhook_limit < 0:
            raise ConfigError("--webhook-limit must be 0 (no limit) or requests per second")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"--log-format: {self.log_format!r} is not text or json")
        # --- web UI and API access control (issue 5) ---
        from mailpit_py.credentials import Credentials  # it imports this module

        for path, flag in (
            (self.ui_auth_file, "--ui-auth-file"),
            (self.send_api_auth_file, "--send-api-auth-file"),
        ):
            if path:
                Credentials.load(path, flag)
        for inline, env in ((self.ui_auth, "MP_UI_AUTH"), (self.send_api_auth, "MP_SEND_API_AUTH")):
            if inline.strip():
                Credentials.parse(inline, env)
        if self.ui_tls_key and not self.ui_tls_cert:
            raise ConfigError("--ui-tls-key needs --ui-tls-cert (the certificate it belongs to)")
        if self.ui_tls_cert and not self.ui_tls_cert.startswith("sans:"):
            if not self.ui_tls_key:
                raise ConfigError(
                    "--ui-tls-key is needed with --ui-tls-cert (or use --ui-tls-cert sans:HOST "
                    "for a self-signed certificate)"
                )
            for path, flag in (
                (self.ui_tls_cert, "--ui-tls-cert"),
                (self.ui_tls_key, "--ui-tls-key"),
            ):
                if not Path(path).is_file():
                    raise ConfigError(f"{flag}: {path} does not exist or is not a file")
        return self


def normalize_webroot(value: str, flag: str = "--webroot") -> str:
    """`mail`, `/mail`, `/mail/` -> `/mail/` (Mailpit accepts each form)."""
    parts = [p for p in value.strip().split("/") if p]
    return "/" + "".join(p + "/" for p in parts)


def field_names() -> list[str]:
    return [f.name for f in fields(Config)]


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


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str, flag: str = "duration") -> float:
    """`90`, `30s`, `5m`, `12h`, `3d`, `1h30m` -> seconds."""
    text = str(value).strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw]?)", text)
    if not text or not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"{flag}: {value!r} is not a duration: use e.g. 30s, 12h, 3d or 1h30m")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
