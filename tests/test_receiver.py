"""Receiver simulation over real SMTP: each profile rule refuses with its exact reply at its
stage, a message refused at DATA is kept and shown (API, is:refused), refusals before DATA are
in the session log, and the default, permissive, still takes everything."""

from __future__ import annotations

import json
import smtplib
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest

from front_door import client_tls
from helpers import RawClient, dkim_rsa_key, make_server, wait_until
from mailpit_py.server import Server

CLIENT_IP = "203.0.113.7"

# shop.test signs with DKIM and publishes SPF and a DMARC reject policy; bank.test has a reject
# policy and its SPF does not list the client; listed.test's client is in the blocklist.
ZONE = """
shop.test TXT "v=spf1 ip4:203.0.113.0/24 -all"
_dmarc.shop.test TXT "v=DMARC1; p=reject"
bank.test TXT "v=spf1 ip4:198.51.100.1 -all"
_dmarc.bank.test TXT "v=DMARC1; p=reject"
nodmarc.test TXT "v=spf1 ip4:203.0.113.0/24 -all"
7.113.0.203.in-addr.arpa PTR mail.shop.test
mail.shop.test A 203.0.113.7
"""
LISTED = "7.113.0.203.zen.spamhaus.org A 127.0.0.2\n"
NO_PTR_IP = "203.0.113.9"


@pytest.fixture(scope="module")
def key() -> tuple[bytes, str]:
    return dkim_rsa_key()


def message(
    domain: str,
    *,
    headers: str = "",
    message_id: str | None = None,
    date: str = "Sat, 21 Nov 2026 10:00:00 +0000",
) -> bytes:
    mid = f"<m1@{domain}>" if message_id is None else message_id
    return (
        f"From: Shop <news@{domain}>\r\nTo: dev@example.org\r\nSubject: Your order\r\n"
        + (f"Date: {date}\r\n" if date else "")
        + (f"Message-ID: {mid}\r\n" if mid else "")
        + headers
        + "Content-Type: text/plain\r\n\r\nThank you for your order.\r\n"
    ).encode()


def signed(raw: bytes, domain: str, pem: bytes) -> bytes:
    names = [b"from", b"to", b"subject", b"date", b"message-id"]
    if b"List-Unsubscribe" in raw:
        names += [b"list-unsubscribe", b"list-unsubscribe-post"]
    return dkim.sign(raw, b"sel", domain.encode(), pem, include_headers=names) + raw


@pytest.fixture
def start(tmp_path: Path, key: tuple[bytes, str]) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def run(receiver: str, zone: str = "", **overrides: Any) -> Server:
        path = tmp_path / "zone.txt"
        path.write_text(
            ZONE + f'sel._domainkey.shop.test TXT "v=DKIM1; k=rsa; p={key[1]}"\n' + zone
        )
        cfg: dict[str, Any] = {
            "receiver": receiver,
            "dns_override": str(path),
            "dns_offline": True,
            "checks_client_ip": CLIENT_IP,
        }
        cfg.update(overrides)
        mp = make_server(**cfg).start()
        servers.append(mp)
        return mp

    yield run
    for mp in servers:
        mp.stop()


def api(mp: Server, path: str) -> Any:
    with urllib.request.urlopen(mp.http_url + path.lstrip("/"), timeout=30) as resp:
        return json.loads(resp.read())


def search(mp: Server, query: str) -> list[dict[str, Any]]:
    return list(api(mp, "api/v1/search?query=" + urllib.parse.quote(query))["messages"])


def data_reply(mp: Server, raw: bytes, mail_from: str, tls: bool = False) -> tuple[int, str]:
    """(code, text) of the answer to DATA (smtplib joins a multi-line reply with newlines)."""
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.ehlo("mail.shop.test")
        if tls:
            client.starttls(context=client_tls())
            client.ehlo("mail.shop.test")
        client.mail(mail_from)
        client.rcpt("dev@example.org")
        code, text = client.data(raw)
    return code, text.decode()


def rcpt_reply(mp: Server, mail_from: str) -> tuple[int, str]:
    """(code, text) of the answer to RCPT after MAIL FROM `mail_from` was taken."""
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.ehlo("mail.shop.test")
        assert client.mail(mail_from)[0] == 250  # Postfix's smtpd_delay_reject=yes
        code, text = client.rcpt("dev@example.org")
    return code, text.decode()


