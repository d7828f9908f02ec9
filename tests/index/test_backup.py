"""Backups and restores: a portable file, taken online; restored into either backend with the same answers;
damaged, foreign or mismatched files refused before anything is written; a killed restore harmless."""

import errno
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from index.backups import archive as archive_module
from index.backups.archive import BackupError, BackupInvalid
from index.backups.backup import backup
from index.backups.reader import open_backup
from index.backups.restore import restore
from index.backups.target import RestoreRefused
from index.collection import Collection
from index.ingest.queue import JobQueue
from index.store.metadata import Metadata
from index.store.records import SearchFilter
from index.stores import open_store
from retrieval.durable import sha256_file, write_bytes_atomically
from retrieval.errors import CheckpointMismatch
from tests.index.backup_fixtures import (
    clip_logits,
    config,
    fill,
    first_format_copy,
    new_clip,
    project,
    tree,
    upload_bytes,
)
from tests.index.store_fixtures import DIM, SPEC, SharedClient, unit_vectors

ROOT = Path(__file__).resolve().parents[2]


def collection(store, data_dir: Path) -> Collection:
    """The service's remove path (the record, then the stored upload) over `store`; it needs no model."""
    return Collection(store, None, data_dir=data_dir)  # type: ignore[arg-type]


@pytest.fixture
def source(tmp_path):
    return fill(tmp_path / "src", windows=True)


@pytest.fixture
def backup_file(tmp_path, source):
    path = tmp_path / "backups" / "b.zip"
    backup(source["config"], path, jobs_db=tmp_path / "src" / "jobs.sqlite")
    return path


def answers(cfg, xq, k=8):
    """(vector hits' ids, their scores, every record by id, the next id, the keyword ranking's ids)."""
    store = open_store(cfg, SPEC)
    try:
        hits = store.search(xq, k)
        scores = np.array([[h.score for h in row] for row in hits])
        words = [h.record.id for h in store.search_keywords("take drums kit1", 50, SearchFilter(
            fields=(("pack", "p2"),)))]
        return ([[h.record.id for h in row] for row in hits], scores,
                {r.id: r for r in store.list(limit=1000)}, store.next_id(), words)
    finally:
        store.close()


# -- the file ------------------------------------------------------------------------------------------------
def test_a_backup_is_a_zip_of_parquet_tables_and_audio_that_other_tools_read(backup_file, tmp_path, source):
    with zipfile.ZipFile(backup_file) as zf:
        assert zf.testzip() is None  # every member's CRC is right
        names = zf.namelist()
        manifest = json.loads(zf.read("manifest.json"))
        zf.extractall(tmp_path / "unzipped")
    assert {"manifest.json", "clips.parquet", "jobs.parquet", "windows.parquet"} <= set(names)
    assert all(zf.getinfo(n).compress_type == zipfile.ZIP_STORED for n in names)
    assert manifest["format"] == "retrieval-backup/5" and manifest["clips"] == source["n"]
    assert manifest["next_id"] == source["next_id"] and manifest["model_spec"] == SPEC.to_dict()
    for name, member in manifest["members"].items():
        path = tmp_path / "unzipped" / name
        assert path.stat().st_size == member["size"] and sha256_file(path) == member["sha256"]

    import pandas as pd

    clips = pd.read_parquet(tmp_path / "unzipped" / "clips.parquet")
    assert len(clips) == source["n"] and clips["id"].is_monotonic_increasing
    assert len(clips["vector"].iloc[0]) == DIM and len(clips["logits"].iloc[0]) == 527
    uploads = clips[clips["stored_copy"]]
    assert len(uploads) and (uploads["member"] == uploads["location"]).all()
    for _, row in uploads.iterrows():  # the bytes of every upload, named by their location
        assert sha256_file(tmp_path / "unzipped" / row["member"]) == row["sha256"]
    referenced = clips[~clips["stored_copy"]]
    assert referenced["member"].isna().all()
    assert {r["id"] for r in manifest["referenced"]} == set(referenced["id"])
    jobs = pq.read_table(tmp_path / "unzipped" / "jobs.parquet").to_pylist()
    assert [j["status"] for j in jobs] == ["queued", "queued"]  # the done one is not waiting
    assert all((tmp_path / "unzipped" / j["member"]).is_file() for j in jobs)


