"""Receiver profiles as data: every built-in one loads, a team's YAML file is used as given,
and a bad profile stops start-up saying what is wrong and where (CLI and Server alike)."""

from __future__ import annotations

import re
import smtplib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_checks_spamassassin import GTUBE, spamd  # noqa: F401 (fixture)

from helpers import REPO, make_server
from mailpit_py.cli import config_from
from mailpit_py.config.errors import ConfigError
from mailpit_py.receiver.profile import VERDICTS, builtin_names, load

OWN = """\
name: corp
description: our gateway
settings:
  timeout: 5
rules:
  - id: no-date
    when: date-invalid
    code: 554
    status: 5.6.0
    text:
      - "Message from {mail_from} has no valid Date header"
      - "see https://wiki.example/mail"
"""


def test_every_builtin_profile_loads_and_cites_a_source_for_each_rule() -> None:
    assert builtin_names() == ["gmail", "outlook", "permissive", "strict", "yahoo"]
    for name in builtin_names():
        profile = load(name)
        assert profile.name == name
        for rule in profile.rules:
            assert rule.source.startswith("https://"), (name, rule.id)
            assert rule.verdict in VERDICTS
    assert load("permissive").permissive and not load("gmail").permissive


def test_a_teams_own_profile_file_refuses_with_its_own_multiline_reply(tmp_path: Path) -> None:
    path = tmp_path / "corp.yml"
    path.write_text(OWN)
    raw = b"From: a@corp.test\r\nTo: b@corp.test\r\nSubject: no date\r\n\r\nhi\r\n"
    with make_server(receiver=str(path)) as mp, smtplib.SMTP(*mp.smtp_address) as client:
        client.ehlo()
        client.mail("a@corp.test")
        client.rcpt("b@corp.test")
        code, text = client.data(raw)
        dated = b"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n" + raw
        assert client.sendmail("a@corp.test", ["b@corp.test"], dated) == {}  # a Date passes
    assert (code, text.decode()) == (
        554,
        "5.6.0 Message from a@corp.test has no valid Date header\n"
        "5.6.0 see https://wiki.example/mail",
    )


BAD = [
    ("name: x\nrules: [\n", "line 3 column 1: not valid YAML"),
    (
        "name: x\nrules:\n  - when: dmarc-reject\n    code: 250\n    status: 2.0.0\n    text: ok\n",
        "line 3, rule 1: code: 250 is not a refusal: use a 4xx or 5xx code",
    ),
    (
        "name: x\nrules:\n  - when: dmarc-rejected\n    code: 550\n    status: 5.7.1\n"
        "    text: refused\n",
        "line 3, rule 1: when: 'dmarc-rejected' is not a verdict: use one of dnsbl-listed,",
    ),
    (
        "name: x\nrules:\n  - when: dmarc-reject\n    code: 550\n    status: 4.7.1\n"
        "    text: refused\n",
        "status: '4.7.1' must be an enhanced status code of the same class as code 550",
    ),
    (
        "name: x\nrules:\n  - when: dmarc-reject\n    stage: mail\n    code: 550\n"
        "    status: 5.7.1\n"
        "    text: refused\n",
        "dmarc-reject is known at data at the earliest, not at mail",
    ),
    (
        "name: x\nrules:\n  - when: dmarc-reject\n    code: 550\n    status: 5.7.1\n"
        "    text: 'from {sender}'\n",
        "text: unknown placeholder {sender}: use",
    ),
    (
        "name: x\nrules:\n  - when: dnsbl-listed\n    code: 554\n    status: 5.7.1\n"
        "    text: refused\n",
        "a dnsbl-listed rule needs settings.dnsbl",
    ),
    (
        "name: x\nrules:\n  - when: dmarc-reject\n    code: 550\n    status: 5.7.1\n"
        "    text: 'from {ip:>99999}'\n",
        "text: write placeholders as {name}, without : or !",
    ),
    (
        "name: x\nrules:\n  - when: dmarc-reject\n    code: 550\n    status: 5.7.1\n"
        "    text: refused\n    source: javascript:alert(1)\n",
        "source: an http:// or https:// address, not 'javascript:alert(1)'",
    ),
    ("name: x\ncolour: red\n", "the profile has unknown key 'colour'"),
    (
        "name: x\nsettings:\n  bulk: sometimes\n",
        "line 3: settings.bulk: one of headers, all, never",
    ),
]


