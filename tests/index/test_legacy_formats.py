"""Stores, shard folders and checkpoints written by the code before ModelSpec (written here by hand, see
tests/legacy_files.py) open through the new code and are compared as before: the same model is accepted,
another one refused with a message naming what differs and how to fix it."""

import json
import sqlite3
from dataclasses import replace

import numpy as np
import pytest
import torch

from index.collection import Collection
from index.faiss import fts
from index.faiss.schema import MIGRATIONS
from index.faiss.store import FaissStore
from index.ingest.bulk_load import load_shards
from index.ingest.ray_shards import MANIFEST, _write_manifest, manifest_spec
from index.layout import CLIP_DB
from index.qdrant import layout
from index.qdrant.payload import KEYWORDS_VERSION, VOCAB, WORDS
from index.store.metadata import Metadata
from index.store.records import NewClip, SearchFilter, Timeline, Windows
from index.store.words import document, vocabulary, words
from index.stores import StoreConfig, open_store
from retrieval.checkpoint import Checkpoint, load_checkpoint, save_checkpoint, zero_shot
from retrieval.durable import sha256_file
from retrieval.errors import CheckpointMismatch
from retrieval.head import RetrievalHead
from retrieval.model_spec import ModelSpec
from retrieval.pipeline import Retriever, text_spec
from tests.index.store_fixtures import DIM, SPEC, brute_force, clip, logits, unit_vectors
from tests.legacy_files import (
    TAGGER,
    fingerprint,
    head_config,
    write_old_checkpoint,
    write_old_faiss_store,
    write_old_qdrant_collection,
    write_old_shard_folder,
)

N = 12
OLD_FP = fingerprint(head="zero-shot", text_model="tiny", dim=DIM)  # what SPEC was called before


def hits_of(store, xq, k, flt=None):
    hits = store.search(xq, k, flt)
    return (np.array([[h.score for h in row] for row in hits]),
            np.array([[h.record.id for h in row] for row in hits]))


def assert_no_windows_until_one_is_stored(store, ids, xq):
    """A store of before windows: its clips have none (hits without a segment) until a backfill."""
    assert store.without_windows().tolist() == sorted(ids.tolist()) and store.window_count() == 0
    assert store.best_windows(xq[0], ids.tolist()) == {} and store.search_windows(xq, 3) == [[]] * len(xq)
    assert store.search_moments(xq[0], 3) == [] and store.peaks(int(ids[0])) is None
    w = Windows(np.array([0.0]), np.array([1.0]), xq[:1].astype(np.float16), logits(0)[None])
    assert store.set_timeline(int(ids[0]), Timeline(w, np.full(8, 7, np.uint8)))
    assert [(h.clip_id, h.window) for h in store.search_windows(xq[:1], 1)[0]] == [(int(ids[0]), 0)]
    assert store.without_windows().tolist() == sorted(ids.tolist())[1:]


@pytest.fixture
def old_store(tmp_path):
    """A FAISS store of the previous format: N clips, the model named by a `fingerprint`."""
    xb = unit_vectors(N)
    lg = np.stack([logits(i) for i in range(N)])
    ids = write_old_faiss_store(tmp_path / "data", OLD_FP, [clip(i) for i in range(N)], xb, lg)
    return tmp_path / "data", np.asarray(ids), xb, lg


def test_a_faiss_store_of_the_previous_format_opens_and_searches(old_store):
    data_dir, ids, xb, lg = old_store
    with FaissStore(data_dir, SPEC) as store:
        assert store.spec == ModelSpec.from_dict(OLD_FP)
        assert (store.spec.head, store.spec.lam, store.spec.passt_weights) == ("zero-shot", 0.0, None)
        assert store.spec.diff(SPEC) == {}  # the configured model, whose PaSST weights were not recorded
        stats = store.stats()
        assert (stats["clips"], stats["model_id"], stats["model"]) == (N, store.spec.id, store.spec.to_dict())
        assert store.get(int(ids[3])).name == clip(3).name
        assert store.get_by_sha256(clip(5).sha256).id == ids[5]
        np.testing.assert_array_equal(store.logits(ids[[2, 0]]), lg[[2, 0]])
        xq = unit_vectors(4, seed=7)
        d_ref, i_ref = brute_force(xq, xb, ids, 5)
        d, i = hits_of(store, xq, 5)
        np.testing.assert_allclose(d, d_ref, atol=1e-5)
        np.testing.assert_array_equal(i, i_ref)
        flt = SearchFilter(tag="rain")
        keep = np.array([i for i in range(N) if "rain" in {t.label.lower() for t in clip(i).tags}])
        d_ref, i_ref = brute_force(xq, xb[keep], ids[keep], 3)
        np.testing.assert_array_equal(hits_of(store, xq, 3, flt)[1], i_ref)
        assert_no_windows_until_one_is_stored(store, ids, xq)
        new = store.add(clip(N), unit_vectors(1, seed=9)[0], logits(N))
        assert new.id == ids.max() + 1  # ids go on where the old store stopped
    with FaissStore(data_dir, SPEC) as store:  # reopened: still the old record of the model, still accepted
        assert store.count() == N + 1 and store.spec == ModelSpec.from_dict(OLD_FP)


