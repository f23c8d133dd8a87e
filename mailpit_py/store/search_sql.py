"""SQLite WHERE clauses for parsed search terms; SQLite-specific, imported only by store.py.

Every value is a bound parameter. Free text goes through the FTS5 index (messages_fts), with
each token quoted as an FTS5 string, so no query can inject FTS5 or SQL syntax.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mailpit_py.store.search import ADDRESS_KINDS, Term, index_text

# Free text searches what Mailpit's does (sender, recipients, subject, body, attachment names),
# not the headers column: header:Name:value is the way to search header values.
FTS_COLUMNS = "{subject addresses body attachments}"
_FTS_IN = "m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)"
# Words (prefixes, folding case and diacritics) or substrings (trigrams, folding case): a term
# finds what Mailpit's LIKE '%term%' finds, and what the word index found before.
_WORD_OR_SUBSTRING_IN = (
    "m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? "
    "UNION SELECT rowid FROM messages_tri WHERE messages_tri MATCH ?)"
)
# A trigram index finds nothing shorter than a trigram; shorter terms match word prefixes only
# (a scan for one or two characters would be slow and match nearly every message).
TRIGRAM_MIN = 3

_ADDRESS_COLUMNS = {
    "from": "m.from_json",
    "to": "m.to_json",
    "cc": "m.cc_json",
    "bcc": "m.bcc_json",
    "reply-to": "m.reply_to_json",
}
# Each address as "Name <address>", so from:ann, from:"Ann Smith" and from:<ann@x.org> all
# work, and the JSON keys themselves ("Name", "Address") never match (they do in Mailpit).
_ADDRESS_TEXT = (
    "coalesce(json_extract(j.value, '$.Name'), '') || ' <' || "
    "coalesce(json_extract(j.value, '$.Address'), '') || '>'"
)

# Query text that may not appear verbatim in the JSON columns (see _address_sql).
_JSON_UNSAFE = re.compile(r'["\\<>\x00-\x1f\x7f]')


def build_where(
    terms: Sequence[Term],
    *,
    probe: bool = False,
    header_values: Mapping[tuple[str, str], Sequence[str]] | None = None,
) -> tuple[str, list[Any]]:
    """A WHERE fragment over `messages m` matching every term, and its parameters. With
    `probe` (a search in a small mailbox), header values are looked up per candidate message
    instead of every message's values of that header being read first. `header_values` holds,
    by (name, value) of a header: term, the header's distinct values that contain the value
    (found by header_values_query): the messages holding one of those are looked up by value."""
    clauses: list[str] = []
    params: list[Any] = []
    matches: list[str] = []  # positive free-text terms share one MATCH
    for term in terms:
        if term.kind in ("word", "phrase"):
            phrase = fts_phrase(str(term.value))
            substring = trigram_phrase(str(term.value)) if phrase is not None else None
            if phrase is not None and substring is not None:
                sql = _WORD_OR_SUBSTRING_IN
                values = [f"{FTS_COLUMNS} : {phrase}", substring]
            elif phrase is not None and not term.negated:
                matches.append(phrase)
                continue
            elif phrase is not None:
                sql, values = _FTS_IN, [f"{FTS_COLUMNS} : {phrase}"]
            else:
                # Nothing the tokenizer keeps (emoji, symbols): look in subjects instead.
                sql, values = _like("m.subject", str(term.value))
        elif probe and term.kind == "header":
            sql, values = _header_probe(term)
        elif term.kind == "header" and (term.name, str(term.value)) in (header_values or {}):
            matching = (header_values or {})[term.name, str(term.value)]
            sql, values = _header_of_values(term.name, matching)
        else:
            builder = _BUILDERS.get(term.kind)
            if builder is None:
                raise ValueError(f"unknown search term kind {term.kind!r}")
            sql, values = builder(term)
        clauses.append(f"NOT ({sql})" if term.negated else sql)
        params += values
    if matches:
        clauses.insert(0, _FTS_IN)
        params.insert(0, f"{FTS_COLUMNS} : ({' AND '.join(matches)})")
    if not clauses:
        return "1", []
    return " AND ".join(clauses), params


def fts_phrase(text: str) -> str | None:
    """An FTS5 phrase for `text`, prefix-matching its last token; None if it has no tokens.

    The text goes through index_text as the indexed columns did, so a CJK word becomes a
    phrase of single characters (a substring match). Quoting as an FTS5 string (quotes doubled)
    lets the tokenizer split it exactly as it split the document, punctuation included.
    """
    normalized = index_text(text)
    # unicode61 keeps letters and digits (categories L*, N*); without one there is no token,
    # and an empty phrase would match nothing at all.
    if not any(ch.isalnum() for ch in normalized):
        return None
    return '"' + normalized.replace('"', '""') + '"*'


def trigram_phrase(text: str) -> str | None:
    """An FTS5 string for the trigram index matching `text` anywhere (a substring, as Mailpit's
    LIKE); None for text shorter than a trigram. index_text spaces CJK characters as the indexed
    columns were spaced, so both sides agree."""
    normalized = index_text(text).strip()
    if len(normalized) < TRIGRAM_MIN:
        return None
    return '"' + normalized.replace('"', '""') + '"'


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _case_variants(value: str) -> list[str]:
    """Spellings to try for a case-insensitive match.

    SQLite's LIKE and lower() fold ASCII only, and the store's connections have no ICU or
    Python collation to lean on, so for non-ASCII text (Cyrillic, Greek, accented names) we
    try the text as typed, lower, UPPER and Title case: "иван" finds "Иван" and "ИВАН", but not
    a mixed spelling such as "иВаН". Diacritics are not folded (é is not e) in these matches.
    """
    if value.isascii():
        return [value]
    return list(dict.fromkeys([value, value.lower(), value.upper(), value.title()]))


def _like(expr: str, value: str) -> tuple[str, list[Any]]:
    """`expr` contains `value` as a substring, case-insensitively (see _case_variants)."""
    patterns = [f"%{_escape_like(v)}%" for v in _case_variants(value)]
    sql = " OR ".join(f"{expr} LIKE ? ESCAPE '\\'" for _ in patterns)
    return (f"({sql})" if len(patterns) > 1 else sql), patterns


def _address_sql(column: str, value: str) -> tuple[str, list[Any]]:
    like, params = _like(_ADDRESS_TEXT, value)
    exact = f"EXISTS (SELECT 1 FROM json_each({column}) j WHERE {like})"
    if _JSON_UNSAFE.search(value):
        return exact, params
    # A cheap LIKE on the JSON text first skips json_each for most rows (several times faster).
    # The columns are json.dumps(..., ensure_ascii=False), so a name or address appears in them
    # verbatim unless the text holds a character JSON escapes; and a match spanning name and
    # address in "Name <address>" holds "<" or ">". Either way the query skips this shortcut.
    quick, quick_params = _like(column, value)
    return f"({quick} AND {exact})", [*quick_params, *params]


# A name or address searched for: the trigram index's addresses column holds every name and
# address of a message (from, to, cc, bcc, reply-to), so its matches are the only candidates.
_ADDRESS_CANDIDATES = "m.id IN (SELECT rowid FROM messages_tri WHERE messages_tri MATCH ?)"
# What "Name <address>" puts between a name and its address; no name or address holds them.
_ADDRESS_BREAKS = re.compile(r"[<>\x00-\x1f\x7f]")


def address_candidates(value: str) -> tuple[str, list[Any]] | None:
    """A clause narrowing an address search for `value` to the messages whose names or
    addresses hold its longest piece without "<" or ">" (a piece of the text within one name
    or address), looked up in the trigram index instead of every message's address JSON read
    (from:s42@ at 1,000,000 messages: every row read). The exact match still decides: the
    trigram index folds case in every script, so it finds whatever the LIKE of each case
    variant (_case_variants) finds, and more. None when the piece is shorter than a trigram."""
    piece = max((p.strip() for p in _ADDRESS_BREAKS.split(value)), key=len, default="")
    phrases = [trigram_phrase(variant) for variant in _case_variants(piece)]
    if not piece or any(phrase is None for phrase in phrases):
        return None
    return _ADDRESS_CANDIDATES, ["{addresses} : (" + " OR ".join(map(str, phrases)) + ")"]


def _narrowed(value: str, sql: str, params: list[Any]) -> tuple[str, list[Any]]:
    """An address clause behind address_candidates' lookup, when the value allows one."""
    candidates = address_candidates(value)
    if candidates is None:
        return sql, params
    return f"({candidates[0]} AND {sql})", [*candidates[1], *params]


