"""The receiver at work: computes a profile's verdicts for one SMTP session, stage by stage and
each at most once, and says which rule refuses and with what reply. Blocking (DNS, spamd): the
SMTP layer calls it off its event loop."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mailpit_py.checks import auth, dnsbl, header_check, spamassassin, spf
from mailpit_py.models import Envelope
from mailpit_py.net.dns import DnsError, Resolver, reverse_name
from mailpit_py.parse.message import parse_message
from mailpit_py.receiver.profile import VERDICTS, Profile, Rule

_UNSAFE = re.compile(r"[^\x20-\x7e]")
MAX_VALUE = 100  # characters of a client-given value that go into a reply
MAX_REPLY_LINE = 500  # RFC 5321 4.5.3.1.5: 512 octets with the code and CRLF


@dataclass(frozen=True)
class Refusal:
    """What a rule answered, and why: kept with a refused message and in the session log."""

    reply: str
    rule: str
    stage: str
    detail: str
    profile: str
    client_ip: str
    simulated: bool
    source: str = ""

    def to_api(self) -> dict[str, Any]:
        return {
            "Reply": self.reply,
            "Rule": self.rule,
            "Stage": self.stage,
            "Detail": self.detail,
            "Profile": self.profile,
            "ClientIP": self.client_ip,
            "Simulated": self.simulated,
            "Source": self.source,
        }


def clean(value: str) -> str:
    """A client-given value made safe for a reply line: printable ASCII, bounded."""
    value = _UNSAFE.sub("?", value)
    return value if len(value) <= MAX_VALUE else value[: MAX_VALUE - 3] + "..."


@dataclass
class Session:
    """One SMTP session's verdicts so far (verdict -> why it holds, or "" when it does not)."""

    peer_ip: str
    client_ip: str
    simulated: bool
    facts: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # for the transcript, then cleared
    done: set[str] = field(default_factory=set)  # the stages whose facts are computed


