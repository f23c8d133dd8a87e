"""How far the message count may run past --max before retention deletes the oldest at once."""

from __future__ import annotations

# Deleting one message per delivery at the limit cost the writer ~110 us a message (the search
# indexes' deletes above all, each a new FTS5 segment); letting the count run a tenth past the
# limit and then deleting that tenth in one statement per table costs a fraction of it. Mailpit
# itself prunes once a minute, however much arrived meanwhile. The cap bounds one prune's
# transaction (and so the stall of the commits behind it) for a very large --max.
SLACK_SHARE = 10
SLACK_MAX = 1000


def retention_slack(max_messages: int) -> int:
    """Messages that may be stored beyond `max_messages` before a prune: a tenth of it, at most
    SLACK_MAX; none under 10, where a tenth is less than one message."""
    return min(max_messages // SLACK_SHARE, SLACK_MAX)
