"""The VectorStore contract, held on every backend: search equals numpy brute force (filters included),
writes and reads agree with each other and across a reopen, and a store refuses another model's vectors."""

from dataclasses import replace

import numpy as np
import pytest

from index.store.metadata import Metadata, MetaLayers
from index.store.records import FileNow, NewClip, SearchFilter, Tag
from index.stores import StoreConfig
from retrieval.errors import CheckpointMismatch, RetrievalError
from retrieval.model_spec import ModelSpec
from tests.index.reference_store import BACKENDS, open_backend, passes

D = 16
N = 40
SPEC = ModelSpec(head="head-a", lam=0.5, text_model="tiny", text_model_revision=None, dim=D,
                 passt_arch="passt_s_swa_p16_128_ap476", window_s=10.0, hop_s=2.5, sample_rate=32000,
                 passt_weights="random")
TAGS = ("Speech", "Music", "Rain", "Dog")
USER_TAGS = ("kick", "snare", "loop")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clip(i: int) -> NewClip:
    """Clip i: duration 0.5 + 0.25 i s, top tags TAGS[i % 4] then TAGS[(i + 1) % 4]; user tags
    USER_TAGS[i % 3] (and "loop" when i % 4 == 0), field pack = p{i % 3} for even i."""
    tags = (Tag(TAGS[i % 4], 0.9), Tag(TAGS[(i + 1) % 4], 0.4))
    meta = Metadata.of(description=f"take {i}", tags=[USER_TAGS[i % 3], *(["loop"] if i % 4 == 0 else [])],
                       fields={"pack": f"p{i % 3}"} if i % 2 == 0 else {})
    return NewClip(name=f"clip{i}.wav", location=f"/audio/clip{i}.wav", sha256=f"{i:064x}",
                   duration=0.5 + 0.25 * i, sample_rate=44_100 if i % 2 else 32_000, tags=tags, meta=meta)


@pytest.fixture(params=BACKENDS)
def backend_settings(request, tmp_path) -> StoreConfig:
    return StoreConfig(data_dir=tmp_path / "data", backend=request.param)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return unit(rng.standard_normal((N, D))), rng.standard_normal((N, 527)).astype(np.float32)  # xb, logits


@pytest.fixture
def store(backend_settings, data):
    xb, logits = data
    s = open_backend(backend_settings, SPEC)
    for i in range(N):
        s.add(clip(i), xb[i], logits[i])
    yield s
    s.close()


def brute_force(xq: np.ndarray, xb: np.ndarray, k: int, keep: np.ndarray | None = None):
    """The oracle: (Q, k) scores and 1-based ids (clip i has id i + 1) of the k best by inner product."""
    S = xq @ xb.T  # (Q, N)
    if keep is not None:
        S[:, ~keep] = -np.inf
    idx = np.argsort(-S, axis=1, kind="stable")[:, :k]
    n = N if keep is None else int(keep.sum())
    idx = idx[:, :min(k, n)]
    return np.take_along_axis(S, idx, axis=1), idx + 1


def check_hits(hits, scores, ids):
    assert [[h.record.id for h in row] for row in hits] == ids.tolist()
    np.testing.assert_allclose([[h.score for h in row] for row in hits], scores, atol=1e-5)


def test_search_equals_brute_force(store, data):
    xb, _ = data
    xq = unit(np.random.default_rng(1).standard_normal((5, D)))
    hits = store.search(xq, 7)
    check_hits(hits, *brute_force(xq, xb, 7))
    assert hits[0][0].record == store.get(hits[0][0].record.id)


def test_search_k_larger_than_collection_returns_everything(store, data):
    xb, _ = data
    xq = unit(np.random.default_rng(2).standard_normal((2, D)))
    check_hits(store.search(xq, N + 10), *brute_force(xq, xb, N + 10))
    assert store.search(xq, 0) == [[], []]


