"""The interface a storage backend implements: every store operation the layers above use.

`mailbox` is the store's only caller and is typed against `StoreBackend`; sqlite.Store and
postgres.backend.PgStore implement it (store/open.py picks one from --database). What every
backend guarantees:

- **One writer.** Every change runs as a job in one writer, in submission order, inside a
  transaction; jobs that wait together may share one transaction (group commit).
- **Commit before the answer.** A job's future resolves (or its `then` is called) only after the
  transaction holding its effects has committed; a failed commit fails every job in it with
  StoreError, and a failing job fails alone (its effects undone), not its batch's other jobs.
- **Readers never block the writer**, nor wait for it beyond what they read: reads run on
  connections of their own, any thread, and see committed data only.
- **Searches find what was confirmed.** A search sees every message whose commit was confirmed
  before it started, though the index may be written after the commit (`index_barrier`).
- **Migrations at open.** Opening a store brings its schema up to date, one versioned step at a
  time; a database whose schema is newer than the code knows is refused with StoreError, never
  read or written.

Mailboxes: every message and session belongs to one mailbox (`messages.mailbox`, 'default'
unless routed elsewhere), and a mailbox row keeps its counts. A `box` keyword of None means
every mailbox (internal services: checks, relay, retention by age, import); a name limits the
operation to that mailbox, and a uid of another mailbox behaves as a uid that does not exist.

Methods marked "writer" run only inside a job (the `store` argument a job is given), in the
writer thread; the others may be called from any thread, never from inside a job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from mailpit_py.store.records import MessageRecord, Row, SessionRecord, Ticket
from mailpit_py.store.search import Term

T = TypeVar("T")

# How many mailbox renames a store keeps (the latest), for mailbox_renamed: enough for the tabs
# still open on old names, bounded for a server that renames a mailbox per test.
RENAMES_KEPT = 256


class StoreBackend(Protocol):
    """A mail store: messages with their parts, tags and flags, the session log, the relay
    outbox; one writer with group commit, reads from any thread. Failures raise StoreError."""

    on_batch: Callable[[int], None] | None
    """Called in the writer with the number of jobs of each batch that committed (telemetry)."""

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Finish the queued writes, then release everything; later calls raise StoreError
        (reads) or fail their futures with it (writes). Closing twice is harmless."""
        ...

    def health(self, timeout: float = 2.0) -> str:
        """'' when a read and a real write (through the writer's queue, then undone) both work
        within `timeout`; else what does not, in words, for /readyz. Never raises."""
        ...

    # -- the writer ----------------------------------------------------------------------------

    def submit(self, job: Callable[[StoreBackend], T]) -> Future[T]:
        """Queue `job(store)` for the writer; the future resolves with its result once the
        transaction holding its effects has committed, or fails with StoreError (a failed
        commit, a closed store) or with the job's own exception (its effects undone)."""
        ...

    def submit_then(
        self,
        job: Callable[[StoreBackend], T],
        then: Callable[[T | None, BaseException | None], None],
        ticket: Ticket | None = None,
    ) -> None:
        """As submit, for the per-message path: `then(result, None)` or `then(None, error)` is
        called once, in the writer, after the commit. A job whose ticket is cancelled before
        the writer starts it never runs, and `then` is not called."""
        ...

    def write(self, job: Callable[[StoreBackend], T], timeout: float | None = 30.0) -> T:
        """submit(job) and wait for its result: committed when this returns; raises what the
        future raises, or TimeoutError after `timeout` (the job may still commit later)."""
        ...

    def index_barrier(self, timeout: float | None = 30.0) -> None:
        """Return once every message committed so far is in the search index (not from inside
        a job)."""
        ...

    # -- message writes (writer) ---------------------------------------------------------------

    def stored_message_id(self, message_id: str, box: str | None = None) -> str | None:
        """Writer: the ID of a stored message with this Message-ID, if any, in `box` when given
        (--ignore-duplicate-ids)."""
        ...

    def insert_message(self, rec: MessageRecord) -> int:
        """Writer: store a message with its data, parts and tags in mailbox `rec.mailbox`
        (creating that mailbox's row when missing), and queue its index rows; returns its id
        (ids grow and are never reused, so they serve as IMAP UIDs)."""
        ...

    def queue_index(
        self, rowid: int, headers: Sequence[tuple[str, str]], fts: Sequence[str]
    ) -> None:
        """Writer: (re)build the search index rows of message `rowid` after this transaction."""
        ...

    def clear_search_index(self) -> None:
        """Writer: empty the search index of every message (words, substrings, header values),
        for `reindex`, which then queues each message's rows again with queue_index."""
        ...

    def message_matches(self, rowid: int, queries: Sequence[Sequence[Term]]) -> list[bool]:
        """Writer: whether message `rowid` (inserted in this transaction) matches each search;
        its queued index rows are written first, so free text finds it (tagging rules)."""
        ...

    def delete_messages(self, uids: Sequence[str], box: str | None = None) -> list[str]:
        """Writer: delete these messages with everything of theirs (a pending outbox item stays:
        it carries its own copy); returns the uids that existed (in `box`: others are skipped)."""
        ...

    def delete_all(self, box: str | None = None) -> int:
        """Writer: delete every message, or every one of `box` (pending outbox items stay; the
        mailboxes themselves stay, emptied); returns how many there were."""
        ...

    def set_read(self, uids: Sequence[str] | None, read: bool, box: str | None = None) -> list[str]:
        """Writer: mark these messages (every one, of `box` when given, when None) read or
        unread, skipping uids of other mailboxes than `box`; returns the uids whose flag
        changed."""
        ...

    def prune(
        self, max_messages: int, older_than: float | None, box: str | None = None
    ) -> list[str]:
        """Writer: delete beyond the newest `max_messages` (0: no limit), but only once more than
        max_messages + retention.retention_slack(max_messages) are stored (a batch, not one per
        delivery), and those created before `older_than`; with `box`, counting and deleting in
        that mailbox alone (retention per mailbox); returns the uids deleted. Sessions older
        than every kept message (of that mailbox) go too."""
        ...

    def set_tags(
        self, uids: Sequence[str], tags: Sequence[str], box: str | None = None
    ) -> list[tuple[str, list[str]]]:
        """Writer: give these messages exactly these tags; returns (uid, sorted tags) of those
        that exist (in `box`: others are skipped)."""
        ...

    def rename_tag(self, old: str, new: str, box: str | None = None) -> list[tuple[str, list[str]]]:
        """Writer: rename a tag everywhere, or on the messages of `box` alone ('' removes it);
        returns (uid, tags) of every message that had it."""
        ...

    def uids_matching(self, terms: Sequence[Term], box: str | None = None) -> list[str]:
        """Writer: every uid matching a search (in `box` when given), newest first, as the
        transaction sees them (the caller runs index_barrier() before submitting, so earlier
        commits are found)."""
        ...

    def set_imap_flags(self, changes: dict[int, set[str]]) -> None:
        """Writer: replace the IMAP flags (other than \\Seen) of these message ids; ids of
        deleted messages are skipped."""
        ...

    def save_checks(self, uid: str, checked: float, result: str) -> bool:
        """Writer: keep a message's check results (JSON text); False when the message is gone."""
        ...

    # -- message reads -------------------------------------------------------------------------

    def counts(self, box: str | None = None) -> tuple[int, int]:
        """(messages, unread messages) of every mailbox, or of `box` ((0, 0) when it does not
        exist), in constant time at any size."""
        ...

    def list_summaries(
        self, start: int = 0, limit: int = 50, box: str | None = None
    ) -> Sequence[Row]:
        """A page of message summaries (of `box` when given), newest first (columns: those
        base.SUMMARY_COLUMNS names, `mailbox` among them)."""
        ...

    def search_page(
        self, terms: Sequence[Term], start: int = 0, limit: int = 50, box: str | None = None
    ) -> tuple[Sequence[Row], int, int]:
        """(a page of matching summaries, newest first; matches; unread matches), in `box` when
        given, finding every message whose commit was confirmed before the call."""
        ...

    def summary(self, uid: str) -> Row | None:
        """One message's summary row, or None when there is no such message."""
        ...

    def message_data(self, uid: str) -> tuple[Row, bytes | str, str] | None:
        """(summary row, stored detail as detailcodec encoded it, transcript JSON), or None."""
        ...

    def latest_uid(self, box: str | None = None) -> str | None:
        """The uid of the newest message (of `box` when given), None when there is none."""
        ...

    def tag_counts(self, box: str | None = None) -> dict[str, int]:
        """Every tag in use (in `box` when given) and how many messages carry it, sorted
        case-insensitively."""
        ...

    def index(
        self, tag: str | None = None, box: str | None = None
    ) -> list[tuple[int, str, int, int, float]]:
        """(id, uid, size, read, created) of every message, or of those with a tag, of `box`
        when given, oldest first."""
        ...

    def next_id(self) -> int:
        """The id the next message will get (never one handed out before)."""
        ...

    def meta(self, name: str) -> str | None:
        """A fact about the database itself ('imap_uidvalidity': drawn once when it was made)."""
        ...

    def imap_flags(self) -> dict[int, set[str]]:
        """The IMAP flags other than \\Seen, by message id."""
        ...

    def checks(self, uid: str) -> str | None:
        """A message's stored check results (JSON text), None when not checked yet or gone."""
        ...

    def checks_many(self, uids: Sequence[str]) -> dict[str, str]:
        """The stored check results (JSON text) of those of these messages that have them, in
        one read (the background checks' run)."""
        ...

    def raw(self, uid: str) -> bytes | None:
        """A message's raw bytes as received, or None."""
        ...

    def raw_stream(self, uid: str) -> tuple[int, Iterator[bytes]] | None:
        """(size, chunks) of a message's raw bytes, read as the chunks are taken (a big message
        never sits whole in memory), or None."""
        ...

    def part(self, uid: str, part_id: str) -> tuple[str, bytes] | None:
        """(content type, decoded bytes) of one MIME part, or None."""
        ...

    def part_stream(self, uid: str, part_id: str) -> tuple[str, int, Iterator[bytes]] | None:
        """(content type, size, chunks) of one decoded part, streamed as raw_stream, or None."""
        ...

    def unindexed(self) -> list[int]:
        """Ids of messages missing from the search index (their index rows were waiting when
        the process stopped without closing the store), oldest first."""
        ...

    def raw_for_index(self, rowid: int) -> tuple[str, bytes, bytes | str] | None:
        """(uid, raw, stored detail) of a message by id, to rebuild its index rows, or None."""
        ...

    # -- mailboxes -----------------------------------------------------------------------------

    def mailboxes(self) -> list[tuple[str, int, int, float]]:
        """(name, messages, unread, created) of every mailbox, sorted by name; 'default' is
        always among them; the counts are kept, not counted (constant time per mailbox)."""
        ...

    def box_of(self, uid: str) -> str | None:
        """The mailbox a message is in, None when there is no such message."""
        ...

    def mailbox_renamed(self, name: str) -> str | None:
        """The name now of a mailbox renamed from `name`, among the latest RENAMES_KEPT renames (a
        rename moves every old name of its mailbox; deleting a mailbox forgets its names);
        None when `name` was not renamed or was taken again by a rename."""
        ...

    def create_mailbox(self, name: str, now: float) -> bool:
        """Writer: make an empty mailbox created at `now`; False (and no change) when it
        exists. The store takes `name` as given: the mailbox layer cleans names."""
        ...

    def backdate_mailbox(self, name: str, created: float) -> None:
        """Writer: make a mailbox's creation time `created` when that is earlier (no change for
        a later time or a missing mailbox): a copy of a store (migrate) carries the default
        mailbox's time, which every store sets itself when it is made."""
        ...

    def rename_mailbox(self, old: str, new: str) -> None:
        """Writer: rename a mailbox with its messages and sessions (their uids unchanged);
        KeyError when `old` does not exist, ValueError when `new` exists or either is
        'default'."""
        ...

    def delete_mailbox(self, name: str) -> list[str]:
        """Writer: delete a mailbox with its messages (as delete_messages) and sessions;
        returns the uids deleted; ValueError for 'default', KeyError when it does not exist."""
        ...

    # -- the session log -----------------------------------------------------------------------

    def insert_session(self, rec: SessionRecord, keep: int) -> None:
        """Writer: log an SMTP session, in mailbox `rec.mailbox`; the oldest go beyond `keep`
        sessions or the log's byte bound, counted over every mailbox (the newest always
        stays)."""
        ...

    def session(self, uid: str) -> Row | None:
        """One logged session (columns: uid, started, ended, peer, local, helo, tls, username,
        outcome, messages as JSON, transcript as JSON, mailbox), or None."""
        ...

    def session_count(self, box: str | None = None) -> int:
        """How many sessions the log holds (of `box` when given)."""
        ...

    def sessions(self, start: int = 0, limit: int = 50, box: str | None = None) -> Sequence[Row]:
        """A page of logged sessions (of `box` when given), newest first."""
        ...

    # -- the relay outbox ----------------------------------------------------------------------

    def outbox_add(
        self, uid: str, kind: str, mail_from: str, rcpts: Sequence[str], raw: bytes, now: float
    ) -> int:
        """Writer: queue a copy of a message to send (kind: release, relay or forward), due
        now; returns its outbox id. It survives restarts and the message's deletion."""
        ...

    def outbox_record(
        self,
        item_id: int,
        attempt: dict[str, Any],
        *,
        state: str,
        recipients: Sequence[str],
        next_attempt: float,
    ) -> None:
        """Writer: log one attempt and move the item on (state pending, sent or failed); an
        item that is done drops its copy of the message."""
        ...

    def outbox_due(self, now: float, limit: int = 20) -> Sequence[Row]:
        """Pending outbox items due by `now`, the most overdue first."""
        ...

    def outbox_next_time(self) -> float | None:
        """When the next pending item is due, None when none is pending."""
        ...

    def outbox_item(self, item_id: int) -> Row | None:
        """One outbox item, or None."""
        ...

    def relay_history(self, uid: str) -> tuple[Sequence[Row], Sequence[Row]]:
        """(outbox items, attempts) of one message, oldest first."""
        ...

    def outbox_backlog(self) -> tuple[int, float | None]:
        """(pending items, creation time of the oldest or None): the queue's size and age."""
        ...

    def outbox_pending(self, limit: int = 1000) -> Sequence[Row]:
        """Up to `limit` pending items, oldest first (columns: id, message_uid, kind, mail_from,
        recipients as JSON, created, attempts, next_attempt, state, and last_error: the reply of
        the latest attempt, '' before the first)."""
        ...

    # -- instances sharing one database -------------------------------------------------------

    def listen(self, callback: Callable[[str], None]) -> bool:
        """Have `callback(message)` called, from a thread of the store's, with each message
        another instance on this database sends with notify, until close; False (and never a
        call) for a store no other instance can share (a SQLite file)."""
        ...

    def notify(self, messages: Sequence[str]) -> None:
        """Send these messages (texts under 7,000 bytes each), in order, to the other instances
        listening on this database, at once (not from inside a job); nothing where none can be.
        Best effort: an instance disconnected meanwhile never hears them. Raises StoreError."""
        ...

    # -- statistics ----------------------------------------------------------------------------

    def size_histogram(self, bounds: Sequence[int], box: str | None = None) -> list[int]:
        """Messages (of `box` when given) per size class: of size <= each bound in turn, then
        of larger ones."""
        ...

    def top_senders(self, limit: int = 10, box: str | None = None) -> list[tuple[str, int]]:
        """(From address, messages) of the most frequent senders (in `box` when given), most
        first."""
        ...

    def top_recipient_domains(
        self, limit: int = 10, box: str | None = None
    ) -> list[tuple[str, int]]:
        """(domain, messages naming it in To, Cc or Bcc) (in `box` when given), most first."""
        ...

    def size_bytes(self) -> int:
        """What the store occupies (a file database: the file and its write-ahead log)."""
        ...
