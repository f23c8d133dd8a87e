"""Message checks, authentication: DKIM from the corpus with the key file as DNS
override, SPF and DMARC against a fake zone, the Authentication-Results header, and the
checks running at ingest in the background."""

from __future__ import annotations

import json
import os
import smtplib
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from helpers import corpus_dir, make_server, wait_until
from mailpit_py.checks import dmarc, spf
from mailpit_py.checks.dkim_check import verify_all
from mailpit_py.checks.service import Checks
from mailpit_py.cli import config_from
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import Config
from mailpit_py.config.validate import validate
from mailpit_py.net.dns import OverrideError, Resolver, load_overrides, parse_overrides
from mailpit_py.server import Server

SIGNED = [
    ("mimekit/gmail.msg", ["rsa-sha256"]),
    ("mimekit/related.msg", ["rsa-sha256"]),
    ("mimekit/multipart-no-end-boundary.msg", ["rsa-sha256"]),
    ("mimekit/rfc8463-example.msg", ["ed25519-sha256", "rsa-sha256"]),
    ("dkimpy/test2.message", ["rsa-sha256"]),
    ("dkimpy/ed25519test2.msg", ["ed25519-sha256"]),
    ("dkimpy/rfc6376.signed.msg", ["ed25519-sha256", "rsa-sha256"]),
]

ZONE = """
# a fake zone for SPF and DMARC
example.test TXT "v=spf1 ip4:192.0.2.0/24 include:_spf.example.test mx:example.test -all"
_spf.example.test TXT "v=spf1 ip6:2001:db8::/32 a:mail.example.test ~all"
mail.example.test A 198.51.100.7
example.test MX 10 mx.example.test
mx.example.test A 203.0.113.9
_dmarc.example.test TXT "v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=r"
soft.test TXT "v=spf1 ?ip4:192.0.2.1 ~all"
redirected.test TXT "v=spf1 redirect=example.test"
twice.test TXT "v=spf1 -all"
twice.test TXT "v=spf1 +all"
relaxed.test TXT "v=spf1 ip4:192.0.2.0/24 -all"
cidr.test TXT "v=spf1 ip6:2001:db8:1::/64 a:mail.example.test/24 -all"
_dmarc.relaxed.test TXT "v=DMARC1; p=none"
"""


def corpus_raw(name: str) -> bytes:
    return (corpus_dir() / name).read_bytes()


def key_file() -> str:
    return str(corpus_dir() / "dkim-keys" / "dns-records.txt")


def corpus_resolver() -> Resolver:
    return Resolver(load_overrides(key_file()), offline=True)


def zone_resolver(extra: str = "") -> Resolver:
    return Resolver(parse_overrides(ZONE + extra), offline=True)


def get_json(mp: Server, path: str) -> Any:
    with urllib.request.urlopen(mp.http_url + path.lstrip("/"), timeout=30) as resp:
        return json.loads(resp.read())


def send(mp: Server, raw: bytes, mail_from: str, to: str = "dev@example.org") -> str:
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.sendmail(mail_from, [to], raw)
    return str(get_json(mp, "/api/v1/messages")["messages"][0]["ID"])


def sender_of(raw: bytes) -> str:
    import email.utils

    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.splitlines():
        if line.lower().startswith("from:"):
            return email.utils.parseaddr(line[5:])[1]
    return "someone@example.org"


# -- DKIM ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "algorithms"), SIGNED)
def test_dkim_signed_corpus_messages_verify_as_pass_with_the_key_file(
    name: str, algorithms: list[str]
) -> None:
    sigs = verify_all(corpus_raw(name), corpus_resolver())
    assert [s.algorithm for s in sigs] == algorithms
    for s in sigs:
        assert (s.result, s.body_hash_ok, s.signature_ok, s.reason) == ("pass", True, True, "")
        assert s.domain and s.selector and "/" in s.canonicalization


@pytest.mark.parametrize(("name", "algorithms"), SIGNED)
def test_dkim_modified_body_fails_as_body_modified(name: str, algorithms: list[str]) -> None:
    raw = corpus_raw(name)
    sep = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
    head, body = raw.split(sep, 1)
    sigs = verify_all(head + sep + b"Tampered line.\n" + body, corpus_resolver())
    assert len(sigs) == len(algorithms)
    for s in sigs:
        assert (s.result, s.body_hash_ok, s.signature_ok) == ("fail", False, False)
        assert s.reason.startswith("body modified")


