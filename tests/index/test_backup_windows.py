"""Backups hold every clip's windows and peaks (windows.parquet, format 5) and a restore puts them back: the
restored store answers moment searches and segments as the source did, on either backend; a backup of an
older format restores its clips without windows and says so; a windows table that does not match its clips
is refused before anything is written; windows are read from the clips' own snapshot, a page at a time."""

import io
import json
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import index.backups.writer as writer
from index.backups.archive import BackupInvalid
from index.backups.backup import backup
from index.backups.reader import open_backup
from index.backups.restore import restore
from index.store.records import MomentQuery
from index.stores import open_store
from retrieval.durable import sha256_file
from tests.index.backup_fixtures import OLDER_FORMATS, config, fill, first_format_copy, rewritten, timeline
from tests.index.store_fixtures import DIM, SPEC, unit_vectors

PAIRS = [("faiss", "faiss"), ("faiss", "qdrant"), ("qdrant", "faiss")]


def with_windows(n: int = 24, remove: tuple[int, ...] = (3, 24)) -> list[int]:
    """The ids of fill's clips that have windows (clip i is id i + 1)."""
    return [i + 1 for i in range(n) if timeline(i) is not None and i + 1 not in remove]


def stored(cfg) -> dict:
    """What a store keeps of its clips' time axis: {id: (starts, ends, float16 vectors, logits as stored,
    peaks)}, the clips without windows, and the stats' window figures."""
    with open_store(cfg, SPEC) as store:
        ids = store.ids().tolist()
        found = store.timelines(ids, logits=True)
        stats = store.stats()
        return {"timelines": {i: (t.windows.starts, t.windows.ends, t.windows.vectors, t.windows.logits,
                                  t.peaks) for i, t in found.items()},
                "peaks": {i: store.peaks(i) for i in ids},
                "without": store.without_windows().tolist(),
                "stats": (stats["windows"], stats["clips_without_windows"])}


def moments(cfg, xq: np.ndarray) -> list:
    """Each query's moments (ids, spans, scores) at the default margin and at a fixed threshold, and the
    best window of each of its first hits (the segment a hit carries)."""
    with open_store(cfg, SPEC) as store:
        out = []
        for q in xq:
            for asked in (MomentQuery(per_clip=2), MomentQuery(per_clip=3, threshold=0.0)):
                out.append([(h.record.id, h.segment.start, h.segment.end, h.score)
                            for h in store.search_moments(q, 6, moments=asked) if h.segment is not None])
            ids = [h.record.id for h in store.search(q[None], 8)[0]]
            out.append(sorted((i, m.start, m.end, m.score) for i, m in store.best_windows(q, ids).items()))
        return out


def same_moments(got: list, want: list) -> None:
    assert len(got) == len(want) and any(want)
    for g, w in zip(got, want, strict=True):
        assert [(i, s, e) for i, s, e, _ in g] == [(i, s, e) for i, s, e, _ in w]
        np.testing.assert_allclose([x[3] for x in g], [x[3] for x in w], atol=1e-3)


def same_timelines(got: dict, want: dict) -> None:
    assert sorted(got["timelines"]) == sorted(want["timelines"])
    for i, (starts, ends, vectors, logits, peaks) in want["timelines"].items():
        g = got["timelines"][i]
        np.testing.assert_array_equal(g[0], starts)
        np.testing.assert_array_equal(g[1], ends)
        assert g[2].dtype == np.float16
        np.testing.assert_array_equal(g[2], vectors)  # float16, exactly
        np.testing.assert_array_equal(g[3].astype(np.float16), logits.astype(np.float16))
        np.testing.assert_array_equal(g[4], peaks)
    assert got["peaks"].keys() == want["peaks"].keys()
    for i, p in want["peaks"].items():
        assert (got["peaks"][i] is None) == (p is None) and (p is None or np.array_equal(got["peaks"][i], p))
    assert got["without"] == want["without"] and got["stats"] == want["stats"]


@pytest.fixture
def source(tmp_path):
    return fill(tmp_path / "src", windows=True)


@pytest.fixture
def backup_file(tmp_path, source):
    path = tmp_path / "b.zip"
    report = backup(source["config"], path)
    assert report.clips_with_windows == len(with_windows())
    return path


