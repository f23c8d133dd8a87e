"""IMAP folder names over mailboxes and their tags: which folder a name means, and back."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

INBOX = "INBOX"
DELIMITER = "/"


@dataclass(frozen=True)
class Folder:
    """One IMAP folder: a mailbox (box), and in it INBOX or a tag's folder."""

    box: str
    folder: str  # "INBOX" or a tag name

    @property
    def is_inbox(self) -> bool:
        return self.folder == INBOX


@dataclass(frozen=True)
class FolderSpace:
    """The folders one login sees.

    Its primary mailbox is `INBOX`, and that mailbox's tags are top-level folders, as they were
    before there were mailboxes (a user with one mailbox sees no change). Every other mailbox
    it may see is a top-level folder named after the mailbox, and that mailbox's tags are
    folders inside it (`proj-a/urgent`). Mailbox names never hold `/` and tags never do either
    (both are cleaned), so a name splits one way only; a tag of the primary mailbox named like
    another mailbox the login sees is hidden by that mailbox's folder. A mailbox named `inbox`
    is a folder only as the INBOX of a login whose own mailbox it is: IMAP names ignore the
    case of INBOX.
    """

    primary: str
    boxes: frozenset[str]  # every mailbox this login may see, the primary included

    @property
    def others(self) -> list[str]:
        """The mailboxes shown as folders of their own, by name."""
        return sorted(b for b in self.boxes if self.is_other(b))

    def is_other(self, name: str) -> bool:
        """Whether `name` is a mailbox with a folder of its own (not the INBOX)."""
        return name in self.boxes and name != self.primary and name.upper() != INBOX

    def parse(self, name: str) -> Folder | None:
        """The folder `name` would be (a tag folder's tag is not checked), or None when it
        names a mailbox this login may not see (or nothing at all)."""
        if name.upper() == INBOX:
            return Folder(self.primary, INBOX)
        if self.is_other(name):
            return Folder(name, INBOX)
        box, sep, tag = name.partition(DELIMITER)
        if sep and self.is_other(box):
            if not tag or tag.upper() == INBOX:
                return None  # "proj/INBOX" is not a folder: the mailbox's folder is its INBOX
            return Folder(box, tag)
        if not name:
            return None
        return Folder(self.primary, name)

    def name(self, folder: Folder) -> str:
        """The folder's IMAP name (decoded: encode_mailbox makes it modified UTF-7)."""
        if folder.box == self.primary:
            return folder.folder
        if folder.is_inbox:
            return folder.box
        return f"{folder.box}{DELIMITER}{folder.folder}"

    def shadowed(self, tag: str) -> bool:
        """Whether a tag of the primary mailbox is hidden by another mailbox's folder."""
        return self.is_other(tag)

    def listing(self, tags: dict[str, Iterable[str]]) -> list[tuple[str, bool]]:
        """(name, has children) of every folder, given each visible mailbox's tag folders."""
        out: list[tuple[str, bool]] = [(INBOX, False)]
        primary_tags = sorted(
            (t for t in tags.get(self.primary, ()) if not self.shadowed(t)), key=str.casefold
        )
        out += [(t, False) for t in primary_tags]
        for box in self.others:
            inner = sorted(set(tags.get(box, ())), key=str.casefold)
            out.append((box, bool(inner)))
            out += [(f"{box}{DELIMITER}{t}", False) for t in inner]
        return out


def folder_space(
    primary: str, existing: Collection[str], allowed: Collection[str] | None
) -> FolderSpace:
    """The folders of a login whose primary mailbox is `primary`: every existing mailbox when
    it may see all (`allowed` None), else those of its mailboxes that exist."""
    seen = set(existing) if allowed is None else set(existing) & set(allowed)
    return FolderSpace(primary, frozenset(seen | {primary}))
