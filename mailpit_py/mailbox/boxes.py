"""Mailbox (project inbox) names: the default mailbox and how a user's text becomes a name."""

from __future__ import annotations

import re
from typing import NamedTuple

DEFAULT_BOX = "default"  # always exists; cannot be deleted or renamed
BOX_NAME_MAX = 64
BOX_NAME_ALLOWED = "a-z 0-9 . _ - @ +"

_OUTSIDE = re.compile(r"[^a-z0-9._@+-]")
_CLEAN = re.compile(rf"[a-z0-9._@+-]{{1,{BOX_NAME_MAX}}}")


def clean_box_name(text: str) -> str:
    """`text` stripped, lower-cased, with each character outside BOX_NAME_ALLOWED made `_`:
    names end up in URLs (/mailbox/NAME/), IMAP folder lists and log lines, so they are kept
    to characters that need no quoting in any of them."""
    name = _OUTSIDE.sub("_", text.strip().lower())
    if name and not name.strip("."):
        # "." and ".." are path segments: a client collapses /mailbox/../ to /, so such a
        # mailbox's address would show the default mailbox (and a dump folder would escape).
        name = "_" * len(name)
    if not name:
        raise ValueError(f"mailbox name is empty: use 1 to {BOX_NAME_MAX} of {BOX_NAME_ALLOWED}")
    if len(name) > BOX_NAME_MAX:
        raise ValueError(
            f"mailbox name is {len(name)} characters long: use at most {BOX_NAME_MAX}"
            f" of {BOX_NAME_ALLOWED}"
        )
    return name


def is_box_name(text: str) -> bool:
    """Whether `text` is already a clean, valid mailbox name."""
    return _CLEAN.fullmatch(text) is not None and bool(text.strip("."))


class BoxInfo(NamedTuple):
    """One mailbox as listed: its name, messages, unread messages and creation time."""

    name: str
    total: int
    unread: int
    created: float


class BoxNotFound(LookupError):
    """No mailbox of that name (the web answers 404)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"mailbox not found: {name}")
        self.name = name


class BoxExists(ValueError):
    """A mailbox of that name exists already (the web answers 409)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"mailbox already exists: {name}")
        self.name = name


class BoxRefused(ValueError):
    """A change no mailbox may have, such as renaming or deleting the default one (400)."""
