"""Service footprint: seconds from `retrieval serve` to /health/ready, and resident memory with both models
(all-mpnet-base-v2 and a PaSST with random weights, same size as the real one) and a 100k-clip index loaded,
for each text backend (torch is the reference).

    python -m benchmarks.service_footprint --n 100000
"""

import argparse
import tempfile
from pathlib import Path

import httpx

from benchmarks.common import header, mpnet_folder, rss_mib, table
from benchmarks.server import fill_store, running_service, service_env

DIM = 768


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="clips in the index")
    ap.add_argument("--text-model", type=Path, default=None, help="all-mpnet-base-v2 folder")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "retrieval-bench")
    args = ap.parse_args(argv)
    header("Service footprint: start to ready, resident memory")
    from app.compose import build_retriever, onnx_path
    from app.settings import Settings
    from retrieval.text_onnx import ensure_export

    folder = mpnet_folder(args.text_model)
    data, models = args.workdir / f"store-{args.n}", args.workdir / "models"
    settings = Settings(data_dir=data, models_dir=models, text_model=str(folder), passt_weights="random",
                        device="cpu")
    fill_store(data, spec=build_retriever(settings, with_audio=False).spec, n=args.n, dim=DIM)
    ensure_export(folder, onnx_path(settings))  # where the service looks for it
    rows = []
    for backend in ("torch", "onnx"):
        env = service_env(data_dir=data, text_model=folder, text_backend=backend, models_dir=models)
        with running_service(env, log_path=args.workdir / f"footprint-{backend}.log") as (url, pid, ready_s):
            rss_ready = rss_mib(pid)
            ready = httpx.get(f"{url}/health/ready", timeout=30).json()
            httpx.post(f"{url}/search", json={"query": "rain on a tin roof", "k": 10}, timeout=60)
            rows.append([f"text_backend={backend}" + (" (reference)" if backend == "torch" else ""),
                         f"{ready_s:.1f}", f"{rss_ready:,.0f}", f"{rss_mib(pid):,.0f}", ready.get("clips")])
    table(rows, ["service", "start to /health/ready, s", "RSS when ready, MiB", "RSS after a search, MiB",
                 "clips"])
    print(f"The {args.n:,} vectors alone are {args.n * DIM * 4 / 2**20:,.0f} MiB as float32. The ONNX "
          "backend exports the model once (cached in the models directory); the export was made before these "
          "starts.")


if __name__ == "__main__":
    main()
