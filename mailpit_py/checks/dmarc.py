"""DMARC (RFC 7489): the From domain's policy and whether DKIM or SPF passed for an aligned
domain, relaxed or strict, with the organizational-domain fallback."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mailpit_py.net.dns import DnsError, Resolver


@lru_cache(maxsize=1)
def _psl() -> Any:
    from publicsuffixlist import PublicSuffixList  # ships the list: works offline

    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """mail.example.co.uk -> example.co.uk (RFC 7489 3.2, Public Suffix List)."""
    domain = domain.rstrip(".").lower()
    return _psl().privatesuffix(domain) or domain


def aligned(a: str, b: str, mode: str) -> bool:
    """RFC 7489 3.1: strict needs the same name, relaxed the same organizational domain."""
    a, b = a.rstrip(".").lower(), b.rstrip(".").lower()
    if mode == "s":
        return a == b
    return bool(a and b) and organizational_domain(a) == organizational_domain(b)


@dataclass
class DmarcResult:
    result: str  # pass, fail, none, temperror, permerror
    from_domain: str
    policy: str  # p= (or sp= for a subdomain) in force; "" when there is no record
    record: str
    record_domain: str
    adkim: str
    aspf: str
    dkim_aligned: bool
    spf_aligned: bool
    reason: str

    def to_api(self) -> dict[str, Any]:
        return {
            "Result": self.result,
            "FromDomain": self.from_domain,
            "Policy": self.policy,
            "Record": self.record,
            "RecordDomain": self.record_domain,
            "DKIMAlignment": "strict" if self.adkim == "s" else "relaxed",
            "SPFAlignment": "strict" if self.aspf == "s" else "relaxed",
            "DKIMAligned": self.dkim_aligned,
            "SPFAligned": self.spf_aligned,
            "Reason": self.reason,
        }


def _tags(record: str) -> dict[str, str]:
    out = {}
    for item in record.split(";"):
        if "=" in item:
            k, v = item.split("=", 1)
            out[k.strip().lower()] = v.strip()
    return out


def _find_record(resolver: Resolver, domain: str) -> tuple[str, str]:
    """(record, where) from _dmarc.<domain>, else _dmarc.<organizational domain>."""
    org = organizational_domain(domain)
    for candidate in dict.fromkeys([domain, org]):
        try:
            txts = resolver.txt(f"_dmarc.{candidate}")
        except DnsError as exc:
            if exc.kind != "nxdomain":
                raise
            txts = []
        records = [t for t in txts if t.strip().lower().startswith("v=dmarc1")]
        if len(records) == 1:
            return records[0], candidate
    return "", ""


def evaluate(
    resolver: Resolver,
    from_domain: str,
    dkim_pass_domains: list[str],
    spf_result: str,
    spf_domain: str,
) -> DmarcResult:
    """DMARC for the RFC5322.From domain, given which DKIM d= passed and the SPF outcome."""
    from_domain = from_domain.rstrip(".").lower()
    if not from_domain:
        return DmarcResult(
            "permerror", "", "", "", "", "r", "r", False, False, "no From domain to check"
        )
    try:
        record, where = _find_record(resolver, from_domain)
    except DnsError as exc:
        return DmarcResult("temperror", from_domain, "", "", "", "r", "r", False, False, str(exc))
    tags = _tags(record)
    adkim = tags.get("adkim", "r").lower()[:1] or "r"
    aspf = tags.get("aspf", "r").lower()[:1] or "r"
    dkim_ok = any(aligned(d, from_domain, adkim) for d in dkim_pass_domains)
    spf_ok = spf_result == "pass" and aligned(spf_domain, from_domain, aspf)
    policy = tags.get("p", "").lower()
    if where != from_domain and "sp" in tags:
        policy = tags["sp"].lower()  # RFC 7489 6.3: sp= governs subdomains
    if not record:
        result = "none"
        reason = f"no DMARC record at _dmarc.{from_domain} or its organizational domain"
    elif policy not in ("none", "quarantine", "reject"):
        result, reason = "permerror", f"the record at _dmarc.{where} has no valid p= tag"
    elif dkim_ok or spf_ok:
        how = " and ".join(n for n, ok in (("DKIM", dkim_ok), ("SPF", spf_ok)) if ok)
        result, reason = "pass", f"{how} passed for a domain aligned with {from_domain}"
    else:
        result = "fail"
        reason = (
            f"neither DKIM nor SPF passed for a domain aligned with {from_domain}; "
            f"a receiver applies p={policy}"
        )
    return DmarcResult(
        result, from_domain, policy, record, where, adkim, aspf, dkim_ok, spf_ok, reason
    )
