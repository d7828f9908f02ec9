"""`check`: a healthy store passes; a deleted or changed upload, a FAISS cache out of step (the clips' or the
windows', flat16 or ivf16), a vector that is not its logits' projection, a damaged database and orphan files
are found, each naming its clip (or window) or file; `repair` fixes only what is derived."""

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from index.backups.check import check_store
from index.faiss import vector_index
from index.faiss.clip_db import ClipDB
from index.faiss.store import FaissStore
from index.layout import CLIP_DB, FAISS_DIR, FAISS_WINDOWS_DIR
from index.stores import open_store
from tests.index.backup_fixtures import config, fill, project
from tests.index.store_fixtures import DIM, SPEC
from tests.index.test_window_scoring import recording


@pytest.fixture(params=["faiss", "qdrant"])
def live(request, tmp_path):
    src = fill(tmp_path / "data", backend=request.param, folder=tmp_path / "sounds")
    return src["config"]


def uploads(cfg) -> list:
    store = open_store(cfg, SPEC)
    try:
        return [r for r in store.list(limit=1000) if r.stored_copy]
    finally:
        store.close()


def kinds(report) -> set[str]:
    return {f.kind for f in report.findings}


def test_a_healthy_store_passes(live):
    report = check_store(live, spec=SPEC, project=project)
    assert report.healthy and report.findings == [] and report.clips == 22


def test_a_deleted_and_a_changed_upload_are_found_and_never_repaired_away(live):
    gone, changed = uploads(live)[:2]
    (live.data_dir / gone.location).unlink()
    path = live.data_dir / changed.location
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))

    report = check_store(live, spec=SPEC, project=project, repair=True)
    assert not report.healthy
    found = {(f.kind, f.clip_id) for f in report.errors}
    assert found == {("upload-missing", gone.id), ("upload-changed", changed.id)}
    assert all(f"clip {f.clip_id}" in f.message and f.path for f in report.errors)
    assert path.read_bytes() == bytes(data)  # the repair keeps the changed bytes and every record
    store = open_store(live, SPEC)
    assert store.get(gone.id) is not None and store.count() == 22
    store.close()


def test_missing_and_changed_referenced_files_are_warnings(live, tmp_path):
    files = sorted((tmp_path / "sounds").iterdir())
    files[0].unlink()
    files[1].write_bytes(b"other bytes")
    report = check_store(live, spec=SPEC, project=project)
    assert report.healthy  # the store itself is sound
    assert sorted(f.kind for f in report.warnings) == ["referenced-changed", "referenced-missing"]
    assert all(f.clip_id is not None for f in report.warnings)
    said = {f.kind: f.message for f in report.warnings}  # each says what to do
    assert "`retrieval index add` on its new place moves the clip there" in said["referenced-missing"]
    assert "`retrieval index add` on its folder takes it as it is now" in said["referenced-changed"]


def test_vectors_that_are_not_their_logits_projection_are_found(live):
    report = check_store(live, spec=SPEC, project=lambda x: project(x)[:, ::-1].copy())  # another head
    assert {f.kind for f in report.errors} == {"vector"} and len(report.errors) == 22
    other = replace(SPEC, head="another-head")
    report = check_store(live, spec=other, project=project)
    assert [f.kind for f in report.errors] == ["model"]  # one finding, not one per clip


def test_orphan_files_are_found_and_repair_removes_only_old_ones(live):
    old, young = live.data_dir / "audio" / "stray.wav", live.data_dir / "audio" / "incoming-now.wav"
    old.write_bytes(b"x")
    young.write_bytes(b"y")  # may be an upload whose record is committing right now
    os.utime(old, (time.time() - 3600,) * 2)
    report = check_store(live, spec=SPEC, project=project)
    assert report.healthy and [(f.kind, f.path) for f in report.findings] == [("orphan", str(old))]
    report = check_store(live, spec=SPEC, project=project, repair=True)
    assert not old.exists() and young.exists() and len(report.repaired) == 1
    assert check_store(live, spec=SPEC, project=project).findings == []


# -- the FAISS cache -----------------------------------------------------------------------------------------
@pytest.fixture
def faiss_live(tmp_path):
    return fill(tmp_path / "data", folder=tmp_path / "sounds")["config"]


