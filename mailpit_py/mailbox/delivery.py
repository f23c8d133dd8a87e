"""Delivery: a message parsed, stored in each mailbox routing chose, then announced, in one job."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from mailpit_py import events
from mailpit_py.ids import new_id
from mailpit_py.mailbox.base import MailboxBase
from mailpit_py.mailbox.boxes import DEFAULT_BOX, is_box_name
from mailpit_py.mailbox.hooks import DeliveryHooks, OutboxItem
from mailpit_py.mailbox.record import build_record
from mailpit_py.mailbox.shapes import record_summary
from mailpit_py.mailbox.tags import clean_tags
from mailpit_py.models import Envelope
from mailpit_py.observability.logs import log_session
from mailpit_py.parse.message import parse_message
from mailpit_py.store.interface import StoreBackend
from mailpit_py.store.records import MessageRecord, SessionRecord, Ticket

log = logging.getLogger("mailpit_py.mailbox")

INLINE_PARSE_LIMIT = 256 * 1024  # bytes; larger messages are parsed off the caller's thread


def routed_envelopes(
    envelope: Envelope, boxes: Mapping[str, Sequence[str]] | None
) -> list[tuple[str, Envelope]]:
    """(mailbox, the envelope of its copy) for each mailbox a message goes to: each copy names
    only the recipients routed to its mailbox, so that its Bcc shows no other mailbox's."""
    if boxes is None:
        return [(DEFAULT_BOX, envelope)]
    if not boxes:
        raise ValueError("a message routed to no mailbox cannot be stored")
    for box in boxes:
        if not is_box_name(box):
            raise ValueError(f"not a mailbox name: {box!r}")
    if len(boxes) == 1:
        # The routing may name every recipient (the usual case): the envelope as it came.
        ((box, rcpts),) = boxes.items()
        if list(rcpts) == list(envelope.rcpt_to):
            return [(box, envelope)]
    return [(box, envelope._replace(rcpt_to=tuple(rcpts))) for box, rcpts in boxes.items()]


