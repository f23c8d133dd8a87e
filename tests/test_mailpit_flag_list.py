"""Every flag and MP_* variable of Mailpit's, as its source declares them (the snapshot in
tests/mailpit-flags.tsv), is taken by mailpit_py with the same variable, default and syntax."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace

import pytest

from helpers import REPO
from mailpit_py.cli import config_from
from mailpit_py.commands.sendmail import parse_args as sendmail_args
from mailpit_py.config.settings import OPTIONS, Config
from mailpit_py.config.sources import server_parser, settings_from
from mailpit_py.config.validate import UNSUPPORTED_ENV, notices

SNAPSHOT = REPO / "tests" / "mailpit-flags.tsv"


@dataclass(frozen=True)
class Flag:
    command: str
    long: str
    short: str
    kind: str
    default: str
    env: str
    deprecated_for: str


def _rows() -> tuple[list[Flag], list[tuple[str, str]]]:
    flags: list[Flag] = []
    envs: list[tuple[str, str]] = []
    for line in SNAPSHOT.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        cells = line.split("\t")
        if cells[0] == "flag":
            flags.append(Flag(*(cells[1:] + [""] * (8 - len(cells)))))
        else:
            envs.append((cells[1], cells[2] if len(cells) > 2 else ""))
    return flags, envs


FLAGS, ENVS = _rows()
ROOT = [f for f in FLAGS if f.command == "mailpit"]
BY_FIELD = {opt.field: opt for opt in OPTIONS}

# Mailpit's defaults that differ here on purpose (docs/mailpit-compatibility.md says why).
DEFAULT_DIFFERS = {"--compression": "raw messages are stored uncompressed unless it is given"}
# Variables Mailpit's source names that no one sets on purpose.
NOT_A_SETTING = {"MP_SMTP_SMTP_KEY": "a slip in Mailpit's source, read for MP_SMTP_SSL_KEY"}


def _given(flag: Flag) -> list[str]:
    """The flag as a Mailpit user writes it, with a value of its type."""
    if flag.kind == "bool":
        return [flag.long]
    return [flag.long, flag.default or ("1" if flag.kind == "int" else "x")]


def test_the_snapshot_is_mailpits_whole_list() -> None:
    text = SNAPSHOT.read_text()
    assert "Mailpit\n# v1.30.5" in text and "408b30d59709e3f2ed69c7748d900a2208cfbf9b" in text
    assert len(ROOT) >= 60 and len(ENVS) >= 100
    assert {f.command for f in FLAGS} == {
        "mailpit",
        "sendmail",
        "dump",
        "readyz",
        "version",
        "ingest",
    }


@pytest.mark.parametrize("flag", ROOT, ids=lambda f: f.long)
def test_each_server_flag_sets_what_its_mailpit_variable_sets(flag: Flag) -> None:
    parser = server_parser()
    base = vars(parser.parse_args([]))
    for argv in [_given(flag)] + ([[flag.short, *_given(flag)[1:]]] if flag.short else []):
        got = vars(parser.parse_args(argv))  # argparse exits on an unknown flag
        changed = [name for name, value in got.items() if value != base[name]]
        assert len(changed) == 1, (argv, changed)
    if flag.deprecated_for == "-":
        return  # does nothing in Mailpit either
    assert flag.env, flag
    assert BY_FIELD[changed[0]].env == flag.env, (flag.long, changed[0])


@pytest.mark.parametrize(
    "flag", [f for f in ROOT if f.default and f.kind != "bool"], ids=lambda f: f.long
)
def test_mailpits_default_given_by_hand_changes_nothing(flag: Flag) -> None:
    # (A switch's default, off, is checked with its variable below.)
    if flag.long in DEFAULT_DIFFERS:
        assert config_from(_given(flag), {}) != config_from([], {})
        return
    assert config_from(_given(flag), {}) == config_from([], {}), flag.long


@pytest.mark.parametrize(
    "flag", [f for f in ROOT if f.kind == "bool" and f.env], ids=lambda f: f.long
)
def test_switch_variables_read_mailpits_true_words(flag: Flag) -> None:
    parser = server_parser()
    on = settings_from(parser.parse_args([flag.long]), {})
    for word in ("1", "true", "yes", "TRUE", "Yes"):
        assert settings_from(parser.parse_args([]), {flag.env: word}) == on, word
    for word in ("0", "false", "no", ""):
        assert not any(settings_from(parser.parse_args([]), {flag.env: word}).values()), word


@pytest.mark.parametrize(("env", "deprecated_for"), ENVS, ids=lambda v: v or "-")
def test_every_mailpit_variable_is_known_or_named_as_unsupported(
    env: str, deprecated_for: str
) -> None:
    if env in NOT_A_SETTING:
        return
    said = notices(Config(), {env: "1"}, [])
    assert not [n for n in said if "not a variable mailpit_py knows" in n], said
    if env in UNSUPPORTED_ENV:
        assert said == [f"{env}: {UNSUPPORTED_ENV[env]}: ignored"]
    elif deprecated_for and deprecated_for != "-":
        assert said == [f"{env} is deprecated, as in Mailpit: use {deprecated_for}"]


# The positional arguments each sub-command needs besides its flags.
POSITIONAL = {"dump": ["out"], "ingest": ["in"], "readyz": [], "version": []}


@pytest.mark.parametrize(
    "flag", [f for f in FLAGS if f.command in POSITIONAL], ids=lambda f: f"{f.command} {f.long}"
)
def test_each_subcommand_flag_is_taken(flag: Flag) -> None:
    parser = importlib.import_module(f"mailpit_py.commands.{flag.command}").build_parser()
    for name in filter(None, (flag.long, flag.short)):
        value = [] if flag.kind == "bool" else [flag.default or "1"]
        parser.parse_args([name, *value, *POSITIONAL[flag.command]])  # exits when unknown


@pytest.mark.parametrize(
    "flag", [f for f in FLAGS if f.command == "sendmail"], ids=lambda f: f.short
)
def test_each_sendmail_flag_is_taken(flag: Flag) -> None:
    if flag.short in ("-b", "-s"):  # two switches Mailpit takes together only, as -bs
        assert sendmail_args(["-bs"]).smtp_mode
        return
    value = [] if flag.kind == "bool" else ["a@example.com" if flag.short == "-f" else "v"]
    opts = sendmail_args([flag.short, *value, "to@example.com"])
    assert opts.recipients == ["to@example.com"]  # a flag's value is never taken for one
    if not flag.long.startswith("--ignored"):
        opts = sendmail_args([flag.long, *value, "to@example.com"])
        assert opts.recipients == ["to@example.com"]


@pytest.mark.parametrize("env", [name for name, _ in ENVS], ids=str)
def test_a_variable_set_to_nothing_is_one_not_set_as_mailpit_reads_them(env: str) -> None:
    # Compose files template variables (`MP_SMTP_RELAY_HOST: ${RELAY:-}`): Mailpit starts
    # with its defaults; an empty value stopped start-up here ("'' is not a whole number").
    from mailpit_py.relay.config import settings

    unset = config_from([], {})
    empty = config_from([], {env: ""})
    assert replace(empty, smtp_relay_env=()) == unset
    assert settings(empty) == settings(unset)


@pytest.mark.parametrize("flag", [f for f in ROOT if f.kind == "bool"], ids=lambda f: f.long)
def test_a_switch_takes_gos_true_and_false_values(flag: Flag) -> None:
    # Go's flags take --switch=true / --switch=false (compose files write them so); argparse
    # refused any value for a switch with a usage error.
    parser = server_parser()
    on = settings_from(parser.parse_args([flag.long]), {})
    for word in ("true", "1", "T", "True"):
        assert settings_from(parser.parse_args([f"{flag.long}={word}"]), {}) == on, word
    if not flag.env:
        return
    # Given off, the switch wins over its variable, as a flag does in Mailpit.
    off = settings_from(parser.parse_args([f"{flag.long}=false"]), {flag.env: "true"})
    assert off and not any(off.values()), off
    with pytest.raises(SystemExit):
        parser.parse_args([f"{flag.long}=maybe"])
