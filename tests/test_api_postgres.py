"""The REST API suites (tests/test_api.py, tests/test_api_mailpit.py) and the tag suite
(tests/test_tags.py) run again on the PostgreSQL store: their tests are collected here too,
with their fixtures' servers and mailboxes on a fresh database of the suite's PostgreSQL
server, so the API answers the same whichever backend holds the mail."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import test_api
import test_api_mailpit
import test_tags

from helpers import make_server
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.server import Server

FIXTURES = {"mp", "http", "box"}

for _module in (test_api, test_api_mailpit, test_tags):
    for _name, _test in vars(_module).items():
        if _name.startswith("test_") and FIXTURES & set(inspect.signature(_test).parameters):
            # (a name two suites share keeps both: the second gets its module's name)
            key = _name if _name not in globals() else f"{_name}_{_module.__name__}"
            globals()[key] = _test


@pytest.fixture
def mp(pg_url: str) -> Iterator[Server]:
    with make_server(database=pg_url, max_messages=0) as server:
        yield server


@pytest.fixture
def http(mp: Server) -> Any:
    return test_api.Http(mp.http_url)


@pytest.fixture
def box(pg_server: Any) -> Iterator[Callable[..., Mailbox]]:
    made: list[tuple[Mailbox, str]] = []

    def make(**settings: Any) -> Mailbox:
        name = pg_server.create_database()
        mb = Mailbox(Config(database=pg_server.url(name), max_messages=0, **settings))
        made.append((mb, name))
        return mb

    yield make
    for mb, name in made:
        mb.close()
        pg_server.drop_database(name)
