"""Composite queries through the Collection on every backend: the stored vectors of the named clips, the
texts' vectors, combined as numpy says, and the named clips left out of the results (no models needed)."""

import numpy as np
import pytest

from index.collection import Collection
from index.store.records import SearchFilter
from index.stores import StoreConfig, open_store
from retrieval.composite import CompositeQuery, Weights
from retrieval.errors import ClipNotFound, ZeroQuery
from tests.index.store_fixtures import DIM, SPEC, fill, unit_vectors

N = 30
TEXTS = {"rain": 0, "thunder": 1}  # planted text vectors: rows of unit_vectors(2, seed=9)


class PlantedText:
    """The text side of a retriever, for the texts in TEXTS only; counts its calls."""

    def __init__(self):
        self.xt = unit_vectors(len(TEXTS), seed=9)  # (2, D)
        self.calls: list[list[str]] = []

    def encode_text(self, queries: list[str]) -> np.ndarray:
        self.calls.append(list(queries))
        return self.xt[[TEXTS[q] for q in queries]]


@pytest.fixture(params=["faiss", "qdrant"])
def planted(request, tmp_path):
    """(collection, xb, {store id: row of xb}, its text side)."""
    store = open_store(StoreConfig(data_dir=tmp_path / "data", backend=request.param), SPEC)
    xb = unit_vectors(N, seed=4)
    rows = fill(store, xb)
    text = PlantedText()
    collection = Collection(store, text, data_dir=tmp_path / "data")  # type: ignore[arg-type]
    yield collection, xb, rows, text
    collection.close()


def oracle(xb, rows, *, q=None, like=(), unlike=(), qn=None, w=Weights()):
    """The composite vector straight from the formula, over the planted vectors."""
    row = {i: xb[r] for i, r in rows.items()}
    x = np.zeros(DIM)
    if q is not None:
        x += w.query * q
    if like:
        x += w.like * np.mean([row[i] for i in like], axis=0)
    if unlike:
        x -= w.unlike * np.mean([row[i] for i in unlike], axis=0)
    if qn is not None:
        x -= w.not_ * qn
    return x / np.linalg.norm(x)


def ranking(xb, rows, xq, *, exclude=(), keep=lambda i: True):
    scores = {i: float(xb[r] @ xq) for i, r in rows.items() if i not in exclude and keep(i)}
    return sorted(scores, key=scores.get, reverse=True), scores


def test_query_vector_and_ranking_equal_numpy(planted):
    collection, xb, rows, text = planted
    ids = list(rows)
    like, unlike = (ids[3], ids[11]), (ids[20],)
    w = Weights(query=0.7, like=1.3, unlike=2.0, not_=0.25)
    query = CompositeQuery(text="rain", like=like, unlike=unlike, not_="thunder", weights=w)
    xq = collection.query_vector(query)
    want = oracle(xb, rows, q=text.xt[0], like=like, unlike=unlike, qn=text.xt[1], w=w)
    np.testing.assert_allclose(xq, want[None], atol=1e-5)
    assert text.calls == [["rain", "thunder"]]  # both texts in one batch
    hits = collection.search_vector(xq, 10, exclude=query.judged)
    order, scores = ranking(xb, rows, want, exclude=query.judged)
    assert [h.record.id for h in hits] == order[:10]
    np.testing.assert_allclose([h.score for h in hits], [scores[i] for i in order[:10]], atol=1e-5)


def test_liked_and_unliked_clips_are_left_out_even_when_they_rank_first(planted):
    collection, xb, rows, _ = planted
    ids = list(rows)
    query = CompositeQuery(like=(ids[0],), unlike=(ids[2],))
    xq = collection.query_vector(query)
    assert collection.search_vector(xq, 1)[0].record.id == ids[0]  # without exclusion: the liked one
    hits = collection.search_vector(xq, N, exclude=query.judged)
    assert len(hits) == N - 2 and not {h.record.id for h in hits} & query.judged
    assert [h.record.id for h in hits] == ranking(xb, rows, oracle(xb, rows, like=query.like,
                                                                   unlike=query.unlike),
                                                  exclude=query.judged)[0]


