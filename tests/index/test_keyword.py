"""Keyword search: the words of names and texts, BM25 on both stores against the formula worked out by hand
with numpy over hand-written documents, and reciprocal-rank fusion against sums done by hand."""

import numpy as np
import pytest

from index.fusion import reciprocal_rank_fusion
from index.store.metadata import Metadata
from index.store.records import ClipRecord, Hit, NewClip, SearchFilter, Tag
from index.store.words import document, query_words, words
from index.stores import StoreConfig, open_store
from tests.index.store_fixtures import SPEC, unit_vectors

K1, B = 1.2, 0.75


@pytest.mark.parametrize("text, expected", [
    ("Kick_808_Hard.wav", ["kick", "808", "hard", "wav"]),
    ("HiHat02.wav", ["hihat", "hi", "hat", "02", "wav"]),
    ("HTTPServer", ["httpserver", "http", "server"]),
    ("snareRoll-v2 (FINAL).aiff", ["snareroll", "snare", "roll", "v", "2", "final", "aiff"]),
    ("Kick808", ["kick", "808"]),
    ("rain, on; the ROOF!", ["rain", "on", "the", "roof"]),
    ("Café crème", ["café", "crème"]),  # accents kept
    ("Ｋｉｃｋ", ["kick"]),  # full-width letters, NFKC
    ("___ ... --", []),
])
def test_words_split_punctuation_underscores_digits_and_camel_case(text, expected):
    assert words(text) == expected


def test_query_words_count_a_repeated_word_once():
    assert query_words("kick KICK Kick_hard") == ["kick", "hard"]


def test_a_clips_document_holds_name_description_user_tags_and_probable_audioset_tags():
    clip = NewClip(name="Kick_808.wav", location="/x", sha256="0" * 64, duration=1.0, sample_rate=44_100,
                   tags=(Tag("Bass drum", 0.7), Tag("Music", 0.1), Tag("Speech", 0.09)),
                   meta=Metadata.of(description="Long decay", tags=["Drums", "one shot"],
                                    fields={"pack": "notaword"}))
    assert document(clip) == "kick 808 wav long decay drums one shot bass drum music"


# -- BM25 by hand --------------------------------------------------------------------------------------------
# (name, description, user tags, AudioSet tags) and the words each document must have, written out by hand
CORPUS = [
    ("Kick_808_Hard.wav", "", ("drums",), (), "kick 808 hard wav drums"),
    ("kick_soft.wav", "", ("drums",), (), "kick soft wav drums"),
    ("snare_roll.wav", "snare roll with a kick at the end", ("drums",), (),
     "snare roll wav snare roll with a kick at the end drums"),
    ("rain_on_roof.flac", "", (), (Tag("Rain", 0.8), Tag("Music", 0.05)), "rain on roof flac rain"),
    ("HiHat_open.wav", "", ("Drums", "hi hat"), (), "hihat hi hat open wav drums hi hat"),
    ("thunder.ogg", "", ("weather",), (Tag("Thunder", 0.9),), "thunder ogg weather thunder"),
    ("birds.wav", "dawn chorus", (), (), "birds wav dawn chorus"),
    ("kick_kick_kick.wav", "", (), (), "kick kick kick wav"),
]


def fts5_idf(n_docs: int, n: int) -> float:
    return max(np.log((n_docs - n + 0.5) / (n + 0.5)), 1e-6)


def qdrant_idf(n_docs: int, n: int) -> float:
    return np.log(1 + (n_docs - n + 0.5) / (n + 0.5))


def bm25(docs: list[list[str]], query: list[str], idf) -> np.ndarray:
    """(N,) BM25 of every document: sum over the query's words of idf * tf (k1 + 1) / (tf + k1 (1 - b + b
    |D| / avgdl))."""
    lengths = np.array([len(d) for d in docs], dtype=float)
    score = np.zeros(len(docs))
    for term in query:
        tf = np.array([d.count(term) for d in docs], dtype=float)
        score += idf(len(docs), int((tf > 0).sum())) * tf * (K1 + 1) / (
            tf + K1 * (1 - B + B * lengths / lengths.mean()))
    return score


