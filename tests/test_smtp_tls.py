"""SMTP over TLS: STARTTLS (RFC 3207), required STARTTLS, implicit TLS, failed handshakes."""

from __future__ import annotations

import smtplib
import socket
import ssl

import pytest

from front_door import (
    client_tls,
    lines,
    message,
    newest_session,
    next_error,
    starttls,
    swaks,
)
from helpers import RawClient
from mailpit_py.cli import config_from
from mailpit_py.config.errors import ConfigError
from mailpit_py.net import tls
from mailpit_py.server import Server


def hangs_up(sock: socket.socket) -> bool:
    """True when the server closes the connection without sending anything (FIN or RST)."""
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def test_starttls_is_advertised_before_tls_only_and_the_message_records_tls(
    server_factory,
) -> None:
    mp = server_factory(smtp_tls_cert="sans:localhost")
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.ehlo("app.example")
        assert client.has_extn("starttls")
        code, reply = client.starttls(context=client_tls())
        assert (code, reply) == (220, b"2.0.0 Ready to start TLS")
        client.ehlo("app.example")
        assert not client.has_extn("starttls")  # RFC 3207 section 4.2
        client.sendmail("a@example.com", ["b@example.com"], message("over tls"))
    stored = mp.mailbox.get("latest")
    assert stored.summary["Subject"] == "over tls"
    assert stored.detail["Envelope"]["TLS"] is True
    transcript = [line for _, _, line in stored.transcript]
    assert any(line.startswith("TLS established: TLSv1.") for line in transcript)
    session = newest_session(mp)
    assert session["TLS"] is True and session["Outcome"] == "delivered"


def test_starttls_with_pem_files(server_factory, tmp_path) -> None:
    cert, key = tls.self_signed(["mail.test"])
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    mp = server_factory(
        smtp_tls_cert=str(tmp_path / "cert.pem"), smtp_tls_key=str(tmp_path / "key.pem")
    )
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.starttls(context=client_tls())
        der = client.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
        client.sendmail("a@example.com", ["b@example.com"], message("pem"))
    assert ssl.DER_cert_to_PEM_cert(der).strip() == cert.decode().strip()
    assert mp.mailbox.get("latest").summary["Subject"] == "pem"


def test_the_session_starts_over_after_starttls(server_factory) -> None:
    mp = server_factory(smtp_tls_cert="sans:localhost")
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO before")
    starttls(c, ehlo=False)
    # RFC 3207 section 4.2: what was said before TLS is forgotten, EHLO included.
    assert c.cmd("MAIL FROM:<a@example.com>").startswith("503 5.5.1")
    ehlo = c.cmd("EHLO after")
    assert "STARTTLS" not in ehlo and ehlo.startswith("250-")
    assert c.cmd("STARTTLS").startswith("503 5.5.1")  # already TLS
    c.close()


def test_require_starttls_refuses_mail_with_530_and_logs_the_rule(server_factory) -> None:
    mp = server_factory(smtp_tls_cert="sans:localhost", smtp_require_starttls=True)
    with mp.bus.subscribe() as sub:
        c = RawClient(mp.smtp_address)
        for allowed in ("EHLO me", "HELO me", "NOOP", "RSET"):
            assert c.cmd(allowed).startswith("250"), allowed
        assert c.cmd("MAIL FROM:<a@example.com>") == (
            "530 5.7.0 Must issue a STARTTLS command first"
        )
        event = next_error(sub)
        assert c.cmd("QUIT").startswith("221")
        c.close()
    assert event["Rule"] == "require-starttls"
    assert event["Message"] == "530 5.7.0 Must issue a STARTTLS command first"
    assert event["IP"] == "127.0.0.1" and event["Type"] == "smtpd"
    log = lines(newest_session(mp))
    refused = log.index("530 5.7.0 Must issue a STARTTLS command first")
    assert log[refused + 1] == "rule require-starttls: MAIL before STARTTLS"
    # And after STARTTLS the same client is served.
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.starttls(context=client_tls())
        client.sendmail("a@example.com", ["b@example.com"], message("after starttls"))
    assert mp.mailbox.get("latest").summary["Subject"] == "after starttls"


def test_implicit_tls_with_smtp_ssl(server_factory) -> None:
    mp = server_factory(smtp_tls_cert="sans:localhost", smtp_require_tls=True)
    with smtplib.SMTP_SSL(*mp.smtp_address, context=client_tls()) as client:
        code, _ = client.ehlo("app.example")
        assert code == 250
        assert not client.has_extn("starttls")
        client.sendmail("a@example.com", ["b@example.com"], message("smtps"))
    stored = mp.mailbox.get("latest")
    assert stored.summary["Subject"] == "smtps"
    assert stored.detail["Envelope"]["TLS"] is True


