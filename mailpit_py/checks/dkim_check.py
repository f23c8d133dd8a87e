"""DKIM (RFC 6376, RFC 8463): verify every signature of a message with dkimpy and say, per
signature, what was signed, with what, and why it failed."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Any

import dkim
from dkim.canonicalization import CanonicalizationPolicy

from mailpit_py.net.dns import DnsError, Resolver

_quiet = logging.getLogger("mailpit_py.checks.dkim")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False  # dkimpy logs every failure at ERROR; our result says it instead


@dataclass(frozen=True)
class DkimSignature:
    """The verdict on one DKIM-Signature header field."""

    domain: str
    selector: str
    algorithm: str
    canonicalization: str
    identity: str
    headers: list[str]
    body_hash_ok: bool
    signature_ok: bool
    result: str  # RFC 8601: pass, fail, neutral, temperror, permerror
    reason: str  # empty on pass

    def to_api(self) -> dict[str, Any]:
        return {
            "Domain": self.domain,
            "Selector": self.selector,
            "Algorithm": self.algorithm,
            "Canonicalization": self.canonicalization,
            "Identity": self.identity,
            "SignedHeaders": self.headers,
            "BodyHashOK": self.body_hash_ok,
            "SignatureOK": self.signature_ok,
            "Result": self.result,
            "Reason": self.reason,
        }


def _tags(value: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value.decode("ascii", "replace").split(";"):
        if "=" in item:
            k, v = item.split("=", 1)
            out[k.strip()] = re.sub(r"\s+", "", v) if k.strip() in ("b", "bh", "h") else v.strip()
    return out


# A DKIM-Signature field at the start of a header line (RFC 6376 section 3.5), any case.
_SIGNATURE_FIELD = re.compile(rb"(?:^|\n)dkim-signature[ \t]*:", re.IGNORECASE)


def has_signature(raw: bytes) -> bool:
    """Whether the header section holds a DKIM-Signature: most caught mail is unsigned, and
    dkimpy would otherwise read (and copy) the whole message, attachments and all, to say so."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return bool(_SIGNATURE_FIELD.search(raw, 0, min(ends) if ends else len(raw)))


def verify_all(raw: bytes, resolver: Resolver) -> list[DkimSignature]:
    """One verdict per DKIM-Signature, topmost first."""
    if not has_signature(raw):
        return []
    try:
        checker = dkim.DKIM(raw, logger=_quiet, timeout=resolver.timeout)
    except Exception as exc:  # dkimpy raises on unparsable header blocks
        return [_broken(f"the message headers cannot be read: {exc}")]
    sigs = [v for k, v in checker.headers if k.lower() == b"dkim-signature"]
    return [_verify_one(raw, i, _tags(value), resolver) for i, value in enumerate(sigs)]


def _unsigned_tail(checker: dkim.DKIM, tags: dict[str, str]) -> str:
    """With l=, what of the body the signature leaves out: anyone on the way may append
    there (RFC 6376 8.2), so a pass says so."""
    if not tags.get("l", "").isdigit():
        return ""
    canon = tags.get("c", "simple/simple").encode()
    body = CanonicalizationPolicy.from_c_value(canon).canonicalize_body(checker.body)
    rest = len(body) - int(tags["l"])
    if rest <= 0:
        return ""
    return f"partly signed: l={tags['l']}: the last {rest} octets of the body are not signed"


