"""Keyword search: the words of names and texts with their stems, BM25 on every store (FAISS, Qdrant, the
reference) against the formula worked out by hand with numpy over hand-written documents, query words
stemmed and prefixes expanded by brute force, and reciprocal-rank fusion against sums done by hand."""

import unicodedata
from collections import Counter

import numpy as np
import pytest
import snowballstemmer

from index.fusion import reciprocal_rank_fusion
from index.store import words as keyword
from index.store.metadata import Metadata
from index.store.records import ClipRecord, Hit, NewClip, SearchFilter, Tag
from index.store.words import document, parse_query, query_words, words
from index.stores import StoreConfig
from tests.index.reference_store import open_backend
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
    ("बारिश की आवाज़", ["बारिश", "की", "आवाज़"]),  # vowel signs and marks belong to their word
    ("كَتَبَ", ["كَتَبَ"]),
    ("Ｋｉｃｋ", ["kick"]),  # full-width letters, NFKC
    ("___ ... --", []),
])
def test_words_split_punctuation_underscores_digits_and_camel_case(text, expected):
    assert words(text) == expected


def test_query_words_count_a_repeated_word_once():
    assert query_words("kick KICK Kick_hard") == ["kick", "hard"]


def test_a_clips_document_holds_name_description_user_tags_fields_and_probable_audioset_tags():
    clip = NewClip(name="Kick_808.wav", location="/x", sha256="0" * 64, duration=1.0, sample_rate=44_100,
                   tags=(Tag("Bass drum", 0.7), Tag("Music", 0.1), Tag("Speech", 0.09)),
                   meta=Metadata.of(description="Long decay", tags=["Drums", "one shot"],
                                    fields={"pack": "Vol2", "title": "Hard Kicks"}))
    assert document(clip) == ("kick 808 wav long decay drums drum one shot vol 2 hard kicks kick "
                              "bass drum music")


@pytest.mark.parametrize("query, terms, prefixes", [
    ("barking doors", ("barking", "bark", "doors", "door"), ()),
    ("bark door", ("bark", "door"), ()),
    ("Dogs dog", ("dogs", "dog"), ()),
    ("foot*", (), ("foot",)),
    ("Footsteps* gravel", ("gravel",), ("footsteps",)),  # a prefix is not stemmed
    ("foot *", ("foot",), ()),  # the * must follow the word
    ("HiHa*", ("hi",), ("hiha", "ha")),  # the words ending at the *
    ("kick808*", ("kick",), ("808",)),
    ("foot* foot*", (), ("foot",)),
    ("Café", ("café", "cafe"), ()),  # as written, then without its accents
    ("cafés", ("cafés", "café", "cafes", "cafe"), ()),  # and their stems
    ("Straße", ("straße",), ()),  # ß does not decompose
    ("ガラス", ("ガラス",), ()),  # kana's voicing mark makes another letter: glass is not crow (カラス)
    ("كَتَبَ", ("كَتَبَ", "كتب"), ()),  # Arabic's vowel marks are taken off
    ("שָׁלוֹם", ("שָׁלוֹם", "שלום"), ()),  # and Hebrew's
    ("café*", (), ("café", "cafe")),  # a prefix without its accents too
    ("*", (), ()),
])
def test_a_query_is_its_words_with_their_stems_and_its_prefixes(query, terms, prefixes):
    assert parse_query(query) == keyword.Query(terms, prefixes)


def test_a_prefix_expands_to_the_most_common_words_starting_with_it(monkeypatch):
    counts = {"footstep": 3, "footsteps": 2, "football": 2, "foo": 9, "bar": 1, "footwear": 0}
    assert keyword.expand("foot", counts) == ["footstep", "football", "footsteps"]
    monkeypatch.setattr(keyword, "MAX_PREFIX_WORDS", 2)
    assert keyword.expand("foot", counts) == ["footstep", "football"]


