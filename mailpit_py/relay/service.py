"""Release and auto-relay: queue copies in the persistent outbox and send them from a worker
thread, retrying temporary failures with exponential backoff; every attempt is recorded."""

from __future__ import annotations

import ipaddress
import json
import logging
import smtplib
import socket
import threading
import time
from collections.abc import Sequence
from email.utils import parseaddr
from typing import Any

from mailpit_py.config.settings import Config
from mailpit_py.dkimsign.signer import signer_for
from mailpit_py.mailbox.boxes import DEFAULT_BOX
from mailpit_py.mailbox.facade import Mailbox, MessageNotFound
from mailpit_py.mailbox.hooks import NO_HOOKS, DeliveryHooks, OutboxItem
from mailpit_py.models import Envelope
from mailpit_py.net.dns import DnsError, reverse_name
from mailpit_py.relay import dsn as relay_dsn
from mailpit_py.relay import send as relay_send
from mailpit_py.relay.config import RelaySettings, Upstream, address_rule, settings
from mailpit_py.relay.send import Result
from mailpit_py.store.records import StoreError

log = logging.getLogger("mailpit_py.relay")

RELEASE_WAIT = 20.0  # seconds a release request waits for its first attempt's outcome
MAX_DELAY = 3600.0  # the longest pause between retries
# The origin of a bounce the relay delivers into the catcher (auto-relay leaves it alone).
DSN_ORIGIN = "delivery status notification"


class RelayError(ValueError):
    """A release that cannot be done as asked (the message says why); an HTTP 400."""


class RelayFailed(RuntimeError):
    """The upstream refused a release for good; an HTTP 502 with its reply."""


