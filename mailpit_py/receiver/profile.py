"""Receiver profiles: the YAML rules that turn check verdicts into SMTP replies, loaded and
checked so that a bad profile stops start-up saying what is wrong and where."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mailpit_py.config.yamlfile import parse_yaml

STAGES = ("connect", "mail", "rcpt", "data")

# Each verdict a rule may name, the earliest stage it is known at, and what it means. A rule
# may fire at a later stage than its verdict's (a receiver may wait for DATA to refuse an SPF
# failure, as Gmail does), never earlier.
VERDICTS: dict[str, tuple[str, str]] = {
    "dnsbl-listed": ("connect", "the client address is listed in one of the profile's DNSBLs"),
    "rdns-missing": ("connect", "the client address has no PTR record"),
    "rdns-mismatch": (
        "connect",
        "no name of the client's PTR records resolves back to its address (not forward-confirmed)",
    ),
    "no-tls": ("mail", "the session is not encrypted (neither STARTTLS nor implicit TLS)"),
    "spf-fail": ("mail", "SPF of the MAIL FROM domain for the client address is fail (-all)"),
    "spf-softfail": ("mail", "SPF is softfail (~all)"),
    "spf-none": ("mail", "the MAIL FROM domain publishes no SPF record"),
    "spf-temperror": ("mail", "SPF could not be evaluated for a DNS failure"),
    "spf-permerror": ("mail", "the SPF record is broken"),
    "spf-fail-no-dkim": (
        "data",
        "SPF is fail and no DKIM signature passes (a forwarded message that DKIM still "
        "authenticates is not refused for its SPF)",
    ),
    "dkim-fail": ("data", "the message has DKIM signatures and none of them passes"),
    "dkim-none": ("data", "no DKIM signature passes (none, or all broken)"),
    "unauthenticated": ("data", "neither SPF nor any DKIM signature passes"),
    "dmarc-reject": ("data", "DMARC fails and the From domain publishes p=reject"),
    "dmarc-quarantine": ("data", "DMARC fails and the From domain publishes p=quarantine"),
    "dmarc-fail": ("data", "DMARC fails, whatever the published policy"),
    "dmarc-missing": ("data", "the From domain (or its organizational domain) has no DMARC record"),
    "dmarc-temperror": ("data", "DMARC could not be evaluated for a DNS failure"),
    "bulk-unauthenticated": (
        "data",
        "bulk mail without both SPF and DKIM passing (the bulk-sender rules ask for both)",
    ),
    "bulk-not-aligned": ("data", "bulk mail whose DMARC does not pass (no aligned SPF or DKIM)"),
    "bulk-dmarc-missing": ("data", "bulk mail from a domain without a DMARC record"),
    "bulk-no-one-click": (
        "data",
        "bulk mail without a valid one-click List-Unsubscribe (RFC 8058), DKIM-signed",
    ),
    "bulk-no-tls": ("data", "bulk mail over a session that is not encrypted"),
    "message-id-invalid": ("data", "the Message-ID header is missing, repeated or not <a@b>"),
    "date-invalid": ("data", "the Date header is missing, repeated or not an RFC 5322 date"),
    "from-invalid": ("data", "there is not exactly one From header with one valid address"),
    "spam-score": ("data", "the SpamAssassin score is over the profile's spam_threshold"),
}

# What a reply's text may say about the message; each value is cleaned of control characters
# and cut short before it goes in (it comes from the client: a HELO name, a From domain).
PLACEHOLDERS = frozenset(
    {
        "ip",  # the client address evaluated (--checks-client-ip, else the peer's)
        "rdns",  # the client's PTR name, or "unknown"
        "helo",
        "hostname",  # this server's name (--smtp-hostname)
        "mail_from",
        "mail_from_domain",
        "rcpt",  # the recipient refused at RCPT (at DATA, the first recipient)
        "from_domain",  # the RFC5322.From domain (DMARC's)
        "policy",  # the DMARC policy in force
        "zone",  # the DNSBL zone that lists the client
        "score",
        "threshold",
        "verdict",  # why the rule fired, in words
    }
)
BULK_MODES = ("headers", "all", "never")
_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")
MAX_LINE = 400  # a reply line's text before placeholders; RFC 5321 4.5.3.1.5 allows 512 octets


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file and the place in it."""


