"""Sub-commands of the CLI: sendmail, readyz, ingest, dump and config against real servers."""

from __future__ import annotations

import hashlib
import json
import mailbox as stdlib_mailbox
import os
import re
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import MESSAGES, REPO, make_server
from mailpit_py.cli import main
from mailpit_py.server import Server


def run(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "mailpit_py", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with make_server(max_messages=0) as mp:
        yield mp


@pytest.fixture()
def mp(server: Server) -> Server:
    assert server.mailbox is not None
    server.mailbox.delete_all()
    return server


@pytest.fixture()
def dead_addr() -> Iterator[str]:
    """An address where nothing listens: bound, never listening, so connecting is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def smtp_addr(mp: Server) -> str:
    host, port = mp.smtp_address
    return f"{host}:{port}"


def stored(mp: Server) -> list[tuple[dict, bytes]]:
    """(message as the API shows it, raw bytes), oldest first."""
    assert mp.mailbox is not None
    out = []
    for s in reversed(mp.mailbox.list_messages(0, 1000)):
        out.append((mp.mailbox.get(s["ID"]).to_api(), mp.mailbox.raw(s["ID"])))
    return out


# -- sendmail ---------------------------------------------------------------------------------


def test_sendmail_sends_to_explicit_recipients_with_crlf_and_stops_at_a_lone_dot(
    mp: Server,
) -> None:
    msg = b"From: App <app@example.com>\nTo: someone@example.com\nSubject: hi\n\nline\n.\nlost\n"
    res = run(
        "sendmail",
        "a@example.com, b@example.com",
        "c@example.com",
        stdin=msg,
        env={"MP_SENDMAIL_SMTP_ADDR": smtp_addr(mp)},
    )
    assert res.returncode == 0, res.stderr
    [(api, raw)] = stored(mp)
    assert api["Envelope"]["From"] == "app@example.com"
    assert api["Envelope"]["To"] == ["a@example.com", "b@example.com", "c@example.com"]
    assert raw == msg.split(b".\n")[0].replace(b"\n", b"\r\n")


def test_sendmail_t_takes_recipients_from_headers_f_sets_sender_and_oi_keeps_dots(
    mp: Server,
) -> None:
    msg = (
        b"From: app@example.com\nTo: A <a@example.com>\nCc: b@example.com\n"
        b"Bcc: hidden@example.com\nSubject: t\n\none\n.\ntwo\n"
    )
    res = run(
        "sendmail", "--smtp-addr", smtp_addr(mp), "-t", "-oi", "-fbounce@example.com", stdin=msg
    )
    assert res.returncode == 0, res.stderr
    [(api, raw)] = stored(mp)
    assert api["Envelope"]["From"] == "bounce@example.com"
    assert sorted(api["Envelope"]["To"]) == ["a@example.com", "b@example.com", "hidden@example.com"]
    assert raw.endswith(b"one\r\n.\r\ntwo\r\n")


def test_sendmail_t_reads_utf8_addresses_in_the_headers(mp: Server) -> None:
    # RFC 6532 headers: raw UTF-8 addresses went out as U+FFFD replacement characters, so the
    # envelope named a recipient that does not exist.
    msg = "From: Jürgen <jürgen@example.com>\nTo: Zoë <zoë@example.com>\nSubject: u\n\nx\n"
    res = run("sendmail", "--smtp-addr", smtp_addr(mp), "-t", stdin=msg.encode())
    assert res.returncode == 0, res.stderr
    [(api, _raw)] = stored(mp)
    assert api["Envelope"]["From"] == "jürgen@example.com"
    assert api["Envelope"]["To"] == ["zoë@example.com"]


def test_sendmail_bs_speaks_smtp_on_stdin_and_stdout(mp: Server) -> None:
    script = (
        b"EHLO client.test\nMAIL FROM:<x@example.com>\nRCPT TO:<y@example.com>\nDATA\n"
        b"Subject: via -bs\n\nbody\n.\nQUIT\n"
    )
    res = run("sendmail", "-bs", "-S", smtp_addr(mp), stdin=script)
    assert res.returncode == 0, res.stderr
    replies = re.findall(rb"^(\d{3})[ -]", res.stdout, re.M)
    assert replies[0] == b"220" and b"354" in replies and replies[-1] == b"221"
    [(api, raw)] = stored(mp)
    assert api["Subject"] == "via -bs"
    assert api["Envelope"]["To"] == ["y@example.com"]


def test_sendmail_works_when_invoked_as_sendmail(mp: Server, tmp_path: Path) -> None:
    script = tmp_path / "sendmail"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
        "from mailpit_py.cli import main\nraise SystemExit(main())\n"
    )
    script.chmod(0o755)
    res = subprocess.run(
        [str(script), "-t", "--smtp-addr", smtp_addr(mp)],
        input=b"To: argv0@example.com\nSubject: argv0\n\nhi\n",
        capture_output=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert [api["Subject"] for api, _ in stored(mp)] == ["argv0"]


def test_sendmail_exit_codes_follow_sysexits(dead_addr: str) -> None:
    msg = b"Subject: x\n\nx\n"
    no_rcpt = run("sendmail", "--smtp-addr", dead_addr, stdin=msg)
    assert no_rcpt.returncode == 64 and b"no recipients" in no_rcpt.stderr
    bad_opt = run("sendmail", "-Z", "a@example.com", stdin=msg)
    assert bad_opt.returncode == 64 and b"unknown option -Z" in bad_opt.stderr
    refused = run("sendmail", "--smtp-addr", dead_addr, "a@example.com", stdin=msg)
    assert refused.returncode == 75
    assert dead_addr.encode() in refused.stderr and b"--smtp-addr" in refused.stderr
    bs = run("sendmail", "-bs", "--smtp-addr", dead_addr, stdin=b"QUIT\n")
    assert bs.returncode == 75 and bs.stdout.startswith(b"421 ")


def test_sendmail_maps_a_permanent_refusal_to_ex_unavailable() -> None:
    with make_server(max_message_size=200) as small:
        res = run(
            "sendmail",
            "--smtp-addr",
            smtp_addr(small),
            "a@example.com",
            stdin=b"Subject: big\n\n" + b"x" * 1000 + b"\n",
        )
        assert res.returncode == 69, res.stderr
        assert b"552" in res.stderr


def test_sendmail_help_has_examples(capsys) -> None:
    assert main(["sendmail", "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "-bs" in out and "MP_SENDMAIL_SMTP_ADDR" in out


# -- readyz -----------------------------------------------------------------------------------


def test_readyz_exits_0_when_the_instance_is_ready(mp: Server, capsys) -> None:
    assert main(["readyz", "--url", mp.http_url]) == 0
    assert "ready" in capsys.readouterr().out


def test_readyz_exits_1_and_says_where_when_nothing_answers(dead_addr: str, capsys) -> None:
    assert main(["readyz", "--url", f"http://{dead_addr}/", "--wait", "0.3"]) == 1
    err = capsys.readouterr().err
    assert dead_addr in err and "--url" in err and "waited 0.3s" in err


def test_readyz_default_url_follows_the_server_variables() -> None:
    from mailpit_py.commands.readyz import default_url

    assert default_url({}) == "http://127.0.0.1:8025/"
    env = {"MP_UI_BIND_ADDR": "0.0.0.0:9000", "MP_WEBROOT": "mail"}
    assert default_url(env) == "http://127.0.0.1:9000/mail/"


# -- config -----------------------------------------------------------------------------------


def test_config_shows_each_field_with_its_source(monkeypatch, capsys) -> None:
    monkeypatch.setenv("MP_MAX_MESSAGES", "7")
    monkeypatch.delenv("MP_LABEL", raising=False)
    assert main(["config", "--label", "ci", "-s", "127.0.0.1:2525"]) == 0
    lines = capsys.readouterr().out.splitlines()
    from mailpit_py.config.settings import field_names

    assert [line.split()[0] for line in lines] == field_names()
    text = "\n".join(lines)
    assert re.search(r"^max_messages += 7  # environment MP_MAX_MESSAGES$", text, re.M)
    assert re.search(r'^label += "ci"  # flag --label$', text, re.M)
    assert re.search(r'^smtp_addr += "127.0.0.1:2525"  # flag -s$', text, re.M)
    assert re.search(r"^max_message_size += 52428800  # default$", text, re.M)


def test_config_changed_json_and_bad_values(monkeypatch, capsys) -> None:
    for name in list(os.environ):
        if name.startswith("MP_"):
            monkeypatch.delenv(name)
    assert main(["config", "--changed", "--json", "--max", "3"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {
            "field": "max_messages",
            "value": 3,
            "source": "flag --max",
            "flag": "--max",
            "env": "MP_MAX_MESSAGES",
        }
    ]
    assert main(["config", "--max-message-size", "lots"]) == 2
    assert "--max-message-size" in capsys.readouterr().err


def test_config_masks_secrets() -> None:
    from mailpit_py.commands.config import mask

    assert mask("smtp_auth_password", "hunter2") == "********"
    assert mask("smtp_auth", "ann:pw bob:pw2") == "********"
    assert mask("MP_UI_AUTH", "ann:pw") == "********"
    assert mask("smtp_auth_accept_any", True) is True  # a switch is not a secret
    assert mask("smtp_auth_file", "/etc/mail/users") == "/etc/mail/users"
    assert mask("relay_url", "smtp://bob:hunter2@host:25") == "smtp://bob:********@host:25"
    assert mask("label", "plain") == "plain"


# -- ingest and dump ------------------------------------------------------------------------------


def corpus_files() -> list[Path]:
    """The hand-written test messages: CRLF and bare-LF ones, well-formed and malformed."""
    return sorted(MESSAGES.glob("*.eml"))


def test_ingest_a_folder_of_eml_over_smtp(mp: Server, capsys) -> None:
    folder = MESSAGES
    expected = len(list(folder.rglob("*.eml")))
    assert main(["ingest", "--smtp-addr", smtp_addr(mp), str(folder)]) == 0
    assert f"{expected} imported" in capsys.readouterr().out
    assert mp.mailbox is not None and mp.mailbox.counts()[0] == expected


def test_ingest_a_maildir_and_an_mbox(mp: Server, tmp_path: Path, capsys) -> None:
    files = corpus_files()
    md = stdlib_mailbox.Maildir(str(tmp_path / "Maildir"), create=True)
    for f in files[:4]:
        md.add(f.read_bytes())
    box = stdlib_mailbox.mbox(str(tmp_path / "archive.mbox"), create=True)
    for f in files[4:9]:
        box.add(f.read_bytes())
    box.close()
    code = main(
        [
            "ingest",
            "--smtp-addr",
            smtp_addr(mp),
            str(tmp_path / "Maildir"),
            str(tmp_path / "archive.mbox"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "9 imported" in out and "0 failed" in out
    assert mp.mailbox is not None and mp.mailbox.counts()[0] == 9
    subjects = {api["Subject"] for api, _ in stored(mp)}
    assert len(subjects) > 1


def test_ingest_goes_on_past_bad_files_and_summarizes(tmp_path: Path, capsys) -> None:
    db = tmp_path / "mail.db"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.eml").write_bytes(b"")
    (tmp_path / "in" / "notes.txt").write_text("not mail")
    (tmp_path / "in" / "ok.eml").write_bytes(b"To: a@example.com\r\nSubject: ok\r\n\r\nok\r\n")
    code = main(
        ["ingest", "--database", str(db), str(tmp_path / "missing.eml"), str(tmp_path / "in")]
    )
    captured = capsys.readouterr()
    assert code == 66
    assert "missing.eml: no such file" in captured.err
    assert "1 imported" in captured.out
    assert "2 skipped (" in captured.out
    assert "1 not an .eml file" in captured.out and "1 empty" in captured.out
    assert "1 failed (1 no such file or folder)" in captured.out


def test_ingest_into_a_refused_address_exits_75_and_says_where(dead_addr: str, capsys) -> None:
    code = main(["ingest", "--smtp-addr", dead_addr, str(corpus_files()[0])])
    assert code == 75
    err = capsys.readouterr().err
    assert dead_addr in err and "--smtp-addr" in err


def test_database_ingest_then_dump_is_byte_exact(tmp_path: Path, capsys) -> None:
    files = corpus_files()
    db = tmp_path / "mail.db"
    assert main(["ingest", "--database", str(db), *map(str, files)]) == 0
    assert main(["dump", "--database", str(db), str(tmp_path / "out")]) == 0
    dumped = sorted((tmp_path / "out").glob("*.eml"))
    assert len(dumped) == len(files)
    digest = lambda data: hashlib.sha256(data).hexdigest()  # noqa: E731
    assert sorted(digest(p.read_bytes()) for p in dumped) == sorted(
        digest(f.read_bytes()) for f in files
    )
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+\.eml", p.name) for p in dumped)


def test_dump_from_the_api_then_ingest_round_trips_raw_bytes(
    mp: Server, tmp_path: Path, capsys
) -> None:
    # Over SMTP the wire is CRLF, so compare files that already are CRLF throughout.
    files = [
        f
        for f in corpus_files()
        if re.search(rb"(?<!\r)\n", f.read_bytes()) is None and f.read_bytes().endswith(b"\r\n")
    ]
    assert files
    originals = sorted(f.read_bytes() for f in files)
    assert main(["ingest", "--smtp-addr", smtp_addr(mp), *map(str, files)]) == 0
    assert main(["dump", "--url", mp.http_url, str(tmp_path / "out")]) == 0
    assert sorted(p.read_bytes() for p in (tmp_path / "out").glob("*.eml")) == originals
    assert mp.mailbox is not None
    mp.mailbox.delete_all()
    assert main(["ingest", "--smtp-addr", smtp_addr(mp), str(tmp_path / "out")]) == 0
    assert sorted(raw for _, raw in stored(mp)) == originals


def test_dump_query_filters_and_errors_are_clear(
    mp: Server, tmp_path: Path, dead_addr: str, capsys
) -> None:
    for subject in ("alpha one", "beta two", "alpha three"):
        assert mp.mailbox is not None
        raw = f"To: a@example.com\r\nSubject: {subject}\r\n\r\nx\r\n".encode()
        from mailpit_py.models import Envelope

        mp.mailbox.deliver(Envelope("s@example.com", ("a@example.com",)), raw).result()
    assert (
        main(["dump", "--url", mp.http_url, "--query", "subject:alpha", str(tmp_path / "a")]) == 0
    )
    assert len(list((tmp_path / "a").glob("*.eml"))) == 2
    capsys.readouterr()
    assert main(["dump", "--url", f"http://{dead_addr}/", str(tmp_path / "b")]) == 75
    assert dead_addr in capsys.readouterr().err
    assert main(["dump", "--database", str(tmp_path / "nope.db"), str(tmp_path / "c")]) == 66
    assert "no such database file" in capsys.readouterr().err


def test_server_options_still_run_the_server_not_a_command(capsys) -> None:
    # Options only: the server's parser handles them (a bad value exits 2 as before).
    assert main(["--max-message-size", "lots"]) == 2
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "sendmail" in capsys.readouterr().out


def test_sendmail_bs_ends_with_quit_when_input_ends_without_it(mp: Server) -> None:
    script = b"HELO c\r\nMAIL FROM:<x@example.com>\r\nRCPT TO:<y@example.com>\r\nRSET\r\n"
    res = run("sendmail", "-bs", "--smtp-addr", smtp_addr(mp), stdin=script)
    assert res.returncode == 0, res.stderr
    assert re.findall(rb"^(\d{3}) ", res.stdout, re.M)[-1] == b"221"


def test_progress_draws_only_on_a_tty() -> None:
    import io

    from mailpit_py.commands._common import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress("ingest", stream)
        bar.update("3 imported", force=True)
        bar.done()
    assert "\ringest: 3 imported" in tty.getvalue() and tty.getvalue().endswith("\r\x1b[K")
    assert pipe.getvalue() == ""
    bar = Progress("dump", tty)
    bar.total = 8
    bar.update("2 written", force=True, count=2)
    assert "\rdump: [######..................]  25% 2/8 2 written" in tty.getvalue()


def test_ingest_counts_what_it_will_import_for_the_progress_bar(tmp_path: Path) -> None:
    from mailpit_py.commands.ingest import count_messages, messages

    files = corpus_files()
    (tmp_path / "tree").mkdir()
    md = stdlib_mailbox.Maildir(str(tmp_path / "tree" / "Maildir"), create=True)
    for f in files[:3]:
        md.add(f.read_bytes())
    box = stdlib_mailbox.mbox(str(tmp_path / "archive.mbox"), create=True)
    for f in files[3:8]:
        box.add(f.read_bytes())
    box.close()
    (tmp_path / "tree" / "one.eml").write_bytes(files[8].read_bytes())
    (tmp_path / "tree" / "notes.txt").write_text("not mail")
    for path, expected in ((tmp_path / "tree", 4), (tmp_path / "archive.mbox", 5)):
        assert count_messages(path) == expected
        assert len(list(messages(path, Counter()))) == expected


# -- send -------------------------------------------------------------------------------------


def test_send_builds_the_message_and_prints_the_conversation(
    mp: Server, tmp_path: Path, capsys
) -> None:
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4 test")
    code = main(
        [
            "send",
            "--server",
            smtp_addr(mp),
            "--to",
            "a@example.com",
            "--to",
            "b@example.com",
            "--from",
            "me@example.com",
            "--subject",
            "Report",
            "--body",
            "see attached",
            "--html",
            "<p>see <b>attached</b></p>",
            "--attach",
            str(tmp_path / "report.pdf"),
            "--header",
            "X-Campaign: spring",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(r" -> mail FROM:<me@example.com>", out, re.I) and "<-  250" in out
    assert out.rstrip().endswith("=== Message accepted")
    [(api, raw)] = stored(mp)
    assert api["Subject"] == "Report"
    assert api["Envelope"]["To"] == ["a@example.com", "b@example.com"]
    assert "see attached" in api["Text"] and "<b>attached</b>" in api["HTML"]
    assert [a["FileName"] for a in api["Attachments"]] == ["report.pdf"]
    assert b"X-Campaign: spring" in raw


def test_send_errors_are_clear(mp: Server, dead_addr: str, tmp_path: Path, capsys) -> None:
    assert main(["send", "--server", dead_addr, "--to", "a@example.com", "-q"]) == 75
    assert dead_addr in capsys.readouterr().err
    missing = str(tmp_path / "nope.pdf")
    assert (
        main(["send", "--server", smtp_addr(mp), "--to", "a@example.com", "--attach", missing])
        == 66
    )
    assert "nope.pdf" in capsys.readouterr().err
    assert (
        main(["send", "--server", smtp_addr(mp), "--to", "a@example.com", "--header", "bad"]) == 64
    )
    with make_server(max_message_size=300) as small:
        assert (
            main(
                [
                    "send",
                    "--server",
                    smtp_addr(small),
                    "--to",
                    "a@example.com",
                    "--body",
                    "x" * 2000,
                ]
            )
            == 69
        )
        assert "552" in capsys.readouterr().err


def test_send_tls_and_auth_errors_say_what_the_server_lacks(mp: Server, capsys) -> None:
    base = ["send", "--server", smtp_addr(mp), "--to", "a@example.com"]
    assert main([*base, "--starttls"]) == 69
    assert "does not offer STARTTLS" in capsys.readouterr().err
    assert main([*base, "--auth", "user:secret"]) == 69
    assert "does not offer AUTH" in capsys.readouterr().err
    assert main([*base, "--tls"]) == 69
    assert "TLS handshake" in capsys.readouterr().err
    assert main([*base, "--auth", "nocolon"]) == 64
    assert "use USER:PASS" in capsys.readouterr().err
    assert stored(mp) == []


@pytest.mark.parametrize(
    ("flags", "settings"),
    [
        (["--starttls", "--auth-type", "LOGIN"], {"smtp_require_starttls": True}),
        (["--tls", "--auth-type", "PLAIN"], {"smtp_require_tls": True}),
        (["--starttls", "--auth-type", "CRAM-MD5"], {}),
        (["--starttls"], {}),  # the best mechanism offered
    ],
)
def test_send_with_tls_and_auth_against_a_server_that_requires_them(
    flags: list[str], settings: dict, capsys
) -> None:
    with make_server(
        smtp_tls_cert="sans:localhost", smtp_auth="app:s3cret pat:other", **settings
    ) as secure:
        base = ["send", "--server", smtp_addr(secure), "--to", "a@example.com"]
        assert main([*base, *flags, "--auth", "app:wrong"]) == 77
        assert "refused the credentials for 'app'" in capsys.readouterr().err
        code = main([*base, *flags, "--auth", "app:s3cret", "--subject", "secured"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "=== TLS started (TLS" in out and "s3cret" not in out
        assert re.search(r" -> AUTH \S+", out) and "<-  235" in out
        [(api, _)] = stored(secure)
        assert api["Subject"] == "secured" and api["Username"] == "app"
        assert api["Envelope"]["TLS"] is True


def test_dump_logs_in_with_the_urls_user_info(tmp_path: Path, capsys) -> None:
    # Mailpit's dump (Go's HTTP client) sends a URL's user:password as Basic auth, so
    # `--http http://user:pass@host/` dumps an instance behind --ui-auth-file; urllib took
    # "user:pass@host" for the host name. The password never shows in a message.
    from mailpit_py.models import Envelope

    with make_server(ui_auth="ann:s3cr%t") as mp:
        assert mp.mailbox is not None
        raw = b"To: a@example.com\r\nSubject: behind a login\r\n\r\nx\r\n"
        mp.mailbox.deliver(Envelope("s@example.com", ("a@example.com",)), raw).result()
        host, port = mp.http_url.split("//")[1].rstrip("/").rsplit(":", 1)
        login = f"http://ann:s3cr%25t@{host}:{port}/"
        assert main(["dump", "--url", login, str(tmp_path / "in")]) == 0
        assert [p.read_bytes() for p in (tmp_path / "in").glob("*.eml")] == [raw]
        assert main(["queue", "--url", login]) == 0  # (the relay queue, through the same login)
        capsys.readouterr()
        wrong = f"http://ann:nope@{host}:{port}/"
        assert main(["dump", "--url", wrong, str(tmp_path / "out")]) == 75
        err = capsys.readouterr().err
        assert "401" in err and "nope" not in err and f"http://{host}:{port}/" in err
