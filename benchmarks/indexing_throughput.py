"""Indexing throughput on CPU: seconds per 10 s window and clips per second for 10 s and 30 s clips, PaSST
through ``retrieval.passt_runtime`` (SDPA attention, bf16 autocast, several windows per forward pass) against
hear21passt's own loop (`get_scene_embeddings`) timed in the same run, with each path's speed-up and its
deviation from the reference logits. Wall-clock and process CPU time are both reported: on a shared machine
the CPU time (with 1 torch thread) is the steadier measure of the work each path does.

Random PaSST weights (speed does not depend on the weights; deviations of a trained model will differ). The
two models (hear21passt as it is, and a second build of the same weights switched to SDPA) are separate
instances. A 30 s clip is 13 windows of 10 s. On a CPU without native bf16 (no AVX-512 BF16 / AMX) bf16 is
emulated and many times slower than fp32: there the bf16 row is only run on clips of one window.

    python -m benchmarks.indexing_throughput --reps 1 --threads 1
"""

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import header, median, table
from retrieval.config import N_TAGS, SAMPLE_RATE, Windowing
from retrieval.passt_runtime import precision_context, quiet_stdout, use_sdpa_attention
from retrieval.tagger import MIN_SAMPLES, build_passt

EXACT = 1e-5
REFERENCE = "hear21passt loop (reference)"


def reference_loop(model) -> Callable[[np.ndarray], np.ndarray]:
    from hear21passt.base import get_scene_embeddings

    def run(wave: np.ndarray) -> np.ndarray:
        with quiet_stdout():  # it prints tensor shapes
            return get_scene_embeddings(torch.from_numpy(wave)[None], model)[0].numpy()

    return run


def windows(wave: np.ndarray, w: Windowing) -> torch.Tensor:
    """(n,) -> (W, L) windows, cut as hear21passt cuts them (reflect-pad half a window, one every hop)."""
    x = torch.from_numpy(np.ascontiguousarray(wave))
    if x.numel() < MIN_SAMPLES:
        x = F.pad(x, (0, MIN_SAMPLES - x.numel()))
    if x.numel() <= w.window:
        return x.unsqueeze(0)
    return F.pad(x.view(1, 1, -1), (w.pad, w.pad), mode="reflect").view(-1).unfold(0, w.window, w.hop)


def runtime_path(model, *, precision: str = "fp32", batch: int = 1,
                 windowing: Windowing = Windowing()) -> Callable[[np.ndarray], np.ndarray]:
    """Mean logits over windows, ``batch`` windows per forward pass, under ``precision_context``."""
    device = torch.device("cpu")

    @torch.inference_mode()
    def run(wave: np.ndarray) -> np.ndarray:
        segments = windows(wave, windowing)
        total = torch.zeros(N_TAGS, dtype=torch.float64)
        with quiet_stdout(), precision_context(precision, device):
            for chunk in segments.split(batch):
                total += model(chunk).double().sum(0)
        return (total / segments.shape[0]).float().numpy()

    return run


def one_length(seconds: float, modes: dict, *, reps: int, windowing: Windowing) -> list[list]:
    rng = np.random.default_rng(int(seconds))
    wave = (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)  # (n,)
    n_windows = windowing.n_windows(len(wave))
    wall: dict[str, list[float]] = {name: [] for name in modes}
    cpu: dict[str, list[float]] = {name: [] for name in modes}
    outs: dict[str, np.ndarray] = {}
    for rep in range(reps):  # interleaved: the reference and the candidates take turns
        for name in (list(modes) if rep % 2 == 0 else list(modes)[::-1]):
            t, c = time.perf_counter(), time.process_time()
            outs[name] = modes[name](wave)
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    ref, t_ref, c_ref = outs[REFERENCE], median(wall[REFERENCE]), median(cpu[REFERENCE])
    rows = []
    for name in modes:
        t, c, out = median(wall[name]), median(cpu[name]), outs[name]
        dev = float(np.abs(out - ref).max())
        cos = float(out @ ref / (np.linalg.norm(out) * np.linalg.norm(ref)))
        rows.append([f"{seconds:.0f} s ({n_windows} win)", name, f"{t / n_windows:.2f}",
                     f"{c / n_windows:.2f}", f"{1 / t:.3f}", f"{t_ref / t:.2f}x", f"{c_ref / c:.2f}x",
                     f"{dev:.1e}", "yes" if dev <= EXACT else "no", f"{cos:.6f}"])
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=1, help="timed runs per mode and length (median)")
    ap.add_argument("--lengths", default="10,30", help="clip lengths in seconds")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    ap.add_argument("--batches", default="4,8", help="windows per forward pass for the batched rows")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    header("Indexing throughput: PaSST on CPU against hear21passt's loop")
    windowing = Windowing()
    with quiet_stdout():  # building prints the whole model
        reference, fast = build_passt("random"), build_passt("random")  # the same seeded weights
    switched = use_sdpa_attention(fast)
    native_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    rows = []
    for seconds in (float(s) for s in args.lengths.split(",")):
        multi = windowing.n_windows(int(seconds * SAMPLE_RATE)) > 1
        modes = {REFERENCE: reference_loop(reference),
                 "SDPA attention, fp32 (default)": runtime_path(fast, windowing=windowing)}
        if native_bf16 or not multi:
            modes["SDPA + bf16 autocast (opt-in)"] = runtime_path(fast, precision="bf16", windowing=windowing)
        if multi:
            for b in batches:
                modes[f"SDPA, fp32, {b} windows per forward pass"] = runtime_path(fast, batch=b,
                                                                                windowing=windowing)
        rows += one_length(seconds, modes, reps=args.reps, windowing=windowing)
    print(f"random-weight PaSST, CPU ({torch.backends.cpu.get_cpu_capability()}, native bf16: "
          f"{'yes' if native_bf16 else 'no'}), {torch.get_num_threads()} torch thread(s), "
          f"median of {args.reps} run(s); {switched} attention modules on SDPA\n")
    table(rows, ["clip", "path", "s per window", "CPU s per window", "clips/s", "speed-up",
                 "speed-up (CPU s)", "max abs dlogit", f"exact (<= {EXACT:.0e})", "cosine to reference"])
    notes = ["speed-up = reference time / path time, both measured in this run; s = wall clock, CPU s = "
             "this process's CPU time (less sensitive to other load on a shared machine). A 10 s clip is one "
             "window, so the batched rows are only run on longer clips."]
    if not native_bf16:
        notes.append("This CPU has no native bf16: bf16 is emulated (slower than fp32) and is only run on "
                     "one-window clips here.")
    print(" ".join(notes))


if __name__ == "__main__":
    main()
