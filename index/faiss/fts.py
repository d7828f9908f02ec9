"""The FTS5 index of the clip database: each clip's keyword document (index/store/words.py) under BM25, and
its vocabulary (fts5vocab), which a query's prefixes are expanded against. index/faiss/clip_db.py owns the
transactions these run in."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from index.store.records import NewClip
from index.store.words import document, parse_query, query_terms

TABLE = "clip_words"  # FTS5, rowid = clip id, one column: the document's words (with their stems)
VOCAB = "clip_words_vocab"  # fts5vocab over TABLE: each word, how many documents hold it
LAST = "\U0010ffff"  # above every character: prefix + LAST bounds the words starting with the prefix


# the prepared words (index/store/words.py) split at the spaces only: letters, digits, private use and, beyond
# unicode61's defaults, combining marks (M*) as word characters, so that बारिश (rain) and كَتَبَ are one word
# each, not ब र श; no diacritic folding (the documents hold each word without its accents as well)
TOKENIZER = "unicode61 remove_diacritics 0 categories 'L* N* Co M*'"


def create(con: sqlite3.Connection) -> None:
    con.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5(words, tokenize = \"{TOKENIZER}\")")
    con.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {VOCAB} USING fts5vocab({TABLE}, 'row')")


def put(con: sqlite3.Connection, clips: Iterable[tuple[int, NewClip]]) -> None:
    """Index (or index again) clips by id; a clip without words has no row."""
    rows = [(int(id_), document(c)) for id_, c in clips]
    drop(con, [id_ for id_, _ in rows])
    con.executemany(f"INSERT INTO {TABLE} (rowid, words) VALUES (?, ?)", [r for r in rows if r[1]])


def drop(con: sqlite3.Connection, ids: Iterable[int]) -> None:
    con.executemany(f"DELETE FROM {TABLE} WHERE rowid = ?", [(int(i),) for i in ids])


def vocabulary(con: sqlite3.Connection, prefix: str) -> dict[str, int]:
    """The indexed words starting with `prefix` -> how many documents hold each (a range of the term index,
    which fts5vocab seeks to)."""
    rows = con.execute(f"SELECT term, doc FROM {VOCAB} WHERE term >= ? AND term <= ?",
                       (prefix, prefix + LAST)).fetchall()
    return {t: int(n) for t, n in rows if t.startswith(prefix)}


def match(con: sqlite3.Connection, query: str, k: int, *, where: str = "", args: Iterable = (),
          columns: str = "clips.id") -> list[tuple]:
    """Rows of `columns` (over `clips`) and the BM25 score last, of the k best clips matching any term of
    the query (its words, their stems, its prefixes' words: words.query_terms) among those satisfying
    `where` (SQL over `clips`, with `args`), best first, ties by id. Read in one transaction of `con`."""
    if k <= 0:
        return []
    terms = query_terms(parse_query(query), lambda prefix: vocabulary(con, prefix))
    if not terms:
        return []
    expression = " OR ".join(f'"{t}"' for t in terms)  # words hold letters and digits only: no quoting
    condition = f"AND {where}" if where else ""
    return con.execute(
        f"SELECT {columns}, -bm25({TABLE}) FROM {TABLE} JOIN clips ON clips.id = {TABLE}.rowid "
        f"WHERE {TABLE} MATCH ? {condition} ORDER BY bm25({TABLE}), clips.id LIMIT ?",
        (expression, *args, int(k))).fetchall()
