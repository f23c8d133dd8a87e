"""REST API v1 views, Mailpit-compatible: thin, every read and write goes through the mailbox."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime
from email.utils import parsedate_to_datetime
from importlib import resources
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, Response, current_app, jsonify, request

from mailpit_py import __version__
from mailpit_py.mailbox.compose import ComposeError, compose
from mailpit_py.mailbox.facade import MessageNotFound
from mailpit_py.observability import relayqueue as relay_queue
from mailpit_py.observability.stats import rss_bytes
from mailpit_py.relay.service import Relay, RelayError
from mailpit_py.smtp.chaos import Chaos, ChaosError
from mailpit_py.webapp.errors import BadRequest
from mailpit_py.webapp.prefix import (
    mailbox,
    require_unrestricted,
    restricted,
    settings_box,
    view,
)
from mailpit_py.webapp.security import (
    inert,
    mail_content,
)

api = Blueprint("api", __name__)
log = logging.getLogger("mailpit_py.web")


def ok() -> Response:
    """Mailpit's answer to a successful change: the text `ok`."""
    return Response("ok", mimetype="text/plain")


def runtime() -> Any:
    return current_app.config["RUNTIME"]


# -- request helpers ---------------------------------------------------------------------------


def int_arg(name: str, default: int, minimum: int = 0, maximum: int = 1_000_000) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise BadRequest(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


GO_INT = re.compile(r"[+-]?[0-9]+")
NO_LIMIT = 2**62  # Mailpit's limit=0 on the list: every message (SQLite takes a 64-bit LIMIT)


def go_int(name: str) -> int | None:
    """The parameter as Go's strconv.Atoi reads it, or None (Mailpit then uses its default)."""
    raw = request.args.get(name, "")
    if not GO_INT.fullmatch(raw):
        return None
    value = int(raw)
    if abs(value) >= 2**63:
        return None  # out of Go's int range: Atoi fails, so Mailpit's default applies
    return min(value, NO_LIMIT)  # start + limit stays a 64-bit integer for SQLite


def page_args() -> tuple[int, int]:
    """(start, limit) as Mailpit's getStartLimit reads them: never a 400.

    A start that is not a positive whole number is 0; a limit that is not a whole number of 0 or
    more is 50. Clients written for Mailpit send limit=0 and expect an answer, not an error."""
    start = go_int("start")
    limit = go_int("limit")
    return (start if start is not None and start > 0 else 0), (
        limit if limit is not None and limit >= 0 else 50
    )


def zone_arg() -> str:
    """?tz= when it names a known zone; Mailpit ignores an unknown one (and logs it)."""
    tz = request.args.get("tz", "").strip()
    if not tz:
        return ""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        log.warning("ignoring invalid timezone %r", tz)
        return ""
    return tz


def before_arg() -> float | None:
    """?before= as epoch seconds: a date and time as Mailpit's dateparse reads the common ones
    (RFC 3339 or ISO 8601, a date alone, RFC 2822, Unix seconds or milliseconds), local time
    when it has no offset. Anything else is ignored (and logged), as in Mailpit."""
    raw = request.args.get("before", "").strip()
    if not raw:
        return None
    when = parse_when(raw)
    if when is None:
        log.warning('ignoring invalid before: date "%s"', raw)
    return when


def parse_when(raw: str) -> float | None:
    if raw.isdigit():
        number = int(raw)
        # dateparse reads 10 digits as seconds, 13 as milliseconds
        return number / 1000 if len(raw) >= 13 else float(number)
    when: datetime | None
    try:
        when = datetime.fromisoformat(raw.replace(" ", "T", 1) if len(raw) > 10 else raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
    if when.tzinfo is None:
        when = when.astimezone()  # a naive time is the server's local time (ParseLocal)
    return when.timestamp()


def json_body(*, required: bool) -> dict[str, Any]:
    data = request.get_data(cache=True)
    if not data.strip():
        if required:
            raise BadRequest("a JSON object body is required")
        return {}
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        # A few hundred KB of brackets reach Python's recursion limit inside the parser; no
        # body this API takes is nested more than three levels.
        too_deep = "arrays or objects nested too deeply"
        raise BadRequest(f"the body is not valid JSON: {too_deep}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def str_list(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{key} must be a list of strings")
    return value


def bool_field(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{key} must be true or false")
    return value


def resolve(msg_id: str) -> str:
    """`latest`, optionally narrowed by ?query=, or the ID itself."""
    if msg_id == "latest" and request.args.get("query"):
        found, _, _ = view().search(request.args["query"], 0, 1, zone_arg())
        if not found:
            raise MessageNotFound("latest")
        return str(found[0]["ID"])
    return view().resolve(msg_id)


# -- messages ----------------------------------------------------------------------------------


def listing(messages: list[dict[str, Any]], matched: int, unread_matched: int) -> Response:
    total, unread = view().counts()
    return jsonify(
        {
            "total": total,
            "unread": unread,
            "count": len(messages),
            "messages_count": matched,
            "messages_unread": unread_matched,
            "start": page_args()[0],
            "tags": view().tags(),
            "messages": messages,
        }
    )


@api.get("/api/v1/messages")
def list_messages() -> Response:
    start, limit = page_args()
    total, unread = view().counts()
    if limit == 0:  # Mailpit: no limit, every message from start on
        limit = NO_LIMIT
    # Mailpit counts the whole mailbox here even with ?before=: only the page is narrowed
    return listing(view().list_messages(start, limit, before_arg()), total, unread)


@api.put("/api/v1/messages")
def mark_messages() -> Response:
    body = json_body(required=False)
    read = bool_field(body, "Read", False)
    ids = str_list(body, "IDs")
    search = body.get("Search")
    if search is not None and not isinstance(search, str):
        raise BadRequest("Search must be a string")
    if ids and search:
        raise BadRequest("You may specify either IDs or a search query, not both")  # Mailpit's
    if ids:
        view().mark_read(ids, read)
    elif search:
        view().mark_search(search, read, str(body.get("TZ") or zone_arg()))
    else:
        view().mark_read(None, read)
    return ok()


@api.delete("/api/v1/messages")
def delete_messages() -> Response:
    # Mailpit decodes the body and deletes everything when that fails or names no IDs, so a
    # client that sends no JSON (or form data) to empty the mailbox gets what it expects.
    try:
        ids = str_list(json_body(required=False), "IDs")
    except BadRequest:
        ids = None
    if ids:
        view().delete(ids)
    else:
        view().delete_all()  # Mailpit: an empty or missing body deletes everything
    return ok()


def search_query() -> str:
    """The search's query; Mailpit answers 400 to one that is missing or blank (on GET, and on
    DELETE, where it would otherwise delete every message)."""
    query = request.args.get("query", "")
    if not query.strip():
        raise BadRequest("Error: no search query")  # Mailpit's text
    return query


@api.get("/api/v1/search")
def search() -> Response:
    query = search_query()
    start, limit = page_args()
    # Mailpit pages its matches with start:start+limit, so limit=0 lists none but still counts
    found, matched, unread = view().search(query, start, limit, zone_arg(), before_arg())
    return listing(found, matched, unread)


@api.delete("/api/v1/search")
def delete_search() -> Response:
    view().delete_search(search_query(), zone_arg())
    return ok()


@api.get("/api/v1/message/<msg_id>")
def message(msg_id: str) -> Response:
    return jsonify(view().get(resolve(msg_id), mark_read=True).to_api())


@api.get("/api/v1/message/<msg_id>/headers")
def headers(msg_id: str) -> Response:
    return jsonify(view().get(resolve(msg_id)).headers())


@api.get("/api/v1/message/<msg_id>/raw")
def raw(msg_id: str) -> Response:
    uid = resolve(msg_id)
    size, chunks = view().raw_stream(uid)  # streamed: a 50 MB message is never whole here
    resp = Response(chunks, mimetype="text/plain")
    resp.headers["Content-Length"] = str(size)
    if request.args.get("dl") in ("1", "true"):
        resp.headers["Content-Disposition"] = f'attachment; filename="{uid}.eml"'
    return mail_content(resp)


@api.get("/api/v1/message/<msg_id>/part/<part_id>")
def part(msg_id: str, part_id: str) -> Response:
    uid = resolve(msg_id)
    content_type, size, chunks = view().part_stream(uid, part_id)
    content_type = content_type or "application/octet-stream"
    resp = Response(chunks, content_type=content_type)
    resp.headers["Content-Length"] = str(size)
    # What could run script (HTML, SVG, XML...) is a download, never a page of the UI's origin;
    # an <img> in the preview still shows an SVG part, as a download only stops navigation.
    kind = "inline" if inert(content_type) else "attachment"
    name = view().get(uid).part_filename(part_id)
    if name:
        resp.headers["Content-Disposition"] = _disposition(kind, name)
    elif kind == "attachment":
        resp.headers["Content-Disposition"] = "attachment"
    return mail_content(resp)


@api.get("/api/v1/message/<msg_id>/smtp")
def smtp_transcript(msg_id: str) -> Response:
    msg = view().get(resolve(msg_id))
    return jsonify(
        {
            "ID": msg.id,
            "SessionID": msg.session_id,
            "Envelope": msg.detail["Envelope"],
            "Transcript": msg.transcript_to_api(),
        }
    )


# -- relay and release -----------------------------------------------------------------------


def relay_service() -> Relay:
    relay = getattr(runtime(), "relay", None)
    if relay is None or relay.settings.relay is None:
        raise RelayError(
            "relaying is not configured: start with --smtp-relay-config FILE, "
            "MP_SMTP_RELAY_HOST or --smtp-relay-mx"
        )
    return relay


@api.post("/api/v1/message/<msg_id>/release")
def release(msg_id: str) -> Response:
    uid = resolve(msg_id)
    to = str_list(json_body(required=True), "To")
    if not to:
        raise BadRequest("To must list at least one recipient address")
    view().summary(uid)  # 404 before anything else
    outcome = relay_service().release(uid, to)
    if outcome == "sent":
        return ok()
    return Response(outcome, status=202, mimetype="text/plain")


@api.get("/api/v1/message/<msg_id>/relay")
def relay_history(msg_id: str) -> Response:
    return jsonify(view().relay_history(resolve(msg_id)))


@api.get("/api/v1/relay/queue")
def relay_queue_listing() -> Response:
    """Our extension: the outbox as `mailq` lists it (empty when nothing relays)."""
    limit = int_arg("limit", relay_queue.LIMIT, minimum=1, maximum=100_000)
    require_unrestricted("the relay queue (every mailbox's outgoing copies)")
    return jsonify(mailbox().relay_queue(time.time(), limit))


@api.get("/api/v1/sessions")
def sessions() -> Response:
    start, limit = page_args()
    if limit == 0:
        limit = NO_LIMIT
    return jsonify(
        {
            "total": view().session_count(),
            "start": start,
            "sessions": view().sessions(start, limit),
        }
    )


@api.get("/api/v1/session/<session_id>")
def session(session_id: str) -> Response:
    return jsonify(view().session(session_id))


# -- send --------------------------------------------------------------------------------------


@api.post("/api/v1/send")
def send() -> tuple[Response, int] | Response:
    try:
        body = json_body(required=True)
        envelope, raw_bytes, tags = compose(body, mailbox().config.dkim_sign)
    except (BadRequest, ComposeError) as exc:
        return jsonify({"Error": str(exc)}), 400
    peer = request.remote_addr or ""
    now = time.time()
    uid = (
        view()
        .deliver(
            envelope,
            raw_bytes,
            transcript=[
                [0.0, "I", f"received over HTTP: POST {request.path} from {peer}"],
                [0.0, "I", f"envelope: MAIL FROM:<{envelope.mail_from}>"],
                *([0.0, "I", f"envelope: RCPT TO:<{r}>"] for r in envelope.rcpt_to),
            ],
            received_at=now,
            tags=tags,
            origin={
                "Helo": "",
                "Peer": peer,
                "TLS": request.is_secure,
                "Username": "",
                "Protocol": "HTTP",
            },
        )
        .result(timeout=60)
    )
    return jsonify({"ID": uid})


# -- tags --------------------------------------------------------------------------------------


@api.get("/api/v1/tags")
def tags() -> Response:
    return jsonify(view().tags())


@api.put("/api/v1/tags")
def set_tags() -> Response:
    body = json_body(required=True)
    ids = str_list(body, "IDs")
    new_tags = str_list(body, "Tags")
    if ids:  # Mailpit answers ok to an empty list: nothing to tag
        view().set_tags(ids, new_tags or [])
    return ok()


@api.put("/api/v1/tags/<path:tag>")
def rename_tag(tag: str) -> Response:
    name = json_body(required=True).get("Name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("Name must be the new, non-empty tag name")
    view().rename_tag(tag, name)
    return ok()


@api.delete("/api/v1/tags/<path:tag>")
def delete_tag(tag: str) -> Response:
    if tag not in view().tags():  # a tag exists while a message has it; names match exactly
        raise BadRequest(f"tag not found: {tag}")  # Mailpit's answer, not a silent ok
    view().delete_tag(tag)
    return ok()


# -- instance ----------------------------------------------------------------------------------


@api.get("/api/v1/info")
def info() -> Response:
    # The counts and tags are the request's mailbox's; the rest is the instance's, except for a
    # user the access list limits: the instance's figures move with every mailbox's mail (a
    # limited user polling them would see another project's mail come and go), so that user
    # gets its mailbox's, no SMTP refusals (they come before routing: no mailbox's) and no
    # database size (it grows with every mailbox's mail too).
    mb = mailbox()
    rt = runtime()
    total, unread = view().counts()
    if restricted():
        accepted, accepted_size, deleted = view().totals()
        rejected, size = 0, 0
    else:
        accepted, accepted_size, deleted = mb.accepted, mb.accepted_size, mb.deleted
        rejected, size = rt.smtp_rejected(), mb.size_bytes()
    return jsonify(
        {
            "Version": __version__,
            "LatestVersion": "",
            "Database": mb.database_path,
            "DatabaseSize": size,
            "Messages": total,
            "Unread": unread,
            "Tags": view().tag_counts(),
            "RuntimeStats": {
                "Memory": rss_bytes(),
                "MessagesDeleted": deleted,
                "SMTPAccepted": accepted,
                "SMTPAcceptedSize": accepted_size,
                "SMTPIgnored": 0,
                "SMTPRejected": rejected,
                "Uptime": int(time.time() - rt.started),
            },
        }
    )


@api.get("/api/v1/webui")
def webui() -> Response:
    cfg = mailbox().config
    return jsonify(
        {
            "Label": cfg.label,
            "MessageRelay": _message_relay(),
            "SpamAssassin": bool(cfg.enable_spamassassin),
            "ChaosEnabled": runtime().chaos() is not None,
            "DuplicatesIgnored": cfg.ignore_duplicate_ids,
            "HideDeleteAllButton": cfg.hide_delete_all_button,
            # Ours, for the UI's about panel: where this instance listens and what it keeps.
            "Listeners": _listeners(),
            # The mailbox's own max (the mailbox config's), else --max; --max-age is for all.
            "Retention": {
                "MaxMessages": mailbox().box_max(settings_box()),
                "MaxAge": int(cfg.max_age or 0),
            },
        }
    )


def _listeners() -> dict[str, str]:
    """The bound address of each listener ("" when it is off), as host:port."""
    rt = runtime()
    found = {}
    for name, get in (
        ("SMTP", lambda: rt.smtp_address),
        ("HTTP", lambda: rt.http_address),
        ("POP3", lambda: rt.pop3.address),
        ("IMAP", lambda: rt.imap.address),
    ):
        try:
            host, port = get()[:2]
            found[name] = f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
        except (AttributeError, AssertionError, TypeError):  # off, or not this kind of runtime
            found[name] = ""
    return found


def _message_relay() -> dict[str, Any]:
    relay = getattr(runtime(), "relay", None)
    if relay is not None:
        return relay.webui()
    return {
        "Enabled": False,
        "SMTPServer": "",
        "ReturnPath": "",
        "AllowedRecipients": "",
        "BlockedRecipients": "",
        "OverrideFrom": "",
        "PreserveMessageIDs": False,
        "Forwarding": False,
    }


@api.get("/api/v1/chaos")
def chaos_get() -> Response:
    return jsonify(_chaos().to_api())


@api.put("/api/v1/chaos")
def chaos_put() -> Response:
    require_unrestricted("changing the chaos triggers (every mailbox's SMTP)")
    try:
        return jsonify(_chaos().update_from_api(json_body(required=True)))
    except ChaosError as exc:
        raise BadRequest(str(exc)) from None


def _chaos() -> Chaos:
    chaos = runtime().chaos()
    if chaos is None:
        raise BadRequest("chaos is not enabled: start with --enable-chaos or --chaos-triggers")
    return chaos


@api.get("/api/v1/swagger.json")
def swagger() -> Response:
    spec = resources.files("mailpit_py.webapp").joinpath("swagger.json").read_text("utf-8")
    return Response(spec, mimetype="application/json")


@api.get("/livez")
def livez() -> Response:
    return ok()


@api.get("/readyz")
def readyz() -> Response:
    problem = runtime().not_ready()
    if problem:
        return Response(f"not ready: {problem}\n", status=503, mimetype="text/plain")
    return ok()


def _disposition(kind: str, filename: str) -> str:
    # The sender chose the name: keep its last path segment only (`../../evil.sh` and
    # `..\\evil.bat` would otherwise reach a browser or a script that saves under it as given).
    # Control characters go, and so do the bidirectional controls (embeddings, overrides,
    # isolates, marks): "invoice<RLO>fdp.exe" is shown as "invoiceexe.pdf" by a download bar.
    filename = re.sub(
        r"[\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]",
        "",
        re.split(r"[/\\]", filename)[-1],
    ).strip()
    if filename in ("", ".", ".."):
        filename = "attachment"
    ascii_name = re.sub(r'[^\x20-\x7e]|["\\]', "_", filename)
    if ascii_name == filename:
        return f'{kind}; filename="{filename}"'
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