@pytest.mark.parametrize(("text", "error"), BAD)
def test_a_bad_profile_stops_start_up_saying_what_and_where(
    tmp_path: Path, text: str, error: str
) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        make_server(receiver=str(path))
    assert str(info.value).startswith(str(path)), info.value
    assert error in str(info.value)


def test_an_unknown_profile_name_lists_the_builtin_ones() -> None:
    with pytest.raises(
        ConfigError,
        match="--receiver: 'hotmail' is not a receiver profile: use "
        "one of gmail, outlook, permissive, strict, yahoo, or the path",
    ):
        config_from(["--receiver", "hotmail"], {})
    with pytest.raises(ConfigError, match="cannot read the profile '/nowhere/p.yml'"):
        config_from([], {"MP_RECEIVER": "/nowhere/p.yml"})


def test_the_cli_refuses_a_bad_profile_and_config_shows_the_settings(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\nrules:\n  - when: nothing\n")
    run = subprocess.run(
        [sys.executable, "-m", "mailpit_py", "--receiver", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert run.returncode != 0
    assert f"{bad} line 3, rule 1: when: 'nothing' is not a verdict" in run.stderr
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailpit_py",
            "config",
            "--receiver",
            "gmail",
            "--smtp-listener",
            "mx=127.0.0.1:2525,auth=off",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert shown.returncode == 0, shown.stderr
    assert "gmail" in shown.stdout and "mx=127.0.0.1:2525,auth=off" in shown.stdout


@pytest.fixture(scope="module")
def spam_profile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("profile") / "spam.yml"
    path.write_text(
        "name: spamcheck\nsettings:\n  spam_threshold: 5\nrules:\n  - when: spam-score\n"
        "    code: 550\n    status: 5.7.1\n"
        "    text: 'Spam (score {score}, threshold {threshold})'\n"
    )
    yield path


def test_spam_score_over_the_threshold_is_refused_with_the_score(
    spamd: str,  # noqa: F811
    spam_profile: Path,
) -> None:
    raw = f"From: a@b.test\r\nTo: c@d.test\r\nSubject: win\r\n\r\n{GTUBE}\r\n".encode()
    with (
        make_server(receiver=str(spam_profile), enable_spamassassin=spamd) as mp,
        smtplib.SMTP(*mp.smtp_address) as client,
    ):
        client.ehlo()
        client.mail("a@b.test")
        client.rcpt("c@d.test")
        code, text = client.data(raw)
    assert code == 550
    # GTUBE scores 1000 and a little more, depending on the rules installed
    assert re.fullmatch(r"5\.7\.1 Spam \(score 10\d\d(\.\d+)?, threshold 5\)", text.decode())


def test_a_receiver_that_cannot_decide_in_time_accepts_and_says_so(tmp_path: Path) -> None:
    # A spamd that takes the connection and never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    profile = tmp_path / "slow.yml"
    profile.write_text(
        "name: slow\nsettings:\n  timeout: 0.5\nrules:\n  - when: spam-score\n"
        "    code: 550\n    status: 5.7.1\n    text: spam\n"
    )
    try:
        with make_server(
            receiver=str(profile),
            enable_spamassassin=f"127.0.0.1:{silent.getsockname()[1]}",
            disable_checks=True,  # the background checks would wait on the silent spamd too
        ) as mp:
            with smtplib.SMTP(*mp.smtp_address) as client:
                client.ehlo()
                client.mail("a@b.test")
                client.rcpt("c@d.test")
                code, reply = client.data(b"From: a@b.test\r\nSubject: x\r\n\r\nhi\r\n")
            assert code == 250
            uid = reply.decode().rsplit(" ", 1)[1]
            assert mp.mailbox is not None
            lines = [line for _, _, line in mp.mailbox.get(uid).transcript]
    finally:
        silent.close()
    assert "receiver slow: no verdict within 0.5s: accepted" in lines


def test_the_receiver_profile_command_lists_prints_and_checks(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailpit_py", "receiver-profile", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )

    listed = run()
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == builtin_names()
    copy = tmp_path / "ours.yml"
    copy.write_text(run("strict").stdout)
    checked = run("--check", str(copy))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[0].startswith("strict: 12 rules")
    assert "  rcpt    spf-fail" in checked.stdout
    assert load(str(copy)).rules == load("strict").rules  # the copy is the same profile
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\nrules:\n  - when: nothing\n")
    refused = run("--check", str(bad))
    assert refused.returncode == 65
    assert f"{bad} line 3, rule 1: when: 'nothing' is not a verdict" in refused.stderr
