"""Archives: hour-long recordings at hundreds and thousands of hours. Clip search, search with each hit's
segment (its best window), and moment search, p50/p90 over real captions, by the store as it is (windows
index "auto": ivf16 at these sizes, each clip's windows scored in it) against today's reference in the same
run and process (every window of the candidate clips read back from SQLite and scored with numpy, windows
searched with an exact flat16 index); recall@10 of what the approximate index answers; the service's
resident memory over HTTP; bytes on disk per hour.

    python -m benchmarks.archive_scale --hours 300,1000 [--queries 30] [--text-model DIR]

How the vectors are made (synthetic, with this model's geometry): each recording is an hour of PaSST windows
(10 s every ~2.5 s, hear21passt's, 1,446 an hour) through a sequence of scenes of 20 s to 10 min; a scene
has 1 to 4 active AudioSet tags (logit +1 to +4) over a background of -6 +- 1, and its windows drift around
it (AR(1) noise). Window vectors are the service's own zero-shot head over those logits: probability-weighted
mixtures of the 527 tag-name embeddings by all-mpnet-base-v2, stored as float16; a clip's vector is the head
over its windows' mean logits. Queries are real captions (benchmarks/captions.txt) by all-mpnet-base-v2
through the head's text side. The service is `retrieval serve` with random PaSST weights (same size).
"""

import argparse
import contextlib
import tempfile
import time
from functools import partial
from pathlib import Path

import httpx
import numpy as np
from tqdm import tqdm

from benchmarks.common import captions, header, mpnet_folder, p, rss_mib, table
from benchmarks.server import running_service, service_env
from index.faiss import cache, vector_index
from index.faiss import store as store_module
from index.faiss.store import FaissStore
from index.faiss.vector_index import VectorIndex
from index.layout import CLIP_DB, FAISS_DIR
from index.store.contract import VectorStore
from index.store.records import NewClip, Tag, Timeline, Windows
from retrieval.config import N_TAGS, SAMPLE_RATE, Windowing
from retrieval.moments import iou
from retrieval.windows import window_spans

HOUR_S = 3600.0
K = 10
BATCH = 8  # recordings per write
DEFAULT_LISTS = store_module.CLIP_LISTS


def recording_logits(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 527) float32 logits of one recording's windows: scenes of tags with drift (see the docstring)."""
    out = np.empty((n, N_TAGS), np.float32)
    at = 0
    while at < n:
        length = int(rng.integers(8, 240))
        scene = (-6 + rng.standard_normal(N_TAGS)).astype(np.float32)
        active = rng.choice(N_TAGS, int(rng.integers(1, 5)), replace=False)
        scene[active] = rng.uniform(1, 4, len(active))
        m = min(length, n - at)
        drift = np.zeros(N_TAGS, np.float32)
        for i in range(m):
            drift = 0.8 * drift + 0.5 * rng.standard_normal(N_TAGS).astype(np.float32)
            out[at + i] = scene + drift
        at += m
    return out


def build(data_dir: Path, retriever, hours: int) -> None:
    """Fill a FAISS store with `hours` hour-long recordings (resumable: counts what is there)."""
    starts, ends = window_spans(int(HOUR_S * SAMPLE_RATE), Windowing())
    store = FaissStore(data_dir, retriever.spec, kind="flat16", window_kind="auto")
    have = store.count()
    rng = np.random.default_rng(have)
    with tqdm(total=hours, initial=have, desc=f"recordings in {data_dir.name}", unit="h") as bar:
        while have < hours:
            todo = range(have, min(hours, have + BATCH))
            clips, vectors, logits, timelines = [], [], [], []
            for i in todo:
                wl = recording_logits(rng, len(starts))
                mean = wl.astype(np.float64).mean(axis=0).astype(np.float32)
                clips.append(NewClip(name=f"tape{i:05d}.wav", location=f"/archive/tape{i:05d}.wav",
                                     sha256=f"{i:064x}", duration=HOUR_S, sample_rate=48000,
                                     tags=(Tag("Speech", 0.5),)))
                vectors.append(retriever.project(mean[None])[0])
                logits.append(mean)
                timelines.append(Timeline(Windows(starts, ends, retriever.project(wl).astype(np.float16), wl),
                                          np.zeros(400, np.uint8)))
            store.add_many(clips, np.stack(vectors), np.stack(logits), timelines)
            have += len(todo)
            bar.update(len(todo))
    store.close()  # writes the windows index as the kind its size calls for


def disk(data_dir: Path) -> tuple[int, int]:
    sqlite = sum(f.stat().st_size for f in data_dir.glob(f"{CLIP_DB}*"))
    faiss_files = sum(f.stat().st_size for f in (data_dir / FAISS_DIR).rglob("*.faiss"))
    return sqlite, faiss_files