def test_a_backup_never_overwrites(backup_file, source):
    before = backup_file.read_bytes()
    with pytest.raises(BackupError, match="never overwrites"):
        backup(source["config"], backup_file)
    assert backup_file.read_bytes() == before


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT], ids=["no-space", "quota-spent"])
def test_a_full_disk_leaves_no_partial_file(tmp_path, source, monkeypatch, code):
    written = {"n": 0}
    real = archive_module._Stream.write

    def write(self, data):
        written["n"] += len(data)
        if written["n"] > 20_000:
            raise OSError(code, os.strerror(code))
        return real(self, data)

    monkeypatch.setattr(archive_module._Stream, "write", write)
    out = tmp_path / "full"
    out.mkdir()
    store_before = tree(tmp_path / "src")
    with pytest.raises(BackupError, match="no space left") as e:
        backup(source["config"], out / "b.zip", jobs_db=tmp_path / "src" / "jobs.sqlite")
    assert "nothing partial is left" in str(e.value)
    assert list(out.iterdir()) == []  # no file, no temporary file, no snapshot folder
    assert tree(tmp_path / "src") == store_before


# -- restoring -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source_backend,target_backend",
                         [("faiss", "faiss"), ("faiss", "qdrant"), ("qdrant", "faiss")])
def test_restore_answers_every_query_as_the_source_did(tmp_path, source_backend, target_backend):
    src = fill(tmp_path / "src", backend=source_backend, windows=True)
    path = tmp_path / "b.zip"
    backup(src["config"], path, jobs_db=tmp_path / "src" / "jobs.sqlite")
    xq = unit_vectors(6, seed=11)
    want_ids, want_scores, want_records, want_next, want_words = answers(src["config"], xq)
    assert len(want_words) > 1 and sum(not r.meta.empty for r in want_records.values()) > 5

    target = config(tmp_path / "dst", target_backend)
    report = restore(path, target, configured=SPEC)
    assert report.clips == src["n"] and report.jobs == 2 and report.uploads == len(
        [r for r in want_records.values() if r.stored_copy])
    got_ids, got_scores, got_records, got_next, got_words = answers(target, xq)
    assert got_ids == want_ids
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-5)
    assert got_records == want_records  # ids, names, locations, tags, metadata, times added: all kept
    assert {r.audio_sha256 is None for r in got_records.values()} == {True, False}  # fingerprints kept
    assert {r.meta_layers is None for r in got_records.values()} == {True, False}  # and metadata layers
    assert got_words == want_words  # the keyword index is rebuilt from the records
    assert got_next == want_next == src["next_id"]
    for r in got_records.values():  # the uploaded bytes, unchanged, where the service reads them
        if r.stored_copy:
            assert sha256_file(tmp_path / "dst" / r.location) == r.sha256

    store = open_store(target, SPEC)  # a new clip never takes an id the source handed out
    added = store.add(new_clip(500, tmp_path / "dst", upload=False), project(clip_logits(500))[0],
                      clip_logits(500))
    store.close()
    assert added.id == src["next_id"]
    queue = JobQueue(tmp_path / "dst" / "jobs.sqlite")
    jobs = queue.list(status="queued")
    queue.close()
    assert [j.name for j in jobs] == ["job0.wav", "job1.wav"]
    assert {j.store for j in jobs} == {target.name}  # the restored store's uploads, its worker's alone
    assert all(sha256_file(tmp_path / "dst" / j.location) == j.sha256 for j in jobs)
    assert not [p for p in tmp_path.iterdir() if ".restore-" in p.name]  # no staging left
    # and every clip's windows and peaks (tests/index/test_backup_windows.py holds them to the source's)
    assert report.clips_with_windows == len([i for i in want_records if (i - 1) % 5 != 4])
    assert report.without_windows is None