def test_a_faiss_store_of_the_previous_format_refuses_another_model(old_store):
    data_dir, *_ = old_store
    with pytest.raises(CheckpointMismatch, match="`retrieval index reproject` .no PaSST needed.") as e:
        FaissStore(data_dir, replace(SPEC, head="ab" * 32, lam=0.8))
    assert "head: the index" in str(e.value) and "'zero-shot'" in str(e.value)
    with pytest.raises(CheckpointMismatch, match="indexed again") as e:
        FaissStore(data_dir, replace(SPEC, hop_s=5.0))
    assert "hop_s" in str(e.value)
    with pytest.raises(CheckpointMismatch, match="text_model"):
        FaissStore(data_dir, replace(SPEC, text_model="other"))
    with FaissStore(data_dir, replace(SPEC, head="ab" * 32), check=False) as store:  # to re-project it
        assert store.spec == ModelSpec.from_dict(OLD_FP) and store.count() == N


def test_a_trained_head_s_old_fingerprint_records_no_lam_and_matches_its_checkpoint(tmp_path):
    sha = "cd" * 32
    fp = fingerprint(head=sha, text_model="tiny", dim=DIM)
    write_old_faiss_store(tmp_path / "data", fp, [clip(0)], unit_vectors(1), logits(0)[None],
                          with_cache_file=False)
    trained = replace(SPEC, head=sha, lam=0.8)
    with FaissStore(tmp_path / "data", trained) as store:  # lam was not recorded: any lam of that head
        assert store.spec.head == sha and store.spec.lam is None and store.count() == 1
    with pytest.raises(CheckpointMismatch, match="head"):
        FaissStore(tmp_path / "data", replace(trained, head="ef" * 32))


def test_reprojecting_a_store_of_the_previous_format_records_the_new_spec(old_store):
    data_dir, ids, _, _ = old_store
    new_spec = replace(SPEC, head="ab" * 32, lam=0.8, dim=16)
    new_xb = unit_vectors(N, 16, seed=3)
    with FaissStore(data_dir, new_spec, check=False) as store:
        store.replace_vectors(ids, new_xb, new_spec)
    con = sqlite3.connect(data_dir / CLIP_DB)
    assert ModelSpec.from_dict(json.loads(con.execute(
        "SELECT value FROM meta WHERE key = 'model_spec'").fetchone()[0])) == new_spec
    con.close()
    with FaissStore(data_dir, new_spec) as store:
        np.testing.assert_array_equal(hits_of(store, new_xb[:2], 1)[1], ids[:2, None])
    with pytest.raises(CheckpointMismatch):
        FaissStore(data_dir, SPEC)  # the old model no longer


def test_a_qdrant_collection_of_the_previous_format_opens_and_refuses_another_model(tmp_path):
    xb = unit_vectors(N)
    lg = np.stack([logits(i) for i in range(N)])
    ids = np.asarray(write_old_qdrant_collection(tmp_path / "data", OLD_FP, [clip(i) for i in range(N)], xb,
                                                 lg))
    config = StoreConfig(data_dir=tmp_path / "data", backend="qdrant")
    with open_store(config, SPEC) as store:
        assert store.spec == ModelSpec.from_dict(OLD_FP) and store.count() == N
        xq = unit_vectors(3, seed=7)
        d_ref, i_ref = brute_force(xq, xb, ids, 4)
        d, i = hits_of(store, xq, 4)
        np.testing.assert_allclose(d, d_ref, atol=1e-5)
        np.testing.assert_array_equal(i, i_ref)
        np.testing.assert_allclose(store.logits([int(ids[4])]), lg[[4]], atol=1e-6)
        assert_no_windows_until_one_is_stored(store, ids, xq)  # the windows' collection is made then
        assert store.add(clip(N), unit_vectors(1, seed=9)[0], logits(N)).id == N + 1
    with pytest.raises(CheckpointMismatch, match="`retrieval index reproject` .no PaSST needed."):
        open_store(config, replace(SPEC, head="ab" * 32))
    with pytest.raises(CheckpointMismatch, match="indexed again"):
        open_store(config, replace(SPEC, window_s=5.0))
    with open_store(config, SPEC) as store:  # refusals changed nothing
        assert store.count() == N + 1 and store.spec == ModelSpec.from_dict(OLD_FP)