def test_windows_parquet_holds_every_clips_windows_and_peaks_as_stored(tmp_path, source, backup_file):
    want = stored(source["config"])
    with zipfile.ZipFile(backup_file) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        zf.extractall(tmp_path / "unzipped")
    assert manifest["format"] == "retrieval-backup/5"
    member = manifest["members"]["windows.parquet"]  # listed and checked as every member is
    path = tmp_path / "unzipped" / "windows.parquet"
    assert path.stat().st_size == member["size"] and sha256_file(path) == member["sha256"]
    windows = sum(len(t[0]) for t in want["timelines"].values())
    assert manifest["tables"]["windows.parquet"] == {"rows": len(with_windows()), "windows": windows,
                                                     "dim": DIM}

    import pandas as pd

    table = pd.read_parquet(path)  # other tools read it
    assert table["id"].tolist() == with_windows() == sorted(want["timelines"])
    assert not set(table["id"]) & set(want["without"])  # a clip without windows has no row
    schema = pq.read_schema(path)
    assert schema.field("vectors").type == pa.list_(pa.list_(pa.float16(), DIM))
    assert schema.field("logits").type == pa.list_(pa.list_(pa.float16(), 527))
    for _, row in table.iterrows():
        starts, ends, vectors, logits, peaks = want["timelines"][row["id"]]
        np.testing.assert_array_equal(row["starts"], starts)
        np.testing.assert_array_equal(row["ends"], ends)
        np.testing.assert_array_equal(np.stack(row["vectors"]).astype(np.float16), vectors)
        np.testing.assert_array_equal(np.stack(row["logits"]).astype(np.float16), logits.astype(np.float16))
        np.testing.assert_array_equal(np.asarray(row["peaks"], np.uint8), peaks)


@pytest.mark.parametrize("source_backend,target_backend", PAIRS)
def test_restore_gives_every_clip_its_windows_and_peaks_and_the_same_moments(tmp_path, source_backend,
                                                                             target_backend):
    src = fill(tmp_path / "src", backend=source_backend, windows=True)
    path = tmp_path / "b.zip"
    made = backup(src["config"], path)
    want = stored(src["config"])
    xq = unit_vectors(5, seed=21)
    want_moments = moments(src["config"], xq)
    assert made.clips_with_windows == len(want["timelines"]) == len(with_windows())
    assert made.windows == want["stats"][0] and want["without"] and want["stats"][1] == len(want["without"])

    target = config(tmp_path / "dst", target_backend)
    report = restore(path, target, configured=SPEC)
    assert report.clips == src["n"] and report.without_windows is None
    assert (report.clips_with_windows, report.windows) == (made.clips_with_windows, made.windows)
    same_timelines(stored(target), want)  # clips without windows still have none
    same_moments(moments(target, xq), want_moments)
    if target_backend == "faiss":  # what the user's audit counted
        with sqlite3.connect(tmp_path / "dst" / "index.sqlite") as con:
            assert con.execute("SELECT count(*) FROM windows").fetchone()[0] == made.windows


@pytest.mark.parametrize("fmt", sorted(OLDER_FORMATS))
def test_a_backup_of_an_older_format_restores_its_clips_without_windows_and_says_so(tmp_path, backup_file,
                                                                                    source, fmt):
    old = first_format_copy(backup_file, tmp_path / "old.zip", fmt)
    with open_backup(old) as b:
        assert not b.has_windows and list(b.timelines()) == []
    target = config(tmp_path / "dst")
    report = restore(old, target, configured=SPEC)
    assert report.clips == source["n"] and report.without_windows == fmt
    assert (report.clips_with_windows, report.windows) == (0, 0)
    got = stored(target)
    assert got["timelines"] == {} and got["stats"] == (0, source["n"]) and len(got["without"]) == source["n"]