def cache_file(cfg) -> Path:
    [path] = (cfg.data_dir / FAISS_DIR).glob("*.faiss")
    return path


def test_a_faiss_cache_out_of_step_is_found_and_rebuilt(faiss_live):
    path = cache_file(faiss_live)
    vi = vector_index.load(path, dim=DIM, kind="flat")
    ids = vi.ids()
    vi.remove(ids[:1])  # a clip it lacks though its name says it is current
    wrong = np.zeros((1, DIM), np.float32)
    wrong[0, 0] = 1.0
    vi.remove(ids[1:2])
    vi.add(ids[1:2], wrong)  # another vector than SQLite's
    vector_index.write_atomically(vi, path)

    report = check_store(faiss_live, spec=SPEC, project=project)
    assert not report.healthy
    assert {(f.kind, f.clip_id) for f in report.errors} == {("faiss-cache", int(ids[0])),
                                                           ("faiss-cache", int(ids[1]))}
    assert all(str(path) in f.message for f in report.errors)

    report = check_store(faiss_live, spec=SPEC, project=project, repair=True)
    assert any("rebuilt the FAISS cache" in r for r in report.repaired)
    assert check_store(faiss_live, spec=SPEC, project=project).findings == []
    store = open_store(faiss_live, SPEC)  # and the store serves from it
    hit = store.search(store.vectors([int(ids[1])]), 1)[0][0]
    store.close()
    assert hit.record.id == int(ids[1]) and hit.score == pytest.approx(1.0, abs=1e-5)


def test_a_cache_file_from_a_later_state_is_found_and_removed(faiss_live):
    path = cache_file(faiss_live)
    later = path.with_name(vector_index.file_name(kind="flat", epoch=0, generation=10_000))
    later.write_bytes(path.read_bytes())  # another database's cache, say: it would be loaded later
    report = check_store(faiss_live, spec=SPEC, project=project)
    assert [f.kind for f in report.errors] == ["faiss-cache"] and str(later) in report.errors[0].message
    check_store(faiss_live, spec=SPEC, project=project, repair=True)
    assert not later.exists() and check_store(faiss_live, spec=SPEC, project=project).healthy


def test_an_older_cache_file_is_not_a_finding(faiss_live):
    """The service writes its cache every 1000 changes: an older file is caught up at open, not wrong."""
    older = cache_file(faiss_live)
    kept = older.read_bytes()
    store = open_store(faiss_live, SPEC)
    store.remove([1])
    store.close()  # writes a newer file and prunes the older one: put the older one back alone
    cache_file(faiss_live).unlink()
    older.write_bytes(kept)
    report = check_store(faiss_live, spec=SPEC, project=project)
    assert report.healthy and report.findings == []


def test_a_cache_file_the_service_writes_while_the_check_runs_is_not_a_finding(faiss_live, monkeypatch):
    """Right after the check took its snapshot, the service commits, writes a newer cache file and prunes the
    one the snapshot would load."""
    older = cache_file(faiss_live)
    real_state, served = ClipDB.state, []

    def state(self):
        got = real_state(self)
        if not served and self.connection().in_transaction:  # the check's snapshot
            served.append(True)
            store = open_store(faiss_live, SPEC)
            store.remove([1])
            store.close()
        return got

    monkeypatch.setattr(ClipDB, "state", state)
    report = check_store(faiss_live, spec=SPEC, project=project, repair=True)
    assert served and not older.exists() and cache_file(faiss_live) != older
    assert report.healthy and report.findings == [] and report.repaired == []
    assert cache_file(faiss_live).exists()  # the service's new file is left alone


def test_a_damaged_database_is_found(faiss_live):
    db_path = faiss_live.data_dir / CLIP_DB
    db = ClipDB(db_path)
    db.close()
    data = bytearray(db_path.read_bytes())
    page = int.from_bytes(data[16:18], "big")  # the file's page size, from its header
    for pos in range(3 * page + 8, 3 * page + 200):  # a b-tree page's header and cells
        data[pos] ^= 0xFF
    db_path.write_bytes(bytes(data))
    report = check_store(faiss_live, spec=SPEC, project=project)
    assert not report.healthy and "integrity" in kinds(report)
    assert all(str(db_path) in f.message for f in report.errors if f.kind == "integrity")


