"""Per-test mailboxes for the pytest plugin: names, the routing a server needs, and what to say
when a server does not route."""

from __future__ import annotations

import json
import re
import secrets
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailpit_py.client import Client, ClientError

if TYPE_CHECKING:
    from mailpit_py.server import Server

# Recipients at NAME.mailbox.test land in mailbox NAME: a test whose code cannot log in to SMTP
# still gets its own mailbox by sending to its own domain. ".test" is reserved (RFC 2606), so
# no real address is ever routed by mistake.
DOMAIN_SUFFIX = "mailbox.test"
RCPT_ROUTE = "{mailbox}=rcpt:*@{mailbox}." + DOMAIN_SUFFIX
PASSWORD = "mailpit"  # any password logs in: the server accepts any AUTH user

# What the plugin's own server runs with, and what an external one needs (the same flags).
ROUTING_SETTINGS: dict[str, Any] = {
    "mailbox_auto": True,
    "mailbox_routes": (RCPT_ROUTE,),
    "smtp_auth_accept_any": True,
    "smtp_auth_allow_insecure": True,
}
SERVER_FLAGS = (
    f"--mailbox-auto --mailbox-route '{RCPT_ROUTE}' "
    "--smtp-auth-accept-any --smtp-auth-allow-insecure"
)

_NOT_LABEL = re.compile(r"[^a-z0-9]+")
_SLUG_MAX = 40  # + "-" + 8 hex digits: a mailbox name and a DNS label both take it


def box_name(nodeid: str) -> str:
    """A new mailbox name for the test `nodeid`: its name made a DNS label (the name is also
    the test's recipient domain, and apps' address validators refuse `_` there) and a random
    tail, unique across xdist workers, reruns and earlier runs on a long-lived server."""
    test = nodeid.rpartition("::")[2].lower()
    test = test.removeprefix("test_").removeprefix("test")
    slug = _NOT_LABEL.sub("-", test)[:_SLUG_MAX].strip("-") or "test"
    return f"{slug}-{secrets.token_hex(4)}"


class MailboxHost:
    """The server the per-test mailboxes live on: its API root and SMTP address, the server
    itself when it runs in this process, and whether this plugin started it (else its routing
    is checked when a test's mail goes missing)."""

    def __init__(
        self, url: str, smtp_address: tuple[str, int], server: Server | None, external: bool
    ) -> None:
        self.client = Client(url)
        self.smtp_address = smtp_address
        self.server = server
        self.external = external


@dataclass(frozen=True)
class SmtpSettings:
    """What a test's code sends with to reach its own mailbox: log in as `username` (any
    password works), or send to addresses at `domain`, or both."""

    host: str
    port: int
    username: str
    password: str
    domain: str

    def address(self, local: str = "user") -> str:
        """An address in this test's mailbox, e.g. address("ann") -> ann@NAME.mailbox.test."""
        return f"{local}@{self.domain}"


def settings_for(box: str, smtp_address: tuple[str, int]) -> SmtpSettings:
    host, port = smtp_address
    return SmtpSettings(host, port, box, PASSWORD, f"{box}.{DOMAIN_SUFFIX}")


def check_mailboxes_api(client: Client) -> str | None:
    """None when the server at `client` has mailboxes (mailpit_py's /api/v1/mailboxes), else
    why not and what to run instead."""
    try:
        client.mailboxes()
    except ClientError as err:
        if err.status in (404, 405):
            return (
                f"the server at {client.base_url} has no mailboxes (GET "
                f"{client.base_url}api/v1/mailboxes answered {err.status}: Mailpit, an older "
                "mailpit_py, or a URL without the server's --webroot?): a mailbox per test "
                f"needs mailpit_py started with {SERVER_FLAGS}"
            )
        if err.status == 0:
            return err.message
    return None


def misrouted(base: Client, smtp: SmtpSettings, newest: int = 50) -> str:
    """When mail this test sent sits in the default mailbox (the server did not route it), a
    sentence that says so and which flags route it; else ''. Reads the newest `newest`
    messages' envelopes (without marking them read)."""
    by_user = by_rcpt = 0
    subjects: list[str] = []
    try:
        default = base.for_mailbox(None)
        for summary in default.messages(limit=newest):
            mid = urllib.parse.quote(summary.id, safe="")
            envelope = _envelope(default.request("GET", f"api/v1/message/{mid}/smtp"))
            user = str(envelope.get("Username") or "").lower() == smtp.username
            rcpt = any(
                str(r).lower().endswith("@" + smtp.domain) for r in envelope.get("To") or ()
            ) or any(a.address.lower().endswith("@" + smtp.domain) for a in summary.to)
            if user or rcpt:
                by_user += user
                by_rcpt += rcpt and not user
                subjects.append(summary.subject)
    except ClientError:
        return ""  # a restricted user, or a server without envelopes: nothing to tell
    if not subjects:
        return ""
    need = []
    if by_user:
        need.append(f"--mailbox-auto (a mailbox per SMTP AUTH username, here {smtp.username!r})")
    if by_rcpt:
        need.append(f"--mailbox-route '{RCPT_ROUTE}' (recipients @{smtp.domain})")
    return (
        f"{len(subjects)} message(s) this test sent landed in the server's default mailbox, "
        f"not in mailbox {smtp.username!r} ({', '.join(repr(s) for s in subjects)}): "
        f"the server at {base.base_url} does not route them; start it with "
        + " and ".join(need)
        + f" (all it needs: {SERVER_FLAGS})"
    )


def _envelope(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw)
    envelope = data.get("Envelope") if isinstance(data, dict) else None
    return envelope if isinstance(envelope, dict) else {}