def damaged_windows(backup_file: Path, tmp_path: Path) -> dict[str, Path]:
    """Copies whose windows.parquet does not match their clips (each sealed and listed anew, as a file made so
    would be)."""
    def table_edit(edit):
        def members(name: str, data: bytes) -> bytes | None:
            if name != "windows.parquet":
                return data
            table = edit(pq.read_table(io.BytesIO(data)))
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            return sink.getvalue().to_pybytes()
        return members

    def with_ids(ids):
        return lambda t: t.set_column(0, "id", pa.array(ids, pa.int64()))

    ids = with_windows()
    stranger = [3 if i == 4 else i for i in ids]  # clip 3 was removed: it is not in clips.parquet
    swapped = [ids[1], ids[0], *ids[2:]]
    short = table_edit(lambda t: t.set_column(2, "ends", pa.array([e[:-1] if k == 3 else e for k, e in
                                                                   enumerate(t.column("ends").to_pylist())],
                                                                  pa.list_(pa.float64()))))
    def spans_edit(column: int, name: str, edit):
        return table_edit(lambda t: t.set_column(column, name, pa.array(
            [edit(e) if k == 3 else e for k, e in enumerate(t.column(name).to_pylist())],
            pa.list_(pa.float64()))))

    out = {}
    for name, members, manifest in (
            ("late-spans", spans_edit(2, "ends", lambda e: [x + 60.0 for x in e]), lambda m: None),
            ("disordered-spans", spans_edit(1, "starts", lambda e: e[::-1]), lambda m: None),
            ("stranger", table_edit(with_ids(stranger)), lambda m: None),
            ("unordered", table_edit(with_ids(swapped)), lambda m: None),
            ("short-spans", short, lambda m: None),
            ("rows-miscounted", lambda n, d: d, lambda m: m["tables"]["windows.parquet"].update(rows=3)),
            ("windows-miscounted", lambda n, d: d,
             lambda m: m["tables"]["windows.parquet"].update(windows=1)),
            ("missing", lambda n, d: None if n == "windows.parquet" else d, lambda m: None),
            ("not-parquet", lambda n, d: b"not parquet" if n == "windows.parquet" else d, lambda m: None)):
        out[name] = rewritten(backup_file, tmp_path / f"{name}.zip", members=members, manifest=manifest)
    return out


def test_a_windows_table_that_does_not_match_its_clips_is_refused_before_anything_is_written(tmp_path,
                                                                                            backup_file):
    target = config(tmp_path / "parent" / "dst")
    messages = {"stranger": "clips that are not in clips.parquet: [3]",
                "unordered": "ids of windows.parquet are not ascending",
                "short-spans": "windows in windows.parquet: expected (W,) starts and ends",
                "late-spans": "windows in windows.parquet: a window ends at 6",
                "disordered-spans": "windows in windows.parquet: window spans must be in time order",
                "rows-miscounted": f"windows.parquet has {len(with_windows())} rows, the manifest says 3",
                "windows-miscounted": "the manifest says 1",
                "missing": "holds no windows.parquet",
                "not-parquet": "windows.parquet is not a readable Parquet file"}
    for name, path in damaged_windows(backup_file, tmp_path).items():
        with pytest.raises(BackupInvalid) as e:
            restore(path, target, configured=SPEC)
        assert messages[name] in str(e.value) and str(path) in str(e.value), (name, str(e.value))
        assert not (tmp_path / "parent").exists(), name


@pytest.mark.parametrize("backend", ["faiss", "qdrant"])
def test_a_clip_deleted_while_its_windows_are_read_is_in_the_backup_whole_or_not_at_all(tmp_path, monkeypatch,
                                                                                       backend):
    """FAISS reads the windows from the clips' snapshot: a clip deleted meanwhile is in the backup with its
    windows. Qdrant reads the live collection: the clip is left out whole, windows and all."""
    import index.qdrant.open as qdrant_open

    src = fill(tmp_path / "src", backend=backend, windows=True)
    victim = with_windows()[2]  # folder-indexed (no bytes to copy): only its windows read can miss it
    before = stored(src["config"])["timelines"]
    opened = []
    real_open, real_source = qdrant_open.open_existing, writer.open_source

    def open_existing(**kw):  # the backup's own connection (the embedded engine serves one client)
        opened.append(real_open(**kw))
        return opened[-1]

    def open_source(cfg, work):
        source = real_source(cfg, work)
        read = source.timelines

        def timelines(ids):
            if victim in ids:
                if opened:
                    opened[0].remove([victim])
                else:
                    with open_store(cfg, SPEC) as live:
                        live.remove([victim])
            return read(ids)

        source.timelines = timelines
        return source

    monkeypatch.setattr(qdrant_open, "open_existing", open_existing)
    monkeypatch.setattr(writer, "open_source", open_source)
    report = backup(src["config"], tmp_path / "b.zip")
    monkeypatch.undo()
    kept = backend == "faiss"
    assert report.clips == src["n"] - (not kept) and report.left_out == (not kept)
    assert report.clips_with_windows == len(with_windows()) - (not kept)
    with open_backup(tmp_path / "b.zip") as b:
        clips = [r.id for records, _, _, _ in b.clips() for r in records]
        windows = dict(b.timelines())
    assert (victim in clips) == (victim in windows) == kept
    if kept:
        np.testing.assert_array_equal(windows[victim].windows.vectors, before[victim][2])
        np.testing.assert_array_equal(windows[victim].peaks, before[victim][4])
    restored = restore(tmp_path / "b.zip", config(tmp_path / "dst"), configured=SPEC)
    assert restored.clips_with_windows == report.clips_with_windows


