"""Backup and restore of a 100,000-clip store: time, size, and what a backup costs the searches beside it.

    python -m benchmarks.backup_restore [--n 100000] [--uploads 1000] [--qdrant-n 10000] [--window-hours 10]

A synthetic FAISS + SQLite store (768-d unit vectors, random logits, as all-mpnet-base-v2's head makes them;
`--uploads` of its clips are uploads with 64 KiB of stored bytes each). Measured:

- `retrieval backup` (the command, in its own process) against the reference, copying the stopped data
  directory by hand (`shutil.copytree`, what there was before);
- restore (:func:`index.backups.restore.restore`: verify every byte, build the store in staging, move it in)
  into an empty FAISS store against copying the folder back, and, on a `--qdrant-n` store, into embedded
  Qdrant;
- search p50 (FAISS flat, k=10, one search thread, in this process as the service runs it) while the backup
  runs against idle before and after it: target <= 1.25x; at the default `--nice 10` and at `--nice 0`;
- the windows: a store of `--window-hours` hour-long clips, each with its 1,441 PaSST windows (synthetic
  float16 vectors and logits, at the default 10 s windows and 2.5 s hop) and peaks, backed up and restored
  into FAISS and into embedded Qdrant, per hour of audio, against copying its stopped folder by hand; the
  restored stores hold every window.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks.common import header, ms, table, unit_vectors
from index.layout import AUDIO_DIR, CLIP_DB, upload_location
from retrieval.config import N_TAGS, SAMPLE_RATE, Windowing
from retrieval.model_spec import ModelSpec

DIM = 768
UPLOAD_BYTES = 64 * 1024
SPEC = ModelSpec(passt_weights="random", text_model="sentence-transformers/all-mpnet-base-v2",
                 text_model_revision=None, dim=DIM, head="zero-shot", lam=0.0)
TARGET_RATIO = 1.25


def fill(data_dir: Path, *, n: int, uploads: int, seed: int = 0) -> None:
    """n synthetic clips in one SQLite transaction; the first `uploads` are uploads with stored bytes."""
    from index.faiss.schema import stored_clips
    from index.faiss.store import FaissStore
    from index.store.records import NewClip, Tag

    if stored_clips(data_dir / CLIP_DB) == n and len(list((data_dir / AUDIO_DIR).iterdir())) == uploads:
        print(f"reusing the store in {data_dir}", flush=True)
        return
    if data_dir.exists():
        shutil.rmtree(data_dir)
    (data_dir / AUDIO_DIR).mkdir(parents=True)
    store = FaissStore(data_dir, SPEC)
    rng = np.random.default_rng(seed)
    xb = unit_vectors(n, DIM, seed=seed)
    tags = (Tag("Speech", 0.8), Tag("Music", 0.3))
    with store.db.transaction() as con:
        for i in tqdm(range(n), desc="fill store", unit="clip"):
            if i < uploads:
                data = rng.integers(0, 256, UPLOAD_BYTES, dtype=np.uint8).tobytes()
                sha = hashlib.sha256(data).hexdigest()
                location = upload_location(sha, "wav")
                (data_dir / location).write_bytes(data)
            else:
                sha, location = hashlib.sha256(str(i).encode()).hexdigest(), f"/collection/clip{i}.wav"
            clip = NewClip(name=f"clip{i}.wav", location=location, sha256=sha, duration=10.0,
                           sample_rate=32000, tags=tags, stored_copy=i < uploads)
            store.db.insert(con, clip, vector=xb[i], logits=rng.standard_normal(N_TAGS, dtype=np.float32))
    store.close()
    FaissStore(data_dir, SPEC).close()  # builds and writes the FAISS file, as the service's first start does


def fill_windows(data_dir: Path, *, hours: int, seed: int = 1) -> int:
    """`hours` clips of an hour, each with its windows and peaks, one write a clip; the windows stored."""
    from index.faiss.store import FaissStore
    from index.store.records import NewClip, Tag, Timeline, Windows
    from retrieval.windows import window_spans

    shutil.rmtree(data_dir, ignore_errors=True)
    store = FaissStore(data_dir, SPEC)
    rng = np.random.default_rng(seed)
    starts, ends = window_spans(3600 * SAMPLE_RATE, Windowing())
    for i in tqdm(range(hours), desc="fill hour-long clips", unit="clip"):
        w = len(starts)
        vectors = unit_vectors(w, DIM, seed=seed + 1 + i).astype(np.float16)
        logits = rng.standard_normal((w, N_TAGS), dtype=np.float32)
        clip = NewClip(name=f"tape{i}.wav", location=f"/archive/tape{i}.wav",
                       sha256=hashlib.sha256(b"tape %d" % i).hexdigest(), duration=3600.0,
                       sample_rate=SAMPLE_RATE, tags=(Tag("Speech", 0.8),))
        peaks = rng.integers(0, 256, 400).astype(np.uint8)
        timeline = Timeline(Windows(starts, ends, vectors, logits), peaks)
        store.add_many([clip], vectors.astype(np.float32).mean(0, keepdims=True), logits.mean(0)[None],
                       [timeline])
    windows = store.stats()["windows"]
    store.close()
    return int(windows)


def windows_rows(work: Path, hours: int) -> list[list[str]]:
    """Backup and restores of a store of hour-long clips with their windows, per hour of audio."""
    from index.backups.backup import backup
    from index.backups.restore import restore
    from index.stores import StoreConfig, open_store

    src, path = work / "tapes", work / "tapes.zip"
    windows = fill_windows(src, hours=hours)
    os.sync()
    t = time.perf_counter()
    shutil.copytree(src, work / "tapes-copy", dirs_exist_ok=False)
    os.sync()
    copy_s = time.perf_counter() - t
    shutil.rmtree(work / "tapes-copy")
    path.unlink(missing_ok=True)
    t = time.perf_counter()
    backup(StoreConfig(data_dir=src), path)
    backup_s = time.perf_counter() - t
    rows = [[f"backup of {hours} hour-long clips with their windows ({windows:,})", f"{backup_s:.1f} s",
             f"{backup_s / hours:.2f} s an hour; {path.stat().st_size / hours / 1e6:.2f} MB an hour",
             f"reference: copying the stopped folder by hand, {copy_s:.1f} s "
             f"({folder_bytes(src) / hours / 1e6:.2f} MB an hour on disk)"]]
    for backend in ("faiss", "qdrant"):
        target = work / f"tapes-restored-{backend}"
        shutil.rmtree(target, ignore_errors=True)
        t = time.perf_counter()
        config = StoreConfig(data_dir=target, backend=backend)  # type: ignore[arg-type]
        report = restore(path, config, configured=SPEC)
        seconds = time.perf_counter() - t
        with open_store(config, SPEC) as store:
            held = int(store.stats()["windows"])
        assert report.windows == windows == held, (report.windows, windows, held)
        rows.append([f"restore them into {'embedded Qdrant' if backend == 'qdrant' else 'empty FAISS'}",
                     f"{seconds:.1f} s", f"{seconds / hours:.2f} s an hour",
                     "reference: `backfill-windows` runs PaSST again, about 49 min an hour here (section 3)"])
    return rows


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_backup(data_dir: Path, out: Path, *, nice: int) -> subprocess.Popen:
    cli = Path(sys.executable).with_name("retrieval")
    env = {**os.environ, "RETRIEVAL_DATA_DIR": str(data_dir), "RETRIEVAL_PASST_WEIGHTS": "random"}
    return subprocess.Popen([str(cli), "backup", str(out), "--no-progress", "--nice", str(nice)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def search_while(store, stop: threading.Event, *, seed: int, max_n: int = 100_000) -> list[float]:
    """Seconds per search until `stop` is set (or max_n searches)."""
    xq = unit_vectors(512, DIM, seed=seed)
    times = []
    i = 0
    while not stop.is_set() and i < max_n:
        t = time.perf_counter()
        store.search(xq[i % len(xq)][None], 10)
        times.append(time.perf_counter() - t)
        i += 1
    return times


def idle(store, n: int, seed: int) -> list[float]:
    stop = threading.Event()
    return search_while(store, stop, seed=seed, max_n=n)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="clips in the store")
    ap.add_argument("--uploads", type=int, default=1000, help="of them, uploads with 64 KiB stored bytes")
    ap.add_argument("--qdrant-n", type=int, default=10_000,
                    help="clips of a second store restored into Qdrant (0: none)")
    ap.add_argument("--idle-n", type=int, default=300, help="searches per idle window")
    ap.add_argument("--window-hours", type=int, default=10,
                    help="hour-long clips with windows in a third store, backed up and restored (0: none)")
    ap.add_argument("--nice", type=lambda v: [int(x) for x in v.split(",")], default=[10, 0],
                    help="the backup's --nice values to run, the first one restored (default 10,0)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "retrieval-bench-backup")
    args = ap.parse_args(argv)
    header(f"Backup and restore: {args.n:,} clips, {args.uploads:,} of them uploads")
    from index.backups.restore import restore
    from index.faiss.store import FaissStore
    from index.stores import StoreConfig

    work = args.workdir
    src, copy, restored = work / "src", work / "copy", work / "restored"
    fill(src, n=args.n, uploads=args.uploads)
    store_size = folder_bytes(src)
    for p in (copy, restored):
        shutil.rmtree(p, ignore_errors=True)

    # the reference: the stopped store copied by hand
    os.sync()
    t = time.perf_counter()
    shutil.copytree(src, copy)
    os.sync()
    copy_s = time.perf_counter() - t

    # the backup, in its own process, while this one searches the store as the service does
    store = FaissStore(src, SPEC, search_threads=1)
    runs = []  # (nice, seconds, searches before, during, after)
    for k, nice in enumerate(args.nice):
        path = work / f"backup-nice{nice}.zip"
        path.unlink(missing_ok=True)
        before = idle(store, args.idle_n, seed=10 * k + 1)
        stop = threading.Event()
        during: list[float] = []
        searcher = threading.Thread(target=lambda d=during, st=stop, sd=10 * k + 2: d.extend(
            search_while(store, st, seed=sd)))
        t = time.perf_counter()
        proc = run_backup(src, path, nice=nice)
        searcher.start()
        output, _ = proc.communicate()
        seconds = time.perf_counter() - t
        stop.set()
        searcher.join()
        if proc.returncode != 0:
            raise SystemExit(f"retrieval backup failed ({proc.returncode}):\n{output}")
        after = idle(store, args.idle_n, seed=10 * k + 3)
        runs.append((nice, seconds, before, during, after))
        if k == 0:
            backup_path = path
    xq = unit_vectors(20, DIM, seed=4)
    want = [[h.record.id for h in row] for row in store.search(xq, 10)]
    store.close()
    backup_size = backup_path.stat().st_size

    # restore: verify, stage, move in; against copying the folder back
    t = time.perf_counter()
    shutil.copytree(copy, work / "copied-back")
    os.sync()
    copy_back_s = time.perf_counter() - t
    shutil.rmtree(work / "copied-back")
    t = time.perf_counter()
    report = restore(backup_path, StoreConfig(data_dir=restored), configured=SPEC)
    restore_s = time.perf_counter() - t
    check = FaissStore(restored, SPEC)
    same = [[h.record.id for h in row] for row in check.search(xq, 10)] == want
    check.close()
    assert report.clips == args.n and same, (report, same)

    qdrant_row = None
    if args.qdrant_n:
        small, small_backup = work / "small", work / "small.zip"
        small_backup.unlink(missing_ok=True)
        fill(small, n=args.qdrant_n, uploads=min(args.uploads, args.qdrant_n // 10))
        from index.backups.backup import backup

        backup(StoreConfig(data_dir=small), small_backup)
        target = work / "restored-qdrant"
        shutil.rmtree(target, ignore_errors=True)
        t = time.perf_counter()
        restore(small_backup, StoreConfig(data_dir=target, backend="qdrant"), configured=SPEC)
        qdrant_s = time.perf_counter() - t
        qdrant_row = [f"restore {args.qdrant_n:,} clips into embedded Qdrant", f"{qdrant_s:.1f} s",
                      f"{args.qdrant_n / qdrant_s:,.0f} clips/s", "(embedded mode: for small collections)"]

    mb = 1e6
    rows = [
        ["store on disk (SQLite + FAISS file + uploads)", f"{store_size / mb:,.0f} MB", "", ""],
        ["backup file", f"{backup_size / mb:,.0f} MB", f"{backup_size / store_size:.2f}x the store",
         "reference: the store's folder"],
    ]
    for nice, seconds, _, _, _ in runs:
        rows.append([f"`retrieval backup --nice {nice}` (online, own process)", f"{seconds:.1f} s",
                     f"{backup_size / mb / seconds:,.0f} MB/s",
                     f"reference: copying the stopped folder by hand, {copy_s:.1f} s "
                     f"({store_size / mb / copy_s:,.0f} MB/s)"])
    rows.append(["restore into empty FAISS (verify, stage, move in)", f"{restore_s:.1f} s",
                 f"{args.n / restore_s:,.0f} clips/s",
                 f"reference: copying the folder back, {copy_back_s:.1f} s; re-indexing would run PaSST "
                 "again"])
    if qdrant_row:
        rows.append(qdrant_row)
    if args.window_hours:
        rows.extend(windows_rows(work, args.window_hours))
    for nice, _, before, during, after in runs:
        idle_all = before + after
        ratio = float(np.median(during)) / float(np.median(idle_all))
        rows.append([f"search p50 while `backup --nice {nice}` runs", f"{ms(during)} ms",
                     f"{ratio:.2f}x idle ({len(during)} searches; p95 {ms(during, 95)} ms)",
                     f"idle {ms(idle_all)} ms ({ms(before)} before, {ms(after)} after; "
                     f"p95 {ms(idle_all, 95)} ms); target <= {TARGET_RATIO}x: "
                     f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}"])
    table(rows, ["figure", "measured", "rate / ratio", "reference"])
    print(f"The restored store answers 20 queries with the same ids in the same order: {same}.", flush=True)


if __name__ == "__main__":
    main()
