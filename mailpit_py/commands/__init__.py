"""Sub-commands of `mailpit-py`: one module per command, each with main(argv)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

# name -> one-line summary; the module mailpit_py.commands.<name> has main(argv) -> int.
COMMANDS: dict[str, str] = {
    "sendmail": "a drop-in sendmail: read a message on stdin and send it to mailpit-py",
    "send": "send a test message and show the SMTP conversation (like swaks)",
    "ingest": "import .eml files, mbox files and Maildir folders",
    "dump": "export messages as .eml files",
    "migrate": "copy messages and sessions between stores (SQLite, PostgreSQL)",
    "reindex": "rebuild a database's search index from its messages (as Mailpit's)",
    "queue": "list the relay outbox like mailq (age, attempts, next try, last error)",
    "readyz": "exit 0 when an instance is ready (for Docker health checks)",
    "config": "print every setting, its effective value and where it came from",
    "receiver-profile": "list, print or check the receiver profiles of --receiver",
    "dkim-record": "print the DNS TXT record of a --dkim-sign key (for --dns-override)",
    "version": "print the version (as Mailpit's `version`)",
}


# 128 + SIGPIPE: how a shell reports a command whose reader went away (`yes | head`).
EXIT_BROKEN_PIPE = 141


def run(name: str, argv: Sequence[str]) -> int:
    """Run one sub-command with the arguments that follow its name.

    Output piped into a reader that stops early (`mailpit-py config | head -1`) ends the
    command quietly with 141, as coreutils do, instead of a BrokenPipeError traceback; this
    covers every command's printing, and the flush at exit too (argparse's --help exits).
    """
    module = importlib.import_module(f"mailpit_py.commands.{name.replace('-', '_')}")
    try:
        try:
            code = int(module.main(list(argv)))
        finally:
            sys.stdout.flush()  # a pipe that broke fails here, not in the interpreter's exit
    except BrokenPipeError:
        # Python's own advice: point stdout at /dev/null so its flush at exit fails no more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    return code


def summary() -> str:
    """The sub-command list shown at the end of `mailpit-py --help`."""
    width = max(len(n) for n in COMMANDS)
    lines = [f"  {n.ljust(width)}  {text}" for n, text in COMMANDS.items()]
    return (
        "commands (run `mailpit-py COMMAND --help` for each):\n"
        + "\n".join(lines)
        + "\n\nwithout a command, mailpit-py runs the server with the options above."
    )
