"""The PostgreSQL search index's text: words folded as SQLite's FTS5 folds them, with their
positions, as a tsvector literal; queries turned into tsquery literals the same way.

Both sides are built here in Python rather than by PostgreSQL's text parser and dictionaries,
whose tokens (an email address is one token there) and case folding (the database's locale)
differ from FTS5's unicode61 tokenizer: here a word is a run of letters and digits, folded to
lower case without diacritics, on whatever server.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from mailpit_py.store.search import index_text

# Letters and digits (unicode61 keeps categories L* and N*); anything else separates words.
_WORD = re.compile(r"[^\W_]+")
# The weight of each column of the index (subject, addresses, body, attachment names).
WEIGHTS = "ABCD"
# PostgreSQL's limits: positions up to 16383, 256 of them per word, a word under 2 KB, a whole
# tsvector under 1 MB. Past these, words are still found as substrings (the trigram text).
MAX_POSITION = 16383
MAX_POSITIONS_PER_COLUMN = 64  # (four columns: 256 at most)
MAX_WORD_BYTES = 1000
MAX_VECTOR_BYTES = 512 * 1024
# A column's first this many characters give words; a 50 MB body would otherwise cost seconds
# and hundreds of MB here (the substring text keeps all of it).
MAX_COLUMN_CHARS = 4 << 20


def fold(value: str) -> str:
    """Lower case without diacritics, as FTS5's 'unicode61 remove_diacritics 2'."""
    if value.isascii():
        return value.lower()
    decomposed = unicodedata.normalize("NFD", value.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(value: str) -> list[str]:
    """The words of some text, folded."""
    return _WORD.findall(fold(value))


def _quote(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


# ASCII text's words by a translation and a split (C speed; the regex took 190 us for 2 KB):
# every character other than a letter or digit becomes a space.
_ASCII_SEPARATORS = str.maketrans(
    {chr(c): (chr(c) if chr(c).isalnum() else " ") for c in range(128)}
)


def _column_words(column: str) -> list[str]:
    text = fold(column[:MAX_COLUMN_CHARS])
    if text.isascii():
        return text.translate(_ASCII_SEPARATORS).split()
    return _WORD.findall(text)


# Each weight's position labels ("12C"), made once as positions are first needed.
_LABELS: dict[str, list[str]] = {weight: [] for weight in WEIGHTS}


def _labels(weight: str, highest: int) -> list[str]:
    table = _LABELS[weight]
    if len(table) <= highest:
        table.extend(f"{p}{weight}" for p in range(len(table), highest + 1))
    return table


def tsvector_literal(columns: Sequence[str]) -> str:
    """A tsvector (as text, to cast) of the columns' words, each position weighted by its
    column; columns are kept apart by a gap so no phrase spans two.

    Written for speed (it runs in the writer for every message): ASCII text is split in C, the
    positions of each word are gathered before any is formatted, and each position's label is
    made once per process (formatting them cost more than the rest)."""
    merged: dict[str, list[str]] = {}
    size = 0
    pos = 0
    for weight, column in zip(WEIGHTS, columns, strict=False):
        tokens = _column_words(column)
        at: dict[str, list[int]] = {}
        for i, token in enumerate(tokens, pos + 2):
            seen = at.get(token)
            if seen is None:
                at[token] = [i]
            else:
                seen.append(i)
        pos += len(tokens) + 2
        labels = _labels(weight, min(pos, MAX_POSITION))
        for token, places in at.items():
            known = merged.get(token)
            if known is None:
                length = len(token) if token.isascii() else len(token.encode())
                if length > MAX_WORD_BYTES or size + length > MAX_VECTOR_BYTES:
                    continue
                size += length + 8
                merged[token] = known = []
            del places[MAX_POSITIONS_PER_COLUMN:]
            if places[-1] < MAX_POSITION:
                known.append(",".join([labels[p] for p in places]))
            else:
                known.append(",".join([labels[min(p, MAX_POSITION)] for p in places]))
    return " ".join(f"{_quote(token)}:{','.join(at)}" for token, at in merged.items())


def substring_text(columns: Sequence[str]) -> str:
    """The text substrings are looked for in: the columns lowered, one per line (a query has
    no line breaks, so no match spans two columns)."""
    return "\n".join(column.lower() for column in columns)


def tsquery_literal(value: str, weights: str = "") -> str | None:
    """A tsquery (as text, to cast) matching `value`'s words in a row, the last one as a prefix,
    as the FTS5 phrase store/search_sql.fts_phrase makes; None when it has no words."""
    tokens = words(index_text(value))
    if not tokens:
        return None
    tokens = [t for t in tokens if len(t.encode()) <= MAX_WORD_BYTES] or tokens[:1]
    parts = [f"{_quote(t)}:{weights}" if weights else _quote(t) for t in tokens[:-1]]
    parts.append(f"{_quote(tokens[-1])}:*{weights}")
    return " <-> ".join(parts)
