"""Flags and MP_* variables -> Config field values, read through the settings table."""

from __future__ import annotations

import argparse
from argparse import SUPPRESS
from collections.abc import Mapping
from typing import Any

from mailpit_py import __version__
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import OPTIONS, Config
from mailpit_py.config.values import FALSE_WORDS, TRUE_WORDS

# Mailpit's hidden, deprecated spellings: alias -> (Config field or "" for none, current name).
# Each still works as in Mailpit, and start-up warns with the current name (config/validate.py).
ALIAS_FLAGS: dict[str, tuple[str, str]] = {
    "--db-file": ("database", "--database"),
    "--ui-ssl-cert": ("ui_tls_cert", "--ui-tls-cert"),
    "--ui-ssl-key": ("ui_tls_key", "--ui-tls-key"),
    "--smtp-ssl-cert": ("smtp_tls_cert", "--smtp-tls-cert"),
    "--smtp-ssl-key": ("smtp_tls_key", "--smtp-tls-key"),
    "--smtp-tls-required": ("smtp_require_starttls", "--smtp-require-starttls"),
    "--disable-html-check": ("", ""),
}
ALIAS_ENV: dict[str, tuple[str, str]] = {
    "MP_DATA_FILE": ("database", "MP_DATABASE"),
    "MP_UI_SSL_CERT": ("ui_tls_cert", "MP_UI_TLS_CERT"),
    "MP_UI_SSL_KEY": ("ui_tls_key", "MP_UI_TLS_KEY"),
    "MP_SMTP_SSL_CERT": ("smtp_tls_cert", "MP_SMTP_TLS_CERT"),
    "MP_SMTP_SSL_KEY": ("smtp_tls_key", "MP_SMTP_TLS_KEY"),
    "MP_STRICT_RFC_HEADERS": ("smtp_strict_rfc_headers", "MP_SMTP_STRICT_RFC_HEADERS"),
    "MP_SMTP_TLS_REQUIRED": ("smtp_require_starttls", "MP_SMTP_REQUIRE_STARTTLS"),
    "MP_DISABLE_HTML_CHECK": ("", ""),
}
_BOOLEAN_ALIASES = {"--smtp-tls-required", "--disable-html-check"}

# The values Go's flag parser takes for a switch written --flag=VALUE (strconv.ParseBool),
# and the words the MP_* variables take.
_SWITCH_ON = TRUE_WORDS | {"t"}
_SWITCH_OFF = (FALSE_WORDS - {""}) | {"f"}


class ServerParser(argparse.ArgumentParser):
    """argparse, plus Mailpit's `--switch=true` / `--switch=false` (a compose file's
    `--smtp-auth-allow-insecure=true`): argparse refuses a value for a switch."""

    switches: dict[str, str]  # long switch flag -> its dest

    def parse_known_args(  # type: ignore[override]
        self, args: Any = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        import sys

        given = list(sys.argv[1:] if args is None else args)
        rewritten, off = [], []
        for index, arg in enumerate(given):
            if arg == "--":
                rewritten.extend(given[index:])
                break
            name, sep, value = arg.partition("=")
            if sep and name in self.switches:
                word = value.strip().lower()
                if word in _SWITCH_ON:
                    rewritten.append(name)
                    continue
                if word in _SWITCH_OFF:
                    off.append(self.switches[name])  # given off: it wins over the variable
                    continue
                self.error(f"{name}: {value!r} is not true or false")
            rewritten.append(arg)
        parsed, extras = super().parse_known_args(rewritten, namespace)
        for dest in off:
            if getattr(parsed, dest, None) is None:
                setattr(parsed, dest, False)
        return parsed, extras


def server_parser(epilog: str = "") -> argparse.ArgumentParser:
    """The parser of `mailpit-py [OPTIONS]`: one flag per row of the table, help from the row."""
    defaults = Config()
    parser = ServerParser(
        prog="mailpit-py",
        description="A local-development mail catcher: every message sent to the SMTP port is "
        "stored, never delivered. Each option can also be set by the environment variable "
        "shown. A switch also takes a value, as in Mailpit: --disable-wal=true, =false.",
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
        elif opt.repeat:
            parser.add_argument(
                *opt.flags,
                dest=opt.field,
                default=None,
                action="append",
                help=text,
                metavar=opt.metavar,
            )
        else:
            parser.add_argument(
                *opt.flags, dest=opt.field, default=None, help=text, metavar=opt.metavar
            )
    for alias, (name, _current) in ALIAS_FLAGS.items():
        dest = name or alias.lstrip("-").replace("-", "_")
        if alias in _BOOLEAN_ALIASES:
            parser.add_argument(alias, dest=dest, action="store_true", default=None, help=SUPPRESS)
        else:
            parser.add_argument(alias, dest=dest, default=None, help=SUPPRESS)
    parser.add_argument("--version", action="version", version=f"mailpit-py {__version__}")
    parser.switches = {
        flag: action.dest
        for action in parser._actions
        if action.nargs == 0 and action.const is True  # the store_true switches
        for flag in action.option_strings
        if flag.startswith("--")
    }
    return parser


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """The fields set by flags or MP_* variables: flags win over variables, which win over
    defaults (a field set by neither is left out)."""
    # A variable set to nothing is one not set, as Mailpit reads them all (a compose file's
    # `MP_MAX_MESSAGES: ${KEEP:-}` keeps the default); a switch's empty value is off anyway.
    environ = {name: value for name, value in environ.items() if value != ""}
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        raw = getattr(args, opt.field)
        source = opt.flags[-1]
        if raw is None and opt.env not in environ:
            # A deprecated variable of Mailpit's stands in for the current one.
            for alias, (name, _current) in ALIAS_ENV.items():
                if name == opt.field and alias in environ:
                    raw, source = environ[alias], alias
                    if opt.boolean:
                        raw = raw.strip().lower() in TRUE_WORDS
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
        elif isinstance(raw, list) and opt.convert is not None:  # a repeated flag (repeat)
            values[opt.field] = tuple(v for one in raw for v in opt.convert(one, source))
        elif opt.convert is not None:
            values[opt.field] = opt.convert(raw, source)
        else:
            values[opt.field] = raw
    return values
