"""Query latency: text encoding + top-10 search, the path a user waits on.

Reference, in the same run: sentence-transformers `encode` (torch fp32) then FAISS `IndexFlatIP` at FAISS's
default OpenMP threads. Candidates: the service's own in-process path, `load_text_encoder(settings)` (the ONNX
encoder at fp32 or int8, RETRIEVAL_TEXT_PRECISION) then the store's `VectorIndex` (kind flat or flat16, at
RETRIEVAL_SEARCH_THREADS=1), and the same configurations over HTTP against `retrieval serve`. Agreement:
top-10 of each configuration against exact fp32 search with the fp32 torch encoder, on real captions
(benchmarks/captions.txt) as queries and as the collection, and on synthetic vectors as a stress case.

    python -m benchmarks.query_latency --sizes 10000,100000,1000000 --n 40 --n-large 15 --http-n 100000
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
from index.faiss.cache import AUTO_CLIPS_IVF_AT, built_kind
from index.faiss.vector_index import VectorIndex
from retrieval.text import clean_caption

K = 10
DIM = 768
LARGE = 1_000_000  # sizes from here on are timed with --n-large queries
DEFAULT_OMP = faiss.omp_get_max_threads()  # FAISS's own default, read before anything changes it
REFERENCE, REFERENCE_2T = "torch fp32, 1 thread", "torch fp32, 2 threads (default)"
PRECISIONS = ("fp32", "int8")
KINDS = ("flat", "flat16")


def cpu_default(n_clips: int) -> tuple[str, str]:
    """(text precision, index kind) of the service's defaults on CPU for n clips (text_backend=auto runs
    ONNX there; index_kind "auto" builds flat16 below AUTO_CLIPS_IVF_AT clips, ivf16 from there)."""
    from app.settings import Settings

    fields = Settings.model_fields
    kind = built_kind(fields["index_kind"].default, n_clips, AUTO_CLIPS_IVF_AT)
    return fields["text_precision"].default, kind


def candidate(precision: str, kind: str, n_clips: int) -> str:
    mark = " (CPU default)" if (precision, kind) == cpu_default(n_clips) else ""
    return f"onnx {precision} + {kind}, 1 search thread{mark}"


def default_note(n_clips: int) -> str:
    """A line when the CPU default at this size is a kind not timed here."""
    kind = cpu_default(n_clips)[1]
    return "" if kind in KINDS else (f"At {n_clips:,} clips the CPU default builds {kind} (not timed here: "
                                     "benchmarks/clip_index_recall.py times it, RESULTS section 11).\n")


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


def service_index(xb: np.ndarray, kind: str) -> VectorIndex:
    """The store's in-memory index over xb (N, D), ids 0..N-1, searching with 1 thread (the default
    RETRIEVAL_SEARCH_THREADS)."""
    vi = VectorIndex(xb.shape[1], kind, search_threads=1)
    vi.add(np.arange(len(xb), dtype=np.int64), xb)
    return vi


def reference_search(index: faiss.IndexFlatIP, xq: np.ndarray):
    faiss.omp_set_num_threads(DEFAULT_OMP)
    return index.search(xq, K)


def service_search(vi: VectorIndex, xq: np.ndarray):
    """As the store searches: VectorIndex sets OpenMP to the search threads for the call and puts back the
    reference's count after it."""
    return vi.search(xq, K)


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


def service_encoders(folder: Path, workdir: Path) -> dict:
    """precision -> the encoder the service loads with text_backend=onnx and that text_precision."""
    from app.compose import load_text_encoder
    from app.settings import Settings

    out = {}
    for precision in PRECISIONS:
        s = Settings(data_dir=workdir / "service-data", models_dir=workdir / "models", text_model=str(folder),
                     device="cpu", text_backend="onnx", text_precision=precision)
        enc = load_text_encoder(s)
        out[f"onnx {precision}"] = lambda qs, enc=enc: enc.encode(qs)
    return out


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
    real = {kind: service_index(xb_real, kind) for kind in KINDS}
    syn = {kind: service_index(xb_synthetic, kind) for kind in KINDS}
    rows = []
    for precision in PRECISIONS:
        xq = encoders[f"onnx {precision}"](queries)
        cos = (xq * xq_ref).sum(1)
        for kind in KINDS:
            rows.append([candidate(precision, kind, len(collection)), f"{cos.min():.5f}",
                         f"{np.median(cos):.6f}",
                         f"{overlap_at_k(real[kind].search(xq, K)[1], exact_real):.4f}",
                         f"{overlap_at_k(syn[kind].search(xq, K)[1], exact_syn):.4f}"])
    table(rows, ["query encoder + service index", "min cosine to fp32", "median cosine",
                 f"top-{K} agreement, {len(collection)} real captions",
                 f"top-{K} agreement, {len(xb_synthetic):,} synthetic (stress)"])
    print(f"{len(queries)} real captions as queries; the collection is embedded by the fp32 torch encoder "
          "and stored in each index kind. Synthetic unit vectors all score near 0 against a query (std "
          "1/sqrt(768)), so tiny query changes reorder them: the stress column is a floor, not the use "
          "case.\n")


