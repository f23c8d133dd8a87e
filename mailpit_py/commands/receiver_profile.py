"""`mailpit-py receiver-profile`: list the built-in receiver profiles, print one to copy, or
check a team's own file as start-up would."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib import resources

from mailpit_py.commands._common import error
from mailpit_py.receiver.profile import ProfileError, builtin_names, load

PROG = "mailpit-py receiver-profile"
EX_DATAERR = 65  # sysexits: the profile is not valid


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Without arguments, list the built-in receiver profiles (--receiver). With a name, "
            "print that profile's YAML, to copy and edit: `mailpit-py receiver-profile strict "
            "> ours.yml`, then --receiver ours.yml. With --check FILE, check a profile as "
            "start-up does and list its rules."
        ),
    )
    parser.add_argument("name", nargs="?", help="a built-in profile: " + ", ".join(builtin_names()))
    parser.add_argument("--check", metavar="FILE", help="check this profile and list its rules")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.check:
        try:
            profile = load(args.check)
        except ProfileError as exc:
            error(PROG, str(exc))
            return EX_DATAERR
        about = profile.description or "no description"
        print(f"{profile.name}: {len(profile.rules)} rules ({about})")
        for rule in profile.rules:
            print(f"  {rule.stage:<7} {rule.id:<24} {rule.code} {rule.status}  when {rule.verdict}")
        return 0
    if args.name:
        if args.name not in builtin_names():
            error(
                PROG, f"no built-in profile {args.name!r}: use one of {', '.join(builtin_names())}"
            )
            return 2
        folder = resources.files("mailpit_py.receiver").joinpath("profiles")
        print(folder.joinpath(f"{args.name}.yml").read_text("utf-8"), end="")
        return 0
    for name in builtin_names():
        profile = load(name)
        print(f"{name:<11} {len(profile.rules):>2} rules  {profile.description}")
    return 0
