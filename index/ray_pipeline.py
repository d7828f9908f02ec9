"""Feature extraction for collections too large for one machine: a Ray Data pipeline from audio files to
Parquet shards of PaSST logits.

    file list -> read + decode + sha256 (CPU tasks) -> PaSST (actors, map_batches) -> Parquet shards

With GPUs in the cluster there is one PaSST actor per GPU; without, ``cpu_actors`` CPU actors. A shard row
holds what the bulk loader needs to store a clip (path, name, sha256, duration, sample_rate, 527 logits) or,
for a file that could not be decoded, the error. ``manifest.json`` beside the shards names the tagger, so the
loader refuses logits of another one. Ray is an optional dependency (the ``ray`` extra).
"""

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from retrieval.config import N_TAGS, PASST_ARCH, Windowing
from retrieval.errors import AudioDecodeError, CheckpointMismatch, ModelNotFound

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SHARD_COLUMNS = ("path", "name", "sha256", "duration", "sample_rate", "logits", "error")


def read_file_list(path: Path) -> list[Path]:
    """One audio path a line; blank lines and lines starting with '#' are skipped."""
    lines = (line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines())
    return [Path(line) for line in lines if line and not line.startswith("#")]


def decode_row(row: dict, *, max_duration_s: float | None) -> dict:
    """{"path"} -> the file's facts and its 32 kHz samples, or its decode error (never raises for audio)."""
    from retrieval.audio import decode_audio

    path = Path(row["path"])
    out = {"path": str(path), "name": path.name, "sha256": "", "duration": 0.0, "sample_rate": 0,
           "wave": np.zeros(0, np.float32), "error": ""}
    try:
        data = path.read_bytes()
        out["sha256"] = hashlib.sha256(data).hexdigest()
        audio = decode_audio(data, max_duration_s=max_duration_s, name=path.name)
    except (OSError, AudioDecodeError) as e:
        out["error"] = f"{type(e).__name__}: {e}"
        return out
    out.update(duration=float(audio.duration_s), sample_rate=int(audio.source_rate), wave=audio.wave)
    return out


class PasstLogits:
    """The Ray actor: one PaSST on its device, logits for a batch of decoded clips."""

    def __init__(self, weights: str, *, device: str, batch_windows: int = 1, seed: int = 0):
        import torch

        from retrieval.tagger import PasstTagger

        torch.manual_seed(seed)  # random test weights come out the same in every actor
        self.tagger = PasstTagger.load(weights, device=device, batch_windows=batch_windows)

    def __call__(self, batch: dict[str, np.ndarray]) -> "pa.Table":  # noqa: F821 (imported inside, Ray workers only)
        import pyarrow as pa

        logits = np.zeros((len(batch["path"]), N_TAGS), np.float32)  # (B, 527)
        for i, (wave, error) in enumerate(zip(batch["wave"], batch["error"], strict=True)):
            if not error:
                logits[i] = self.tagger.logits(np.asarray(wave, dtype=np.float32))
        columns = {k: pa.array(batch[k]) for k in SHARD_COLUMNS if k != "logits"}
        # a plain fixed-size list column, so the shards read back without Ray's tensor extension type
        columns["logits"] = pa.FixedSizeListArray.from_arrays(pa.array(logits.ravel()), N_TAGS)
        return pa.table(columns)


def tagger_description() -> dict:
    """What PasstTagger.describe() says of the tagger the actors build (default arch and windowing)."""
    return {"passt_arch": PASST_ARCH, **Windowing().as_dict()}


def _actor_pool(cpu_actors: int) -> dict:
    """One actor per GPU when the cluster has GPUs, else `cpu_actors` CPU actors."""
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus:
        return {"concurrency": gpus, "num_gpus": 1, "device": "cuda"}
    return {"concurrency": cpu_actors, "num_cpus": 1, "device": "cpu"}


def _weights_path(weights: str) -> str:
    from retrieval.tagger import OFFICIAL_WEIGHTS, RANDOM_WEIGHTS

    if weights not in (RANDOM_WEIGHTS, OFFICIAL_WEIGHTS) and not Path(weights).is_file():
        raise ModelNotFound(f"PaSST weights not found at {weights}; every Ray worker must see this path")
    return weights


def extract_shards(paths: list[Path], out_dir: Path, *, weights: str, batch_size: int = 16,
                   cpu_actors: int = 1, batch_windows: int = 1,
                   max_duration_s: float | None = None) -> dict:
    """Run the pipeline on an already initialised Ray; write shards + manifest into out_dir.

    Returns the manifest: tagger description, weights, clip and error counts, shard file names.
    """
    import ray

    weights = _weights_path(weights)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    before = set(out_dir.glob("*.parquet"))
    pool = _actor_pool(cpu_actors)
    log.info("extracting %d files with %d PaSST actor(s) on %s",
             len(paths), pool["concurrency"], pool["device"])
    ds = ray.data.from_items([{"path": str(Path(p).resolve())} for p in paths])
    ds = ds.map(decode_row, fn_kwargs={"max_duration_s": max_duration_s})
    ds = ds.map_batches(PasstLogits, batch_size=batch_size, batch_format="numpy",
                        concurrency=pool["concurrency"], num_gpus=pool.get("num_gpus"),
                        num_cpus=pool.get("num_cpus"),
                        fn_constructor_args=(weights,),
                        fn_constructor_kwargs={"device": pool["device"], "batch_windows": batch_windows})
    ds.write_parquet(str(out_dir))
    shards = sorted(p.name for p in set(out_dir.glob("*.parquet")) - before)
    manifest = _write_manifest(out_dir, shards=shards, weights=weights,
                               tagger=tagger_description())
    log.info("wrote %d shard(s) to %s", len(shards), out_dir)
    return manifest


def _write_manifest(out_dir: Path, *, shards: list[str], weights: str, tagger: dict) -> dict:
    """Merge this run into the folder's manifest (a folder may hold shards of several runs, one tagger)."""
    path = out_dir / MANIFEST
    old = json.loads(path.read_text()) if path.is_file() else {"tagger": tagger, "shards": []}
    if old["tagger"] != tagger:
        raise CheckpointMismatch(f"{out_dir} holds shards of tagger {old['tagger']}, not {tagger}")
    manifest = {"tagger": tagger, "passt_weights": Path(weights).name,
                "shards": sorted(set(old["shards"]) | set(shards))}
    path.write_text(json.dumps(manifest, indent=2))
    return manifest