def test_failed_implicit_tls_handshake_is_logged_and_others_are_still_served(
    server_factory,
) -> None:
    mp = server_factory(smtp_tls_cert="sans:localhost", smtp_require_tls=True)
    with mp.bus.subscribe() as sub:
        plain = socket.create_connection(mp.smtp_address, timeout=10)
        plain.sendall(b"EHLO plain-text-client\r\n")  # not a TLS ClientHello
        assert hangs_up(plain)  # no greeting in clear text
        plain.close()
        event = next_error(sub)
    assert event["Rule"] == "tls-handshake"
    assert event["Message"].startswith("TLS handshake failed: ")
    session = newest_session(mp)
    assert session["Outcome"] == "tls failed"
    failed = [line for line in lines(session) if line.startswith("TLS handshake failed: ")]
    assert failed and "WRONG_VERSION_NUMBER" in failed[0].upper().replace(" ", "_")
    with smtplib.SMTP_SSL(*mp.smtp_address, context=client_tls()) as client:
        client.sendmail("a@example.com", ["b@example.com"], message("still serving"))
    assert mp.mailbox.get("latest").summary["Subject"] == "still serving"


def test_a_plain_client_waiting_on_the_implicit_tls_port_is_told_apart(server_factory) -> None:
    mp = server_factory(smtp_tls_cert="sans:localhost", smtp_require_tls=True, smtp_timeout=0.3)
    c = socket.create_connection(mp.smtp_address, timeout=10)
    assert hangs_up(c)  # waited for a greeting that never comes; closed at the timeout
    c.close()
    session = newest_session(mp)
    assert session["Outcome"] == "tls failed"
    assert (
        "TLS handshake failed: no TLS handshake within 0.3s (a client speaking plain SMTP to "
        "this implicit-TLS port?)"
    ) in lines(session)


def test_a_client_that_leaves_mid_handshake_is_logged(server_factory) -> None:
    mp = server_factory(smtp_tls_cert="sans:localhost", smtp_require_tls=True)
    socket.create_connection(mp.smtp_address, timeout=10).close()
    session = newest_session(mp)
    assert session["Outcome"] == "tls failed"
    assert any(
        line.startswith("TLS handshake failed: the client closed the connection")
        for line in lines(session)
    )


def test_failed_starttls_handshake_is_logged(server_factory) -> None:
    mp = server_factory(smtp_tls_cert="sans:localhost")
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    assert c.cmd("STARTTLS").startswith("220")
    c.send(b"this is no ClientHello\r\n")
    assert hangs_up(c.sock)
    c.close()
    session = newest_session(mp)
    assert session["Outcome"] == "tls failed"
    assert any(line.startswith("TLS handshake failed: ") for line in lines(session))


def test_swaks_starttls(server_factory) -> None:
    mp = server_factory(smtp_tls_cert="sans:localhost", smtp_require_starttls=True)
    host, port = mp.smtp_address
    done = swaks("--server", f"{host}:{port}", "--tls", "--to", "b@example.com",
                 "--from", "a@example.com", "--header", "Subject: swaks starttls")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "<-  220 2.0.0 Ready to start TLS" in done.stdout
    assert " ~> QUIT" in done.stdout  # swaks marks lines sent over TLS with ~
    assert mp.mailbox.get("latest").summary["Subject"] == "swaks starttls"
    assert mp.mailbox.get("latest").detail["Envelope"]["TLS"] is True


def test_swaks_implicit_tls(server_factory) -> None:
    mp = server_factory(smtp_tls_cert="sans:localhost", smtp_require_tls=True)
    host, port = mp.smtp_address
    done = swaks("--server", f"{host}:{port}", "--tlsc", "--to", "b@example.com",
                 "--from", "a@example.com", "--header", "Subject: swaks smtps")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert mp.mailbox.get("latest").summary["Subject"] == "swaks smtps"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--smtp-require-starttls"], "--smtp-require-starttls needs a certificate"),
        (["--smtp-require-tls"], "--smtp-require-tls needs a certificate"),
        (["--smtp-tls-key", "k.pem"], "--smtp-tls-key is set without a certificate"),
        (["--smtp-tls-cert", "c.pem"], "--smtp-tls-cert needs --smtp-tls-key"),
        (
            ["--smtp-tls-cert", "sans:x", "--smtp-require-tls", "--smtp-require-starttls"],
            "exclude each other",
        ),
    ],
)
def test_tls_settings_that_cannot_work_are_config_errors(argv: list[str], says: str) -> None:
    with pytest.raises(ConfigError, match=says) as info:
        config_from(argv, {})
    assert "--smtp-tls-cert" in str(info.value) or "port 465" in str(info.value)


def test_a_missing_certificate_file_stops_the_start_with_a_config_error(tmp_path) -> None:
    from helpers import make_server

    mp: Server = make_server(smtp_tls_cert=str(tmp_path / "c.pem"), smtp_tls_key="k.pem")
    with pytest.raises(ConfigError, match="--smtp-tls-cert: .* does not exist"):
        mp.start()