@pytest.mark.parametrize("flt", [
    SearchFilter(min_duration=3.0),
    SearchFilter(max_duration=2.0),
    SearchFilter(min_duration=2.0, max_duration=5.0),
    SearchFilter(tag="Rain"),
    SearchFilter(tag="music", min_duration=4.0),  # tags match case-insensitively
    SearchFilter(tag="Engine"),  # no clip has it
    SearchFilter(tags_any=("Snare", "loop")),  # user tags match case-insensitively
    SearchFilter(tags_all=("kick", "loop")),
    SearchFilter(fields=(("pack", "p1"),)),
    SearchFilter(fields=(("pack", "p2"),), tags_any=("snare",), max_duration=8.0),
    SearchFilter(fields=(("pack", "P1"),)),  # field values match exactly: none
    SearchFilter(fields=(("other", "p1"),)),  # no clip has the field
    SearchFilter(tags_none=("Loop",)),
    SearchFilter(tags_none=("snare", "kick"), min_duration=2.0),
    SearchFilter(tags_none=("snare",), tags_any=("kick", "snare")),
], ids=["min", "max", "range", "tag", "tag+min", "none", "tags_any", "tags_all", "field", "field+tags+max",
        "field-case", "field-absent", "tags_none", "tags_none+min", "tags_none+any"])
def test_filtered_search_equals_filtered_brute_force(store, data, flt):
    xb, _ = data
    keep = np.array([passes(flt, clip(i)) for i in range(N)])
    xq = unit(np.random.default_rng(3).standard_normal((3, D)))
    check_hits(store.search(xq, 5, flt), *brute_force(xq, xb, 5, keep))
    # keyword search filters the same clips: its ranking is the unfiltered one restricted to them
    everything = store.search_keywords("take clip", N)
    assert len(everything) == N
    assert ([h.record.id for h in store.search_keywords("take clip", N, flt)]
            == [h.record.id for h in everything if keep[h.record.id - 1]])


def test_records_round_trip(store):
    rec = store.get(4)
    want = clip(3)
    assert (rec.name, rec.location, rec.sha256, rec.duration, rec.sample_rate, rec.tags, rec.stored_copy) == (
        want.name, want.location, want.sha256, want.duration, want.sample_rate, want.tags, want.stored_copy)
    assert rec.meta == want.meta == Metadata("take 3", ("kick",), ())
    assert store.get(5).meta == Metadata("take 4", ("snare", "loop"), (("pack", "p1"),))
    assert rec.added_at > 0
    assert store.get(N + 1) is None
    assert store.get_by_sha256(want.sha256) == rec
    assert store.get_by_sha256("f" * 64) is None
    assert store.at_location(want.location) == [rec] and store.at_location("/audio/none.wav") == []
    unit = np.full(store.dim, 1 / np.sqrt(store.dim), np.float32)
    again = store.add(replace(want, sha256="e" * 64), unit, np.zeros(527, np.float32))  # the file, changed
    assert store.at_location(want.location) == [rec, again]


def test_list_count_and_logits(store, data):
    _, logits = data
    assert store.count() == N
    assert [r.id for r in store.list(offset=0, limit=5)] == [1, 2, 3, 4, 5]
    assert [r.id for r in store.list(offset=N - 2, limit=5)] == [N - 1, N]
    assert store.list(offset=N, limit=5) == []
    np.testing.assert_array_equal(store.logits([5, 1, 5]), logits[[4, 0, 4]])
    with pytest.raises(KeyError):
        store.logits([N + 1])


def test_export_holds_every_clip_once_in_id_order_with_its_rows(store, data):
    xb, logits = data
    store.remove([3, 17])
    chunks = list(store.export(chunk=7))
    assert all(len(records) == len(v) == len(lg) <= 7 for records, v, lg in chunks)
    ids = [r.id for records, _, _ in chunks for r in records]
    assert ids == [i for i in range(1, N + 1) if i not in (3, 17)]
    rows = np.array(ids) - 1
    np.testing.assert_allclose(np.vstack([v for _, v, _ in chunks]), xb[rows], atol=1e-6)
    np.testing.assert_array_equal(np.vstack([lg for _, _, lg in chunks]), logits[rows])
    hours = sum(clip(i - 1).duration for i in ids) / 3600
    assert store.stats()["audio_hours"] == round(hours, 3) and store.stats()["clips"] == N - 2


def test_paging_in_order_sees_every_record_once(store):
    def pages(size: int) -> list[int]:
        ids, offset = [], 0
        while page := store.list(offset=offset, limit=size):
            ids += [r.id for r in page]
            offset += len(page)
        return ids

    assert pages(7) == list(range(1, N + 1))
    assert [r.id for r in store.list(offset=3, limit=2)] == [4, 5]
    store.list(offset=0, limit=10)
    store.remove([5])
    assert [r.id for r in store.list(offset=10, limit=2)] == [12, 13]  # positions count the removal
    assert pages(6) == [i for i in range(1, N + 1) if i != 5]


