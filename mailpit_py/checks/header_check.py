"""Header checks: List-Unsubscribe (RFC 2369, RFC 8058) in Mailpit's ListUnsubscribe shape, and
what the bulk-sender rules of the big mailbox providers (Gmail, Yahoo, Microsoft, 2024) ask of
each message: one-click unsubscribe, a valid From, a Message-ID, a Date, authentication."""

from __future__ import annotations

import email.utils
import re
from typing import Any

_MSGID = re.compile(r"^\s*<[^<>@\s]+@[^<>@\s]+>\s*$")
_ADDR = re.compile(r"^[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")


def _values(headers: list[list[str]], name: str) -> list[str]:
    return [v for n, v in headers if n.lower() == name.lower()]


def _requirement(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"Name": name, "OK": ok, "Detail": detail}


def check(detail: dict[str, Any], auth: dict[str, Any] | None) -> dict[str, Any]:
    """The ListUnsubscribe report and the bulk-mail requirements, from what ingest parsed."""
    headers: list[list[str]] = detail.get("Headers", [])
    unsub = dict(detail.get("ListUnsubscribe") or {})
    unsub.setdefault("Header", "")
    unsub.setdefault("Links", [])
    unsub.setdefault("Errors", "")
    unsub.setdefault("HeaderPost", "")
    reqs: list[dict[str, Any]] = []

    froms = _values(headers, "From")
    addrs = email.utils.getaddresses(froms) if froms else []
    if len(froms) != 1:
        reqs.append(
            _requirement(
                "From", False, f"{len(froms)} From header fields; RFC 5322 wants exactly one"
            )
        )
    elif len(addrs) != 1 or not _ADDR.match(addrs[0][1]):
        reqs.append(_requirement("From", False, f"{froms[0]!r} is not a single valid address"))
    else:
        reqs.append(_requirement("From", True, addrs[0][1]))

    ids = _values(headers, "Message-ID")
    if not ids:
        reqs.append(
            _requirement("Message-ID", False, "missing (RFC 5322 3.6.4: SHOULD be present)")
        )
    elif len(ids) > 1:
        reqs.append(_requirement("Message-ID", False, f"{len(ids)} Message-ID header fields"))
    elif not _MSGID.match(ids[0]):
        reqs.append(_requirement("Message-ID", False, f"{ids[0]!r} is not <left@right>"))
    else:
        reqs.append(_requirement("Message-ID", True, ids[0].strip()))

    dates = _values(headers, "Date")
    if len(dates) != 1:
        reqs.append(
            _requirement("Date", False, f"{len(dates)} Date header fields; one is required")
        )
    elif email.utils.parsedate_tz(dates[0]) is None:
        reqs.append(_requirement("Date", False, f"{dates[0]!r} is not an RFC 5322 date"))
    else:
        reqs.append(_requirement("Date", True, dates[0].strip()))

    https = [link for link in unsub["Links"] if link.lower().startswith("https://")]
    post = unsub["HeaderPost"].strip()
    signed: set[str] = set()
    for sig in (auth or {}).get("DKIM", []):
        if sig.get("Result") == "pass":
            signed |= set(sig.get("SignedHeaders", []))
    if not unsub["Header"]:
        one_click = (False, "no List-Unsubscribe header")
    elif not https:
        one_click = (False, "List-Unsubscribe has no https:// link (RFC 8058 3.1)")
    elif post != "List-Unsubscribe=One-Click":
        one_click = (False, "List-Unsubscribe-Post must be exactly List-Unsubscribe=One-Click")
    elif auth is not None and not {"list-unsubscribe", "list-unsubscribe-post"} <= signed:
        one_click = (
            False,
            "a passing DKIM signature must cover both List-Unsubscribe fields (RFC 8058 4)",
        )
    else:
        one_click = (True, https[0])
    reqs.append(_requirement("OneClickUnsubscribe", *one_click))

    if auth is not None:
        dkim_ok = any(s.get("Result") == "pass" for s in auth.get("DKIM", []))
        reqs.append(
            _requirement(
                "DKIM",
                dkim_ok,
                "a DKIM signature passes" if dkim_ok else "no passing DKIM signature",
            )
        )
        spf_res = auth.get("SPF", {}).get("Result", "none")
        reqs.append(_requirement("SPF", spf_res == "pass", f"SPF {spf_res}"))
        dmarc = auth.get("DMARC", {})
        reqs.append(
            _requirement(
                "DMARC",
                dmarc.get("Result") == "pass",
                f"DMARC {dmarc.get('Result', 'none')}"
                + (f" (p={dmarc['Policy']})" if dmarc.get("Policy") else ""),
            )
        )
    return {
        "ListUnsubscribe": unsub,
        "Requirements": reqs,
        "Passed": sum(1 for r in reqs if r["OK"]),
        "Total": len(reqs),
    }
