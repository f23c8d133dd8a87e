"""Flags and MP_* variables -> Config field values, read through the settings table."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from mailpit_py import __version__
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import OPTIONS, Config
from mailpit_py.config.values import FALSE_WORDS, TRUE_WORDS


def server_parser(epilog: str = "") -> argparse.ArgumentParser:
    """The parser of `mailpit-py [OPTIONS]`: one flag per row of the table, help from the row."""
    defaults = Config()
    parser = argparse.ArgumentParser(
        prog="mailpit-py",
        description="A local-development mail catcher: every message sent to the SMTP port is "
        "stored, never delivered. Each option can also be set by the environment variable "
        "shown.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for opt in OPTIONS:
        default = getattr(defaults, opt.field)
        shown = "" if default in (None, "", False) else f" (default: {default})"
        text = f"{opt.help}{shown} [env {opt.env}]"
        if opt.boolean:
            parser.add_argument(
                *opt.flags, dest=opt.field, action="store_true", default=None, help=text
            )
        elif opt.const is not None:
            parser.add_argument(
                *opt.flags,
                dest=opt.field,
                default=None,
                help=text,
                metavar=opt.metavar,
                nargs="?",
                const=opt.const,
            )
        else:
            parser.add_argument(
                *opt.flags, dest=opt.field, default=None, help=text, metavar=opt.metavar
            )
    parser.add_argument("--version", action="version", version=f"mailpit-py {__version__}")
    return parser


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """The fields set by flags or MP_* variables: flags win over variables, which win over
    defaults (a field set by neither is left out)."""
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        raw = getattr(args, opt.field)
        source = opt.flags[-1]
        if raw is None and opt.env in environ:
            raw, source = environ[opt.env], opt.env
            if opt.boolean:
                if raw.strip().lower() not in TRUE_WORDS | FALSE_WORDS:
                    raise ConfigError(f"{opt.env}: {raw!r} is not true or false")
                raw = raw.strip().lower() in TRUE_WORDS
        if raw is None:
            continue
        if opt.boolean:
            values[opt.field] = bool(raw)
        elif opt.convert is not None:
            values[opt.field] = opt.convert(raw, source)
        else:
            values[opt.field] = raw
    return values