def test_a_backup_of_the_first_format_restores_its_clips_without_metadata(tmp_path, backup_file, source):
    old = first_format_copy(backup_file, tmp_path / "old.zip")
    with open_backup(old) as b:
        assert b.format == "retrieval-backup/1"
    target = config(tmp_path / "dst")
    assert restore(old, target, configured=SPEC).clips == source["n"]
    xq = unit_vectors(3, seed=2)
    want_ids, _, want_records, want_next, _ = answers(source["config"], xq)
    got_ids, _, got_records, got_next, got_words = answers(target, xq)
    assert (got_ids, got_next) == (want_ids, want_next) and got_words == []
    assert got_records == {id_: replace(r, meta=Metadata(), audio_sha256=None, meta_layers=None)
                           for id_, r in want_records.items()}
    with open_store(target, SPEC) as store:  # the words of the names are searchable
        assert [h.record.name for h in store.search_keywords("clip5", 1)] == ["clip5.wav"]


@pytest.mark.parametrize("fmt, lost", [("retrieval-backup/2", ("audio_sha256", "meta_layers")),
                                       ("retrieval-backup/3", ("meta_layers",))])
def test_a_backup_of_a_later_older_format_restores_its_clips_without_what_it_lacks(tmp_path, backup_file,
                                                                                 source, fmt, lost):
    """Format 2: no audio fingerprints, nor the files' own metadata; format 3: no files' own metadata."""
    old = first_format_copy(backup_file, tmp_path / "old.zip", fmt)
    target = config(tmp_path / "dst")
    assert restore(old, target, configured=SPEC).clips == source["n"]
    _, _, want_records, _, _ = answers(source["config"], unit_vectors(1, seed=2))
    _, _, got_records, _, _ = answers(target, unit_vectors(1, seed=2))
    assert all(any(getattr(r, name) for r in want_records.values()) for name in lost)
    assert got_records == {id_: replace(r, **dict.fromkeys(lost)) for id_, r in want_records.items()}


def test_restore_into_an_existing_empty_data_dir_keeps_its_caches(tmp_path, backup_file):
    dst = tmp_path / "dst"
    open_store(config(dst), SPEC).close()  # an empty store, as a first `serve` leaves it
    (dst / "cache").mkdir()
    (dst / "cache" / "tag-text.safetensors").write_bytes(b"cached")
    restore(backup_file, config(dst), configured=SPEC)
    assert (dst / "cache" / "tag-text.safetensors").read_bytes() == b"cached"
    store = open_store(config(dst), SPEC)
    assert store.count() == 22
    store.close()


def test_without_audio_and_with_referenced(tmp_path):
    folder = tmp_path / "sounds"
    src = fill(tmp_path / "src", folder=folder)
    lean, full = tmp_path / "lean.zip", tmp_path / "full.zip"
    report = backup(src["config"], lean, jobs_db=tmp_path / "src" / "jobs.sqlite", with_audio=False)
    assert report.uploads == 0
    manifest = json.loads(zipfile.ZipFile(lean).read("manifest.json"))
    assert manifest["with_audio"] is False and not any(n.startswith(("audio/", "incoming/"))
                                                       for n in manifest["members"])
    backup(src["config"], full, with_referenced=True)
    with zipfile.ZipFile(full) as zf:
        referenced = [n for n in zf.namelist() if n.startswith("referenced/")]
    assert len(referenced) == manifest["clips"] - len([n for n in zipfile.ZipFile(full).namelist()
                                                       if n.startswith("audio/")])

    lost = sorted(folder.iterdir())[:2]  # two indexed files are gone on the new machine
    for p in lost:
        p.unlink()
    r = restore(lean, config(tmp_path / "a"), configured=SPEC)
    assert r.uploads == 0 and r.jobs == 0 and r.jobs_without_bytes == 2 and len(r.referenced_missing) == 2
    r = restore(full, config(tmp_path / "b"), configured=SPEC, restore_referenced=True)
    assert r.referenced_written == 2 and r.referenced_missing == []
    assert all(p.is_file() for p in lost)