def test_a_missing_store_is_an_error(tmp_path):
    report = check_store(config(tmp_path / "nothing"), spec=SPEC)
    assert not report.healthy and report.errors[0].kind == "missing"


# -- the windows' FAISS cache --------------------------------------------------------------------------------
def windowed(cfg, windows: tuple[int, ...] = (300, 4, 500)) -> dict[int, int]:
    """The first clips of a filled store given this many windows each (long takes, synthetic vectors) ->
    {clip id: its windows}."""
    rng = np.random.default_rng(3)
    store = open_store(cfg, SPEC)
    try:
        ids = [int(i) for i in store.ids()[:len(windows)]]
        for id_, n in zip(ids, windows, strict=True):
            assert store.set_timeline(id_, recording(rng, n, {}))
        return dict(zip(ids, windows, strict=True))
    finally:
        store.close()


def windows_file(cfg) -> Path:
    [path] = (cfg.data_dir / FAISS_DIR / FAISS_WINDOWS_DIR).glob("*.faiss")
    return path


def scored(cfg, clips) -> dict:
    """Every clip's windows scored for a fixed query by the store, as served from its windows cache."""
    q = np.random.default_rng(4).standard_normal(DIM).astype(np.float32)
    store = FaissStore(cfg.data_dir, SPEC, kind=cfg.index_kind, window_kind=cfg.window_index_kind)
    try:
        return store.scored_windows(q / np.linalg.norm(q), list(clips), margin=0.3)
    finally:
        store.close()


def test_windows_are_checked_against_their_cache(faiss_live):
    clips = windowed(faiss_live)
    report = check_store(faiss_live, spec=SPEC, project=project)
    assert report.healthy and report.findings == [] and report.windows == sum(clips.values())


def test_a_store_without_windows_or_their_folder_is_healthy(faiss_live):
    shutil.rmtree(faiss_live.data_dir / FAISS_DIR / FAISS_WINDOWS_DIR)
    report = check_store(faiss_live, spec=SPEC, project=project, repair=True)
    assert report.healthy and report.findings == [] and report.repaired == [] and report.windows == 0


def test_a_windows_cache_out_of_step_is_found_and_rebuilt(faiss_live):
    clips = windowed(faiss_live)
    want = scored(faiss_live, clips)
    path = windows_file(faiss_live)
    vi = vector_index.load(path, dim=DIM, kind="flat16")
    ids = np.sort(vi.ids())
    lacking, other = int(ids[10]), int(ids[400])  # of the first clip and of the third
    vi.remove(np.array([lacking, other]))
    wrong = np.zeros((1, DIM), np.float32)
    wrong[0, 0] = 1.0
    vi.add(np.array([other]), wrong)
    vector_index.write_atomically(vi, path)  # still named as the current state

    report = check_store(faiss_live, spec=SPEC, project=project)
    assert not report.healthy and report.clips == 22
    first, _, third = clips
    assert sorted((f.kind, f.clip_id) for f in report.errors) == [("faiss-windows-cache", first),
                                                                  ("faiss-windows-cache", third)]
    lacks, holds = sorted(report.errors, key=lambda f: f.clip_id)
    assert f"lacks window {lacking}" in lacks.message
    assert f"another vector for window {other}" in holds.message
    assert all(str(path) in f.message and f.path == str(path) for f in report.errors)
    assert all(str(path.parent) in f.message for f in report.errors)  # the windows folder

    report = check_store(faiss_live, spec=SPEC, project=project, repair=True)
    assert report.repaired == [f"rebuilt the FAISS windows cache in {path.parent} from "
                               f"{faiss_live.data_dir / CLIP_DB} (a running service loads it at its next "
                               "start)"]
    assert cache_file(faiss_live).exists()  # the clips' cache, sound, is left as it was
    report = check_store(faiss_live, spec=SPEC, project=project)
    assert report.healthy and report.findings == []
    got = scored(faiss_live, clips)
    assert got.keys() == want.keys() == set(clips)
    for c in want:
        np.testing.assert_array_equal(got[c].n, want[c].n)
        np.testing.assert_allclose(got[c].scores, want[c].scores, atol=1e-6)