@pytest.fixture(params=["faiss", "qdrant"])
def corpus_store(request, tmp_path):
    store = open_store(StoreConfig(data_dir=tmp_path / "data", backend=request.param), SPEC)
    xb = unit_vectors(len(CORPUS))
    for i, (name, description, user_tags, tags, _) in enumerate(CORPUS):
        clip = NewClip(name=name, location=f"/lib/{name}", sha256=f"{i:064x}", duration=1.0 + i,
                       sample_rate=44_100, tags=tags, meta=Metadata.of(description=description,
                                                                       tags=user_tags))
        store.add(clip, xb[i], np.zeros(527, np.float32))
    yield store, {"faiss": fts5_idf, "qdrant": qdrant_idf}[request.param]
    store.close()


def test_the_documents_are_the_words_written_by_hand(corpus_store):
    store, _ = corpus_store
    for i, (*_, expected) in enumerate(CORPUS):
        assert document(store.get(i + 1)) == expected


@pytest.mark.parametrize("query", ["kick", "kick hard", "Snare KICK", "wav kick", "thunder", "roof rain",
                                   "open hat", "drums kick", "nothing here"])
def test_keyword_ranking_and_scores_are_bm25_worked_by_hand(corpus_store, query):
    store, idf = corpus_store
    docs = [c[4].split() for c in CORPUS]
    terms = list(dict.fromkeys(query.lower().split()))
    expected = bm25(docs, terms, idf)
    matching = [i for i in range(len(docs)) if any(t in docs[i] for t in terms)]
    order = sorted(matching, key=lambda i: (-expected[i], i))
    hits = store.search_keywords(query, 10)
    assert [h.record.id for h in hits] == [i + 1 for i in order]
    np.testing.assert_allclose([h.score for h in hits], expected[order], rtol=1e-5)
    assert [h.record.id for h in store.search_keywords(query, 2)] == [i + 1 for i in order[:2]]


@pytest.mark.parametrize("flt", [SearchFilter(tags_any=("drums",)), SearchFilter(min_duration=3.5),
                                 SearchFilter(tags_all=("Weather",), max_duration=6.0),
                                 SearchFilter(tag="rain")], ids=["tags_any", "min", "tags_all+max", "tag"])
def test_filters_choose_among_the_matches_without_changing_the_statistics(corpus_store, flt):
    store, idf = corpus_store
    docs = [c[4].split() for c in CORPUS]
    terms = ["kick", "thunder", "rain"]
    expected = bm25(docs, terms, idf)  # over the whole collection
    keep = [i for i in range(len(docs))
            if (flt.min_duration is None or 1.0 + i >= flt.min_duration)
            and (flt.max_duration is None or 1.0 + i <= flt.max_duration)
            and (not flt.tags_any or set(flt.tags_any) & {t.lower() for t in CORPUS[i][2]})
            and set(flt.tags_all) <= {t.lower() for t in CORPUS[i][2]}
            and (flt.tag is None or flt.tag.lower() in {t.label.lower() for t in CORPUS[i][3]})
            and any(t in docs[i] for t in terms)]
    order = sorted(keep, key=lambda i: (-expected[i], i))
    hits = store.search_keywords(" ".join(terms), 10, flt)
    assert [h.record.id for h in hits] == [i + 1 for i in order] and order
    np.testing.assert_allclose([h.score for h in hits], expected[order], rtol=1e-5)


# -- fusion by hand ------------------------------------------------------------------------------------------
def ranking(*ids: int) -> list[Hit]:
    return [Hit(ClipRecord(name=f"c{i}", location="", sha256="", duration=1.0, sample_rate=1, tags=(), id=i),
                1.0 / rank) for rank, i in enumerate(ids, 1)]


def test_reciprocal_rank_fusion_adds_one_over_sixty_plus_rank():
    fused = reciprocal_rank_fusion([ranking(7, 2, 9), ranking(9, 4)], k=10)
    # 9: 1/63 + 1/61; 7: 1/61; 2: 1/62; 4: 1/62 (a tie: the lower id first)
    assert [h.record.id for h in fused] == [9, 7, 2, 4]
    np.testing.assert_allclose([h.score for h in fused], [1 / 63 + 1 / 61, 1 / 61, 1 / 62, 1 / 62])
    assert [h.record.id for h in reciprocal_rank_fusion([ranking(7, 2, 9), ranking(9, 4)], k=2)] == [9, 7]
    assert reciprocal_rank_fusion([[], []], k=5) == []
    # a clip second in both beats one first in only one of them
    assert [h.record.id for h in reciprocal_rank_fusion([ranking(1, 3), ranking(2, 3)], k=1)] == [3]