GMAIL_DMARC = (
    "5.7.26 Unauthenticated email from bank.test is not accepted due to domain's\n"
    "5.7.26 DMARC policy. Please contact the administrator of bank.test domain if\n"
    "5.7.26 this was a legitimate mail. To learn about the DMARC initiative, go to\n"
    "5.7.26 https://support.google.com/mail/?p=DmarcRejection"
)


def test_permissive_is_the_default_and_takes_a_message_gmail_refuses(
    start: Callable[..., Server],
) -> None:
    mp = start("permissive")
    code, _ = data_reply(mp, message("bank.test"), "news@bank.test")
    assert code == 250
    assert api(mp, "api/v1/messages")["messages"][0]["Refused"] is False
    assert make_server().config.receiver == "permissive"


def test_gmail_refuses_dmarc_reject_with_its_reply_and_keeps_the_message(
    start: Callable[..., Server],
) -> None:
    mp = start("gmail")
    code, text = data_reply(mp, message("bank.test"), "news@bank.test")
    assert (code, text) == (550, GMAIL_DMARC)
    listed = api(mp, "api/v1/messages")["messages"]
    assert len(listed) == 1 and listed[0]["Refused"] is True
    uid = listed[0]["ID"]
    msg = api(mp, f"api/v1/message/{uid}")
    refused = msg["Refused"]
    assert refused["Rule"] == "dmarc-reject" and refused["Stage"] == "data"
    assert refused["Profile"] == "gmail" and refused["ClientIP"] == CLIENT_IP
    assert refused["Simulated"] is True  # --checks-client-ip stands in for the real client
    assert refused["Reply"].splitlines()[0] == (
        "550-5.7.26 Unauthenticated email from bank.test is not accepted due to domain's"
    )
    assert "p=reject" in refused["Detail"]
    assert msg["Listener"] == "default"
    assert [m["ID"] for m in search(mp, "is:refused")] == [uid]
    assert search(mp, "-is:refused") == []
    smtp = api(mp, f"api/v1/message/{uid}/smtp")
    lines = [t["Line"] for t in smtp["Transcript"]]
    assert lines[-1].startswith("550-5.7.26 Unauthenticated email from bank.test")
    assert any("rule receiver:dmarc-reject" in line for line in lines)
    assert "(listener default)" in lines[0]


def test_gmail_accepts_a_signed_aligned_message(
    start: Callable[..., Server], key: tuple[bytes, str]
) -> None:
    mp = start("gmail")
    code, text = data_reply(mp, signed(message("shop.test"), "shop.test", key[0]), "a@shop.test")
    assert code == 250, text
    assert search(mp, "is:refused") == []
    assert len(search(mp, "-is:refused")) == 1


def test_gmail_refuses_a_missing_message_id(
    start: Callable[..., Server], key: tuple[bytes, str]
) -> None:
    mp = start("gmail")
    raw = signed(message("shop.test", message_id=""), "shop.test", key[0])
    code, text = data_reply(mp, raw, "a@shop.test")
    assert (code, text.splitlines()[0]) == (
        550,
        f"5.7.1 [{CLIENT_IP}] Messages missing a valid Message-ID header are not",
    )
    assert api(mp, "api/v1/messages")["messages"][0]["Refused"] is True