def test_dkim_modified_signed_header_fails_as_header_modified() -> None:
    raw = corpus_raw("mimekit/gmail.msg")
    assert b"\nSubject: " in raw
    changed = raw.replace(b"\nSubject: ", b"\nSubject: [changed] ", 1)
    (sig,) = verify_all(changed, corpus_resolver())
    assert (sig.result, sig.body_hash_ok, sig.signature_ok) == ("fail", True, False)
    assert sig.reason.startswith("header modified")


def test_dkim_without_a_published_key_says_key_not_found() -> None:
    (sig,) = verify_all(corpus_raw("mimekit/gmail.msg"), Resolver({}, offline=True))
    assert (sig.result, sig.signature_ok) == ("permerror", False)
    assert sig.reason.startswith("key not found: no DKIM key at 20120113._domainkey.gmail.com")


def test_dkim_revoked_key_is_reported_as_revoked() -> None:
    overrides = parse_overrides('20120113._domainkey.gmail.com TXT "v=DKIM1; k=rsa; p="')
    (sig,) = verify_all(corpus_raw("mimekit/gmail.msg"), Resolver(overrides, offline=True))
    assert sig.result == "permerror"
    assert sig.reason.startswith("revoked key")


def _rsa_pem() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64

    return pem, base64.b64encode(pub).decode()


def _ed25519() -> tuple[bytes, str]:
    import base64

    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(seed), base64.b64encode(pub).decode()


def signed_message(domain: str, selector: str, pem: bytes, *, algo: bytes = b"rsa-sha256") -> bytes:
    msg = (
        f"From: News <news@{domain}>\r\nTo: dev@example.org\r\nSubject: Weekly news\r\n"
        f"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <n1@{domain}>\r\n"
        f"List-Unsubscribe: <https://{domain}/u/1>, <mailto:u@{domain}>\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        "Content-Type: text/plain\r\n\r\nHello, this is the news.\r\n"
    ).encode()
    sig = dkim.sign(
        msg,
        selector.encode(),
        domain.encode(),
        pem,
        signature_algorithm=algo,
        include_headers=[
            b"from",
            b"to",
            b"subject",
            b"date",
            b"message-id",
            b"list-unsubscribe",
            b"list-unsubscribe-post",
        ],
    )
    return sig + msg


# -- SPF ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "sender", "result", "mechanism"),
    [
        ("192.0.2.5", "app@example.test", "pass", "ip4:192.0.2.0/24"),
        ("198.51.100.7", "app@example.test", "pass", "include:_spf.example.test"),
        ("2001:db8::25", "app@example.test", "pass", "include:_spf.example.test"),
        ("203.0.113.9", "app@example.test", "pass", "mx:example.test"),
        ("10.9.9.9", "app@example.test", "fail", "-all"),
        ("192.0.2.1", "app@soft.test", "neutral", "?ip4:192.0.2.1"),
        ("192.0.2.2", "app@soft.test", "softfail", "~all"),
        ("192.0.2.5", "app@redirected.test", "pass", "ip4:192.0.2.0/24"),
        ("10.9.9.9", "app@redirected.test", "fail", "-all"),
        ("192.0.2.5", "app@nothing.test", "none", ""),
        ("192.0.2.5", "app@twice.test", "permerror", ""),
        ("2001:db8:1::9", "app@cidr.test", "pass", "ip6:2001:db8:1::/64"),
        ("198.51.100.200", "app@cidr.test", "pass", "a:mail.example.test/24"),
        ("2001:db8:2::1", "app@cidr.test", "fail", "-all"),
    ],
)
def test_spf_evaluates_the_mechanisms_of_a_fake_zone(
    ip: str, sender: str, result: str, mechanism: str
) -> None:
    res = spf.check_host(zone_resolver(), ip, sender)
    assert (res.result, res.mechanism) == (result, mechanism), res.reason


def test_spf_more_than_ten_lookups_is_a_permerror() -> None:
    chain = "\n".join(f'l{i}.test TXT "v=spf1 include:l{i + 1}.test -all"' for i in range(12))
    res = spf.check_host(
        zone_resolver(chain + '\nl12.test TXT "v=spf1 +all"'), "192.0.2.5", "a@l0.test"
    )
    assert res.result == "permerror"
    assert "10 DNS-querying terms" in res.reason


def test_spf_more_than_two_void_lookups_is_a_permerror() -> None:
    record = 'void.test TXT "v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test -all"'
    res = spf.check_host(zone_resolver("\n" + record), "192.0.2.5", "a@void.test")
    assert res.result == "permerror"
    assert "void lookups" in res.reason