def test_add_same_content_returns_stored_record(store, data):
    xb, logits = data
    again = store.add(clip(0), xb[1], logits[1])
    assert again == store.get(1)
    assert store.count() == N
    np.testing.assert_array_equal(store.logits([1]), logits[[0]])


def test_remove(store, data):
    xb, _ = data
    assert store.remove([2, 3, 3, N + 5]) == 2
    assert store.remove([2]) == 0
    assert store.count() == N - 2 and store.get(2) is None and store.get_by_sha256(clip(1).sha256) is None
    keep = np.ones(N, bool)
    keep[[1, 2]] = False
    xq = unit(np.random.default_rng(4).standard_normal((3, D)))
    check_hits(store.search(xq, 6), *brute_force(xq, xb, 6, keep))
    new = store.add(clip(N), xb[1], np.zeros(527, np.float32))
    assert new.id == N + 1  # ids are never reused


def test_reopen_keeps_everything(store, backend_settings, data):
    xb, logits = data
    store.remove([1])
    before = store.list(offset=0, limit=N)
    store.close()
    with open_backend(backend_settings, SPEC) as s:
        assert s.list(offset=0, limit=N) == before
        np.testing.assert_array_equal(s.logits([2, N]), logits[[1, N - 1]])
        xq = unit(np.random.default_rng(5).standard_normal((2, D)))
        keep = np.arange(N) != 0
        check_hits(s.search(xq, 4), *brute_force(xq, xb, 4, keep))


def test_other_model_refused_unless_unchecked(store, backend_settings):
    store.close()
    other = replace(SPEC, head="head-b")
    with pytest.raises(CheckpointMismatch, match="head"):
        open_backend(backend_settings, other)
    with open_backend(backend_settings, other, check=False) as s:  # for re-projection
        assert s.spec == SPEC and s.count() == N


def test_empty_store_takes_the_configured_model(backend_settings):
    open_backend(backend_settings, SPEC).close()
    other = replace(SPEC, head="head-b", dim=8)
    with open_backend(backend_settings, other) as s:
        assert s.spec == other
        s.add(clip(0), unit(np.ones(8)), np.zeros(527, np.float32))
        assert s.search(unit(np.ones((1, 8))), 1)[0][0].record.id == 1


def test_replace_vectors_swaps_model_and_vectors(store, backend_settings, data):
    _, logits = data
    new_fp = replace(SPEC, head="head-b", dim=8)
    xb2 = unit(np.random.default_rng(6).standard_normal((N, 8)))
    ids = [r.id for r in store.list(offset=0, limit=N)]
    store.replace_vectors(ids, xb2, new_fp)
    xq = unit(np.random.default_rng(7).standard_normal((3, 8)))
    check_hits(store.search(xq, 5), *brute_force(xq, xb2, 5))
    np.testing.assert_array_equal(store.logits(ids), logits)  # logits untouched
    if backend_settings.backend == "qdrant":
        assert store.unused_generations() == {}  # the generation replaced is gone, none half-made is left
    store.close()
    with open_backend(backend_settings, new_fp) as s:
        check_hits(s.search(xq, 5), *brute_force(xq, xb2, 5))
    with pytest.raises(CheckpointMismatch):
        open_backend(backend_settings, SPEC)


def test_replace_vectors_refuses_a_partial_or_misshapen_set(store, data):
    xb, _ = data
    xq = xb[:2]
    before = store.search(xq, 3)
    with pytest.raises(RetrievalError):
        store.replace_vectors(list(range(1, N)), xb[: N - 1], SPEC)  # one id missing
    with pytest.raises(ValueError):
        store.replace_vectors(list(range(1, N + 1)), xb[:, :8], SPEC)  # wrong width
    assert store.search(xq, 3) == before


def test_bad_input_changes_nothing(store, data):
    xb, _ = data
    with pytest.raises(ValueError):
        store.search(xb[:, :8], 3)
    with pytest.raises(ValueError):
        store.search(np.full((1, D), np.nan, np.float32), 3)
    with pytest.raises(ValueError):
        store.add(clip(N), np.ones(D + 1, np.float32), np.zeros(527, np.float32))
    with pytest.raises(ValueError):
        store.add(clip(N), xb[0], np.full(527, np.inf, np.float32))
    assert store.count() == N and store.get_by_sha256(clip(N).sha256) is None