@dataclass(frozen=True)
class Rule:
    """One rule: when its verdict holds at its stage, the session gets its reply."""

    id: str
    verdict: str
    stage: str
    code: int
    status: str
    text: tuple[str, ...]
    source: str = ""

    def reply(self, values: dict[str, str]) -> str:
        """The reply, one line per text line (`550-5.7.26 ...` then `550 5.7.26 ...`)."""
        safe = _Values(values)
        lines = [line.format_map(safe) for line in self.text]
        out = [f"{self.code}-{self.status} {line}" for line in lines[:-1]]
        out.append(f"{self.code} {self.status} {lines[-1]}")
        return "\r\n".join(out)


@dataclass(frozen=True)
class Profile:
    """A receiver: its rules in order (the first that holds at a stage answers) and settings."""

    name: str
    description: str = ""
    source: str = ""
    rules: tuple[Rule, ...] = ()
    dnsbl: tuple[str, ...] = ()
    spam_threshold: float = 5.0
    bulk: str = "headers"
    timeout: float = 10.0
    origin: str = ""  # the file it came from, for messages
    verdicts: frozenset[str] = field(default_factory=frozenset)

    @property
    def permissive(self) -> bool:
        """No rules: every message gets 250 and nothing runs inline (today's behaviour)."""
        return not self.rules

    def at(self, stage: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.stage == stage)


class _Values(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def builtin_names() -> list[str]:
    folder = resources.files("mailpit_py.receiver").joinpath("profiles")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".yml"))


def load(spec: str, flag: str = "--receiver") -> Profile:
    """A built-in profile by name, or a YAML file by path; ProfileError says what is wrong."""
    spec = spec.strip() or "permissive"
    if "/" not in spec and "\\" not in spec and not spec.endswith((".yml", ".yaml")):
        if spec not in builtin_names():
            raise ProfileError(
                f"{flag}: {spec!r} is not a receiver profile: use one of "
                f"{', '.join(builtin_names())}, or the path of a YAML profile"
            )
        text = resources.files("mailpit_py.receiver").joinpath(f"profiles/{spec}.yml")
        return parse(text.read_text("utf-8"), f"built-in profile {spec}")
    try:
        content = Path(spec).read_text("utf-8")
    except OSError as exc:
        raise ProfileError(f"{flag}: cannot read the profile {spec!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ProfileError(f"{flag}: the profile {spec!r} is not UTF-8 text") from None
    return parse(content, spec)


def parse(text: str, origin: str) -> Profile:
    """The profile in YAML text; `origin` names it in errors (a path or the built-in name)."""
    data = parse_yaml(text, origin, ProfileError)  # mappings keep their line
    if not isinstance(data, dict):
        raise ProfileError(f"{origin}: a profile is a mapping with name: and rules: keys")
    _known(data, {"name", "description", "source", "settings", "rules"}, origin, "the profile")
    name = data.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name):
        raise ProfileError(f"{origin}: name: must be a word of letters, digits, . _ or -")
    settings = data.get("settings") or {}
    where = f"{origin} line {getattr(settings, 'line', 0)}"
    if not isinstance(settings, dict):
        raise ProfileError(f"{origin}: settings: must be a mapping")
    _known(settings, {"dnsbl", "spam_threshold", "bulk", "timeout"}, where, "settings")
    zones = settings.get("dnsbl") or []
    if isinstance(zones, str):
        zones = [zones]
    if not isinstance(zones, list) or not all(
        isinstance(z, str) and re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+\.?", z)
        for z in zones
    ):
        raise ProfileError(f"{where}: settings.dnsbl: a list of DNS zones, e.g. zen.spamhaus.org")
    threshold = _number(settings.get("spam_threshold", 5.0), f"{where}: settings.spam_threshold")
    timeout = _number(settings.get("timeout", 10.0), f"{where}: settings.timeout")
    if timeout <= 0 or timeout > 120:
        raise ProfileError(f"{where}: settings.timeout: seconds, more than 0 and at most 120")
    bulk = settings.get("bulk", "headers")
    if bulk not in BULK_MODES:
        raise ProfileError(f"{where}: settings.bulk: one of {', '.join(BULK_MODES)}")
    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list):
        raise ProfileError(f"{origin}: rules: must be a list of rules")
    rules = tuple(_rule(item, n, origin) for n, item in enumerate(raw_rules, 1))
    ids = [r.id for r in rules]
    for rule in rules:
        if ids.count(rule.id) > 1:
            raise ProfileError(f"{origin}: two rules have the id {rule.id!r}: ids must differ")
    if any(r.verdict == "dnsbl-listed" for r in rules) and not zones:
        raise ProfileError(
            f"{origin}: a dnsbl-listed rule needs settings.dnsbl: [zone, ...] to look in"
        )
    return Profile(
        name=name,
        description=str(data.get("description") or ""),
        source=str(data.get("source") or ""),
        rules=rules,
        dnsbl=tuple(z.rstrip(".") for z in zones),
        spam_threshold=threshold,
        bulk=str(bulk),
        timeout=timeout,
        origin=origin,
        verdicts=frozenset(r.verdict for r in rules),
    )


