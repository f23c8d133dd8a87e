"""The server's log handler writes a burst of lines in a few writes (not one write and flush per
message), a warning at once, and everything by close."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import wait_until
from mailpit_py.config.settings import Config
from mailpit_py.observability import logs


class CountingStream(io.StringIO):
    """A real text stream that counts the writes it is given."""

    writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_a_burst_of_lines_is_written_in_a_few_writes_and_a_warning_at_once() -> None:
    stream = CountingStream()
    handler = logs.BatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.Logger("burst")
    log.addHandler(handler)
    try:
        for i in range(200):
            log.info("message %d", i)
        lines = wait_until(
            lambda: len(stream.getvalue().splitlines()) == 200 and stream.getvalue(),
            what="the burst's 200 lines",
        )
        assert lines.splitlines() == [f"INFO message {i}" for i in range(200)]
        assert stream.writes <= 10, stream.writes
        log.info("before")
        log.warning("now")  # written at once, after what waited before it
        assert stream.getvalue().splitlines()[-2:] == ["INFO before", "WARNING now"]
        log.info("last")
    finally:
        handler.close()
    assert stream.getvalue().splitlines()[-1] == "INFO last"


def test_the_log_file_gets_every_line_of_a_burst_by_close(
    tmp_path: Path, restore_root: None
) -> None:
    path = tmp_path / "server.log"
    handler = logs.configure(Config(log_file=str(path), log_format="json"))
    assert isinstance(handler, logs.BatchedStreamHandler)
    log = logging.getLogger("mailpit_py.test")
    for i in range(50):
        log.info("line %d", i, extra={"event": "message", "n": i})
    handler.close()
    text = path.read_text(encoding="utf-8")
    assert [line.count('"event": "message"') for line in text.splitlines()] == [1] * 50
