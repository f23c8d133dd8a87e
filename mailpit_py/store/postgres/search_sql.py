"""PostgreSQL WHERE clauses for parsed search terms (store/search.py), meaning what
store/search_sql.py's SQLite clauses mean.

Every value is a bound parameter. Words go through the tsvector index (messages_fts.words),
substrings through pg_trgm's GIN indexes (LIKE and ILIKE), so no query can inject SQL or
tsquery syntax: the tsquery is built from quoted words (words.tsquery_literal).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from mailpit_py.store.postgres.words import tsquery_literal
from mailpit_py.store.search import ADDRESS_KINDS, Term, index_text

# is: and has: are plain SQL both dialects read alike: one table for both backends.
from mailpit_py.store.search_sql import _HAS, _IS, TRIGRAM_MIN, _case_variants

_WORDS_IN = "m.id IN (SELECT f.id FROM messages_fts f WHERE f.words @@ %s::tsquery)"
# Words (prefixes, folding case and diacritics) or substrings (trigrams, folding case), as
# SQLite's word index UNION its trigram index.
_WORDS_OR_SUBSTRING_IN = (
    "m.id IN (SELECT f.id FROM messages_fts f WHERE f.words @@ %s::tsquery OR f.text LIKE %s)"
)
# The same tests of one message at a time (build_where's `each`): its index row read by its id.
_WORDS_EACH = "EXISTS (SELECT 1 FROM messages_fts f WHERE f.id = m.id AND f.words @@ %s::tsquery)"
_WORDS_OR_SUBSTRING_EACH = (
    "EXISTS (SELECT 1 FROM messages_fts f WHERE f.id = m.id "
    "AND (f.words @@ %s::tsquery OR f.text LIKE %s))"
)
_ADDRESS_COLUMNS = {
    "from": "m.from_json",
    "to": "m.to_json",
    "cc": "m.cc_json",
    "bcc": "m.bcc_json",
    "reply-to": "m.reply_to_json",
}
# Each address as "Name <address>", as SQLite's clause sees it (the JSON keys never match).
_ADDRESS_TEXT = "coalesce(j->>'Name', '') || ' <' || coalesce(j->>'Address', '') || '>'"
_UNSAFE_IN_JSON = frozenset('"\\<>')


def escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(value: str) -> str:
    return f"%{escape_like(value)}%"


def _ilike(expr: str, value: str) -> tuple[str, list[Any]]:
    """`expr` contains `value`, case-insensitively in any script. ILIKE folds case by the
    database's locale (under the C locale, ASCII only), so non-ASCII text is also tried as
    typed, lower, UPPER and Title case, as on SQLite (store/search_sql._case_variants): "иван"
    finds "Иван" whatever the server's locale. Backslash is LIKE's escape by default."""
    patterns = [_contains(v) for v in _case_variants(value)]
    sql = " OR ".join(f"{expr} ILIKE %s" for _ in patterns)
    return (f"({sql})" if len(patterns) > 1 else sql), patterns


def build_where(terms: Sequence[Term], each: bool = False) -> tuple[str, list[Any]]:
    """A WHERE fragment over `messages m` matching every term, and its parameters.

    By default a term that an index answers reads every match from it once (the fastest way
    through all messages); with `each`, every term is a test of one message, its index rows
    read by its id: the way through a few thousand (one small mailbox, one new message), where
    reading every mailbox's matches cost more (header: in a mailbox of 2,000 among 100,000
    messages, 36 ms through headers_name against 5 ms one message at a time)."""
    clauses: list[str] = []
    params: list[Any] = []
    builders = _EACH_BUILDERS if each else _BUILDERS
    for term in terms:
        builder = builders.get(term.kind)
        if builder is None:
            raise ValueError(f"unknown search term kind {term.kind!r}")
        sql, values = builder(term)
        clauses.append(f"NOT ({sql})" if term.negated else sql)
        params += values
    if not clauses:
        return "TRUE", []
    return " AND ".join(clauses), params


def _free_text(term: Term, each: bool = False) -> tuple[str, list[Any]]:
    value = str(term.value)
    query = tsquery_literal(value)
    substring = index_text(value).strip().lower()
    if query is None:
        # Nothing a word is made of (emoji, symbols): look in subjects instead, as SQLite does.
        return _ilike("m.subject", value)
    if len(substring) < TRIGRAM_MIN:
        return (_WORDS_EACH if each else _WORDS_IN), [query]
    return (_WORDS_OR_SUBSTRING_EACH if each else _WORDS_OR_SUBSTRING_IN), [
        query,
        _contains(substring),
    ]


# One messages_fts row matches a lone free-text term (lone_free_text): the substring first,
# being cheaper to test than a phrase's positions and true for most rows it is asked about.
FREE_TEXT_MATCH = "(f.text LIKE %s OR f.words @@ %s::tsquery)"


def lone_free_text(terms: Sequence[Term]) -> list[Any] | None:
    """FREE_TEXT_MATCH's parameters when the search is one positive free-text term read from
    both the word and the substring index (what the search box sends most), else None: such a
    search can be paged newest first with an early stop, as on SQLite (lone_substring)."""
    if len(terms) != 1 or terms[0].kind not in ("word", "phrase") or terms[0].negated:
        return None
    value = str(terms[0].value)
    query = tsquery_literal(value)
    substring = index_text(value).strip().lower()
    if query is None or len(substring) < TRIGRAM_MIN:
        return None
    return [_contains(substring), query]


def _address_sql(column: str, value: str) -> tuple[str, list[Any]]:
    like, params = _ilike(_ADDRESS_TEXT, value)
    exact = f"EXISTS (SELECT 1 FROM jsonb_array_elements({column}::jsonb) j WHERE {like})"
    if _UNSAFE_IN_JSON & set(value) or any(ord(ch) < 32 for ch in value):
        return exact, params
    # The JSON text holds the name and address verbatim (json.dumps, ensure_ascii=False)
    # unless the query has what JSON escapes, or spans name and address ("<", ">"): a trigram
    # index on the column narrows the rows before each one's JSON is read.
    quick, quick_params = _ilike(column, value)
    return f"({quick} AND {exact})", [*quick_params, *params]


def _address(term: Term) -> tuple[str, list[Any]]:
    return _address_sql(_ADDRESS_COLUMNS[term.kind], str(term.value))


def _addressed(term: Term, each: bool = False) -> tuple[str, list[Any]]:
    value = str(term.value)
    parts: list[str] = []
    params: list[Any] = []
    for kind in ADDRESS_KINDS:
        sql, values = _address_sql(_ADDRESS_COLUMNS[kind], value)
        parts.append(sql)
        params += values
    query = tsquery_literal(value, "B")  # the addresses column, folding case and diacritics
    if query is not None:
        parts.append(_WORDS_EACH if each else _WORDS_IN)
        params.append(query)
    return "(" + " OR ".join(parts) + ")", params


def _subject(term: Term, each: bool = False) -> tuple[str, list[Any]]:
    value = str(term.value)
    query = tsquery_literal(value, "A")  # the subject's words, folding diacritics too
    if query is None:
        return _ilike("m.subject", value)
    if each:
        like, params = _ilike("m.subject", value)
        return f"({like} OR {_WORDS_EACH})", [*params, query]
    like, params = _ilike("s.subject", value)
    # Two sets of ids, each read from its own index (an OR beside a subquery scans every row).
    return (
        f"m.id IN (SELECT s.id FROM messages s WHERE {like} "
        "UNION ALL SELECT f.id FROM messages_fts f WHERE f.words @@ %s::tsquery)",
        [*params, query],
    )


def _message_id(term: Term) -> tuple[str, list[Any]]:
    return _ilike("m.message_id", str(term.value))


def _tag(term: Term, each: bool = False) -> tuple[str, list[Any]]:
    if each:
        return (
            "EXISTS (SELECT 1 FROM tags t WHERE t.message = m.id AND lower(t.tag) = lower(%s))",
            [str(term.value)],
        )
    return (
        "m.id IN (SELECT t.message FROM tags t WHERE lower(t.tag) = lower(%s))",
        [str(term.value)],
    )


def _is(term: Term) -> tuple[str, list[Any]]:
    return _IS[str(term.value)], []


def _has(term: Term) -> tuple[str, list[Any]]:
    return _HAS[str(term.value)], []


def _compare(sql: str) -> Callable[[Term], tuple[str, list[Any]]]:
    return lambda term: (sql, [term.value])


# header: values are told apart by the first HEADER_KEY characters (headers_name_key, a btree:
# a whole value could pass its size limit).
HEADER_KEY = 256
# A header name with fewer distinct values than this has them listed from its index and matched
# one by one, and only the rows of those that match are read: a value too short for trigrams
# ("c3") otherwise had every row of that name read and matched (10,000 of 100,000: 69 ms).
HEADER_DISTINCT_MAX = 256
_KEY = f"lower(left(h.value, {HEADER_KEY}))"
_HEADER_VALUE = (
    "m.id IN (WITH RECURSIVE k(key, n) AS ("
    f"(SELECT {_KEY}, 1 FROM headers h WHERE lower(h.name) = lower(%s) ORDER BY 1 LIMIT 1) "
    f"UNION ALL SELECT (SELECT {_KEY} FROM headers h WHERE lower(h.name) = lower(%s) "
    f"AND {_KEY} > k.key ORDER BY 1 LIMIT 1), k.n + 1 FROM k "
    f"WHERE k.key IS NOT NULL AND k.n < {HEADER_DISTINCT_MAX}), "
    # every key was listed when the walk reached the end (NULL) before its bound
    "few AS (SELECT coalesce(bool_or(key IS NULL), true) AS yes FROM k) "
    f"SELECT h.message FROM headers h WHERE (SELECT yes FROM few) "
    f"AND lower(h.name) = lower(%s) AND {_KEY} = ANY(ARRAY(SELECT k.key FROM k "
    f"WHERE {{key_like}} OR length(k.key) >= {HEADER_KEY})) AND {{like}} "
    "UNION ALL SELECT h.message FROM headers h WHERE NOT (SELECT yes FROM few) "
    "AND lower(h.name) = lower(%s) AND {like})"
)


def _header(term: Term, each: bool = False) -> tuple[str, list[Any]]:
    if each:
        # (headers_message: the message's few rows, each name and value tested)
        if term.value == "":
            return (
                "EXISTS (SELECT 1 FROM headers h WHERE h.message = m.id "
                "AND lower(h.name) = lower(%s))",
                [term.name],
            )
        like, values = _ilike("h.value", str(term.value))
        return (
            "EXISTS (SELECT 1 FROM headers h WHERE h.message = m.id "
            f"AND lower(h.name) = lower(%s) AND {like})",
            [term.name, *values],
        )
    if term.value == "":
        return (
            "m.id IN (SELECT h.message FROM headers h WHERE lower(h.name) = lower(%s))",
            [term.name],
        )
    like, values = _ilike("h.value", str(term.value))
    # A key is the whole value lowered when shorter than HEADER_KEY, and ILIKE folds case as
    # lower() does, so a key matches exactly when its values do; a cut key is checked on rows.
    key_like, key_values = _ilike("k.key", str(term.value))
    sql = _HEADER_VALUE.format(key_like=key_like, like=like)
    name = term.name
    return sql, [name, name, name, *key_values, *values, name, *values]


_BUILDERS: dict[str, Callable[[Term], tuple[str, list[Any]]]] = {
    "word": _free_text,
    "phrase": _free_text,
    **dict.fromkeys(ADDRESS_KINDS, _address),
    "addressed": _addressed,
    "subject": _subject,
    "message-id": _message_id,
    "tag": _tag,
    "is": _is,
    "has": _has,
    # after: from the start of that day on; before: strictly earlier (as on SQLite).
    "after": _compare("m.created >= %s"),
    "before": _compare("m.created < %s"),
    "larger": _compare("m.size > %s"),
    "smaller": _compare("m.size < %s"),
    "header": _header,
}
_EACH_BUILDERS: dict[str, Callable[[Term], tuple[str, list[Any]]]] = {
    **_BUILDERS,
    "word": partial(_free_text, each=True),
    "phrase": partial(_free_text, each=True),
    "addressed": partial(_addressed, each=True),
    "subject": partial(_subject, each=True),
    "tag": partial(_tag, each=True),
    "header": partial(_header, each=True),
}
