"""Stores with uploads, folder-indexed files and waiting jobs for the backup, restore and check tests (no
models: synthetic vectors, logits and bytes; uploads stored the way Collection stores them)."""

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from index.ingest.queue import JobQueue
from index.store.metadata import Metadata, MetaLayers
from index.store.records import NewClip, Tag, Timeline, Windows
from index.stores import StoreConfig, open_store
from retrieval.durable import write_bytes_atomically
from tests.index.store_fixtures import DIM, LABELS, SPEC

W = np.random.default_rng(7).standard_normal((527, DIM)).astype(np.float32)  # a fixed "head"


def project(logits: np.ndarray) -> np.ndarray:
    """(N, 527) -> (N, DIM) unit vectors: the head these stores' vectors are made with."""
    x = np.asarray(logits, np.float32).reshape(-1, 527) @ W
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clip_logits(i: int) -> np.ndarray:
    return np.random.default_rng(5000 + i).standard_normal(527).astype(np.float32)


def duration(i: int) -> float:
    """Clip i's length in seconds."""
    return 0.5 + i % 5


def timeline(i: int) -> Timeline | None:
    """Clip i's windows and peaks, as a store is given them: 1 + i % 4 windows of half the clip every eighth
    of it, their synthetic logits projected by the head (float16 vectors); every fifth clip has none (stored
    before windows were)."""
    if i % 5 == 4:
        return None
    rng = np.random.default_rng(9000 + i)
    starts = np.arange(1 + i % 4) * duration(i) / 8
    logits = (rng.standard_normal((len(starts), 527)) * 3).astype(np.float32)
    return Timeline(Windows(starts, starts + duration(i) / 2, project(logits).astype(np.float16), logits),
                    rng.integers(0, 256, 40 + 7 * i).astype(np.uint8))


def upload_bytes(i: int, size: int = 2000) -> bytes:
    return b"RIFF" + np.random.default_rng(i).integers(0, 256, size, dtype=np.uint8).tobytes()


def new_clip(i: int, data_dir: Path, *, upload: bool, folder: Path | None = None) -> NewClip:
    """Clip i: an upload (its bytes written under audio/ first, as Collection does) or a file in `folder`
    (written there when a folder is given, else a path that does not exist); even ones have the user's
    metadata."""
    tags = (Tag(LABELS[i % 4], 0.9), Tag(LABELS[(i + 1) % 4], 0.3))
    data = upload_bytes(i)
    sha = hashlib.sha256(data).hexdigest()
    if upload:
        location = f"audio/{sha}.wav"
        write_bytes_atomically(data_dir / location, data)
    elif folder is not None:
        location = str(folder / f"clip{i}.wav")
        write_bytes_atomically(location, data)
    else:
        location = f"/nowhere/clip{i}.wav"
    meta = Metadata.of(description=f"take {i}", tags=["drums", f"kit{i % 3}"],
                       fields={"pack": f"p{i % 4}"}) if i % 2 == 0 else Metadata()
    audio = hashlib.sha256(b"samples %d" % i).hexdigest() if i % 3 else None  # none: stored before
    read = Metadata.of(tags=["drums"], fields={"pack": f"p{i % 4}"}) if i % 4 == 0 else None  # its file's
    return NewClip(name=f"clip{i}.wav", location=location, sha256=sha, duration=duration(i),
                   sample_rate=44_100, tags=tags, stored_copy=upload, meta=meta, audio_sha256=audio,
                   meta_layers=None if read is None  # some with a file value taken off, which stays off
                   else MetaLayers(read, meta, Metadata.of(tags=["brushes"]) if i % 8 == 0 else Metadata()))


def config(data_dir: Path, backend: str = "faiss") -> StoreConfig:
    return StoreConfig(data_dir=Path(data_dir), backend=backend)  # type: ignore[arg-type]


