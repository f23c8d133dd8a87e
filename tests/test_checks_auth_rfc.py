"""Message checks against the RFCs' corner cases: DKIM (RFC 6376, 8301, 8463) per signature,
SPF (RFC 7208) limits, syntax and macros, DMARC (RFC 7489) record discovery, tags and
alignment, and the Authentication-Results field (RFC 8601). DNS answers come from override
records, offline, as a published zone would give them."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from dkim.canonicalization import CanonicalizationPolicy
from test_checks_auth import get_json, send

from helpers import dkim_rsa_key, make_server
from mailpit_py.checks import auth, dmarc, spf
from mailpit_py.checks.dkim_check import DkimSignature, verify_all
from mailpit_py.net.dns import Resolver, parse_overrides

MSG = (
    b"From: News <news@example.test>\r\nTo: dev@example.org\r\nSubject: Weekly  news\r\n"
    b"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <n1@example.test>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Caf\xc3\xa9 menu:  soup \r\n\r\nSee you.\r\n"
)
SIGNED = [b"from", b"to", b"subject", b"date", b"message-id"]


@pytest.fixture(scope="module")
def key() -> tuple[bytes, str]:
    return dkim_rsa_key()


def resolver(zone: str) -> Resolver:
    return Resolver(parse_overrides(zone), offline=True)


def key_zone(pub: str, selector: str = "sel", extra: str = "") -> str:
    return f'{selector}._domainkey.example.test TXT "v=DKIM1; k=rsa; {extra}p={pub}"\n'


def sign(msg: bytes, pem: bytes, selector: bytes = b"sel", **kw: object) -> bytes:
    kw.setdefault("include_headers", SIGNED)
    return dkim.sign(msg, selector, b"example.test", pem, **kw) + msg  # type: ignore[arg-type]


def verdicts(raw: bytes, zone: str) -> list[tuple[str, str]]:
    return [(s.result, s.reason) for s in verify_all(raw, resolver(zone))]


def dkimpy_says(raw: bytes, zone: str) -> bool:
    """dkimpy's own verdict on the first signature, over the same records."""
    records = parse_overrides(zone)

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        found = records.get((name.decode().rstrip(".").lower(), "TXT"))
        return found[0].encode() if found else None

    return bool(dkim.verify(raw, dnsfunc=dnsfunc))


def checked(raw: bytes, zone: str) -> dict[str, Any]:
    """The whole authentication check of a message from 192.0.2.1 with a null sender."""
    return auth.check(
        raw,
        resolver(zone),
        mail_from="",
        helo="",
        peer="",
        client_ip="192.0.2.1",
        authserv_id="mx.test",
    )


def hand_signed(msg: bytes, pem: bytes, template: str, body_canon: str = "relaxed") -> bytes:
    """A DKIM-Signature made from `template` as written (any tags, any folding; `{bh}` for the
    body hash, `b=` last and empty), signed with relaxed header canonicalization: what a
    signer other than dkimpy may produce."""
    head, body = msg.split(b"\r\n\r\n", 1)
    policy = CanonicalizationPolicy.from_c_value(f"relaxed/{body_canon}".encode())
    bh = base64.b64encode(hashlib.sha256(policy.canonicalize_body(body)).digest()).decode()
    field = "DKIM-Signature:" + template.replace("{bh}", bh)
    names = re.search(r"h\s*=([^;]*)", field)
    assert names is not None
    fields: list[tuple[str, str]] = []
    for line in head.decode("utf-8").split("\r\n"):
        if line[:1] in (" ", "\t"):
            fields[-1] = (fields[-1][0], fields[-1][1] + "\r\n" + line)
        else:
            name, _, value = line.partition(":")
            fields.append((name, value))

    def relaxed(name: str, value: str) -> str:
        return (
            name.strip().lower() + ":" + re.sub(r"[ \t]+", " ", re.sub(r"\r\n", "", value)).strip()
        )

    data = ""
    used: dict[str, int] = {}
    for name in [n.strip().lower() for n in re.sub(r"\s+", "", names.group(1)).split(":")]:
        matching = [f for f in fields if f[0].strip().lower() == name]
        seen = used.get(name, 0)
        used[name] = seen + 1
        if seen < len(matching):
            data += relaxed(*matching[-1 - seen]) + "\r\n"
    name, _, value = field.partition(":")
    data += relaxed(name, value)
    private = serialization.load_pem_private_key(pem, None)
    assert isinstance(private, rsa.RSAPrivateKey)
    b = base64.b64encode(private.sign(data.encode(), padding.PKCS1v15(), hashes.SHA256()))
    return (field + b.decode()).encode() + b"\r\n" + msg


