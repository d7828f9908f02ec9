"""Keyword search: the words of each clip and of each query, for every store (the FTS5 index of the clip
database is index/faiss/fts.py; Qdrant's full-text index is in index/qdrant/store.py).

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
import unicodedata

from index.store.records import NewClip

BM25_K1 = 1.2  # FTS5's built-in bm25(); Qdrant is told the same
BM25_B = 0.75
TAG_MIN_PROBABILITY = 0.1  # AudioSet tags at least this probable are words of the clip
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
