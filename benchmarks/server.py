"""A bounded local service for the HTTP benchmarks: fill a FAISS store with synthetic clips, start
`retrieval serve` on 127.0.0.1, wait for /health/ready, stop it."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
from tqdm import tqdm

from benchmarks.common import unit_vectors
from retrieval.config import N_TAGS
from retrieval.model_spec import ModelSpec

READY_TIMEOUT_S = 600.0


def service_env(*, data_dir: Path, text_model: Path, text_backend: str, models_dir: Path) -> dict:
    """Environment for a service with random PaSST weights (speed does not depend on them) on CPU."""
    return {**os.environ, "RETRIEVAL_DATA_DIR": str(data_dir), "RETRIEVAL_MODELS_DIR": str(models_dir),
            "RETRIEVAL_TEXT_MODEL": str(text_model), "RETRIEVAL_PASST_WEIGHTS": "random",
            "RETRIEVAL_DEVICE": "cpu", "RETRIEVAL_TEXT_BACKEND": text_backend, "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1"}


def fill_store(data_dir: Path, *, spec: ModelSpec, n: int, dim: int, seed: int = 0) -> None:
    """Put n synthetic clips (unit vectors, zero logits) in a FAISS store made for the model `spec` (the
    service's `build_retriever(settings).spec`), in one SQLite transaction."""
    from index.faiss.store import FaissStore
    from index.store.records import NewClip

    store = FaissStore(data_dir, spec)
    have = store.count()
    xb = unit_vectors(n - have, dim, seed=seed) if n > have else np.empty((0, dim), np.float32)
    logits = np.zeros(N_TAGS, np.float32)
    with store.db.transaction() as con:
        for i, v in enumerate(tqdm(xb, desc="fill store", unit="clip")):
            j = have + i
            clip = NewClip(name=f"clip{j}.wav", location=f"/nowhere/clip{j}.wav", sha256=f"{j:064x}",
                           duration=10.0, sample_rate=32000, tags=())
            store.db.insert(con, clip, vector=v, logits=logits)
    store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_service(env: dict, *, log_path: Path) -> Iterator[tuple[str, int, float]]:
    """Start `retrieval serve`; yield (url, pid, seconds from start to /health/ready); stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cli = Path(sys.executable).with_name("retrieval")
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(cli), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            ready = wait_ready(url, proc, t0)
            yield url, proc.pid, ready
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_ready(url: str, proc: subprocess.Popen, t0: float) -> float:
    while time.perf_counter() - t0 < READY_TIMEOUT_S:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health/ready", timeout=5).status_code == 200:
                return time.perf_counter() - t0
        time.sleep(0.1)
    raise SystemExit(f"the service was not ready within {READY_TIMEOUT_S:.0f} s")
