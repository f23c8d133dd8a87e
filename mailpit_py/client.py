"""A Python client for the REST API of mailpit_py or Mailpit, with the standard library only.

Returns frozen dataclasses (`Message`, `MessageSummary`, `Attachment`, ...). Only the fields
Mailpit sends are required; mailpit_py's extras (envelope, warnings, SMTP transcript) are
optional and None/empty when the server does not provide them.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Address",
    "Attachment",
    "Client",
    "ClientError",
    "Envelope",
    "MailboxInfo",
    "Message",
    "MessageSummary",
    "TranscriptLine",
]


class ClientError(Exception):
    """The server answered with an error status (or could not be reached: status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Address:
    name: str
    address: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Address:
        data = data or {}
        return cls(str(data.get("Name") or ""), str(data.get("Address") or ""))

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


def _addresses(items: Iterable[Mapping[str, Any]] | None) -> tuple[Address, ...]:
    return tuple(Address.from_api(a) for a in items or ())


@dataclass(frozen=True)
class Envelope:
    """The SMTP envelope (mailpit_py only): MAIL FROM, RCPT TO and where it came from."""

    mail_from: str
    rcpt_to: tuple[str, ...]
    helo: str = ""
    peer: str = ""
    tls: bool = False
    username: str = ""
    protocol: str = ""

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Envelope | None:
        if not data:
            return None
        return cls(
            mail_from=str(data.get("From") or ""),
            rcpt_to=tuple(data.get("To") or ()),
            helo=str(data.get("Helo") or ""),
            peer=str(data.get("Peer") or ""),
            tls=bool(data.get("TLS")),
            username=str(data.get("Username") or ""),
            protocol=str(data.get("Protocol") or ""),
        )


@dataclass(frozen=True)
class TranscriptLine:
    """One line of the SMTP conversation: dir is C (client), S (server) or I (info)."""

    time: float
    dir: str
    line: str


@dataclass(frozen=True)
class Attachment:
    """An attachment or inline part; `.data` fetches its bytes on first use and keeps them."""

    message_id: str
    part_id: str
    filename: str
    content_type: str
    content_id: str
    size: int
    _fetch: Callable[[str, str], bytes] | None = field(default=None, repr=False, compare=False)
    _cache: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def data(self) -> bytes:
        if "data" not in self._cache:
            if self._fetch is None:
                raise ClientError(0, "this attachment is not bound to a client")
            self._cache["data"] = self._fetch(self.message_id, self.part_id)
        return self._cache["data"]

    @classmethod
    def from_api(
        cls, msg_id: str, data: Mapping[str, Any], fetch: Callable[[str, str], bytes] | None
    ) -> Attachment:
        return cls(
            message_id=msg_id,
            part_id=str(data.get("PartID") or ""),
            filename=str(data.get("FileName") or ""),
            content_type=str(data.get("ContentType") or ""),
            content_id=str(data.get("ContentID") or ""),
            size=int(data.get("Size") or 0),
            _fetch=fetch,
        )


@dataclass(frozen=True)
class MessageSummary:
    """A row of a message list or search result."""

    id: str
    message_id: str
    read: bool
    from_: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    subject: str
    created: str
    tags: tuple[str, ...]
    size: int
    attachment_count: int
    snippet: str
    refused: bool = False  # mailpit_py: its --receiver profile refused it (kept to be read)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> MessageSummary:
        return cls(
            id=str(data["ID"]),
            message_id=str(data.get("MessageID") or ""),
            read=bool(data.get("Read")),
            from_=Address.from_api(data.get("From")),
            to=_addresses(data.get("To")),
            cc=_addresses(data.get("Cc")),
            bcc=_addresses(data.get("Bcc")),
            reply_to=_addresses(data.get("ReplyTo")),
            subject=str(data.get("Subject") or ""),
            created=str(data.get("Created") or ""),
            tags=tuple(data.get("Tags") or ()),
            size=int(data.get("Size") or 0),
            attachment_count=int(data.get("Attachments") or 0),
            snippet=str(data.get("Snippet") or ""),
            refused=bool(data.get("Refused")),
        )


@dataclass(frozen=True)
class Message:
    """A whole message: addresses, bodies, headers, parts and (mailpit_py) envelope/transcript."""

    id: str
    message_id: str
    read: bool
    from_: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    return_path: str
    subject: str
    date: str
    created: str
    tags: tuple[str, ...]
    text: str
    html: str
    size: int
    headers: dict[str, list[str]]
    attachments: tuple[Attachment, ...]
    inline: tuple[Attachment, ...]
    envelope: Envelope | None = None
    warnings: tuple[str, ...] = ()
    transcript: tuple[TranscriptLine, ...] | None = None
    # mailpit_py: the SMTP listener that took it, and why its --receiver profile refused it
    # (Reply, Rule, Stage, Detail, Profile, ClientIP, Simulated, Source), None when accepted.
    listener: str = ""
    refused: dict[str, Any] | None = None

    @property
    def recipients(self) -> tuple[str, ...]:
        """Envelope recipients when known, else every To/Cc/Bcc address."""
        if self.envelope is not None:
            return self.envelope.rcpt_to
        return tuple(a.address for a in (*self.to, *self.cc, *self.bcc))

    def header(self, name: str) -> str | None:
        """The first value of a header, case-insensitively, or None."""
        for key, values in self.headers.items():
            if key.lower() == name.lower() and values:
                return values[0]
        return None

    @classmethod
    def from_api(
        cls,
        data: Mapping[str, Any],
        headers: Mapping[str, Sequence[str]] | None = None,
        smtp: Mapping[str, Any] | None = None,
        fetch: Callable[[str, str], bytes] | None = None,
    ) -> Message:
        msg_id = str(data["ID"])
        smtp = smtp or {}
        transcript = smtp.get("Transcript")
        return cls(
            id=msg_id,
            message_id=str(data.get("MessageID") or ""),
            read=bool(data.get("Read")),
            from_=Address.from_api(data.get("From")),
            to=_addresses(data.get("To")),
            cc=_addresses(data.get("Cc")),
            bcc=_addresses(data.get("Bcc")),
            reply_to=_addresses(data.get("ReplyTo")),
            return_path=str(data.get("ReturnPath") or ""),
            subject=str(data.get("Subject") or ""),
            date=str(data.get("Date") or ""),
            created=str(data.get("Created") or ""),
            tags=tuple(data.get("Tags") or ()),
            text=str(data.get("Text") or ""),
            html=str(data.get("HTML") or ""),
            size=int(data.get("Size") or 0),
            headers={k: list(v) for k, v in (headers or {}).items()},
            attachments=tuple(
                Attachment.from_api(msg_id, a, fetch) for a in data.get("Attachments") or ()
            ),
            inline=tuple(Attachment.from_api(msg_id, a, fetch) for a in data.get("Inline") or ()),
            envelope=Envelope.from_api(data.get("Envelope") or smtp.get("Envelope")),
            warnings=tuple(data.get("Warnings") or ()),
            listener=str(data.get("Listener") or ""),
            refused=dict(data["Refused"]) if data.get("Refused") else None,
            transcript=None
            if transcript is None
            else tuple(
                TranscriptLine(float(t.get("Time") or 0), str(t.get("Dir")), str(t.get("Line")))
                for t in transcript
            ),
        )


@dataclass(frozen=True)
class MailboxInfo:
    """A mailbox of a mailpit_py instance (`GET /api/v1/mailboxes`): its counts and creation."""

    name: str
    total: int
    unread: int
    created: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> MailboxInfo:
        return cls(
            name=str(data.get("Name") or ""),
            total=int(data.get("Total") or 0),
            unread=int(data.get("Unread") or 0),
            created=str(data.get("Created") or ""),
        )


def _mailbox_path(name: str) -> str:
    return "mailbox/" + urllib.parse.quote(name, safe="") + "/"


def _attachment_json(item: Any) -> dict[str, Any]:
    """(filename, bytes[, content_type[, content_id]]) or an API dict -> the send API's form."""
    if isinstance(item, Mapping):
        return dict(item)
    filename, content, *rest = item
    out: dict[str, Any] = {
        "Filename": filename,
        "Content": base64.b64encode(content).decode("ascii"),
    }
    if rest and rest[0]:
        out["ContentType"] = rest[0]
    if len(rest) > 1 and rest[1]:
        out["ContentID"] = rest[1]
    return out


def _address_json(item: str | tuple[str, str] | Address) -> dict[str, str]:
    if isinstance(item, Address):
        return {"Name": item.name, "Email": item.address}
    if isinstance(item, tuple):
        return {"Name": item[0], "Email": item[1]}
    return {"Email": item}


class Client:
    """The REST API of a mailpit_py or Mailpit instance at `url` (e.g. http://127.0.0.1:8025/).

    With `mailbox="shop"` (mailpit_py only) every message call goes to that mailbox's API,
    `url` + `mailbox/shop/`, and sees only its messages; the mailbox calls (`mailboxes()`,
    `create_mailbox()`...) always go to the instance's own root, `base_url`.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 10,
        auth: tuple[str, str] | None = None,
        mailbox: str | None = None,
    ) -> None:
        self.base_url = url if url.endswith("/") else url + "/"
        self.mailbox = mailbox
        self.url = self.base_url + _mailbox_path(mailbox) if mailbox else self.base_url
        self.timeout = timeout
        self._auth = auth
        # HTTP basic auth, for an instance started with --ui-auth-file.
        self._authorization = (
            "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode() if auth else None
        )

    def __repr__(self) -> str:
        if self.mailbox:
            return f"Client({self.base_url!r}, mailbox={self.mailbox!r})"
        return f"Client({self.url!r})"

    def for_mailbox(self, name: str | None) -> Client:
        """A client of the same instance bound to mailbox `name` (None: the unprefixed API)."""
        return Client(self.base_url, self.timeout, self._auth, name)

    # -- transport -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> bytes:
        """One API call; the body as bytes. Raises ClientError with the server's message."""
        return self._send(self.url + path.lstrip("/"), method, body, params)

    def _send(
        self, url: str, method: str, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> bytes:
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self._authorization:
            req.add_header("Authorization", self._authorization)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as err:
            text = err.read().decode("utf-8", "replace").strip()
            try:  # the send API answers {"Error": "..."}
                parsed = json.loads(text)
                if isinstance(parsed, dict) and parsed.get("Error"):
                    text = str(parsed["Error"])
            except ValueError:
                pass
            raise ClientError(err.code, text or str(err.reason)) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ClientError(0, f"cannot reach {self.base_url}: {reason}") from None

    def _json(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        return json.loads(self.request(method, path, body, params or None))

    def _ok(self, method: str, path: str, body: Any = None) -> None:
        self.request(method, path, body)

    # -- reading ---------------------------------------------------------------------------

    def messages(self, start: int = 0, limit: int = 50) -> list[MessageSummary]:
        """Summaries, newest first."""
        data = self._json("GET", "api/v1/messages", start=start, limit=limit)
        return [MessageSummary.from_api(m) for m in data.get("messages") or ()]

    def search(
        self, query: str, start: int = 0, limit: int = 50, tz: str = ""
    ) -> list[MessageSummary]:
        """Summaries matching a search query (Mailpit syntax), newest first."""
        params: dict[str, Any] = {"query": query, "start": start, "limit": limit}
        if tz:
            params["tz"] = tz
        data = self._json("GET", "api/v1/search", **params)
        return [MessageSummary.from_api(m) for m in data.get("messages") or ()]

    def count(self) -> int:
        """How many messages the mailbox holds."""
        data = self._json("GET", "api/v1/messages", start=0, limit=1)
        return int(data.get("messages_count", data.get("total", 0)))

    def get(self, msg_id: str) -> Message:
        """The whole message (the server marks it read), with headers and, where the server
        has it (mailpit_py), the SMTP envelope and transcript."""
        mid = urllib.parse.quote(msg_id, safe="")
        data = self._json("GET", f"api/v1/message/{mid}")
        real = urllib.parse.quote(str(data["ID"]), safe="")
        headers = self._json("GET", f"api/v1/message/{real}/headers")
        try:
            smtp = self._json("GET", f"api/v1/message/{real}/smtp")
        except ClientError as err:
            if err.status not in (404, 405):
                raise
            smtp = None  # Mailpit has no transcript endpoint
        return Message.from_api(data, headers, smtp, self.part)

    def headers(self, msg_id: str) -> dict[str, list[str]]:
        mid = urllib.parse.quote(msg_id, safe="")
        return dict(self._json("GET", f"api/v1/message/{mid}/headers"))

    def raw(self, msg_id: str) -> bytes:
        """The message exactly as received."""
        return self.request("GET", f"api/v1/message/{urllib.parse.quote(msg_id, safe='')}/raw")

    def part(self, msg_id: str, part_id: str) -> bytes:
        """The decoded bytes of an attachment or inline part."""
        mid = urllib.parse.quote(msg_id, safe="")
        return self.request("GET", f"api/v1/message/{mid}/part/{urllib.parse.quote(part_id)}")

    def tags(self) -> list[str]:
        return list(self._json("GET", "api/v1/tags"))

    def info(self) -> dict[str, Any]:
        """Instance statistics (`GET /api/v1/info`) as the server sends them."""
        return dict(self._json("GET", "api/v1/info"))

    # -- writing ---------------------------------------------------------------------------

    def delete(self, ids: Sequence[str] | None = None) -> None:
        """Delete these messages, or every message when `ids` is None."""
        if ids is None:
            self._ok("DELETE", "api/v1/messages")
        else:
            self._ok("DELETE", "api/v1/messages", {"IDs": list(ids)})

    def delete_search(self, query: str) -> None:
        """Delete exactly what `search(query)` lists."""
        self.request("DELETE", "api/v1/search", params={"query": query})

    def mark_read(self, ids: Sequence[str], read: bool = True) -> None:
        self._ok("PUT", "api/v1/messages", {"IDs": list(ids), "Read": read})

    def set_tags(self, ids: Sequence[str], tags: Sequence[str]) -> None:
        """Set the exact tags of these messages (an empty list removes them all)."""
        self._ok("PUT", "api/v1/tags", {"IDs": list(ids), "Tags": list(tags)})

    def send(
        self,
        *,
        from_: str | tuple[str, str] | Address,
        to: Sequence[str | tuple[str, str] | Address] = (),
        subject: str = "",
        text: str = "",
        html: str = "",
        cc: Sequence[str | tuple[str, str] | Address] = (),
        bcc: Sequence[str] = (),
        reply_to: Sequence[str | tuple[str, str] | Address] = (),
        tags: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        attachments: Sequence[Any] = (),
    ) -> str:
        """Deliver a message through the send API; its ID. Addresses are "a@x" or (name, addr);
        attachments are (filename, bytes[, content_type[, content_id]]) tuples."""
        body: dict[str, Any] = {"From": _address_json(from_), "Subject": subject}
        if to:
            body["To"] = [_address_json(a) for a in to]
        if cc:
            body["Cc"] = [_address_json(a) for a in cc]
        if bcc:
            body["Bcc"] = list(bcc)
        if reply_to:
            body["ReplyTo"] = [_address_json(a) for a in reply_to]
        if text:
            body["Text"] = text
        if html:
            body["HTML"] = html
        if tags:
            body["Tags"] = list(tags)
        if headers:
            body["Headers"] = dict(headers)
        if attachments:
            body["Attachments"] = [_attachment_json(a) for a in attachments]
        return str(self._json("POST", "api/v1/send", body)["ID"])

    def release(self, msg_id: str, to: Sequence[str]) -> None:
        """Relay a stored message to these recipients through the configured upstream server."""
        mid = urllib.parse.quote(msg_id, safe="")
        self._ok("POST", f"api/v1/message/{mid}/release", {"To": list(to)})

    # -- mailboxes (mailpit_py) --------------------------------------------------------------

    def _root(self, method: str, path: str, body: Any = None) -> bytes:
        return self._send(self.base_url + path, method, body)

    def mailboxes(self) -> list[MailboxInfo]:
        """The instance's mailboxes (those this user may see), sorted by name."""
        data = json.loads(self._root("GET", "api/v1/mailboxes"))
        return [MailboxInfo.from_api(m) for m in data.get("Mailboxes") or ()]

    def create_mailbox(self, name: str) -> None:
        """Create an empty mailbox (ClientError 409 when it exists)."""
        self._root("POST", "api/v1/mailboxes", {"Name": name})

    def rename_mailbox(self, old: str, new: str) -> None:
        self._root("PUT", _mailbox_api(old), {"Name": new})

    def empty_mailbox(self, name: str) -> None:
        """Delete every message of one mailbox."""
        self._root("DELETE", _mailbox_api(name) + "/messages")

    def delete_mailbox(self, name: str) -> None:
        """Delete a mailbox and its messages (not the default mailbox)."""
        self._root("DELETE", _mailbox_api(name))


def _mailbox_api(name: str) -> str:
    return "api/v1/mailboxes/" + urllib.parse.quote(name, safe="")