def fill(data_dir: Path, *, backend: str = "faiss", n: int = 24, remove: tuple[int, ...] = (3, 24),
         folder: Path | None = None, jobs: int = 2, windows: bool = False) -> dict:
    """A store of n clips (every third an upload), with `remove`d ids gone (the last one too, so the next id
    is above the highest stored), and `jobs` uploads waiting in the queue (plus one done); with `windows`,
    clip i stored with `timeline(i)` (most have windows, some none)."""
    cfg = config(data_dir, backend)
    store = open_store(cfg, SPEC)
    clips = [new_clip(i, Path(data_dir), upload=i % 3 == 0, folder=folder) for i in range(n)]
    logits = np.stack([clip_logits(i) for i in range(n)])
    store.add_many(clips, project(logits), logits, [timeline(i) if windows else None for i in range(n)])
    store.remove(list(remove))
    for r in [store.get(i) for i in remove]:
        assert r is None
    for c in clips:
        r = store.get_by_sha256(c.sha256)
        if r is None and c.stored_copy:  # removed: so is its copy, as Collection.remove does
            (Path(data_dir) / c.location).unlink()
    next_id = store.next_id()
    store.close()
    queue = JobQueue(Path(data_dir) / "jobs.sqlite")
    for j in range(-1, jobs):
        data = upload_bytes(1000 + j)
        sha = hashlib.sha256(data).hexdigest()
        write_bytes_atomically(Path(data_dir) / f"incoming/{sha}.upload", data)
        job, _ = queue.enqueue(name=f"job{j}.wav" if j >= 0 else "done.wav", sha256=sha,
                               location=f"incoming/{sha}.upload", windows_total=3, fields={"n": j})
        if j < 0:  # one finished: not in a backup
            [claimed] = queue.claim(worker="w")
            queue.finish(claimed.id, clip_id=1)
            (Path(data_dir) / job.location).unlink()
    queue.close()
    return {"config": cfg, "next_id": next_id, "n": n - len([i for i in remove if 1 <= i <= n])}


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for folders): to compare a folder before and after.
    SQLite's -wal and -shm companions are left out: a reader may create them, empty, beside a database."""
    if not Path(folder).exists():
        return {}
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(Path(folder).rglob("*")) if not p.name.endswith(("-wal", "-shm"))}


OLDER_FORMATS = {"retrieval-backup/1": ["description", "user_tags", "fields", "audio_sha256",
                                        "meta_layers"],
                 "retrieval-backup/2": ["audio_sha256", "meta_layers"],
                 "retrieval-backup/3": ["meta_layers"],
                 "retrieval-backup/4": []}  # the clips' columns each one lacks; all of them, windows.parquet


def rewritten(path: Path, out: Path, *, members: Callable[[str, bytes], bytes | None] = lambda _, data: data,
              manifest: Callable[[dict], None] = lambda _: None) -> Path:
    """A copy of the backup at `path` sealed anew at `out`: each member as `members(name, bytes)` gives it
    (None: left out), the manifest changed by `manifest` and listing the members written."""
    from index.backups.archive import ArchiveWriter

    with zipfile.ZipFile(path) as zf, open(out, "xb") as f:
        writer = ArchiveWriter(f, date_time=(2026, 1, 1, 0, 0, 0))
        for info in zf.infolist():
            data: bytes | None = zf.read(info)
            if info.filename == "manifest.json":
                found = json.loads(data)
                manifest(found)
                found["members"] = {m.name: {"size": m.size, "sha256": m.sha256}
                                    for m in writer.members.values()}
                data = json.dumps(found).encode()
            else:
                data = members(info.filename, data)
            if data is not None:
                writer.add_bytes(info.filename, data)
        writer.close()
    return out


def first_format_copy(path: Path, out: Path, fmt: str = "retrieval-backup/1") -> Path:
    """The backup at `path` as an older format wrote it: `retrieval-backup/1`, clips.parquet without the
    user's metadata or fingerprints; `retrieval-backup/2`, without fingerprints; `retrieval-backup/3`, without
    the files' own metadata; every one of them (4 too) without windows.parquet."""

    def older(name: str, data: bytes) -> bytes | None:
        if name == "windows.parquet":
            return None
        if name == "clips.parquet":
            sink = pa.BufferOutputStream()
            pq.write_table(pq.read_table(io.BytesIO(data)).drop_columns(OLDER_FORMATS[fmt]), sink)
            return sink.getvalue().to_pybytes()
        return data

    def manifest(found: dict) -> None:
        found["format"] = fmt
        found["tables"].pop("windows.parquet", None)

    return rewritten(path, out, members=older, manifest=manifest)
