"""Shared TLS contexts and auth lists: real handshakes and real bcrypt hashes."""

from __future__ import annotations

import socket
import ssl
import threading

import bcrypt
import pytest
from cryptography import x509

from mailpit_py.config.credentials import Credentials
from mailpit_py.config.errors import ConfigError
from mailpit_py.net import tls


def test_self_signed_context_completes_a_real_handshake_for_its_names() -> None:
    context = tls.server_context("sans:mail.test,127.0.0.1", None, "--smtp-tls")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    result: dict[str, object] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls_conn:
            tls_conn.sendall(b"hi")

    thread = threading.Thread(target=serve)
    thread.start()
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE  # self-signed: the names are checked below instead
    raw = socket.create_connection(("127.0.0.1", port))
    with client.wrap_socket(raw, server_hostname="mail.test") as conn:
        result["data"] = conn.recv(2)
        result["cert"] = conn.getpeercert(binary_form=True)
    thread.join()
    listener.close()
    assert result["data"] == b"hi"
    cert = x509.load_der_x509_certificate(result["cert"])  # type: ignore[arg-type]
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["mail.test"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_missing_or_bad_pem_files_are_config_errors_naming_the_flag(tmp_path) -> None:
    with pytest.raises(ConfigError, match="--smtp-tls-cert: .* does not exist"):
        tls.server_context(str(tmp_path / "nope.pem"), str(tmp_path / "k.pem"), "--smtp-tls")
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot load"):
        tls.server_context(str(bad), str(bad), "--smtp-tls")
    with pytest.raises(ConfigError, match="--smtp-tls-key is needed"):
        tls.server_context(str(bad), None, "--smtp-tls")


def test_pem_files_written_from_a_generated_pair_load(tmp_path) -> None:
    cert_pem, key_pem = tls.self_signed(["localhost"])
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key_pem)
    context = tls.server_context(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"), "--ui-tls")
    assert isinstance(context, ssl.SSLContext)


def test_credentials_plain_bcrypt_and_space_separated_variables(tmp_path) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$")
    path = tmp_path / "auth"
    path.write_text(f"# team\nalice:wonder\nbob:{hashed}\n\n")
    creds = Credentials.load(str(path), "--smtp-auth-file")
    assert creds.check("alice", "wonder")
    assert not creds.check("alice", "wonder2")
    assert creds.check("bob", "s3cret")
    assert not creds.check("bob", "wrong")
    assert not creds.check("carol", "wonder")
    assert creds.plain_password("alice") == "wonder"
    assert creds.plain_password("bob") is None
    env = Credentials.parse("u1:p1 u2:p2", "MP_SMTP_AUTH")
    assert env.check("u1", "p1") and env.check("u2", "p2")
    # Pairs on one line, a bcrypt hash first: still pairs (it was read as one entry whose
    # password was the rest of the line).
    mixed = Credentials.parse(f"dave:{hashed} erin:clear", "MP_SMTP_AUTH")
    assert mixed.check("dave", "s3cret") and mixed.check("erin", "clear")
    # A file line whose other words are not pairs keeps its spaces in a clear-text password.
    spaced = Credentials.parse("frank:two words here", "--smtp-auth-file")
    assert spaced.check("frank", "two words here")


def test_credentials_errors_name_the_source_and_line(tmp_path) -> None:
    with pytest.raises(ConfigError, match="line 2: 'nocolon' is not user:password"):
        Credentials.parse("a:b\nnocolon\n", "--ui-auth-file")
    with pytest.raises(ConfigError, match="no user:password entries"):
        Credentials.parse("# nothing\n", "MP_UI_AUTH")
    with pytest.raises(ConfigError, match="cannot read"):
        Credentials.load(str(tmp_path / "missing"), "--pop3-auth-file")
