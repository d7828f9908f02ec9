"""Exact ties (a copy of a sound in other bytes takes the stored analysis: the same vector) on every store and
every FAISS index kind: the k best are the first k by (-score, id) whatever k is asked, ties at the cut going
to the lower ids; windows and moments by (-score, clip id, window); keyword hits by (-score, id). Scores are
compared as each store reports them."""

import numpy as np
import pytest

from index.faiss.store import FaissStore
from index.faiss.vector_index import IVF_MIN_TRAIN
from index.store.metadata import Metadata
from index.store.records import MomentQuery, NewClip, SearchFilter, Tag, Timeline, Windows
from index.stores import StoreConfig
from tests.index.reference_store import open_backend
from tests.index.store_fixtures import DIM, SPEC, unit_vectors

KINDS = ("flat", "flat16", "hnsw", "ivf16", "ivf8")
STORES = (*(f"faiss-{kind}" for kind in KINDS), "qdrant", "reference")
# rows of the planted vectors: TOP is the query itself, TIED one vector that five clips share, scored second;
# spread among the others and between ids the index keeps in another order
TOP, TIED = 7, (3, 11, 20, 33, 50)


def clip(i: int) -> NewClip:
    """Clip i: 1 + i % 3 s long (a filter on duration keeps some of the tied clips), no words but its name."""
    return NewClip(name=f"c{i}.wav", location=f"/a/c{i}.wav", sha256=f"{i + 1:064x}", duration=1.0 + i % 3,
                   sample_rate=32_000, tags=(Tag("Speech", 0.5),))


def one_window(v: np.ndarray, duration: float) -> Timeline:
    return Timeline(Windows(np.zeros(1), np.array([duration]), v[None].astype(np.float16),
                            np.zeros((1, 527), np.float32)), np.zeros(8, np.uint8))