def test_a_faiss_store_without_metadata_or_keyword_index_is_brought_up_to_date_in_place(tmp_path):
    n = 1005  # more clips than one step of the migration reads at a time
    lg = np.zeros((n, 527), np.float32)
    ids = write_old_faiss_store(tmp_path / "data", OLD_FP, [clip(i) for i in range(n)], unit_vectors(n), lg,
                                with_cache_file=False)
    db = tmp_path / "data" / CLIP_DB

    def version_and_rows() -> tuple[int, int]:
        con = sqlite3.connect(db)
        try:
            return (con.execute("PRAGMA user_version").fetchone()[0],
                    con.execute("SELECT count(*) FROM clip_words").fetchone()[0])
        finally:
            con.close()

    with FaissStore(tmp_path / "data", SPEC) as store:
        assert version_and_rows() == (len(MIGRATIONS), n)
        assert all(r.meta == Metadata() for r in store.list(limit=n))
        assert store.search_keywords("clip1004", 1)[0].record.id == ids[1004]
        rain = {ids[i] for i in range(n) if "Rain" in {t.label for t in clip(i).tags}}
        assert {h.record.id for h in store.search_keywords("rain", n)} == rain
        store.set_metadata(int(ids[3]), Metadata.of(tags=["kick"]))
        assert [h.record.id for h in store.search_keywords("kick", 5)] == [ids[3]]
        assert all(r.audio_sha256 is None for r in store.list(limit=n))  # stored before fingerprints
        assert all(r.meta_layers is None for r in store.list(limit=n))  # and before the files' own was kept
        fresh = store.add(replace(clip(n), audio_sha256="ef" * 32), unit_vectors(n + 1)[n], lg[0])
    with FaissStore(tmp_path / "data", SPEC) as store:  # migrated once: opening again changes nothing
        assert version_and_rows() == (len(MIGRATIONS), n + 1)
        assert store.get(int(ids[3])).meta.tags == ("kick",) and store.get(fresh.id).audio_sha256 == "ef" * 32


def test_a_qdrant_collection_without_metadata_or_keyword_index_is_brought_up_to_date(tmp_path):
    ids = write_old_qdrant_collection(tmp_path / "data", OLD_FP, [clip(i) for i in range(N)], unit_vectors(N),
                                      np.zeros((N, 527), np.float32))
    config = StoreConfig(data_dir=tmp_path / "data", backend="qdrant")
    with open_store(config, SPEC) as store:
        assert store.get(ids[5]).meta == Metadata()
        assert store.search_keywords("clip5", 1)[0].record.id == ids[5]
        store.set_metadata(ids[2], Metadata.of(description="thunder"))
        flt = SearchFilter(tags_any=("none",))
        assert store.search(unit_vectors(1), 3, flt) == [[]]  # old points have no user tags
    with open_store(config, SPEC) as store:
        assert [h.record.id for h in store.search_keywords("thunder", 3)] == [ids[2]]
        assert store.client.get_collection("clips").config.metadata["keywords"] == KEYWORDS_VERSION


class ServerIndexes:
    """A client that keeps payload indexes as a server does (the embedded engine keeps none): the calls
    go to an embedded client, the indexes are recorded, and a collection shows those it was given."""

    def __init__(self, client, schemas: dict[str, set[str]]):
        self._client, self.schemas, self.made = client, schemas, []

    def __getattr__(self, name):
        return getattr(self._client, name)

    def create_payload_index(self, name, key, kind):
        self.made.append((name, key))
        self.schemas.setdefault(name, set()).add(key)

    def get_collection(self, name):
        info = self._client.get_collection(name)
        return info.model_copy(update={"payload_schema": {key: None for key in self.schemas.get(name, ())}})


def test_a_qdrant_server_collection_without_the_newer_payload_indexes_gets_them_when_opened(tmp_path):
    from index.qdrant.payload import PAYLOAD_INDEXES
    from index.qdrant.store import QdrantStore
    from index.qdrant.windows import INDEXES

    config = StoreConfig(data_dir=tmp_path / "data", backend="qdrant")
    with open_store(config, SPEC) as store:  # the embedded engine: no payload indexes, a windows collection
        clips, windows = store._target(), layout.target(store.client, store._windows.alias)
        older = {clips: {"sha256", "location"}, windows: {"id"}}  # as an earlier version made them
        server = ServerIndexes(store.client, older)
        QdrantStore(server, collection="clips", spec=SPEC, local=False)
        assert sorted(server.made) == sorted([(clips, key) for key, _ in PAYLOAD_INDEXES
                                              if key not in ("sha256", "location")] +
                                             [(windows, key) for key, _ in PAYLOAD_INDEXES + INDEXES
                                              if key != "id"])
        server.made.clear()
        QdrantStore(server, collection="clips", spec=SPEC, local=False)  # all there now: nothing made
        assert server.made == []


# -- keyword indexes of before stems ------------------------------------------------------------------------
SOUNDS = ["dog_bark.wav", "Doors_slamming.wav", "footsteps_gravel.wav", "footstep.wav", "rain.wav"]


