"""The clips' index as ivf16 or ivf8: a search scanning every list is numpy brute force (ivf8's 8-bit scores
rescored by the stored vectors), filters hold, fewer lists keep the planted nearest neighbours, and
`retrieval check` compares and rebuilds such a cache like the others."""

import numpy as np
import pytest

from index.backups.check import check_store
from index.faiss import vector_index
from index.faiss.store import FaissStore
from index.layout import FAISS_DIR
from index.store.records import NewClip, SearchFilter, Tag
from index.stores import StoreConfig
from retrieval.model_spec import ModelSpec

D = 32
N = 3000
SPEC = ModelSpec(passt_weights="random", text_model="test", dim=D, head="zero-shot", lam=0.0)


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clip(i: int) -> NewClip:
    return NewClip(name=f"c{i}.wav", location=f"/a/c{i}.wav", sha256=f"{i:064x}", duration=1.0 + i % 10,
                   sample_rate=32000, tags=(Tag("Speech", 0.5),))


def filled(path, kind: str, nprobe: int) -> tuple[FaissStore, np.ndarray]:
    rng = np.random.default_rng(0)
    xb = unit(rng.standard_normal((N, D)))
    with FaissStore(path, SPEC, kind=kind) as store:
        store.add_many([clip(i) for i in range(N)], xb, np.zeros((N, 527), np.float32))
    return FaissStore(path, SPEC, kind=kind, nprobe=nprobe), xb  # reopened: built as the kind asked


@pytest.mark.parametrize("kind", ["ivf16", "ivf8"])
def test_every_list_scanned_is_brute_force_and_filters_hold(tmp_path, kind):
    store, xb = filled(tmp_path, kind, nprobe=10_000)
    with store:
        assert store._clips.index.kind == kind
        stored = xb.astype(np.float16).astype(np.float32) if kind == "ivf16" else xb  # what is scored
        xq = unit(np.random.default_rng(1).standard_normal((5, D)))
        for q, hits in zip(xq, store.search(xq, 10), strict=True):
            want = np.argsort(-(stored @ q), kind="stable")[:10] + 1
            assert [h.record.id for h in hits] == want.tolist()
            np.testing.assert_allclose([h.score for h in hits], (stored @ q)[want - 1], atol=1e-5)
        short = SearchFilter(max_duration=3.0)
        for hits in store.search(xq, 10, short):
            assert hits and all(h.record.duration <= 3.0 for h in hits)


@pytest.mark.parametrize("kind", ["ivf16", "ivf8"])
def test_a_few_lists_find_the_clips_themselves(tmp_path, kind):
    store, xb = filled(tmp_path, kind, nprobe=4)
    with store:
        found = [hits[0].record.id for hits in store.search(xb[:50], 1)]
    assert found == list(range(1, 51))


@pytest.mark.parametrize("kind", ["ivf16", "ivf8"])
def test_check_compares_and_rebuilds_an_ivf_cache(tmp_path, kind):
    filled(tmp_path, kind, nprobe=8)[0].close()
    config = StoreConfig(data_dir=tmp_path, index_kind=kind)
    assert check_store(config, spec=SPEC).errors == []  # (the files it names are warnings: not here)
    [path] = (tmp_path / FAISS_DIR).glob("*.faiss")
    vi = vector_index.load(path, dim=D, kind=kind)
    vi.remove(vi.ids()[:1])  # a clip it lacks though its name says it is current
    vector_index.write_atomically(vi, path)
    report = check_store(config, spec=SPEC)
    assert [(f.kind, f.clip_id) for f in report.errors] == [("faiss-cache", 1)]
    report = check_store(config, spec=SPEC, repair=True)
    assert any("rebuilt the FAISS cache" in r for r in report.repaired)
    assert check_store(config, spec=SPEC).errors == []
    [path] = (tmp_path / FAISS_DIR).glob("*.faiss")
    assert path.name.startswith(f"{kind}-")


@pytest.mark.parametrize("kind", ["ivf16", "ivf8"])
def test_a_narrow_filter_is_searched_in_every_list_exactly(kind):
    rng = np.random.default_rng(3)
    xb = unit(rng.standard_normal((N, D))).astype(np.float16).astype(np.float32)
    vi = vector_index.VectorIndex(D, kind, n=N, nprobe=2)  # 2 of 55 lists: a few allowed ids in them at most
    vi.train(xb)
    vi.add(np.arange(N), xb)
    allowed = np.sort(rng.choice(N, 60, replace=False))
    assert vi.narrow(len(allowed)) and not vi.narrow(N // 2)
    xq = unit(rng.standard_normal((5, D)))
    scores, found = vi.search(xq, 10, allowed)
    for q, got in zip(xq, found, strict=True):
        want = allowed[np.argsort(-(xb[allowed] @ q), kind="stable")[:10]]
        if kind == "ivf16":  # float16 codes: flat16's scores exactly
            assert got.tolist() == want.tolist()
        else:  # 8-bit scores: the same ten, near ties aside
            assert len(set(got.tolist()) & set(want.tolist())) >= 9
    wide = np.arange(0, N, 2)
    _, found = vi.search(xq, 10, wide)  # the nprobe lists nearest each query, the allowed ids in them
    assert set(found[found >= 0].tolist()) <= set(wide.tolist())


def test_auto_clips_are_flat16_while_small_and_ivf16_once_large(tmp_path, monkeypatch):
    from index.faiss import store as faiss_store

    monkeypatch.setattr(faiss_store, "AUTO_CLIPS_IVF_AT", 2000)
    rng = np.random.default_rng(4)
    xb = unit(rng.standard_normal((N, D)))
    with FaissStore(tmp_path, SPEC, kind="auto") as store:
        store.add_many([clip(i) for i in range(1500)], xb[:1500], np.zeros((1500, 527), np.float32))
        assert store.stats()["index_kind"] == "flat16"
        store.add_many([clip(i) for i in range(1500, N)], xb[1500:], np.zeros((N - 1500, 527), np.float32))
    files = sorted(p.name for p in (tmp_path / FAISS_DIR).glob("*.faiss"))
    assert len(files) == 1 and files[0].startswith("ivf16-")  # rebuilt when written; the flat16 one pruned
    with FaissStore(tmp_path, SPEC, kind="auto", nprobe=10_000) as store:
        assert store.stats()["index_kind"] == "ivf16"
        stored = xb.astype(np.float16).astype(np.float32)
        q = unit(rng.standard_normal(D))
        want = np.argsort(-(stored @ q), kind="stable")[:10] + 1  # every list scanned: brute force
        assert [h.record.id for h in store.search(q[None], 10)[0]] == want.tolist()
        assert check_store(StoreConfig(data_dir=tmp_path, index_kind="auto")).healthy
