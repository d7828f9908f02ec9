"""`index load-shards` follows a library changed since an earlier load as `index add` does: a stored clip
whose file moved goes with it, a file changed where it lies replaces its old clip (which gives it what the
user set), and a shard older than the library changes nothing a later load made."""

import shutil

import numpy as np

from index.collection import Collection
from index.faiss.store import FaissStore
from index.ingest.bulk_load import load_shards
from index.store.metadata import Metadata
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