def sound(i: int) -> NewClip:
    return replace(clip(i), name=SOUNDS[i], meta=Metadata.of(tags=["loud"] if i % 2 else []))


def unstemmed(c: NewClip) -> str:
    """A keyword document as versions 1 wrote it: the words alone."""
    return " ".join(words(" ".join([c.name, c.meta.description, *c.meta.tags,
                                    *(t.label for t in c.tags if t.probability >= 0.1)])))


def assert_keyword_search_stems(store, ids) -> None:
    assert [h.record.id for h in store.search_keywords("barking", 5)] == [ids[0]]
    assert [h.record.id for h in store.search_keywords("door", 5)] == [ids[1]]
    assert {h.record.id for h in store.search_keywords("foot*", 5)} == {ids[2], ids[3]}
    flt = SearchFilter(tags_none=("loud",))
    assert [h.record.id for h in store.search_keywords("footsteps", 5, flt)] == [ids[2]]


def write_keywords(data_dir, version: int, docs: dict[int, str], *, drop_vocabulary: bool = False) -> None:
    """The clip database's keyword documents and schema version set as an earlier version wrote them."""
    con = sqlite3.connect(data_dir / CLIP_DB)
    with con:
        if drop_vocabulary:
            con.execute(f"DROP TABLE {fts.VOCAB}")
        con.execute(f"DELETE FROM {fts.TABLE}")
        con.executemany(f"INSERT INTO {fts.TABLE} (rowid, words) VALUES (?, ?)", list(docs.items()))
        con.execute(f"PRAGMA user_version = {version}")
    con.close()


def test_a_faiss_store_of_version_1_gets_its_keyword_index_stemmed(tmp_path):
    data_dir = tmp_path / "data"
    with FaissStore(data_dir, SPEC) as store:
        ids = [store.add(sound(i), unit_vectors(5)[i], logits(i)).id for i in range(5)]
    # made version 1: the words as written, no vocabulary
    write_keywords(data_dir, 1, {ids[i]: unstemmed(sound(i)) for i in range(5)}, drop_vocabulary=True)
    with FaissStore(data_dir, SPEC) as store:
        assert_keyword_search_stems(store, ids)
    con = sqlite3.connect(data_dir / CLIP_DB)
    assert con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 11
    assert con.execute(f"SELECT words FROM {fts.TABLE} WHERE rowid = ?", (ids[1],)).fetchone()[0] == \
        "doors door slamming slam wav loud speech rain"
    con.close()


def test_a_qdrant_collection_of_keywords_version_1_gets_its_words_stemmed(tmp_path):
    config = StoreConfig(data_dir=tmp_path / "data", backend="qdrant")
    with open_store(config, SPEC) as store:
        ids = [store.add(sound(i), unit_vectors(5)[i], logits(i)).id for i in range(5)]
        for i in range(5):  # written as version 1 wrote them: the words alone, no vocabulary
            store.client.overwrite_payload(
                "clips", {k: v for k, v in store.client.retrieve("clips", [ids[i]], with_payload=True)[0]
                          .payload.items() if k != VOCAB} | {WORDS: unstemmed(sound(i))}, points=[ids[i]])
        store.client.update_collection(store._target(), metadata={"keywords": 1})
        assert store.search_keywords("door", 5) == []  # "doors" as written, no stem
    with open_store(config, SPEC) as store:
        assert store.client.get_collection("clips").config.metadata["keywords"] == KEYWORDS_VERSION
        assert_keyword_search_stems(store, ids)


# -- keyword indexes of before fields' values were words ----------------------------------------------------
def titled(i: int) -> NewClip:
    return replace(clip(i), meta=Metadata.of(fields={"title": ["Gate Slam", "Owl Hoot"][i % 2]}))


def without_fields(c: NewClip) -> str:
    """A keyword document as it was before fields' values were words."""
    return document(replace(c, meta=Metadata.of(description=c.meta.description, tags=c.meta.tags)))


def faiss_keywords_of_before(data_dir, clips: list[NewClip], doc_of, *, version: int) -> list[int]:
    """A FAISS store of `clips` whose keyword documents are as `doc_of` (an earlier version) wrote them, at
    schema `version`: their ids."""
    with FaissStore(data_dir, SPEC) as store:
        ids = [store.add(c, unit_vectors(len(clips))[i], logits(i)).id for i, c in enumerate(clips)]
    write_keywords(data_dir, version, {id_: doc_of(c) for id_, c in zip(ids, clips, strict=True)})
    return ids


def test_a_faiss_store_of_version_3_gets_its_fields_words_in_its_keyword_index(tmp_path):
    data_dir = tmp_path / "data"
    ids = faiss_keywords_of_before(data_dir, [titled(i) for i in range(4)], without_fields, version=3)
    with FaissStore(data_dir, SPEC) as store:
        assert {h.record.id for h in store.search_keywords("gate", 5)} == {ids[0], ids[2]}
        assert {h.record.id for h in store.search_keywords("hoot*", 5)} == {ids[1], ids[3]}