def test_exclusion_inside_a_filter(planted):
    collection, xb, rows, _ = planted
    ids = list(rows)
    flt = SearchFilter(min_duration=3.0)  # clip i lasts i % 7 s
    kept = {i for i in ids if collection.get(i).duration >= 3.0}
    query = CompositeQuery(text="rain", like=(ids[4],))
    hits = collection.search_vector(collection.query_vector(query), 5, flt, exclude=query.judged)
    order = ranking(xb, rows, oracle(xb, rows, q=PlantedText().xt[0], like=query.like),
                    exclude=query.judged, keep=kept.__contains__)[0]
    assert [h.record.id for h in hits] == order[:5]


def test_unknown_ids_are_named(planted):
    collection, _, rows, text = planted
    known = next(iter(rows))
    with pytest.raises(ClipNotFound, match=r"no clips with ids 998, 999$"):
        collection.query_vector(CompositeQuery(text="rain", like=(known, 999), unlike=(998,)))
    assert text.calls == []  # refused before any text is encoded


def test_parts_that_cancel_out_raise(planted):
    collection, _, _, _ = planted
    with pytest.raises(ZeroQuery):
        collection.query_vector(CompositeQuery(text="rain", not_="rain", weights=Weights(not_=1.0)))


def test_an_example_joins_the_liked_clips(planted):
    collection, xb, rows, text = planted
    example = unit_vectors(1, seed=21)[0]
    got = collection.query_vector(CompositeQuery(text="rain"), example=example)
    np.testing.assert_allclose(got[0], (text.xt[0] + example) / np.linalg.norm(text.xt[0] + example),
                               atol=1e-6)
    only = collection.query_vector(CompositeQuery(), example=example)
    np.testing.assert_allclose(only[0], example, atol=1e-6)
    assert text.calls == [["rain"]]  # no text, no encoder call


def test_a_search_its_mode_cannot_answer_is_refused_in_every_mode(planted):
    """The library refuses what the service answers 422 for, the same way in every mode: a negative k, an
    unknown mode, moments or clip shaping by keyword, a clip both liked and unliked; numpy integers and a
    k beyond any collection are taken."""
    from index.store.records import MomentQuery

    c, *_ = planted
    rain = CompositeQuery(text="rain")
    for mode in ("vector", "keyword", "hybrid"):
        with pytest.raises(ValueError, match="k must be >= 0"):
            c.search(rain, -1, mode=mode)
        assert len(c.search(rain, np.int64(2), mode=mode)) <= 2
        c.search(rain, 2**63, mode=mode)  # all of them, no overflow
    assert len(c.search(rain, np.int64(2))) == 2 and len(c.search_text("rain", np.int32(3))) == 3
    with pytest.raises(TypeError):
        c.search(rain, 2.0)
    with pytest.raises(ValueError, match="none of vector, keyword, hybrid"):
        c.search(rain, 5, mode="fuzzy")
    for mode in ("keyword", "hybrid"):
        with pytest.raises(ValueError, match="moments are found by the query's vector"):
            c.search(rain, 5, mode=mode, moments=MomentQuery())
    with pytest.raises(ValueError, match="shape the query's vector"):
        c.search(CompositeQuery(text="rain", like=(1,)), 5, mode="keyword")
    with pytest.raises(ValueError, match="needs a word"):
        c.search(CompositeQuery(text="?!"), 5, mode="keyword")
    with pytest.raises(ValueError, match=r"clips \[1\] are in both"):
        CompositeQuery(like=(1, 2), unlike=(1,))
    with pytest.raises(TypeError, match="clip ids"):
        CompositeQuery(like="12")
    assert CompositeQuery(like=[np.int64(3)]).like == (3,)


def test_a_filter_takes_lists_and_mappings_and_refuses_one_string():
    assert SearchFilter(fields={"pack": "Vol 1", "bpm": "120"}).fields == (("bpm", "120"), ("pack", "Vol 1"))
    assert SearchFilter(tags_any=["Kick"]).tags_any == ("kick",)
    with pytest.raises(TypeError, match="not one string"):
        SearchFilter(tags_any="kick")
    with pytest.raises(TypeError, match="pairs of strings"):
        SearchFilter(fields=("ab",))
    with pytest.raises(ValueError, match="not an identifier"):
        SearchFilter(fields={"Sample Rate": "1"})
