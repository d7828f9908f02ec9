"""Query latency: text encoding + top-10 search, the path a user waits on.

Reference, in the same run: sentence-transformers `encode` (torch fp32) then FAISS `IndexFlatIP`. Ours: the
ONNX Runtime encoder (fp32, and weight-only int8) then exact numpy search. Agreement: top-10 of our path
against exact fp32 search with the fp32 torch encoder, on real captions (benchmarks/captions.txt) as queries
and as the collection, and on synthetic vectors as a stress case.

    python -m benchmarks.query_latency --sizes 10000,100000,1000000 --n 40 --http-n 10000
"""

import argparse
import tempfile
from pathlib import Path

import faiss
import httpx
import numpy as np

from benchmarks.common import (
    CAPTIONS,
    captions,
    header,
    interleaved,
    mpnet_folder,
    ms,
    overlap_at_k,
    p,
    table,
    unit_vectors,
)
from retrieval.text import clean_caption
from retrieval.text_onnx import OnnxTextEncoder

K = 10
REFERENCE, REFERENCE_2T = "torch fp32, 1 thread", "torch fp32, 2 threads (default)"
DIM = 768


def numpy_topk(xb: np.ndarray, xq: np.ndarray, k: int = K) -> np.ndarray:
    """Exact top-k ids by inner product: xb (N, D), xq (Q, D) -> I (Q, k), best first."""
    S = xq @ xb.T  # (Q, N)
    part = np.argpartition(-S, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(S, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


def flat_index(xb: np.ndarray) -> faiss.IndexFlatIP:
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    return index


def speed_rows(times: dict[str, list[float]], reference: str) -> list[list]:
    """p50, p90 and the speed-up over the fastest row whose name starts with `reference`."""
    ref = min(p(t, 50) for name, t in times.items() if name.startswith(reference))
    return [[name, ms(t), ms(t, 90), f"{ref / p(t, 50):.2f}x"] for name, t in times.items()]


def torch_threads(n: int, fn):
    """fn run with torch at n intra-op threads (the reference is timed at 1 and at the default 2: on a
    loaded 2-core machine torch's 2 threads can be many times slower than 1, so the faster one is used)."""
    import torch

    def call(*args):
        torch.set_num_threads(n)
        return fn(*args)

    return call


def encoders_alone(encoders: dict, queries: list[str], n: int) -> None:
    print("## Text encoder alone (one query per call, ms)\n")
    times = interleaved({name: (lambda i, f=f: f([queries[i]])) for name, f in encoders.items()}, n=n)
    table(speed_rows(times, "torch fp32"), ["encoder", "p50", "p90", "speed-up over the faster torch (p50)"])


def agreement(encoders: dict, queries: list[str], collection: list[str], xb_synthetic: np.ndarray) -> None:
    print(f"## Top-{K} agreement with exact fp32 search by the fp32 torch encoder\n")
    ref = encoders[REFERENCE]
    xq_ref, xb_real = ref(queries), ref(collection)  # (Q, D), (C, D)
    exact_real = flat_index(xb_real).search(xq_ref, K)[1]
    exact_syn = flat_index(xb_synthetic).search(xq_ref, K)[1]
    rows = []
    for name, f in encoders.items():
        if name == REFERENCE_2T:
            continue
        xq = xq_ref if f is ref else f(queries)
        cos = (xq * xq_ref).sum(1)
        rows.append([name, f"{cos.min():.5f}", f"{np.median(cos):.6f}",
                     f"{overlap_at_k(numpy_topk(xb_real, xq), exact_real):.4f}",
                     f"{overlap_at_k(numpy_topk(xb_synthetic, xq), exact_syn):.4f}"])
    table(rows, ["query encoder + exact numpy search", "min cosine to fp32", "median cosine",
                 f"top-{K} agreement, {len(collection)} real captions",
                 f"top-{K} agreement, {len(xb_synthetic):,} synthetic (stress)"])
    print(f"{len(queries)} real captions as queries. Synthetic unit vectors all score near 0 against a query "
          "(std 1/sqrt(768)), so tiny query changes reorder them: the stress column is a floor, not the use "
          "case.\n")


def at_size(n_clips: int, *, encoders: dict, cached, queries: list[str], n: int) -> None:
    xb = unit_vectors(n_clips, DIM, seed=1)
    index = flat_index(xb)
    ref1, ref2 = encoders[REFERENCE], encoders[REFERENCE_2T]
    ours, fp32 = encoders["onnx int8"], encoders["onnx fp32"]
    ref = ref1
    xq = ref(queries[:n])
    search = interleaved({"FAISS IndexFlatIP (reference)": lambda i: index.search(xq[i:i + 1], K),
                          "numpy matmul + argpartition": lambda i: numpy_topk(xb, xq[i:i + 1])}, n=n)
    cached(queries[:n + 2])  # the cached path: each query seen once before
    e2e = interleaved({
        "reference: torch encode (1 thread) + FAISS flat": lambda i: index.search(ref1([queries[i]]), K),
        "reference: torch encode (2 threads) + FAISS flat": lambda i: index.search(ref2([queries[i]]), K),
        "onnx fp32 + numpy": lambda i: numpy_topk(xb, fp32([queries[i]])),
        "onnx int8 + numpy (ours)": lambda i: numpy_topk(xb, ours([queries[i]])),
        "repeated query: LRU hit + numpy": lambda i: numpy_topk(xb, cached([queries[i]])),
    }, n=n)
    print(f"## {n_clips:,} clips x {DIM}-d float32, in process (ms)\n")
    table(speed_rows(search, "FAISS IndexFlatIP (reference)"), ["search alone", "p50", "p90", "speed-up"])
    table(speed_rows(e2e, "reference"),
          ["encode + search", "p50", "p90", "speed-up over the faster reference"])


def over_http(*, folder: Path, queries: list[str], n_clips: int, n: int, workdir: Path) -> None:
    from benchmarks.server import fill_store, running_service, service_env
    from retrieval.pipeline import build_retriever
    from retrieval.settings import Settings

    data, models = workdir / f"store-{n_clips}", workdir / "models"
    settings = Settings(data_dir=data, models_dir=models, text_model=str(folder), passt_weights="random",
                        device="cpu")
    fill_store(data, fingerprint=build_retriever(settings).fingerprint, n=n_clips, dim=DIM)
    times, ready = {}, {}
    for backend in ("torch", "onnx"):
        env = service_env(data_dir=data, text_model=folder, text_backend=backend, models_dir=models)
        with running_service(env, log_path=workdir / f"serve-{backend}.log") as (url, _, ready_s):
            with httpx.Client(base_url=url, timeout=60) as client:
                for q in queries[-3:]:  # warm-up
                    client.post("/search", json={"query": q, "k": K}).raise_for_status()
                times[backend] = []
                for q in queries[:n]:
                    r = client.post("/search", json={"query": q, "k": K})
                    r.raise_for_status()
                    times[backend].append(r.elapsed.total_seconds())
        ready[backend] = ready_s
    print(f"## Over HTTP: POST /search, {n_clips:,} clips, service's own FAISS flat store (ms)\n")
    rows = speed_rows(times, "torch")
    table([[f"text_backend={r[0]}", *r[1:]] for r in rows], ["service", "p50", "p90", "speed-up (p50)"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000", help="collection sizes, comma-separated")
    ap.add_argument("--n", type=int, default=40, help="timed queries per measurement")
    ap.add_argument("--agree", type=int, default=600, help="real captions used as queries for agreement")
    ap.add_argument("--collection", type=int, default=1400, help="real captions used as the collection")
    ap.add_argument("--http-n", type=int, default=10000, help="clips in the HTTP service's store (0: skip)")
    ap.add_argument("--skip-agreement", action="store_true", help="timings only (a quick rerun)")
    ap.add_argument("--text-model", type=Path, default=None, help="all-mpnet-base-v2 folder")
    ap.add_argument("--captions", type=Path, default=CAPTIONS)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "retrieval-bench")
    args = ap.parse_args(argv)

    header("Query latency: text encoding + top-10 search")
    folder = mpnet_folder(args.text_model)
    from sentence_transformers import SentenceTransformer

    texts = [clean_caption(c) for c in captions(args.captions)]
    queries, collection = texts[:args.agree], texts[args.agree:][:args.collection]
    st = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    onnx_path = args.workdir / "onnx" / "mpnet-fp32.onnx"
    fp32 = OnnxTextEncoder.load(folder, onnx_path=onnx_path)
    int8 = OnnxTextEncoder.load(folder, onnx_path=onnx_path, precision="int8")
    lru = OnnxTextEncoder(int8.session, int8.tokenizer, model_id="mpnet", revision=None, dim=int8.dim,
                          max_seq_length=int8.max_seq_length, cache_size=4096)
    def st_encode(qs):
        return st.encode(qs, normalize_embeddings=True, convert_to_numpy=True)

    encoders = {
        REFERENCE: torch_threads(1, st_encode),
        REFERENCE_2T: torch_threads(2, st_encode),
        "onnx fp32": lambda qs: fp32.encode(qs, clean=False),
        "onnx int8": lambda qs: int8.encode(qs, clean=False),
    }
    print(f"model: {folder} (sha256 verified); {len(queries)} query captions, {len(collection)} collection "
          f"captions from {args.captions.name}\n")
    encoders_alone(encoders, queries, args.n)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if not args.skip_agreement:
        synthetic = unit_vectors(max(s for s in sizes if s <= 100_000), DIM, seed=1)
        agreement(encoders, queries, collection, synthetic)
    for n_clips in sizes:
        at_size(n_clips, encoders=encoders, cached=lambda qs: lru.encode(qs, clean=False), queries=queries,
                n=args.n)
    if args.http_n:
        over_http(folder=folder, queries=queries, n_clips=args.http_n, n=args.n, workdir=args.workdir)


if __name__ == "__main__":
    main()