def qdrant_keywords_of_before(store, clips: list[NewClip], doc_of, *, version: int) -> list[int]:
    """`clips` added, then their keyword documents written as `doc_of` (an earlier version) did, and the
    collection's keywords version set to `version`: their ids."""
    ids = [store.add(c, unit_vectors(len(clips))[i], logits(i)).id for i, c in enumerate(clips)]
    for id_, c in zip(ids, clips, strict=True):
        doc = doc_of(c)
        store.client.set_payload("clips", {WORDS: doc, VOCAB: vocabulary(doc)}, points=[id_])
    store.client.update_collection(store._target(), metadata={"keywords": version})
    return ids


def test_a_qdrant_collection_of_keywords_version_2_gets_its_fields_words(tmp_path):
    config = StoreConfig(data_dir=tmp_path / "data", backend="qdrant")
    with open_store(config, SPEC) as store:
        ids = qdrant_keywords_of_before(store, [titled(i) for i in range(4)], without_fields, version=2)
        assert store.search_keywords("gate", 5) == []
    with open_store(config, SPEC) as store:
        assert store.client.get_collection("clips").config.metadata["keywords"] == KEYWORDS_VERSION == 7
        assert {h.record.id for h in store.search_keywords("gate", 5)} == {ids[0], ids[2]}
        assert {h.record.id for h in store.search_keywords("hoot*", 5)} == {ids[1], ids[3]}


# -- keyword indexes of before words were folded -------------------------------------------------------------
ACCENTED = ["Café_terrace.wav", "crème_brûlée.wav", "plain.wav"]


def accented(i: int) -> NewClip:
    return replace(clip(i), name=ACCENTED[i])


def unfolded(c: NewClip) -> str:
    """A keyword document as versions before 8 (FAISS) and 4 (Qdrant) wrote it: no word without accents."""
    return " ".join(w for w in document(c).split() if w not in {"cafe", "creme", "brulee", "brule"})


def test_a_faiss_store_of_version_7_gets_its_words_without_accents(tmp_path):
    data_dir = tmp_path / "data"
    ids = faiss_keywords_of_before(data_dir, [accented(i) for i in range(3)], unfolded, version=7)
    with FaissStore(data_dir, SPEC) as store:
        assert [h.record.id for h in store.search_keywords("cafe", 5)] == [ids[0]]
        assert [h.record.id for h in store.search_keywords("creme", 5)] == [ids[1]]
    with sqlite3.connect(data_dir / CLIP_DB) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 11


def test_a_qdrant_collection_of_keywords_version_3_gets_its_words_without_accents(tmp_path):
    config = StoreConfig(data_dir=tmp_path / "data", backend="qdrant")
    with open_store(config, SPEC) as store:
        ids = qdrant_keywords_of_before(store, [accented(i) for i in range(3)], unfolded, version=3)
        assert store.search_keywords("cafe", 5) == []
    with open_store(config, SPEC) as store:
        assert store.client.get_collection("clips").config.metadata["keywords"] == KEYWORDS_VERSION
        assert [h.record.id for h in store.search_keywords("cafe", 5)] == [ids[0]]
        assert [h.record.id for h in store.search_keywords("brulee", 5)] == [ids[1]]


# -- keyword indexes of before words with combining marks were written for Qdrant's tokenizer ---------------
MARKED = ["बारिश_शहर.wav", "बार.wav", "كَتَبَ.wav", "كِتَاب.wav"]  # rain city, time, he wrote, book


def test_a_qdrant_collection_of_keywords_version_5_gets_its_words_with_marks_whole(tmp_path):
    """Version 5 wrote the words as they are, which Qdrant's word tokenizer cuts at their combining marks
    (बारिश into ब र श, so that बार found it): opened, every point's words are written again, each one a
    token."""
    config = StoreConfig(data_dir=tmp_path / "data", backend="qdrant")
    with open_store(config, SPEC) as store:
        marked = [replace(clip(i), name=name) for i, name in enumerate(MARKED)]
        ids = qdrant_keywords_of_before(store, marked, document, version=5)
    with open_store(config, SPEC) as store:
        assert store.client.get_collection("clips").config.metadata["keywords"] == KEYWORDS_VERSION
        assert [h.record.id for h in store.search_keywords("बार", 5)] == [ids[1]]
        assert [h.record.id for h in store.search_keywords("बारिश", 5)] == [ids[0]]
        assert [h.record.id for h in store.search_keywords("كتب", 5)] == [ids[2]]  # without its vowel marks
        assert [h.record.id for h in store.search_keywords("كِتَاب", 5)] == [ids[3]]
        assert {h.record.id for h in store.search_keywords("बार*", 5)} == {ids[0], ids[1]}


