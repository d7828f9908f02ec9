#!/usr/bin/env bash
# PaSST on a GPU: windows per second at fp32, bf16 and fp16 with batching, and how far the CUDA logits are
# from the CPU fp32 path on the same random weights and the same audio. One prepared run for a lent GPU
# machine (fits in 10 minutes on a fresh one, the venv install included); the table is printed and, when
# $OUT is set, written to $OUT/gpu_check.txt (the whole log to $OUT/gpu_check.log).
#
#   bash benchmarks/gpu_check.sh                        # CUDA: fp32/bf16/fp16 x batch_windows 1, 8, 32, 64
#   bash benchmarks/gpu_check.sh --device cpu --quick   # a CPU smoke run of the same code (< 2 minutes)
#
# Then a 60-minute recording goes through retrieval.extract (`index add`'s path for a long file) at fp16,
# its decoding in a child process (retrieval.decoder_process, the default), timed against the same with the
# decoding in the tagging process (as before) and against decoding alone and PaSST alone on as many windows
# (where a long file's time goes), then again at 1, 2, 4 and 8 torch CPU threads (--long-threads; `index add`
# runs with 4 beside a GPU). Last, a library of 384 short files through `index_paths` with their decoding in
# 0, 2, 4 and 8 processes of their own (benchmarks/library_files.py; GPU_CHECK_LIBRARY=0 skips it).
#
# The venv: $GPU_CHECK_VENV (default .venv in the repository) is reused when it imports torch and
# hear21passt; otherwise it is made with `python3.11 -m venv` and `pip install -e .` from PyPI (torch 2.11.0
# comes with its CUDA libraries from PyPI on Linux x86_64). No other network is used. Everything runs
# through the project's own code: retrieval.tagger.build_passt("random") / PasstTagger.window_logits_many
# with batch_windows and precision (retrieval.passt_runtime's SDPA attention and autocast).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${OUT:-}" ]]; then
    mkdir -p "$OUT"
    exec > >(tee -a "$OUT/gpu_check.log") 2>&1
fi

start=$SECONDS
VENV=${GPU_CHECK_VENV:-.venv}
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import torch, hear21passt, timm, numpy" 2>/dev/null; then
    echo "reusing the venv $VENV"
else
    PY311=$(command -v python3.11 || true)
    if [[ -z "$PY311" ]] && python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
        PY311=$(command -v python3)
    fi
    if [[ -z "$PY311" ]]; then
        echo "no python3.11 on this machine (the project needs 3.11)" >&2
        exit 2
    fi
    echo "making the venv $VENV with $PY311 and pip install -e . (PyPI)"
    "$PY311" -m venv "$VENV"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/pip" install --progress-bar off -q -e .
fi
echo "venv ready after $((SECONDS - start)) s"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
fi

"$VENV/bin/python" - "$@" <<'PY'
import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

from retrieval.config import SAMPLE_RATE
from retrieval.passt_runtime import quiet_stdout
from retrieval.tagger import PasstTagger, build_passt

ap = argparse.ArgumentParser(prog="gpu_check.sh")
ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu for a smoke run")
ap.add_argument("--quick", action="store_true", help="short clips, few configurations (a CPU smoke run)")
ap.add_argument("--precisions", default=None, help="default fp32,bf16,fp16 (fp16 is CUDA only)")
ap.add_argument("--batches", default=None, help="batch_windows values; default 1,8,32,64")
ap.add_argument("--clips", type=int, default=None, help="clips in the timed workload (default 256)")
ap.add_argument("--clip-s", type=float, default=None, help="their length in seconds (default 10: 1 window)")
ap.add_argument("--reps", type=int, default=None, help="timed passes over the workload (median; default 3)")
ap.add_argument("--budget", type=float, default=300.0, help="seconds for the measurements: the rest is "
                                                              "skipped (and said so) once they are spent")
ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
ap.add_argument("--long-minutes", type=float, default=None, help="a recording this long (48 kHz WAV) through "
                                                                  "extract, against decoding alone and PaSST "
                                                                  "alone (default 60; 0 skips; --quick: 0)")
