"""The Mailpit JSON shapes: message summaries, messages, sessions, statistics and relay
history as the API and the events show them (kept apart from the domain)."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailpit_py import __version__
from mailpit_py.parse.html_text import html_to_text
from mailpit_py.store.records import MessageRecord
from mailpit_py.timefmt import rfc3339

# RFC 7230 tchar: Go leaves a header name with any other byte as it is
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def canonical_header_key(name: str) -> str:
    """The header name as Go's textproto.CanonicalMIMEHeaderKey writes it (`Message-Id`,
    `Mime-Version`, `Dkim-Signature`): Mailpit's headers object is keyed so, and its clients
    index it that way."""
    if not TOKEN.fullmatch(name):
        return name
    return "-".join(word[:1].upper() + word[1:].lower() for word in name.split("-"))


SIZE_CLASSES = (1024, 10 * 1024, 100 * 1024, 1024**2, 10 * 1024**2)  # bytes, statistics view


def summary_to_api(row: Any) -> dict[str, Any]:
    """A store summary row -> Mailpit's MessageSummary JSON object."""
    from_list = json.loads(row["from_json"])
    return {
        "ID": row["uid"],
        "MessageID": row["message_id"],
        "Read": bool(row["read"]),
        "From": from_list[0] if from_list else {"Name": "", "Address": ""},
        "To": json.loads(row["to_json"]),
        "Cc": json.loads(row["cc_json"]),
        "Bcc": json.loads(row["bcc_json"]),
        "ReplyTo": json.loads(row["reply_to_json"]),
        "Subject": row["subject"],
        "Created": rfc3339(row["created"]),
        "Username": row["username"],
        "Tags": json.loads(row["tags_json"]),
        "Size": row["size"],
        "Attachments": row["attachments"],
        "Snippet": row["snippet"],
        # Extension: the receiver (--receiver) refused it; kept so the reason can be read.
        "Refused": bool(row["refused"]),
    }


def record_summary(rec: MessageRecord) -> dict[str, Any]:
    """The MessageSummary of a just-stored record, without reading it back."""
    return summary_to_api(
        {
            "uid": rec.uid,
            "message_id": rec.message_id,
            "read": 0,
            "from_json": rec.from_json,
            "to_json": rec.to_json,
            "cc_json": rec.cc_json,
            "bcc_json": rec.bcc_json,
            "reply_to_json": rec.reply_to_json,
            "subject": rec.subject,
            "created": rec.created,
            "username": rec.username,
            "tags_json": json.dumps(sorted(set(rec.tags))),
            "size": rec.size,
            "attachments": rec.attachments,
            "snippet": rec.snippet,
            "refused": rec.refused,
        }
    )


@dataclass(frozen=True)
class StoredMessage:
    """A message as read back: summary fields, what was parsed at ingest, and its SMTP exchange."""

    summary: dict[str, Any]
    detail: dict[str, Any]
    transcript: list[list[Any]]
    session_id: str

    @property
    def id(self) -> str:
        return str(self.summary["ID"])

    @property
    def text(self) -> str:
        """The text body; an HTML-only message gets text read from its HTML, as Mailpit's parser
        (enmime) makes one, so clients reading `Text` find the words of any message."""
        text = str(self.detail["Text"])
        markup = str(self.detail["HTML"])
        if text or not markup.strip():
            return text
        return html_to_text(markup)[0]

    def to_api(self) -> dict[str, Any]:
        """Mailpit's Message object, plus our own Warnings, Envelope and SessionID."""
        d = self.detail
        s = self.summary
        return {
            "ID": s["ID"],
            "MessageID": s["MessageID"],
            "Read": s["Read"],
            "From": s["From"],
            "To": s["To"],
            "Cc": s["Cc"],
            "Bcc": s["Bcc"],
            "ReplyTo": s["ReplyTo"],
            "ReturnPath": d["ReturnPath"],
            "Subject": s["Subject"],
            "ListUnsubscribe": d["ListUnsubscribe"],
            "Date": d["Date"] or s["Created"],
            "Created": s["Created"],
            "Tags": s["Tags"],
            "Username": s["Username"],
            "Text": self.text,
            "HTML": d["HTML"],
            "Size": s["Size"],
            "Inline": d["Inline"],
            "Attachments": d["Attachments"],
            "Warnings": d["Warnings"],
            "Envelope": d["Envelope"],
            "SessionID": self.session_id,
            # Extensions: the SMTP listener that took it, and the receiver's refusal (or null).
            "Listener": str(d["Envelope"].get("Listener") or ""),
            "Refused": d.get("Refused"),
        }

    def headers(self) -> dict[str, list[str]]:
        """Mailpit's headers object: each name, in Go's canonical form, with its values in order
        (names that differ in case only are one entry, as in Go's textproto)."""
        out: dict[str, list[str]] = {}
        for name, value in self.detail["Headers"]:
            out.setdefault(canonical_header_key(name), []).append(value)
        return out

    def part_filename(self, part_id: str) -> str:
        for part in (*self.detail["Inline"], *self.detail["Attachments"]):
            if part["PartID"] == part_id:
                return str(part["FileName"])
        return ""

    def html_with_parts(self, part_url: str) -> str:
        """The HTML body with `cid:` references pointed at the part URLs (RFC 2392)."""
        html = str(self.detail["HTML"])
        if "cid:" not in html:
            return html
        by_cid = {
            p["ContentID"]: p["PartID"]
            for p in (*self.detail["Inline"], *self.detail["Attachments"])
            if p["ContentID"]
        }

        def swap(m: re.Match[str]) -> str:
            pid = by_cid.get(urllib.parse.unquote(m.group(2)))
            return f"{m.group(1)}{part_url}{pid}" if pid else m.group(0)

        return _CID_REF.sub(swap, html)

    def transcript_to_api(self) -> list[dict[str, Any]]:
        return [{"Time": t, "Dir": d, "Line": line} for t, d, line in self.transcript]


