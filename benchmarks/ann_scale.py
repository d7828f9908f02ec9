"""Scale: approximate indexes (IVF, HNSW) against exact search at 1M clips: p50 single-query search, recall@10
against exact search, build time and memory per clip.

Two synthetic collections of 768-d unit vectors: *clustered* (points scattered around n/20 random centres,
like embeddings of a real collection, where near neighbours are really near) and *uniform* (no structure at
all: every point is about equally far from every query, the worst case for any approximate index).

    python -m benchmarks.ann_scale --n 1000000 --hnsw-n 100000
"""

import argparse
import time

import faiss
import numpy as np

from benchmarks.common import clustered_vectors, header, interleaved, ms, overlap_at_k, p, table, unit_vectors

K = 10
DIM = 768
RECALL_TARGET = 0.95
HNSW_M = 32


def exact_topk(xb: np.ndarray, xq: np.ndarray, k: int = K, chunk: int = 50) -> np.ndarray:
    """(Q, k) exact ids by inner product, numpy, a few queries at a time to bound memory."""
    out = []
    for s in range(0, len(xq), chunk):
        S = xq[s:s + chunk] @ xb.T  # (c, N)
        part = np.argpartition(-S, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(S, part, axis=1), axis=1)
        out.append(np.take_along_axis(part, order, axis=1))
    return np.concatenate(out)


def single_query_ms(search, xq: np.ndarray, n: int) -> list[float]:
    return interleaved({"s": lambda i: search(xq[i % len(xq)][None])}, n=n)["s"]


def sweep(name: str, index, set_param, values, *, xq, exact, n, memory_b: float,
          build_s: float) -> list[list]:
    """Time and recall for each parameter value; rows of the results table."""
    rows = []
    for v in values:
        set_param(v)
        recall = overlap_at_k(index.search(xq, K)[1], exact)
        t = single_query_ms(lambda q: index.search(q, K), xq, n)
        rows.append([f"{name} ({v})", ms(t), f"{recall:.3f}", f"{memory_b:,.0f}", f"{build_s:.0f}"])
        if recall >= RECALL_TARGET and p(t, 50) < 0.005:
            break
    return rows


def ivf_rows(xb: np.ndarray, xq: np.ndarray, exact: np.ndarray, *, nlist: int, n: int) -> list[list]:
    t0 = time.perf_counter()
    quantizer = faiss.IndexFlatIP(DIM)
    ivf = faiss.IndexIVFFlat(quantizer, DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = xb[np.random.default_rng(0).choice(len(xb), min(len(xb), 40 * nlist), replace=False)]
    ivf.train(sample)
    train_s = time.perf_counter() - t0
    ivf.add(xb)
    build_flat = time.perf_counter() - t0
    nprobes = [4, 8, 16, 32, 64, 128, 256]
    rows = sweep(f"IVF{nlist},Flat nprobe", ivf, lambda v: setattr(ivf, "nprobe", v), nprobes, xq=xq,
                 exact=exact, n=n, memory_b=4 * DIM + 8, build_s=build_flat)
    t0 = time.perf_counter()
    sq = faiss.IndexIVFScalarQuantizer(quantizer, DIM, nlist, faiss.ScalarQuantizer.QT_8bit,
                                       faiss.METRIC_INNER_PRODUCT)
    sq.train(sample)  # the coarse quantizer is trained already: this fits the 8-bit ranges
    sq.add(xb)
    build_sq = train_s + time.perf_counter() - t0
    rows += sweep(f"IVF{nlist},SQ8 nprobe", sq, lambda v: setattr(sq, "nprobe", v), nprobes, xq=xq,
                  exact=exact, n=n, memory_b=DIM + 8, build_s=build_sq)
    return rows


def hnsw_rows(xb: np.ndarray, xq: np.ndarray, exact: np.ndarray, *, n: int) -> list[list]:
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(DIM, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 100
    hnsw.add(xb)
    build = time.perf_counter() - t0
    links = 4 * faiss.vector_to_array(hnsw.hnsw.neighbors).size / hnsw.ntotal
    return sweep(f"HNSW{HNSW_M},Flat efSearch", hnsw, lambda v: setattr(hnsw.hnsw, "efSearch", v),
                 [16, 32, 64, 128, 256, 512], xq=xq, exact=exact, n=n, memory_b=4 * DIM + links,
                 build_s=build)


def flat_ms(xb: np.ndarray, xq: np.ndarray, n: int) -> list[float]:
    flat = faiss.IndexFlatIP(DIM)
    flat.add(xb)
    return single_query_ms(lambda q: flat.search(q, K), xq, n)


def one_collection(kind: str, xb: np.ndarray, xq: np.ndarray, *, nlist: int, hnsw_n: int, n: int) -> None:
    N = len(xb)
    exact = exact_topk(xb, xq)
    t_flat = flat_ms(xb, xq, n)
    t_np = single_query_ms(lambda q: exact_topk(xb, q), xq, n)
    rows = [["FAISS IndexFlatIP (exact, reference)", ms(t_flat), "1.000", f"{4 * DIM:,}", "0"],
            ["numpy matmul (exact)", ms(t_np), "1.000", f"{4 * DIM:,}", "0"]]
    rows += ivf_rows(xb, xq, exact, nlist=nlist, n=n)
    print(f"## {kind}: {N:,} clips x {DIM}-d, {len(xq)} queries\n")
    table(rows, ["index (parameter)", "p50 ms, 1 query", f"recall@{K} vs exact", "bytes per clip", "build s"])
    if hnsw_n:
        sub = xb[:hnsw_n]
        rows = hnsw_rows(sub, xq, exact_topk(sub, xq), n=n)
        print(f"HNSW on the first {hnsw_n:,} clips only (its build is the slow part on 2 cores):\n")
        table(rows, ["index (parameter)", "p50 ms, 1 query", f"recall@{K} vs exact", "bytes per clip",
                     "build s"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="clips")
    ap.add_argument("--nlist", type=int, default=0, help="IVF lists (default about 4 sqrt(n))")
    ap.add_argument("--hnsw-n", type=int, default=100_000, help="clips for the HNSW build (0: skip)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--timed", type=int, default=50, help="timed single queries per row")
    ap.add_argument("--uniform", action="store_true", help="also the uniform (worst-case) collection")
    ap.add_argument("--noise", type=float, default=1.0,
                    help="spread of the clustered collection around its centres (1.0: a point is as far from "
                         "its centre as the centre's norm; smaller is tighter)")
    args = ap.parse_args(argv)
    header("Scale: approximate search against exact at 1M clips")
    nlist = args.nlist or int(4 * np.sqrt(args.n) // 256 * 256) or 256
    centres = unit_vectors(max(1, args.n // 20), DIM, seed=7)
    xb = clustered_vectors(centres, args.n, noise=args.noise, seed=8)
    xq = clustered_vectors(centres, args.queries, noise=args.noise, seed=9)
    one_collection(f"clustered (noise {args.noise:g})", xb, xq, nlist=nlist,
                   hnsw_n=min(args.hnsw_n, args.n), n=args.timed)
    if args.uniform:
        del xb
        xb, xq = unit_vectors(args.n, DIM, seed=10), unit_vectors(args.queries, DIM, seed=11)
        one_collection("uniform (worst case)", xb, xq, nlist=nlist, hnsw_n=0, n=args.timed)
    print(f"Each sweep stops at the first setting with recall@{K} >= {RECALL_TARGET} and p50 < 5 ms.")


if __name__ == "__main__":
    main()
