"""`retrieval check`: read a store and report what is wrong with it, each finding naming a clip id or a file.

Errors (the store is not healthy): SQLite's ``PRAGMA integrity_check`` of the clip database and the ingest
queue; each of the two FAISS cache files, the clips' (``faiss/``) and the windows' (``faiss/windows/``, of
the window index kind the store opens it with), against SQLite (ids when the file claims to be current, every
vector it holds, files claiming a state the database never reached); a stored upload missing or with other
bytes than its sha256; a vector that is not its logits' projection under the configured model; FAISS: rows
of windows, peaks or the keyword index of no clip, and keyword rows that are not their clip's words (what an
older version's writes to a newer database leave, say). Warnings: a
file indexed where it lies that is missing or changed; orphan files under ``audio/`` (no clip refers to
them); temporary files of writers killed mid-write in the data directory and its ``cache/``. A cache file
is read back a chunk of ids at a time as SQLite's rows stream by, never whole.

Live stores: the clip database is read in one read transaction (WAL: the service's writes go on), files are
compared against that state, and anything that looks wrong is looked up again outside it before it is
reported (a clip deleted or added meanwhile is not a finding). ``repair=True`` fixes what is derived: a
FAISS cache out of step is rebuilt from SQLite, orphan and old temporary files and rows are removed, keyword
rows written again; a record or a stored upload is never deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from index.faiss import vector_index
from index.faiss.cache import AUTO_CLIPS_IVF_AT, FILL_CHUNK, CachedIndex, loadable_kinds
from index.faiss.clip_db import ClipDB
from index.faiss.store import WINDOW_KINDS, stored_spec
from index.faiss.vector_index import FILE_RE
from index.ingest.jobs import SCHEMA_VERSION
from index.layout import (
    AUDIO_DIR,
    CLIP_DB,
    FAISS_DIR,
    FAISS_WINDOWS_DIR,
    QUEUE_FILE,
    RESTORE_MOVING,
    audio_file,
    stores_of,
    temporary_folders,
)
from index.sqlite_conn import integrity_problems, refuse_newer
from index.store.records import Chunk, ClipRecord
from index.store.words import document
from index.stores import StoreConfig
from retrieval.durable import old_enough, sha256_file, stale_tmp
from retrieval.errors import NewerFormat, RetrievalError
from retrieval.model_spec import ModelSpec

if TYPE_CHECKING:
    from index.qdrant.store import QdrantStore

log = logging.getLogger(__name__)

PROJECTION_ATOL = 1e-5  # a vector and its logits' projection agree to float32 rounding
CACHE_ATOL = {"flat16": 2e-3, "ivf16": 2e-3, "ivf8": 2e-2}  # their codes; the other kinds keep float32
Project = Callable[[np.ndarray], np.ndarray]  # (N, 527) logits -> (N, D) vectors under the configured model


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" or "warning"
    kind: str  # integrity, model, faiss-cache (the clips'), faiss-windows-cache (the windows'),
    #            upload-missing, upload-changed, vector, referenced-missing, referenced-changed, orphan,
    #            orphan-rows, keywords (FAISS: rows of no clip, keyword rows not the clip's words),
    #            stale-tmp (a killed writer's temporary file in the data directory or cache/),
    #            Qdrant: window-metadata (windows' copy of an edited clip's metadata), next-id, generation,
    #            payload (a point holding no clip record)
    message: str
    clip_id: int | None = None
    path: str | None = None


@dataclass
class CheckReport:
    clips: int = 0
    windows: int = 0  # compared with the windows' FAISS cache (FAISS store)
    findings: list[Finding] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def healthy(self) -> bool:
        return not self.errors

    def error(self, kind: str, message: str, **where) -> None:
        self.findings.append(Finding("error", kind, message, **where))

    def warn(self, kind: str, message: str, **where) -> None:
        self.findings.append(Finding("warning", kind, message, **where))


def check_store(config: StoreConfig, *, spec: ModelSpec | None = None, project: Project | None = None,
                repair: bool = False, progress: bool = False, jobs_file: str = QUEUE_FILE) -> CheckReport:
    """Check the store of `config` against the configured model `spec` (its head `project`s logits; None:
    the vectors are not checked against the logits)."""
    report = CheckReport()
    data_dir = Path(config.data_dir)
    if (data_dir / RESTORE_MOVING).is_file():  # half of it the backup's: its uploads would look orphaned
        report.error("restore-unfinished", f"a restore into {data_dir} was stopped while it moved into "
                     "place: run `retrieval restore` again (with any backup file) to finish it",
                     path=str(data_dir))
        return report
    queue = data_dir / jobs_file
    if queue.is_file():
        for problem in integrity_problems(queue):
            report.error("integrity", f"{queue}: {problem}", path=str(queue))
        try:
            refuse_newer(queue, SCHEMA_VERSION)
        except NewerFormat as e:  # the service refuses to start with it
            report.error("newer-format", str(e), path=str(queue))
    _check_stale_tmp(data_dir, report, repair=repair)
    if config.backend == "faiss":
        _check_faiss(config, report, spec=spec, project=project, repair=repair, progress=progress)
    else:
        _check_qdrant(config, report, spec=spec, project=project, repair=repair, progress=progress)
    return report


# -- what both backends share --------------------------------------------------------------------------------
@dataclass
class _Reader:
    """The store as the checks read it: its clips a chunk at a time, and a live look-up for second looks."""

    data_dir: Path
    spec: ModelSpec
    chunks: Callable[[], Iterator[Chunk]]
    live_get: Callable[[int], ClipRecord | None]
    live_by_sha256: Callable[[str], ClipRecord | None]
    locations: set[str] = field(default_factory=set)  # stored copies the clips refer to


def _model_ok(reader: _Reader, report: CheckReport, spec: ModelSpec | None) -> bool:
    if spec is None:
        return False
    diff = reader.spec.diff(spec)
    if diff:
        fields = ", ".join(f"{k} {a!r} (configured {b!r})" for k, (a, b) in diff.items())
        report.error("model", f"the store's vectors were made with another model than the configured one: "
                     f"{fields}; its vectors were not compared with its logits")
        return False
    return True


def _check_clips(reader: _Reader, report: CheckReport, *, project: Project | None, progress: bool,
                 on_chunk: Callable[[Chunk], None] | None = None, total: int = 0) -> None:
    with tqdm(total=total, unit="clip", desc="check", disable=not progress) as bar:
        for chunk in reader.chunks():
            records, vectors, logits = chunk
            if on_chunk is not None:
                on_chunk(chunk)
            if project is not None:
                _check_projection(records, vectors, logits, report, project, reader)
            for r in records:
                _check_bytes(r, reader, report)
            report.clips += len(records)
            bar.update(len(records))


def _check_projection(records: list[ClipRecord], vectors: np.ndarray, logits: np.ndarray, report: CheckReport,
                      project: Project, reader: _Reader) -> None:
    expected = np.asarray(project(logits), dtype=np.float32).reshape(vectors.shape)
    worst = np.abs(expected - vectors).max(axis=1)  # (n,)
    for i in np.flatnonzero(~(worst <= PROJECTION_ATOL)):
        r = records[int(i)]
        if reader.live_get(r.id) is None:
            continue
        report.error("vector", f"clip {r.id}: its vector is not its logits' projection under the model "
                     f"(largest difference {float(worst[i]):.2g}); `retrieval index reproject` rewrites the "
                     "vectors from the logits", clip_id=r.id)


def _check_bytes(r: ClipRecord, reader: _Reader, report: CheckReport) -> None:
    path = audio_file(reader.data_dir, r.location, r.stored_copy)
    if r.stored_copy:
        reader.locations.add(r.location)
    try:
        sha = sha256_file(path)
    except FileNotFoundError:
        sha = None
    except OSError as e:
        sha = f"unreadable ({e.strerror})"
    if sha == r.sha256:
        return
    live = reader.live_get(r.id)
    if live is None or live.location != r.location:  # removed (or changed) while the check ran
        return
    problem = "is missing" if sha is None else (sha if sha.startswith("unreadable") else
                                                 "has changed (its sha256 is not the clip's)")
    if r.stored_copy:
        kind = "upload-missing" if sha is None else "upload-changed"
        report.error(kind, f"clip {r.id}: its stored upload {path} {problem}", clip_id=r.id, path=str(path))
    else:
        kind = "referenced-missing" if sha is None else "referenced-changed"
        fix = ("moved or renamed? `retrieval index add` on its new place moves the clip there; deleted? "
               "`retrieval index remove`" if sha is None else
               "`retrieval index add` on its folder takes it as it is now, if it decodes")
        report.warn(kind, f"clip {r.id}: the file it was indexed from, {path}, {problem} ({fix})",
                    clip_id=r.id, path=str(path))


def _check_stale_tmp(data_dir: Path, report: CheckReport, *, repair: bool) -> None:
    """Temporary files of writers killed mid-write (older than a live writer's) in the data directory's own
    folders (index/layout.py temporary_folders; the stores' and uploads' folders sweep their own)."""
    for folder in temporary_folders(data_dir):
        for path in stale_tmp(folder):
            if repair:
                path.unlink(missing_ok=True)
                report.repaired.append(f"removed {path} (left by a writer that was stopped)")
            else:
                report.warn("stale-tmp", f"{path}: left by a writer that was stopped (`retrieval check "
                            "--repair` removes it)", path=str(path))


def _check_orphans(reader: _Reader, report: CheckReport, *, repair: bool, store: str) -> None:
    """Files under audio/ no clip of the store refers to; none when other stores keep clips in the data
    directory too (index/layout.py stores_of: an upload's copy may be one of theirs)."""
    audio = reader.data_dir / AUDIO_DIR
    if not audio.is_dir() or stores_of(reader.data_dir) - {store}:
        return
    for path in sorted(audio.iterdir()):
        rel = f"{AUDIO_DIR}/{path.name}"
        if rel in reader.locations or not path.is_file() or not old_enough(path):
            continue  # a young file may be an upload being committed right now
        record = None if path.name.startswith(".") else reader.live_by_sha256(path.stem)
        if record is not None and record.stored_copy and record.location == rel:
            continue  # added while the check ran
        if repair:
            path.unlink(missing_ok=True)
            report.repaired.append(f"removed {path} (no clip refers to it)")
        else:
            report.warn("orphan", f"{path}: no clip refers to it (`retrieval check --repair` removes it)",
                        path=str(path))


# -- FAISS + SQLite ------------------------------------------------------------------------------------------
def _check_faiss(config: StoreConfig, report: CheckReport, *, spec: ModelSpec | None, project: Project | None,
                 repair: bool, progress: bool) -> None:
    data_dir = Path(config.data_dir)
    live = data_dir / CLIP_DB
    if not live.is_file():
        report.error("missing", f"there is no collection in {data_dir} (no {CLIP_DB})", path=str(live))
        return
    problems = integrity_problems(live)
    for problem in problems:
        report.error("integrity", f"{live}: {problem}", path=str(live))
    if problems:
        return  # reading on could only add noise; restore a backup
    db = ClipDB(live)
    try:
        stored = stored_spec(db)
        if stored is None or not stored.dim:
            report.error("model", f"{live} records no model", path=str(live))
            return
        dim = int(stored.dim)
        reader = _Reader(data_dir, stored, lambda: db.export(dim=dim, chunk=FILL_CHUNK), db.get,
                         db.get_by_sha256)
        checked_model = _model_ok(reader, report, spec)
        window_kind = config.window_index_kind or WINDOW_KINDS[config.index_kind]  # as FaissStore opens it
        clips = _Cache("FAISS cache", data_dir / FAISS_DIR, config.index_kind, db.ids,
                       lambda ids, d: db.blobs(ids, "vector", d), auto_at=AUTO_CLIPS_IVF_AT)
        windows = _Cache("FAISS windows cache", data_dir / FAISS_DIR / FAISS_WINDOWS_DIR, window_kind,
                         db.window_ids, db.window_vectors)
        with db.snapshot():  # one committed state for the whole check
            epoch, gen = db.state()
            cache = _CacheCheck(clips.folder, kind=clips.kind, dim=dim, epoch=epoch, gen=gen)
            rows = _RowsCheck(db)

            def on_chunk(c: Chunk) -> None:
                cache.feed(_ids_of(c[0]), c[1])
                rows.feed(c[0])

            _check_clips(reader, report, project=project if checked_model else None, progress=progress,
                         on_chunk=on_chunk, total=db.count())
            rows.find_orphans()
            window_cache = _CacheCheck(windows.folder, kind=windows.kind, dim=dim, epoch=epoch, gen=gen,
                                       what="window")
            _check_windows(db, window_cache, report, dim=dim, progress=progress)
        cache.finish(report, live=db.state())
        window_cache.finish(report, live=db.state(),
                            clip_of=lambda ids: {w: p[0] for w, p in db.window_places(ids).items()})
        # outside the snapshot: second looks see the latest
        _check_orphans(reader, report, repair=repair, store=config.name)
        rows.finish(report, repair=repair)
        for what, check in ((clips, cache), (windows, window_cache)):
            if repair and (check.broken or (what is windows and rows.removed_windows)):
                _rebuild_cache(db, what, dim=dim, search_threads=config.search_threads,
                               stale=list(check.stale))
                report.repaired.append(f"rebuilt the {what.name} in {what.folder} from {live} (a running "
                                       "service loads it at its next start)")
    finally:
        db.close()


class _RowsCheck:
    """The clip database's rows that belong to a clip (windows, waveform peaks, the keyword index's rows)
    against its clips, within the check's snapshot: rows of no clip, and keyword rows that are not the
    clip's words now (what another program's writes, an older version's say, leave: the store writes each
    with its clip, in one transaction). Repaired by removing the rows of no clip and writing the words
    again."""

    def __init__(self, db: ClipDB):
        self.db = db
        self.stale_words: list[ClipRecord] = []
        self.orphans: dict[str, list[int]] = {}
        self.removed_windows = False

    def feed(self, records: list[ClipRecord]) -> None:
        held = self.db.keyword_documents([r.id for r in records])
        self.stale_words += [r for r in records if held.get(r.id, "") != document(r)]

    def find_orphans(self) -> None:
        self.orphans = self.db.orphans()

    def finish(self, report: CheckReport, *, repair: bool) -> None:
        for what, ids in self.orphans.items():
            for id_ in ids:
                report.error("orphan-rows", f"{what} of clip {id_}, which the store does not hold"
                             + ("" if repair else " (`retrieval check --repair` removes them)"), clip_id=id_)
        for r in self.stale_words:
            fix = "" if repair else "; `retrieval check --repair` writes them again"
            report.error("keywords", f"clip {r.id}: the keyword index does not hold its words (keyword "
                         f"search misses or misranks it){fix}", clip_id=r.id)
        if not repair or not (self.stale_words or any(self.orphans.values())):
            return
        with self.db.transaction() as con:
            self.db.drop_orphans(con, self.orphans)
            self.db.rewrite_words(con, self.stale_words)
        self.removed_windows = bool(self.orphans.get("windows"))
        clips = len(set().union(*self.orphans.values()))
        report.repaired.append(f"removed the rows of {clips} clips the store does not hold and wrote the "
                               f"keywords of {len(self.stale_words)} clips again")


@dataclass(frozen=True)
class _Cache:
    """One of the FAISS store's two caches: its folder, the kind asked for, and its truth in SQLite."""

    name: str
    folder: Path
    kind: str
    ids: Callable[[], np.ndarray]  # () -> (N,) ids, sorted
    vectors: Callable[[np.ndarray, int], np.ndarray]  # (ids, dim) -> (len(ids), dim) float32
    auto_at: int | None = None  # "auto": the size from which it is built as ivf16 (None: the windows')


def _ids_of(records: list[ClipRecord]) -> np.ndarray:
    return np.fromiter((r.id for r in records), np.int64, len(records))


def _check_windows(db: ClipDB, cache: _CacheCheck, report: CheckReport, *, dim: int, progress: bool) -> None:
    """The windows' vectors in SQLite against their cache file, FILL_CHUNK at a time (inside the caller's
    snapshot); nothing is read when there is no file to compare with."""
    if cache.path is None:
        return
    ids = db.window_ids()
    with tqdm(total=len(ids), unit="window", desc="check windows", disable=not progress) as bar:
        for start in range(0, len(ids), FILL_CHUNK):
            chunk = ids[start:start + FILL_CHUNK]
            cache.feed(chunk, db.window_vectors(chunk, dim))
            report.windows += len(chunk)
            bar.update(len(chunk))


class _CacheCheck:
    """The newest cache file the store would load, compared with SQLite as its ids and vectors (`what`: of
    clips or of windows) stream by; only the vectors of the ids fed are read back from the file. A live
    service writes newer files and prunes older ones meanwhile: a file that vanished is not a finding, nor
    one of a state the database has reached by the end."""

    def __init__(self, folder: Path, *, kind: str, dim: int, epoch: int, gen: int, what: str = "clip"):
        self.folder, self.kind, self.epoch, self.gen, self.what = folder, kind, epoch, gen, what
        self.findings: list[tuple[str, int | None]] = []  # (message, the clip's or window's id)
        self.stale = {p: s for p in (folder.glob("*.faiss") if folder.is_dir() else [])
                      if (s := _file_state(p)) is not None and s > (epoch, gen)}  # file -> (epoch, gen)
        self.path = vector_index.newest_file(folder, kind=loadable_kinds(kind), epoch=epoch, generation=gen) \
            if folder.is_dir() else None
        self.atol = CACHE_ATOL.get(vector_index.kind_of(self.path) if self.path else kind, 1e-6)
        self.vi: vector_index.VectorIndex | None = None
        self.ids = np.empty(0, np.int64)  # the file's, sorted
        self.seen: list[np.ndarray] = []
        if self.path is not None:
            self.vi = vector_index.load(self.path, dim=dim, kind=vector_index.kind_of(self.path))
            if self.vi is None:
                if self.path.exists():
                    self.findings.append((f"{self.path} is unreadable or not a {dim}-d index", None))
                self.path = None
            else:
                self.ids = np.sort(self.vi.ids())
        self.current = self.path is not None and vector_index.file_generation(self.path) == gen

    @property
    def broken(self) -> bool:
        return bool(self.findings or self.stale)

    def feed(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """(n,) ids in SQLite, sorted, and their (n, D) vectors there."""
        self.seen.append(ids)
        if self.vi is None:
            return
        at = np.clip(np.searchsorted(self.ids, ids), 0, max(len(self.ids) - 1, 0))
        held = self.ids[at] == ids if len(self.ids) else np.zeros(len(ids), bool)  # an empty file lacks all
        what = self.what
        if self.current:
            for i in ids[~held]:
                self.findings.append((f"{self.path} lacks {what} {int(i)}, though it claims to be current",
                                      int(i)))
        got = self.vi.vectors_of(ids[held])
        diff = np.abs(got - vectors[held]).max(axis=1) if held.any() else np.empty(0)
        for i, d in zip(ids[held], diff, strict=True):
            if not d <= self.atol:
                self.findings.append((f"{self.path} holds another vector for {what} {int(i)} than SQLite "
                                      f"(largest difference {float(d):.2g})", int(i)))

    def finish(self, report: CheckReport, *, live: tuple[int, int],
               clip_of: Callable[[list[int]], dict[int, int]] | None = None) -> None:
        """Report what was found; `live`: the database's (epoch, generation) now; `clip_of`: window ids -> the
        clips of those that exist (a windows cache's findings then name their clip)."""
        self.stale = {p: s for p, s in self.stale.items() if s > live and p.exists()}
        if self.current and len(self.ids):
            seen = np.concatenate(self.seen) if self.seen else np.empty(0, np.int64)
            for i in np.setdiff1d(self.ids, seen):
                self.findings.append((f"{self.path} holds {self.what} {int(i)}, which SQLite does not, "
                                      "though it claims to be current", int(i)))
        for path in self.stale:
            self.findings.append((f"{path} claims a later state than the database's (epoch {self.epoch}, "
                                  f"generation {self.gen}): left by another database, it would be loaded as "
                                  "this one's", None))
        named = [i for _, i in self.findings if i is not None]
        clips = clip_of(named) if clip_of is not None and named else None
        kind = "faiss-cache" if self.what == "clip" else f"faiss-{self.what}s-cache"
        for message, id_ in self.findings:
            report.error(kind, message + " (`retrieval check --repair` rebuilds the cache)",
                         clip_id=id_ if clips is None else clips.get(id_) if id_ is not None else None,
                         path=str(self.path or self.folder))


def _file_state(path: Path) -> tuple[int, int] | None:
    """(epoch, generation) a cache file's name claims; None for another file."""
    m = FILE_RE.match(path.name)
    return None if m is None else (int(m[2]), int(m[3]))


def _rebuild_cache(db: ClipDB, what: _Cache, *, dim: int, search_threads: int, stale: list[Path]) -> None:
    """The cache `what` written anew from SQLite, of the kind its size calls for ("auto": flat16 or ivf16),
    and the files it replaces removed."""
    with db.snapshot():
        epoch, gen = db.state()
        cache = CachedIndex(what.folder, kind=what.kind, dim=dim, search_threads=search_threads, ids=what.ids,
                            vectors=what.vectors, auto_at=what.auto_at)
        vi = cache.filled(what.ids())  # trained first where the kind needs it
    path = what.folder / vector_index.file_name(kind=vi.kind, epoch=epoch, generation=gen)
    vector_index.write_atomically(vi, path)
    vector_index.prune(what.folder, keep=path)
    for p in stale:
        p.unlink(missing_ok=True)


WINDOWS_SETTLE_S = 2.0  # between the two looks at windows without a clip

# -- Qdrant --------------------------------------------------------------------------------------------------
def _check_qdrant(config: StoreConfig, report: CheckReport, *, spec: ModelSpec | None,
                  project: Project | None, repair: bool, progress: bool) -> None:
    from index.qdrant.open import QdrantUnavailable, open_existing

    try:
        store = open_existing(url=config.qdrant_url, data_dir=Path(config.data_dir),
                              collection=config.qdrant_collection, api_key=config.qdrant_api_key)
    except QdrantUnavailable as e:  # a server not answering: the store is unusable, a finding
        if config.qdrant_url is None:  # the embedded store a service holds: it cannot be checked now, which
            raise  # says nothing of its health (refused, as every other command is)
        report.error("missing", str(e))
        return
    if store is None:
        report.error("missing", f"there is no Qdrant collection {config.qdrant_collection!r}")
        return
    try:
        reader = _Reader(Path(config.data_dir), store.spec, lambda: store.export(), store.get,
                         store.get_by_sha256)
        checked_model = _model_ok(reader, report, spec)
        try:
            _check_clips(reader, report, project=project if checked_model else None, progress=progress,
                         total=store.count())
        except RetrievalError as e:  # a point whose payload holds no clip (payload.record_of)
            report.error("payload", f"{e}; the clips after it were not checked")
            return
        _check_orphans(reader, report, repair=repair, store=config.name)
        _check_orphan_windows(store, report, repair=repair)
        _check_window_copies(store, report, repair=repair)
        _check_next_id(store, report)
        _check_generations(store, report)
    finally:
        store.close()


def _check_generations(store: QdrantStore, report: CheckReport) -> None:
    """Generations of the store's collections that no alias names: what a re-projection stopped part-way
    left (or one running now is filling); the next re-projection replaces them."""
    for name, points in store.unused_generations().items():
        report.warn("generation", f"Qdrant collection {name} ({points:,} points) is no generation in use: a "
                    "re-projection stopped part-way left it (or one is filling it now); the next "
                    "`retrieval index reproject` replaces it")


def _check_window_copies(store: QdrantStore, report: CheckReport, *, repair: bool) -> None:
    """Windows holding another copy of their clip's metadata than the clip (an edit by an earlier version,
    which wrote the clip alone): window and moment searches filtered by it answer for what it was."""
    stale = store.windows_out_of_date()
    if not stale:
        return
    shown = ", ".join(map(str, stale[:10])) + (" ..." if len(stale) > 10 else "")
    clips = f"{len(stale)} clip{'s' if len(stale) != 1 else ''}"
    if repair:
        store.bring_windows_up_to_date(stale)
        report.repaired.append(f"copied the metadata of {clips} onto their windows again ({shown})")
    else:
        report.error("window-metadata", f"the windows of {clips} hold their metadata from before an edit "
                     f"({shown}): moment searches filtered by tags or fields answer for what they were "
                     "(`retrieval check --repair` copies it again)")


def _check_next_id(store: QdrantStore, report: CheckReport) -> None:
    """The id the next add takes is above every clip's (else the add would overwrite a clip)."""
    ids, next_id = store.ids(), store.next_id()
    if len(ids) and next_id <= int(ids.max()):
        report.error("next-id", f"the collection's next clip id ({next_id}) is not above its largest "
                     f"({int(ids.max())}): the next add would overwrite clip {next_id}; restore the "
                     "collection from a backup")


def _check_orphan_windows(store: QdrantStore, report: CheckReport, *, repair: bool) -> None:
    """Windows whose clip is not there (a crash between an add's or a removal's two writes), looked at
    twice WINDOWS_SETTLE_S apart: an add in flight writes its windows just before its clip."""
    orphans = store.windows_without_clip()
    if orphans:
        time.sleep(WINDOWS_SETTLE_S)
        orphans &= store.windows_without_clip()
    if not orphans:
        return
    shown = ", ".join(map(str, sorted(orphans)[:10])) + (" ..." if len(orphans) > 10 else "")
    clips = f"{len(orphans)} clip{'s' if len(orphans) != 1 else ''}"
    if repair:
        store.remove_windows(sorted(orphans))
        report.repaired.append(f"removed the windows of {clips} that are not there ({shown})")
    else:
        report.warn("orphan", f"windows of {clips} that are not there ({shown}): a crash "
                    "between an add's two writes left them (`retrieval check --repair` removes them)")
