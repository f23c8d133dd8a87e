"""`mailpit-py config`: every setting, its effective value and where it came from."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from mailpit_py.commands._common import error
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import OPTIONS
from mailpit_py.config.sources import ALIAS_ENV, ALIAS_FLAGS, server_parser

PROG = "mailpit-py config"

EXAMPLES = """\
Takes the same options and MP_* variables as the server, so it shows what `mailpit-py` with
them would use. Like `postconf -n`, it is the first thing to check when mail misbehaves.

examples:
  mailpit-py config
  MP_MAX_MESSAGES=10 mailpit-py config --changed
  mailpit-py config --smtp 0.0.0.0:2525 --json
"""

# Settings whose value is a secret: passwords, tokens, and inline credential lists such as
# smtp_auth (MP_SMTP_AUTH's user:password pairs). A file path or an on/off switch is not one.
_SECRET = re.compile(r"pass|secret|token|(^|_)auth$", re.I)


def mask(name: str, value: Any) -> Any:
    """Secrets never print: a field named like one, or a password inside a URL."""
    if value in (None, "") or isinstance(value, bool | int | float):
        return value
    if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        # (name, value) pairs such as smtp_relay_env: each masked by its own name.
        return [[k, mask(k, v)] for k, v in value]
    if _SECRET.search(name):
        return "********"
    if isinstance(value, str):
        return re.sub(r"(://[^:/@\s]+:)[^@/\s]+@", r"\1********@", value)
    return value


def effective(argv: Sequence[str], environ: dict[str, str]) -> list[dict[str, Any]]:
    """One row per Config field: name, value, source ("default", "MP_X" or "--flag")."""
    # The server's own parser and loader, so the values and errors are those it would have; the
    # loader imports the features to validate them, so it loads only when the command runs.
    from mailpit_py.config.validate import load

    args = server_parser().parse_args(argv)
    config = load(args, environ)  # raises ConfigError with the usual message
    by_field = {opt.field: opt for opt in OPTIONS}
    rows = []
    for f in fields(config):
        opt = by_field.get(f.name)
        source = "default"
        if opt is not None:
            # Mailpit's deprecated spellings (--db-file, MP_DATA_FILE...) count as sources too.
            aliases = tuple(a for a, (name, _) in ALIAS_FLAGS.items() if name == f.name)
            alias_env = [a for a, (name, _) in ALIAS_ENV.items() if name == f.name and a in environ]
            if getattr(args, f.name) is not None:
                source = _flag_used(argv, opt.flags + aliases)
            elif opt.env in environ:
                source = f"environment {opt.env}"
            elif alias_env:
                source = f"environment {alias_env[0]}"
        rows.append(
            {
                "field": f.name,
                "value": mask(f.name, getattr(config, f.name)),
                "source": source,
                "flag": opt.flags[-1] if opt else "",
                "env": opt.env if opt else "",
            }
        )
    return rows


def _flag_used(argv: Sequence[str], flags: tuple[str, ...]) -> str:
    for arg in reversed(list(argv)):
        for flag in flags:
            if arg == flag or arg.startswith(flag + "="):
                return f"flag {flag}"
    return f"flag {flags[-1]}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [--changed] [--json] [SERVER OPTIONS]",
        description="Print every setting with its effective value and where it came from: "
        "default, environment variable MP_*, or flag. Secrets are masked.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--changed", action="store_true", help="only settings not at their default")
    parser.add_argument("--json", action="store_true", help="print a JSON list of rows")
    return parser


def main(argv: Sequence[str]) -> int:
    own, server_argv = build_parser().parse_known_args(argv)
    try:
        rows = effective(server_argv, dict(os.environ))
    except ConfigError as exc:
        error(PROG, str(exc))
        return 2
    from mailpit_py.config.validate import load, notices

    # What the server would warn of at start (options without effect, unknown MP_* variables).
    environ = dict(os.environ)
    config = load(server_parser().parse_args(server_argv), environ)
    for text in notices(config, environ, server_argv):
        print(f"{PROG}: warning: {text}", file=sys.stderr)
    if own.changed:
        rows = [r for r in rows if r["source"] != "default"]
    if own.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    width = max((len(r["field"]) for r in rows), default=0)
    for r in rows:
        value = "(none)" if r["value"] is None else json.dumps(r["value"])
        print(f"{r['field'].ljust(width)} = {value}  # {r['source']}")
    return 0