ap.add_argument("--long-threads", default=None, help="torch CPU thread counts at which the long recording's "
                                                      "extract is timed again (default 1,2,4,8 on CUDA)")
args = ap.parse_args()
quick = args.quick
precisions = (args.precisions or ("fp32,bf16" if quick else "fp32,bf16,fp16")).split(",")
batches = [int(b) for b in (args.batches or ("1,2" if quick else "1,8,32,64")).split(",")]
n_clips = args.clips or (2 if quick else 256)
clip_s = args.clip_s or (2.0 if quick else 10.0)
reps = args.reps or (1 if quick else 3)
long_minutes = args.long_minutes if args.long_minutes is not None else (0.0 if quick else 60.0)
if args.threads:
    torch.set_num_threads(args.threads)

device = torch.device(args.device)
out_dir = os.environ.get("OUT")
lines: list[str] = []


def say(text: str = "") -> None:
    print(text, flush=True)
    lines.append(text)


def write_out() -> None:
    if out_dir:
        with open(os.path.join(out_dir, "gpu_check.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")


if device.type == "cuda" and not torch.cuda.is_available():
    say(f"CUDA is not available (torch {torch.__version__}, built for CUDA {torch.version.cuda}): nothing "
        "measured")
    write_out()
    sys.exit(2)


def sync() -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


t_begin = time.monotonic()
say("# PaSST on " + ("CUDA" if device.type == "cuda" else "CPU (smoke run)") + ": windows/s and deviation "
    "from the CPU fp32 path")
gpu = (f"{torch.cuda.get_device_name(device)}, {torch.cuda.get_device_properties(device).total_memory / 2**30:.0f}"
       f" GiB, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
       if device.type == "cuda" else "")
say(f"{gpu}{platform.processor() or platform.machine()}, {os.cpu_count()} cores; python "
    f"{platform.python_version()}, torch {torch.__version__}; {torch.get_num_threads()} torch CPU threads; "
    f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
if device.type == "cuda":
    say(f"TF32: matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN {torch.backends.cudnn.allow_tf32}; "
        f"float32 matmul precision {torch.get_float32_matmul_precision()!r} (torch's defaults, as the service)")
say()

rng = np.random.default_rng(0)


def clip(seconds: float) -> np.ndarray:
    """Noise and one tone, float32 at 32 kHz (random weights: speed and deviation do not need real audio)."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    x = 0.1 * rng.standard_normal(len(t)) + 0.2 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t)
    return x.astype(np.float32)


workload = [clip(clip_s) for _ in range(n_clips)]
# the deviation set: whole windows of 10 s, and a 30 s clip (13 overlapping windows, reflect-padded ends)
ref_set = [clip(2.0), clip(3.0)] if quick else [clip(10.0), clip(10.0), clip(30.0)]

with quiet_stdout():  # building prints the whole model
    t = time.monotonic()
    cpu_model, dev_model = build_passt("random"), build_passt("random")  # the same seeded weights
reference = PasstTagger(cpu_model, device="cpu", batch_windows=1, precision="fp32")
t = time.monotonic()
ref = np.concatenate([w.logits for w in reference.window_logits_many(ref_set)])  # (W, 527)
cpu_s = time.monotonic() - t
n_work = sum(reference.windows(w).shape[0] for w in workload)
say(f"random-weight PaSST ({reference.spec.passt_arch}); workload: {n_clips} clips of {clip_s:g} s = {n_work} "
    f"windows, {reps} timed pass(es), median; deviation set: {len(ref_set)} clips, {len(ref)} windows, "
    f"against the CPU fp32 path (batch_windows 1), which took {cpu_s / len(ref):.2f} s per window here")
say()

rows = []
base_wps = None
for precision in precisions:
    if precision == "fp16" and device.type != "cuda":
        rows.append([device.type, precision, "-", "skipped: fp16 is CUDA only", "", "", "", "", "", ""])
        continue
    for b in batches:
        spent = time.monotonic() - t_begin
        if spent > args.budget:
            rows.append([device.type, precision, b, f"skipped: the {args.budget:.0f} s budget was spent", "",
                         "", "", "", "", ""])
            continue
        tagger = PasstTagger(dev_model, device=str(device), batch_windows=b, precision=precision)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        try:
            tagger.window_logits_many(workload[:max(b, 1)])  # warm-up: kernels for this batch size
            sync()
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                tagger.window_logits_many(workload)
                sync()
                times.append(time.perf_counter() - t)
            got = np.concatenate([w.logits for w in tagger.window_logits_many(ref_set)])
        except RuntimeError as e:  # out of memory, an unsupported kernel: say so, go on
            rows.append([device.type, precision, b, f"failed: {str(e).splitlines()[0][:80]}", "", "", "", "",
                         "", ""])
            continue
        wps = n_work / float(np.median(times))
        if base_wps is None and precision == "fp32":
            base_wps = wps
        diff = np.abs(got.astype(np.float64) - ref)
        cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
        top1 = float(np.mean(got.argmax(1) == ref.argmax(1)))
        peak = (f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f}" if device.type == "cuda" else "-")
        rows.append([device.type, precision, b, f"{wps:.1f}", f"{1000 / wps:.2f}",
                     f"{wps / base_wps:.2f}x" if base_wps else "-", f"{diff.max():.1e}", f"{diff.mean():.1e}",
                     f"{cos.min():.6f}", f"{top1:.3f}", peak])
        print(f"  {precision} batch {b}: {wps:.1f} windows/s, max |dlogit| {diff.max():.1e}", flush=True)

headers = ["device", "precision", "batch_windows", "windows/s", "ms per window", "speed-up over fp32 batch 1",
           "max abs dlogit vs CPU fp32", "mean abs dlogit", "min cosine per window", "top-1 tag agrees",
           "peak GiB"]
say("| " + " | ".join(headers) + " |")
say("|" + "|".join("---" for _ in headers) + "|")
for r in rows:
    say("| " + " | ".join(str(c) for c in r + [""] * (len(headers) - len(r))) + " |")
say()
say(f"windows/s = workload windows / median seconds of a pass through PasstTagger.window_logits_many "
    f"(host-to-device copy, mel STFT, PaSST, logits back to the host; synchronised). Deviation: the "
    f"{device.type} logits of every window of the deviation set against the CPU fp32 path on a second instance "
    f"of the same seeded weights. Measured in {time.monotonic() - t_begin:.0f} s.")


def long_recording() -> None:
    """A long 48 kHz WAV through retrieval.extract (decode, resample, windows, PaSST: `index add`'s path for a
    long file), against decoding it alone and PaSST alone on as many windows: where a long file's time goes."""
    import tempfile

    import soundfile as sf

    import retrieval.audio
    from retrieval.extract import STREAM_WINDOWS, AudioLimits, decode, extract_many

    rate, seconds = 48_000, long_minutes * 60
    path = os.path.join(tempfile.mkdtemp(), "long.wav")
    with sf.SoundFile(path, "w", rate, 1, "PCM_16") as f:
        for start in np.arange(0.0, seconds, 60.0):
            n = int(min(60.0, seconds - start) * rate)
            t = np.arange(n) / rate
            f.write((0.1 * rng.standard_normal(n) + 0.2 * np.sin(2 * np.pi * (300 + start) * t)).astype(np.float32))
    limits = AudioLimits(whole_up_to_s=min(120.0, seconds / 2))  # streamed, as `index add` reads it
    precision = "fp16" if device.type == "cuda" else "fp32"
    batch = STREAM_WINDOWS if device.type == "cuda" else 2
    tagger = PasstTagger(dev_model, device=str(device), batch_windows=batch, precision=precision)

    def through_extract() -> tuple[float, int]:
        t = time.perf_counter()
        n = len(extract_many([decode(path, limits=limits)], tagger)[0].windows.logits)
        sync()
        return time.perf_counter() - t, n

    def decode_alone() -> float:
        t = time.perf_counter()
        for _ in decode(path, limits=limits).wave.blocks():
            pass
        return time.perf_counter() - t

    def in_process(measure):  # the decoding in the tagging process, as before the child process
        retrieval.audio.DECODE_AHEAD = False
        try:
            return measure()
        finally:
            retrieval.audio.DECODE_AHEAD = True

    through_extract()  # warm-up: this batch size's kernels
    runs = max(1, reps - 1)
    extract_s = float(np.median([through_extract()[0] for _ in range(runs)]))
    before_s = float(np.median([in_process(through_extract)[0] for _ in range(runs)]))
    n_windows = through_extract()[1]
    decode_s = float(np.median([in_process(decode_alone) for _ in range(runs)]))
    work = [clip(10.0) for _ in range(min(n_windows, 256))]
    tagger.window_logits_many(work[:batch])
    sync()
    t = time.perf_counter()
    tagger.window_logits_many(work)
    sync()
    passt_s = (time.perf_counter() - t) * n_windows / len(work)
    say(f"A {long_minutes:g}-minute recording (48 kHz mono 16-bit WAV, {n_windows} windows) through "
        f"retrieval.extract at {precision}, {batch} windows per forward pass ({STREAM_WINDOWS} handed to PaSST at "
        f"a time), median of {runs}:")
    say()
    say("| what | s | windows/s | share of extract |")
    say("|---|---|---|---|")
    say(f"| extract (decode in a child process, resample, cut, PaSST) | {extract_s:.2f} | "
        f"{n_windows / extract_s:.1f} | 100% |")
    say(f"| extract, decoding in the tagging process (before) | {before_s:.2f} | {n_windows / before_s:.1f} | "
        f"{100 * before_s / extract_s:.0f}% |")
    say(f"| decoding and resampling alone (one core, in process) | {decode_s:.2f} | {n_windows / decode_s:.1f} | "
        f"{100 * decode_s / extract_s:.0f}% |")
    say(f"| PaSST alone on as many 10 s windows (scaled from {len(work)}) | {passt_s:.2f} | "
        f"{n_windows / passt_s:.1f} | {100 * passt_s / extract_s:.0f}% |")
    threads_now = torch.get_num_threads()
    counts = [int(n) for n in (args.long_threads or ("1,2,4,8" if device.type == "cuda" else "")).split(",") if n]
    if not counts:
        os.remove(path)
        return
    say()
    say(f"The same extract (decoding in a child process) at other torch CPU thread counts ({threads_now} above; "
        f"{os.cpu_count()} cores), median of {runs}:")
    say()
    say("| torch CPU threads | s | windows/s | against the run above |")
    say("|---|---|---|---|")
    for n in counts:
        torch.set_num_threads(n)
        s_ = float(np.median([through_extract()[0] for _ in range(runs)]))
        say(f"| {n} | {s_:.2f} | {n_windows / s_:.1f} | {extract_s / s_:.2f}x |")
    torch.set_num_threads(threads_now)
    os.remove(path)


if long_minutes > 0:
    say()
    long_recording()
write_out()
PY

# A library of short files through index_paths, decoded where they are tagged and ahead in processes of their
# own (RETRIEVAL_INDEX_DECODERS): what a GPU host's spare cores do for `index add`. It needs the store's
# packages (faiss, pydantic-settings, mutagen...), which a bare GPU image may lack: then it says so.
if [[ "${GPU_CHECK_LIBRARY:-1}" != 0 && "$*" != *--device\ cpu* ]]; then
    if "$VENV/bin/python" -c "import faiss, pydantic_settings, mutagen, tqdm, safetensors" 2>/dev/null; then
        "$VENV/bin/python" -m benchmarks.library_files --model random --device cuda --precision fp16 \
            --files "${GPU_CHECK_LIBRARY_FILES:-384}" --batch 32 --threads 4 --decoders 2,4,8 \
            | tee ${OUT:+"$OUT/library_files.txt"}
    else
        echo "library of short files: skipped (the store's packages are not installed here)"
    fi
fi
echo "gpu_check done after $((SECONDS - start)) s"
