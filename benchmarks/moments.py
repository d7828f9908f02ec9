"""What moments cost: the bytes a FAISS + SQLite store keeps per hour of audio for its windows, and the PaSST
time per 10 s of audio of a finer moment windowing (a second pass) against the method's windows (free).

    python -m benchmarks.moments [--hours 1] [--dim 768] [--repeats 3]

Bytes: the same synthetic clips (10 min each, 241 windows at 10 s / 2.5 s) stored twice, with and without
their windows; the difference is what windows cost on disk (SQLite file and the windows' FAISS cache), set
against the planning arithmetic (1,440 windows per hour). PaSST: random weights on this CPU, one forward pass
per window length (the median of `--repeats`), times the windows a long clip has per 10 s at each windowing.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import header
from index.faiss.store import FaissStore
from index.layout import CLIP_DB, FAISS_DIR, FAISS_WINDOWS_DIR
from index.store.records import NewClip, Timeline, Windows
from retrieval.config import N_TAGS, Windowing
from retrieval.model_spec import ModelSpec
from retrieval.tagger import PasstTagger
from retrieval.waveform import peaks
from retrieval.windows import window_spans

CLIP_S = 600.0
RATE = 32_000
FINER = (Windowing(), Windowing(window_s=5.0, hop_s=2.5), Windowing(window_s=2.0, hop_s=1.0),
         Windowing(window_s=1.0, hop_s=0.5))


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def disk_bytes(data_dir: Path) -> dict[str, int]:
    db = sum(p.stat().st_size for p in data_dir.glob(f"{CLIP_DB}*"))
    clips = sum(p.stat().st_size for p in (data_dir / FAISS_DIR).glob("*.faiss"))
    windows_dir = data_dir / FAISS_DIR / FAISS_WINDOWS_DIR
    windows = sum(p.stat().st_size for p in windows_dir.glob("*.faiss"))
    return {"sqlite": db, "faiss_clips": clips, "faiss_windows": windows}


def fill(data_dir: Path, *, clips: int, dim: int, with_windows: bool) -> tuple[dict[str, int], int, int]:
    spec = ModelSpec(passt_weights="random", text_model="bench", dim=dim, head="zero-shot", lam=0.0)
    rng = np.random.default_rng(0)
    windowing = Windowing()
    n = int(CLIP_S * RATE)
    starts, ends = window_spans(n, windowing)
    with FaissStore(data_dir, spec, kind="flat16") as store:
        for i in range(clips):
            w = len(starts)
            t = Timeline(Windows(starts, ends, unit(rng.standard_normal((w, dim))).astype(np.float16),
                                 rng.standard_normal((w, N_TAGS)).astype(np.float32)),
                         peaks(rng.uniform(-1, 1, n).astype(np.float32)))
            clip = NewClip(name=f"{i}.wav", location=f"/audio/{i}.wav", sha256=f"{i:064x}", duration=CLIP_S,
                           sample_rate=RATE, tags=())
            store.add(clip, unit(rng.standard_normal(dim)), rng.standard_normal(N_TAGS).astype(np.float32),
                      t if with_windows else None)
        stored = store.db.window_bytes(), store.window_count()
    with FaissStore(data_dir, spec, kind="flat16"):  # the caches, written at close, are on disk now
        pass
    return disk_bytes(data_dir), *stored


def bytes_per_hour(hours: float, dim: int) -> None:
    clips = max(1, round(hours * 3600 / CLIP_S))
    audio_h = clips * CLIP_S / 3600
    with tempfile.TemporaryDirectory() as tmp:
        plain, _, _ = fill(Path(tmp) / "plain", clips=clips, dim=dim, with_windows=False)
        full, payload, windows = fill(Path(tmp) / "windows", clips=clips, dim=dim, with_windows=True)
    per_h = windows / audio_h
    print(f"## Bytes per hour of audio ({clips} clips of {CLIP_S:.0f} s = {audio_h:.2f} h, D = {dim}, "
          f"windows of 10 s every 2.5 s)\n")
    print(f"windows stored: {windows} ({per_h:,.0f} per hour; planning figure 1,440)")
    print("| what | bytes per hour | planning |")
    print("|---|---|---|")
    print(f"| window vectors, float16 | {per_h * dim * 2 / 1e6:.2f} MB | {1440 * dim * 2 / 1e6:.2f} MB |")
    print(f"| window logits, float16 | {per_h * N_TAGS * 2 / 1e6:.2f} MB | "
          f"{1440 * N_TAGS * 2 / 1e6:.2f} MB |")
    print(f"| stored payload (logits, vectors, spans, peaks) | {payload / audio_h / 1e6:.2f} MB | |")
    extra_db = full["sqlite"] - plain["sqlite"]
    print(f"| SQLite file, with windows minus without | {extra_db / audio_h / 1e6:.2f} MB | |")
    print(f"| FAISS windows cache (flat16) | {full['faiss_windows'] / audio_h / 1e6:.2f} MB | "
          f"{1440 * dim * 2 / 1e6:.2f} MB |")
    print(f"| peaks | {clips * 400 / audio_h / 1e3:.1f} kB (400 bytes per clip) | |")
    print(f"\nclip store without windows: SQLite {plain['sqlite'] / audio_h / 1e6:.3f} MB/h, "
          f"FAISS {plain['faiss_clips'] / audio_h / 1e6:.3f} MB/h\n")


def passt_cost(repeats: int, threads: int) -> None:
    torch.set_num_threads(threads)
    tagger = PasstTagger.load("random", device="cpu")
    inputs = {w: np.random.default_rng(0).uniform(-0.5, 0.5, w.window).astype(np.float32) for w in FINER}
    times: dict[Windowing, list[float]] = {w: [] for w in FINER}
    for r in range(repeats + 1):  # interleaved, so a burst of load hits every windowing; the first warms up
        for w in FINER:
            t0 = time.perf_counter()
            tagger.window_logits_many([inputs[w]], windowing=w)
            if r:
                times[w].append(time.perf_counter() - t0)
    print(f"## PaSST per 10 s of audio (random weights, CPU, {threads} thread(s), median of {repeats})\n")
    print("| windowing | one window | windows per 10 s | PaSST per 10 s of audio | vs the method's |")
    print("|---|---|---|---|---|")
    base = statistics.median(times[Windowing()]) * 10.0 / Windowing().hop_s
    for w in FINER:
        one = statistics.median(times[w])
        per_10s = 10.0 / w.hop_s  # a long clip has one window per hop
        cost = one * per_10s
        what = "the method's: the clip's own, free" if w == Windowing() else "a second pass"
        print(f"| {w.window_s:g} s every {w.hop_s:g} s ({what}) | {one:.3f} s | {per_10s:g} | {cost:.2f} s "
              f"({cost * 360 / 3600:.2f} h per hour of audio) | {cost / base:.2f}x |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0, help="hours of synthetic audio to store")
    ap.add_argument("--dim", type=int, default=768, help="vector size (all-mpnet-base-v2: 768)")
    ap.add_argument("--repeats", type=int, default=3, help="PaSST passes per window length")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for PaSST")
    ap.add_argument("--bytes-only", action="store_true", help="the bytes per hour only, no PaSST timing")
    args = ap.parse_args()
    header("Moments: bytes per hour and PaSST cost of finer windows")
    bytes_per_hour(args.hours, args.dim)
    if not args.bytes_only:
        passt_cost(args.repeats, args.threads)


if __name__ == "__main__":
    main()