# -- BM25 by hand --------------------------------------------------------------------------------------------
# (name, description, user tags, AudioSet tags) and the words each document must have, written out by hand
CORPUS = [
    ("Kick_808_Hard.wav", "", ("drums",), (), "kick 808 hard wav drums drum"),
    ("kick_soft.wav", "", ("drums",), (), "kick soft wav drums drum"),
    ("snare_roll.wav", "snare roll with a kick at the end", ("drums",), (),
     "snare roll wav snare roll with a kick at the end drums drum"),
    ("rain_on_roof.flac", "", (), (Tag("Rain", 0.8), Tag("Music", 0.05)), "rain on roof flac rain"),
    ("HiHat_open.wav", "", ("Drums", "hi hat"), (), "hihat hi hat open wav drums drum hi hat"),
    ("thunder.ogg", "", ("weather",), (Tag("Thunder", 0.9),), "thunder ogg weather thunder"),
    ("birds.wav", "dawn chorus", (), (), "birds bird wav dawn chorus"),
    ("kick_kick_kick.wav", "", (), (), "kick kick kick wav"),
    ("dog_bark.wav", "", ("dog",), (), "dog bark wav dog"),
    ("Dogs_barking_loud.wav", "two dogs barking", ("dog", "loud"), (Tag("Dog", 0.6),),
     "dogs dog barking bark loud wav two dogs dog barking bark dog loud dog"),
    ("door.wav", "", ("house",), (), "door wav house hous"),
    ("doors_slamming.wav", "", ("house", "loud"), (), "doors door slamming slam wav house hous loud"),
    ("footsteps_gravel.wav", "", ("outdoor",), (), "footsteps footstep gravel wav outdoor"),
    ("footstep.wav", "", ("house",), (), "footstep wav house hous"),
    ("football_crowd.wav", "cheering fans", ("outdoor", "loud"), (),
     "football footbal crowd wav cheering cheer fans fan outdoor loud"),
    ("FootSwitch01.wav", "", (), (), "footswitch foot switch 01 wav"),
    ("Café_terrace.wav", "", (), (), "café cafe terrace terrac wav"),
    ("cafe_crowd.wav", "", ("outdoor",), (), "cafe crowd wav outdoor"),
    ("Straße.wav", "", (), (), "straße wav"),
]


def fts5_idf(n_docs: int, n: int) -> float:
    return max(np.log((n_docs - n + 0.5) / (n + 0.5)), 1e-6)


def qdrant_idf(n_docs: int, n: int) -> float:
    return np.log(1 + (n_docs - n + 0.5) / (n + 0.5))


def oracle_terms(query: str, docs: list[list[str]], limit: int = keyword.MAX_PREFIX_WORDS) -> list[str]:
    """A query's terms worked out apart from index/store/words.py (queries here are lower case words, a
    prefix ending in *): each word and its Snowball stem, then the same of it without its combining marks;
    each prefix as the `limit` words of the documents
    starting with it held by the most documents, ties alphabetical."""
    stem = snowballstemmer.stemmer("english").stemWord
    held = Counter(w for d in docs for w in set(d))
    terms: list[str] = []
    for token in query.lower().split():
        if token.endswith("*"):
            found = [w for w in held if w.startswith(token[:-1])]
            terms += sorted(found, key=lambda w: (-held[w], w))[:limit]
        else:
            bare = unicodedata.normalize("NFC", "".join(
                c for c in unicodedata.normalize("NFD", token) if not unicodedata.combining(c)))
            terms += [token, stem(token), bare, stem(bare)]
    return list(dict.fromkeys(terms))


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


@pytest.fixture(params=["faiss", "qdrant", "reference"])
def corpus_store(request, tmp_path):
    store = open_backend(StoreConfig(data_dir=tmp_path / "data", backend=request.param), SPEC)
    xb = unit_vectors(len(CORPUS))
    for i, (name, description, user_tags, tags, _) in enumerate(CORPUS):
        clip = NewClip(name=name, location=f"/lib/{name}", sha256=f"{i:064x}", duration=1.0 + i,
                       sample_rate=44_100, tags=tags, meta=Metadata.of(description=description,
                                                                       tags=user_tags))
        store.add(clip, xb[i], np.zeros(527, np.float32))
    yield store, {"faiss": fts5_idf, "qdrant": qdrant_idf, "reference": fts5_idf}[request.param]
    store.close()


