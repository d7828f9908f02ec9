"""Keyword search: the words of each clip and of each query, for every store (the FTS5 index of the clip
database is index/faiss/fts.py; Qdrant's full-text index is in index/qdrant/payload.py and store.py).

A clip's keyword document is the words of its name, its user description and tags, and the names of its
top AudioSet tags (those PaSST gave at least TAG_MIN_PROBABILITY). Words are made here, once, for both
stores and for queries alike (:func:`words`):

- a word is a run of letters and digits, with their combining marks (a vowel sign of Hindi, Arabic's vowel
  marks); everything else separates (`_`, `-`, `.`, spaces, punctuation);
- a run is split where digits begin or end (``Kick808`` -> kick 808), and a run of letters where camel
  case begins, kept whole as well: ``Kick_808_Hard.wav`` -> kick 808 hard wav, ``HiHat02`` -> hihat hi
  hat 02, ``HTTPServer`` -> httpserver http server;
- lower case, after Unicode NFKC normalisation (full-width letters, ligatures and composed accents become
  the usual characters).

Accents. The document holds each word as written and, after it, the word without its accents
(:func:`fold`: the marks Unicode decomposes a letter into, taken off) where that differs: ``Café_Ambience``
-> café cafe ambience. A query word is looked up the same way, so ``cafe`` finds ``Café`` and ``café``
finds ``cafe``, and a clip holding the very word typed, accents included, scores both terms. Letters that
do not decompose stay as they are (``ß``, ``ø``, ``æ``, ``ł``).

Stems. The document holds each word as written and, right after it, its stem (Snowball's English stemmer,
:func:`stem`) where the stem differs: ``Dogs_barking.wav`` -> dogs dog barking bark wav (and the stem of
the word without its accents: ``cafés`` -> cafés café cafes cafe). A query word is
looked up as written and as its stem, so ``barking`` finds ``dog_bark.wav`` (through ``bark``) and
``doors`` finds ``door.wav``, and a clip holding the very word the query has scores both terms: exact
words rank above words that only share a stem. For BM25 a stem is a word like any other: it counts in the
document's length (a document grows by one word per word whose stem differs), its IDF is over every
document holding any form of it, and a query word whose stem differs adds two terms to the sum.

Prefixes. A query word written with a ``*`` right after it (``foot*``; not stemmed) stands for every word
of the index that starts with it, the words as written and the stems alike (``foot*`` -> footstep,
footsteps, football, ...), at most MAX_PREFIX_WORDS of them: those in the most documents, ties in
alphabetical order, counted over the whole collection. Where a run is cut (camel case, digits), the ``*``
applies to the words ending at it: ``HiHa*`` -> hiha* hi ha*. The query then is the words the prefix
expanded to, OR-ed with its other words, and BM25 sums over each of them (a clip holding ``footsteps``
scores the terms footsteps and footstep). Both stores expand the same way (:func:`query_terms`) against the
vocabulary of their own documents, so they match the same clips and rank them by the same sum: FTS5 reads
its vocabulary (fts5vocab) rather than running its own prefix query, which would score a prefix as one
term; Qdrant, whose full-text index has no prefix query, keeps each clip's distinct words beside its
document (a keyword field that prefix matching serves).

The stores index the prepared words (space-separated) with their own tokenizers, which split them at the
spaces only: FTS5 ``unicode61`` without diacritic folding, combining marks word characters (FAISS + SQLite:
index/faiss/fts.py), Qdrant's word tokenizer over the words written in letters and digits alone
(index/qdrant/payload.py `indexed`). A
query matches a clip holding any of its terms; the score is BM25 with k1 = 1.2, b = 0.75, document lengths
in words and statistics over the whole collection (filters choose among the clips, they do not change the
statistics). The two stores' BM25 differ in one term, the IDF of a word found in n of N documents:
FTS5 ``ln((N - n + 0.5) / (n + 0.5))``, floored at 1e-6 for words in more than half the documents;
Qdrant ``ln(1 + (N - n + 0.5) / (n + 0.5))``. Rankings agree wherever a clip's words are not that common.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import snowballstemmer

from index.store.records import NewClip

BM25_K1 = 1.2  # FTS5's built-in bm25(); Qdrant is told the same
BM25_B = 0.75
TAG_MIN_PROBABILITY = 0.1  # AudioSet tags at least this probable are words of the clip
MAX_PREFIX_WORDS = 64  # the words of the index one prefix stands for, at most
RUN = re.compile(r"[^\W_]+")  # over a text whose combining marks stand as letters (_with_marks_as_letters)
PREFIX_MARK = "*"
_stemmers = threading.local()  # a Snowball stemmer keeps state while it works: one per thread


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


def _with_marks_as_letters(text: str) -> str:
    """`text` with each combining mark (a vowel sign of Hindi, Arabic's and Hebrew's vowel marks, an accent
    NFKC could not compose) as a letter, where only the runs' bounds are read: a mark is part of its word
    (`\\w` takes it for a separator, and cut बारिश, rain, into three letters)."""
    if text.isascii():
        return text
    return "".join("a" if unicodedata.category(c)[0] == "M" else c for c in text)


def _words_ending(text: str) -> Iterator[tuple[str, int]]:
    """(word, where it ends in `text`) of an already normalised text, in order."""
    for found in RUN.finditer(_with_marks_as_letters(text)):
        at = found.start()
        for piece in _cuts(text[at:found.end()], _digit_edge):
            parts = _cuts(piece, _camel_edge)
            if len(parts) > 1:
                yield piece.lower(), at + len(piece)
            for p in parts:
                at += len(p)
                yield p.lower(), at


def words(text: str) -> list[str]:
    """The words of a text, in order (see the module docstring)."""
    return [w for w, _ in _words_ending(unicodedata.normalize("NFKC", text))]


@functools.lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A word's stem: Snowball's English stemmer (``barking`` -> bark, ``doors`` -> door)."""
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        stemmer = _stemmers.english = snowballstemmer.stemmer("english")
    return stemmer.stemWord(word)