def template(extra: str) -> str:
    return (
        " v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test; s=sel;"
        f" {extra}h=from:to:subject:date:message-id; bh={{bh}}; b="
    )


# -- DKIM: canonicalization ------------------------------------------------------------------


RELAXED_CHANGES = [
    ("trailing whitespace", lambda m: m.replace(b"soup \r\n", b"soup\t \r\n")),
    ("empty lines at the end", lambda m: m + b"\r\n\r\n\r\n"),
    ("a run of WSP", lambda m: m.replace(b"menu:  soup", b"menu: \t soup")),
    ("header refolded", lambda m: m.replace(b"Subject: Weekly  news", b"Subject: Weekly\r\n news")),
    ("header name case", lambda m: m.replace(b"Subject:", b"SUBJECT:")),
]


@pytest.mark.parametrize("canon", [b"relaxed", b"simple"])
@pytest.mark.parametrize(("change", "edit"), RELAXED_CHANGES, ids=[c for c, _ in RELAXED_CHANGES])
def test_canonicalization_survives_what_it_should_and_no_more(
    key: tuple[bytes, str], canon: bytes, change: str, edit: object
) -> None:
    raw = sign(MSG, key[0], canonicalize=(canon, canon))
    changed = edit(raw)  # type: ignore[operator]
    assert changed != raw
    ((result, reason),) = verdicts(changed, key_zone(key[1]))
    # Simple canonicalization ignores only empty lines at the end of the body.
    if canon == b"relaxed" or change == "empty lines at the end":
        assert (result, reason) == ("pass", "")
    else:
        assert result == "fail", reason
        assert reason.startswith(
            "body modified" if "WSP" in change or "trailing" in change else "header modified"
        )
    assert (result == "pass") == dkimpy_says(changed, key_zone(key[1]))


def test_a_body_re_encoded_after_signing_fails(key: tuple[bytes, str]) -> None:
    raw = sign(MSG, key[0], canonicalize=(b"relaxed", b"relaxed"))
    qp = raw.replace(
        b"Content-Transfer-Encoding: 8bit", b"Content-Transfer-Encoding: quoted-printable"
    )
    qp = qp.replace(b"Caf\xc3\xa9", b"Caf=C3=A9")
    ((result, reason),) = verdicts(qp, key_zone(key[1]))
    assert (result, reason.split(":")[0]) == ("fail", "body modified")


# -- DKIM: tags of the signature ----------------------------------------------------------------


def test_l_signs_part_of_the_body_and_says_what_is_not_signed(key: tuple[bytes, str]) -> None:
    raw = sign(MSG, key[0], length=True)
    assert verdicts(raw, key_zone(key[1])) == [("pass", "")]
    appended = raw + b"Click here: https://evil.example/\r\n"
    ((result, reason),) = verdicts(appended, key_zone(key[1]))
    assert result == "pass"  # RFC 6376 3.5: only l= octets are hashed
    assert reason.startswith("partly signed: l=") and "octets of the body are not signed" in reason


def test_h_listing_a_field_twice_or_absent_locks_it(key: tuple[bytes, str]) -> None:
    names = [b"from", b"subject", b"subject", b"reply-to"]  # over-signed: one Subject, no Reply-To
    raw = sign(MSG, key[0], include_headers=names)
    zone = key_zone(key[1])
    assert verdicts(raw, zone) == [("pass", "")]
    for added in (b"Subject: second\r\n", b"Reply-To: evil@example.net\r\n"):
        changed = raw.replace(b"To: dev@", added + b"To: dev@", 1)
        assert [r for r, _ in verdicts(changed, zone)] == ["fail"]
        assert not dkimpy_says(changed, zone)