def test_the_documents_are_the_words_written_by_hand(corpus_store):
    store, _ = corpus_store
    for i, (*_, expected) in enumerate(CORPUS):
        assert document(store.get(i + 1)) == expected


def expect(store, idf, query: str, flt: SearchFilter | None = None, keep=None) -> None:
    """The store's hits for `query` are the oracle's: the clips holding a term (those `keep` says, if
    given), by BM25 over the whole collection, ties by id; scores to 1e-5."""
    docs = [c[4].split() for c in CORPUS]
    terms = oracle_terms(query, docs)
    expected = bm25(docs, terms, idf)
    matching = [i for i in range(len(docs)) if any(t in docs[i] for t in terms)
                and (keep is None or keep(i))]
    order = sorted(matching, key=lambda i: (-expected[i], i))
    hits = store.search_keywords(query, len(CORPUS), flt)
    assert [h.record.id for h in hits] == [i + 1 for i in order], query
    np.testing.assert_allclose([h.score for h in hits], expected[order], rtol=1e-5)
    assert [h.record.id for h in store.search_keywords(query, 2, flt)] == [i + 1 for i in order[:2]]


@pytest.mark.parametrize("query", ["kick", "kick hard", "Snare KICK", "wav kick", "thunder", "roof rain",
                                   "open hat", "drums kick", "nothing here"])
def test_keyword_ranking_and_scores_are_bm25_worked_by_hand(corpus_store, query):
    store, idf = corpus_store
    docs = [c[4].split() for c in CORPUS]
    terms = oracle_terms(query, docs)
    expected = bm25(docs, terms, idf)
    matching = [i for i in range(len(docs)) if any(t in docs[i] for t in terms)]
    order = sorted(matching, key=lambda i: (-expected[i], i))
    hits = store.search_keywords(query, len(CORPUS))
    assert [h.record.id for h in hits] == [i + 1 for i in order]
    np.testing.assert_allclose([h.score for h in hits], expected[order], rtol=1e-5)
    assert [h.record.id for h in store.search_keywords(query, 2)] == [i + 1 for i in order[:2]]


@pytest.mark.parametrize("flt", [SearchFilter(tags_any=("drums",)), SearchFilter(min_duration=3.5),
                                 SearchFilter(tags_all=("Weather",), max_duration=6.0),
                                 SearchFilter(tag="rain"), SearchFilter(tags_none=("Drums", "weather")),
                                 SearchFilter(tags_none=("drums",), tags_any=("weather", "hi hat"))],
                         ids=["tags_any", "min", "tags_all+max", "tag", "tags_none", "tags_none+any"])
def test_filters_choose_among_the_matches_without_changing_the_statistics(corpus_store, flt):
    store, idf = corpus_store
    docs = [c[4].split() for c in CORPUS]
    terms = oracle_terms("kick thunder rain", docs)
    expected = bm25(docs, terms, idf)  # over the whole collection
    keep = [i for i in range(len(docs))
            if (flt.min_duration is None or 1.0 + i >= flt.min_duration)
            and (flt.max_duration is None or 1.0 + i <= flt.max_duration)
            and (not flt.tags_any or set(flt.tags_any) & {t.lower() for t in CORPUS[i][2]})
            and set(flt.tags_all) <= {t.lower() for t in CORPUS[i][2]}
            and not set(flt.tags_none) & {t.lower() for t in CORPUS[i][2]}
            and (flt.tag is None or flt.tag.lower() in {t.label.lower() for t in CORPUS[i][3]})
            and any(t in docs[i] for t in terms)]
    order = sorted(keep, key=lambda i: (-expected[i], i))
    hits = store.search_keywords("kick thunder rain", len(CORPUS), flt)
    assert [h.record.id for h in hits] == [i + 1 for i in order] and order
    np.testing.assert_allclose([h.score for h in hits], expected[order], rtol=1e-5)


# -- stems and prefixes against the oracle -------------------------------------------------------------------
@pytest.mark.parametrize("query", ["barking", "bark", "dogs", "doors", "door slam", "footsteps", "cheering",
                                   "foot*", "footstep*", "dog*", "foot* gravel", "d* loud", "hous*", "hous",
                                   "birds drums*", "w*", "zzz*", "cafe", "café", "cafés", "caf*", "straße"])