def test_an_ivf16_windows_cache_is_checked_and_rebuilt_as_ivf16(faiss_live):
    cfg = replace(faiss_live, window_index_kind="ivf16")
    windowed(cfg, (600, 700))  # over IVF_MIN_TRAIN: trained lists
    path = windows_file(cfg)
    assert path.name.startswith("ivf16-")
    report = check_store(cfg, spec=SPEC, project=project)
    assert report.healthy and report.findings == [] and report.windows == 1300

    vi = vector_index.load(path, dim=DIM, kind="ivf16")
    gone = int(np.sort(vi.ids())[700])
    vi.remove(np.array([gone]))
    vector_index.write_atomically(vi, path)
    report = check_store(cfg, spec=SPEC, project=project, repair=True)
    assert [f.kind for f in report.errors] == ["faiss-windows-cache"]
    assert f"lacks window {gone}" in report.errors[0].message
    assert windows_file(cfg).name.startswith("ivf16-")  # trained again over the windows in SQLite
    assert check_store(cfg, spec=SPEC, project=project).findings == []


def test_an_empty_windows_cache_claiming_the_current_state_lacks_every_window(faiss_live):
    clips = windowed(faiss_live, (40, 3))
    path = windows_file(faiss_live)
    vector_index.write_atomically(vector_index.VectorIndex(DIM, "flat16"), path)
    report = check_store(faiss_live, spec=SPEC, project=project)
    assert [f.kind for f in report.errors] == ["faiss-windows-cache"] * 43
    assert {f.clip_id for f in report.errors} == set(clips)
    check_store(faiss_live, spec=SPEC, project=project, repair=True)
    assert check_store(faiss_live, spec=SPEC, project=project).findings == []


def test_qdrant_windows_left_without_their_clip_are_found_and_repair_removes_them(tmp_path, monkeypatch):
    """A crash between an add's two writes (its windows first, then its clip) leaves windows no clip owns:
    never answered, but taking room; check names them, looked at twice, and repair deletes them alone."""
    import index.backups.check as check

    monkeypatch.setattr(check, "WINDOWS_SETTLE_S", 0.0)
    cfg = fill(tmp_path / "data", backend="qdrant", folder=tmp_path / "sounds")["config"]
    clips = windowed(cfg, (6, 4))
    gone, kept = list(clips)
    store = open_store(cfg, SPEC)
    store.client.delete(store.alias, [gone], wait=True)  # the clip point alone: as if never written
    assert store.windows_without_clip() == {gone}
    store.close()
    report = check_store(cfg, spec=SPEC)
    assert report.healthy and [f.kind for f in report.warnings] == ["orphan"]
    assert f"windows of 1 clip that are not there ({gone})" in report.warnings[0].message
    report = check_store(cfg, spec=SPEC, repair=True)
    assert report.repaired == [f"removed the windows of 1 clip that are not there ({gone})"]
    store = open_store(cfg, SPEC)
    try:
        assert store.windows_without_clip() == set() and store.window_count() == clips[kept]
    finally:
        store.close()


def test_qdrant_windows_holding_metadata_from_before_an_edit_are_found_and_repair_copies_it_again(tmp_path):
    """Versions before wrote an edit to the clip point alone, so its windows' copy (what moment searches
    filter on) kept the old tags: check names those clips (an error: filtered moments answer wrongly) and
    repair copies the clip's payload onto its windows, after which the filters find the clip."""
    from index.qdrant.payload import payload_of
    from index.store.metadata import Metadata
    from index.store.records import SearchFilter

    cfg = fill(tmp_path / "data", backend="qdrant", folder=tmp_path / "sounds")["config"]
    edited, untouched = windowed(cfg, (6, 4))
    store = open_store(cfg, SPEC)
    old = store.get(edited)
    now = replace(old, meta=Metadata.of(tags=["favourite"]))
    store.client.set_payload(store.alias, payload_of(now, id=edited, added_at=old.added_at), points=[edited],
                             wait=True)  # as an earlier version's edit: the clip alone
    assert store.windows_out_of_date() == (edited,)
    store.close()
    report = check_store(cfg, spec=SPEC)
    assert not report.healthy and [f.kind for f in report.errors] == ["window-metadata"]
    said = report.errors[0].message
    assert f"the windows of 1 clip hold their metadata from before an edit ({edited})" in said
    report = check_store(cfg, spec=SPEC, repair=True)
    assert f"copied the metadata of 1 clip onto their windows again ({edited})" in report.repaired
    store = open_store(cfg, SPEC)
    try:
        assert store.windows_out_of_date() == ()
        q = np.ones((1, DIM), dtype=np.float32) / np.sqrt(DIM)
        assert {h.clip_id for h in store.search_windows(q, 50, SearchFilter(tags_any=("favourite",)))[0]} == {
            edited}
        assert untouched in {h.clip_id for h in store.search_windows(q, 50)[0]}
    finally:
        store.close()
    assert check_store(cfg, spec=SPEC).healthy


