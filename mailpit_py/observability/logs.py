"""Logging set-up of the server: level, destination (stderr or --log-file) and format (text or
JSON lines for log collectors)."""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any

from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import Config
from mailpit_py.store.records import SessionRecord

session_log = logging.getLogger("mailpit_py.session")

# Attributes every LogRecord has; anything else on a record came from `extra=` and is data.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(config: Config) -> logging.Handler:
    """Point the root logger at stderr or the log file, in the chosen format; returns the
    handler (so a caller that embeds the server can remove it again)."""
    level = logging.WARNING if config.quiet else logging.DEBUG if config.verbose else logging.INFO
    if config.log_file:
        try:
            handler: logging.Handler = logging.FileHandler(config.log_file, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"--log-file: cannot write to {config.log_file}: {exc.strerror or exc}"
            ) from None
    else:
        handler = logging.StreamHandler(sys.stderr)
    if config.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # aiosmtpd logs every command at INFO; ours says what matters once per session and message.
    logging.getLogger("mail.log").setLevel(logging.DEBUG if config.verbose else logging.ERROR)
    return handler


def log_session(rec: SessionRecord) -> None:
    """One info line per SMTP session (its outcome and the refusals it got, with the fields a
    log collector wants), then the whole conversation at debug."""
    if not session_log.isEnabledFor(logging.INFO):
        return  # (--quiet) reading the transcript back costs more than the session's own log
    entries = json.loads(rec.transcript)
    # A refusal is a 4xx/5xx reply followed by its `rule` line; the 503s that answer a client
    # after its connection was refused have none (the refusal that says why came before them).
    refusals = [
        line
        for (_, direction, line), after in zip(entries, [*entries[1:], [0, "", ""]], strict=True)
        if direction == "S" and line[:1] in "45" and after[2].startswith("rule ")
    ]
    session_log.info(
        "SMTP session %s from %s (%s): %s, %d message(s)%s",
        rec.uid,
        rec.peer,
        rec.helo or "no HELO",
        rec.outcome,
        len(rec.messages),
        f", last refusal: {refusals[-1]}" if refusals else "",
        extra={
            "event": "session",
            "id": rec.uid,
            "peer": rec.peer,
            "helo": rec.helo,
            "tls": rec.tls,
            "username": rec.username,
            "outcome": rec.outcome,
            "messages": list(rec.messages),
            "refusals": refusals,
        },
    )
    if session_log.isEnabledFor(logging.DEBUG):
        for offset, direction, line in entries:
            session_log.debug("session %s %8.1f ms %s %s", rec.uid, offset, direction, line)