def test_spf_macros_expand_in_exists() -> None:
    extra = (
        '\nmacro.test TXT "v=spf1 exists:%{i}._spf.%{d} -all"'
        "\n192.0.2.77._spf.macro.test A 127.0.0.2"
    )
    assert spf.check_host(zone_resolver(extra), "192.0.2.77", "x@macro.test").result == "pass"
    assert spf.check_host(zone_resolver(extra), "192.0.2.78", "x@macro.test").result == "fail"


# -- DMARC --------------------------------------------------------------------------------------


def test_dmarc_passes_on_relaxed_spf_alignment_and_fails_without_alignment() -> None:
    r = zone_resolver()
    ok = dmarc.evaluate(r, "example.test", [], "pass", "bounce.example.test")
    assert (ok.result, ok.policy, ok.spf_aligned) == ("pass", "reject", True)
    bad = dmarc.evaluate(r, "example.test", [], "pass", "other.test")
    assert (bad.result, bad.spf_aligned, bad.dkim_aligned) == ("fail", False, False)
    assert "p=reject" in bad.reason


def test_dmarc_strict_dkim_alignment_needs_the_exact_domain() -> None:
    r = zone_resolver()
    assert dmarc.evaluate(r, "example.test", ["example.test"], "fail", "").result == "pass"
    strict = dmarc.evaluate(r, "example.test", ["mail.example.test"], "fail", "")
    assert (strict.result, strict.dkim_aligned) == ("fail", False)


def test_dmarc_falls_back_to_the_organizational_domain_and_its_sp_policy() -> None:
    res = dmarc.evaluate(zone_resolver(), "news.example.test", [], "pass", "example.test")
    assert res.record_domain == "example.test"
    assert res.policy == "quarantine"
    assert res.result == "pass"  # aspf=r: example.test aligns with news.example.test
    assert dmarc.organizational_domain("a.b.example.co.uk") == "example.co.uk"


def test_dmarc_without_a_record_is_none() -> None:
    assert (
        dmarc.evaluate(zone_resolver(), "nothing.test", [], "pass", "nothing.test").result == "none"
    )


# -- the whole thing over SMTP and the API --------------------------------------------------------


@pytest.fixture
def zone_file(tmp_path: Path) -> Path:
    pem, pub = _rsa_pem()
    seed, edpub = _ed25519()
    path = tmp_path / "zone.txt"
    path.write_text(
        ZONE
        + f'\nsel._domainkey.example.test TXT "v=DKIM1; k=rsa; p={pub}"\n'
        + f"ed._domainkey.example.test TXT v=DKIM1; k=ed25519; p={edpub}\n"
    )
    (tmp_path / "key.pem").write_bytes(pem)
    (tmp_path / "ed.key").write_bytes(seed)
    return path


def test_corpus_messages_delivered_over_smtp_are_checked_in_the_background() -> None:
    raw = corpus_raw("mimekit/rfc8463-example.msg")
    with make_server(dns_override=key_file(), dns_offline=True) as mp:
        uid = send(mp, raw, sender_of(raw))
        assert mp.mailbox is not None
        # Nobody asked: the worker checks and stores it on its own after the commit.
        stored = wait_until(lambda: mp.mailbox.checks(uid), what="stored checks")
        assert [s["Result"] for s in stored["Auth"]["DKIM"]] == ["pass", "pass"]
        report = get_json(mp, f"/api/v1/message/{uid}/auth-check")
    assert report == stored["Auth"]
    assert report["Simulated"] is True and "simulation" in report["Note"]
    assert (
        "dkim=pass header.d=football.example.com header.s=brisbane"
        in report["AuthenticationResults"]
    )


@pytest.mark.parametrize(("quiet", "max_defer"), [(3600.0, 0.2), (0.05, 3600.0)])
def test_background_checks_wait_for_quiet_or_the_cap_and_are_never_lost(
    quiet: float, max_defer: float
) -> None:
    raw = corpus_raw("mimekit/rfc8463-example.msg")
    with make_server(dns_override=key_file(), dns_offline=True) as mp:
        assert mp.mailbox is not None and mp.checks is not None
        mp.checks.quiet, mp.checks.max_defer = quiet, max_defer
        uids = [send(mp, raw, sender_of(raw)) for _ in range(3)]
        for uid in uids:  # never quiet, yet done by the cap; or done once ingest pauses
            stored = wait_until(lambda u=uid: mp.mailbox.checks(u), what="stored checks")
            assert [s["Result"] for s in stored["Auth"]["DKIM"]] == ["pass", "pass"]