def test_gmail_bulk_mail_needs_one_click_unsubscribe(
    start: Callable[..., Server], key: tuple[bytes, str]
) -> None:
    mp = start("gmail", smtp_tls_cert="sans:localhost")
    bulk = "List-Unsubscribe: <mailto:u@shop.test>\r\n"
    code, text = data_reply(
        mp, signed(message("shop.test", headers=bulk), "shop.test", key[0]), "a@shop.test", True
    )
    assert code == 550
    assert text.splitlines()[0] == (
        "5.7.1 Gmail requires bulk senders to support one-click unsubscribe (RFC 8058): a"
    )
    one_click = (
        "List-Unsubscribe: <https://shop.test/u/1>\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    )
    raw = signed(message("shop.test", headers=one_click), "shop.test", key[0])
    assert data_reply(mp, raw, "a@shop.test", tls=True)[0] == 250
    # the same bulk message over a plain connection: Gmail wants TLS of bulk senders
    code, text = data_reply(mp, raw, "a@shop.test")
    assert (code, text.splitlines()[0]) == (
        421,
        "4.7.29 Your email has been rate limited because this message wasn't sent over a TLS",
    )


def test_gmail_bulk_mail_from_a_domain_without_dmarc(
    start: Callable[..., Server], key: tuple[bytes, str]
) -> None:
    mp = start("gmail")
    headers = "Precedence: bulk\r\n"
    code, text = data_reply(mp, message("nodmarc.test", headers=headers), "a@nodmarc.test")
    # SPF passes, DKIM does not: a bulk sender needs both (5.7.27) before the DMARC check
    assert (code, text.splitlines()[0]) == (
        550,
        "5.7.27 Your email has been blocked because the sender is unauthenticated. Gmail",
    )


def test_outlook_refuses_dmarc_reject_with_5_7_509(start: Callable[..., Server]) -> None:
    mp = start("outlook")
    code, text = data_reply(mp, message("bank.test"), "news@bank.test")
    assert (code, text) == (
        550,
        "5.7.509 Access denied, sending domain bank.test does not pass DMARC verification "
        "and has a DMARC policy of reject.",
    )


def assert_logged_without_a_message(mp: Server, start_of_line: str) -> None:
    """No message was kept, and the session log has a line starting so."""
    assert api(mp, "api/v1/messages")["messages"] == []
    session = wait_until(lambda: api(mp, "api/v1/sessions")["sessions"], what="session log")[0]
    lines = [t["Line"] for t in session["Transcript"]]
    assert any(line.startswith(start_of_line) for line in lines), lines


def test_outlook_refuses_a_blocklisted_client_at_rcpt(start: Callable[..., Server]) -> None:
    # Not in the greeting: RFC 5321 4.3.2 allows only 220 or 554 there, and a front end shared
    # by many domains knows whose policy applies only once RCPT names the recipient.
    mp = start("outlook", LISTED)
    assert rcpt_reply(mp, "a@shop.test") == (
        550,
        f"5.7.1 Service unavailable, Client host [{CLIENT_IP}] blocked using Spamhaus. "
        f"To request removal from this list see https://www.spamhaus.org/query/ip/{CLIENT_IP}",
    )
    assert_logged_without_a_message(mp, "rule receiver:dnsbl-listed: outlook at rcpt: 203.0.113.7")


def test_yahoo_refuses_a_blocklisted_client_in_its_greeting(start: Callable[..., Server]) -> None:
    mp = start("yahoo", LISTED)
    client = RawClient(mp.smtp_address)
    assert client.greeting == (
        f"553 5.7.1 [BL21] Connections will not be accepted from {CLIENT_IP}, because the ip "
        "is in Spamhaus's list; see https://senders.yahooinc.com/smtp-error-codes"
    )
    assert client.cmd("QUIT").startswith("221")
    client.close()
    assert_logged_without_a_message(mp, "rule receiver:dnsbl-listed: yahoo at connect: 203.0.113.7")


def test_strict_refuses_spf_fail_at_rcpt_as_postfix_with_its_spf_policy_service(
    start: Callable[..., Server],
) -> None:
    mp = start("strict")
    assert rcpt_reply(mp, "news@bank.test") == (
        550,
        "5.7.23 <dev@example.org>: Recipient address rejected: Message rejected due to: SPF "
        "fail - not authorized. Please see http://www.open-spf.org/Why?s=mfrom;"
        "id=news@bank.test;ip=203.0.113.7;r=test.local",
    )
    assert api(mp, "api/v1/messages")["messages"] == []


def test_strict_refuses_a_client_without_reverse_dns_at_rcpt_as_postfix(
    start: Callable[..., Server],
) -> None:
    zone = 'nodmarc2.test TXT "v=spf1 ip4:203.0.113.0/24 -all"\n'
    mp = start("strict", zone, checks_client_ip=NO_PTR_IP)
    assert rcpt_reply(mp, "a@nodmarc2.test") == (
        450,
        f"4.7.1 Client host rejected: cannot find your reverse hostname, [{NO_PTR_IP}]",
    )


def test_strict_refuses_a_ptr_name_that_does_not_resolve_back_with_4_7_25(
    start: Callable[..., Server],
) -> None:
    zone = "9.113.0.203.in-addr.arpa PTR mail.shop.test\n"  # mail.shop.test is .7, not .9
    mp = start("strict", zone, checks_client_ip=NO_PTR_IP)
    assert rcpt_reply(mp, "a@shop.test") == (
        450,
        f"4.7.25 Client host rejected: cannot find your hostname, [{NO_PTR_IP}]",
    )


def test_gmail_refuses_spf_fail_only_when_no_dkim_signature_passes(
    start: Callable[..., Server], key: tuple[bytes, str]
) -> None:
    # forwarder.test's SPF does not list the client and its DMARC policy is none: a message
    # forwarded with its DKIM signature intact is taken, an unsigned one is refused.
    zone = (
        'forwarder.test TXT "v=spf1 ip4:198.51.100.9 -all"\n'
        '_dmarc.forwarder.test TXT "v=DMARC1; p=none"\n'
    )
    mp = start("gmail", zone)
    forwarded = signed(message("shop.test"), "shop.test", key[0])
    assert data_reply(mp, forwarded, "bounce@forwarder.test")[0] == 250
    code, text = data_reply(mp, message("forwarder.test"), "bounce@forwarder.test")
    assert code == 550
    assert text.splitlines()[0] == (
        "5.7.26 This message fails to pass SPF checks for an SPF record with a hard fail"
    )
    refused = api(mp, "api/v1/search?query=is:refused")["messages"]
    assert len(refused) == 1


def test_strict_blocklisted_client_is_refused_at_rcpt_with_postfix_text(
    start: Callable[..., Server],
) -> None:
    mp = start("strict", LISTED)
    assert rcpt_reply(mp, "a@shop.test") == (
        554,
        f"5.7.1 Service unavailable; Client host [{CLIENT_IP}] blocked using zen.spamhaus.org",
    )


def test_a_local_client_is_not_refused_at_connect_and_the_transcript_says_why(
    start: Callable[..., Server],
) -> None:
    mp = start("outlook", LISTED, checks_client_ip="")
    with smtplib.SMTP(*mp.smtp_address) as client:
        assert client.ehlo()[0] == 250
        client.mail("a@shop.test")
        client.rcpt("dev@example.org")
        client.data(message("shop.test"))
    uid = api(mp, "api/v1/messages")["messages"][0]["ID"]
    lines = [t["Line"] for t in api(mp, f"api/v1/message/{uid}/smtp")["Transcript"]]
    assert any("connect rules not applied: the client 127.0.0.1" in line for line in lines)


def test_a_refusal_before_data_is_in_the_session_log_with_its_rule(
    start: Callable[..., Server],
) -> None:
    mp = start("strict")
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.ehlo("mail.shop.test")
        client.mail("news@bank.test")
        assert client.rcpt("dev@example.org")[0] == 550
    session = wait_until(lambda: api(mp, "api/v1/sessions")["sessions"], what="session log")[0]
    assert session["Outcome"] == "rejected" and session["Messages"] == []
    lines = [t["Line"] for t in session["Transcript"]]
    assert "rule receiver:spf-fail: strict at rcpt: SPF fail for bank.test" in "\n".join(lines)


def test_gmail_answers_a_ptr_name_that_does_not_resolve_back_at_the_end_of_data(
    start: Callable[..., Server],
) -> None:
    # .9 has a PTR name, but that name's address is another one: not forward-confirmed. Gmail
    # greets every client with 220 and says so after DATA, then closes (421).
    zone = "9.113.0.203.in-addr.arpa PTR mail.shop.test\n"
    mp = start("gmail", zone, checks_client_ip=NO_PTR_IP)
    client = RawClient(mp.smtp_address)
    assert client.greeting.startswith("220 ")
    assert client.cmd("EHLO mail.shop.test").startswith("250")
    assert client.cmd("MAIL FROM:<news@shop.test>").startswith("250")
    assert client.cmd("RCPT TO:<dev@example.org>").startswith("250")
    assert client.cmd("DATA").startswith("354")
    reply = client.cmd(message("shop.test").decode() + ".")
    assert reply.splitlines() == [
        f"421-4.7.23 [{NO_PTR_IP}] The sending IP does not match the IP address of the hostname "
        "specified in the",
        "421-4.7.23 pointer (PTR) record. For more information, go to",
        "421 4.7.23 https://support.google.com/mail/answer/81126#ip-practices",
    ]
    with pytest.raises(ConnectionError):
        client.reply()  # 421 closes the connection
    client.close()


def test_a_refused_message_is_never_relayed(
    start: Callable[..., Server], key: tuple[bytes, str], tmp_path: Path
) -> None:
    relay = tmp_path / "relay.yaml"
    relay.write_text("host: 127.0.0.1\nport: 9\n")  # nothing listens: the copy stays queued
    mp = start(
        "gmail", smtp_relay_config=str(relay), smtp_relay_all=True, smtp_relay_retry_delay=60
    )
    assert data_reply(mp, message("bank.test"), "news@bank.test")[0] == 550
    assert (
        data_reply(mp, signed(message("shop.test"), "shop.test", key[0]), "a@shop.test")[0] == 250
    )
    accepted, refused = (m["ID"] for m in api(mp, "api/v1/messages")["messages"])
    assert api(mp, f"api/v1/message/{refused}/relay") == {
        "ID": refused,
        "Queue": [],
        "Attempts": [],
    }
    history = api(mp, f"api/v1/message/{accepted}/relay")
    assert len(history["Queue"]) + len(history["Attempts"]) >= 1


@pytest.mark.parametrize(
    ("profile", "first_line"),
    [
        ("strict", "550 5.7.1 rejected by DMARC policy for bank.test"),
        (
            "gmail",
            "550-5.7.26 Unauthenticated email from bank.test is not accepted due to domain's",
        ),
        (
            "outlook",
            "550 5.7.509 Access denied, sending domain bank.test does not pass DMARC "
            "verification and has a DMARC policy of reject.",
        ),
        (
            "yahoo",
            "554 5.7.9 Message not accepted for policy reasons. "
            "See https://senders.yahooinc.com/smtp-error-codes",
        ),
    ],
)
def test_each_profile_refuses_an_unaligned_from_with_its_own_dmarc_reply(
    start: Callable[..., Server], profile: str, first_line: str
) -> None:
    # SPF passes for the envelope's shop.test, but the From domain is bank.test: not aligned
    mp = start(profile)
    code, _ = data_reply(mp, message("bank.test"), "bounce@shop.test")
    assert code == int(first_line[:3])
    uid = api(mp, "api/v1/messages")["messages"][0]["ID"]
    refused = api(mp, f"api/v1/message/{uid}")["Refused"]
    assert refused["Reply"].split("\r\n")[0] == first_line
    assert refused["Rule"] == "dmarc-reject" and refused["Profile"] == profile


def test_the_python_client_reads_the_refusal(start: Callable[..., Server]) -> None:
    from mailpit_py import Client

    mp = start("outlook")
    data_reply(mp, message("bank.test"), "news@bank.test")
    client = Client(mp.http_url)
    (summary,) = client.search("is:refused")
    assert summary.refused is True
    msg = client.get(summary.id)
    assert msg.listener == "default"
    assert msg.refused is not None and msg.refused["Rule"] == "dmarc-reject"
    assert msg.refused["Reply"].startswith("550 5.7.509 Access denied")


def test_a_client_given_value_goes_into_a_reply_cut_short(start: Callable[..., Server]) -> None:
    # The From domain is the sender's to choose: in a reply it is bounded, whatever its length
    domain = "a" * 60 + "." + "b" * 60 + ".test"
    mp = start("outlook", f'_dmarc.{domain} TXT "v=DMARC1; p=reject"\n')
    code, text = data_reply(mp, message(domain), f"news@{domain}")
    assert code == 550
    shown = domain[:97] + "..."
    assert text == (
        f"5.7.509 Access denied, sending domain {shown} does not pass DMARC verification and "
        "has a DMARC policy of reject."
    )
