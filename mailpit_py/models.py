"""Frozen value types shared by every layer: addresses, MIME parts, parsed messages, sessions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple


class Address(NamedTuple):
    """One mailbox: display name (decoded) and addr-spec.

    A NamedTuple, not a frozen dataclass: the parser makes several per message, and a frozen
    dataclass sets each field through object.__setattr__; its hash (the address JSON cache in
    mailbox/record.py) is the tuple's, in C.
    """

    name: str
    address: str

    def to_api(self) -> dict[str, str]:
        return {"Name": self.name, "Address": self.address}


class Envelope(NamedTuple):
    """What SMTP said, as opposed to what the headers say (RFC 5321 section 2.3.1).

    A NamedTuple for the same reason as Address: one is made for every message.
    """

    mail_from: str  # "" for the null sender <>
    rcpt_to: tuple[str, ...]
    # MAIL FROM had the SMTPUTF8 parameter (RFC 6531): raw UTF-8 headers are then allowed.
    smtputf8: bool = False


@dataclass(frozen=True)
class Part:
    """A leaf MIME part that is shown as an attachment or an inline part.

    part_id is the dotted IMAP-style section path ("1", "2.1", ...), stable for a given raw
    message. data holds the decoded bytes (transfer encoding removed).
    """

    part_id: str
    content_type: str
    filename: str
    content_id: str
    disposition: str  # "attachment", "inline" or "" as declared
    size: int
    md5: str
    sha1: str
    sha256: str
    data: bytes = field(repr=False, default=b"")

    def to_api(self) -> dict[str, object]:
        return {
            "PartID": self.part_id,
            "FileName": self.filename,
            "ContentType": self.content_type,
            "ContentID": self.content_id,
            "Size": self.size,
            "Checksums": {"MD5": self.md5, "SHA1": self.sha1, "SHA256": self.sha256},
        }


@dataclass(frozen=True)
class ListUnsubscribe:
    """RFC 2369 / RFC 8058 List-Unsubscribe, as Mailpit reports it."""

    header: str = ""
    links: tuple[str, ...] = ()
    errors: str = ""
    header_post: str = ""

    def to_api(self) -> dict[str, object]:
        return {
            "Header": self.header,
            "Links": list(self.links),
            "Errors": self.errors,
            "HeaderPost": self.header_post,
        }


class ParsedMessage(NamedTuple):
    """Everything the views need, derived once from the raw bytes at ingest.

    A NamedTuple, not a frozen dataclass: as immutable, and built in a third of the time (a
    frozen dataclass sets each field through object.__setattr__; one is built per message).
    """

    message_id: str  # without angle brackets
    message_id_generated: bool  # True when the message had none and one was made up
    from_addr: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]  # header Bcc plus envelope-only recipients
    reply_to: tuple[Address, ...]
    return_path: str  # from MAIL FROM
    subject: str  # RFC 2047 decoded
    date: datetime | None  # the Date header, timezone-aware; None when missing or unparsable
    headers: tuple[tuple[str, str], ...]  # every header in order, duplicates kept, decoded
    list_unsubscribe: ListUnsubscribe
    text: str
    html: str
    snippet: str  # about 200 characters of text
    attachments: tuple[Part, ...]
    inline: tuple[Part, ...]
    warnings: tuple[str, ...]  # what the parser noticed, one sentence each
    tags: tuple[str, ...] = ()  # from X-Tags and plus-addresses