def test_modified_corpus_message_over_smtp_fails_dkim(tmp_path: Path) -> None:
    raw = corpus_raw("dkimpy/test2.message").replace(b"\n\n", b"\n\nChanged!\n", 1)
    with make_server(dns_override=key_file(), dns_offline=True, disable_checks=True) as mp:
        uid = send(mp, raw, "someone@gmail.com")
        assert mp.mailbox is not None and mp.mailbox.checks(uid) is None  # not at ingest
        report = get_json(mp, f"/api/v1/message/{uid}/auth-check")  # computed on demand
    (sig,) = report["DKIM"]
    assert (sig["Result"], sig["BodyHashOK"]) == ("fail", False)
    assert "dkim=fail (body modified)" in report["AuthenticationResults"]


def test_spf_dkim_dmarc_pass_with_a_simulated_client_ip(zone_file: Path) -> None:
    pem = (zone_file.parent / "key.pem").read_bytes()
    raw = signed_message("example.test", "sel", pem)
    with make_server(
        dns_override=str(zone_file), dns_offline=True, checks_client_ip="192.0.2.5"
    ) as mp:
        uid = send(mp, raw, "bounce@example.test")
        report = get_json(mp, f"/api/v1/message/{uid}/auth-check")
        headers = get_json(mp, f"/api/v1/message/{uid}/header-check")
    assert report["ClientIP"] == "192.0.2.5" and report["Simulated"] is True
    assert [d["Result"] for d in report["DKIM"]] == ["pass"]
    assert report["SPF"]["Result"] == "pass"
    assert report["DMARC"]["Result"] == "pass"
    assert report["DMARC"]["DKIMAligned"] and report["DMARC"]["SPFAligned"]
    ar = report["AuthenticationResults"]
    assert ar.startswith("Authentication-Results: test.local;")
    assert "spf=pass" in ar and "smtp.mailfrom=bounce@example.test" in ar
    assert "dmarc=pass (p=reject) header.from=example.test" in ar
    flags = {r["Name"]: r["OK"] for r in headers["Requirements"]}
    assert flags == {
        "From": True,
        "Message-ID": True,
        "Date": True,
        "OneClickUnsubscribe": True,
        "DKIM": True,
        "SPF": True,
        "DMARC": True,
    }
    assert headers["ListUnsubscribe"]["Links"] == [
        "https://example.test/u/1",
        "mailto:u@example.test",
    ]


def test_ed25519_signature_of_our_own_and_spf_fail_make_dmarc_pass_on_dkim(
    zone_file: Path,
) -> None:
    seed = (zone_file.parent / "ed.key").read_bytes()
    raw = signed_message("example.test", "ed", seed, algo=b"ed25519-sha256")
    with make_server(
        dns_override=str(zone_file), dns_offline=True, checks_client_ip="10.9.9.9"
    ) as mp:
        uid = send(mp, raw, "bounce@example.test")
        report = get_json(mp, f"/api/v1/message/{uid}/auth-check")
    assert [(d["Algorithm"], d["Result"]) for d in report["DKIM"]] == [("ed25519-sha256", "pass")]
    assert report["SPF"]["Result"] == "fail"
    assert (report["DMARC"]["Result"], report["DMARC"]["DKIMAligned"]) == ("pass", True)


def test_unsigned_message_without_alignment_fails_dmarc(zone_file: Path) -> None:
    raw = b"From: app@example.test\r\nTo: dev@example.org\r\nSubject: hi\r\n\r\nHello\r\n"
    with make_server(
        dns_override=str(zone_file), dns_offline=True, checks_client_ip="10.9.9.9"
    ) as mp:
        uid = send(mp, raw, "app@example.test")
        report = get_json(mp, f"/api/v1/message/{uid}/auth-check")
        headers = get_json(mp, f"/api/v1/message/{uid}/header-check")
    assert report["DKIM"] == []
    assert "dkim=none" in report["AuthenticationResults"]
    assert (report["SPF"]["Result"], report["DMARC"]["Result"]) == ("fail", "fail")
    flags = {r["Name"]: r["OK"] for r in headers["Requirements"]}
    # The check reads the message as sent, not the Message-ID the catcher makes up for it.
    assert flags["Message-ID"] is False
    assert flags["Date"] is False and flags["OneClickUnsubscribe"] is False


