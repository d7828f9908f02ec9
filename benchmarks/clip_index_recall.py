"""The clips' index kinds on this model's geometry: recall@10 of ivf16 and ivf8 (`RETRIEVAL_INDEX_KIND`)
against exact search, and single-query p50, at hundreds of thousands to a million clips.

How the vectors are made (synthetic, with this model's geometry; Gaussian clusters are `ann_scale.py`'s):
each clip is one scene of AudioSet tags, 1 to 4 active tags (logit +1 to +4) over a background of -6 +- 1,
plus one draw of the drift `archive_scale.py` gives windows (AR(1) noise at its stationary spread); its vector
is the service's zero-shot head over those logits (a probability-weighted mixture of the 527 tag-name
embeddings by all-mpnet-base-v2). Queries are real captions (benchmarks/captions.txt) through the head's
text side. Each index is built the way the store builds it (`index.faiss.cache.CachedIndex.filled`: sqrt(N)
lists trained on a sample) and searched the way the store searches it (ivf8: 4 x k candidates rescored by
the stored vectors, `FaissStore._rescored`); the reference is exact search over the float32 vectors.

    python -m benchmarks.clip_index_recall --n 250000,1000000 [--queries 200] [--text-model DIR]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks.ann_scale import exact_topk
from benchmarks.common import captions, header, mpnet_folder, ms, overlap_at_k, table
from index.faiss import store as store_module
from index.faiss.cache import CachedIndex
from index.faiss.store import FaissStore
from retrieval.config import N_TAGS

K = 10
CHUNK = 50_000
DRIFT_SPREAD = 0.5 / np.sqrt(1 - 0.8 ** 2)  # archive_scale's AR(1) drift (0.8, 0.5) at its stationary spread


def clip_logits(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 527) float32: one scene a clip (see the docstring)."""
    out = (-6 + rng.standard_normal((n, N_TAGS)) + DRIFT_SPREAD * rng.standard_normal((n, N_TAGS)))
    for row in out:
        active = rng.choice(N_TAGS, int(rng.integers(1, 5)), replace=False)
        row[active] = rng.uniform(1, 4, len(active)) + DRIFT_SPREAD * rng.standard_normal(len(active))
    return out.astype(np.float32)


def clip_vectors(retriever, n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    parts = [retriever.project(clip_logits(rng, min(CHUNK, n - s))).astype(np.float32)
             for s in tqdm(range(0, n, CHUNK), desc=f"{n:,} clip vectors", unit="chunk")]
    return np.concatenate(parts)


def searcher(kind: str, xb: np.ndarray, folder: Path):
    """The index the store builds for these vectors, and a (Q, D) -> (Q, K) ids search as the store does."""
    ids = np.arange(len(xb), dtype=np.int64)
    cache = CachedIndex(folder / kind, kind=kind, dim=xb.shape[1], search_threads=1, ids=lambda: ids,
                        vectors=lambda wanted, dim: xb[wanted])
    t = time.perf_counter()
    vi = cache.filled(ids)
    build_s = time.perf_counter() - t

    def search(xq: np.ndarray) -> np.ndarray:
        scores, found = vi.search(xq, store_module.REFINE * K if vi.lossy else K)
        if vi.lossy:
            scores, found = FaissStore._rescored(xq, found, K, lambda wanted: xb[wanted])
        return found

    return vi, search, build_s


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="250000,1000000", help="collection sizes, clips")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--kinds", default="flat16,ivf16,ivf8")
    ap.add_argument("--nprobe", default="16,32,48,96", help="IVF nprobe values (the store's default: 48)")
    ap.add_argument("--timed", type=int, default=60, help="single queries timed per row")
    ap.add_argument("--text-model", type=Path, default=None, help="all-mpnet-base-v2 folder")
    args = ap.parse_args(argv)
    header("The clips' index kinds on this model's geometry: recall@10 against exact")
    from app.compose import build_retriever
    from app.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="clip-index-recall-"))
    settings = Settings(data_dir=workdir, models_dir=workdir / "models",
                        text_model=str(mpnet_folder(args.text_model)), passt_weights="random", device="cpu")
    retriever = build_retriever(settings, with_audio=False)
    xq = retriever.encode_text(captions()[:args.queries]).astype(np.float32)
    for n in (int(v) for v in args.n.split(",") if v):
        xb = clip_vectors(retriever, n)
        exact = exact_topk(xb, xq)
        rows = []
        for kind in args.kinds.split(","):
            vi, search, build_s = searcher(kind, xb, workdir / str(n))
            for nprobe in ([int(v) for v in args.nprobe.split(",")] if vi.ivf else [0]):
                vi.nprobe = nprobe or vi.nprobe
                recall = overlap_at_k(search(xq), exact)
                times = []
                for i in range(args.timed):
                    t = time.perf_counter()
                    search(xq[i % len(xq)][None])
                    times.append(time.perf_counter() - t)
                rows.append([vi.kind, str(vi.nlist or ""), str(nprobe or ""), ms(times), ms(times, 90),
                             f"{recall:.3f}", f"{build_s:.0f}"])
        print(f"\n#### {n:,} clips x {xb.shape[1]}-d, {len(xq)} captions\n")
        table(rows, ["kind", "lists", "nprobe", "p50 ms", "p90 ms", "recall@10 vs exact", "build s"])
        del xb


if __name__ == "__main__":
    main()
