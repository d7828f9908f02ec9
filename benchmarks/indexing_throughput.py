"""Indexing throughput on CPU: clips per second and real-time factor for 10 s and 30 s clips, the tagger's
default path against hear21passt's own loop (`get_scene_embeddings`) in the same run, plus opt-in faster
modes with their speed-up and their deviation from the reference logits.

Random PaSST weights (speed does not depend on the weights; deviations of a trained model will differ).
A 30 s clip is 13 windows of 10 s, about 45 s on this CPU: keep --reps small.

    python -m benchmarks.indexing_throughput --reps 1
"""

import argparse
import contextlib
import io
import time
from collections.abc import Callable

import numpy as np
import torch

from benchmarks.common import header, median, table
from retrieval.config import SAMPLE_RATE, Windowing
from retrieval.tagger import PasstTagger


def reference_loop(model) -> Callable[[np.ndarray], np.ndarray]:
    from hear21passt.base import get_scene_embeddings

    def run(wave: np.ndarray) -> np.ndarray:
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):  # it prints tensor shapes
            return get_scene_embeddings(torch.from_numpy(wave)[None], model)[0].numpy()

    return run


def bf16(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def run(wave: np.ndarray) -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fn(wave)

    return run


def timed(fn, wave: np.ndarray, reps: int) -> tuple[float, np.ndarray]:
    """Median seconds over reps, and the output."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        out = fn(wave)
        times.append(time.perf_counter() - t)
    return median(times), out


def one_length(seconds: float, modes: dict, *, reps: int) -> list[list]:
    rng = np.random.default_rng(int(seconds))
    wave = (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)  # (n,)
    t_ref, ref = timed(modes["hear21passt loop (reference)"], wave, reps)
    rows = []
    for name, fn in modes.items():
        t, out = (t_ref, ref) if name.startswith("hear21passt") else timed(fn, wave, reps)
        dev = float(np.abs(out - ref).max())
        cos = float(out @ ref / (np.linalg.norm(out) * np.linalg.norm(ref)))
        rows.append([f"{seconds:.0f} s", name, f"{t:.2f}", f"{1 / t:.3f}", f"{t / seconds:.2f}",
                     f"{t_ref / t:.2f}x", f"{dev:.1e}", f"{cos:.6f}"])
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=1, help="timed runs per mode and length (median)")
    ap.add_argument("--lengths", default="10,30", help="clip lengths in seconds")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    header("Indexing throughput: PaSST on CPU against hear21passt's loop")
    torch.manual_seed(0)
    tagger = PasstTagger.load("random", device="cpu")
    wide = PasstTagger(tagger.model, windowing=Windowing(hop_s=5.0), device="cpu")
    batched = PasstTagger(tagger.model, device="cpu", batch_windows=4)
    modes = {
        "hear21passt loop (reference)": reference_loop(tagger.model),
        "tagger default (exact)": tagger.logits,
        "opt-in: 4 windows per forward pass (exact)": batched.logits,
        "opt-in: bf16 autocast": bf16(tagger.logits),
        "opt-in: hop 5 s (fewer windows; changes the fingerprint)": wide.logits,
    }
    rows = []
    for seconds in (float(s) for s in args.lengths.split(",")):
        rows += one_length(seconds, modes, reps=args.reps)
    print(f"random-weight PaSST, CPU, {torch.get_num_threads()} torch threads, median of {args.reps} run(s); "
          "no GPU was lent to this task\n")
    table(rows, ["clip", "path", "s per clip", "clips/s", "real-time factor", "speed-up", "max |dlogit|",
                 "cosine to reference"])
    print("real-time factor = processing time / audio duration (below 1 is faster than real time). A clip of "
          "10 s is one window, so the hop changes nothing there.")


if __name__ == "__main__":
    main()
