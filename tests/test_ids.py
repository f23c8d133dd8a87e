"""Message and session IDs: their shape, their order by time, their uniqueness."""

from __future__ import annotations

import re

from mailpit_py.ids import new_id

BASE62_22 = re.compile(r"[0-9A-Za-z]{22}")


def test_ids_are_22_base62_characters_at_any_time() -> None:
    for ms in (0, 1, 1_764_806_400_000, 62**8 - 1):
        assert BASE62_22.fullmatch(new_id(ms))
    assert BASE62_22.fullmatch(new_id())


def test_a_later_id_sorts_after_an_earlier_one() -> None:
    # As strings, so the store's unique index on IDs is appended to, not written all over.
    now = 1_764_806_400_000
    ids = [new_id(now + step) for step in (0, 1, 61, 62, 3843, 3844, 10**9)]
    assert ids == sorted(ids)
    assert new_id(now)[:8] == new_id(now)[:8]  # the time is the first 8 characters


def test_ids_made_in_the_same_millisecond_differ() -> None:
    ids = {new_id(1_764_806_400_000) for _ in range(10_000)}
    assert len(ids) == 10_000


def test_ids_from_many_threads_at_once_all_differ() -> None:
    # The random bytes come from a pool shared by the threads (SMTP loop, API, writer).
    import threading

    made: list[list[str]] = [[] for _ in range(8)]

    def make(out: list[str]) -> None:
        out.extend(new_id(1_764_806_400_000) for _ in range(2_000))

    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({i for out in made for i in out}) == 16_000


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    import os

    new_id()  # the parent's pool now holds the random bits of the next IDs
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next IDs, to the parent
        os.close(read)
        os.write(write, " ".join(new_id(0) for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {new_id(0) for _ in range(50)}
    assert len(child) == 50
    assert not child & parent