def _address(term: Term) -> tuple[str, list[Any]]:
    value = str(term.value)
    return _narrowed(value, *_address_sql(_ADDRESS_COLUMNS[term.kind], value))


def _addressed(term: Term) -> tuple[str, list[Any]]:
    value = str(term.value)
    parts: list[str] = []
    params: list[Any] = []
    for kind in ADDRESS_KINDS:
        sql, values = _address_sql(_ADDRESS_COLUMNS[kind], value)
        parts.append(sql)
        params += values
    sql, params = _narrowed(value, "(" + " OR ".join(parts) + ")", params)
    # The FTS addresses column holds exactly these fields, and folds case and diacritics
    # (which the trigram lookup does not: it stays outside it).
    phrase = fts_phrase(value)
    if phrase is None:
        return sql, params
    return f"({sql} OR {_FTS_IN})", [*params, f"{{addresses}} : {phrase}"]


def _subject(term: Term) -> tuple[str, list[Any]]:
    # Substring, as in Mailpit; plus the FTS subject column, which folds case in every script
    # and diacritics (subject:creme finds "Crème") where LIKE cannot.
    value = str(term.value)
    sql, params = _like("m.subject", value)
    phrase = fts_phrase(value)
    if phrase is None:
        return sql, params
    return f"({sql} OR {_FTS_IN})", [*params, f"{{subject}} : {phrase}"]