def _known(data: dict[str, Any], keys: set[str], where: str, what: str) -> None:
    unknown = sorted(str(k) for k in data if k not in keys)
    if unknown:
        raise ProfileError(
            f"{where}: {what} has unknown key {unknown[0]!r}: "
            f"the keys are {', '.join(sorted(keys))}"
        )


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProfileError(f"{where}: must be a number, not {value!r}")
    return float(value)


def _rule(item: Any, number: int, origin: str) -> Rule:
    line = getattr(item, "line", 0)
    where = f"{origin} line {line}, rule {number}" if line else f"{origin}: rule {number}"
    if not isinstance(item, dict):
        raise ProfileError(f"{where}: a rule is a mapping with when:, code:, status:, text:")
    _known(item, {"id", "when", "stage", "code", "status", "text", "source"}, where, "the rule")
    verdict = item.get("when")
    if verdict not in VERDICTS:
        raise ProfileError(
            f"{where}: when: {verdict!r} is not a verdict: use one of {', '.join(VERDICTS)}"
        )
    earliest = VERDICTS[verdict][0]
    stage = item.get("stage", earliest)
    if stage not in STAGES:
        raise ProfileError(f"{where}: stage: {stage!r} is not one of {', '.join(STAGES)}")
    if STAGES.index(stage) < STAGES.index(earliest):
        raise ProfileError(
            f"{where}: {verdict} is known at {earliest} at the earliest, not at {stage}"
        )
    rule_id = item.get("id", verdict)
    if not isinstance(rule_id, str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", rule_id):
        raise ProfileError(f"{where}: id: a word of letters, digits, . _ or -")
    code = item.get("code")
    if isinstance(code, bool) or not isinstance(code, int) or not 400 <= code <= 599:
        raise ProfileError(f"{where}: code: {code!r} is not a refusal: use a 4xx or 5xx code")
    status = str(item.get("status", ""))
    match = _STATUS.fullmatch(status)
    if match is None or match.group(1) != str(code)[0]:
        raise ProfileError(
            f"{where}: status: {status!r} must be an enhanced status code of the same class as "
            f"code {code} (RFC 3463), e.g. {str(code)[0]}.7.1"
        )
    text = item.get("text")
    lines = [text] if isinstance(text, str) else text
    if not lines or not isinstance(lines, list) or not all(isinstance(t, str) for t in lines):
        raise ProfileError(f"{where}: text: a line of text, or a list of lines")
    for t in lines:
        if not t.strip() or len(t) > MAX_LINE or any(ord(c) < 32 or ord(c) == 127 for c in t):
            raise ProfileError(
                f"{where}: text: each line must be 1 to {MAX_LINE} printable characters"
            )
        try:
            fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(t)]
        except ValueError as exc:
            raise ProfileError(f"{where}: text: {exc} (write {{{{ for a literal brace)") from None
        if any(f is not None and (spec or conv) for f, spec, conv in fields):
            # A format spec could pad a value to any width: placeholders are plain names.
            raise ProfileError(f"{where}: text: write placeholders as {{name}}, without : or !")
        names = {f for f, _, _ in fields if f is not None}
        bad = sorted(n for n in names if n not in PLACEHOLDERS)
        if bad:
            raise ProfileError(
                f"{where}: text: unknown placeholder {{{bad[0]}}}: use "
                + ", ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS))
            )
    source = item.get("source") or ""
    if not isinstance(source, str) or (source and not re.match(r"https?://[^\s]+$", source)):
        # The web UI links it: an http(s) address only, never javascript: or the like.
        raise ProfileError(f"{where}: source: an http:// or https:// address, not {source!r}")
    return Rule(
        id=rule_id,
        verdict=str(verdict),
        stage=str(stage),
        code=code,
        status=status,
        text=tuple(lines),
        source=source,
    )