class Delivering(MailboxBase):
    """Mailbox's delivery (mailbox/facade.py)."""

    def deliver(
        self,
        envelope: Envelope,
        raw: bytes,
        *,
        uid: str | None = None,
        username: str = "",
        session_uid: str = "",
        transcript: Sequence[Sequence[Any]] = (),
        received_at: float | None = None,
        tags: Sequence[str] = (),
        origin: dict[str, Any] | None = None,
        boxes: Mapping[str, Sequence[str]] | None = None,
        stored: dict[str, str] | None = None,
    ) -> Future[str]:
        """Store a message; the future gives its ID once committed (or raises StoreError).
        `boxes` and `stored` as in deliver_then (the future gives the first mailbox's ID)."""
        done: Future[str] = Future()

        def finish(first: str | None, exc: BaseException | None) -> None:
            if done.done():  # a caller may have given up (cancelled); the commit stands
                return
            if exc is not None:
                done.set_exception(exc)
            else:
                done.set_result(str(first))

        self.deliver_then(
            finish,
            envelope,
            raw,
            uid=uid,
            username=username,
            session_uid=session_uid,
            transcript=transcript,
            received_at=received_at,
            tags=tags,
            origin=origin,
            boxes=boxes,
            stored=stored,
        )
        return done

    def deliver_then(
        self,
        then: Callable[[str | None, BaseException | None], None],
        envelope: Envelope,
        raw: bytes,
        *,
        uid: str | None = None,
        username: str = "",
        session_uid: str = "",
        transcript: Sequence[Sequence[Any]] | str = (),
        received_at: float | None = None,
        tags: Sequence[str] = (),
        origin: dict[str, Any] | None = None,
        ticket: Ticket | None = None,
        refused: dict[str, Any] | None = None,
        boxes: Mapping[str, Sequence[str]] | None = None,
        stored: dict[str, str] | None = None,
    ) -> None:
        """Store a message, then call `then(uid, None)` once committed, or `then(None, error)`.

        The SMTP path's form of deliver: no Future per message. `then` runs in the writer
        thread, or, for a failure before the message reached it (a closed store, a parse that
        raised, `boxes` naming no mailbox or a name that is not clean), in the thread that met
        the failure; it must return at once. `transcript` may be the JSON text already (an
        SMTP session renders its unchanging preamble once). A `ticket` cancelled before the
        writer starts the message's job leaves it unstored, and `then` is not called. A
        `refused` message (the receiver's refusal, --receiver) is kept to be read, marked so,
        and never relayed.

        `boxes` is the routing's answer: each mailbox the message goes to, with the envelope
        recipients routed there; None stores it in the default mailbox for every recipient. A
        copy is stored per mailbox, with an ID of its own (`uid` is the first mailbox's) and
        an envelope naming only its recipients, all in one job: `then` hears of them together,
        once all are committed, with the first mailbox's ID. `stored`, when given, is filled
        with mailbox -> ID of each copy before `then` is called. The relay's copies are queued
        once, for the whole envelope, with the first copy stored.
        """
        try:
            copies = routed_envelopes(envelope, boxes)
        except ValueError as exc:
            then(None, exc)
            return
        uids = [uid or new_id(), *(new_id() for _ in copies[1:])]
        hooks = self.hooks
        created = received_at if received_at is not None else time.time()
        t0 = time.monotonic()  # the caller hands the message over at the end of DATA
        self.last_delivery = t0
        # (mailbox, ID) of each copy: stored, or the copy already stored with its Message-ID
        # (--ignore-duplicate-ids), which is then not stored again.
        outcome: list[tuple[str, str]] = []
        duplicates: set[str] = set()
        # The tags the tagging rules' searches gave a copy, when they added any, by ID.
        rule_tagged: dict[str, list[str]] = {}

        def prepare_one(copy_uid: str, box: str, env: Envelope) -> MessageRecord:
            parsed = parse_message(raw, env)
            addresses = (*parsed.to, *parsed.cc, *parsed.bcc)
            if parsed.from_addr is not None:
                addresses = (*addresses, parsed.from_addr)  # Mailpit reads the sender's too
            found = self.auto_tags.tags(parsed.headers, addresses, username, raw)
            parsed = parsed._replace(tags=tuple(clean_tags([*found, *tags])))
            when = created
            if self.config.use_message_dates and parsed.date is not None:
                when = parsed.date.timestamp()  # --use-message-dates: the Date header's time
            return build_record(
                copy_uid,
                parsed,
                raw,
                created=when,
                username=username,
                session_uid=session_uid,
                transcript=transcript,
                envelope=env,
                origin=origin,
                refused=refused,
                mailbox=box,
            )

        def prepare() -> list[MessageRecord]:
            return [
                prepare_one(copy_uid, box, env)
                for copy_uid, (box, env) in zip(uids, copies, strict=True)
            ]

        def parsed_elsewhere(prepared: Future[list[MessageRecord]]) -> None:
            try:
                recs = prepared.result()
            except Exception as exc:  # parse never raises; this is a bug, still answer
                log.exception("preparing message %s failed", uids[0])
                then(None, exc)
                return
            store_it(recs)

        def store_it(recs: list[MessageRecord]) -> None:
            cfg = self.config
            older = time.time() - cfg.max_age if cfg.max_age else None
            keep = {rec.mailbox: self.box_max(rec.mailbox) for rec in recs}
            # A refused message was not accepted: nothing of it goes on.
            plan = [] if refused else self._plan_outbox(hooks, envelope, origin or {})

            def job(store: StoreBackend) -> list[tuple[str, list[str]]]:
                outcome.clear()  # (a job is run again after its batch failed)
                duplicates.clear()
                rule_tagged.clear()
                new: list[MessageRecord] = []
                for rec in recs:
                    if cfg.ignore_duplicate_ids:
                        found = store.stored_message_id(rec.message_id, box=rec.mailbox)
                        if found is not None:
                            outcome.append((rec.mailbox, found))
                            duplicates.add(found)
                            continue
                    rowid = store.insert_message(rec)
                    outcome.append((rec.mailbox, rec.uid))
                    new.append(rec)
                    rules = self.auto_tags.rules
                    if rules:
                        matched = store.message_matches(rowid, [r.terms for r in rules])
                        hits = zip(rules, matched, strict=True)
                        extra = [t for rule, hit in hits if hit for t in rule.tags]
                        wanted = clean_tags([*rec.tags, *extra])
                        if len(wanted) > len(rec.tags):
                            store.set_tags([rec.uid], wanted)
                            rule_tagged[rec.uid] = wanted
                if new:
                    for kind, mail_from, rcpts in plan:  # the relay's copies, queued with it
                        store.outbox_add(new[0].uid, kind, mail_from, rcpts, raw, created)
                # Retention per mailbox: each copy's mailbox keeps its own newest.
                pruned = [
                    (r.mailbox, store.prune(keep[r.mailbox], older, box=r.mailbox)) for r in new
                ]
                return [(box, gone) for box, gone in pruned if gone]

            self.store.submit_then(
                job,
                lambda pruned, exc: committed(pruned, exc, recs, bool(plan)),
                ticket,
            )

        def committed(
            pruned: list[tuple[str, list[str]]] | None,
            exc: BaseException | None,
            recs: list[MessageRecord],
            queued: bool,
        ) -> None:
            if exc is not None:
                then(None, exc)
                return
            if stored is not None:
                stored.update(outcome)
            new = {copy_uid for _, copy_uid in outcome if copy_uid not in duplicates}
            for rec in recs:
                if rec.uid in new:
                    self._announce_new(rec._replace(tags=rule_tagged.get(rec.uid, rec.tags)), t0)
                else:
                    existing = next(u for box, u in outcome if box == rec.mailbox)
                    self._log_duplicate(rec, existing, envelope)
            if pruned:
                self._count_deleted(pruned)
                for box, gone in pruned:
                    self.bus.publish(events.Prune({"IDs": gone}, box=box))
            self._changed()
            if queued and new and hooks.outbox_ready is not None:
                hooks.outbox_ready()
            for copy_uid in uids:
                if copy_uid not in new:
                    continue
                for hook in hooks.after_commit:
                    try:
                        hook(copy_uid)
                    except Exception:
                        log.exception("after-commit hook failed for %s", copy_uid)
            if log.isEnabledFor(logging.INFO):  # its fields cost a little: skipped under --quiet
                for rec, (_, env) in zip(recs, copies, strict=True):
                    if rec.uid in new:
                        self._log_message(rec, env, session_uid)  # (its copy's recipients)
            then(outcome[0][1], None)

        def first_parse() -> list[MessageRecord] | None:
            try:
                return prepare()
            except Exception as exc:  # parse never raises; this is a bug, still answer
                log.exception("preparing message %s failed", uids[0])
                then(None, exc)
                return None

        if len(raw) * len(copies) <= INLINE_PARSE_LIMIT:
            # Small messages are parsed right here: a hop to another thread costs more than
            # the parse (GIL hand-offs), and it is a fraction of a millisecond.
            recs = first_parse()
            if recs is not None:
                store_it(recs)
        else:
            self._parsers.submit(prepare).add_done_callback(parsed_elsewhere)

    def _announce_new(self, rec: MessageRecord, t0: float) -> None:
        self.accepted += 1
        self.accepted_size += rec.size
        tally = self.tally(rec.mailbox)
        tally.accepted += 1
        tally.accepted_size += rec.size
        tally.arrivals.add()
        self.arrivals.add()
        self.telemetry.observe_commit(time.monotonic() - t0)
        # Published after the commit (DESIGN.md convention 4), in commit order.
        if self.bus.subscriber_count:  # building the summary costs; skip it for nobody
            self.bus.publish(events.NewMessage(record_summary(rec), box=rec.mailbox))

    @staticmethod
    def _log_duplicate(rec: MessageRecord, existing: str, envelope: Envelope) -> None:
        # Accepted (250) and dropped, as Mailpit does: the sender did nothing wrong.
        log.info(
            "message from <%s> ignored: Message-ID <%s> is already stored as %s",
            envelope.mail_from,
            rec.message_id,
            existing,
            extra={"event": "duplicate", "id": existing, "mailbox": rec.mailbox},
        )

    @staticmethod
    def _log_message(rec: MessageRecord, envelope: Envelope, session_uid: str) -> None:
        log.info(
            "message %s from <%s> to %s subject %r size %d%s%s",
            rec.uid,
            envelope.mail_from,
            ", ".join(f"<{r}>" for r in envelope.rcpt_to),
            rec.subject,
            rec.size,
            "" if rec.mailbox == DEFAULT_BOX else f" in mailbox {rec.mailbox}",
            " (kept, refused by the receiver profile)" if rec.refused else "",
            extra={
                "event": "message",
                "id": rec.uid,
                "mail_from": envelope.mail_from,
                "rcpt_to": list(envelope.rcpt_to),
                "subject": rec.subject,
                "size": rec.size,
                "session": session_uid,
                "mailbox": rec.mailbox,
            },
        )

    def record_session(self, rec: SessionRecord) -> None:
        """Keep an SMTP session's log (bounded); fire and forget, it acknowledges nothing."""
        log_session(rec)  # one info line per session outcome, its conversation at debug
        keep = self.config.session_history
        if keep > 0:
            self.store.submit(lambda store: store.insert_session(rec, keep))

    @staticmethod
    def _plan_outbox(
        hooks: DeliveryHooks, envelope: Envelope, origin: dict[str, Any]
    ) -> list[OutboxItem]:
        if hooks.plan_outbox is None:
            return []
        try:
            return hooks.plan_outbox(envelope, origin)
        except Exception:  # a relay bug must not cost the message its 250
            log.exception("planning the relay of a new message failed")
            return []
