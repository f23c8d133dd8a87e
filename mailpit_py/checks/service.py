"""The checks service: runs the ingest checks of each new message on worker threads after its
commit (never delaying the SMTP 250), stores them, and answers the on-demand checks."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

from mailpit_py import __version__
from mailpit_py.checks import auth, dnsbl, header_check, html_check, link_check, spamassassin
from mailpit_py.checks.link_throttle import Throttle
from mailpit_py.checks.links import extract_links
from mailpit_py.checks.thumbnail import thumbnail
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox, MessageNotFound
from mailpit_py.mailbox.hooks import NO_HOOKS, DeliveryHooks
from mailpit_py.net.dns import OverrideError, Resolver, load_overrides

log = logging.getLogger("mailpit_py.checks")

QUEUE_MAX = 10_000  # beyond this a burst is checked on demand instead (nothing is lost)
WORKERS = 2  # DNS waits, not CPU: two lookups in flight keep up with a test suite's bursts
# Ingest comes first: a queued check waits until no message has arrived for QUIET seconds, but
# never longer than MAX_DEFER, so a steady stream still gets its checks.
QUIET = 0.25
MAX_DEFER = 10.0
RUN_MAX = 64  # queued messages a worker checks before it saves their results in one job


class NotApplicable(ValueError):
    """The check cannot run on this message or instance (no HTML, SpamAssassin off)."""


class Checks:
    """One per server, built before the mailbox: `hooks()` queues each new message (given to
    Mailbox when that is built), `start(mailbox)` runs the workers, `stop()` ends them. Given
    a mailbox here, it answers the on-demand checks without being started."""

    def __init__(self, config: Config, mailbox: Mailbox | None = None) -> None:
        self.config = config
        self._mailbox = mailbox
        self.resolver = Resolver(
            load_overrides(config.dns_override),
            timeout=config.dns_timeout,
            offline=config.dns_offline,
        )
        # SimpleQueue: its put is C, and enqueue runs for every message in the store's writer
        # thread while it holds the GIL (queue.Queue's put is Python with a Condition).
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._inflight: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.quiet, self.max_defer = QUIET, MAX_DEFER
        self._override_mtime = self._mtime()
        # Mailpit's per-domain limits and result cache of the link check, shared by its calls.
        self.link_throttle = None if config.disable_link_check_rate_limit else Throttle()

    def _mtime(self) -> float:
        try:
            return os.stat(self.config.dns_override).st_mtime if self.config.dns_override else 0
        except OSError:
            return 0

    def _reload_overrides(self) -> None:
        """A developer edits the override file (a new DKIM key, an SPF record) and re-runs the
        checks: pick the edit up without a restart. A broken edit keeps the last good file."""
        mtime = self._mtime()
        if mtime == self._override_mtime:
            return
        self._override_mtime = mtime
        try:
            self.resolver.replace_overrides(load_overrides(self.config.dns_override))
        except OverrideError as exc:
            log.warning("keeping the previous DNS overrides: %s", exc)

    @property
    def mailbox(self) -> Mailbox:
        if self._mailbox is None:
            raise RuntimeError("the checks service is not started: call start(mailbox) first")
        return self._mailbox

    # -- lifecycle --------------------------------------------------------------------------

    def hooks(self) -> DeliveryHooks:
        """What the checks add to every delivery: queueing it (none with --disable-checks)."""
        if self.config.disable_checks:
            return NO_HOOKS
        return DeliveryHooks(after_commit=(self.enqueue,))

    def start(self, mailbox: Mailbox) -> Checks:
        """Run the workers on this mailbox, checking what was queued before they started."""
        self._mailbox = mailbox
        if not self.config.disable_checks:
            for n in range(WORKERS):
                t = threading.Thread(target=self._work, name=f"checks-{n}", daemon=True)
                t.start()
                self._threads.append(t)
        return self

    def stop(self) -> None:
        """Unchecked messages stay unchecked (a reader computes them on demand later)."""
        self._stopping.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()

    def enqueue(self, uid: str) -> None:
        """Called after a message's commit: queue it, never block the delivery."""
        if self._stopping.is_set():
            return  # no worker will take it: a reader computes its checks on demand
        if self._queue.qsize() >= QUEUE_MAX:  # a bound on memory, not an exact count
            self.mailbox.telemetry.inc("message_checks", "skipped")
        else:
            self._queue.put(uid)

    def _work(self) -> None:
        while True:
            uid = self._queue.get()
            if uid is None or self._stopping.is_set():
                return
            self._wait_for_quiet()
            if self._stopping.is_set():
                return
            # What was queued meanwhile goes along: the run's results are written in one job,
            # not one transaction (three round trips on PostgreSQL) per message.
            uids = [uid]
            while len(uids) < RUN_MAX and self._quiet():
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:  # stop(): the others' sentinels stay for them
                    self._queue.put(None)
                    break
                uids.append(more)
            self._check_run(uids)

    def _check_run(self, uids: list[str]) -> None:
        """Check these queued messages and save their results together. Each is claimed as
        ingest_checks claims one, so a reader asking meanwhile waits for the saved result."""
        results: list[tuple[str, dict[str, Any]]] = []
        # The results stored already (by a reader, before its turn), read for the run at once:
        # a read per message was a round trip each on PostgreSQL.
        try:
            stored = self.mailbox.checks_many(uids)
        except Exception:
            log.exception("checks of %d messages failed", len(uids))
            self.mailbox.telemetry.inc("message_checks", "failed")
            return
        for n, uid in enumerate(uids):
            if self._stopping.is_set():
                break
            if n and not self._quiet():  # ingest came back: it comes first, the rest waits
                for rest in uids[n:]:
                    self._queue.put(rest)
                break
            with self._lock:
                if uid in self._inflight:
                    continue  # a reader runs it and stores its result
                self._inflight[uid] = threading.Event()
            try:
                # (the store's read alone: a deleted message is found out by compute's read,
                # not by a summary read per message as the facade's checks() makes)
                if uid not in stored:  # a reader may have stored first
                    results.append((uid, self.compute(uid)))
                    continue
            except MessageNotFound:
                pass  # deleted before its turn
            except Exception:
                log.exception("checks of message %s failed", uid)
                self.mailbox.telemetry.inc("message_checks", "failed")
            self._finished(uid)
        if not results:
            return
        try:
            saved = self.mailbox.save_checks_many(results)
        except BaseException:
            for uid, _ in results:
                self._finished(uid)
            raise

        def finished(_: object) -> None:
            for uid, _result in results:
                self._finished(uid)

        saved.add_done_callback(finished)
        for _ in results:
            self.mailbox.telemetry.inc("message_checks", "done")

    def _quiet(self) -> bool:
        return time.monotonic() - self.mailbox.last_delivery >= self.quiet

    def _wait_for_quiet(self) -> None:
        """Let a burst of SMTP finish first: the checks cost ~3 ms of CPU per message, which
        would otherwise slow ingest by a quarter (the GIL is shared)."""
        deadline = time.monotonic() + self.max_defer
        while (now := time.monotonic()) < deadline:
            quiet_for = now - self.mailbox.last_delivery
            if quiet_for >= self.quiet:
                return
            self._stopping.wait(min(self.quiet - quiet_for, deadline - now))
            if self._stopping.is_set():
                return

    # -- the stored checks (authentication, blocklists, headers, spam score) -------------------

    def ingest_checks(self, msg_id: str, refresh: bool = False) -> dict[str, Any]:
        """Run and store the checks of one message; concurrent callers share one run.

        A refresh does not share: it waits for a run in flight (which may have read the DNS
        overrides before they changed) and then runs again.
        """
        uid = self.mailbox.resolve(msg_id)
        while True:
            with self._lock:
                running = self._inflight.get(uid)
                if running is None:
                    self._inflight[uid] = threading.Event()
                    claimed = True
                    break
            if not running.wait(timeout=60):
                claimed = False  # a run stuck elsewhere: compute without sharing it
                break
            if not refresh:
                stored = self.mailbox.checks(uid)
                if stored is not None:
                    return stored
        try:
            result = self.compute(uid)
            saved = self.mailbox.save_checks(uid, result)
        except BaseException:
            if claimed:
                self._finished(uid)
            raise
        # Callers waiting for this run read the stored result: let them go once it is saved.
        if claimed:
            saved.add_done_callback(lambda _: self._finished(uid))
        self.mailbox.telemetry.inc("message_checks", "done")
        return result

    def _finished(self, uid: str) -> None:
        with self._lock:
            done = self._inflight.pop(uid, None)
        if done is not None:
            done.set()

    def _head(self, uid: str, limit: int = 1 << 20) -> bytes:
        """The raw header section of a message (at most `limit` bytes), read in chunks."""
        _, chunks = self.mailbox.raw_stream(uid)
        head = b""
        try:
            for chunk in chunks:
                head += chunk
                if b"\n\n" in head or b"\n\r\n" in head or len(head) >= limit:
                    break
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return head[:limit]

    def compute(self, uid: str) -> dict[str, Any]:
        self._reload_overrides()
        msg = self.mailbox.get(uid)
        cfg = self.config
        # The raw message only when something reads it: DKIM needs a signature to verify (the
        # parsed headers say whether there is one), SpamAssassin takes the whole message. A
        # 50 MB message is then not read back and held again just to find it unsigned.
        signed = any(name.lower() == "dkim-signature" for name, _ in msg.detail["Headers"])
        # Else the header section alone: DMARC reads every address of the From fields as sent
        # (the stored header values have encoded words decoded, which can look like addresses).
        raw = self.mailbox.raw(uid) if signed or cfg.enable_spamassassin else self._head(uid)
        envelope = msg.detail.get("Envelope") or {}
        authn = auth.check(
            raw,
            self.resolver,
            mail_from=str(envelope.get("From") or ""),
            helo=str(envelope.get("Helo") or ""),
            peer=str(envelope.get("Peer") or ""),
            client_ip=cfg.checks_client_ip,
            authserv_id=cfg.smtp_hostname,
        )
        urls = extract_links(str(msg.detail.get("HTML") or ""), str(msg.detail.get("Text") or ""))
        internal = not cfg.checks_client_ip and auth.is_internal(authn["ClientIP"])
        result: dict[str, Any] = {
            "Checked": time.time(),
            "Version": __version__,
            "Auth": authn,
            "Blocklists": dnsbl.check(
                self.resolver, cfg.checks_dnsbl, authn["ClientIP"], urls, internal
            ),
            "Headers": header_check.check(msg.detail, authn),
        }
        if cfg.enable_spamassassin:
            result["SpamAssassin"] = spamassassin.check(cfg.enable_spamassassin, raw)
        return result

    def stored(self, msg_id: str, refresh: bool = False) -> dict[str, Any]:
        """The stored checks, computed now when missing (checks off, or older messages) or
        when a refresh is asked for (after publishing a key or editing --dns-override)."""
        uid = self.mailbox.resolve(msg_id)
        if not refresh:
            # A run in flight answers its caller before its result is committed: wait for it,
            # so a read right after a refresh sees the refreshed result, not the one before.
            with self._lock:
                running = self._inflight.get(uid)
            if running is not None:
                running.wait(timeout=60)
            found = self.mailbox.checks(uid)
            if found is not None and (
                "SpamAssassin" in found or not self.config.enable_spamassassin
            ):
                return found
        return self.ingest_checks(uid, refresh)

    def auth_check(self, msg_id: str, refresh: bool = False) -> dict[str, Any]:
        return dict(self.stored(msg_id, refresh)["Auth"])

    def blocklist_check(self, msg_id: str, refresh: bool = False) -> dict[str, Any]:
        return dict(self.stored(msg_id, refresh)["Blocklists"])

    def header_check(self, msg_id: str, refresh: bool = False) -> dict[str, Any]:
        return dict(self.stored(msg_id, refresh)["Headers"])

    def sa_check(self, msg_id: str, refresh: bool = False) -> dict[str, Any]:
        if not self.config.enable_spamassassin:
            raise NotApplicable(
                "SpamAssassin is not enabled: start with --enable-spamassassin HOST:PORT"
            )
        return dict(self.stored(msg_id, refresh)["SpamAssassin"])

    # -- on demand: HTML compatibility, links, thumbnails ---------------------------------------

    def html_check(self, msg_id: str) -> dict[str, Any]:
        html = str(self.mailbox.get(msg_id).detail.get("HTML") or "")
        if not html:
            raise NotApplicable("message does not contain HTML")  # Mailpit's answer, a 400
        return html_check.check(html)

    def link_check(self, msg_id: str, follow: bool) -> dict[str, Any]:
        msg = self.mailbox.get(msg_id)
        html, text = str(msg.detail.get("HTML") or ""), str(msg.detail.get("Text") or "")
        # Mailpit's cap: a mail of 20,000 links held a request and 8 threads for hours.
        urls = extract_links(html, text, limit=link_check.MAX_LINKS)
        cfg = self.config
        return link_check.check(
            urls,
            follow,
            cfg.allow_internal_http_requests,
            cfg.allow_untrusted_tls,
            self.link_throttle,
        )

    def thumbnail(self, msg_id: str, part_id: str) -> tuple[bytes, str]:
        """(JPEG, the part's file name) for part/{PartID}/thumb."""
        content_type, data = self.mailbox.part(msg_id, part_id)
        return thumbnail(data, content_type), self.mailbox.get(msg_id).part_filename(part_id)
