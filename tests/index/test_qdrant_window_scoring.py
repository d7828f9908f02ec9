"""The Qdrant store scores given clips' windows inside Qdrant (filtered by clip, a score threshold at the
floor, each clip's best found by a grouped search), not by scrolling every window back: its answers are the
base's (every window read and scored with numpy), on planted collections of short and of long clips. The
windows collection may be made with int8 scalar quantization (from the settings), and keeps its logits in
float16; collections made before either keep working."""

import numpy as np
import pytest
import torch
from qdrant_client import models as qm

from index.qdrant import layout
from index.qdrant.open import MEMORY, open_qdrant_store
from index.qdrant.windows import RESCORE
from index.store.records import MomentQuery
from retrieval.head import RetrievalHead
from tests.index.test_window_scoring import SPEC, D, base, collection, moments_of, same, unit

IDS = [1, 2, 3, 4, 5, 6, 99]
FLOORS = ((0.0, None), (0.05, None), (0.3, None), (None, 0.5), (None, 2.0), (None, -2.0))


def open_store(tmp_path, *, quantization="none", url=MEMORY):
    return open_qdrant_store(url=url, data_dir=tmp_path, collection="clips", spec=SPEC,
                             window_quantization=quantization)


def scrolls(store, monkeypatch) -> list:
    """Record every scroll of the windows collection from now on."""
    seen: list = []
    scroll = store.client.scroll

    def spy(name, *a, **kw):
        seen.append(name)
        return scroll(name, *a, **kw)

    monkeypatch.setattr(store.client, "scroll", spy)
    return seen


@pytest.mark.parametrize("quantization", ["none", "int8"])
@pytest.mark.parametrize("long", [False, True])
def test_scored_windows_are_the_base_answers(tmp_path, monkeypatch, long, quantization):
    with open_store(tmp_path, quantization=quantization) as store:
        q = collection(store, long=long)
        want = {f: base(store, "scored_windows")(q, IDS, margin=f[0], floor=f[1]) for f in FLOORS}
        best = base(store, "best_windows")(q, IDS)
        moments = {mq: moments_of(store, q, mq, reference=True)
                   for mq in (MomentQuery(), MomentQuery(per_clip=1), MomentQuery(threshold=0.6, per_clip=5))}
        seen = scrolls(store, monkeypatch)
        for (margin, floor), answer in want.items():
            same(store.scored_windows(q, IDS, margin=margin, floor=floor), answer)
        assert want[(None, 2.0)] == {} and len(want[(None, -2.0)]) == 6  # none, and every window
        assert store.best_windows(q, IDS) == best
        for mq, answer in moments.items():
            assert moments_of(store, q, mq) == answer
        assert not [name for name in seen if name.endswith("-windows")]  # no window was read back
        if long:
            top = store.search_moments(q, 4)
            assert {h.record.id for h in top[:2]} <= {3, 6}  # the planted stretches, found first
            assert {(h.segment.start, h.segment.end) for h in top} & {(250.0, 265.0), (1000.0, 1012.5)}


def test_scored_windows_of_few_clips_and_of_none(tmp_path):
    with open_store(tmp_path) as store:
        assert store.scored_windows(unit(np.ones(D)), [1, 2], margin=0.0) == {}  # no windows collection yet
        q = collection(store, long=True)
        for ids in ([3], [6, 3, 3], [99], []):
            for margin, floor in FLOORS:
                same(store.scored_windows(q, ids, margin=margin, floor=floor),
                     base(store, "scored_windows")(q, ids, margin=margin, floor=floor))
        with pytest.raises(ValueError, match="floor or a margin"):
            store.scored_windows(q, [3], margin=None)
        store.remove([3])
        assert store.scored_windows(q, [3, 6], margin=0.0).keys() == {6}


def test_int8_windows_collection_is_made_quantized_with_originals_on_disk(tmp_path, monkeypatch):
    made: dict = {}
    create = layout.QdrantClient.create_collection

    def spy(self, name, *a, **kw):
        made[name] = kw
        return create(self, name, *a, **kw)

    monkeypatch.setattr(layout.QdrantClient, "create_collection", spy)
    with open_store(tmp_path, quantization="int8", url=None) as store:
        q = collection(store, long=False)
        searched: list = []
        query = store.client.query_batch_points
        monkeypatch.setattr(store.client, "query_batch_points",
                            lambda name, requests, **kw: searched.extend(r.params for r in requests)
                            or query(name, requests, **kw))
        assert store.search_windows(q[None], 3)[0]
        assert searched == [None]  # the embedded engine is sent no search parameters (it warns of them)
        store._windows.local = False  # as a server's would be searched
        assert store.search_windows(q[None], 3)[0]
        assert searched == [None, RESCORE]
        store._windows.local = True
        for_windows = made["clips-windows-g0"]
        assert for_windows["quantization_config"] == layout.INT8
        scalar = for_windows["quantization_config"].scalar
        assert (scalar.type, scalar.quantile, scalar.always_ram) == (qm.ScalarType.INT8, 0.99, True)
        assert made["clips-g0"]["quantization_config"] is None  # the clips are not quantized
        vectors = store.client.get_collection("clips-windows").config.params.vectors
        assert vectors[layout.AUDIO].on_disk and vectors[layout.AUDIO].datatype == qm.Datatype.FLOAT16
        assert vectors[layout.LOGITS].datatype == qm.Datatype.FLOAT16
        # a re-projection's new generation is made the same way
        store.replace_vectors(store.ids(), store.vectors(store.ids()), SPEC,
                              project=lambda lg: unit(lg[:, :D]))
        assert made["clips-windows-g1"]["quantization_config"] == layout.INT8
    # an existing windows collection opened without the setting keeps working (and is not remade)
    with open_store(tmp_path, url=None) as store:
        same(store.scored_windows(q, IDS, margin=0.05), base(store, "scored_windows")(q, IDS, margin=0.05))
        assert "clips-windows-g2" not in made


