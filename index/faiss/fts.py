"""The FTS5 index of the clip database: each clip's keyword document (index/store/words.py) under BM25.
index/faiss/clip_db.py owns the transactions these run in."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from index.store.records import NewClip
from index.store.words import document, query_words

TABLE = "clip_words"  # FTS5, rowid = clip id, one column: the document's words

def create(con: sqlite3.Connection) -> None:
    con.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5(words, "
                "tokenize = 'unicode61 remove_diacritics 0')")


def put(con: sqlite3.Connection, clips: Iterable[tuple[int, NewClip]]) -> None:
    """Index (or index again) clips by id; a clip without words has no row."""
    rows = [(int(id_), document(c)) for id_, c in clips]
    drop(con, [id_ for id_, _ in rows])
    con.executemany(f"INSERT INTO {TABLE} (rowid, words) VALUES (?, ?)", [r for r in rows if r[1]])


def drop(con: sqlite3.Connection, ids: Iterable[int]) -> None:
    con.executemany(f"DELETE FROM {TABLE} WHERE rowid = ?", [(int(i),) for i in ids])


def match(con: sqlite3.Connection, query: str, k: int, *, where: str = "", args: Iterable = (),
          columns: str = "clips.id") -> list[tuple]:
    """Rows of `columns` (over `clips`) and the BM25 score last, of the k best clips matching any word of
    the query among those satisfying `where` (SQL over `clips`, with `args`), best first, ties by id."""
    terms = query_words(query)
    if not terms or k <= 0:
        return []
    expression = " OR ".join(f'"{t}"' for t in terms)  # words hold letters and digits only: no quoting
    condition = f"AND {where}" if where else ""
    return con.execute(
        f"SELECT {columns}, -bm25({TABLE}) FROM {TABLE} JOIN clips ON clips.id = {TABLE}.rowid "
        f"WHERE {TABLE} MATCH ? {condition} ORDER BY bm25({TABLE}), clips.id LIMIT ?",
        (expression, *args, int(k))).fetchall()