def test_a_faiss_store_of_version_9_gets_its_words_with_marks_whole(tmp_path):
    """Version 9's keyword index took only letters, digits and private use as word characters (unicode61's
    default categories), so it cut बारिश into ब र श and बार found it as that phrase: opened, the index is
    made again with combining marks word characters (fts.TOKENIZER)."""
    data_dir = tmp_path / "data"
    marked = [replace(clip(i), name=name) for i, name in enumerate(MARKED)]
    with FaissStore(data_dir, SPEC) as store:
        ids = [store.add(c, unit_vectors(len(marked))[i], logits(i)).id for i, c in enumerate(marked)]
    with sqlite3.connect(data_dir / CLIP_DB) as con:  # the table as version 9 made it, its words as they were
        docs = con.execute(f"SELECT rowid, words FROM {fts.TABLE}").fetchall()
        con.execute(f"DROP TABLE {fts.VOCAB}")
        con.execute(f"DROP TABLE {fts.TABLE}")
        con.execute(f"CREATE VIRTUAL TABLE {fts.TABLE} USING fts5(words, "
                    "tokenize = 'unicode61 remove_diacritics 0')")
        con.execute(f"CREATE VIRTUAL TABLE {fts.VOCAB} USING fts5vocab({fts.TABLE}, 'row')")
        con.executemany(f"INSERT INTO {fts.TABLE} (rowid, words) VALUES (?, ?)", docs)
        con.execute("PRAGMA user_version = 9")
        cut = con.execute(f"SELECT rowid FROM {fts.TABLE} WHERE {fts.TABLE} MATCH ?", ('"बार"',)).fetchall()
        assert len(cut) == 2  # बार.wav, and बारिश_शहर.wav as the phrase ब र
    with FaissStore(data_dir, SPEC) as store:
        assert [h.record.id for h in store.search_keywords("बार", 5)] == [ids[1]]
        assert [h.record.id for h in store.search_keywords("बारिश", 5)] == [ids[0]]
        assert {h.record.id for h in store.search_keywords("बार*", 5)} == {ids[0], ids[1]}
        assert [h.record.id for h in store.search_keywords("كِتَاب", 5)] == [ids[3]]
    with sqlite3.connect(data_dir / CLIP_DB) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


# -- user text stored before it was composed and trimmed ------------------------------------------------
NFD_TAG, NFC_TAG = "cafe\u0301", "caf\u00e9"
OLD_FIELDS = {"pack": "Drums Vol 1 ", "note": "a\r\nb"}  # as earlier versions kept a value: as it was sent
# a name as `index add` kept a file's before names were cleaned: a line break, a direction control, NFD
OLD_NAME, NEW_NAME = "take\none evil\u202egnp cafe\u0301.wav", "take one evilgnp caf\u00e9.wav"


def user_text_found(store) -> list[list[int]]:
    """The clips each filter of the text as typed now finds."""
    filters = [SearchFilter(tags_any=(NFC_TAG,)), SearchFilter(tags_any=(NFD_TAG,)),
               SearchFilter(fields={"pack": "Drums Vol 1"}), SearchFilter(fields={"pack": "Drums Vol 1 "}),
               SearchFilter(fields={"note": "a\nb"})]
    return [[h.record.id for h in store.search(unit_vectors(2)[0][None, :], 5, flt)[0]] for flt in filters]


def test_a_faiss_store_of_version_10_gets_its_user_text_as_stored_now(tmp_path):
    """A tag stored decomposed and a value stored with a space at its end and CRLF matched no filter once
    filters took tags and values composed and trimmed (as the store shows them): version 11 writes every
    clip's text as it is stored now, once."""
    data_dir = tmp_path / "data"
    with FaissStore(data_dir, SPEC) as store:
        ids = [store.add(clip(i), unit_vectors(2)[i], logits(i)).id for i in range(2)]
    with sqlite3.connect(data_dir / CLIP_DB) as con:
        con.execute("UPDATE clips SET user_tags = ?, fields = ?, description = ?, name = ? WHERE id = ?",
                    (json.dumps([NFD_TAG]), json.dumps(OLD_FIELDS), "line one\r\nline two ", OLD_NAME,
                     ids[0]))
        con.execute("PRAGMA user_version = 10")
    with FaissStore(data_dir, SPEC) as store:
        assert user_text_found(store) == [[ids[0]]] * 5
        assert store.get(ids[0]).meta.description == "line one\nline two"
        assert store.get(ids[0]).name == NEW_NAME
        assert [h.record.id for h in store.search_keywords("evilgnp", 5)] == [ids[0]]  # its words, with it
    with sqlite3.connect(data_dir / CLIP_DB) as con:
        row = con.execute("SELECT user_tags, fields FROM clips WHERE id = ?", (ids[0],)).fetchone()
        assert json.loads(row[0]) == [NFC_TAG]
        assert json.loads(row[1]) == {"note": "a\nb", "pack": "Drums Vol 1"}
        assert con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_a_qdrant_collection_of_keywords_version_6_gets_its_user_text_as_stored_now(tmp_path):
    config = StoreConfig(data_dir=tmp_path / "data", backend="qdrant")
    with open_store(config, SPEC) as store:
        ids = [store.add(clip(i), unit_vectors(2)[i], logits(i)).id for i in range(2)]
        store.client.set_payload("clips", {"user_tags": [NFD_TAG], "fields": OLD_FIELDS, "name": OLD_NAME},
                                 points=[ids[0]])
        store.client.update_collection(store._target(), metadata={"keywords": 6})
    with open_store(config, SPEC) as store:
        assert store.client.get_collection("clips").config.metadata["keywords"] == KEYWORDS_VERSION
        assert user_text_found(store) == [[ids[0]]] * 5
        payload = store.client.retrieve("clips", [ids[0]], with_payload=True)[0].payload
        assert payload["name"] == NEW_NAME and store.get(ids[0]).name == NEW_NAME
        assert payload["user_tags"] == [NFC_TAG]
        assert payload["fields"] == {"note": "a\nb", "pack": "Drums Vol 1"}