class Receiver:
    """A profile applied: `session(peer_ip)` at connect, then `check(session, stage, ...)` at
    each stage returns the refusal of the first rule whose verdict holds, or None."""

    def __init__(
        self,
        profile: Profile,
        resolver: Resolver,
        *,
        client_ip: str = "",
        hostname: str = "",
        spamassassin: str = "",
    ) -> None:
        self.profile = profile
        self.resolver = resolver
        self.client_ip = client_ip
        self.hostname = hostname
        self.spamassassin = spamassassin
        self.stages = frozenset(r.stage for r in profile.rules)  # where it may refuse

    @property
    def permissive(self) -> bool:
        return self.profile.permissive

    def session(self, peer_ip: str) -> Session:
        ip = self.client_ip or peer_ip or "127.0.0.1"
        # As the checks mark it (checks/auth.py), and also when --dns-override answers: then
        # the records are the test's, not the world's.
        simulated = bool(self.client_ip) or auth.is_internal(ip) or bool(self.resolver.overrides)
        s = Session(peer_ip=peer_ip, client_ip=ip, simulated=simulated)
        threshold = f"{self.profile.spam_threshold:g}"
        s.values.update(ip=ip, hostname=clean(self.hostname), threshold=threshold)
        return s

    def new_transaction(self, s: Session) -> None:
        """A new MAIL: what was learnt of the last message no longer holds."""
        for verdict in [v for v in s.facts if not v.startswith(("dnsbl", "rdns"))]:
            del s.facts[verdict]
        s.done -= {"mail", "data"}

    def check(
        self,
        s: Session,
        stage: str,
        *,
        helo: str = "",
        mail_from: str = "",
        raw: bytes = b"",
        rcpt_to: tuple[str, ...] = (),
        tls: bool = False,
    ) -> Refusal | None:
        rules = self.profile.at(stage)
        if not rules:
            return None
        s.facts["no-tls"] = "" if tls else "the session is not encrypted (no STARTTLS or TLS)"
        s.values.update(helo=clean(helo), mail_from=clean(mail_from))
        s.values["mail_from_domain"] = clean(mail_from.rpartition("@")[2] or helo)
        s.values["rcpt"] = clean(rcpt_to[0]) if rcpt_to else ""
        wanted = {r.verdict for r in rules}
        if wanted & _CONNECT and "connect" not in s.done:
            self._connect(s)
        if wanted & _MAIL and "mail" not in s.done:
            self._mail(s, helo, mail_from)
        if wanted - _CONNECT - _MAIL - {"no-tls"} and "data" not in s.done:
            self._data(s, helo, mail_from, raw, rcpt_to)
        for rule in rules:
            why = s.facts.get(rule.verdict, "")
            if why:
                return self._refusal(s, rule, stage, why)
        return None

    def _refusal(self, s: Session, rule: Rule, stage: str, why: str) -> Refusal:
        s.values["verdict"] = clean(why)
        reply = "\r\n".join(line[:MAX_REPLY_LINE] for line in rule.reply(s.values).split("\r\n"))
        return Refusal(
            reply=reply,
            rule=rule.id,
            stage=stage,
            detail=why,
            profile=self.profile.name,
            client_ip=s.client_ip,
            simulated=s.simulated,
            source=rule.source,
        )

    # -- the verdicts of each stage ---------------------------------------------------------

    def _connect(self, s: Session) -> None:
        s.done.add("connect")
        if not self.client_ip and auth.is_internal(s.client_ip):
            # 127.0.0.1 is in no blocklist and has no meaningful PTR: no receiver would see it.
            s.notes.append(
                f"receiver {self.profile.name}: connect rules not applied: the client "
                f"{s.client_ip} is not a public address (set --checks-client-ip to simulate one)"
            )
            return
        ip = s.client_ip
        for zone in self.profile.dnsbl:
            found = dnsbl.check(self.resolver, (zone,), ip, [], False)["Results"]
            listed = [r for r in found if r["Listed"]]
            if listed:
                codes = ", ".join(c["Code"] for c in listed[0]["Codes"])
                s.facts["dnsbl-listed"] = f"{ip} is listed in {zone} ({codes})"
                s.values["zone"] = clean(zone)
                break
        try:
            names = self.resolver.query(reverse_name(ip), "PTR")
        except DnsError as exc:
            names = []
            if exc.kind != "nxdomain":
                s.notes.append(f"receiver: reverse DNS of {ip}: {exc}")
        if not names:
            s.facts["rdns-missing"] = f"{ip} has no PTR record"
            s.facts["rdns-mismatch"] = f"{ip} has no PTR record"
            s.values["rdns"] = "unknown"
            return
        s.values["rdns"] = clean(names[0])
        for name in names:
            try:
                if ip in self.resolver.addresses(name):
                    return
            except DnsError:
                continue
        s.facts["rdns-mismatch"] = f"the PTR name {names[0]} of {ip} does not resolve back to {ip}"

    def _mail(self, s: Session, helo: str, mail_from: str) -> None:
        s.done.add("mail")
        result = spf.check_host(self.resolver, s.client_ip, mail_from, helo)
        why = f"SPF {result.result} for {result.domain}: {result.reason}"
        self._spf_facts(s, result.result, why)

    @staticmethod
    def _spf_facts(s: Session, result: str, why: str) -> None:
        for name in ("fail", "softfail", "none", "temperror", "permerror"):
            s.facts[f"spf-{name}"] = why if result == name else ""

    def _data(
        self, s: Session, helo: str, mail_from: str, raw: bytes, rcpt_to: tuple[str, ...]
    ) -> None:
        """The verdicts of the message itself; DKIM, SPF and DMARC (DNS) only when a rule of
        the profile reads them."""
        s.done.add("data")
        parsed = parse_message(raw, Envelope(mail_from, rcpt_to))
        authn: dict[str, Any] | None = None
        if self.profile.verdicts & _AUTH:
            authn = auth.check(
                raw,
                self.resolver,
                mail_from=mail_from,
                helo=helo,
                peer=s.peer_ip,
                client_ip=self.client_ip,
                authserv_id=self.hostname,
            )
            self._auth_facts(s, authn, self._bulk(parsed.headers))
        detail = {
            "Headers": [list(h) for h in parsed.headers],
            "ListUnsubscribe": parsed.list_unsubscribe.to_api(),
        }
        reqs = {r["Name"]: r for r in header_check.check(detail, authn)["Requirements"]}
        for verdict, name in (
            ("message-id-invalid", "Message-ID"),
            ("date-invalid", "Date"),
            ("from-invalid", "From"),
        ):
            s.facts[verdict] = "" if reqs[name]["OK"] else f"{name}: {reqs[name]['Detail']}"
        one_click = reqs["OneClickUnsubscribe"]
        s.facts["bulk-no-one-click"] = (
            f"bulk mail: {one_click['Detail']}"
            if authn is not None and self._bulk(parsed.headers) and not one_click["OK"]
            else ""
        )
        s.facts["bulk-no-tls"] = (
            f"bulk mail: {s.facts['no-tls']}"
            if s.facts.get("no-tls") and self._bulk(parsed.headers)
            else ""
        )
        if "spam-score" in self.profile.verdicts:
            self._spam(s, raw)

    def _auth_facts(self, s: Session, authn: dict[str, Any], bulk: bool) -> None:
        facts = s.facts
        spf_result = authn["SPF"]["Result"]
        if "mail" not in s.done:
            s.done.add("mail")
            self._spf_facts(s, spf_result, f"SPF {spf_result}: {authn['SPF']['Reason']}")
        sigs = authn["DKIM"]
        dkim_pass = any(sig["Result"] == "pass" for sig in sigs)
        dmarc = authn["DMARC"]
        from_domain = dmarc["FromDomain"]
        s.values.update(from_domain=clean(from_domain), policy=clean(dmarc["Policy"]))
        facts["dkim-fail"] = (
            f"{len(sigs)} DKIM signature(s), none passes: "
            + "; ".join(f"d={sig['Domain']} {sig['Result']}" for sig in sigs)
            if sigs and not dkim_pass
            else ""
        )
        facts["dkim-none"] = "" if dkim_pass else "no DKIM signature passes"
        facts["spf-fail-no-dkim"] = (
            f"SPF fail ({authn['SPF']['Reason']}) and no DKIM signature passes"
            if spf_result == "fail" and not dkim_pass
            else ""
        )
        facts["unauthenticated"] = (
            ""
            if dkim_pass or spf_result == "pass"
            else f"neither SPF ({spf_result}) nor DKIM passes"
        )
        failed = dmarc["Result"] == "fail"
        why = f"DMARC fail for {from_domain}: {dmarc['Reason']}"
        facts["dmarc-fail"] = why if failed else ""
        facts["dmarc-reject"] = why if failed and dmarc["Policy"] == "reject" else ""
        facts["dmarc-quarantine"] = why if failed and dmarc["Policy"] == "quarantine" else ""
        facts["dmarc-missing"] = dmarc["Reason"] if dmarc["Result"] == "none" else ""
        facts["dmarc-temperror"] = dmarc["Reason"] if dmarc["Result"] == "temperror" else ""
        facts["bulk-unauthenticated"] = (
            f"bulk mail needs SPF and DKIM to pass: SPF {spf_result}, DKIM "
            + ("pass" if dkim_pass else "did not pass")
            if bulk and not (dkim_pass and spf_result == "pass")
            else ""
        )
        facts["bulk-not-aligned"] = (
            f"bulk mail: DMARC {dmarc['Result']} for {from_domain} ({dmarc['Reason']})"
            if bulk and dmarc["Result"] not in ("pass", "none")
            else ""
        )
        facts["bulk-dmarc-missing"] = (
            f"bulk mail: {dmarc['Reason']}" if bulk and dmarc["Result"] == "none" else ""
        )

    def _bulk(self, headers: Any) -> bool:
        mode = self.profile.bulk
        if mode != "headers":
            return mode == "all"
        for name, value in headers:
            lower = name.lower()
            if lower in ("list-unsubscribe", "list-id"):
                return True
            if lower == "precedence" and value.strip().lower() in ("bulk", "list"):
                return True
        return False

    def _spam(self, s: Session, raw: bytes) -> None:
        if not self.spamassassin:
            s.notes.append(
                "receiver: rule spam-score not applied: SpamAssassin is not enabled "
                "(start with --enable-spamassassin HOST:PORT)"
            )
            return
        # Past the profile's timeout the session has its answer already (the SMTP layer stops
        # waiting then); this only ends the thread that waits on spamd.
        result = spamassassin.check(self.spamassassin, raw, timeout=2 * self.profile.timeout)
        if result["Error"]:
            s.notes.append(f"receiver: rule spam-score not applied: {result['Error']}")
            return
        score = float(result["Score"])
        s.values["score"] = f"{score:g}"
        over = score > self.profile.spam_threshold
        s.facts["spam-score"] = (
            f"SpamAssassin score {score:g} is over {self.profile.spam_threshold:g}" if over else ""
        )


_CONNECT = frozenset({"dnsbl-listed", "rdns-missing", "rdns-mismatch"})
_MAIL = frozenset({"spf-fail", "spf-softfail", "spf-none", "spf-temperror", "spf-permerror"})
# The message's verdicts that need DKIM, SPF and DMARC (DNS); the header ones do not.
_AUTH = (
    frozenset(VERDICTS)
    - _CONNECT
    - _MAIL
    - {
        "no-tls",
        "bulk-no-tls",
        "message-id-invalid",
        "date-invalid",
        "from-invalid",
        "spam-score",
    }
)