@contextlib.contextmanager
def reference(store: FaissStore, exact: VectorIndex):
    """The store answering as before: windows searched exactly (flat16), each clip's windows read back."""
    held = store._windows.vi
    store._windows.vi = exact
    store.scored_windows = partial(VectorStore.scored_windows, store)  # type: ignore[method-assign]
    try:
        yield
    finally:
        store._windows.vi = held
        del store.scored_windows


def exact_windows(store: FaissStore) -> VectorIndex:
    vi = VectorIndex(store.dim, "flat16")
    ids = store.db.window_ids()
    for s in tqdm(range(0, len(ids), cache.FILL_CHUNK), desc="exact flat16 windows", unit="chunk"):
        chunk = ids[s:s + cache.FILL_CHUNK]
        vi.add(chunk, store.db.window_vectors(chunk, store.dim))
    return vi


def timed(fn, queries) -> tuple[list[float], list]:
    times, answers = [], []
    fn(queries[-1])  # warm (and for the text encoder, the one query whose vector is then cached)
    for q in queries[:-1]:
        t = time.perf_counter()
        answers.append(fn(q))
        times.append(time.perf_counter() - t)
    return times, answers


def searches(store: FaissStore, queries: np.ndarray) -> dict[str, tuple[list[float], list]]:
    def clips(q):
        return store.search(q[None], K)[0]

    def with_segments(q):
        hits = store.search(q[None], K)[0]
        return hits, store.best_windows(q, [h.record.id for h in hits])

    def moments(q):
        return [(h.record.id, h.segment.start, h.segment.end) for h in store.search_moments(q, K)]

    return {"clip search": timed(clips, queries), "clip search + segments": timed(with_segments, queries),
            "moments (k = 10)": timed(moments, queries)}


def moment_recall(got: list, want: list) -> float:
    """Share of the exact top-10 moments that the answer holds (same clip, spans overlapping >= 0.5)."""
    found = sum(any(g[0] == w[0] and iou(g[1:], w[1:]) >= 0.5 for g in got) for w in want)
    return found / max(1, len(want))


def segment_agreement(got, want) -> float:
    (_, g), (_, w) = got, want
    return sum(g.get(i) is not None and w[i].window == g[i].window for i in w) / max(1, len(w))


def compared(new: dict, ref: dict, label: str) -> list[list]:
    """Table rows: each search's times against the reference's, with its recall (moments: the exact top 10
    found, same clip, spans overlapping >= 0.5) or the share of hits whose segment is the exact one."""
    alone = p(new["clip search"][0], 50)
    rows = []
    for name, (times, answers) in new.items():
        ref_times, ref_answers = ref[name]
        pairs = zip(answers, ref_answers, strict=True)
        if name == "moments (k = 10)":
            agree = f"{np.mean([moment_recall(g, w) for g, w in pairs]):.3f}"
        elif name == "clip search + segments":
            agree = f"{np.mean([segment_agreement(g, w) for g, w in pairs]):.3f}"
        else:
            agree = "1.000"
        rows.append([name, label, f"{1000 * p(times, 50):.2f}", f"{1000 * p(times, 90):.2f}",
                     f"{p(times, 50) / alone:.1f}", f"{1000 * p(ref_times, 50):.1f}",
                     f"{1000 * p(ref_times, 90):.1f}", agree])
    return rows


def ints(values: str) -> list[int]:
    return [int(v) for v in values.split(",") if v]


