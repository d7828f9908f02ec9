"""Keyword search: each clip's words, and the FTS5 index that ranks them by BM25 in the clip database.

A clip's keyword document is the words of its name, its user description and tags, and the names of its
top AudioSet tags (those PaSST gave at least TAG_MIN_PROBABILITY). Words are made here, once, for both
stores and for queries alike (:func:`words`):

- a word is a run of letters and digits; everything else separates (`_`, `-`, `.`, spaces, punctuation);
- a run is split where digits begin or end (``Kick808`` -> kick 808), and a run of letters where camel
  case begins, kept whole as well: ``Kick_808_Hard.wav`` -> kick 808 hard wav, ``HiHat02`` -> hihat hi
  hat 02, ``HTTPServer`` -> httpserver http server;
- lower case, after Unicode NFKC normalisation (full-width letters, ligatures and composed accents become
  the usual characters; accents themselves are kept: ``café`` is not ``cafe``).

The stores index the prepared words (space-separated) with their own tokenizers, which split them at the
spaces only: FTS5 ``unicode61`` without diacritic folding (FAISS + SQLite), Qdrant's word tokenizer. A
query matches a clip holding any of its words; the score is BM25 with k1 = 1.2, b = 0.75, document lengths
in words and statistics over the whole collection (filters choose among the clips, they do not change the
statistics). The two stores' BM25 differ in one term, the IDF of a word found in n of N documents:
FTS5 ``ln((N - n + 0.5) / (n + 0.5))``, floored at 1e-6 for words in more than half the documents;
Qdrant ``ln(1 + (N - n + 0.5) / (n + 0.5))``. Rankings agree wherever a clip's words are not that common.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections.abc import Iterable

from index.base import NewClip

BM25_K1 = 1.2  # FTS5's built-in bm25(); Qdrant is told the same
BM25_B = 0.75
TAG_MIN_PROBABILITY = 0.1  # AudioSet tags at least this probable are words of the clip
TABLE = "clip_words"  # FTS5, rowid = clip id, one column: the document's words
RUN = re.compile(r"[^\W_]+")


def _cuts(run: str, cut) -> list[str]:
    """`run` cut before each position i where cut(run, i)."""
    starts = [0, *(i for i in range(1, len(run)) if cut(run, i))]
    return [run[a:b] for a, b in zip(starts, [*starts[1:], len(run)], strict=True)]


def _digit_edge(run: str, i: int) -> bool:
    return run[i - 1].isdigit() != run[i].isdigit()


def _camel_edge(run: str, i: int) -> bool:
    """hiHat | HTTPServer: before an upper case letter that follows a lower case one, or that starts a
    capitalised word after a run of capitals."""
    a, b, after = run[i - 1], run[i], run[i + 1:i + 2]
    return b.isupper() and (a.islower() or (a.isupper() and after.islower()))


def words(text: str) -> list[str]:
    """The words of a text, in order (see the module docstring)."""
    out: list[str] = []
    for run in RUN.findall(unicodedata.normalize("NFKC", text)):
        for piece in _cuts(run, _digit_edge):
            parts = _cuts(piece, _camel_edge)
            if len(parts) > 1:
                out.append(piece.lower())
            out.extend(p.lower() for p in parts)
    return out


def query_words(query: str) -> list[str]:
    """The distinct words of a query, in order (a repeated word counts once)."""
    return list(dict.fromkeys(words(query)))


def document(clip: NewClip) -> str:
    """The clip's keyword document: its words, space-separated ('' when it has none)."""
    tags = [t.label for t in clip.tags if t.probability >= TAG_MIN_PROBABILITY]
    return " ".join(words(" ".join([clip.name, clip.meta.description, *clip.meta.tags, *tags])))


# -- the FTS5 index of the clip database (index/clip_db.py owns the transactions) ---------------------------
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
