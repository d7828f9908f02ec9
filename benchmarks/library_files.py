"""A library of short files through `index_paths`, each file decoded where it is tagged (the reference) and
decoded ahead by processes of their own (`decoders`, index/ingest/ahead.py), in the same run.

    python -m benchmarks.library_files                          # CPU: a stand-in for PaSST, 200 files
    python -m benchmarks.library_files --model random --device cuda --precision fp16 --files 512

The files are 10 s stereo 48 kHz 24-bit WAVs of noise (made once under --workdir), each a clip of its own.
``--model tiny`` (the default) tags with a cheap stand-in for PaSST (benchmarks/long_file.py `TinyPasst`: the
mel front end and a random linear map), so that the files' own cost shows; ``--model free`` with one of no
cost (logits 0), as beside a GPU where PaSST takes about a tenth of a file's time; ``--model random`` is PaSST
with random weights. The text side is a fixed
random table of tag-name vectors (indexing never encodes text). Prints files/s both ways, the collections
checked equal (every clip's vector), and the share of a file's time each step of the reference takes.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from app.compose import open_collection
from app.settings import Settings
from benchmarks.long_file import TinyPasst
from index.ingest.builder import index_paths
from retrieval.checkpoint import zero_shot
from retrieval.config import N_TAGS
from retrieval.extract import AudioLimits
from retrieval.model_spec import ModelSpec
from retrieval.pipeline import Retriever, text_spec
from retrieval.tagger import PasstTagger

RATE, SECONDS, DIM = 48_000, 10.0, 768
STEPS = {"decoding and resampling": "retrieval/audio.py:_model_rate_blocks",
         "hashing the file": "retrieval/durable.py:sha256_file",
         "the fingerprint": "retrieval/audio.py:audio_sha256",
         "reading its tags": "index/ingest/embedded.py:file_metadata",
         "PaSST (or the stand-in)": "retrieval/tagger.py:window_logits_many",
         "storing the clip": "index/collection.py:add_extracted"}


class FreePasst(torch.nn.Module):
    """PaSST at no cost (every window's logits 0): what is left is each file's own work, as beside a GPU
    fast enough not to count."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x), N_TAGS)


class RandomText:
    """The text side's interface, for indexing only: a fixed random table stands in for the tag names."""
    model_id, revision, dim, precision = "random-text", None, DIM, "fp32"

    def encode(self, sentences, *, batch_size=64, clean=True, progress=False):
        raise RuntimeError("indexing encodes no text")


def make_library(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        path = folder / f"take{i:05d}.wav"
        if not path.exists():  # each file its own noise, whichever files were made before
            noise = np.random.default_rng(i).standard_normal((int(RATE * SECONDS), 2))
            sf.write(path, (0.1 * noise).astype(np.float32), RATE, subtype="PCM_24")
        files.append(path)
    return files


def retriever(args: argparse.Namespace) -> Retriever:
    if args.model in ("tiny", "free"):
        stand_in = TinyPasst() if args.model == "tiny" else FreePasst()
        tagger = PasstTagger(stand_in, spec=ModelSpec(passt_weights=f"{args.model}-stand-in"),
                             device=args.device, batch_windows=args.batch, sdpa=False)
    else:
        tagger = PasstTagger.load("random", device=args.device, batch_windows=args.batch,
                                  precision=args.precision)
    names = torch.randn(N_TAGS, DIM, generator=torch.Generator().manual_seed(0))
    names = torch.nn.functional.normalize(names, dim=1)
    text = RandomText()
    return Retriever(text, zero_shot(names, text_spec(tagger.spec, text)), passt=tagger.spec, tagger=tagger)


def run(folder: Path, data: Path, model: Retriever, *, decoders: int, batch: int,
        profile: bool = False) -> tuple[float, int, np.ndarray, pstats.Stats | None]:
    settings = Settings(data_dir=data, models_dir=data / "models", passt_weights="random", device="cpu",
                        index_kind="flat")
    with open_collection(settings, model) as c:
        prof = cProfile.Profile() if profile else None
        start = time.perf_counter()
        if prof:
            prof.enable()
        report = index_paths(c, [folder], progress=False, batch_clips=batch, limits=AudioLimits(),
                             decoders=decoders)
        if prof:
            prof.disable()
        seconds = time.perf_counter() - start
        records = sorted(c.list(0, 1_000_000), key=lambda r: r.name)
        vectors = c.store.vectors([r.id for r in records])
    assert not report.failed, report.failed
    return seconds, report.added, vectors, pstats.Stats(prof) if prof else None


def shares(stats: pstats.Stats, seconds: float) -> dict[str, float]:
    """Each step's cumulative seconds (by where its function is defined) as a share of the run."""
    found = {}
    for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for step, where in STEPS.items():
            file, name = where.split(":")
            if filename.endswith(file) and function == name:
                found[step] = max(found.get(step, 0.0), cumulative / seconds)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--model", choices=("tiny", "free", "random"), default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--batch", type=int, default=32, help="files (and windows) per PaSST pass")
    ap.add_argument("--decoders", default="1", help="decoding processes timed (comma-separated)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "retrieval-library-bench")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = args.workdir / "files"
    make_library(folder, args.files)
    model = retriever(args)

    def timed(decoders: int, *, profile: bool = False):
        data = Path(tempfile.mkdtemp(dir=args.workdir))
        return run(folder, data, model, decoders=decoders, batch=args.batch, profile=profile)

    timed(0)  # warm-up
    tagger = {"tiny": "a stand-in for PaSST", "free": "PaSST at no cost (logits 0)"}.get(
        args.model, f"PaSST (random weights) at {args.precision}")
    print(f"# A library of {args.files} files of {SECONDS:g} s (stereo {RATE} Hz 24-bit WAV) "
          "through index_paths")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {args.device}, {tagger}, "
          f"{args.batch} files a pass, {torch.get_num_threads()} torch CPU threads; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print()
    seconds, added, reference, stats = timed(0, profile=True)
    assert stats is not None
    plain, _, _, _ = timed(0)
    print("| decoding processes | s | files/s | against the reference | clips equal |")
    print("|---|---|---|---|---|")
    print(f"| none: each file decoded where it is tagged (reference) | {plain:.2f} | {added / plain:.1f} | "
          "1.00x | - |")
    for n in [int(d) for d in args.decoders.split(",") if d]:
        took, got, vectors, _ = timed(n)
        same = got == added and np.array_equal(vectors, reference)
        print(f"| {n} | {took:.2f} | {got / took:.1f} | {plain / took:.2f}x | {'yes' if same else 'NO'} |")
    print()
    print("Where a file's time goes in the reference (a profiled run, cumulative):",
          ", ".join(f"{step} {100 * share:.0f}%" for step, share in shares(stats, seconds).items()))


if __name__ == "__main__":
    main()