def service_rss(data_dir: Path, folder: Path, workdir: Path, text: list[str],
                window_kind: str) -> tuple[float, float, float]:
    env = service_env(data_dir=data_dir, text_model=folder, text_backend="onnx",
                      models_dir=workdir / "models") | {"RETRIEVAL_WINDOW_INDEX_KIND": window_kind}
    with running_service(env, log_path=workdir / f"archive-{data_dir.name}.log") as (url, pid, ready_s):
        ready = rss_mib(pid)
        for t in text:
            httpx.post(f"{url}/search", json={"query": t, "k": K}, timeout=120).raise_for_status()
            httpx.post(f"{url}/search", json={"query": t, "k": K, "moments": True},
                       timeout=120).raise_for_status()
        return ready_s, ready, rss_mib(pid)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", default="300,1000", help="collection sizes, hours of hour-long recordings")
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--nprobe", default="32,48,64", help="ivf16 nprobe values timed")
    ap.add_argument("--clip-lists", default="4,10", help="CLIP_LISTS values timed besides the default")
    ap.add_argument("--only-measure", action="store_true", help="use the stores built before, as they are")
    ap.add_argument("--window-kind", default="auto", help="RETRIEVAL_WINDOW_INDEX_KIND measured")
    ap.add_argument("--text-model", type=Path, default=None, help="all-mpnet-base-v2 folder")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "retrieval-bench")
    ap.add_argument("--no-service", action="store_true", help="skip the service's resident memory")
    args = ap.parse_args(argv)
    header("Archives: hour-long recordings, segments and moments scored in the windows index")
    from app.compose import build_retriever, onnx_path
    from app.settings import Settings
    from retrieval.text_onnx import ensure_export

    folder = mpnet_folder(args.text_model)
    settings = Settings(data_dir=args.workdir, models_dir=args.workdir / "models", text_model=str(folder),
                        passt_weights="random", device="cpu")
    retriever = build_retriever(settings, with_audio=False)
    text = captions()[:args.queries]
    queries = retriever.encode_text(text).astype(np.float32)  # (Q, D)
    fresh = captions()[args.queries:2 * args.queries + 1]  # not in the query cache
    encode = timed(lambda t: retriever.encode_text([t]), fresh)[0]
    print(f"text query encoding (the service's CPU default, ONNX fp32): p50 {1000 * p(encode, 50):.1f} ms, "
          f"p90 {1000 * p(encode, 90):.1f} ms over {len(fresh)} captions not seen before")
    ensure_export(folder, onnx_path(settings))
    for hours in ints(args.hours):
        data_dir = args.workdir / f"archive-{hours}h"
        t = time.perf_counter()
        if not args.only_measure:
            build(data_dir, retriever, hours)
        print(f"\n## {hours} hours: built or found in {time.perf_counter() - t:.0f} s")
        if not args.no_service:
            ready_s, rss_ready, rss_after = service_rss(data_dir, folder, args.workdir, text[:5],
                                                        args.window_kind)
            print(f"service: ready in {ready_s:.1f} s, resident {rss_ready:,.0f} MiB when ready, "
                  f"{rss_after:,.0f} MiB after 5 searches and 5 moment searches")
        t = time.perf_counter()
        store = FaissStore(data_dir, retriever.spec, kind="flat16", window_kind=args.window_kind)
        stats = store.stats()
        sqlite_b, faiss_b = disk(data_dir)
        print(f"store opened in {time.perf_counter() - t:.1f} s: {stats['clips']:,} recordings, "
              f"{stats['windows']:,} windows, windows index {stats['window_index_kind']} "
              f"({stats['window_index_lists']} lists); disk {sqlite_b / 2**30:.2f} GiB SQLite + "
              f"{faiss_b / 2**30:.2f} GiB FAISS = {(sqlite_b + faiss_b) / hours / 2**20:.1f} MiB per hour")
        exact = exact_windows(store)
        with reference(store, exact):
            ref = searches(store, queries)
        rows = []
        sweeps = [(n, store_module.CLIP_LISTS) for n in ints(args.nprobe)]
        sweeps += [(vector_index.IVF_NPROBE, m) for m in ints(args.clip_lists)
                   if m != store_module.CLIP_LISTS]
        for nprobe, lists in sweeps:
            store._windows.index.nprobe, store_module.CLIP_LISTS = nprobe, lists
            rows += compared(searches(store, queries), ref, f"{nprobe} / {lists}")
        store._windows.index.nprobe = vector_index.IVF_NPROBE
        store_module.CLIP_LISTS = DEFAULT_LISTS
        default = searches(store, queries)
        text_ms, clip_ms, seg_ms = (1000 * p(t, 50) for t in (encode, default["clip search"][0],
                                                               default["clip search + segments"][0]))
        print(f"a text search end to end (encoding p50 {text_ms:.1f} ms + search): "
              f"{text_ms + clip_ms:.1f} ms for clips alone, {text_ms + seg_ms:.1f} ms with segments: "
              f"{(text_ms + seg_ms) / (text_ms + clip_ms):.2f}x\n")
        table(rows, ["search", "nprobe / clip lists", "p50 ms", "p90 ms", "p50 / clip search",
                     "reference p50 ms", "reference p90 ms", "recall@10 / same segment"])
        window_recall = []
        want = exact.search(queries, K)[1]
        for nprobe in ints(args.nprobe):
            store._windows.index.nprobe = nprobe
            got = store._windows.index.search(queries, K)[1]
            recall = np.mean([len(set(g) & set(w)) / K for g, w in zip(got, want, strict=True)])
            window_recall.append(f"nprobe {nprobe}: {recall:.3f}")
        print("window search recall@10 against exact flat16: " + ", ".join(window_recall) + "\n")
        store.close()


if __name__ == "__main__":
    main()