def test_a_store_of_a_newer_version_is_refused_unchanged(tmp_path):
    """Rolled back after an upgrade: the older version refuses the newer database, before writing to it (it
    opened one and added clips the newer version's keyword index and windows knew nothing of)."""
    from index.backups.backup import backup
    from retrieval.errors import NewerFormat

    with FaissStore(tmp_path, SPEC) as store:
        store.add(clip(0), unit_vectors(1)[0], logits(0))
    with sqlite3.connect(tmp_path / CLIP_DB) as con:
        con.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    before = (tmp_path / CLIP_DB).read_bytes()
    newest = len(MIGRATIONS)
    with pytest.raises(NewerFormat, match=f"format {newest + 1}; this one knows up to {newest}"):
        FaissStore(tmp_path, SPEC)
    with pytest.raises(NewerFormat) as refused:  # a backup names the user's file, not its own copy
        backup(StoreConfig(data_dir=tmp_path), tmp_path / "backups" / "b.zip")
    assert str(refused.value).startswith(f"{tmp_path / CLIP_DB} was written by a newer version")
    assert (tmp_path / CLIP_DB).read_bytes() == before and not (tmp_path / "backups" / "b.zip").exists()


# -- Ray shard folders -------------------------------------------------------------------------------------
class TinyText:
    """A sentence encoder with no weights: the shards' loader only projects logits."""

    model_id, revision, dim, precision = "tiny", None, DIM, "fp32"

    def encode(self, sentences, *, batch_size=64, clean=True, progress=False):
        return unit_vectors(len(sentences), seed=len(sentences))


@pytest.fixture
def tiny_retriever():
    E = torch.from_numpy(unit_vectors(527, seed=11))
    passt = ModelSpec(passt_weights="random")
    return Retriever(TinyText(), zero_shot(E, text_spec(passt, TinyText())), passt=passt)


def shard_rows(n: int) -> list[dict]:
    return [{"path": f"/audio/clip{i}.wav", "name": f"clip{i}.wav", "sha256": f"{i:064x}",
             "duration": 1.0 + i, "sample_rate": 32000, "logits": logits(i), "error": ""} for i in range(n)]


def test_a_shard_folder_of_the_previous_format_loads(tmp_path, tiny_retriever):
    folder = tmp_path / "shards"
    manifest = write_old_shard_folder(folder, shard_rows(5))
    assert manifest_spec(manifest) == ModelSpec(passt_weights=None)  # the tagger, weights not recorded
    with FaissStore(tmp_path / "data", tiny_retriever.spec) as store:
        collection = Collection(store, tiny_retriever, data_dir=tmp_path)
        report = load_shards(collection, folder, ledger=tmp_path / "ledger.json", progress=False)
        assert (report.added, report.skipped, report.failed) == (5, 0, [])
        want = tiny_retriever.project(np.stack([logits(i) for i in range(5)]))  # (5, D)
        top = store.search(want, 1)
        assert [row[0].record.name for row in top] == [f"clip{i}.wav" for i in range(5)]
        np.testing.assert_allclose([row[0].score for row in top], 1.0, atol=1e-5)
        assert store.window_count() == 0 and len(store.without_windows()) == 5  # the shards hold none


def test_a_shard_folder_of_the_previous_format_of_another_tagger_is_refused(tmp_path, tiny_retriever):
    folder = tmp_path / "shards"
    write_old_shard_folder(folder, shard_rows(3), tagger={**TAGGER, "hop_s": 5.0})
    with FaissStore(tmp_path / "data", tiny_retriever.spec) as store:
        with pytest.raises(CheckpointMismatch, match="tagger") as e:
            collection = Collection(store, tiny_retriever, data_dir=tmp_path)
            load_shards(collection, folder, ledger=tmp_path / "ledger.json", progress=False)
        assert "hop_s" in str(e.value)
        assert store.count() == 0


