"""Messages between instances sharing one PostgreSQL database: NOTIFY to send (with the
writer's next commit), and a thread that LISTENs on a connection of its own (reconnecting when
the server comes back)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from mailpit_py.store.postgres.base import PgParts
from mailpit_py.store.records import StoreError

log = logging.getLogger(__name__)

CHANNEL = "mailpit_py_events"
# PostgreSQL's bound on a NOTIFY payload is 8,000 bytes.
MAX_MESSAGE = 7000
# How long the listener waits before it connects again after losing its connection.
RELISTEN_WAIT = 1.0
# How long notify waits for the writer's commit that sends its notifications.
NOTIFY_WAIT = 30.0


class PgNotify(PgParts):
    """notify and listen (store/interface.py) over LISTEN/NOTIFY."""

    _url: str
    _channel: str
    _connection: dict[str, Any]
    _stopping: threading.Event
    _listener: threading.Thread | None

    def notify(self, messages: Sequence[str]) -> None:
        if any(len(m.encode()) > MAX_MESSAGE for m in messages):
            raise ValueError(f"a notification is limited to {MAX_MESSAGE} bytes")
        if not messages:
            return
        # Sent by the writer with the COMMIT of its next transaction (the deliveries waiting
        # to be written, if any): a NOTIFY in a transaction of its own cost a round trip, a
        # transaction id and a commit record; the order holds, as the writer commits in turn.
        try:
            self.submit_notes(messages).result(NOTIFY_WAIT)
        except TimeoutError:
            raise StoreError(
                f"the writer did not send the notifications in {NOTIFY_WAIT:g} s"
            ) from None

    def listen(self, callback: Callable[[str], None]) -> bool:
        thread = threading.Thread(
            target=self._listen_loop, args=(callback,), name="store-listen", daemon=True
        )
        self._listener = thread
        thread.start()
        return True

    def _listen_loop(self, callback: Callable[[str], None]) -> None:
        failing = False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._url, **self._connection) as conn:
                    conn.execute(f'LISTEN "{self._channel}"')
                    if failing:
                        log.warning("listening to the other instances again")
                        failing = False
                    self._deliver(conn, callback)
            except psycopg.Error as exc:
                if not failing and not self._stopping.is_set():
                    log.warning("not hearing the other instances (retrying): %s", exc)
                failing = True
            self._stopping.wait(RELISTEN_WAIT)

    def _deliver(self, conn: psycopg.Connection[Any], callback: Callable[[str], None]) -> None:
        while not self._stopping.is_set():
            for note in conn.notifies(timeout=0.5):
                try:
                    callback(note.payload)
                except Exception:  # a listener's bug must not stop the others' news
                    log.exception("a notification's handler failed")

    def _stop_listening(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
            self._listener = None
