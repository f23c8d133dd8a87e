"""DMARC (RFC 7489): the From domain's policy and whether DKIM or SPF passed for an aligned
domain, relaxed or strict, with the organizational-domain fallback."""

from __future__ import annotations

import re
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
    out: dict[str, str] = {}
    for item in record.split(";"):
        if "=" in item:
            k, v = item.split("=", 1)
            out.setdefault(k.strip().lower(), v.strip())
    return out


# RFC 7489 6.4: the record starts with the v= tag, its value exactly DMARC1 (upper case).
_VERSION = re.compile(r"\s*v\s*=\s*DMARC1\s*(;|$)")
_POLICIES = ("none", "quarantine", "reject")
_WEAKER = {"reject": "quarantine", "quarantine": "none", "none": "none"}


def _find_record(resolver: Resolver, domain: str) -> tuple[str, str, str]:
    """(record, where, why none) from _dmarc.<domain>, else _dmarc.<organizational domain>
    (RFC 7489 6.6.3): the fallback is only for a domain with no record at all."""
    org = organizational_domain(domain)
    for candidate in dict.fromkeys([domain, org]):
        try:
            txts = resolver.txt(f"_dmarc.{candidate}")
        except DnsError as exc:
            if exc.kind != "nxdomain":
                raise
            txts = []
        records = [t for t in txts if _VERSION.match(t)]
        if len(records) == 1:
            return records[0], candidate, ""
        if records:
            return "", "", f"_dmarc.{candidate} has {len(records)} DMARC records: none applies"
    return "", "", f"no DMARC record at _dmarc.{domain} or its organizational domain"


def _has_report_uri(tags: dict[str, str]) -> bool:
    """Whether rua= holds a syntactically valid URI (RFC 7489 6.6.3 step 6)."""
    return any(
        re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]*:[^\s!]+(![0-9]+[kmgt]?)?", u.strip())
        for u in tags.get("rua", "").split(",")
    )


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
        record, where, missing = _find_record(resolver, from_domain)
    except DnsError as exc:
        return DmarcResult("temperror", from_domain, "", "", "", "r", "r", False, False, str(exc))
    tags = _tags(record)
    # RFC 7489 6.3: a tag with a bad value takes its default, as if it were not there.
    adkim = tags.get("adkim", "r").lower() if tags.get("adkim", "").lower() in ("r", "s") else "r"
    aspf = tags.get("aspf", "r").lower() if tags.get("aspf", "").lower() in ("r", "s") else "r"
    pct = int(tags["pct"]) if re.fullmatch(r"\d{1,3}", tags.get("pct", "")) else 100
    pct = pct if pct <= 100 else 100
    dkim_ok = any(aligned(d, from_domain, adkim) for d in dkim_pass_domains)
    spf_ok = spf_result == "pass" and aligned(spf_domain, from_domain, aspf)
    policy = tags.get("p", "").lower()
    sp = tags.get("sp", "").lower()
    if where != from_domain and "sp" in tags:
        policy = sp  # RFC 7489 6.3: sp= governs subdomains
    note = ""
    if record and (policy not in _POLICIES or ("sp" in tags and sp not in _POLICIES)):
        if _has_report_uri(tags):
            # RFC 7489 6.6.3 step 6: with a valid rua=, as if the record said p=none.
            note = f"; the record at _dmarc.{where} has no valid p= (or sp=), read as p=none"
            policy = "none"
        else:
            policy = ""
    if not record:
        result, reason = "none", missing
    elif not policy:
        result, reason = "permerror", f"the record at _dmarc.{where} has no valid p= tag"
    elif dkim_ok or spf_ok:
        how = " and ".join(n for n, ok in (("DKIM", dkim_ok), ("SPF", spf_ok)) if ok)
        result, reason = "pass", f"{how} passed for a domain aligned with {from_domain}{note}"
    else:
        result = "fail"
        reason = (
            f"neither DKIM nor SPF passed for a domain aligned with {from_domain}; "
            f"a receiver applies p={policy}{note}"
        )
        if pct == 0:
            # RFC 7489 6.6.4: no message is sampled, each gets the next weaker policy.
            reason += f", lowered to p={_WEAKER[policy]} by pct=0"
            policy = _WEAKER[policy]
        elif pct < 100 and policy != "none":
            reason += f" to {pct}% of failing mail (pct={pct}) and p={_WEAKER[policy]} to the rest"
    return DmarcResult(
        result, from_domain, policy, record, where, adkim, aspf, dkim_ok, spf_ok, reason
    )


_STRICTNESS = {"reject": 3, "quarantine": 2, "none": 1, "": 0}


def evaluate_all(
    resolver: Resolver,
    from_domains: list[str],
    dkim_pass_domains: list[str],
    spf_result: str,
    spf_domain: str,
) -> DmarcResult:
    """DMARC for a From field with one address or several (RFC 7489 6.6.1: each domain is
    checked, and the strictest policy among those that fail applies)."""
    domains = list(dict.fromkeys(d.rstrip(".").lower() for d in from_domains if d.strip()))
    if len(domains) <= 1:
        return evaluate(
            resolver, domains[0] if domains else "", dkim_pass_domains, spf_result, spf_domain
        )
    results = [evaluate(resolver, d, dkim_pass_domains, spf_result, spf_domain) for d in domains]
    failed = [r for r in results if r.result == "fail"]
    chosen = (
        max(failed, key=lambda r: _STRICTNESS.get(r.policy, 0))
        if failed
        else next(
            (r for want in ("temperror", "permerror", "pass") for r in results if r.result == want),
            results[0],
        )
    )
    others = ", ".join(f"{r.from_domain} {r.result}" for r in results if r is not chosen)
    chosen.reason += f" (the From field has {len(domains)} domains; the others: {others})"
    return chosen