_CID_REF = re.compile(r"""(["'(=\s])cid:([^"')\s>]+)""", re.I)


def stats_data(total: int, unread: int) -> dict[str, Any]:
    """The Data of a `stats` event, as Mailpit sends it."""
    return {"Total": total, "Unread": unread, "Version": __version__}


def session_to_api(row: Any) -> dict[str, Any]:
    return {
        "ID": row["uid"],
        "Started": rfc3339(row["started"]),
        "Ended": rfc3339(row["ended"]),
        "Peer": row["peer"],
        "Local": row["local"],
        "Helo": row["helo"],
        "TLS": bool(row["tls"]),
        "Username": row["username"],
        "Outcome": row["outcome"],
        "Messages": json.loads(row["messages"]),
        "Transcript": [
            {"Time": t, "Dir": d, "Line": line} for t, d, line in json.loads(row["transcript"])
        ],
    }


def relay_history_to_api(uid: str, items: Sequence[Any], attempts: Sequence[Any]) -> dict[str, Any]:
    """A message's relay queue entries and attempts, as the API shows them."""
    return {
        "ID": uid,
        "Queue": [
            {
                "ID": r["id"],
                "Kind": r["kind"],
                "From": r["mail_from"],
                "To": json.loads(r["recipients"]),
                "Created": rfc3339(r["created"]),
                "Attempts": r["attempts"],
                "NextAttempt": rfc3339(r["next_attempt"]) if r["state"] == "pending" else "",
                "State": r["state"],
            }
            for r in items
        ],
        "Attempts": [
            {
                "Time": rfc3339(a["at"]),
                "Kind": a["kind"],
                "To": json.loads(a["recipients"]),
                "Server": a["server"],
                "Reply": a["reply"],
                "Outcome": a["outcome"],
            }
            for a in attempts
        ],
    }


def statistics_to_api(
    now: float,
    per_minute: Sequence[tuple[float, int]],
    refused: Any,
    aggregates: tuple[Sequence[int], Sequence[tuple[str, int]], Sequence[tuple[str, int]]],
    totals: tuple[int, int, int, int, int],
) -> dict[str, Any]:
    """What the statistics view draws (GET /api/v1/stats)."""
    sizes, senders, domains = aggregates
    total, unread, accepted, accepted_size, deleted = totals
    return {
        "Generated": rfc3339(now),
        "PerMinute": [{"Minute": rfc3339(start), "Messages": n} for start, n in per_minute],
        "Refusals": refused,
        "Sizes": [
            {"UpTo": bound, "Messages": n}
            for bound, n in zip([*SIZE_CLASSES, None], sizes, strict=True)
        ],
        "TopSenders": [{"Address": a, "Messages": n} for a, n in senders],
        "TopRecipientDomains": [{"Domain": d, "Messages": n} for d, n in domains],
        "Totals": {
            "Messages": total,
            "Unread": unread,
            "Accepted": accepted,
            "AcceptedSize": accepted_size,
            "Deleted": deleted,
        },
    }
