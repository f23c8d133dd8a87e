"""The IMAP and POP3 suites (tests/test_imap.py, tests/test_pop3.py) run again on the
PostgreSQL store: their tests that use a server fixture are collected here too, with that
server on a fresh database of the suite's PostgreSQL server (UIDs from its sequence, flags
and read state in its tables)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
import test_imap
import test_pop3

from helpers import make_server
from mailpit_py.server import Server

FIXTURES = {"imap_server", "imap", "pop3_server"}

for _module in (test_imap, test_pop3):
    for _name, _test in vars(_module).items():
        if _name.startswith("test_") and FIXTURES & set(inspect.signature(_test).parameters):
            globals()[_name if _name not in globals() else f"{_name}_{_module.__name__}"] = _test

imap = test_imap.imap  # (the logged-in client fixture, on the server below)


@pytest.fixture
def imap_server(pg_url: str) -> Iterator[Server]:
    with make_server(database=pg_url, imap_addr="127.0.0.1:0", imap_auth=test_imap.AUTH) as mp:
        yield mp


@pytest.fixture
def pop3_server(pg_url: str) -> Iterator[Server]:
    with make_server(database=pg_url, pop3_addr="127.0.0.1:0", pop3_auth=test_pop3.AUTH) as mp:
        yield mp