def planted(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, D) unit vectors with the ties planted, and the query."""
    xb = unit_vectors(n)
    q = unit_vectors(1, seed=7)[0]
    shared = q + 0.4 * unit_vectors(1, seed=8)[0]
    xb[TOP] = q
    xb[list(TIED)] = shared / np.linalg.norm(shared)  # q . shared ~ 0.93: above every random vector
    return xb, q


@pytest.fixture(params=STORES)
def tied(request, tmp_path):
    """(store, query, the ids of TOP and TIED) of a store holding the planted vectors, each clip with one
    window of its vector; an IVF kind over enough clips to be one, reopened to be built as it."""
    name = request.param
    n = IVF_MIN_TRAIN + 76 if name.startswith("faiss-ivf") else 60
    xb, q = planted(n)
    clips = [clip(i) for i in range(n)]
    timelines = [one_window(xb[i], clips[i].duration) for i in range(n)]
    if name.startswith("faiss-"):
        kind = name.removeprefix("faiss-")
        with FaissStore(tmp_path / "data", SPEC, kind=kind) as store:
            ids = [a.record.id for a in store.add_many(clips, xb, np.zeros((n, 527), np.float32), timelines)]
        store = FaissStore(tmp_path / "data", SPEC, kind=kind)
        assert store._clips.index.kind == kind
    else:
        store = open_backend(StoreConfig(data_dir=tmp_path / "data", backend=name), SPEC)
        ids = [a.record.id for a in store.add_many(clips, xb, np.zeros((n, 527), np.float32), timelines)]
    yield store, q, ids[TOP], sorted(ids[i] for i in TIED)
    store.close()


def test_the_k_best_are_the_first_k_by_score_then_id_whatever_k(tied):
    store, q, top, group = tied
    xq = np.stack([q, unit_vectors(1, seed=9)[0]])
    deepest = store.search(xq, len(group) + 2)
    full = deepest[0]
    assert [h.record.id for h in full[:len(group) + 1]] == [top, *group]
    scores = [h.score for h in full[1:len(group) + 1]]
    assert len(set(scores)) == 1 and full[-1].score < scores[0]  # an exact tie, as the store reports it
    for k in range(1, len(group) + 3):
        hits = store.search(xq, k)
        assert [h.record.id for h in hits[0]] == [h.record.id for h in full[:k]], k
        assert [h.score for h in hits[0]] == [h.score for h in full[:k]]
        assert [h.record.id for h in hits[1]] == [h.record.id for h in deepest[1][:k]]  # the other query
        assert [h.record.id for h in store.search(q[None], k)[0]] == [h.record.id for h in full[:k]]


def test_a_filter_keeps_the_lower_ids_of_a_tie_at_its_cut(tied):
    store, q, top, group = tied
    flt = SearchFilter(max_duration=2.0)  # rows i with i % 3 != 2
    kept = [g for g in group if store.get(g).duration <= 2.0]
    assert 1 < len(kept) < len(group)
    for k in range(1, len(kept) + 1):
        assert [h.record.id for h in store.search(q[None], k, flt)[0]] == [top, *kept][:k]


def test_windows_and_moments_tie_by_clip_then_window(tied):
    store, q, top, group = tied
    for k in range(1, len(group) + 2):
        assert [h.clip_id for h in store.search_windows(q[None], k)[0]] == [top, *group][:k]
        assert [h.record.id for h in store.search_moments(q, k, moments=MomentQuery(per_clip=1))] == \
            [top, *group][:k]


@pytest.mark.parametrize("name", ["faiss-flat", "faiss-flat16", "faiss-hnsw", "qdrant", "reference"])
def test_a_tie_deeper_than_one_more_look_is_followed_to_its_end(tmp_path, name):
    """40 of 60 clips share the query's vector: a cut anywhere in them is asked deeper more than once."""
    xb = unit_vectors(60)
    shared = [r for r in range(1, 60) if r % 3 != 1]  # 39 rows, and row 0
    xb[shared] = xb[0]
    clips = [clip(i) for i in range(60)]
    if name.startswith("faiss-"):
        store = FaissStore(tmp_path / "data", SPEC, kind=name.removeprefix("faiss-"))
    else:
        store = open_backend(StoreConfig(data_dir=tmp_path / "data", backend=name), SPEC)
    with store:
        ids = [a.record.id for a in store.add_many(clips, xb, np.zeros((60, 527), np.float32))]
        group = sorted(ids[i] for i in [0, *shared])
        assert len(group) == 40
        for k in (1, 2, 3, 13, 39, 40, 41):
            hits = store.search(xb[:1], k)[0]
            assert [h.record.id for h in hits[:len(group)]] == group[:k], k
            assert len({h.score for h in hits[:len(group)]}) == 1


# -- keyword search: ties at the cut ----------------------------------------------------------------------
TAKES = ["take_alpha.wav", "take_bravo.wav", "take_delta.wav", "take_echo.wav", "take_golf.wav",
         "take_kilo.wav", "take_take.wav"]  # words whose stems are themselves: the first six tie for `take`


@pytest.mark.parametrize("backend", ["faiss", "qdrant", "reference"])
def test_keyword_hits_tied_at_the_cut_go_to_the_lower_ids(tmp_path, backend):
    config = StoreConfig(data_dir=tmp_path / "data", backend=backend)
    clips = [NewClip(name=n, location=f"/t/{n}", sha256=f"{i + 1:064x}", duration=1.0 + i % 2,
                     sample_rate=32_000, tags=(), meta=Metadata()) for i, n in enumerate(TAKES)]
    with open_backend(config, SPEC) as store:
        ids = [a.record.id for a in store.add_many(clips, unit_vectors(len(clips), DIM),
                                                   np.zeros((len(clips), 527), np.float32))]
    with open_backend(config, SPEC) as store:  # reopened: embedded Qdrant reads its points in another order
        full = store.search_keywords("take", len(TAKES))
        assert [h.record.id for h in full] == [ids[-1], *ids[:-1]]  # take twice, then the tie by id
        assert len({h.score for h in full[1:]}) == 1
        for k in range(1, len(TAKES) + 1):
            assert [h.record.id for h in store.search_keywords("take", k)] == [h.record.id for h in full[:k]]
        flt = SearchFilter(max_duration=1.0)  # the even rows
        for k in range(1, 5):
            assert [h.record.id for h in store.search_keywords("take", k, flt)] == [ids[-1], *ids[:-1:2]][:k]
