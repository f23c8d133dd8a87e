"""SpamAssassin check against a real spamd: Debian's /usr/sbin/spamd started on a free
port with a temporary home and site configuration (no network tests), Mailpit's sa-check
shape, scoring at ingest, and an unreachable spamd reported while the mail is still stored."""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import make_server, wait_until
from mailpit_py.checks import spamassassin
from mailpit_py.server import Server

SPAMD = os.environ.get("MAILPIT_PY_SPAMD", "/usr/sbin/spamd")
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def _need_spamd() -> None:
    if Path(SPAMD).is_file() and os.access(SPAMD, os.X_OK):
        return
    why = f"spamd is not installed at {SPAMD}"
    how = (
        "install it with `make test` (as root it runs `apt-get install -y spamassassin spamd`) "
        "or `sudo apt-get install spamd`; MAILPIT_PY_SPAMD points at another binary"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why}: the SpamAssassin tests must run in CI; {how}")
    pytest.skip(f"{why}: {how}")


def free_port() -> int:
    # spamd cannot listen on port 0 and say which port it got; a just-freed port is the way.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING SPAMC/1.5\r\n\r\n")
            return s.recv(64).startswith(b"SPAMD/")
    except OSError:
        return False


@pytest.fixture(scope="module")
def spamd() -> Iterator[str]:
    _need_spamd()
    # Run as root, spamd's children become `nobody`: the configuration must be readable to
    # them, which pytest's private (0700) temporary folders are not.
    base = Path(tempfile.mkdtemp(prefix="mailpit-py-spamd-"))
    base.chmod(0o755)
    site, home = base / "site", base / "home"
    site.mkdir()
    home.mkdir()
    for pre in Path("/etc/spamassassin").glob("*.pre"):
        shutil.copy(pre, site)  # the plugin list; the rules come from /usr/share/spamassassin
    (site / "local.cf").write_text(
        "use_bayes 0\nskip_rbl_checks 1\nuse_razor2 0\nuse_pyzor 0\ndns_available no\n"
    )
    port = free_port()
    log = (base / "spamd.log").open("wb")
    proc = subprocess.Popen(
        [
            SPAMD,
            "--listen",
            f"127.0.0.1:{port}",
            "--siteconfigpath",
            str(site),
            "--local",
            "--nouser-config",
            "--syslog",
            "stderr",
            "--min-children",
            "1",
            "--max-children",
            "2",
            "--pidfile",
            str(base / "spamd.pid"),
        ],
        env={**os.environ, "HOME": str(home)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: answers(port) or proc.poll() is not None, timeout=120, what="spamd to start"
        )
        if proc.poll() is not None:
            pytest.fail(f"spamd exited: {(base / 'spamd.log').read_text()[-2000:]}")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def get_json(mp: Server, path: str) -> Any:
    with urllib.request.urlopen(mp.http_url + path.lstrip("/"), timeout=60) as resp:
        return json.loads(resp.read())


def deliver(mp: Server, body: str, subject: str = "Hello") -> str:
    raw = (
        f"From: app@example.com\r\nTo: dev@example.org\r\nSubject: {subject}\r\n"
        f"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@example.com>\r\n"
        f"\r\n{body}\r\n"
    )
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.sendmail("app@example.com", ["dev@example.org"], raw.encode())
    return str(get_json(mp, "/api/v1/messages")["messages"][0]["ID"])


def test_gtube_is_spam_with_its_rule_and_description(spamd: str) -> None:
    with make_server(enable_spamassassin=spamd) as mp:
        uid = deliver(mp, f"Buy now!\r\n{GTUBE}", "gtube")
        assert mp.mailbox is not None
        # Scored at ingest by the checks worker, stored with the message.
        stored = wait_until(
            lambda: (mp.mailbox.checks(uid) or {}).get("SpamAssassin"), timeout=60, what="score"
        )
        report = get_json(mp, f"/api/v1/message/{uid}/sa-check")
        assert get_json(mp, "/api/v1/webui")["SpamAssassin"] is True
    assert report == stored
    assert report["IsSpam"] is True and report["Score"] >= 100 and report["Error"] == ""
    gtube = next(r for r in report["Rules"] if r["Name"] == "GTUBE")
    assert gtube["Score"] >= 100 and "Unsolicited Bulk Email" in gtube["Description"]


def test_a_plain_message_is_ham_with_its_rules_listed(spamd: str) -> None:
    with make_server(enable_spamassassin=spamd, disable_checks=True) as mp:
        uid = deliver(mp, "Hi, the build passed. See you tomorrow.", "ham")
        report = get_json(mp, f"/api/v1/message/{uid}/sa-check")  # scored on demand
    assert report["IsSpam"] is False and report["Error"] == ""
    assert report["Score"] < 5
    assert report["Rules"], "spamd lists at least its informational rules"
    for rule in report["Rules"]:
        assert rule["Name"].isupper() and isinstance(rule["Score"], float) and rule["Description"]


def test_unreachable_spamd_is_reported_and_the_mail_is_still_stored() -> None:
    port = free_port()
    with make_server(enable_spamassassin=f"127.0.0.1:{port}") as mp:
        uid = deliver(mp, "hello", "nospamd")  # the 250 came: stored
        report = get_json(mp, f"/api/v1/message/{uid}/sa-check")
        assert get_json(mp, f"/api/v1/message/{uid}")["Subject"] == "nospamd"
    assert report["IsSpam"] is False and report["Rules"] == []
    assert f"spamd at 127.0.0.1:{port} is unreachable" in report["Error"]


def test_sa_check_without_spamassassin_is_400_saying_how_to_enable_it() -> None:
    with make_server(disable_checks=True) as mp:
        uid = deliver(mp, "hello", "off")
        with pytest.raises(urllib.error.HTTPError) as err:
            get_json(mp, f"/api/v1/message/{uid}/sa-check")
        assert get_json(mp, "/api/v1/webui")["SpamAssassin"] is False
    assert err.value.code == 400
    assert "--enable-spamassassin" in err.value.read().decode()


def test_report_table_parsing_joins_wrapped_descriptions() -> None:
    text = (
        "Content analysis details:   (6.1 points, 5.0 required)\n\n"
        " pts rule name              description\n"
        "---- ---------------------- --------------------------------------------------\n"
        " 2.7 MISSING_DATE           Missing Date: header\n"
        " 3.4 SOME_LONG_RULE         A description that goes on and on and\n"
        "                            continues here\n"
        "-0.0 NO_RELAYS              Informational: message was not relayed via SMTP\n"
    )
    rules = spamassassin.parse_report(text)
    assert [(r["Name"], r["Score"]) for r in rules] == [
        ("MISSING_DATE", 2.7),
        ("SOME_LONG_RULE", 3.4),
        ("NO_RELAYS", -0.0),
    ]
    assert rules[1]["Description"].endswith("and on and continues here")


def test_the_smtp_250_does_not_wait_for_the_checks() -> None:
    # A spamd that holds every connection until told to let go: if the 250 waited on the
    # checks, sendmail would block until the release below, which runs only after it.
    release = threading.Event()
    held: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def hold() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            release.wait(60)
            conn.close()

    threading.Thread(target=hold, daemon=True).start()
    try:
        with make_server(enable_spamassassin=f"127.0.0.1:{port}") as mp:
            uid = deliver(mp, "hello", "nowait")  # returns on the 250
            assert mp.mailbox is not None
            wait_until(lambda: held, what="the checks to reach spamd")
            assert mp.mailbox.checks(uid) is None  # still checking, yet the mail is stored
            release.set()
            stored = wait_until(lambda: mp.mailbox.checks(uid), timeout=30, what="checks")
        assert "spamd at" in stored["SpamAssassin"]["Error"]
    finally:
        release.set()
        listener.close()
