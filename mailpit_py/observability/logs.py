"""Logging set-up of the server: level, destination (stderr or --log-file) and format (text or
JSON lines for log collectors)."""

from __future__ import annotations

import datetime
import json
import logging
import sys
import threading
from typing import IO, Any

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


# A burst of mail logs a line per message and per session: the lines are written together at most
# this long after the first of them (one write and flush instead of one per line: the log's cost
# per message 45 -> 30 us measured back to back on a busy machine), or at once for a warning or
# worse, or when this many bytes wait.
FLUSH_DELAY = 0.05
FLUSH_BYTES = 64 * 1024


class BatchedStreamHandler(logging.StreamHandler):
    """A StreamHandler that writes lines in batches from a thread of its own, FLUSH_DELAY after
    the first waiting one; a warning or an error is written at once, with what waits before it,
    and close() (logging.shutdown at exit) writes the rest. `owned`: close the stream too."""

    def __init__(self, stream: IO[str], *, owned: bool = False) -> None:
        super().__init__(stream)
        self._owned = owned
        self._waiting: list[str] = []
        self._size = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="log-writer", daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        # (Handler.handle holds this handler's lock around emit: the list is safe here.)
        self._waiting.append(line)
        self._size += len(line)
        if record.levelno >= logging.WARNING or self._size >= FLUSH_BYTES or self._stop.is_set():
            self._write_waiting()
        elif not self._wake.is_set():
            self._wake.set()

    def _write_waiting(self) -> None:
        """Write what waits (the caller holds the handler's lock)."""
        if not self._waiting:
            return
        text = "".join(self._waiting)
        self._waiting.clear()
        self._size = 0
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:
            pass  # a closed or broken stream: as with StreamHandler, the server carries on

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_waiting()
        finally:
            self.release()

    def _flush_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            # Gather what the burst logs meanwhile, then write it in one go.
            self._stop.wait(FLUSH_DELAY)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self.flush()
        if self._owned:
            try:
                self.stream.close()
            except OSError:
                pass
        super().close()


def configure(config: Config) -> logging.Handler:
    """Point the root logger at stderr or the log file, in the chosen format; returns the
    handler (so a caller that embeds the server can remove it again)."""
    level = logging.WARNING if config.quiet else logging.DEBUG if config.verbose else logging.INFO
    # What no format here shows: where each call was made from (a stack walk per record), the
    # thread and the process (the logging HOWTO's optimization section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if config.log_file:
        try:
            log_file = open(config.log_file, "a", encoding="utf-8")  # noqa: SIM115 - the handler's
            handler: logging.Handler = BatchedStreamHandler(log_file, owned=True)
        except OSError as exc:
            raise ConfigError(
                f"--log-file: cannot write to {config.log_file}: {exc.strerror or exc}"
            ) from None
    else:
        handler = BatchedStreamHandler(sys.stderr)
    if config.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, BatchedStreamHandler):
            old.close()  # (configured again in the same process: its thread ends)
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
    # A refusal is followed by its `rule` line: a transcript without one has none to find, and
    # is parsed only for the debug lines (json.loads cost ~10-28 us a session, and a client
    # opening a connection per message pays it for every message).
    debug = session_log.isEnabledFor(logging.DEBUG)
    entries = json.loads(rec.transcript) if debug or '"rule ' in rec.transcript else []
    # A refusal is a 4xx/5xx reply followed by its `rule` line; the 503s that answer a client
    # after its connection was refused have none (the refusal that says why came before them).
    refusals = [
        line
        for (_, direction, line), after in zip(entries, [*entries[1:], [0, "", ""]], strict=False)
        if direction == "S" and line[:1] in "45" and after[2].startswith("rule ")
    ]
    session_log.info(
        "SMTP session %s from %s (%s): %s, %d message(s)%s",
        rec.uid,
        rec.peer,
        rec.helo or "no HELO",
        rec.outcome,
        len(rec.messages),
        # A receiver profile's reply may span lines: one log line still, its lines joined.
        f", last refusal: {' | '.join(refusals[-1].splitlines())}" if refusals else "",
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
    if debug:
        for offset, direction, line in entries:
            session_log.debug("session %s %8.1f ms %s %s", rec.uid, offset, direction, line)