def test_collections_made_before_float16_logits_still_work(tmp_path, monkeypatch):
    """A windows collection of float32 logits and unquantized vectors, as made before: searched, scored and
    re-projected as before."""
    real = layout.create

    def before(client, name, **kw):
        if name.startswith("clips-windows"):
            kw["float16"], kw["quantization"] = False, "none"
        return real(client, name, **kw)

    monkeypatch.setattr(layout, "create", before)
    with open_store(tmp_path, url=None) as store:
        q = collection(store, long=False)
        vectors = store.client.get_collection("clips-windows").config.params.vectors
        assert vectors[layout.LOGITS].datatype is None
    monkeypatch.setattr(layout, "create", real)
    with open_store(tmp_path, quantization="int8", url=None) as store:
        same(store.scored_windows(q, IDS, margin=0.1), base(store, "scored_windows")(q, IDS, margin=0.1))
        weights = unit(np.random.default_rng(4).standard_normal((527, D)).T).T
        store.replace_vectors(store.ids(), store.vectors(store.ids()), SPEC,
                              project=lambda logits: unit(logits @ weights))
        assert store.window_count() == 16


def project_with(head: RetrievalHead):
    def project(logits):
        with torch.no_grad():
            return head.encode_audio(torch.from_numpy(np.asarray(logits, dtype=np.float32))).numpy()
    return project


def reprojected_windows(tmp_path, *, half: bool, head: RetrievalHead) -> tuple[np.ndarray, np.ndarray]:
    """The planted long collection re-projected through `head`, its window logits kept in float16 (half) or
    float32 (as written before) -> (the windows' vectors as stored, their logits as stored), in one order."""
    real = layout.create

    def create(client, name, **kw):
        kw["float16"] = kw.get("float16", False) and half
        return real(client, name, **kw)

    project = project_with(head)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(layout, "create", create)
        if not half:  # the points' logits written as they were before: float32
            from index.qdrant import windows as qw
            real_points = qw.points
            mp.setattr(qw, "points", lambda payload, w: [
                qm.PointStruct(id=p.id, payload=p.payload, vector={
                    layout.AUDIO: p.vector[layout.AUDIO], layout.LOGITS: lg.tolist()})
                for p, lg in zip(real_points(payload, w), w.logits, strict=True)])
            mp.setattr("index.qdrant.store.window_points", qw.points)
        with open_store(tmp_path / ("half" if half else "full"), url=None) as store:
            collection(store, long=True)
            store.replace_vectors(store.ids(), project(store.rows(store.ids())[1]), SPEC, project=project)
            found = layout.scroll(store.client, "clips-windows", with_vectors=True, with_payload=["id", "n"])
            points = sorted(found, key=lambda p: (p.payload["id"], p.payload["n"]))
    return (np.array([p.vector[layout.AUDIO] for p in points], dtype=np.float32),
            np.array([p.vector[layout.LOGITS] for p in points], dtype=np.float32))


def test_float16_window_logits_reproject_to_nearly_the_same_vectors(tmp_path):
    """Figures for the record (-s prints them): the head's projections of float32 and of float16 logits,
    the window vectors stored after a re-projection either way, and each query's top window."""
    torch.manual_seed(0)
    head = RetrievalHead(torch.nn.functional.normalize(torch.randn(527, D), dim=-1), lam=0.8)
    full, logits = reprojected_windows(tmp_path, half=False, head=head)
    half, logits16 = reprojected_windows(tmp_path, half=True, head=head)
    np.testing.assert_array_equal(logits16, logits.astype(np.float16).astype(np.float32))  # stored as float16
    project = project_with(head)
    projected = float(np.abs(project(logits) - project(logits16)).max())
    stored = float(np.abs(full - half).max())
    rng = np.random.default_rng(7)
    queries = unit(full[rng.choice(len(full), 200, replace=False)] + 0.2 * rng.standard_normal((200, D)))
    changed = int(((full @ queries.T).argmax(0) != (half @ queries.T).argmax(0)).sum())
    print(f"\n{len(full)} windows: max |projection of float32 - of float16 logits| {projected:.2e}; "
          f"of the stored float16 window vectors {stored:.2e}; top window changed for {changed} of 200 "
          "queries")
    assert projected < 1e-3 and stored < 2e-3
    assert changed <= 2


def test_an_edit_rewrites_the_windows_copy_only_when_what_they_filter_on_changes(tmp_path, monkeypatch):
    """Each window point holds a copy of its clip's payload: an edit that changes it is copied onto every
    window (seconds for an hour-long recording), one that changes nothing the windows hold (a reread of a
    file that did not change, the same tags again) writes the clip alone."""
    from index.store.metadata import Metadata

    with open_store(tmp_path) as store:
        collection(store, long=True)
        copied: list = []
        real = store._windows.set_clip_payload
        monkeypatch.setattr(store._windows, "set_clip_payload", lambda p: copied.append(p["id"]) or real(p))
        record = store.get(3)
        store.set_metadata(3, record.meta, read=record)  # as it was
        assert copied == []
        store.set_metadata(3, Metadata.of(tags=["keeper"]), read=store.get(3))
        assert copied == [3] and store.windows_out_of_date() == ()