def test_stems_and_prefixes_are_bm25_over_the_prepared_words(corpus_store, query):
    expect(*corpus_store, query)


def test_a_prefix_stands_for_at_most_its_most_common_words(corpus_store, monkeypatch):
    monkeypatch.setattr(keyword, "MAX_PREFIX_WORDS", 2)
    store, idf = corpus_store
    docs = [c[4].split() for c in CORPUS]
    assert oracle_terms("d*", docs, limit=2) == ["drum", "drums"]  # in 4 documents each
    docs_terms = oracle_terms("d*", docs, limit=2)
    expected = bm25(docs, docs_terms, idf)
    order = sorted((i for i in range(len(docs)) if set(docs_terms) & set(docs[i])),
                   key=lambda i: (-expected[i], i))
    assert [h.record.id for h in store.search_keywords("d*", 20)] == [i + 1 for i in order]


@pytest.mark.parametrize("flt", [SearchFilter(tags_none=("loud",)), SearchFilter(tags_none=("House", "dog")),
                                 SearchFilter(tags_none=("loud",), tags_any=("dog", "house"))],
                         ids=["one", "two", "with tags_any"])
def test_tags_none_leaves_out_the_clips_carrying_any_of_them(corpus_store, flt):
    store, idf = corpus_store
    for query in ("barking doors", "foot*", "wav"):
        expect(store, idf, query, flt, keep=lambda i: (
            not set(flt.tags_none) & {t.lower() for t in CORPUS[i][2]}
            and (not flt.tags_any or bool(set(flt.tags_any) & {t.lower() for t in CORPUS[i][2]}))))


def names(hits: list[Hit]) -> list[str]:
    return [h.record.name for h in hits]


def test_what_people_type_finds_what_they_mean(corpus_store):
    store, _ = corpus_store
    assert "dog_bark.wav" in names(store.search_keywords("barking", 20))
    assert names(store.search_keywords("barking", 20))[0] == "Dogs_barking_loud.wav"  # the word itself ranks
    assert "door.wav" in names(store.search_keywords("doors", 20))
    assert names(store.search_keywords("doors", 20))[0] == "doors_slamming.wav"
    assert set(names(store.search_keywords("foot*", 20))) == {
        "footsteps_gravel.wav", "footstep.wav", "football_crowd.wav", "FootSwitch01.wav"}
    assert set(names(store.search_keywords("footstep*", 20))) == {"footsteps_gravel.wav", "footstep.wav"}
    assert store.search_keywords("foot", 20) and store.search_keywords("footb*", 20)[0].record.name == \
        "football_crowd.wav"
    assert store.search_keywords("zzz*", 5) == [] and store.search_keywords("*", 5) == []
    assert set(names(store.search_keywords("cafe", 20))) == {"Café_terrace.wav", "cafe_crowd.wav"}
    assert names(store.search_keywords("Café", 20))[0] == "Café_terrace.wav"  # the word as typed ranks first
    assert names(store.search_keywords("strasse", 20)) == []  # ß is a letter of its own
    assert set(names(store.search_keywords("café*", 20))) == {"Café_terrace.wav", "cafe_crowd.wav"}
    found = names(store.search_keywords("barking doors", 20, SearchFilter(tags_none=("LOUD",))))
    assert "dog_bark.wav" in found and "door.wav" in found
    assert "Dogs_barking_loud.wav" not in found and "doors_slamming.wav" not in found


