"""Stores that share a data directory (the FAISS store and a Qdrant collection, or two collections): stored
uploads are named by their content and may be any of theirs, so opening, removing or checking one store
never deletes an upload; a data directory of one store still loses the copies a crash left behind."""

import os
import time

import numpy as np

from app.compose import open_collection
from index.backups.check import check_store
from index.layout import stores_of
from index.store.records import NewClip
from retrieval.durable import sha256_bytes
from tests.app.conftest import wav_bytes
from tests.audio_fixtures import sine


def upload(collection, seed: float):
    """An upload's copy and its clip (as the worker stores them), made an hour old."""
    data = wav_bytes(sine(seed, seconds=0.3))
    sha = sha256_bytes(data)
    path = collection.audio_dir / f"{sha}.wav"
    path.write_bytes(data)
    hour_ago = time.time() - 3600
    os.utime(path, (hour_ago, hour_ago))
    clip = NewClip(name="up.wav", location=f"audio/{sha}.wav", sha256=sha, duration=0.3, sample_rate=32_000,
                   tags=(), stored_copy=True)
    logits = np.random.default_rng(int(seed)).normal(size=527).astype(np.float32)
    record = collection.store.add(clip, collection.retriever.project(logits[None])[0], logits)
    return record, path


def test_another_store_in_the_data_directory_leaves_the_uploads_alone(settings, tone_retriever):
    from app.compose import store_config

    with open_collection(settings, tone_retriever) as faiss:
        record, path = upload(faiss, 440.0)
    assert stores_of(settings.data_dir) == {"faiss"}
    qdrant = settings.model_copy(update={"store_backend": "qdrant"})
    with open_collection(qdrant, tone_retriever) as other:  # opened: its orphan pass ran
        assert other.shares_uploads and other.count() == 0
        mine, mine_path = upload(other, 880.0)
        other.remove([mine.id])
    assert path.is_file() and mine_path.is_file()  # a copy is kept with its clip gone: it may be faiss's
    assert stores_of(settings.data_dir) == {"faiss", "qdrant-clips"}
    report = check_store(store_config(settings), repair=True)
    assert report.errors == [] and path.is_file() and mine_path.is_file()
    with open_collection(settings, tone_retriever) as faiss:
        assert faiss.get(record.id).location == f"audio/{path.name}"


def test_a_data_directory_of_one_store_still_loses_what_a_crash_left(settings, tone_retriever):
    with open_collection(settings, tone_retriever) as c:
        record, path = upload(c, 440.0)
        assert not c.shares_uploads
        orphan = c.audio_dir / ("0" * 64 + ".wav")
        orphan.write_bytes(b"RIFF")
        os.utime(orphan, (time.time() - 3600,) * 2)
    with open_collection(settings, tone_retriever) as c:
        assert not orphan.exists() and path.is_file()
        c.remove([record.id])
        assert not path.exists()


def test_the_stores_of_a_folder_from_before_the_list_are_found_on_disk(tmp_path):
    (tmp_path / "index.sqlite").write_bytes(b"")
    for name in ("sfx-g0", "sfx-windows-g0", "music-g3", "music-windows-g3"):
        (tmp_path / "qdrant" / "collection" / name).mkdir(parents=True)
    assert stores_of(tmp_path) == {"faiss", "qdrant-sfx", "qdrant-music"}
    assert not (tmp_path / "stores.txt").exists()  # only a store opening writes the list
    assert stores_of(tmp_path, "qdrant-new") == {"faiss", "qdrant-sfx", "qdrant-music", "qdrant-new"}
    assert stores_of(tmp_path) == {"faiss", "qdrant-sfx", "qdrant-music", "qdrant-new"}


def test_a_store_opened_alone_keeps_its_uploads_once_another_opens_the_folder(settings, tone_retriever):
    """Whether uploads are shared is read when one would be deleted, not when the store opened: a service
    running alone, then another store opened in its folder (a second service), keeps its removed clips'
    copies (the other may hold the same bytes)."""
    with open_collection(settings, tone_retriever) as faiss:
        record, path = upload(faiss, 440.0)
        assert not faiss.shares_uploads
        qdrant = settings.model_copy(update={"store_backend": "qdrant"})
        with open_collection(qdrant, tone_retriever):
            pass
        assert faiss.shares_uploads
        faiss.remove([record.id])
        assert path.is_file()


def test_a_collection_opened_without_its_store_s_name_counts_two_listed_stores_as_shared(tmp_path):
    from index.collection import Collection

    unnamed = Collection(None, None, data_dir=tmp_path)  # type: ignore[arg-type]  # the store is not asked
    stores_of(tmp_path, "faiss")
    assert not unnamed.shares_uploads  # one store listed: it may be this one
    stores_of(tmp_path, "qdrant-clips")
    assert unnamed.shares_uploads
    alone = Collection(None, None, data_dir=tmp_path / "new", store_name="faiss")  # type: ignore[arg-type]
    assert not alone.shares_uploads


def test_qdrant_collection_names_split_into_alias_and_generation(tmp_path):
    """One reading of `<alias>-g<N>` for the store, the folder's listing and the settings' check."""
    from index.layout import qdrant_collections, qdrant_name_taken, split_generation

    assert split_generation("sfx-g2") == ("sfx", 2)
    assert split_generation("sfx-windows-g10") == ("sfx-windows", 10)
    assert split_generation("x-g1-g3") == ("x-g1", 3)
    assert split_generation("sfx") is None and split_generation("sfx-g") is None
    assert split_generation("sfx-g2b") is None
    assert [qdrant_name_taken(n) for n in ("sfx-windows", "sfx-g7", "sfx", "sfx-g", "windows")] == [
        True, True, False, False, False]
    # a store named as the restore of `sfx` stages itself on a server would be emptied by that restore
    assert qdrant_name_taken("sfx-restoring") and not qdrant_name_taken("restoring")
    folder = tmp_path / "qdrant" / "collection"
    for name in ("clips-g0", "clips-windows-g0", "music-g3", "music-windows-g3", "takes-windows-g1", "old"):
        (folder / name).mkdir(parents=True)
    assert qdrant_collections(tmp_path) == {"clips", "music", "takes-windows", "old"}