def test_concurrent_adds_and_searches(store, data):
    from concurrent.futures import ThreadPoolExecutor

    xb, logits = data
    rng = np.random.default_rng(8)
    extra = unit(rng.standard_normal((24, D)))

    def add(i: int) -> int:
        return store.add(clip(N + i), extra[i], logits[0]).id

    def search(i: int) -> int:
        return len(store.search(xb[i:i + 1], 3)[0])

    with ThreadPoolExecutor(4) as pool:  # adds and searches interleaved
        jobs = [(pool.submit(add, i), pool.submit(search, i)) for i in range(24)]
        added = [a.result() for a, _ in jobs]
        found = [s.result() for _, s in jobs]
    assert sorted(added) == list(range(N + 1, N + 25)) and found == [3] * 24
    assert store.count() == N + 24
    check_hits(store.search(extra[:3], 1), np.ones((3, 1)), np.array(added[:3])[:, None])


def test_add_many_stores_a_batch_in_order(store, data):
    xb, logits = data
    rng = np.random.default_rng(9)
    extra, extra_logits = unit(rng.standard_normal((3, D))), rng.standard_normal((3, 527)).astype(np.float32)
    added = store.add_many([clip(N + i) for i in range(3)], extra, extra_logits)
    assert [a.created for a in added] == [True, True, True]
    assert [a.record.id for a in added] == [N + 1, N + 2, N + 3]
    assert [a.record for a in added] == [store.get(N + i) for i in (1, 2, 3)]
    assert [a.record.sha256 for a in added] == [clip(N + i).sha256 for i in range(3)]
    np.testing.assert_array_equal(store.logits([N + 1, N + 2, N + 3]), extra_logits)
    check_hits(store.search(extra, 1), np.ones((3, 1)), np.array([[N + 1], [N + 2], [N + 3]]))
    assert store.count() == N + 3
    assert store.add_many([], np.zeros((0, D), np.float32), np.zeros((0, 527), np.float32)) == []
    assert store.count() == N + 3


def test_add_many_stores_content_repeated_in_the_batch_once(store, data):
    """The same sha256 twice in one batch: the first occurrence is stored, the second gets its record."""
    rng = np.random.default_rng(10)
    vecs, lgs = unit(rng.standard_normal((3, D))), rng.standard_normal((3, 527)).astype(np.float32)
    added = store.add_many([clip(N), clip(N + 1), clip(N)], vecs, lgs)
    assert [a.created for a in added] == [True, True, False]
    assert added[2].record == added[0].record == store.get_by_sha256(clip(N).sha256)
    assert added[0].record.id != added[1].record.id
    assert store.count() == N + 2
    np.testing.assert_array_equal(store.logits([added[0].record.id]), lgs[[0]])  # the first one's
    hit = store.search(vecs[:1], 1)[0][0]
    assert hit.record.id == added[0].record.id
    np.testing.assert_allclose(hit.score, 1.0, atol=1e-5)
    # the repeat's vector was not stored: the clip scores against the first occurrence's vector
    scores = {h.record.id: h.score for h in store.search(vecs[2:3], N + 2)[0]}
    assert len(scores) == N + 2
    np.testing.assert_allclose(scores[added[0].record.id], vecs[2] @ vecs[0], atol=1e-5)


def test_add_many_returns_already_stored_content_unchanged(store, data):
    xb, logits = data
    rng = np.random.default_rng(11)
    vecs, lgs = unit(rng.standard_normal((3, D))), rng.standard_normal((3, 527)).astype(np.float32)
    before = store.get(3)
    added = store.add_many([clip(N), clip(2), clip(N + 1)], vecs, lgs)  # clip(2) is stored as id 3
    assert [a.created for a in added] == [True, False, True]
    assert added[1].record == before == store.get(3)
    assert [added[0].record.id, added[2].record.id] == [N + 1, N + 2]
    assert store.count() == N + 2
    np.testing.assert_array_equal(store.logits([3]), logits[[2]])  # the stored clip keeps its logits
    check_hits(store.search(xb[2:3], 1), np.ones((1, 1)), np.array([[3]]))  # and its vector
    again = store.add_many([clip(N + 1), clip(N)], vecs[:2], lgs[:2])  # a whole batch already stored
    assert [(a.record, a.created) for a in again] == [(added[2].record, False), (added[0].record, False)]
    assert store.count() == N + 2


