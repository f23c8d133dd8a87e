"""The background checks' read of the results stored already: one read for a run of messages
(checks_many), on each store backend, the same answer as a read per message."""

from __future__ import annotations

import json

from test_store_contract import deliver, raw_message

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox


def test_a_runs_stored_results_are_read_at_once(database: str) -> None:
    mb = Mailbox(Config(database=database, max_messages=0))
    try:
        uids = [deliver(mb, raw_message(f"checked {n}")) for n in range(5)]
        saved = mb.save_checks_many([(uid, {"Checked": n}) for n, uid in enumerate(uids[:3])])
        assert saved.result(30) == [True, True, True]
        asked = [*uids, "gone", uids[0]]  # (one that never was, one asked twice)
        found = mb.store.checks_many(asked)
        assert set(found) == set(uids[:3])
        assert {uid: json.loads(found[uid])["Checked"] for uid in found} == {
            uid: n for n, uid in enumerate(uids[:3])
        }
        assert all(found[uid] == mb.store.checks(uid) for uid in found)
        assert mb.store.checks_many([]) == {}
    finally:
        mb.close()