def test_x_in_the_past_and_t_in_the_future_are_not_a_pass(key: tuple[bytes, str]) -> None:
    now = int(time.time())
    zone = key_zone(key[1])
    ok = hand_signed(MSG, key[0], template(f"t={now - 60}; x={now + 86400}; "))
    assert verdicts(ok, zone) == [("pass", "")]
    expired = hand_signed(MSG, key[0], template(f"t={now - 4 * 86400}; x={now - 2 * 86400}; "))
    assert [(r, why.split(" (")[0]) for r, why in verdicts(expired, zone)] == [
        ("permerror", "x= value is past")
    ]
    future = hand_signed(MSG, key[0], template(f"t={now + 2 * 86400}; "))
    assert [(r, why.split(" (")[0]) for r, why in verdicts(future, zone)] == [
        ("permerror", "t= value is in the future")
    ]


def test_i_outside_d_is_a_permerror(key: tuple[bytes, str]) -> None:
    raw = hand_signed(MSG, key[0], template("i=news@example.net; "))
    ((result, reason),) = verdicts(raw, key_zone(key[1]))
    assert result == "permerror" and reason.startswith("i= domain is not a subdomain of d=")
    sub = hand_signed(MSG, key[0], template("i=news@mail.example.test; "))
    assert verdicts(sub, key_zone(key[1])) == [("pass", "")]


def test_a_signature_header_with_fws_everywhere_verifies(key: tuple[bytes, str]) -> None:
    raw = hand_signed(
        MSG,
        key[0],
        " v = 1 ;\r\n\ta = rsa-sha256 ; c = relaxed/relaxed ;\r\n d = example.test ;"
        " s = sel ;\r\n h = from : to :\r\n\tsubject : date : message-id ;"
        "\r\n bh = {bh} ;\r\n b = ",
    )
    (sig,) = verify_all(raw, resolver(key_zone(key[1])))
    assert (sig.result, sig.domain, sig.selector) == ("pass", "example.test", "sel")
    assert sig.headers == ["from", "to", "subject", "date", "message-id"]


def test_a_signature_that_does_not_sign_from_is_a_permerror(key: tuple[bytes, str]) -> None:
    raw = hand_signed(MSG, key[0], template("").replace("h=from:", "h="))
    assert dkimpy_says(raw, key_zone(key[1]))  # dkimpy verifies it all the same
    ((result, reason),) = verdicts(raw, key_zone(key[1]))
    assert result == "permerror" and reason.startswith("From field not signed")


def test_a_selector_with_dots(key: tuple[bytes, str]) -> None:
    raw = sign(MSG, key[0], selector=b"2026.eu.mail")
    (sig,) = verify_all(raw, resolver(key_zone(key[1], selector="2026.eu.mail")))
    assert (sig.result, sig.selector) == ("pass", "2026.eu.mail")


# -- DKIM: RFC 8301 and the key record ----------------------------------------------------------


def test_rsa_sha1_never_passes(key: tuple[bytes, str]) -> None:
    raw = sign(MSG, key[0], signature_algorithm=b"rsa-sha1")
    assert dkimpy_says(raw, key_zone(key[1]))  # dkimpy still verifies it
    (sig,) = verify_all(raw, resolver(key_zone(key[1])))
    assert (sig.result, sig.signature_ok) == ("permerror", False)
    assert sig.reason.startswith("weak algorithm: rsa-sha1") and "RFC 8301" in sig.reason
    assert (
        dmarc.evaluate(
            resolver('_dmarc.example.test TXT "v=DMARC1; p=reject"'),
            "example.test",
            [s.domain for s in [sig] if s.result == "pass"],
            "none",
            "",
        ).result
        == "fail"
    )


def test_a_key_under_1024_bits_is_refused(tmp_path: object) -> None:
    pem = subprocess.run(
        ["openssl", "genrsa", "-traditional", "512"], capture_output=True, check=True
    ).stdout
    private = serialization.load_pem_private_key(pem, None)
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = sign(MSG, pem)
    ((result, reason),) = verdicts(raw, key_zone(base64.b64encode(der).decode()))
    assert result == "permerror"
    assert reason.startswith("weak key: a 512-bit RSA key") and "RFC 8301" in reason