def test_windows_are_written_and_restored_a_page_at_a_time(tmp_path, source, monkeypatch):
    """Never all windows at once: the source is read, windows.parquet written and the restore reads it, a
    page (a row group) of about WINDOW_PAGE windows at a time."""
    monkeypatch.setattr(writer, "WINDOW_PAGE", 4)
    asked: list[list[int]] = []
    real_source = writer.open_source

    def open_source(cfg, work):
        s = real_source(cfg, work)
        read = s.timelines
        s.timelines = lambda ids: asked.append(list(ids)) or read(ids)
        return s

    monkeypatch.setattr(writer, "open_source", open_source)
    path = tmp_path / "b.zip"
    backup(source["config"], path)
    with open_backup(path) as b:
        records = {r.id: r for rs, _, _, _ in b.clips() for r in rs}
        table = pq.ParquetFile(pa.BufferReader(pa.py_buffer(b.archive.view("windows.parquet"))))
        groups = [table.read_row_group(g, columns=["id"]).column("id").to_pylist()
                  for g in range(table.metadata.num_row_groups)]
    assert len(asked) > 3 and sorted(i for page in asked for i in page) == sorted(records)
    for page in asked:  # each page of the estimated size, or one clip
        estimate = sum(records[i].duration / SPEC.hop_s + 1 for i in page)
        assert len(page) == 1 or estimate <= 4
    assert len(groups) > 3 and [i for g in groups for i in g] == with_windows()
    assert all(set(g) <= set(page) for g in groups for page in asked if g and g[0] in page)

    read_groups = []
    real_read = pq.ParquetFile.read_row_group

    def read_row_group(self, i, *args, **kw):
        read_groups.append(i)
        return real_read(self, i, *args, **kw)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", read_row_group)
    report = restore(path, config(tmp_path / "dst"), configured=SPEC)
    assert report.clips_with_windows == len(with_windows())
    assert read_groups.count(len(groups) - 1) == 2  # checked, then restored: one row group after another
    same_timelines(stored(config(tmp_path / "dst")), stored(source["config"]))


def test_windows_that_cannot_be_stored_fail_the_restore_and_leave_no_store(tmp_path, backup_file):
    """What the checks before a restore do not read (the vectors and logits themselves) is refused as it is
    read: the staged store is dropped and the target left as it was."""
    def vectors_edit(edit):
        def members(name: str, data: bytes) -> bytes | None:
            if name != "windows.parquet":
                return data
            table = pq.read_table(io.BytesIO(data))
            rows = table.column("vectors").to_pylist()
            column = pa.array(edit(rows), pa.list_(pa.list_(pa.float16(), DIM)))
            sink = pa.BufferOutputStream()
            pq.write_table(table.set_column(3, "vectors", column), sink)
            return sink.getvalue().to_pybytes()
        return members

    nan = [np.float16("nan")] * DIM
    cases = {"not finite": (vectors_edit(lambda rows: [[nan] * len(r) if k == 2 else r
                                                       for k, r in enumerate(rows)]), "cannot be stored"),
             "fewer vectors": (vectors_edit(lambda rows: [r[:-1] if k == len(rows) - 1 else r
                                                         for k, r in enumerate(rows)]),
                               r"has \d+ vectors and \d+ logits for \d+ windows"),
             # as many vectors as windows in all, one of them moved into the row before
             "a vector moved": (vectors_edit(lambda rows: [r + rows[k + 1][:1] if k == 2
                                                          else r[1:] if k == 3 else r
                                                          for k, r in enumerate(rows)]),
                                r"clip \d+'s row of windows.parquet has \d+ vectors and \d+ logits")}
    dst = tmp_path / "parent" / "dst"
    for name, (members, message) in cases.items():
        path = rewritten(backup_file, tmp_path / f"{name}.zip", members=members)
        with pytest.raises(BackupInvalid, match=message):
            restore(path, config(dst), configured=SPEC)
        assert not dst.exists() and list((tmp_path / "parent").iterdir()) == [], name
