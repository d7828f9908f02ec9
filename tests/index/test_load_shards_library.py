"""`index load-shards` follows a library changed since an earlier load as `index add` does: a stored clip
whose file moved goes with it, a file changed where it lies replaces its old clip (which gives it what the
user set), and a shard older than the library changes nothing a later load made."""

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from index.collection import Collection
from index.faiss.store import FaissStore
from index.ingest.bulk_load import load_shards
from index.store.metadata import Metadata
from retrieval.audio import audio_sha256, decode_audio
from retrieval.durable import sha256_file
from tests.audio_fixtures import noise, sine, write
from tests.index.store_fixtures import logits
from tests.legacy_files import write_old_shard_folder


def rows(*files) -> list[dict]:
    """A shard row for each (path, logits seed): what extraction would have written for the file now."""
    return [{"path": str(path), "name": path.name, "sha256": sha256_file(path), "duration": 1.0,
             "sample_rate": 32000, "logits": logits(seed), "error": ""} for path, seed in files]


def test_a_moved_file_s_clip_follows_it_and_a_changed_one_is_replaced(tmp_path, retriever):
    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    a, b, c = write(lib / "a.wav", sine(330)), write(lib / "b.wav", sine(550)), write(lib / "c.wav", noise())
    first = rows((a, 0), (b, 1), (c, 2))
    write_old_shard_folder(tmp_path / "shards1", first)
    with FaissStore(tmp_path / "data", retriever.spec) as store:
        collection = Collection(store, retriever, data_dir=tmp_path / "data")
        report = load_shards(collection, tmp_path / "shards1", ledger=tmp_path / "ledger1.json",
                             progress=False)
        assert (report.added, report.moved, report.replaced) == (3, 0, 0)
        clip_a, clip_b = store.get_by_sha256(first[0]["sha256"]), store.get_by_sha256(first[1]["sha256"])
        collection.edit_metadata(clip_b.id, lambda _: Metadata.of(description="take 2, the good one",
                                                                  tags=["keep"]))

        moved = lib / "sub" / "a renamed.wav"
        shutil.move(a, moved)  # reorganised
        write(b, sine(550, amplitude=0.2))  # re-edited where it lies: other bytes, other audio
        second = rows((moved, 0), (b, 3), (c, 2))
        write_old_shard_folder(tmp_path / "shards2", second)
        report = load_shards(collection, tmp_path / "shards2", ledger=tmp_path / "ledger2.json",
                             progress=False)
        assert (report.added, report.skipped, report.moved, report.replaced) == (1, 2, 1, 1)
        assert store.count() == 3

        now_a = store.get(clip_a.id)  # the same clip, where its file is now, named as it is
        assert (now_a.location, now_a.name) == (str(moved), "a renamed.wav")
        assert store.get(clip_b.id) is None  # the old take of b.wav is gone ...
        [now_b] = store.at_location(str(b))  # ... replaced by what the file holds now, with the user's words
        assert now_b.sha256 == second[1]["sha256"] != clip_b.sha256
        assert (now_b.meta.description, now_b.meta.tags) == ("take 2, the good one", ("keep",))
        np.testing.assert_allclose(store.logits([now_b.id])[0], logits(3), atol=1e-6)

        # the first shards again (an older extraction): b.wav's old bytes are added, as content, but replace
        # nothing, since the file holds other bytes now; a.wav's row moves nothing back
        report = load_shards(collection, tmp_path / "shards1", ledger=tmp_path / "ledger1.json", redo=True,
                             progress=False)
        assert (report.added, report.moved, report.replaced) == (1, 0, 0)
        assert store.get(now_b.id) is not None and store.get(clip_a.id).location == str(moved)


def test_a_copy_of_a_changed_file_keeps_the_old_clip(tmp_path, retriever):
    """A copy made before the file changed holds the old bytes: their clip stays (it moves to the copy when
    the copy's row comes), and the file's new bytes get a clip of their own."""
    lib = tmp_path / "lib"
    lib.mkdir()
    b = write(lib / "b.wav", sine(550))
    write_old_shard_folder(tmp_path / "shards1", rows((b, 1)))
    with FaissStore(tmp_path / "data", retriever.spec) as store:
        collection = Collection(store, retriever, data_dir=tmp_path / "data")
        load_shards(collection, tmp_path / "shards1", ledger=tmp_path / "ledger.json",
                             progress=False)
        [old] = store.at_location(str(b))
        copy = shutil.copy(b, lib / "z copy of b.wav")  # after b.wav's row in the shard
        write(b, sine(550, amplitude=0.2))
        write_old_shard_folder(tmp_path / "shards2", rows((b, 3), (lib / "z copy of b.wav", 1)))
        report = load_shards(collection, tmp_path / "shards2", ledger=tmp_path / "ledger.json",
                             progress=False)
        assert (report.added, report.moved, report.replaced) == (1, 1, 0)
        assert store.get(old.id).location == str(copy) and store.count() == 2