def damaged_copies(path: Path, tmp_path: Path) -> dict[str, Path]:
    data = path.read_bytes()
    out = {}

    def put(name: str, blob: bytes) -> None:
        out[name] = tmp_path / f"{name}.zip"
        out[name].write_bytes(blob)

    for cut in (1, len(data) // 2, len(data) - 30, len(data) - 1):
        put(f"truncated-{cut}", data[:cut])
    with zipfile.ZipFile(path) as zf:
        info = {i.filename: i for i in zf.infolist()}
    with open_backup(path) as good:
        starts = dict(good.archive.offsets)  # where each member's data begins
    clips = info["clips.parquet"]
    upload = next(n for n in info if n.startswith("audio/"))
    positions = {"clips-data": starts["clips.parquet"] + 200, "upload-data": starts[upload] + 60,
                 "manifest": info["manifest.json"].header_offset + 80,
                 "local-header": clips.header_offset + 12,
                 "central-directory": len(data) - 300, "end-record": len(data) - 80}
    for name, pos in positions.items():
        blob = bytearray(data)
        blob[pos] ^= 0x01
        put(f"flipped-{name}", bytes(blob))
    put("random", np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    put("text", b"hello, I am not a backup\n")
    put("empty", b"")
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("manifest.json", '{"format": "retrieval-backup/1", "members": {}}')
    put("foreign-zip", other.getvalue())
    return out


def test_damaged_and_foreign_files_are_refused_and_nothing_is_written(tmp_path, backup_file):
    target = config(tmp_path / "parent" / "dst")
    for name, path in damaged_copies(backup_file, tmp_path).items():
        with pytest.raises(BackupInvalid) as e:
            restore(path, target, configured=SPEC)
        assert str(path) in str(e.value), name
        assert not (tmp_path / "parent").exists(), name  # not even the target's parent was made
    corrupt = tmp_path / "flipped-upload-data.zip"
    with pytest.raises(BackupInvalid, match=r"member audio/[0-9a-f]{64}\.wav is damaged"):
        open_backup(corrupt)
    with pytest.raises(BackupInvalid, match="not a whole backup"):
        open_backup(tmp_path / f"truncated-{backup_file.stat().st_size // 2}.zip")
    with pytest.raises(BackupInvalid, match="not a backup made by `retrieval backup`"):
        open_backup(tmp_path / "foreign-zip.zip")
    with pytest.raises(BackupInvalid, match=r"changed after it was written: .* \(its manifest or its ZIP "
                                            r"headers were changed\)"):
        open_backup(tmp_path / "flipped-manifest.zip")  # a byte of the manifest's text, still JSON


def test_another_model_is_refused_before_anything_is_written(tmp_path, backup_file):
    other = replace(SPEC, head="another-head", lam=0.5)
    with pytest.raises(CheckpointMismatch, match="RETRIEVAL_CHECKPOINT"):
        restore(backup_file, config(tmp_path / "dst"), configured=other)
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize("backend", ["faiss", "qdrant"])
def test_a_target_that_holds_clips_is_refused_and_left_unchanged(tmp_path, backup_file, backend):
    dst = tmp_path / "dst"
    store = open_store(config(dst, backend), SPEC)
    store.add(new_clip(900, dst, upload=False), unit_vectors(1)[0], clip_logits(900))
    store.close()
    before = tree(dst)
    with pytest.raises(RestoreRefused, match="already holds 1 clips.*new, empty RETRIEVAL_DATA_DIR") as e:
        restore(backup_file, config(dst, backend), configured=SPEC)
    assert "nothing was changed" in str(e.value)
    assert tree(dst) == before


def test_a_target_a_service_runs_on_is_refused(tmp_path, backup_file):
    """Its database moved away under it, the service went on serving the deleted one and answered 201 to
    uploads that were then lost: a worker's lock held is a refusal, before anything is written."""
    import fcntl

    from index.layout import ingest_lock

    dst = tmp_path / "dst"
    dst.mkdir()
    with open(ingest_lock(dst, "faiss"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what the service's worker holds while it runs
        before = tree(dst)
        with pytest.raises(RestoreRefused, match="ingest worker is running on .*ingest-faiss.lock"):
            restore(backup_file, config(dst), configured=SPEC)
        assert tree(dst) == before
    assert restore(backup_file, config(dst), configured=SPEC).clips > 0  # stopped: the restore goes on


def test_a_service_started_while_the_store_is_built_stops_the_restore_before_it_moves_in(tmp_path,
                                                                                        backup_file,
                                                                                        monkeypatch):
    """The lock was looked at once, at the start: a service started meanwhile had the folder moved from
    under it and answered "done" to uploads that were then lost."""
    import fcntl

    from index.backups import staging as staging_module
    from index.layout import ingest_lock

    dst = tmp_path / "dst"
    open_store(config(dst), SPEC).close()
    real_build, lock = staging_module._build, open(ingest_lock(dst, "faiss"), "a+")
    before = tree(dst)

    def build_then_a_service_starts(*args, **kwargs):
        store = real_build(*args, **kwargs)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what the new service's worker holds
        return store

    monkeypatch.setattr(staging_module, "_build", build_then_a_service_starts)
    try:
        with pytest.raises(BackupError, match="started on .* while the restore ran .*nothing was changed"):
            restore(backup_file, config(dst), configured=SPEC)
    finally:
        lock.close()
    assert tree(dst) == before and not list(tmp_path.glob(".dst.restore-*"))


def test_a_target_with_waiting_uploads_is_refused(tmp_path, backup_file):
    dst = tmp_path / "dst"
    dst.mkdir()
    queue = JobQueue(dst / "jobs.sqlite")
    queue.enqueue(name="x.wav", sha256="a" * 64, location=f"incoming/{'a' * 64}.upload")
    queue.close()
    with pytest.raises(RestoreRefused, match="1 uploads waiting"):
        restore(backup_file, config(dst), configured=SPEC)


KILLABLE = """
import sys, time
from pathlib import Path
from index.backups.reader import Backup
from index.backups.restore import restore
from index.stores import StoreConfig
real = Backup.extract
def slow(*args, **kw):
    time.sleep(0.3)
    return real(*args, **kw)
Backup.extract = slow
restore(Path(sys.argv[1]), StoreConfig(data_dir=Path(sys.argv[2])), configured=None)
"""


@pytest.mark.parametrize("existing", [False, True])
def test_a_restore_killed_midway_leaves_the_target_as_it_was(tmp_path, backup_file, existing):
    dst = tmp_path / "parent" / "dst"
    if existing:
        open_store(config(dst), SPEC).close()
    before = tree(dst)
    child = subprocess.Popen([sys.executable, "-c", KILLABLE, str(backup_file), str(dst)], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    staged = None
    while time.monotonic() < deadline and child.poll() is None:
        found = list(dst.parent.glob(".dst.restore-*/audio/*"))
        if len(found) >= 2:  # the store is being built
            staged = found
            break
        time.sleep(0.05)
    assert staged, "the restore never got going"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert tree(dst) == before
    assert list(dst.parent.glob(".dst.restore-*"))  # its staging folder is what is left ...

    restore(backup_file, config(dst), configured=SPEC)  # ... and the next restore clears it away
    assert not list(dst.parent.glob(".dst.restore-*"))
    store = open_store(config(dst), SPEC)
    assert store.count() == 22
    store.close()


def test_a_restore_stopped_while_it_moves_into_place_is_finished_by_the_next(tmp_path, backup_file,
                                                                            monkeypatch):
    """Into a folder a service had opened (an empty store): the staged entries move in one by one. Stopped
    after the first, the folder held the backup's uploads beside the old empty database; a second restore was
    refused, check said healthy, and the next service start deleted the uploads as orphans."""
    from index.backups import staging as staging_module
    from index.backups.check import check_store
    from index.layout import RESTORE_MOVING
    from index.stores import NoCollection

    dst = tmp_path / "dst"
    open_store(config(dst), SPEC).close()
    real_rename, moved = os.rename, []

    def rename(a, b):
        if Path(b).parent == dst and len(moved) == 2:  # the target's audio/ set aside, the backup's moved in
            raise OSError(errno.EIO, "stopped here")
        moved.append(b)
        return real_rename(a, b)

    monkeypatch.setattr(staging_module.os, "rename", rename)
    with pytest.raises(OSError, match="stopped here"):
        restore(backup_file, config(dst), configured=SPEC)
    monkeypatch.undo()
    assert (dst / RESTORE_MOVING).is_file() and list((dst / "audio").iterdir())
    with pytest.raises(NoCollection, match="stopped while it moved into place"):
        open_store(config(dst), SPEC)  # the service, `search`, an orphan pass: none opens it
    report = check_store(config(dst), spec=SPEC, repair=True)
    assert [f.kind for f in report.errors] == ["restore-unfinished"] and list((dst / "audio").iterdir())
    from index.stores import require_store
    with pytest.raises(NoCollection, match="stopped while it moved into place"):
        require_store(config(dst))  # what `backup`, `check`, `search` ask first (a backup held the old store)

    report = restore(backup_file, config(dst), configured=SPEC)  # the same backup again: finished, done
    assert report.finished.startswith("22 clips") and report.clips == 0
    assert not (dst / RESTORE_MOVING).exists() and not list(tmp_path.glob(".dst.restore-*"))
    with open_store(config(dst), SPEC) as store:
        assert store.count() == 22
    assert check_store(config(dst), spec=SPEC, project=project).healthy


def test_a_journal_that_names_no_staging_folder_moves_and_removes_nothing(tmp_path, backup_file):
    """The journal's folder is moved from, then removed: one it names outside the restore's staging folders
    (a damaged or edited file) is refused, and the folder it names is left alone."""
    from index.layout import RESTORE_MOVING

    dst, victim = tmp_path / "dst", tmp_path / "precious"
    victim.mkdir()
    (victim / "index.sqlite").write_bytes(b"not yours")
    open_store(config(dst), SPEC).close()
    for name in ("precious", "../precious", f".dst.restore-{os.getpid()}/../../precious", ".dst.restore-x"):
        (dst / RESTORE_MOVING).write_text(json.dumps({"staging": name, "backup": ""}))
        with pytest.raises(BackupError, match="no restore's staging folder"):
            restore(backup_file, config(dst), configured=SPEC)
        assert (victim / "index.sqlite").read_bytes() == b"not yours"


@pytest.mark.parametrize("journal", ["another", "first"])
def test_a_stopped_restore_finished_by_another_backups_restore_restores_nothing_more(tmp_path, backup_file,
                                                                                    monkeypatch, journal):
    """The move is finished whatever file the next restore is given; another backup is then refused, not
    merged in (as is any backup where the journal, written before it named its backup, cannot tell)."""
    from index.backups import staging as staging_module
    from index.layout import RESTORE_MOVING

    dst = tmp_path / "dst"
    open_store(config(dst), SPEC).close()
    real_rename = os.rename

    def rename(a, b):
        if Path(b).parent == dst and Path(b).name == "audio" and Path(a).parent != dst:
            raise OSError(errno.EIO, "stopped here")
        return real_rename(a, b)

    monkeypatch.setattr(staging_module.os, "rename", rename)
    with pytest.raises(OSError, match="stopped here"):
        restore(backup_file, config(dst), configured=SPEC)
    monkeypatch.undo()
    if journal == "first":
        marker = dst / RESTORE_MOVING
        marker.write_text(json.loads(marker.read_text())["staging"])
        other = backup_file
        said = f"does not say of which backup.* holds 22 clips, .* now; {other} was not restored again"
    else:
        other = tmp_path / "other.zip"
        backup(fill(tmp_path / "other-src", n=4, remove=(4,))["config"], other)
        said = f"finished the restore of another backup .* holds 22 clips, .* now; {other} was not restored"
    with pytest.raises(RestoreRefused, match=said):
        restore(other, config(dst), configured=SPEC)
    assert not (dst / RESTORE_MOVING).exists()
    with open_store(config(dst), SPEC) as store:
        assert store.count() == 22


# -- online --------------------------------------------------------------------------------------------------
def test_a_backup_taken_while_clips_are_added_holds_every_acknowledged_clip_and_no_half_clip(tmp_path,
                                                                                            monkeypatch):
    data_dir = tmp_path / "live"
    cfg = config(data_dir)
    store = open_store(cfg, SPEC)
    queue = JobQueue(data_dir / "jobs.sqlite")
    acked: dict[str, float] = {}  # sha256 -> when its add (or its job) was acknowledged
    deleted: dict[str, float] = {}  # sha256 -> when its removal was acknowledged
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(10**6))

    def uploader():  # as Collection: bytes first, durably, then the record
        while not stop.is_set():
            with lock:
                i = next(counter)
            c = new_clip(i, data_dir, upload=i % 2 == 0)
            store.add(c, project(clip_logits(i))[0], clip_logits(i))
            acked[c.sha256] = time.time()

    def remover():  # DELETE /audio/{id}: the record, then the bytes
        service = collection(store, data_dir)
        while not stop.is_set():
            time.sleep(0.01)
            page = store.list(offset=0, limit=3)
            if len(page) == 3:
                service.remove([page[1].id])
                deleted[page[1].sha256] = time.time()

    def worker():  # the ingest worker: claim, add the clip, finish, remove the job's bytes
        while not stop.is_set():
            for job in queue.claim(worker="w"):
                data = (data_dir / job.location).read_bytes()
                clip = replace(new_clip(20_000 + job.id, data_dir, upload=True), sha256=job.sha256,
                               location=f"audio/{job.sha256}.wav")
                write_bytes_atomically(data_dir / clip.location, data)
                record = store.add(clip, project(clip_logits(job.id))[0], clip_logits(job.id))
                queue.finish(job.id, clip_id=record.id)
                (data_dir / job.location).unlink()
            time.sleep(0.005)

    def submitter():  # the service's POST /audio: bytes, then the job
        j = 0
        while not stop.is_set():
            data = upload_bytes(100_000 + j)
            sha = hashlib.sha256(data).hexdigest()
            write_bytes_atomically(data_dir / f"incoming/{sha}.upload", data)
            queue.enqueue(name=f"up{j}.wav", sha256=sha, location=f"incoming/{sha}.upload")
            acked[sha] = time.time()
            j += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=f) for f in (uploader, uploader, remover, worker, submitter)]
    for t in threads:
        t.start()
    real_add = archive_module.ArchiveWriter.add_fileobj

    def slow_add(self, name, src):  # a long backup, so that much happens while it runs
        time.sleep(0.004)
        return real_add(self, name, src)

    monkeypatch.setattr(archive_module.ArchiveWriter, "add_fileobj", slow_add)
    try:
        time.sleep(1.5)
        started = time.time()
        path = tmp_path / "online.zip"
        backup(cfg, path, jobs_db=data_dir / "jobs.sqlite")
        finished = time.time()
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    store.close()
    queue.close()

    with open_backup(path) as b:
        rows = [(r, m) for records, _, _, members in b.clips() for r, m in zip(records, members, strict=True)]
        jobs = b.jobs()
        for r, member in rows:  # no half clip: every upload's bytes are there, and they are its bytes
            if r.stored_copy:
                assert member == r.location
                assert hashlib.sha256(b.archive.read(member)).hexdigest() == r.sha256
        for job in jobs:
            assert hashlib.sha256(b.archive.read(job["member"])).hexdigest() == job["sha256"]
        assert not b.manifest["problems"]
    in_backup = {r.sha256 for r, _ in rows} | {j["sha256"] for j in jobs}
    before = {sha for sha, t in acked.items() if t < started and sha not in deleted}
    assert len(before) > 20
    assert before <= in_backup  # every clip and upload acknowledged before the backup started
    gone = {sha for sha, t in deleted.items() if t < started}
    assert not gone & in_backup
    during = {sha for sha, t in acked.items() if started < t < finished}
    assert during, "nothing was added while the backup ran: the test did not test anything"


class Listing(list):
    """A folder's entries as os.scandir gives them: iterable, and a context manager."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def test_clips_deleted_while_the_backup_sizes_and_copies_the_audio_folder_are_left_out_whole(tmp_path,
                                                                                              monkeypatch):
    data_dir = tmp_path / "src"
    src = fill(data_dir, n=30)
    store = open_store(src["config"], SPEC)
    service = collection(store, data_dir)
    uploads = [r.id for r in store.list(limit=1000) if r.stored_copy]
    while_sizing, while_copying = uploads[:2], uploads[-3:]  # the copy goes in id order: these come later
    queue = JobQueue(data_dir / "jobs.sqlite")
    cancelled = queue.list(status="queued")[-1]
    real_scandir, real_add = os.scandir, archive_module.ArchiveWriter.add_fileobj

    def scandir(path):  # the audio folder is listed, then two clips are deleted before its files are sized
        with real_scandir(path) as it:
            entries = Listing(it)
        if path == data_dir / "audio" and while_sizing[0] in store.ids():
            assert service.remove(while_sizing) == 2
        return entries

    def add_fileobj(self, name, src):  # a waiting upload cancelled, then clips deleted, as bytes are copied
        if name.startswith("incoming/") and queue.get(cancelled.id).status == "queued":
            queue.cancel(cancelled.id)
            (data_dir / cancelled.location).unlink()
        if name.startswith("audio/") and while_copying[0] in store.ids():
            assert service.remove(while_copying) == 3
        return real_add(self, name, src)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(archive_module.ArchiveWriter, "add_fileobj", add_fileobj)
    report = backup(src["config"], tmp_path / "b.zip", jobs_db=data_dir / "jobs.sqlite")
    monkeypatch.undo()
    still_there = {r.id: r for r in store.list(limit=1000)}
    store.close()
    queue.close()

    assert report.clips == len(still_there) == src["n"] - 5 and report.left_out == 5 and not report.problems
    assert report.jobs == 1 and report.uploads == len(uploads) - 5
    target = config(tmp_path / "dst")
    restored = restore(tmp_path / "b.zip", target, configured=SPEC)
    assert restored.uploads == len(uploads) - 5 and restored.jobs == 1
    with open_store(target, SPEC) as back:
        assert {r.id: r for r in back.list(limit=1000)} == still_there
    for r in still_there.values():  # every upload still there, with its bytes; none of the deleted ones
        if r.stored_copy:
            assert sha256_file(target.data_dir / r.location) == r.sha256
    assert len(list((target.data_dir / "audio").iterdir())) == len(uploads) - 5


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect")
def test_restore_into_a_qdrant_server_moves_the_staged_collection_under_the_configured_name(
        tmp_path, backup_file, monkeypatch):
    import index.qdrant.open as qs

    server = SharedClient()
    monkeypatch.setattr(qs, "connect", lambda url, *, data_dir, api_key=None: server)
    target = replace(config(tmp_path / "dst", "qdrant"), qdrant_url="http://qdrant:6333")
    empty = open_store(target, SPEC)  # the service made the (empty) collection already
    empty.close()
    xq = unit_vectors(4, seed=3)
    want = answers(config(tmp_path / "src"), xq)

    report = restore(backup_file, target, configured=SPEC)
    assert report.clips == 22
    got = answers(target, xq)
    assert got[0] == want[0] and got[2] == want[2] and got[3] == want[3]
    np.testing.assert_allclose(got[1], want[1], atol=1e-5)
    aliases = {a.alias_name: a.collection_name for a in server.get_aliases().aliases}
    # the staged ones (clips and their windows), under the configured names; the empty ones are gone
    assert aliases == {"clips": "clips-restoring-g0", "clips-windows": "clips-restoring-windows-g0"}
    assert sorted(c.name for c in server.get_collections().collections) == ["clips-restoring-g0",
                                                                           "clips-restoring-windows-g0"]
    with pytest.raises(RestoreRefused, match="already holds 22 clips"):
        restore(backup_file, target, configured=SPEC)


def test_the_progress_bar_ends_full_with_the_referenced_files_counted(tmp_path, capsys, monkeypatch):
    """The bar's total is estimated before the copy (the rows, the uploads, the referenced files with
    --with-referenced), and settled to what was written at the end (a short estimate made tqdm drop the
    total: '121k/?')."""
    import index.backups.writer as writer

    src = fill(tmp_path / "src", folder=tmp_path / "sounds", windows=True)  # the windows' bytes counted too
    estimates = []
    real = writer._estimate
    monkeypatch.setattr(writer, "_estimate", lambda *a: estimates.append(real(*a)) or estimates[-1])
    for name, referenced in (("lean.zip", False), ("full.zip", True)):
        backup(src["config"], tmp_path / name, with_referenced=referenced, progress=True)
        last = capsys.readouterr().err.strip().split("\r")[-1]
        assert "100%" in last and "/?" not in last, last
    with zipfile.ZipFile(tmp_path / "full.zip") as zf:
        referenced_bytes = sum(i.file_size for i in zf.infolist() if i.filename.startswith("referenced/"))
    assert estimates[1] - estimates[0] == referenced_bytes
    for name, estimate in zip(("lean.zip", "full.zip"), estimates, strict=True):
        assert 0.8 < estimate / (tmp_path / name).stat().st_size < 1.25