class Relay:
    """The relay service of one server: plans outbox items, runs the worker, releases.

    Built before the mailbox: `hooks()` is what it adds to every delivery, given to Mailbox
    when that is built; `start(mailbox)` runs the worker on that mailbox's outbox."""

    def __init__(self, config: Config) -> None:
        self.settings: RelaySettings = settings(config)
        self._mailbox: Mailbox | None = None
        # forward-smtp-errors on an auto-relay upstream: its copy goes inside the SMTP session.
        self._inline = any(up.forward_smtp_errors for up in self._auto_upstreams())
        # Set by the mailbox after a commit that queued outbox items: there is work to send.
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._attempted = threading.Condition()
        self.hostname = config.smtp_hostname or socket.getfqdn()
        # One resolver (net/dns.py, with --dns-override) for MX routing and the reverse DNS
        # name of the client in the relay's Received header.
        self._resolver = relay_send.make_resolver(self.settings.nameserver, config.dns_override)
        # --dkim-sign: each copy is signed as it goes out, after the header changes a release
        # or a forward makes (a new Date, override-from), so the signature covers what is sent.
        self.signer = signer_for(config.dkim_sign)

    @property
    def active(self) -> bool:
        return self.settings.relay is not None or self.settings.forward is not None

    @property
    def mailbox(self) -> Mailbox:
        if self._mailbox is None:
            raise RuntimeError("the relay is not started: call start(mailbox) first")
        return self._mailbox

    # -- lifecycle ---------------------------------------------------------------------------

    def hooks(self) -> DeliveryHooks:
        """What the relay adds to every delivery (none when it neither relays nor forwards)."""
        if not self.active:
            return NO_HOOKS
        return DeliveryHooks(
            plan_outbox=self.plan,
            outbox_ready=self._ready.set,
            relay_inline=self.inline if self._inline else None,
        )

    def start(self, mailbox: Mailbox) -> Relay:
        """Work on this mailbox: releases, and (when active) the worker sending its outbox,
        including what was queued before it started."""
        self._mailbox = mailbox
        if not self.active:
            return self
        self._thread = threading.Thread(target=self._loop, name="relay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._ready.set()
        if self._thread is not None:
            self._thread.join(timeout=relay_send.SMTP_TIMEOUT + 5)
            self._thread = None

    # -- what a new message gets -------------------------------------------------------------

    def _auto_upstreams(self) -> list[Upstream]:
        s = self.settings
        ups = []
        if s.relay is not None and (s.relay_all or s.matching):
            ups.append(s.relay)
        if s.forward is not None:
            ups.append(s.forward)
        return ups

    def auto_recipients(self, envelope: Envelope) -> list[str]:
        """Who auto-relay sends a new message to: all or the matching recipients, never the
        blocked ones (allowed-recipients is for manual releases, as in Mailpit)."""
        s = self.settings
        if s.relay is None:
            return []
        rcpts = list(envelope.rcpt_to)
        if s.matching:
            rule = address_rule(s.matching)
            rcpts = [r for r in rcpts if rule.search(r)]
        elif not s.relay_all:
            return []
        return [r for r in rcpts if not s.relay.blocked(r)]

    def plan(self, envelope: Envelope, origin: dict[str, Any]) -> list[OutboxItem]:
        """Outbox items committed with a new message (runs before its commit)."""
        s = self.settings
        if origin.get("Generated") == DSN_ORIGIN:
            return []  # a bounce the relay wrote stays in the catcher, where it is shown
        # Any SMTP session: SMTP, ESMTP and RFC 3848's ESMTPS/ESMTPA/ESMTPSA (not IMAP or HTTP).
        smtp = str(origin.get("Protocol", "")).startswith(("SMTP", "ESMTP"))
        in_session = smtp and self._inline
        out: list[OutboxItem] = []
        if s.relay is not None and not (s.relay.forward_smtp_errors and in_session):
            rcpts = self.auto_recipients(envelope)
            if rcpts:
                sender = relay_send.envelope_sender(s.relay, envelope.mail_from)
                out.append(("relay", sender, rcpts))
        if s.forward is not None and not (s.forward.forward_smtp_errors and in_session):
            sender = relay_send.envelope_sender(s.forward, envelope.mail_from)
            out.append(("forward", sender, list(s.forward.to)))
        return out

    def inline(self, uid: str, envelope: Envelope, raw: bytes) -> str:
        """forward-smtp-errors: relay now, inside the SMTP session; the upstream's refusal (or
        the connection error as a 451) is the reply to give the client, else ""."""
        s = self.settings
        jobs: list[tuple[str, Upstream, list[str]]] = []
        if s.relay is not None and s.relay.forward_smtp_errors:
            rcpts = self.auto_recipients(envelope)
            if rcpts:
                jobs.append(("relay", s.relay, rcpts))
        if s.forward is not None and s.forward.forward_smtp_errors:
            jobs.append(("forward", s.forward, list(s.forward.to)))
        for kind, up, rcpts in jobs:
            started = time.time()  # never queued: the copy is sent while the client waits
            sender = relay_send.envelope_sender(up, envelope.mail_from)
            data = relay_send.automatic_copy(raw, up, kind)
            result = self._deliver(up, sender, rcpts, data, uid)
            if result.sent() and (result.temporary() or result.permanent()):
                self._partial(uid, kind, up, envelope.mail_from, sender, rcpts, raw, result)
                continue
            outcome = "sent" if not result.temporary() + result.permanent() else "failed"
            self.mailbox.telemetry.observe("relay_delivery", time.time() - started, outcome)
            self._record(0, uid, kind, rcpts, result, outcome, "sent", [], time.time())
            refusal = result.first_refusal()
            if refusal is not None:
                code, text = refusal
                if code == 0:
                    return f"451 4.4.1 relay to {result.server} failed: {text}"
                return f"{code} {text}"
        return ""

    def _partial(
        self,
        uid: str,
        kind: str,
        up: Upstream,
        original_sender: str,
        sender: str,
        rcpts: list[str],
        raw: bytes,
        result: Result,
    ) -> None:
        """forward-smtp-errors with a mixed upstream result. The DATA reply is one code for
        every recipient (RFC 5321 section 4.2.5) and ours were all accepted at RCPT before the
        upstream was asked, so the client hears 250 once one copy went out: a refused
        recipient gets a bounce (DSN) in the catcher, a deferred one is queued for a retry.
        `raw` is the stored message: the worker makes the copy's changes as it sends, once."""
        later = result.temporary()
        now = time.time()
        if later:
            item = self.mailbox.queue_relay(uid, kind, sender, later, raw)
            self._record(
                item, uid, kind, rcpts, result, "partial", "pending", later,
                now + self.settings.retry_delay,
            )  # fmt: skip
        else:
            self._record(0, uid, kind, rcpts, result, "partial", "sent", [], now)
        if result.permanent():
            self._bounce(uid, original_sender, result, result.permanent(), up)

    # -- manual release ----------------------------------------------------------------------

    def release(self, msg_id: str, to: Sequence[str], wait: float = RELEASE_WAIT) -> str:
        """Queue a release and wait (a while) for its first attempt. Returns "sent" or
        "queued: ..." for a temporary failure; RelayError/RelayFailed otherwise."""
        up = self.settings.relay
        if up is None:
            raise RelayError(
                "relaying is not configured: start with --smtp-relay-config FILE, "
                "MP_SMTP_RELAY_HOST or --smtp-relay-mx"
            )
        rcpts = []
        for address in to:
            addr = parseaddr(address)[1]
            if "@" not in addr:
                raise RelayError(f"{address!r} is not an email address")
            refused = up.allowed(addr)
            if refused:
                raise RelayError(f"refused recipient: {refused}")
            rcpts.append(addr)
        if not rcpts:
            raise RelayError("To must list at least one recipient")
        msg = self.mailbox.get(msg_id)
        raw = self.mailbox.raw(msg.id)
        original = msg.detail.get("Envelope", {}).get("From") or msg.summary["From"]["Address"]
        sender = relay_send.envelope_sender(up, original)
        data = relay_send.rewrite(raw, up, release=True)
        item = self.mailbox.queue_relay(msg.id, "release", sender, rcpts, data)
        return self._await(item, wait)

    def _await(self, item_id: int, wait: float) -> str:
        deadline = time.monotonic() + wait
        with self._attempted:
            while True:
                row = self.mailbox.outbox_item(item_id)
                if row is not None and row["attempts"] > 0:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return "queued: not attempted yet"
                self._attempted.wait(left)
        # The bounce a final failure produces is recorded as an attempt of its own, maybe
        # before this reads the history: the answer is the delivery attempt's.
        attempts = self.mailbox.relay_history(row["message_uid"])["Attempts"]
        last = [a for a in attempts if a["Kind"] != "dsn"][-1]
        if row["state"] == "sent":
            return "sent"
        if row["state"] == "failed":
            raise RelayFailed(f"relay to {last['Server']} failed: {last['Reply']}")
        return f"queued: {last['Reply']}; will retry"

    # -- the worker ----------------------------------------------------------------------------

    def _loop(self) -> None:
        ready = self._ready
        while not self._stop.is_set():
            try:
                due = self.mailbox.outbox_due(time.time())
                for row in due:
                    if self._stop.is_set():
                        return
                    self._attempt_safely(row)
                if due:
                    continue
                nxt = self.mailbox.outbox_next_time()
            except StoreError as exc:
                if self._stop.is_set():
                    return
                log.error("relay outbox unavailable: %s", exc)
                nxt = time.time() + 5
            timeout = 5.0 if nxt is None else min(5.0, max(0.0, nxt - time.time()))
            ready.wait(timeout)
            ready.clear()

    def _attempt_safely(self, row: Any) -> None:
        """An unexpected error (a bug) is recorded as a retry an hour away, so the worker
        neither dies nor spins on the same item."""
        try:
            self._attempt(row)
        except StoreError:
            raise
        except Exception as exc:
            log.exception("relay attempt of outbox item %s failed", row["id"])
            rcpts = json.loads(row["recipients"])
            error = f"internal error: {type(exc).__name__}: {exc}"
            result = Result("", {r: (0, error) for r in rcpts})
            self._record(
                row["id"], row["message_uid"], row["kind"], rcpts, result, "retry", "pending",
                rcpts, time.time() + MAX_DELAY,
            )  # fmt: skip

    def _attempt(self, row: Any) -> None:
        kind = row["kind"]
        up = self.settings.forward if kind == "forward" else self.settings.relay
        rcpts = json.loads(row["recipients"])
        now = time.time()
        if up is None:
            # Restarted without the setting that queued it: keep it for a run that has it.
            self._record(
                row["id"],
                row["message_uid"],
                kind,
                rcpts,
                Result(replies={r: (0, f"{kind} is not configured now") for r in rcpts}),
                "retry",
                "pending",
                rcpts,
                now + MAX_DELAY,
            )
            return
        data = bytes(row["raw"])
        if kind != "release":  # a release was rewritten when it was queued
            data = relay_send.automatic_copy(data, up, kind)
        result = self._deliver(up, row["mail_from"], rcpts, data, row["message_uid"])
        temporary = result.temporary()
        attempts = row["attempts"] + 1
        if not temporary:
            state = "sent" if not result.permanent() else "failed"
            outcome = "sent" if state == "sent" else ("partial" if result.sent() else "failed")
            next_at = now
        elif attempts >= self.settings.max_attempts:
            state, outcome, next_at = "failed", "failed", now
        else:
            state, outcome = "pending", ("partial" if result.sent() else "retry")
            delay = min(MAX_DELAY, self.settings.retry_delay * 2 ** (attempts - 1))
            next_at = now + delay
        if state != "pending":  # the final answer: how long the copy took since it was queued
            self.mailbox.telemetry.observe("relay_delivery", time.time() - row["created"], outcome)
        remaining = temporary if state == "pending" else rcpts
        self._record(
            row["id"], row["message_uid"], kind, rcpts, result, outcome, state, remaining, next_at
        )
        # The outbox gave up on these (refused for good, or deferred past the last attempt).
        given_up = result.permanent() + (temporary if state == "failed" else [])
        if given_up:
            self._bounce(row["message_uid"], None, result, given_up, up)

    # -- trace and bounce ----------------------------------------------------------------------

    def _origin(self, uid: str) -> tuple[dict[str, Any], bytes]:
        """The stored message's envelope and origin (HELO, peer, protocol) and its raw text."""
        try:
            msg = self.mailbox.get(uid)
            return dict(msg.detail.get("Envelope", {})), self.mailbox.raw(uid)
        except (MessageNotFound, StoreError):
            return {}, b""  # deleted since it was queued: the copy still goes

    def _rdns(self, ip: str) -> str:
        """The client's name: a PTR of --dns-override first; loopback is localhost without
        asking anyone (as the SMTP listener does); else DNS, "" when it has no answer."""
        try:
            address = ipaddress.ip_address(ip)
            pointer = reverse_name(ip)
        except ValueError:
            return ""
        override = self._resolver.overrides.get((pointer, "PTR"))
        if override:
            return override[0]
        if address.is_loopback:
            return "localhost"
        try:
            names = self._resolver.query(pointer, "PTR")
        except DnsError:
            return ""
        return names[0] if names else ""

    def trace(self, uid: str, rcpts: Sequence[str]) -> bytes:
        """The Received field this hop puts on top of a copy (RFC 5321 section 4.4)."""
        origin, _ = self._origin(uid)
        peer = str(origin.get("Peer", ""))
        ip = peer.rsplit(":", 1)[0].strip("[]") if ":" in peer else peer
        return relay_dsn.received(
            helo=str(origin.get("Helo", "")),
            rdns=self._rdns(ip) if ip else "",
            ip=ip,
            hostname=self.hostname,
            protocol=str(origin.get("Protocol", "")),
            uid=uid,
            rcpts=rcpts,
        )

    def _bounce(
        self, uid: str, sender: str | None, result: Result, rcpts: list[str], up: Upstream
    ) -> None:
        """Deliver a delivery status notification for `rcpts` into the catcher, to the original
        envelope sender, through the mailbox's normal delivery; never for a null sender (a
        bounce is not bounced: RFC 5321 section 4.5.5)."""
        origin, raw = self._origin(uid)
        if sender is None:
            sender = str(origin.get("From", ""))
        if not sender or not raw:
            return
        failures = [relay_dsn.Failure(r, *result.replies[r]) for r in rcpts]
        text = relay_dsn.build(
            hostname=self.hostname,
            original=raw,
            original_uid=uid,
            sender=sender,
            failures=failures,
            remote=up.host,
            arrival=time.time(),
        )
        envelope = Envelope(mail_from="", rcpt_to=(sender,))
        try:
            # The bounce goes where its original is: a project reads its own bounces.
            box = self.mailbox.box_of(uid)
        except MessageNotFound:
            box = DEFAULT_BOX  # the original was deleted since it was queued
        try:
            dsn_id = self.mailbox.deliver(
                envelope,
                text,
                origin={"Generated": DSN_ORIGIN, "Helo": self.hostname},
                boxes={box: [sender]},
            ).result(timeout=relay_send.SMTP_TIMEOUT)
        except Exception as exc:  # a full disk, a closed store: the attempt is still recorded
            log.error("could not store the delivery status notification for %s: %s", uid, exc)
            return
        attempt = {
            "message_uid": uid,
            "at": time.time(),
            "kind": "dsn",
            "recipients": [sender],
            "server": "",
            "reply": dsn_id,
            "outcome": "sent",
        }
        try:
            self.mailbox.record_relay_attempt(
                0, attempt, state="sent", recipients=[], next_attempt=time.time()
            )
        except StoreError as exc:
            log.error("could not record the bounce of %s: %s", uid, exc)

    def _deliver(
        self, up: Upstream, sender: str, rcpts: list[str], data: bytes, uid: str
    ) -> Result:
        data = self.trace(uid, rcpts) + self.signer.sign(relay_send.crlf(data))
        try:
            if self.settings.mx and not up.host:
                return relay_send.send_mx(
                    up, sender, rcpts, data, self._resolver, helo=self.hostname
                )
            return relay_send.send(up, sender, rcpts, data, helo=self.hostname)
        except smtplib.SMTPResponseException as exc:  # e.g. a 554 greeting
            text = exc.smtp_error
            reply = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
            return Result(up.server, {r: (exc.smtp_code, reply) for r in rcpts})
        except OSError as exc:  # refused, timed out, TLS failure, dropped mid-session
            error = relay_send.connection_error(exc)
            return Result(up.server, {r: (0, error) for r in rcpts})

    def _record(
        self,
        item_id: int,
        uid: str,
        kind: str,
        rcpts: list[str],
        result: Result,
        outcome: str,
        state: str,
        remaining: list[str],
        next_at: float,
    ) -> None:
        attempt = {
            "message_uid": uid,
            "at": time.time(),
            "kind": kind,
            "recipients": rcpts,
            "server": result.server,
            "reply": result.summary(),
            "outcome": outcome,
        }
        log.info(
            "%s of %s to %s via %s: %s (%s)",
            kind,
            uid,
            rcpts,
            result.server,
            attempt["reply"],
            outcome,
        )
        try:
            self.mailbox.record_relay_attempt(
                item_id, attempt, state=state, recipients=remaining, next_attempt=next_at
            )
        except StoreError as exc:
            log.error("could not record the relay attempt of %s: %s", uid, exc)
        with self._attempted:
            self._attempted.notify_all()

    # -- what the UI shows -------------------------------------------------------------------

    def webui(self) -> dict[str, Any]:
        """Mailpit's MessageRelay object of /api/v1/webui, plus whether forwarding is on."""
        up = self.settings.relay
        return {
            "Enabled": up is not None,
            "SMTPServer": (up.server if up.host else "MX hosts") if up else "",
            "ReturnPath": up.return_path if up else "",
            "AllowedRecipients": up.allowed_recipients if up else "",
            "BlockedRecipients": up.blocked_recipients if up else "",
            "OverrideFrom": up.override_from if up else "",
            "PreserveMessageIDs": up.preserve_message_ids if up else False,
            "Forwarding": self.settings.forward is not None,
        }