def _key_tags(record: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in record.split(";"):
        if "=" in item:
            k, v = item.split("=", 1)
            out.setdefault(k.strip().lower(), re.sub(r"\s+", "", v))
    return out


def _key_mismatch(key: dict[str, str], sig: dict[str, str]) -> str:
    """Why the key record may not verify this signature (RFC 6376 3.6.1, 6.1.2), or ""."""
    algorithm = sig.get("a", "").strip().lower()
    key_type, _, hash_name = algorithm.partition("-")
    if key.get("k", "rsa").lower() != key_type:
        return (
            f"key algorithm mismatch: the key is k={key.get('k', 'rsa')}, the signature "
            f"a={algorithm}"
        )
    hashes = [h for h in key.get("h", "").lower().split(":") if h]
    if hashes and hash_name not in hashes:
        return f"inappropriate hash algorithm: the key allows h={key['h']}, not {hash_name}"
    flags = key.get("t", "").lower().split(":")
    domain = sig.get("d", "").strip().lower()
    identity = sig.get("i", "").strip().lower().rpartition("@")[2]
    if "s" in flags and identity and identity != domain:
        return f"the key record says t=s: the i= domain {identity} must be d={domain} itself"
    return ""


def _broken(reason: str, tags: dict[str, str] | None = None) -> DkimSignature:
    t = tags or {}
    return DkimSignature(
        domain=t.get("d", ""),
        selector=t.get("s", ""),
        algorithm=t.get("a", ""),
        canonicalization=t.get("c", "simple/simple"),
        identity=t.get("i", ""),
        headers=[h for h in t.get("h", "").split(":") if h],
        body_hash_ok=False,
        signature_ok=False,
        result="permerror",
        reason=reason,
    )


def _verify_one(raw: bytes, idx: int, tags: dict[str, str], resolver: Resolver) -> DkimSignature:
    key_problem: list[tuple[str, str]] = []  # (result, reason) found while fetching the key
    key_flags: set[str] = set()  # the key record's t= flags (y: testing, s: strict)

    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
        qname = name.decode() if isinstance(name, bytes) else name
        try:
            records = resolver.txt(qname)
        except DnsError as exc:
            if exc.kind == "temperror":
                key_problem.append(("temperror", f"key lookup failed: {exc}"))
                raise dkim.DnsTimeoutError(str(exc)) from None
            records = []
        keys = [r for r in records if "p=" in r]
        if not keys:
            key_problem.append(("permerror", f"key not found: no DKIM key at {qname.rstrip('.')}"))
            return None
        key = keys[0]
        if re.search(r"(^|;)\s*p=\s*(;|$)", key):
            key_problem.append(("permerror", "revoked key: the key record has an empty p="))
            return None
        problem = _key_mismatch(_key_tags(key), tags)
        if problem:
            key_problem.append(("permerror", problem))
            return None
        key_flags.update(_key_tags(key).get("t", "").replace(" ", "").lower().split(":"))
        return key.encode()

    # What the signature says of itself; each outcome below fills in the verdict.
    base = DkimSignature(
        domain=tags.get("d", ""),
        selector=tags.get("s", ""),
        algorithm=tags.get("a", ""),
        canonicalization=tags.get("c", "simple/simple"),
        identity=tags.get("i", "") or "@" + tags.get("d", ""),
        headers=[h.strip().lower() for h in tags.get("h", "").split(":") if h.strip()],
        body_hash_ok=False,
        signature_ok=False,
        result="",
        reason="",
    )
    if base.headers and "from" not in base.headers:
        # RFC 6376 6.1.1: MUST be ignored, PERMFAIL; dkimpy verifies it all the same.
        return replace(
            base,
            result="permerror",
            reason="From field not signed: h= must list From (RFC 6376 6.1.1)",
        )
    checker = dkim.DKIM(raw, logger=_quiet, timeout=resolver.timeout)
    try:
        ok = checker.verify(idx=idx, dnsfunc=dnsfunc)
    except dkim.ValidationError as exc:
        text = str(exc)
        if "body hash mismatch" in text:
            return replace(
                base,
                body_hash_ok=False,
                signature_ok=False,
                result="fail",
                reason="body modified: the body hash does not match bh=",
            )
        return replace(
            base, body_hash_ok=False, signature_ok=False, result="permerror", reason=text
        )
    except dkim.DKIMException as exc:
        text = str(exc)
        small = re.fullmatch(r"public key too small: (\d+)", text)
        if small:  # raised only once the signature itself verified
            text = (
                f"weak key: a {small.group(1)}-bit RSA key; RFC 8301 3.2 requires at least "
                "1024 bits"
            )
        return replace(base, body_hash_ok=small is not None, result="permerror", reason=text)
    except Exception as exc:  # a malformed signature must not end the whole check
        return replace(
            base,
            body_hash_ok=False,
            signature_ok=False,
            result="permerror",
            reason=f"cannot verify: {type(exc).__name__}: {exc}",
        )
    if key_problem:
        result, reason = key_problem[0]
        return replace(base, body_hash_ok=False, signature_ok=False, result=result, reason=reason)
    if ok and base.algorithm.strip().lower() == "rsa-sha1":
        # dkimpy still verifies SHA-1; RFC 8301 3.1: verifiers MUST NOT consider it valid.
        return replace(
            base,
            body_hash_ok=True,
            result="permerror",
            reason="weak algorithm: rsa-sha1 signatures are not valid (RFC 8301 3.1), "
            "even though this one verifies",
        )
    if ok:
        note = _unsigned_tail(checker, tags)
        if "y" in key_flags:
            note = (
                "testing mode: the key record says t=y, so receivers treat the message as "
                "unsigned (RFC 6376 3.6.1)"
            )
        return replace(base, body_hash_ok=True, signature_ok=True, result="pass", reason=note)
    return replace(
        base,
        body_hash_ok=True,
        signature_ok=False,
        result="fail",
        reason="header modified: the body is intact but the signed header fields changed "
        "(or the key does not match)",
    )
