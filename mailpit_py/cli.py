"""Command line: flags and MP_* environment variables -> Config -> a running Server."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailpit_py import __version__, commands
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import Config
from mailpit_py.config.sources import server_parser
from mailpit_py.net.loopthread import AddressInUse
from mailpit_py.observability import logs as logsetup
from mailpit_py.store.records import StoreError

if TYPE_CHECKING:
    from mailpit_py.server import Server

log = logging.getLogger("mailpit_py")


def build_parser() -> argparse.ArgumentParser:
    """The server's parser, its help ending with the list of sub-commands."""
    return server_parser(epilog=commands.summary())


def config_from(argv: Sequence[str] | None, environ: dict[str, str]) -> Config:
    """Flags win over MP_* variables, which win over defaults; the result is validated."""
    args = build_parser().parse_args(argv)
    # Validation imports the features (Flask among them): only once the arguments parsed, so
    # `--help`, a usage error and the light sub-commands stay quick.
    from mailpit_py.config.validate import load

    return load(args, environ)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a sub-command (`mailpit-py sendmail ...`), or else the server."""
    if argv is None:
        argv = sys.argv[1:]
        # Installed or linked as `sendmail`: behave as sendmail.
        if os.path.basename(sys.argv[0]) == "sendmail":
            return commands.run("sendmail", argv)
    argv = list(argv)
    if argv and argv[0] in commands.COMMANDS:
        return commands.run(argv[0], argv[1:])
    return serve(argv)


def settle_gc() -> None:
    """Take what start-up built out of the garbage collector's view, once the server runs.

    The ~90,000 objects of the imported modules (Flask, aiosmtpd, dnspython...) live as long as
    the process, yet every full collection walked them all: a 47 ms stop of every thread. Over
    a 4,000-message burst collections took 65 ms, 20 ms with them frozen. Only the CLI's own
    process does this; the pytest fixture leaves its host's collector alone.
    """
    gc.collect()  # what start-up left as garbage is freed, not frozen for good
    gc.freeze()


def listening_everywhere(server: Server) -> list[str]:
    """The listeners (SMTP, HTTP) bound to every interface rather than one address."""
    wide = ("::", "0.0.0.0", "")
    names = []
    if server.smtp is not None and server.smtp.address[0] in wide:
        names.append("SMTP")
    if server.http is not None and server.http.address[0] in wide:
        names.append("HTTP")
    return names


def serve(argv: Sequence[str]) -> int:
    from mailpit_py.config.validate import notices
    from mailpit_py.server import Server  # heavy imports after argument errors are reported

    environ = dict(os.environ)
    try:
        config = config_from(argv, environ)
    except ConfigError as exc:
        print(f"mailpit-py: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    server = Server(config)
    try:
        logsetup.configure(config)
        for text in notices(config, environ, list(argv)):
            log.warning(text, extra={"event": "config"})
        server.start()
    except (AddressInUse, StoreError, ConfigError) as exc:
        print(f"mailpit-py: error: {exc}", file=sys.stderr)
        return 2
    assert server.mailbox is not None
    settle_gc()
    db = server.mailbox.database_path
    where = "temporary, removed at exit" if config.database is None else "kept"
    smtp_where = server.smtp.address_text if server.smtp else "?"
    if config.smtp_addr.startswith("unix:"):
        smtp_where = config.smtp_addr  # as Mailpit's start line names a Unix socket
    http_where = server.http_url
    if server.http is not None and config.http_addr.startswith("unix:"):
        http_where = server.http.where
    log.info(
        "mailpit-py %s: SMTP on %s, web UI and API on %s, database %s (%s)",
        __version__,
        smtp_where,
        http_where,
        db,
        where,
        extra={
            "event": "start",
            "smtp": smtp_where,
            "http": http_where,
            "database": db,
        },
    )
    exposed = listening_everywhere(server)
    if exposed:
        # Mailpit's default, which containers rely on; on a laptop it is worth saying out loud.
        log.info(
            "%s listening on every network interface (IPv4 and IPv6 where available); to keep "
            "it local: --smtp 127.0.0.1:1025 --listen 127.0.0.1:8025",
            " and ".join(exposed),
            extra={"event": "interfaces", "all_interfaces": exposed},
        )
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    log.info("shutting down")
    server.stop()
    return 0
