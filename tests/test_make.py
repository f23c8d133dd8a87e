"""`make test`'s system setup says what it installs, and says what skips when it cannot install.

The sysdeps target runs here for real, with commands that do not exist standing for missing
Debian packages and a PATH without apt-get (so nothing is installed whatever the user).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import REPO, need_command


def sysdeps(tmp_path: Path, commands: str) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    assert make, "make is needed to run `make test` at all"
    # A PATH with `id` but without apt-get: the branch of a machine that cannot install.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").symlink_to(shutil.which("id") or "/usr/bin/id")
    return subprocess.run(
        [make, "-s", "-C", str(REPO), "sysdeps", f"DEBIAN_TEST_COMMANDS={commands}"],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sysdeps_without_apt_get_names_what_skips_and_the_command_to_install_it(
    tmp_path: Path,
) -> None:
    here = shutil.which("sh") or "/bin/sh"  # a command that exists: nothing to say about it
    proc = sysdeps(tmp_path, f"/nonexistent/mbsync {here} /nonexistent/chromium")
    assert proc.returncode == 0, proc.stderr  # the rest of `make test` still runs
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        "make test: no apt-get, so no Debian packages are installed and these tests will skip:"
    )
    assert "  the IMAP-sync tests (mbsync): /nonexistent/mbsync is missing" in lines
    assert "  the browser tests: /nonexistent/chromium is missing" in lines
    assert "  to run them, install the packages with: sudo apt-get install -y isync chromium" in (
        lines
    )
    assert "  (under CI=true they fail instead of skipping)" in lines
    assert here not in proc.stdout


def test_sysdeps_with_everything_present_says_so_in_one_line(tmp_path: Path) -> None:
    here = shutil.which("sh") or "/bin/sh"
    proc = sysdeps(tmp_path, here)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("make test: the Debian packages the tests use are installed (")
    assert len(proc.stdout.splitlines()) == 1


def test_the_makefile_lists_every_package_it_may_install_with_its_command() -> None:
    # Joined continuation lines: a make variable may be written over several.
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    for package, command in (
        ("chromium", "/usr/bin/chromium"),
        ("swaks", "/usr/bin/swaks"),
        ("spamd", "/usr/sbin/spamd"),
        ("isync", "/usr/bin/mbsync"),
        ("curl", "/usr/bin/curl"),
        ("postgresql", "/usr/lib/postgresql/*/bin/initdb"),
        ("haproxy", "/usr/sbin/haproxy"),
    ):
        packages = next(line for line in text.splitlines() if line.startswith("DEBIAN_TEST_PACK"))
        commands = next(line for line in text.splitlines() if line.startswith("DEBIAN_TEST_COMM"))
        assert package in packages.split() and command in commands.split()


def test_the_postgresql_server_is_found_by_a_glob_over_its_versions(tmp_path: Path) -> None:
    # Debian installs the server under its major version: any version's initdb will do.
    glob = f"{tmp_path}/lib/postgresql/*/bin/initdb"
    (tmp_path / "before").mkdir()
    proc = sysdeps(tmp_path / "before", glob)
    assert proc.returncode == 0, proc.stderr
    assert "  the PostgreSQL tests (a server they start): " + glob + " is missing" in (
        proc.stdout.splitlines()
    )
    assert "  to run them, install the packages with: sudo apt-get install -y postgresql" in (
        proc.stdout.splitlines()
    )
    initdb = tmp_path / "lib" / "postgresql" / "15" / "bin" / "initdb"
    initdb.parent.mkdir(parents=True)
    initdb.write_text("#!/bin/sh\n")
    initdb.chmod(0o755)
    (tmp_path / "after").mkdir()
    proc = sysdeps(tmp_path / "after", glob)
    assert proc.stdout.startswith("make test: the Debian packages the tests use are installed (")


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_missing_tool_fails_under_ci_and_skips_elsewhere(
    ci: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected) as info:
        need_command("mbsync", "isync", "the IMAP-sync tests")
    message = str(info.value)
    assert "mbsync is not installed" in message and "sudo apt-get install -y isync" in message
    assert ("the IMAP-sync tests must run in CI" in message) == bool(ci)
    monkeypatch.setenv("PATH", os.defpath)
    assert need_command("sh", "dash", "anything")  # present: its path, no skip