# combining marks that make another letter rather than accent one: the Indic, Thai, Lao, Tibetan and Myanmar
# blocks' (a virama, a nukta, a vowel sign) and kana's voicing marks (ガ is not カ)
LETTER_MARKS = re.compile("[\u0900-\u109f\u3099\u309a]")


@functools.lru_cache(maxsize=1 << 16)
def fold(word: str) -> str:
    """The word without its accents: the combining marks of its canonical decomposition taken off
    (``café`` -> cafe, ``ångström`` -> angstrom, Arabic's and Hebrew's vowel marks; ``ß`` stays), but for
    marks that make another letter (LETTER_MARKS: ``ガラス``, glass, is not ``カラス``, crow)."""
    decomposed = unicodedata.normalize("NFD", word)
    if decomposed.isascii():
        return word
    kept = (c for c in decomposed if not unicodedata.combining(c) or LETTER_MARKS.match(c))
    return unicodedata.normalize("NFC", "".join(kept))


def with_forms(ws: list[str]) -> list[str]:
    """Each word, followed by its stem, itself without accents and that one's stem, where they differ."""
    out: list[str] = []
    for w in ws:
        folded = fold(w)
        out.extend(dict.fromkeys((w, stem(w), folded, stem(folded))))
    return out


def query_words(query: str) -> list[str]:
    """The distinct words of a query, in order (a repeated word counts once), as written: not stemmed."""
    return list(dict.fromkeys(words(query)))


@dataclass(frozen=True)
class Query:
    """A keyword query as the stores take it: words looked up as written and as their stems (`terms`), and
    prefixes to expand against the index's vocabulary."""

    terms: tuple[str, ...]  # each query word and its other forms (with_forms), each once
    prefixes: tuple[str, ...]  # the words written with a `*` right after them, not stemmed

    @property
    def empty(self) -> bool:
        return not self.terms and not self.prefixes


def parse_query(query: str) -> Query:
    text = unicodedata.normalize("NFKC", query)
    marks = {i for i, ch in enumerate(text) if ch == PREFIX_MARK}
    plain: list[str] = []
    prefixes: list[str] = []
    for w, end in _words_ending(text):
        (prefixes if end in marks else plain).append(w)
    folded = [f for p in prefixes for f in (p, fold(p))]  # `café*` stands for the words of cafe* too
    return Query(tuple(dict.fromkeys(with_forms(plain))), tuple(dict.fromkeys(folded)))


def expand(prefix: str, counts: Mapping[str, int]) -> list[str]:
    """The words a prefix stands for, given `counts` (a word of the index -> how many documents hold it;
    words not starting with the prefix are ignored): at most MAX_PREFIX_WORDS, those in the most documents
    first, ties in alphabetical order."""
    found = [w for w, n in counts.items() if n > 0 and w.startswith(prefix)]
    return sorted(found, key=lambda w: (-counts[w], w))[:MAX_PREFIX_WORDS]


def query_terms(query: Query, vocabulary: Callable[[str], Mapping[str, int]]) -> list[str]:
    """The terms a store looks up, each once: the query's words and stems, and what each prefix expands to
    (`vocabulary(prefix)`: the words of the store's index starting with it -> how many documents hold
    each)."""
    out = list(query.terms)
    for prefix in query.prefixes:
        out.extend(expand(prefix, vocabulary(prefix)))
    return list(dict.fromkeys(out))


def document(clip: NewClip) -> str:
    """The clip's keyword document: the words of its name, description, user tags, fields' values (a title,
    an FX name, a library...) and top AudioSet tags, each followed by its other forms (:func:`with_forms`),
    space-separated ('' when it has none)."""
    tags = [t.label for t in clip.tags if t.probability >= TAG_MIN_PROBABILITY]
    values = [value for _, value in clip.meta.fields]
    return " ".join(with_forms(words(" ".join([clip.name, clip.meta.description, *clip.meta.tags, *values,
                                               *tags]))))


def vocabulary(doc: str) -> list[str]:
    """The distinct words of a document, sorted."""
    return sorted(set(doc.split()))