# -- words with combining marks, whole on every store --------------------------------------------------------
# (name, the words its document must have, written out by hand): Hindi's vowel signs and a nukta (आवाज़ typed
# with its precomposed ज़, which NFKC writes as ज and the nukta), Arabic's vowel marks (the word again without)
AAVAAZ = "\u0906\u0935\u093e\u091c\u093c"  # आवाज़, sound: its nukta a mark of its own
MARKED = [
    ("बारिश_शहर.wav", "बारिश शहर wav"),  # rain, city
    ("बार.wav", "बार wav"),  # time (a word of its own, not rain's first letters)
    ("\u0906\u0935\u093e\u095b_बारिश.wav", f"{AAVAAZ} बारिश wav"),
    ("كَتَبَ.wav", "كَتَبَ كتب wav"),  # he wrote
    ("كِتَاب.wav", "كِتَاب كتاب wav"),  # book
    ("كتب_قديم.wav", "كتب قديم wav"),  # books, old
    ("rain.wav", "rain wav"),
]
# each query and its terms, worked out by hand: Arabic's vowel marks taken off too, Hindi's kept; a prefix's
# words by the documents holding them
MARKED_QUERIES = [("बारिश", ["बारिश"]), ("बार", ["बार"]), ("बार*", ["बारिश", "बार"]), (AAVAAZ, [AAVAAZ]),
                  ("كتب", ["كتب"]), ("كَتَبَ", ["كَتَبَ", "كتب"]), ("كِتَاب", ["كِتَاب", "كتاب"]),
                  ("كتاب", ["كتاب"]), ("كت*", ["كتب", "كتاب"]), ("wav", ["wav"])]


@pytest.fixture(params=[
    "faiss", "qdrant", "reference"])
def marked_store(request, tmp_path):
    config = StoreConfig(data_dir=tmp_path / "data", backend=request.param)
    with open_backend(config, SPEC) as store:
        for i, (name, _) in enumerate(MARKED):
            clip = NewClip(name=name, location=f"/lib/{name}", sha256=f"{i:064x}", duration=1.0,
                           sample_rate=44_100, tags=())
            store.add(clip, unit_vectors(len(MARKED))[i], np.zeros(527, np.float32))
    with open_backend(config, SPEC) as store:  # reopened: as a service finds it
        yield store, {"faiss": fts5_idf, "qdrant": qdrant_idf, "reference": fts5_idf}[request.param]


def test_words_with_combining_marks_are_whole_words_with_the_same_clips_and_bm25_on_every_store(marked_store):
    """बारिश (rain) is one word, not ब र श: बार (time) finds बार.wav alone, and each store ranks the clips
    holding the query's terms by BM25 over the whole words (its own IDF), ties by id."""
    store, idf = marked_store
    docs = [doc.split() for _, doc in MARKED]
    assert [document(store.get(i + 1)).split() for i in range(len(MARKED))] == docs
    for query, terms in MARKED_QUERIES:
        expected = bm25(docs, terms, idf)
        matching = [i for i in range(len(docs)) if set(terms) & set(docs[i])]
        order = sorted(matching, key=lambda i: (-expected[i], i))
        hits = store.search_keywords(query, len(MARKED))
        assert [h.record.id for h in hits] == [i + 1 for i in order], query
        np.testing.assert_allclose([h.score for h in hits], expected[order], rtol=1e-5, err_msg=query)
    assert [h.record.name for h in store.search_keywords("बार", 5)] == ["बार.wav"]


MARKED_WORDS = ["बारिश", "बार", "बारि", AAVAAZ, "आवाज", "كَتَبَ", "كَتَب", "كتب", "كِتَاب", "كتاب",
                "ガラス", "カラス", "café", "cafe", "straße", "kick", "808", "\uff58"]


def test_a_word_is_one_token_to_qdrants_word_tokenizer_and_distinct_words_distinct_ones():
    """What the text index holds of a word (payload.indexed) is a single token to the embedded engine's word
    tokenizer (the regex by which it mirrors a server's), letters and digits alone (a server's
    char::is_alphanumeric) as lower case leaves them; words that differ (by a mark alone) stay apart."""
    from qdrant_client.local.payload_filters import unindexed_text_tokens

    from index.qdrant.payload import indexed

    for word in MARKED_WORDS:
        token = indexed(word)
        assert unindexed_text_tokens(token) == [token], word
        assert all(unicodedata.category(c)[0] in "LN" for c in token) and token.lower() == token, word
    assert len({indexed(w) for w in MARKED_WORDS}) == len(set(MARKED_WORDS))
    assert indexed("kick") == "kick" and indexed("café") == "café"  # most words as they are


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
