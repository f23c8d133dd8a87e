"""Shared fixtures: a running server on free ports and raw SMTP clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backends import database  # noqa: F401  (fixture: a new database of each store backend)
from helpers import RawClient, make_server
from mailpit_py.server import Server
from pgserver import pg_server, pg_url  # noqa: F401  (fixtures: a real PostgreSQL)


@pytest.fixture
def server() -> Iterator[Server]:
    with make_server() as mp:
        yield mp


@pytest.fixture
def server_factory() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(**overrides: Any) -> Server:
        mp = make_server(**overrides).start()
        started.append(mp)
        return mp

    yield start
    for mp in started:
        mp.stop()


@pytest.fixture
def raw_client(server: Server) -> Iterator[Callable[[], RawClient]]:
    clients: list[RawClient] = []

    def connect() -> RawClient:
        c = RawClient(server.smtp_address)
        clients.append(c)
        return c

    yield connect
    for c in clients:
        c.close()