def test_add_many_with_a_bad_row_stores_nothing(store, data):
    xb, _ = data
    lgs = np.zeros((2, 527), np.float32)
    lgs[1, 7] = np.nan
    with pytest.raises(ValueError):
        store.add_many([clip(N), clip(N + 1)], xb[:2], lgs)
    with pytest.raises(ValueError):
        store.add_many([clip(N), clip(N + 1)], xb[:1], lgs[:1])  # one vector for two clips
    assert store.count() == N and store.get_by_sha256(clip(N).sha256) is None


def test_a_file_name_is_found_by_each_of_its_words(store, data):
    xb, logits = data
    kick = store.add(replace(clip(N), name="Kick_808_Hard.wav", meta=Metadata()), xb[0], logits[0])
    store.add(replace(clip(N + 1), name="SnareRoll_808.wav", meta=Metadata()), xb[1], logits[1])
    for query in ("808", "kick", "KICK", "Kick_808", "hard", "kick808"):
        assert store.search_keywords(query, 3)[0].record.id == kick.id, query
    both = {"Kick_808_Hard.wav", "SnareRoll_808.wav"}
    assert {h.record.name for h in store.search_keywords("808", 5)} == both
    assert [h.record.name for h in store.search_keywords("roll", 5)] == ["SnareRoll_808.wav"]  # camel case
    assert store.search_keywords("hihat", 5) == [] and store.search_keywords("!!", 5) == []
    assert store.search_keywords("kick", 0) == []
    with pytest.raises(ValueError):
        store.search_keywords("kick", -1)


def test_a_clips_audio_fingerprint_is_kept_and_its_file_replaced_with_its_metadata(backend_settings, data):
    """A clip stored with its audio_sha256 gives it back (and a clip without one, None); set_metadata with a
    sha256 (a file retagged where it lies) moves the clip to its new content hash, its vector unchanged; with
    a location and name (a file moved), to its new place, found there and by its new name's words."""
    from dataclasses import replace

    xb, logits = data
    audio = "ab" * 32
    with open_backend(backend_settings, SPEC) as s:
        first = s.add(replace(clip(0), audio_sha256=audio), xb[0], logits[0])
        second = s.add(clip(1), xb[1], logits[1])
        assert first.audio_sha256 == s.get(first.id).audio_sha256 == audio
        assert s.get(second.id).audio_sha256 is None
        assert [r.id for r in s.with_audio(audio)] == [first.id] and s.with_audio("00" * 32) == []
        assert [r.id for r in s.lasting(0.5)] == [first.id]  # clip(0) lasts 0.5 s, clip(1) 0.75 s
        assert [r.id for r in s.lasting(0.75 + 5e-7)] == [second.id]  # within a microsecond
        assert s.lasting(0.75 + 1e-3) == [] and s.lasting(0.6) == []
        new_sha = "cd" * 32
        moved = s.set_metadata(first.id, Metadata.of(description="retagged"), file=FileNow(sha256=new_sha))
        assert moved is not None
        assert (moved.id, moved.sha256, moved.audio_sha256) == (first.id, new_sha, audio)
        assert s.get_by_sha256(new_sha).id == first.id and s.get_by_sha256(clip(0).sha256) is None
        assert s.get(first.id) == moved and np.allclose(s.vectors([first.id])[0], xb[0], atol=1e-6)
        assert s.set_metadata(second.id, Metadata()).sha256 == clip(1).sha256  # no sha256 given: unchanged
        there = s.set_metadata(second.id, Metadata(),
                               file=FileNow(location="/lib/new/gate.wav", name="gate.wav"))
        assert (there.location, there.name, there.sha256) == ("/lib/new/gate.wav", "gate.wav", clip(1).sha256)
        assert [r.id for r in s.at_location("/lib/new/gate.wav")] == [second.id]
        assert s.at_location(clip(1).location) == []
        assert [h.record.id for h in s.search_keywords("gate", 5)] == [second.id]
        fingerprinted = s.set_metadata(second.id, Metadata(), file=FileNow(audio_sha256="12" * 32))
        assert fingerprinted.audio_sha256 == "12" * 32
        assert first.meta_layers is None and moved.meta_layers is None  # none given: not known
        read = Metadata.of(description="Gate creak", tags=["gate"], fields={"ucs_catid": "DOORWood"})
        layers = MetaLayers(read, Metadata.of(tags=["mine"]), Metadata.of(tags=["gate"]))  # "gate" taken off
        assert s.set_metadata(second.id, layers.meta, meta_layers=layers).meta_layers == layers
        assert s.set_metadata(second.id, Metadata()).meta_layers == layers  # none given: unchanged
    with open_backend(backend_settings, SPEC) as s:  # kept on disk
        assert (s.get(first.id).sha256, s.get(first.id).audio_sha256) == (new_sha, audio)
        assert (s.get(second.id).location, s.get(second.id).audio_sha256) == ("/lib/new/gate.wav", "12" * 32)
        assert s.get(second.id).meta_layers == layers and s.get(first.id).meta_layers is None
        third = s.add(replace(clip(2), meta_layers=MetaLayers()), xb[2], logits[2])  # nothing from anyone
        assert s.get(third.id).meta_layers == MetaLayers()


