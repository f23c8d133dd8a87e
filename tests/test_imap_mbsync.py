"""mbsync (isync) against the IMAP server: a real sync client that pulls, moves, flags and
uploads, as a user's laptop would; it needs every UIDPLUS answer and APPEND's flags."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import make_server, need_command, send_raw
from mailpit_py.server import Server


@pytest.fixture(autouse=True)
def _mbsync() -> None:
    need_command("mbsync", "isync", "the IMAP-sync tests")


def message(subject: str) -> bytes:
    head = f"From: Ann <ann@example.com>\r\nTo: bob@example.org\r\nSubject: {subject}\r\n"
    return f"{head}Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\nHello\r\n".encode()


def mbsync(mp: Server, home: Path) -> subprocess.CompletedProcess[str]:
    maildir = home / "mail"
    maildir.mkdir(exist_ok=True)
    config = home / "mbsyncrc"
    config.write_text(
        f"""IMAPAccount mailpit
Host 127.0.0.1
Port {mp.imap_address[1]}
User ann
Pass secret
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account mailpit

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel mail
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
"""
    )
    return subprocess.run(
        ["mbsync", "-c", str(config), "-a"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


def test_mbsync_pulls_moves_flags_and_uploads(tmp_path: Path) -> None:
    with make_server(imap_addr="127.0.0.1:0", imap_auth="ann:secret") as mp:
        first = send_raw(mp, message("first"))
        send_raw(mp, message("second"))
        mp.mailbox.set_tags([first], ["Work"])
        assert synced(mp, tmp_path) == {"INBOX": ["first", "second"], "Work": ["first"]}
        # On the laptop: "second" moved to Work and read, "first" flagged in INBOX, and a
        # new message written into Work.
        mail = tmp_path / "mail"
        (moved,) = [p for p in (mail / "INBOX").rglob("*,U=*") if b"second" in p.read_bytes()]
        moved.rename(mail / "Work" / "cur" / (moved.name.split(",U=")[0] + ":2,S"))
        (flagged,) = list((mail / "INBOX").rglob("*,U=*"))
        flagged.rename(flagged.with_name(flagged.name.split(":2,")[0] + ":2,F"))
        (mail / "Work" / "new" / "1.local").write_bytes(message("written here"))
        assert synced(mp, tmp_path) == {
            "INBOX": ["first"],
            "Work": ["first", "second", "written here"],
        }
        # The server: one "second", moved to Work (a folder of its own: not in INBOX), read.
        by_subject = {
            s["Subject"]: s for s in (mp.mailbox.summary(e.uid) for e in mp.mailbox.index())
        }
        assert sorted(by_subject) == ["first", "second", "written here"]
        assert by_subject["second"]["Tags"] == ["Work"] and by_subject["second"]["Read"]
        assert by_subject["written here"]["Tags"] == ["Work"]
        flags = mp.mailbox.imap_flags()
        first_uid = next(
            e.imap_uid for e in mp.mailbox.index() if e.uid == by_subject["first"]["ID"]
        )
        assert "\\Flagged" in flags[first_uid]
        # A sync with nothing new changes nothing (no duplicates either way).
        assert synced(mp, tmp_path) == {
            "INBOX": ["first"],
            "Work": ["first", "second", "written here"],
        }
        assert mp.mailbox.counts()[0] == 3


def synced(mp: Server, home: Path) -> dict[str, list[str]]:
    """Run mbsync, check that it succeeded without complaint; the subjects in each folder."""
    run = mbsync(mp, home)
    complaints = [
        line
        for line in (run.stdout + run.stderr).splitlines()
        if line.strip()
        and "Password is being sent in the clear" not in line
        and not line.startswith("Maildir notice:")  # its own bookkeeping
    ]
    assert run.returncode == 0 and not complaints, run.stdout + run.stderr
    folders: dict[str, list[str]] = {}
    for folder in sorted((home / "mail").iterdir()):
        subjects = []
        for path in folder.glob("*/*"):
            if path.parent.name in ("cur", "new"):
                subject = [
                    line for line in path.read_bytes().splitlines() if line.startswith(b"Subject:")
                ]
                subjects.append(subject[0].decode().split(": ", 1)[1])
        folders[folder.name] = sorted(subjects)
    return folders
