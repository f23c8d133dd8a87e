"""Notifications to the other instances on the PostgreSQL store: they ride in the writer's
transaction, sent with its COMMIT in one round trip (counted on the wire by a relay between the
store and the server), in order, and one the server refuses fails alone."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from test_postgres_ingest import held, record

from helpers import wait_until
from mailpit_py.store.postgres.backend import PgStore
from mailpit_py.store.records import StoreError
from pgserver import PgServer


class Relay:
    """A TCP relay to the server that counts round trips: each time the client sends after the
    server last spoke (or first) is one."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.trips = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self._sockets += [client, server]
            last = ["server"]  # (who spoke last on this connection)
            for src, dst, side in ((client, server, "client"), (server, client, "server")):
                threading.Thread(
                    target=self._pump, args=(src, dst, side, last), daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, side: str, last: list[str]) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            with self.lock:
                if side == "client" and last[0] != "client":
                    self.trips += 1
                last[0] = side
            try:
                dst.sendall(data)
            except OSError:
                return

    def counted(self) -> int:
        with self.lock:
            trips, self.trips = self.trips, 0
            return trips

    def close(self) -> None:
        self.listener.close()
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass


@pytest.fixture
def relayed(pg_server: PgServer, pg_url: str) -> Iterator[tuple[PgStore, Relay]]:
    relay = Relay(pg_server.port)
    store = PgStore(pg_url.replace(f":{pg_server.port}/", f":{relay.port}/"), linger=0.5)
    try:
        store.write(lambda s: s.insert_message(record("warm")))  # (the writer's connection)
        yield store, relay
    finally:
        store.close()
        relay.close()


def test_notifications_ride_in_a_deliverys_commit_in_order(
    relayed: tuple[PgStore, Relay], pg_url: str
) -> None:
    """A notification to the other instances was a transaction of its own on a read connection
    (a round trip, a transaction id, a commit record): it now goes with the writer's COMMIT,
    in the same round trip, and the others hear it once that commits."""
    store, relay = relayed
    relay.counted()
    alone: list[Any] = []
    held(store, lambda: alone.append(store.submit(lambda s: s.insert_message(record("alone")))))
    assert alone[0].result(30)
    without = relay.counted()
    heard: list[str] = []
    with psycopg.connect(pg_url, autocommit=True) as listener:
        listener.execute(f'LISTEN "{store._channel}"')
        futures: list[Any] = []

        def submit() -> None:
            futures.append(store.submit(lambda s: s.insert_message(record("with notes"))))
            futures.append(store.submit_notes(["first", "it's \\ 'quoted'"]))
            futures.append(store.submit_notes(["third"]))

        held(store, submit)
        assert futures[0].result(30) and futures[1].result(30) is None
        assert relay.counted() == without  # (the same round trips as the delivery alone)

        def got_all() -> bool:
            heard.extend(n.payload for n in listener.notifies(timeout=0.2, stop_after=3))
            return len(heard) >= 3

        wait_until(got_all, timeout=30, what="the notifications")
    assert heard == ["first", "it's \\ 'quoted'", "third"]
    assert store.counts()[0] == 3


def test_notifications_the_server_refuses_fail_alone(relayed: tuple[PgStore, Relay]) -> None:
    """The deliveries a refused notification rode with are written all the same."""
    store, _ = relayed
    futures: list[Any] = []

    def submit() -> None:
        futures.append(store.submit(lambda s: s.insert_message(record("kept"))))
        futures.append(store.submit_notes(["x" * 9000]))  # (over PostgreSQL's 8,000 bytes)

    held(store, submit)
    assert futures[0].result(30)
    with pytest.raises(StoreError, match="payload"):
        futures[1].result(30)
    assert store.counts()[0] == 2
    store.notify(["after"])  # the next ones go out again
