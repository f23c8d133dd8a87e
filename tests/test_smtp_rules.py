"""SMTP rules of RFC 5321 and RFC 4954 driven over raw sockets and real clients: the AUTH=
parameter, which AUTH mechanisms are offered, the null and postmaster recipients, relay denial,
HELP, the transcript of oversized data and what a refused connection's 503s count for."""

from __future__ import annotations

import base64

import pytest

from front_door import message
from helpers import RawClient

TLS = {"smtp_tls_cert": "sans:localhost"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def ehlo_auth_line(c: RawClient) -> list[str]:
    """The mechanisms of the EHLO reply's AUTH line (empty without one)."""
    for line in c.cmd("EHLO me").splitlines():
        if line[4:].startswith("AUTH "):
            return line[9:].split()
    return []


# -- MAIL FROM ... AUTH= (RFC 4954 section 5) -------------------------------------------------


@pytest.mark.parametrize(
    "param", ["AUTH=<>", "auth=<>", "AUTH=app@example.com", "AUTH=us+2Ber+3Dx@example.com"]
)
def test_mail_from_with_an_auth_parameter_is_accepted(server_factory, param: str) -> None:
    mp = server_factory()
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    assert c.cmd(f"MAIL FROM:<a@example.com> {param}") == "250 2.1.0 OK"
    assert c.cmd("RCPT TO:<b@example.com>").startswith("250")
    assert c.cmd("DATA").startswith("354")
    c.send(message("auth param") + b".\r\n")
    assert c.reply().startswith("250 2.0.0 Ok: queued as ")
    c.close()
    assert mp.mailbox.get("latest").detail["Envelope"]["From"] == "a@example.com"


@pytest.mark.parametrize(
    "param",
    [
        "AUTH=",
        "AUTH=a+2bx@example.com",
        "AUTH=a+Zx@example.com",
        "AUTH=a=b@example.com",
        "AUTH=<> AUTH=<>",
    ],
)
def test_a_malformed_auth_parameter_gets_501(server_factory, param: str) -> None:
    mp = server_factory()
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    reply = c.cmd(f"MAIL FROM:<a@example.com> {param}")
    assert reply.startswith("501 5.5.4 "), reply
    assert c.cmd("MAIL FROM:<a@example.com> AUTH=<> SIZE=100") == "250 2.1.0 OK"
    c.close()


# -- which mechanisms are offered ----------------------------------------------------------


# -- recipients (RFC 5321 sections 3.3, 4.1.1.3, 4.5.1) ---------------------------------------


# -- transcript and counts ------------------------------------------------------------------
