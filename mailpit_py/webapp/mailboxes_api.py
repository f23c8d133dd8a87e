"""The mailboxes API (ours): list the mailboxes a user may see, create, rename, empty, delete."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from mailpit_py.mailbox.boxes import BoxInfo, BoxNotFound, clean_box_name, is_box_name
from mailpit_py.timefmt import rfc3339
from mailpit_py.webapp.api import json_body, ok
from mailpit_py.webapp.errors import BadRequest
from mailpit_py.webapp.prefix import allowed, mailbox, may_see, require_unrestricted

mailboxes_api = Blueprint("mailboxes_api", __name__)


def to_api(info: BoxInfo) -> dict[str, Any]:
    return {
        "Name": info.name,
        "Total": info.total,
        "Unread": info.unread,
        "Created": rfc3339(info.created),
    }


def body_name(what: str) -> str:
    """The body's Name as a mailbox name (trimmed, lower-cased, other characters made `_`)."""
    name = json_body(required=True).get("Name")
    if not isinstance(name, str):
        raise BadRequest(f"Name must be the {what} as a string")
    try:
        return clean_box_name(name)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def path_name(name: str) -> str:
    """A mailbox named in the path: one this user may see, else the same 404 as a missing one."""
    if not (is_box_name(name) and may_see(name)):
        raise BoxNotFound(name)
    return name


@mailboxes_api.get("/api/v1/mailboxes")
def list_boxes() -> Response:
    boxes = allowed()
    return jsonify(
        {"Mailboxes": [to_api(b) for b in mailbox().boxes() if boxes is None or b.name in boxes]}
    )


@mailboxes_api.post("/api/v1/mailboxes")
def create_box() -> tuple[Response, int]:
    require_unrestricted("creating a mailbox")
    name = mailbox().create_box(body_name("new mailbox's name"))
    return jsonify(to_api(mailbox().box_info(name))), 201


@mailboxes_api.put("/api/v1/mailboxes/<name>")
def rename_box(name: str) -> Response:
    old = path_name(name)
    require_unrestricted("renaming a mailbox")
    mailbox().rename_box(old, body_name("mailbox's new name"))
    return ok()


@mailboxes_api.delete("/api/v1/mailboxes/<name>/messages")
def empty_box(name: str) -> Response:
    mailbox().empty_box(path_name(name))
    return ok()


@mailboxes_api.delete("/api/v1/mailboxes/<name>")
def delete_box(name: str) -> Response:
    box = path_name(name)
    require_unrestricted("deleting a mailbox")
    mailbox().delete_box(box)
    return ok()