def test_a_qdrant_next_id_not_above_the_largest_clip_is_an_error(tmp_path):
    """The next add would overwrite a clip: said, naming both ids."""
    cfg = fill(tmp_path / "data", backend="qdrant", folder=tmp_path / "sounds")["config"]
    store = open_store(cfg, SPEC)
    largest = int(store.ids().max())
    store.client.update_collection(store._target(), metadata={"next_id": 2})
    store.close()
    report = check_store(cfg, spec=SPEC)
    assert [f.kind for f in report.errors] == ["next-id"]
    assert f"next clip id (2) is not above its largest ({largest})" in report.errors[0].message


def test_a_qdrant_point_whose_payload_holds_no_clip_is_a_finding_naming_it(tmp_path):
    """A payload damaged (or written by another tool) was a KeyError traceback: now an error naming the
    point."""
    cfg = fill(tmp_path / "data", backend="qdrant", folder=tmp_path / "sounds")["config"]
    store = open_store(cfg, SPEC)
    damaged = int(store.ids()[1])
    store.client.delete_payload(store.alias, keys=["tags"], points=[damaged], wait=True)
    store.close()
    report = check_store(cfg, spec=SPEC)
    assert [f.kind for f in report.errors] == ["payload"]
    assert f"the Qdrant point {damaged} holds no whole clip record" in report.errors[0].message


def test_an_embedded_qdrant_store_a_service_holds_is_refused_not_called_unhealthy(tmp_path):
    """It was "checked 0 clips: 1 errors ... NOT healthy" (exit 1) while the service ran: a cron's alert for
    a store that is fine. Every other command refuses it (exit 2), saying why; so does check."""
    from index.qdrant.open import QdrantUnavailable

    cfg = fill(tmp_path / "data", backend="qdrant", folder=tmp_path / "sounds")["config"]
    with open_store(cfg, SPEC):  # the service
        with pytest.raises(QdrantUnavailable, match="is a service using it"):
            check_store(cfg, spec=SPEC)
    assert check_store(cfg, spec=SPEC).healthy


def test_a_qdrant_generation_no_alias_names_is_a_warning(tmp_path):
    """A re-projection killed part-way leaves its new generation (`clips-g1`) beside the one in use: check
    names it and its size (the next re-projection replaces it)."""
    from index.qdrant import layout

    cfg = fill(tmp_path / "data", backend="qdrant", folder=tmp_path / "sounds")["config"]
    store = open_store(cfg, SPEC)
    assert store.unused_generations() == {}
    layout.create(store.client, "clips-g1", dim=DIM, local=True, indexes=())
    assert store.unused_generations() == {"clips-g1": 0}
    store.close()
    report = check_store(cfg, spec=SPEC)
    assert report.healthy and [f.kind for f in report.warnings] == ["generation"]
    assert "clips-g1 (0 points) is no generation in use" in report.warnings[0].message