def test_set_metadata_replaces_it_and_the_clip_s_words(store, backend_settings):
    new = Metadata.of(description="Deep rumble", tags=["Bass", "bass ", "sub"], fields={"bpm": "120"})
    record = store.set_metadata(7, new)
    assert record == store.get(7)
    assert record.meta == Metadata("Deep rumble", ("bass", "sub"), (("bpm", "120"),))
    assert (record.name, record.tags, record.sha256) == (clip(6).name, clip(6).tags, clip(6).sha256)
    assert [h.record.id for h in store.search_keywords("rumble", 5)] == [7]
    assert [h.record.id for h in store.search_keywords("sub bass", 5)] == [7]
    assert 7 not in {h.record.id for h in store.search_keywords("take", N)}  # its old description is gone
    only_sub = store.search(store.vectors([7]), N, SearchFilter(tags_all=("sub",)))[0]
    assert [h.record.id for h in only_sub] == [7]
    assert store.search(store.vectors([7]), 1, SearchFilter(fields=(("bpm", "120"),)))[0][0].record.id == 7
    assert store.set_metadata(N + 5, new) is None
    store.remove([7])
    assert store.search_keywords("rumble", 5) == []
    store.set_metadata(8, Metadata())  # cleared: only its name and AudioSet tags are words now
    assert store.get(8).meta == Metadata()
    assert 8 not in {h.record.id for h in store.search_keywords("take", N)}
    assert 8 in {h.record.id for h in store.search_keywords("clip", N)}
    store.close()
    with open_backend(backend_settings, SPEC) as s:
        assert s.get(8).meta == Metadata() and s.get(9).meta == clip(8).meta
        assert [h.record.id for h in s.search_keywords("take 8", 1)] == [9]


def test_a_whole_number_of_seconds_stays_a_float_after_an_edit(backend_settings, data):
    """SQLite's RETURNING gives a REAL column's whole value as an integer: the record an edit returns is
    the one `get` gives, to the types."""
    from dataclasses import replace

    xb, logits = data
    with open_backend(backend_settings, SPEC) as s:
        added = s.add(replace(clip(0), duration=3.0), xb[0], logits[0])
        edited = s.set_metadata(added.id, Metadata.of(description="three seconds"))
        assert edited == s.get(added.id)
        assert type(edited.duration) is float and type(edited.added_at) is float


def test_a_closed_store_refuses_to_be_used(backend_settings, data):
    """After close, reads and writes say the collection was closed (the FAISS store opened a connection
    again that nothing closed, and its writes went on); closing twice is no error."""
    from retrieval.errors import StoreClosed

    if backend_settings.backend == "reference":
        pytest.skip("the in-memory oracle holds nothing to close")
    xb, logits = data
    s = open_backend(backend_settings, SPEC)
    first = s.add(clip(0), xb[0], logits[0])
    s.close()
    for use in (lambda: s.get(first.id), lambda: s.remove([first.id]), s.count):
        with pytest.raises(StoreClosed, match="closed"):
            use()
    s.close()
    with open_backend(backend_settings, SPEC) as again:
        assert again.count() == 1
