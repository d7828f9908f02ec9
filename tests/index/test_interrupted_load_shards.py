"""`index load-shards` stopped at any point (a kill: simulated by raising, where nothing catches it, at a
chosen call) then run again leaves the store a whole run leaves: the same clips, metadata and vectors. A file
changed in place is replaced once, its clip taking the user's words, though its new clip was stored by the
stopped run; a clip moved over a changed file keeps its own words."""

import dataclasses
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from index.collection import Collection
from index.faiss.store import FaissStore
from index.ingest import bulk_load
from index.layout import shard_journal
from index.store.metadata import Metadata
from tests.audio_fixtures import noise, sine, write
from tests.index.test_load_shards_library import fingerprinted, titled


class Killed(BaseException):
    """The process dies here: nothing in the code under test handles it."""


def library(tmp_path):
    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    files = {"a": write(lib / "a.wav", sine(330)), "b": write(lib / "b.wav", sine(550)),
             "c": write(lib / "c.wav", noise()), "d": write(lib / "d.wav", sine(770)),
             "e": write(lib / "e.wav", sine(990)), "f": titled(lib / "f.wav", "take one", 220.0)}
    return lib, files


def shards(folder, files) -> None:
    """What extraction writes now for these (path, logits seed): fingerprints, the files' metadata (none)."""
    fingerprinted(folder, files)
    shard = folder / "shard-000.parquet"
    table = pq.read_table(shard)
    pq.write_table(table.append_column("metadata", pa.array([""] * len(files), pa.string())), shard)


def dump(store) -> list[tuple]:
    """Every clip, by place and content: its record (less id and time) and its vector."""
    ids = store.ids().tolist()
    records, vectors = store.records(ids), store.vectors(ids)
    out = []
    for i, id_ in enumerate(ids):
        record = dataclasses.asdict(records[id_])
        record.pop("id"), record.pop("added_at")
        out.append((record["location"], record["sha256"], repr(record), np.round(vectors[i], 5).tobytes()))
    return sorted(out)


@pytest.fixture(scope="module")
def changed(tmp_path_factory, retriever):
    """A store of the library's first load, the user's words on b, d and e; then the library changed: a moved,
    b rewritten in place, d moved over e (e's sound gone), f retagged; and the shards of it now."""
    tmp_path = tmp_path_factory.mktemp("interrupted")
    lib, files = library(tmp_path)
    shards(tmp_path / "shards1", [(files[k], i) for i, k in enumerate("abcdef")])
    data = tmp_path / "data"
    with FaissStore(data, retriever.spec) as store:
        collection = Collection(store, retriever, data_dir=data)
        bulk_load.load_shards(collection, tmp_path / "shards1", ledger=data / "ledger.json", progress=False)
        for key, meta in (("b", Metadata.of(description="take 2, the good one", tags=["keep"])),
                          ("d", Metadata.of(description="the d sound")),
                          ("e", Metadata.of(description="the e sound", tags=["e's"]))):
            [clip] = store.at_location(str(files[key]))
            collection.edit_metadata(clip.id, lambda _, m=meta: m)
    moved = lib / "sub" / "a renamed.wav"
    shutil.move(files["a"], moved)
    write(files["b"], sine(550, amplitude=0.2))
    shutil.move(files["d"], files["e"])
    titled(files["f"], "take two", 220.0)
    shards(tmp_path / "shards2", [(moved, 0), (files["b"], 6), (files["c"], 2), (files["e"], 3),
                                         (files["f"], 5)])
    return tmp_path, data


def load(tmp_path, data, retriever) -> None:
    with FaissStore(data, retriever.spec) as store:
        collection = Collection(store, retriever, data_dir=data)
        bulk_load.load_shards(collection, tmp_path / "shards2", ledger=data / "ledger.json", progress=False)


def dumped(data, retriever) -> list[tuple]:
    with FaissStore(data, retriever.spec) as store:
        return dump(store)


@pytest.fixture(scope="module")
def clean(changed, retriever):
    tmp_path, data = changed
    shutil.copytree(data, tmp_path / "clean")
    load(tmp_path, tmp_path / "clean", retriever)
    return dumped(tmp_path / "clean", retriever)


def test_a_whole_run_replaces_the_changed_file_s_clip_and_moves_the_others(clean, changed):
    _, data = changed
    by_place = {}
    for location, _, record, _ in clean:
        by_place.setdefault(location, []).append(record)
    assert len(clean) == 5 and all(len(v) == 1 for v in by_place.values())  # a moved, e's old sound gone
    b, e = (next(r for p, r in by_place.items() if p.endswith(n)) for n in ("b.wav", "e.wav"))
    assert "take 2, the good one" in b[0] and "'keep'" in b[0]
    assert "the d sound" in e[0] and "the e sound" not in e[0] and "e's" not in e[0]


@pytest.mark.parametrize("where, when, nth", [
    ("_replace_changed", "before", 1),  # every clip stored, nothing replaced
    ("move_here", "after", 1),  # a's clip moved, before the others
    ("move_here", "after", 2),  # d's clip moved over e, e's old clip there
    ("retagged", "after", 1),
    ("_add", "after", 1),  # b's new clip stored (one clip a batch)
    ("Collection.remove", "before", 1),  # inside a replacement: the user's words given, the old clip there
])
def test_a_load_killed_then_run_again_leaves_what_a_whole_run_leaves(changed, clean, retriever, monkeypatch,
                                                                      where, when, nth):
    tmp_path, data = changed
    killed = tmp_path / f"killed-{where}-{nth}"
    shutil.copytree(data, killed)
    owner, name = (Collection, "remove") if where == "Collection.remove" else (bulk_load, where)
    real, calls = getattr(owner, name), []

    def dies(*args, **kwargs):
        calls.append(name)
        if len(calls) == nth and when == "before":
            raise Killed
        out = real(*args, **kwargs)
        if len(calls) == nth:
            raise Killed
        return out

    with monkeypatch.context() as patch:
        patch.setattr(bulk_load, "CHUNK", 1)
        patch.setattr(owner, name, dies)
        with pytest.raises(Killed):
            load(tmp_path, killed, retriever)
    assert len(calls) == nth
    load(tmp_path, killed, retriever)
    assert dumped(killed, retriever) == clean
    assert not shard_journal(killed / "ledger.json").exists()  # done with


def test_the_journal_keeps_only_what_stopped_runs_noted_of_shards_still_to_load(tmp_path):
    """Every clip a later load added was appended to the journal, which was removed only once the stopped
    folder was loaded again (never, once that folder was gone): it is pruned at the end of each run."""
    stopped, other = tmp_path / "a.parquet", tmp_path / "b.parquet"
    stopped.write_bytes(b"shard")
    other.write_bytes(b"shard")
    journal = bulk_load.Journal(tmp_path / "loaded-shards-faiss.loading")
    journal.note(stopped, [("1" * 64, "/lib/x.wav", False)])
    journal.note(other, [("2" * 64, "/lib/y.wav", True)])
    bulk_load.Journal(journal.path).prune({str(other)})  # a run that loaded the other folder
    kept = bulk_load.Journal(journal.path)
    assert list(kept.noted) == [(str(stopped), "1" * 64, "/lib/x.wav")]
    stopped.unlink()  # the stopped run's shards were removed: nothing of them can be loaded again
    kept.prune({str(other)})
    assert not journal.path.exists()