def _message_id(term: Term) -> tuple[str, list[Any]]:
    return _like("m.message_id", str(term.value))


def _tag(term: Term) -> tuple[str, list[Any]]:
    return (
        "EXISTS (SELECT 1 FROM tags t WHERE t.message = m.id AND t.tag = ? COLLATE NOCASE)",
        [str(term.value)],
    )


_IS = {
    "read": "m.read = 1",
    "unread": "m.read = 0",
    "tagged": "EXISTS (SELECT 1 FROM tags t WHERE t.message = m.id)",
    "refused": "m.refused != ''",  # as messages_refused's WHERE, so that index answers it
}
_HAS = {"attachment": "m.attachments > 0", "inline": "m.inline_count > 0"}


def _is(term: Term) -> tuple[str, list[Any]]:
    return _IS[str(term.value)], []


def _has(term: Term) -> tuple[str, list[Any]]:
    return _HAS[str(term.value)], []


def _compare(sql: str) -> Callable[[Term], tuple[str, list[Any]]]:
    return lambda term: (sql, [term.value])


def _header(term: Term) -> tuple[str, list[Any]]:
    # headers.name is COLLATE NOCASE, so = is case-insensitive; the (name, message, value) index
    # answers the whole subquery, read once rather than probed per message.
    sql = "m.id IN (SELECT h.message FROM headers h WHERE h.name = ?"
    params: list[Any] = [term.name]
    if term.value != "":
        like, values = _like("h.value", str(term.value))
        sql += f" AND {like}"
        params += values
    return sql + ")", params


def header_values_query(name: str, value: str, limit: int) -> tuple[str, list[Any]]:
    """A query of header `name`'s distinct values, at most `limit`, each with whether it
    contains `value` as header: means it (the same LIKE as _header's). One seek per distinct
    value through headers_name_value_message (migration 17): ten for a campaign header in a
    million messages, where reading every message's value of it tested a million."""
    patterns = [f"%{_escape_like(v)}%" for v in _case_variants(value)]
    like = " OR ".join(f"x LIKE ?{i + 3} ESCAPE '\\'" for i in range(len(patterns)))
    sql = (
        "WITH RECURSIVE v(x) AS (SELECT (SELECT min(value) FROM headers WHERE name = ?1) "
        "UNION ALL SELECT (SELECT min(value) FROM headers WHERE name = ?1 AND value > v.x) "
        f"FROM v WHERE v.x IS NOT NULL LIMIT ?2) SELECT x, ({like}) FROM v WHERE x IS NOT NULL"
    )
    return sql, [name, limit, *patterns]


