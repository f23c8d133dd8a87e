"""`mailpit-py version`: print the version, as Mailpit's `version` sub-command does."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mailpit_py import __version__
from mailpit_py.commands._common import error

PROG = "mailpit-py version"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Print the version of mailpit-py (the same as --version)."
    )
    # Mailpit's flags: this build never looks online, and it is updated by its installer.
    parser.add_argument(
        "-u", "--update", action="store_true", help="not here: update with pip (it says how)"
    )
    parser.add_argument(
        "--no-release-check",
        action="store_true",
        help="accepted as in Mailpit; mailpit-py never checks online for releases",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.update:
        error(PROG, "mailpit-py does not update itself: run `pip install --upgrade mailpit-py`")
        return 2
    print(f"mailpit-py {__version__}")
    return 0