def at_size(n_clips: int, *, encoders: dict, queries: list[str], n: int) -> None:
    xb = unit_vectors(n_clips, DIM, seed=1)
    reference = flat_index(xb)
    indexes = {kind: service_index(xb, kind) for kind in KINDS}  # 1 search thread, as the store's default
    ref1, ref2 = encoders[REFERENCE], encoders[REFERENCE_2T]
    xq = ref1(queries[:n])
    alone = {"FAISS IndexFlatIP, default threads (reference)":
             lambda i: reference_search(reference, xq[i:i + 1]),
             "numpy matmul + argpartition": lambda i: numpy_topk(xb, xq[i:i + 1])}
    alone.update({f"service {kind}, 1 search thread": (lambda i, vi=vi: service_search(vi, xq[i:i + 1]))
                  for kind, vi in indexes.items()})
    search = interleaved(alone, n=n)
    e2e = {
        "reference: torch encode (1 thread) + FAISS flat":
            lambda i: reference_search(reference, ref1([queries[i]])),
        "reference: torch encode (2 threads) + FAISS flat":
            lambda i: reference_search(reference, ref2([queries[i]])),
    }
    for precision in PRECISIONS:
        enc = encoders[f"onnx {precision}"]
        for kind, vi in indexes.items():
            e2e[candidate(precision, kind, n_clips)] = \
                lambda i, enc=enc, vi=vi: service_search(vi, enc([queries[i]]))
    e2e_times = interleaved(e2e, n=n)
    print(f"## {n_clips:,} clips x {DIM}-d, in process, {n} queries (ms)\n")
    table(speed_rows(search, "FAISS IndexFlatIP"), ["search alone", "p50", "p90", "speed-up"])
    table(speed_rows(e2e_times, "reference"),
          ["encode + search", "p50", "p90", "speed-up over the faster reference"])
    print(default_note(n_clips))


def over_http(*, folder: Path, queries: list[str], n_clips: int, n: int, workdir: Path) -> None:
    from app.compose import build_retriever
    from app.settings import Settings
    from benchmarks.server import fill_store, running_service, service_env

    data, models = workdir / f"store-{n_clips}-{folder.name}", workdir / "models"
    settings = Settings(data_dir=data, models_dir=models, text_model=str(folder), passt_weights="random",
                        device="cpu")
    fill_store(data, spec=build_retriever(settings, with_audio=False).spec, n=n_clips, dim=DIM)
    configs = {"reference: text_backend=torch, flat, FAISS default threads":
               {"RETRIEVAL_TEXT_BACKEND": "torch", "RETRIEVAL_INDEX_KIND": "flat",
                "RETRIEVAL_SEARCH_THREADS": str(DEFAULT_OMP)}}
    for precision, kind in ((p_, k_) for p_ in PRECISIONS for k_ in KINDS):
        configs[candidate(precision, kind, n_clips)] = {
            "RETRIEVAL_TEXT_BACKEND": "onnx", "RETRIEVAL_TEXT_PRECISION": precision,
            "RETRIEVAL_INDEX_KIND": kind, "RETRIEVAL_SEARCH_THREADS": "1"}
    times = {}
    for i, (name, extra) in enumerate(configs.items()):
        env = {**service_env(data_dir=data, text_model=folder, text_backend="torch", models_dir=models),
               **extra}
        with running_service(env, log_path=workdir / f"serve-{i}.log") as (url, _, _ready):
            with httpx.Client(base_url=url, timeout=60) as client:
                for q in queries[-3:]:  # warm-up
                    client.post("/search", json={"query": q, "k": K}).raise_for_status()
                times[name] = []
                for q in queries[:n]:
                    r = client.post("/search", json={"query": q, "k": K})
                    r.raise_for_status()
                    times[name].append(r.elapsed.total_seconds())
    print(f"## Over HTTP: POST /search, {n_clips:,} clips, the service's own store, {n} queries (ms)\n")
    table(speed_rows(times, "reference"), ["service", "p50", "p90", "speed-up (p50)"])
    print("One service at a time (not interleaved): compare these rows with care on a busy machine.\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000", help="collection sizes, comma-separated")
    ap.add_argument("--n", type=int, default=40, help="timed queries per measurement")
    ap.add_argument("--n-large", type=int, default=15, help=f"timed queries at {LARGE:,} clips and more")
    ap.add_argument("--agree", type=int, default=600, help="real captions used as queries for agreement")
    ap.add_argument("--collection", type=int, default=1400, help="real captions used as the collection")
    ap.add_argument("--http-n", type=int, default=100000, help="clips in the HTTP service's store (0: skip)")
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

    def st_encode(qs):
        return st.encode(qs, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

    encoders = {REFERENCE: torch_threads(1, st_encode), REFERENCE_2T: torch_threads(2, st_encode),
                **service_encoders(folder, args.workdir)}
    print(f"model: {folder} (sha256 verified); {len(queries)} query captions, {len(collection)} collection "
          f"captions from {args.captions.name}; FAISS default OpenMP threads: {DEFAULT_OMP}\n")
    encoders_alone(encoders, queries, args.n)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if not args.skip_agreement:
        synthetic = unit_vectors(max(s for s in sizes if s <= 100_000), DIM, seed=1)
        agreement(encoders, queries, collection, synthetic)
        del synthetic
    for n_clips in sizes:
        at_size(n_clips, encoders=encoders, queries=queries, n=args.n_large if n_clips >= LARGE else args.n)
    if args.http_n:
        over_http(folder=folder, queries=queries, n_clips=args.http_n, n=args.n, workdir=args.workdir)


if __name__ == "__main__":
    main()
