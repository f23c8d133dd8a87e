"""Every `--flag` the README and docs/ show exists: a reader who copies a command gets no
'unrecognized arguments', and a flag renamed in the code cannot stay behind in a page."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache

from helpers import REPO
from mailpit_py.config.sources import ALIAS_FLAGS as _ALIASES

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Mailpit's deprecated spellings, which the server still takes.
ALIAS_FLAGS = frozenset(_ALIASES)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*\*?")
# Other programs' commands the pages show; their flags are theirs to keep.
FOREIGN = {"docker", "kubectl", "curl", "swaks", "openssl", "helm", "chromium", "psql"}


def help_text(*argv: str, script: str | None = None) -> str:
    cmd = [sys.executable, script] if script else [sys.executable, "-m", "mailpit_py"]
    done = subprocess.run([*cmd, *argv, "--help"], capture_output=True, text=True, cwd=REPO)
    assert done.stdout, f"{' '.join(cmd + list(argv))} --help printed nothing: {done.stderr}"
    return done.stdout


@cache
def flags_of(command: str) -> frozenset[str]:
    """The long flags `mailpit-py COMMAND --help` lists ("" for the server itself)."""
    return frozenset(FLAG.findall(help_text(command) if command else help_text()))


@cache
def subcommands() -> tuple[str, ...]:
    listing = help_text().split("\ncommands", 1)[1]
    return tuple(re.findall(r"^  ([a-z][a-z-]+)  ", listing, re.M))


@cache
def bench_flags(script: str) -> frozenset[str]:
    return frozenset(FLAG.findall(help_text(script=str(REPO / script))))


@cache
def pytest_flags() -> frozenset[str]:
    plugin = (REPO / "mailpit_py" / "pytest_plugin.py").read_text()
    return frozenset(re.findall(r'addoption\(\s*"(--[a-z-]+)"', plugin))


@cache
def every_flag() -> frozenset[str]:
    """A flag shown without its command must be one of ours: the server's, a command's, a
    deprecated Mailpit spelling the server still takes, the pytest plugin's or a benchmark's."""
    bench = [path.relative_to(REPO).as_posix() for path in sorted((REPO / "bench").glob("*.py"))]
    shown = "\n".join(page.read_text() for page in PAGES)
    named = [script for script in bench if script in shown]
    return frozenset().union(
        flags_of(""),
        *(flags_of(sub) for sub in subcommands()),
        ALIAS_FLAGS,
        pytest_flags(),
        *(bench_flags(script) for script in named),
    )


def known(flag: str, allowed: frozenset[str]) -> bool:
    if flag.endswith("*"):  # `--mailbox-*`: a family of flags
        return any(f.startswith(flag[:-1]) for f in allowed)
    return flag in allowed


def commands(page_text: str) -> list[str]:
    """Each command line of a page's code (fenced blocks and `spans`), continuations joined."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", page_text, re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", page_text, flags=re.S))
    lines = []
    for code in [*blocks, *spans]:
        code = code.replace("\\\n", " ")
        lines += [part.strip() for part in re.split(r"\n|&&|\|\||[|;]", code) if part.strip()]
    return lines


def unknown_flags(line: str) -> list[str]:
    words = line.split()
    if words and words[0] in FOREIGN:
        return []
    if (m := re.search(r"(?:^|[\s/])mailpit-py(?:\s+([a-z][a-z-]*))?(.*)", line)) or (
        m := re.search(r"(?:^|\s)python -m mailpit_py(?:\s+([a-z][a-z-]*))?(.*)", line)
    ):
        sub = m.group(1) if m.group(1) in subcommands() else ""
        allowed = flags_of(sub) | ALIAS_FLAGS
        if sub == "config":  # prints the settings the server's own options give
            allowed |= flags_of("")
        rest = m.group(2) if sub else (m.group(1) or "") + m.group(2)
        return [f for f in FLAG.findall(rest) if not known(f, allowed)]
    if m := re.search(r"(bench/[a-z_]+\.py)(.*)", line):
        return [f for f in FLAG.findall(m.group(2)) if not known(f, bench_flags(m.group(1)))]
    return [f for f in FLAG.findall(line) if not known(f, every_flag())]


def test_every_flag_the_pages_show_exists() -> None:
    lines = [(page, line) for page in PAGES for line in commands(page.read_text())]
    shown = sum(len(FLAG.findall(line)) for _, line in lines)
    assert shown > 200, f"only {shown} flags found in the pages' code: is the scan broken?"
    stale = [
        f"{page.relative_to(REPO)}: {flag} in `{line}`"
        for page, line in lines
        for flag in unknown_flags(line)
    ]
    assert not stale, "flags that no command has:\n" + "\n".join(stale)


def test_the_check_catches_a_stale_flag() -> None:
    # The test above would pass on a scan that found nothing: these must be caught.
    assert unknown_flags("mailpit-py --no-such-flag") == ["--no-such-flag"]
    assert unknown_flags("mailpit-py dump out/ --smtp-auth-file x") == ["--smtp-auth-file"]
    assert unknown_flags("`--mailpit-url`") == []
    assert unknown_flags("--nope-*") == ["--nope-*"]
    assert unknown_flags("mailpit-py config --mailbox-config f") == []
    assert "--database" in flags_of("migrate") or "--from" in flags_of("migrate")