def test_key_flags_and_restrictions(key: tuple[bytes, str]) -> None:
    raw = sign(MSG, key[0])
    ((result, reason),) = verdicts(raw, key_zone(key[1], extra="t=y; "))
    assert result == "pass" and reason.startswith("testing mode: the key record says t=y")
    strict = hand_signed(MSG, key[0], template("i=news@mail.example.test; "))
    ((result, reason),) = verdicts(strict, key_zone(key[1], extra="t=s; "))
    assert result == "permerror" and "t=s" in reason
    ((result, reason),) = verdicts(raw, key_zone(key[1], extra="h=sha1; "))
    assert result == "permerror" and reason.startswith("inappropriate hash algorithm")
    ed = key_zone(key[1]).replace("k=rsa", "k=ed25519")
    ((result, reason),) = verdicts(raw, ed)
    assert result == "permerror" and reason.startswith("key algorithm mismatch")


def test_several_signatures_get_a_verdict_each_and_one_pass_counts(
    key: tuple[bytes, str],
) -> None:
    other_pem, _ = dkim_rsa_key()
    raw = sign(sign(MSG, key[0]), other_pem, selector=b"old")  # "old" is signed by another key
    zone = (
        key_zone(key[1])
        + key_zone(key[1], selector="old")
        + "\n"
        + ('_dmarc.example.test TXT "v=DMARC1; p=reject; adkim=s"\n')
    )
    sigs = verify_all(raw, resolver(zone))
    assert [(s.selector, s.result) for s in sigs] == [("old", "fail"), ("sel", "pass")]
    report = checked(raw, zone)
    assert report["DMARC"]["Result"] == "pass" and report["DMARC"]["DKIMAligned"]
    ar = report["AuthenticationResults"]
    assert "dkim=fail (header modified) header.d=example.test header.s=old" in ar
    assert "dkim=pass header.d=example.test header.s=sel" in ar


# -- SPF ------------------------------------------------------------------------------------------

SPF_ZONE = """
good.test TXT "v=spf1 ip4:192.0.2.0/24 -all"
late.test TXT "v=spf1 +all foo:bar"
badnet.test TXT "v=spf1 ip4:192.0.2.0/24 ip4:300.1.1.1 -all"
wrongfamily.test TXT "v=spf1 ip4:192.0.2.0/24 ip4:2001:db8::/32 -all"
tworedirects.test TXT "v=spf1 redirect=good.test redirect=good.test"
allwins.test TXT "v=spf1 ?all redirect=good.test"
includesnone.test TXT "v=spf1 include:nospf.test -all"
nospf.test TXT "some other text"
upper.test TXT "V=SPF1 IP4:192.0.2.0/24 -ALL"
six.test TXT "v=spf1 ip6:2001:db8:4000::/36 -all"
ptr.test TXT "v=spf1 ptr -all"
5.2.0.192.in-addr.arpa PTR MAIL.PTR.TEST.
mail.ptr.test A 192.0.2.5
helo.test TXT "v=spf1 a -all"
helo.test A 192.0.2.5
badmacro.test TXT "v=spf1 +all exists:%{d0}.x.test"
stray.test TXT "v=spf1 a:50%.stray.test +all"
"""


def spf_result(ip: str, sender: str, helo: str = "", extra: str = "") -> spf.SpfResult:
    return spf.check_host(resolver(SPF_ZONE + extra), ip, sender, helo)


@pytest.mark.parametrize(
    ("ip", "domain", "result", "why"),
    [
        ("192.0.2.5", "late.test", "permerror", "malformed term 'foo:bar'"),
        ("192.0.2.5", "badnet.test", "permerror", "bad network"),
        ("192.0.2.5", "wrongfamily.test", "permerror", "not an ip4 network"),
        ("192.0.2.5", "tworedirects.test", "permerror", "redirect= given twice"),
        ("192.0.2.5", "allwins.test", "neutral", "?all"),
        ("192.0.2.5", "includesnone.test", "permerror", "include:nospf.test has no SPF record"),
        ("192.0.2.5", "upper.test", "pass", "IP4:192.0.2.0/24"),
        ("10.0.0.1", "upper.test", "fail", "-ALL"),
        ("2001:db8:4fff::1", "six.test", "pass", "ip6:2001:db8:4000::/36"),
        ("2001:db8:5000::1", "six.test", "fail", "-all"),
        ("::ffff:192.0.2.9", "good.test", "pass", "ip4:192.0.2.0/24"),
        ("192.0.2.5", "ptr.test", "pass", "ptr"),
        ("192.0.2.6", "ptr.test", "fail", "-all"),
        ("192.0.2.5", "badmacro.test", "permerror", "zero digit transformer"),
        ("192.0.2.5", "stray.test", "permerror", "bad macro '%.'"),
    ],
)
def test_spf_verdicts_of_rfc_7208(ip: str, domain: str, result: str, why: str) -> None:
    res = spf_result(ip, f"app@{domain}")
    assert res.result == result, res.reason
    assert why in (res.mechanism if result not in ("permerror", "temperror") else res.reason)