def test_auth_check_of_a_missing_message_is_404() -> None:
    with make_server() as mp, pytest.raises(urllib.error.HTTPError) as err:
        get_json(mp, "/api/v1/message/nope/auth-check")
    assert err.value.code == 404


# -- configuration ----------------------------------------------------------------------------


def test_bad_override_lines_and_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(OverrideError, match="line 2"):
        parse_overrides("ok.test TXT fine\nlonely\n")
    with pytest.raises(OverrideError, match="not an IP address"):
        parse_overrides("a.test A not-an-ip")
    bad = tmp_path / "bad.txt"
    bad.write_text("x.test A 999.1.1.1\n")
    with pytest.raises(ConfigError, match="--dns-override"):
        validate(Config(dns_override=str(bad)))
    with pytest.raises(ConfigError, match="cannot read"):
        validate(Config(dns_override=str(tmp_path / "missing.txt")))
    with pytest.raises(ConfigError, match="--checks-client-ip"):
        config_from(["--checks-client-ip", "mail.example.com"], {})
    with pytest.raises(ConfigError, match="--dns-offline needs"):
        config_from(["--dns-offline"], {})
    with pytest.raises(ConfigError, match="--checks-dnsbl"):
        config_from([], {"MP_CHECKS_DNSBL": "zen.spamhaus.org,not a zone"})
    cfg = config_from(
        ["--checks-dnsbl", "a.example, b.example", "--enable-spamassassin", "127.0.0.1:783"],
        {"MP_CHECKS_CLIENT_IP": "2001:db8::1", "MP_ALLOW_INTERNAL_HTTP_REQUESTS": "true"},
    )
    assert cfg.checks_dnsbl == ("a.example", "b.example")
    assert cfg.checks_client_ip == "2001:db8::1" and cfg.allow_internal_http_requests
    assert cfg.enable_spamassassin == "127.0.0.1:783"


def test_the_corpus_key_file_format_reads_as_txt_records() -> None:
    records = load_overrides(key_file())
    assert ("sed._domainkey.test.ex", "TXT") in records
    assert records[("brisbane._domainkey.football.example.com", "TXT")][0].startswith("v=DKIM1")


def test_refresh_picks_up_a_key_added_to_the_override_file(tmp_path: Path) -> None:
    # The developer's loop: the key is not published yet, they add it to the file, re-run.
    zone = tmp_path / "keys.txt"
    zone.write_text("# nothing yet\nunrelated.test TXT x\n")
    raw = corpus_raw("mimekit/gmail.msg")
    with make_server(dns_override=str(zone), dns_offline=True) as mp:
        uid = send(mp, raw, "someone@gmail.com")
        before = get_json(mp, f"/api/v1/message/{uid}/auth-check")
        (sig,) = before["DKIM"]
        assert sig["Result"] == "permerror" and sig["Reason"].startswith("key not found")
        zone.write_text(Path(key_file()).read_text())
        os.utime(zone, (1, 1))  # a different mtime even within the same clock tick
        stale = get_json(mp, f"/api/v1/message/{uid}/auth-check")
        fresh = get_json(mp, f"/api/v1/message/{uid}/auth-check?refresh=true")
        again = get_json(mp, f"/api/v1/message/{uid}/auth-check")
    assert stale == before  # stored: reading does not look DNS up again
    assert [d["Result"] for d in fresh["DKIM"]] == ["pass"]
    assert again == fresh  # the refreshed result is the stored one now


@contextmanager
def _gmail_message_and_a_zone(tmp_path: Path) -> Iterator[tuple[Checks, Server, str, Path]]:
    """A server with checks off (run on demand), the corpus's DKIM-signed gmail message in it,
    and an override file without its key yet (`_publish_key` adds it)."""
    zone = tmp_path / "keys.txt"
    zone.write_text("unrelated.test TXT x\n")
    # A database file: in memory, reads share the writer's one connection and would wait for
    # a held writer too.
    db = str(tmp_path / "mail.db")
    with make_server(
        dns_override=str(zone), dns_offline=True, disable_checks=True, database=db
    ) as mp:
        assert mp.checks is not None
        uid = send(mp, corpus_raw("mimekit/gmail.msg"), "someone@gmail.com")
        yield mp.checks, mp, uid, zone


def _publish_key(zone: Path) -> None:
    zone.write_text(Path(key_file()).read_text())
    os.utime(zone, (1, 1))  # a different mtime even within the same clock tick