def _header_of_values(name: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    # A seek per value through headers_name_value_message, then its messages in order.
    sql = (
        "m.id IN (SELECT h.message FROM headers h WHERE h.name = ? "
        "AND h.value IN (SELECT value FROM json_each(?)))"
    )
    return sql, [name, json.dumps(list(values), ensure_ascii=False)]


def _header_probe(term: Term) -> tuple[str, list[Any]]:
    # The message's own header rows (the headers_message index) answer each message's lookup:
    # a few thousand seeks, where the set of every message's values of a common header is tens
    # of thousands of rows. The unary + keeps SQLite off the (name, value, message) index,
    # which leads with the name: through it, each message's lookup walked every row of that
    # header (20-55 s for a mailbox of 2,000 among 100,000 messages).
    sql = "EXISTS (SELECT 1 FROM headers h WHERE +h.name = ? AND h.message = m.id"
    params: list[Any] = [term.name]
    if term.value != "":
        like, values = _like("h.value", str(term.value))
        sql += f" AND {like}"
        params += values
    return sql + ")", params


def ids_and_read_only(terms: Sequence[Term]) -> bool:
    """Whether the clauses of these terms read nothing of a message's row but its id and read
    flag (sets of ids from the FTS, headers and tags tables; is:read/unread/tagged)."""
    for term in terms:
        if term.kind in ("word", "phrase"):
            if fts_phrase(str(term.value)) is None:
                return False  # looks in subjects instead
        elif term.kind not in ("header", "tag", "is") or term.value == "refused":
            return False
    return bool(terms)


# Kinds whose clause reads every candidate row (no index narrows them): a search with one of
# these is cheaper evaluated once for both its page and its counts (Store.search_page).
SCANNING_KINDS = frozenset({*ADDRESS_KINDS, "addressed", "subject", "message-id", "header"})


def evaluate_once(terms: Sequence[Term]) -> bool:
    """Whether a search is cheaper evaluated once for both its page and its counts: it scans
    rows (SCANNING_KINDS), or a free-text term goes through the trigram index, whose matches
    for a common substring are many (a substring in every message reads every row's trigrams:
    twice that, for a page and then the counts, was 120 ms at 100k messages)."""
    for term in terms:
        if term.kind in SCANNING_KINDS:
            return True
        text = str(term.value)
        if term.kind in ("word", "phrase") and fts_phrase(text) and trigram_phrase(text):
            return True
    return False


def lone_substring(terms: Sequence[Term]) -> tuple[str, str] | None:
    """(word MATCH, trigram MATCH) when the search is one positive free-text term that goes
    through both indexes (what the search box sends most), else None: Store.search_page then
    pages it by merging the two indexes' rowids newest first and stopping at the page, and
    counts with count(*) over the indexes rather than reading every match's row."""
    if len(terms) != 1:
        return None
    term = terms[0]
    if term.kind not in ("word", "phrase") or term.negated:
        return None
    phrase = fts_phrase(str(term.value))
    substring = trigram_phrase(str(term.value))
    if phrase is None or substring is None:
        return None
    return f"{FTS_COLUMNS} : {phrase}", substring


_BUILDERS: dict[str, Callable[[Term], tuple[str, list[Any]]]] = {
    **dict.fromkeys(ADDRESS_KINDS, _address),
    "addressed": _addressed,
    "subject": _subject,
    "message-id": _message_id,
    "tag": _tag,
    "is": _is,
    "has": _has,
    # after: from the start of that day on; before: strictly earlier, so that after:D and
    # before:D split the messages exactly in two (Mailpit's before: is <=, which differs only
    # for a message received at that very instant).
    "after": _compare("m.created >= ?"),
    "before": _compare("m.created < ?"),
    # Strict, as in Mailpit.
    "larger": _compare("m.size > ?"),
    "smaller": _compare("m.size < ?"),
    "header": _header,
}