def test_spf_ten_lookups_are_allowed_and_the_eleventh_is_a_permerror() -> None:
    def chain(n: int) -> str:
        lines = [f'c{i}.test TXT "v=spf1 include:c{i + 1}.test -all"' for i in range(n - 1)]
        return (
            "\n"
            + "\n".join(lines)
            + f'\nc{n - 1}.test TXT "v=spf1 a:good.test ip4:192.0.2.0/24 -all"'
            + "\ngood.test A 198.51.100.1\n"
        )

    ten = spf_result("192.0.2.5", "x@c0.test", extra=chain(10))  # 9 includes and an a
    assert (ten.result, ten.lookups) == ("pass", 10)
    eleven = spf_result("192.0.2.5", "x@c0.test", extra=chain(11))
    assert eleven.result == "permerror" and "more than 10" in eleven.reason


def test_spf_null_sender_is_checked_for_the_helo_name() -> None:
    res = spf_result("192.0.2.5", "", helo="helo.test")
    assert (res.result, res.domain, res.mechanism) == ("pass", "helo.test", "a")
    literal = spf_result("192.0.2.5", "", helo="[192.0.2.5]")
    assert literal.result == "none" and "not a multi-label domain name" in literal.reason
    assert spf_result("192.0.2.5", "", helo="localhost").result == "none"


# RFC 7208 7.4's examples: sender strong-bad@email.example.com from 192.0.2.3 (or 2001:db8::cb01).
MACRO_EXAMPLES = [
    ("%{s}", "strong-bad@email.example.com"),
    ("%{o}", "email.example.com"),
    ("%{d}", "email.example.com"),
    ("%{d4}", "email.example.com"),
    ("%{d3}", "email.example.com"),
    ("%{d2}", "example.com"),
    ("%{d1}", "com"),
    ("%{dr}", "com.example.email"),
    ("%{d2r}", "example.email"),
    ("%{l}", "strong-bad"),
    ("%{l-}", "strong.bad"),
    ("%{lr}", "strong-bad"),
    ("%{lr-}", "bad.strong"),
    ("%{l1r-}", "strong"),
    ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
    ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
    ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
    ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
    ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
    ("%{h}.%{i}", "mx.example.org.192.0.2.3"),
    ("%{S}", "strong-bad%40email.example.com"),
    ("x%%y%_z%-w.example", "x%y z%20w.example"),
]


@pytest.mark.parametrize(("spec", "expanded"), MACRO_EXAMPLES)
def test_spf_macros_expand_as_rfc_7208_shows(spec: str, expanded: str) -> None:
    ev = spf._Evaluator(resolver(""), "192.0.2.3", "strong-bad@email.example.com", "mx.example.org")
    assert ev.expand(spec, "email.example.com") == expanded


def test_spf_ipv6_macro_and_long_expansion() -> None:
    ev = spf._Evaluator(resolver(""), "2001:db8::cb01", "strong-bad@email.example.com", "")
    assert ev.expand("%{ir}.%{v}._spf.%{d2}", "email.example.com") == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
    )
    long = ev.expand("%{ir}.%{ir}.%{ir}.%{ir}.example.com", "email.example.com")
    assert len(long) <= 253 and long.endswith(".ip6.example.com") is False
    assert long.endswith("2.example.com") and not long.startswith(".")


# -- DMARC ----------------------------------------------------------------------------------------