@contextmanager
def _writer_held(mp: Server) -> Iterator[None]:
    """The store's writer thread blocked for the block's duration: commits queue up (with a
    database file; in memory, reads would wait for it too)."""
    assert mp.mailbox is not None
    # What was submitted before is committed first (and its waiters let go), not held too.
    mp.mailbox.store.write(lambda _store: None)
    holding, release = threading.Event(), threading.Event()

    def hold(_store: object) -> None:
        holding.set()
        release.wait(30)

    mp.mailbox.store.submit(hold)
    assert holding.wait(30)
    try:
        yield
    finally:
        release.set()


def _in_thread(call: Callable[[], dict[str, Any]]) -> tuple[threading.Thread, list[Any]]:
    """Start `call` in a thread; the list gets its answer."""
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(call()))
    thread.start()
    return thread, answers


def test_a_read_right_after_a_refresh_waits_for_the_refreshed_result(tmp_path: Path) -> None:
    # A check run answers its caller before its result is committed; a read that came next
    # used to find the result from before the refresh (seen as a flaky CI run).
    with _gmail_message_and_a_zone(tmp_path) as (checks, mp, uid, zone):
        before = checks.auth_check(uid)
        assert before["DKIM"][0]["Result"] == "permerror"
        _publish_key(zone)
        with _writer_held(mp):
            fresh = checks.auth_check(uid, refresh=True)  # its result waits to be committed
            assert fresh["DKIM"][0]["Result"] == "pass"
            reader, reads = _in_thread(lambda: checks.auth_check(uid))
            # Not answered while the refreshed result is uncommitted (the old one is stored).
            reader.join(timeout=0.3)
            assert reader.is_alive(), f"answered {reads} before the refresh was committed"
        reader.join(30)
        assert reads == [fresh]


def test_a_refresh_does_not_take_the_result_of_a_run_started_before_it(tmp_path: Path) -> None:
    with _gmail_message_and_a_zone(tmp_path) as (checks, mp, uid, zone):
        with _writer_held(mp):
            # The first read computes (nothing stored: checks are off) with the key missing;
            # its run stays in flight until its result is committed.
            assert checks.auth_check(uid)["DKIM"][0]["Result"] == "permerror"
            _publish_key(zone)
            refresher, refreshed = _in_thread(lambda: checks.auth_check(uid, refresh=True))
            # It waits for the run in flight, whose result is not committed yet.
            refresher.join(timeout=0.3)
            assert refresher.is_alive(), f"answered {refreshed} before the first run was saved"
        refresher.join(30)
        assert [r["DKIM"][0]["Result"] for r in refreshed] == ["pass"]
        assert checks.auth_check(uid)["DKIM"][0]["Result"] == "pass"


def test_the_checks_package_stays_below_the_web_layer() -> None:
    import ast

    import mailpit_py.checks

    banned = ("flask", "flask_sock", "aiosmtpd", "mailpit_py.webapp", "mailpit_py.smtp", "sqlite3")
    for path in Path(mailpit_py.checks.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(banned), f"{path.name} imports {name}"


def test_a_signature_is_looked_for_in_the_header_section_only() -> None:
    from mailpit_py.checks.dkim_check import has_signature

    assert has_signature(b"From: a@b\r\nDKIM-Signature: v=1; a=rsa-sha256\r\n\r\nbody\r\n")
    assert has_signature(b"dkim-signature : v=1\nFrom: a@b\n\nbody\n")  # bare LF, any case
    assert not has_signature(b"From: a@b\r\nX-DKIM-Signature: v=1\r\n\r\nbody\r\n")
    # Quoted in the body (a forwarded message shown as text) is not a signature of this one.
    assert not has_signature(b"From: a@b\r\n\r\nDKIM-Signature: v=1; d=example.com\r\n")
    assert not has_signature(b"")


@pytest.mark.parametrize(
    ("peer", "ip"),
    [
        ("[::ffff:127.0.0.1]:5000", "127.0.0.1"),  # an IPv4 client on a dual-stack listener
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("[::1]:25", "::1"),
        ("[2001:db8::5]:25", "2001:db8::5"),
        ("192.0.2.9:2525", "192.0.2.9"),
        ("not an address", ""),
    ],
)
def test_the_peer_address_is_the_clients_own(peer: str, ip: str) -> None:
    # Python 3.11 writes ::ffff:127.0.0.1 as ::ffff:7f00:1, which the Checks tab showed.
    from mailpit_py.checks.auth import peer_ip

    assert peer_ip(peer) == ip
