"""A substring's matches in a small mailbox, found by reading the mailbox's own indexed text
when the term is in too many of the store's messages to stream past the mailbox."""

from __future__ import annotations

import re
import sqlite3
from functools import cache

from mailpit_py.store.listpages import BOX_INDEX
from mailpit_py.store.schema import TRIGRAM_SCHEMA

# The mailbox's text is read when the store's trigram matches of the term outnumber the
# mailbox's messages this many times: streaming a match costs about what reading a small
# message's text does, and counting the matches up to this bound is the estimate's whole cost.
SCAN_RATIO = 2
# Characters of text read before the scan gives up for the trigram index's matches (large
# bodies): the most a wrong guess costs, a few tens of milliseconds.
SCAN_CHARS = 16 * 1024 * 1024
# Code points the trigram tokenizer may fold, asked of SQLite once: every cased script's block.
# CJK ideographs, Hangul syllables, private use and the planes' caseless blocks are left out
# (Unicode gives them no case mapping); beyond the Basic Multilingual Plane, the blocks of
# Deseret to Vithkuqi, Warang Citi, Medefaidrin and Adlam.
_FOLD_RANGES = (
    (0x01, 0x3400),
    (0xA000, 0xAC00),
    (0xD7A4, 0xD800),
    (0xF900, 0x10000),
    (0x10400, 0x11000),
    (0x11800, 0x11900),
    (0x16E40, 0x16EA0),
    (0x1E900, 0x1E960),
)
_SEPARATOR = "\x01"  # joins a message's columns (see box_matches)
_JOINED = " || char(1) || ".join(f"coalesce(c.{column}, '')" for column in ("c0", "c1", "c2", "c3"))
_TOKENIZER = re.search(r"tokenize\s*=\s*'([^']*)'", TRIGRAM_SCHEMA)


def found_by_word(conn: sqlite3.Connection, word: str) -> bool:
    """Whether the word index finds a lone term anywhere: for a substring inside words it finds
    none, and the trigram index alone is read (no union to deduplicate): most searches."""
    found = conn.execute("SELECT 1 FROM messages_fts WHERE messages_fts MATCH ? LIMIT 1", (word,))
    return found.fetchone() is not None


@cache
def _fold_table() -> dict[int, str]:
    """The trigram tokenizer's case folding, as this SQLite does it: one document of every
    candidate code point, each trigram's first character read back from the index. SQLite's
    table is neither Python's lower() nor casefold() (it folds µ to μ and ſ to s, and leaves
    İ and the Cherokee letters alone), so a copy of either would count other matches."""
    assert _TOKENIZER is not None
    points = [point for first, end in _FOLD_RANGES for point in range(first, end)]
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize = '{_TOKENIZER[1]}')")
        conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        # Two spaces after, so that the last code points start a trigram too.
        conn.execute("INSERT INTO t (rowid, x) VALUES (1, ?)", ("".join(map(chr, points)) + "  ",))
        return {
            points[offset]: term[0]
            for term, offset in conn.execute("SELECT term, offset FROM v")
            if offset < len(points) and term[0] != chr(points[offset])
        }
    finally:
        conn.close()


def fold(text: str) -> str:
    """`text` as the trigram tokenizer reads it: up to its first NUL (where the tokenizer
    stops), each character folded (SQLite's fold, _fold_table)."""
    end = text.find("\0")
    if end >= 0:
        text = text[:end]
    if text.isascii():
        return text.lower()  # A-Z only, as the tokenizer folds ASCII
    return text.translate(_fold_table())


def unquoted(phrase: str) -> str:
    """The text of an FTS5 string (search_sql.trigram_phrase's quoting undone)."""
    return phrase[1:-1].replace('""', '"')


def dense(conn: sqlite3.Connection, substring: str, held: int) -> bool:
    """Whether the store's trigram matches of `substring` (an FTS5 string) outnumber SCAN_RATIO
    times a mailbox of `held` messages: counted up to that bound only."""
    bound = SCAN_RATIO * held
    seen = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM messages_tri WHERE messages_tri MATCH ? LIMIT ?)",
        (substring, bound + 1),
    ).fetchone()[0]
    return int(seen) > bound


def box_matches(
    conn: sqlite3.Connection, word: str, substring: str, box: str
) -> list[tuple[int, int]] | None:
    """(id, read) of the messages of `box` that the word MATCH `word` or the trigram MATCH
    `substring` finds, newest first, exactly as those indexes would: the mailbox's indexed text
    is read and searched for the folded substring, column by column (a trigram phrase never
    spans two columns). None when the text passes SCAN_CHARS (the caller streams the index's
    matches instead)."""
    needle = fold(unquoted(substring))
    if _SEPARATOR in needle or "\0" in unquoted(substring):
        return None  # (terms not from the query parser) a match could span two columns
    by_word: set[int] = set()
    if found_by_word(conn, word):
        # The word index also folds diacritics and finds phrases across punctuation, which the
        # substring does not: its matches in the mailbox are read as they are.
        ids = f"SELECT id FROM messages{BOX_INDEX} WHERE mailbox = ?"
        by_word = {
            int(row[0])
            for row in conn.execute(
                f"SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? AND +rowid IN ({ids})",
                (word, box),
            )
        }
    found: list[tuple[int, int]] = []
    budget = SCAN_CHARS
    # messages_fts_content holds the word index's text (c0-c3: subject, addresses, body,
    # attachments), which is also the trigram index's (its content table is messages_fts).
    # The columns come joined by a control character, which no search term holds (the query
    # parser makes them spaces), so a match in the whole is a match within one column; a NUL
    # in it (where the tokenizer stops reading a column) has the columns read apart.
    for rowid, read, text in conn.execute(
        f"SELECT m.id, m.read, {_JOINED} "
        f"FROM messages m{BOX_INDEX} JOIN messages_fts_content c ON c.id = m.id "
        "WHERE m.mailbox = ? ORDER BY m.id DESC",
        (box,),
    ):
        budget -= len(text)
        if budget < 0:
            return None
        if rowid in by_word or needle in (fold(text) if "\0" not in text else _apart(conn, rowid)):
            found.append((rowid, read))
    return found


def _apart(conn: sqlite3.Connection, rowid: int) -> str:
    """A message's indexed text, each column folded on its own (up to its own NUL), joined."""
    row = conn.execute(
        "SELECT c0, c1, c2, c3 FROM messages_fts_content WHERE id = ?", (rowid,)
    ).fetchone()
    return _SEPARATOR.join(fold(text) for text in row if isinstance(text, str))