DMARC_ZONE = """
_dmarc.org.test TXT "v=DMARC1; p=reject; sp=quarantine"
_dmarc.two.org.test TXT "v=DMARC1; p=none"
_dmarc.two.org.test TXT "v=DMARC1; p=none"
_dmarc.lower.test TXT "v=dmarc1; p=reject"
_dmarc.spaced.test TXT "v = DMARC1 ; p = reject"
_dmarc.other.test TXT "some text"
_dmarc.other.test TXT "v=DMARC1; p=quarantine; adkim=strict; aspf=x; pct=abc; foo=bar"
_dmarc.nop.test TXT "v=DMARC1; rua=mailto:dmarc@nop.test"
_dmarc.nopnorua.test TXT "v=DMARC1; adkim=s"
_dmarc.badsp.test TXT "v=DMARC1; p=reject; sp=never; rua=mailto:d@badsp.test"
_dmarc.pct0.test TXT "v=DMARC1; p=reject; pct=0"
_dmarc.pct50.test TXT "v=DMARC1; p=reject; pct=50"
_dmarc.strict.test TXT "v=DMARC1; p=reject; adkim=s; aspf=s"
_dmarc.evil.test TXT "v=DMARC1; p=reject"
"""


def dmarc_of(
    domain: str, dkim_d: tuple[str, ...] = (), spf: str = "fail", spf_d: str = ""
) -> dmarc.DmarcResult:
    return dmarc.evaluate(resolver(DMARC_ZONE), domain, list(dkim_d), spf, spf_d)


def test_dmarc_record_discovery() -> None:
    sub = dmarc_of("news.org.test")
    assert (sub.result, sub.record_domain, sub.policy) == ("fail", "org.test", "quarantine")
    # Two records at the From domain: no DMARC, and no fallback to org.test's (6.6.3 step 5).
    two = dmarc_of("two.org.test")
    assert (two.result, two.record) == ("none", "")
    assert "2 DMARC records" in two.reason
    # v=DMARC1 is upper case; spaces around = are allowed (6.4).
    assert dmarc_of("lower.test").result == "none"
    assert (dmarc_of("spaced.test").result, dmarc_of("spaced.test").policy) == ("fail", "reject")


def test_dmarc_tags_with_bad_values_take_their_defaults() -> None:
    res = dmarc_of("other.test", dkim_d=("mail.other.test",))
    assert (res.adkim, res.aspf) == ("r", "r")  # "strict" is not s: relaxed, so this aligns
    assert (res.result, res.policy) == ("pass", "quarantine")
    assert "pct" not in dmarc_of("other.test").reason  # pct=abc: 100


def test_dmarc_without_a_valid_p() -> None:
    with_rua = dmarc_of("nop.test")
    assert (with_rua.result, with_rua.policy) == ("fail", "none")
    assert "read as p=none" in with_rua.reason
    without = dmarc_of("nopnorua.test", dkim_d=("nopnorua.test",))
    assert (without.result, without.policy) == ("permerror", "")
    bad_sp = dmarc_of("badsp.test")
    assert (bad_sp.result, bad_sp.policy) == ("fail", "none")


def test_dmarc_pct() -> None:
    zero = dmarc_of("pct0.test")
    assert (zero.result, zero.policy) == ("fail", "quarantine")
    assert "lowered to p=quarantine by pct=0" in zero.reason
    half = dmarc_of("pct50.test")
    assert (half.result, half.policy) == ("fail", "reject")
    assert "50% of failing mail (pct=50) and p=quarantine to the rest" in half.reason


@pytest.mark.parametrize(
    ("dkim_d", "spf_result", "spf_d", "result"),
    [
        (("strict.test",), "fail", "", "pass"),
        (("mail.strict.test",), "fail", "", "fail"),  # adkim=s
        ((), "pass", "bounce.strict.test", "fail"),  # aspf=s
        ((), "pass", "strict.test", "pass"),
        ((), "pass", "other.test", "fail"),  # SPF passes unaligned, no DKIM: fail
        (("other.test",), "pass", "strict.test", "pass"),
    ],
)
def test_dmarc_strict_alignment(
    dkim_d: tuple[str, ...], spf_result: str, spf_d: str, result: str
) -> None:
    assert dmarc_of("strict.test", dkim_d, spf_result, spf_d).result == result