def test_rows_of_no_clip_and_stale_keywords_are_found_and_repaired(faiss_live):
    """What an older version's writes to this version's database leave (it removes a clip without its
    windows and keyword row, adds one without its words): found, and `--repair` mends the rows and the
    windows cache, so the store answers as one that never went through it."""
    import sqlite3

    from index.faiss import fts
    from index.store.words import document

    clips = windowed(faiss_live)
    gone, unworded = list(clips)[1], list(clips)[2]
    with sqlite3.connect(faiss_live.data_dir / CLIP_DB) as con:  # as the older version writes
        con.execute("DELETE FROM clips WHERE id = ?", (gone,))
        con.execute(f"DELETE FROM {fts.TABLE} WHERE rowid = ?", (unworded,))
    report = check_store(faiss_live, spec=SPEC, project=project)
    found = sorted((f.kind, f.clip_id) for f in report.errors if f.kind in ("orphan-rows", "keywords"))
    assert found == [("keywords", unworded)] + [("orphan-rows", gone)] * 3  # windows, peaks, words
    assert "--repair" in report.errors[0].message

    report = check_store(faiss_live, spec=SPEC, project=project, repair=True)
    assert any("removed the rows of 1 clips" in line for line in report.repaired)
    again = check_store(faiss_live, spec=SPEC, project=project)
    assert again.healthy and again.findings == [], again.findings
    db = ClipDB(faiss_live.data_dir / CLIP_DB)
    try:
        con = db.connection()
        assert con.execute("SELECT count(*) FROM windows WHERE clip_id = ?", (gone,)).fetchone()[0] == 0
        [(words,)] = con.execute(f"SELECT words FROM {fts.TABLE} WHERE rowid = ?", (unworded,)).fetchall()
        assert words == document(db.get(unworded))
    finally:
        db.close()
    assert set(scored(faiss_live, [c for c in clips if c != gone])) == {c for c in clips if c != gone}


def test_an_upload_queue_of_a_newer_version_is_an_error(faiss_live):
    """The service refuses to start with it: check says so rather than "healthy"."""
    import sqlite3

    from index.ingest.queue import JobQueue
    from index.layout import QUEUE_FILE

    queue = faiss_live.data_dir / QUEUE_FILE
    JobQueue(queue).close()
    with sqlite3.connect(queue) as con:
        con.execute("PRAGMA user_version = 9")
    report = check_store(faiss_live, spec=SPEC, project=project)
    [finding] = [f for f in report.errors if f.kind == "newer-format"]
    assert not report.healthy and finding.message.startswith(f"{queue} was written by a newer version")


def test_a_full_disk_is_said_as_such_not_as_a_damaged_store(faiss_live, monkeypatch):
    """On a full disk SQLite cannot make its shared-memory file and says "disk I/O error": check reported it
    as the database's integrity ("NOT healthy"), as if the store were damaged."""
    import sqlite3
    from types import SimpleNamespace

    from index import sqlite_conn
    from retrieval.errors import StorageFull

    class NoRoom:
        def execute(self, *args):
            raise sqlite3.OperationalError("disk I/O error")

        def close(self):
            pass

    real = sqlite_conn.read_only
    monkeypatch.setattr(sqlite_conn, "read_only", lambda path: NoRoom() if Path(path).name == CLIP_DB
                        else real(path))
    report = check_store(faiss_live, spec=SPEC, project=project)  # room left: the error is the file's
    assert not report.healthy and "integrity" in kinds(report)
    monkeypatch.setattr(sqlite_conn.os, "statvfs", lambda path: SimpleNamespace(f_bavail=3, f_frsize=4096))
    db = faiss_live.data_dir / CLIP_DB
    with pytest.raises(StorageFull, match=f"^{db} cannot be read: the disk is full"):
        check_store(faiss_live, spec=SPEC, project=project)


def test_temporary_files_of_killed_writers_are_found_and_repair_removes_only_old_ones(faiss_live):
    """A ledger's, stores.txt's or the tag-name cache's writer killed mid-write left its temporary file for
    good (790 KB for the cache); a young one may be a live writer's."""
    data = faiss_live.data_dir
    (data / "cache").mkdir(exist_ok=True)
    old = [data / ".loaded-shards-faiss.json.4242-1.tmp",
           data / "cache" / ".tag-text-ab.safetensors.4242-1.tmp"]
    young = data / ".stores.txt.4343-1.tmp"
    for path in [*old, young]:
        path.write_bytes(b"part")
    for path in old:
        os.utime(path, (time.time() - 3600,) * 2)
    report = check_store(faiss_live, spec=SPEC, project=project)
    assert report.healthy and sorted((f.kind, f.path) for f in report.findings) == sorted(
        ("stale-tmp", str(p)) for p in old)
    report = check_store(faiss_live, spec=SPEC, project=project, repair=True)
    assert not any(p.exists() for p in old) and young.exists() and len(report.repaired) == 2