def fingerprinted(folder, files) -> None:
    """A shard of `rows(*files)` with the audio fingerprint column extraction writes (`audio_sha256`)."""
    manifest_rows = rows(*files)
    write_old_shard_folder(folder, manifest_rows)
    shard = folder / "shard-000.parquet"
    table = pq.read_table(shard)
    prints = [audio_sha256(decode_audio(path).wave) for path, _ in files]
    pq.write_table(table.append_column("audio_sha256", pa.array(prints, pa.string())), shard)


def titled(path, title: str, freq: float = 440.0):
    """The same samples each time, in bytes that differ with the title (RIFF INFO)."""
    with sf.SoundFile(path, "w", 32000, 1, "PCM_16") as f:
        f.title = title
        f.write(sine(freq))
    return path


def test_a_file_retagged_and_a_file_moved_and_retagged_keep_their_clips(tmp_path, retriever):
    """Other bytes, the same audio: the clip stays (its id, the user's metadata, its logits and windows), with
    the file's new sha256, place and metadata, as `index add` keeps it; a new clip beside it was left for
    good (`index add` then skipped the file, stored by content)."""
    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    e, f = titled(lib / "e.wav", "take one", 330.0), titled(lib / "f.wav", "take one", 550.0)
    fingerprinted(tmp_path / "shards1", [(e, 0), (f, 1)])
    with FaissStore(tmp_path / "data", retriever.spec) as store:
        collection = Collection(store, retriever, data_dir=tmp_path / "data")
        load_shards(collection, tmp_path / "shards1", ledger=tmp_path / "ledger1.json", progress=False)
        clip_e, clip_f = (store.at_location(str(p))[0] for p in (e, f))
        collection.edit_metadata(clip_e.id, lambda _: Metadata.of(description="my own words"))

        moved = lib / "sub" / "e renamed.wav"
        e.unlink()
        titled(moved, "take two", 330.0)  # renamed and retagged at once
        titled(f, "take two", 550.0)  # retagged where it lies
        fingerprinted(tmp_path / "shards2", [(moved, 0), (f, 1)])
        report = load_shards(collection, tmp_path / "shards2", ledger=tmp_path / "ledger2.json",
                             progress=False)
        assert (report.added, report.retagged, report.moved, report.replaced) == (0, 2, 1, 0)
        assert store.count() == 2
        now_e, now_f = store.get(clip_e.id), store.get(clip_f.id)
        assert (now_e.location, now_e.name, now_e.sha256) == (str(moved), "e renamed.wav", sha256_file(moved))
        assert now_e.meta.description == "my own words"
        assert (now_f.location, now_f.sha256) == (str(f), sha256_file(f)) and now_f.sha256 != clip_f.sha256
        assert now_f.meta_layers.file.fields == (("title", "take two"),)


def test_a_shard_cut_short_is_refused_naming_it(tmp_path, retriever):
    """A shard cut short (extraction killed, or a full disk) was refused with pyarrow's "Parquet magic bytes
    not found in footer", naming no file; nothing is loaded from the folder."""
    import pytest

    from retrieval.errors import RetrievalError

    lib = tmp_path / "lib"
    lib.mkdir()
    a = write(lib / "a.wav", sine(330))
    write_old_shard_folder(tmp_path / "shards", rows((a, 0)))
    shard = tmp_path / "shards" / "shard-000.parquet"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with FaissStore(tmp_path / "data", retriever.spec) as store:
        collection = Collection(store, retriever, data_dir=tmp_path / "data")
        with pytest.raises(RetrievalError, match=f"^{shard} is not a whole Parquet shard"):
            load_shards(collection, tmp_path / "shards", ledger=tmp_path / "ledger.json", progress=False)
        assert store.count() == 0