def test_dmarc_relaxed_alignment_uses_the_public_suffix_list_offline() -> None:
    assert dmarc.organizational_domain("mail.example.co.uk") == "example.co.uk"
    assert dmarc.organizational_domain("a.b.example.github.io") == "example.github.io"
    assert dmarc.aligned("bounce.example.co.uk", "news.example.co.uk", "r")
    assert not dmarc.aligned("example.co.uk", "other.co.uk", "r")
    assert not dmarc.aligned("one.github.io", "two.github.io", "r")


def test_dmarc_checks_every_domain_of_a_from_field_with_several_addresses(
    key: tuple[bytes, str],
) -> None:
    msg = MSG.replace(
        b"From: News <news@example.test>", b"From: News <news@example.test>, ceo@evil.test"
    )
    raw = sign(msg, key[0])
    zone = key_zone(key[1]) + DMARC_ZONE + '_dmarc.example.test TXT "v=DMARC1; p=none"\n'
    report = checked(raw, zone)
    assert report["DKIM"][0]["Result"] == "pass"
    dm = report["DMARC"]
    assert (dm["Result"], dm["FromDomain"], dm["Policy"]) == ("fail", "evil.test", "reject")
    assert "the From field has 2 domains" in dm["Reason"] and "example.test pass" in dm["Reason"]
    assert "dmarc=fail (p=reject) header.from=evil.test" in report["AuthenticationResults"]


# -- Authentication-Results -----------------------------------------------------------------------


def test_authentication_results_quotes_and_comments_hostile_values_safely() -> None:
    sig = DkimSignature(
        domain='ex"ample\\.test',
        selector="s(1",
        algorithm="rsa-sha256",
        canonicalization="relaxed/relaxed",
        identity="",
        headers=["from"],
        body_hash_ok=False,
        signature_ok=False,
        result="permerror",
        reason="x= value is past (b'1)': more",
    )
    spf_res = spf.SpfResult("none", "a(b).test", "192.0.2.1", "")
    dm = dmarc.DmarcResult("none", "example.test", "", "", "", "r", "r", False, False, "")
    ar = auth.authentication_results("mx.test", [sig], spf_res, 'a"b@x.test', "", dm)
    assert 'header.d="ex\\"ample\\\\.test"' in ar and 'header.s="s(1"' in ar
    assert "dkim=permerror (x= value is past b'1') header.d" in ar
    assert 'spf=none (ab.test: 192.0.2.1 is none) smtp.mailfrom="a\\"b@x.test"' in ar
    assert ar.startswith("Authentication-Results: mx.test;\r\n\tdkim=")


def test_stored_checks_read_the_from_addresses_as_sent_not_as_decoded(tmp_path: Path) -> None:
    # The display name decodes to "boss@bank.test," which is no address (the stored header
    # values are decoded, so the checks read the raw field); written out, it is one.
    zone = tmp_path / "zone.txt"
    zone.write_text(
        'evil.test TXT "v=spf1 ip4:192.0.2.0/24 -all"\n'
        '_dmarc.evil.test TXT "v=DMARC1; p=none"\n'
        '_dmarc.bank.test TXT "v=DMARC1; p=reject"\n'
    )
    disguised = (
        b"From: =?utf-8?q?boss=40bank.test=2C?= <x@evil.test>\r\nTo: dev@example.org\r\n"
        b"Subject: hi\r\n\r\nHello\r\n"
    )
    two = disguised.replace(
        b"=?utf-8?q?boss=40bank.test=2C?= <x@evil.test>", b"x@evil.test, boss@bank.test"
    )
    with make_server(dns_override=str(zone), dns_offline=True, checks_client_ip="192.0.2.5") as mp:
        first = get_json(mp, f"/api/v1/message/{send(mp, disguised, 'b@evil.test')}/auth-check")
        second = get_json(mp, f"/api/v1/message/{send(mp, two, 'b@evil.test')}/auth-check")
    assert first["SPF"]["Result"] == "pass"
    dm = first["DMARC"]
    assert (dm["Result"], dm["FromDomain"], dm["Policy"]) == ("pass", "evil.test", "none")
    dm = second["DMARC"]
    assert (dm["Result"], dm["FromDomain"], dm["Policy"]) == ("fail", "bank.test", "reject")