def test_new_shards_join_a_folder_of_the_previous_format_of_the_same_tagger_only(tmp_path):
    folder = tmp_path / "shards"
    write_old_shard_folder(folder, shard_rows(2))
    spec = ModelSpec(passt_weights="random")
    merged = _write_manifest(folder, shards=["shard-001.parquet"], weights="random", spec=spec)
    assert merged["shards"] == ["shard-000.parquet", "shard-001.parquet"]
    assert json.loads((folder / MANIFEST).read_text()) == merged and manifest_spec(merged) == spec
    other = tmp_path / "other"
    write_old_shard_folder(other, shard_rows(2), tagger={**TAGGER, "window_s": 5.0})
    with pytest.raises(CheckpointMismatch, match="window_s"):
        _write_manifest(other, shards=["shard-001.parquet"], weights="random", spec=spec)
    assert "tagger" in json.loads((other / MANIFEST).read_text())  # left as it was


# -- a checkpoint and a store of the previous format, served together --------------------------------------
def test_a_store_and_its_checkpoint_of_the_previous_format_serve_and_reproject(tmp_path, settings,
                                                                              text_encoder):
    from app.compose import build_retriever, open_collection

    E = text_encoder.encode(["speech", "music", "rain"] * 175 + ["dog", "engine"], clean=False)  # (527, D)
    ckpt_path = tmp_path / "old-head.safetensors"
    write_old_checkpoint(ckpt_path, head_config(text_model=text_encoder.model_id, dim=text_encoder.dim,
                                                lam=0.8), tag_embeddings=E)
    old = load_checkpoint(ckpt_path)  # the oracle of the old vectors: the same weights
    lg = np.stack([logits(i) for i in range(N)])
    with torch.inference_mode():
        xb = old.head.encode_audio(torch.from_numpy(lg)).numpy()  # (N, D)
    fp = fingerprint(head=sha256_file(ckpt_path), text_model=text_encoder.model_id, dim=text_encoder.dim)
    ids = write_old_faiss_store(settings.data_dir, fp, [clip(i) for i in range(N)], xb, lg)

    settings.checkpoint = ckpt_path
    retriever = build_retriever(settings, with_audio=False, text=text_encoder)
    assert retriever.spec.head == old.spec.head == sha256_file(ckpt_path) and retriever.spec.lam == 0.8
    with open_collection(settings, retriever) as c:
        assert c.count() == N
        hit = c.search_vector(retriever.project(lg[6:7]), k=1)[0]
        assert hit.record.id == ids[6] and hit.score == pytest.approx(1.0, abs=1e-5)
        scores = xb @ retriever.encode_text(["a dog barks"])[0]  # (N,)
        hits = c.search_text("a dog barks", k=3)
        assert [h.record.id for h in hits] == [ids[i] for i in np.argsort(-scores)[:3]]
        np.testing.assert_allclose([h.score for h in hits], np.sort(scores)[::-1][:3], atol=1e-5)

    torch.manual_seed(5)
    new_path = tmp_path / "new-head.safetensors"
    save_checkpoint(new_path, Checkpoint(RetrievalHead(torch.from_numpy(E), lam=0.5),
                                         text_spec(retriever.spec, text_encoder)))
    settings.checkpoint = new_path
    other = build_retriever(settings, with_audio=False, text=text_encoder)
    with pytest.raises(CheckpointMismatch, match="`retrieval index reproject` .no PaSST needed."):
        open_collection(settings, other)
    settings.checkpoint = ckpt_path
    with open_collection(settings, retriever) as c:
        assert c.reproject(new_path) == N
    settings.checkpoint = new_path
    with open_collection(settings, build_retriever(settings, with_audio=False, text=text_encoder)) as c:
        assert c.store.spec == other.spec and c.store.spec.lam == 0.5
        want = other.project(lg)
        hit = c.search_vector(want[2], k=1)[0]
        assert hit.record.id == ids[2] and hit.score == pytest.approx(1.0, abs=1e-5)


def test_a_checkpoint_of_the_previous_format_for_another_text_model_is_refused(tmp_path, text_encoder):
    path = tmp_path / "mpnet-head.safetensors"
    write_old_checkpoint(path, head_config(text_model="sentence-transformers/all-mpnet-base-v2", dim=768,
                                           lam=0.8), tag_embeddings=unit_vectors(527, 768))
    passt = ModelSpec(passt_weights="random")
    with pytest.raises(CheckpointMismatch, match="the text model and PaSST the head was trained") as e:
        Retriever(text_encoder, load_checkpoint(path), passt=passt)
    assert "text_model" in str(e.value) and "dim" in str(e.value)
