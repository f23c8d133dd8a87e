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
