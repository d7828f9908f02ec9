"""Feature extraction for collections too large for one machine: a Ray Data pipeline from audio files to
Parquet shards of PaSST logits.

    file list -> read + decode + sha256 (CPU tasks) -> PaSST (actors, map_batches) -> Parquet shards

With GPUs in the cluster there is one PaSST actor per GPU; without, ``cpu_actors`` CPU actors. A shard row
holds what the bulk loader needs to store a clip (path, name, sha256, duration, sample_rate, 527 logits, and
its windows: ``window_starts``, ``window_ends``, ``window_logits`` (W x 527, flattened) and its waveform
``peaks``), the metadata inside the file and its UCS name (``metadata``, :mod:`index.ingest.embedded`, as
JSON of ``Metadata.to_dict``) or, for a file that could not be decoded, the error. Shards written before
windows have no window columns; their clips are stored without windows (``retrieval index backfill-windows``
adds them). Shards written before the metadata column load without it (``retrieval index reread-metadata``
reads it afterwards).
``manifest.json`` beside the shards holds the tagger's ``model_spec`` (``tagger`` in folders written before
it), so the loader refuses logits of another one, and a run refuses a folder of another's shards before it
starts. A run writes its shards into a folder of its own (``.manifest.json.<host>-<pid>.work``), then
moves them in and lists them, under a lock: a run stopped midway leaves no shard in the folder, only its
work folder, which the next run of the same machine into the folder removes. The decode stage runs
:func:`retrieval.extract.decode` and the actors :func:`retrieval.extract.extract_many`, as every other
path to PaSST. A file longer than the limits' ``whole_up_to_s`` is not read by the decode stage: its row
carries no samples (``long``), and the actor decodes it again from its path and tags it window by window as
it is read (a :class:`retrieval.audio.LongWave`, its peaks from the same pass), as ``retrieval index add``
does, so no stage holds a long recording whole. Ray is an optional dependency (the ``ray`` extra).
"""

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index.ingest.embedded import file_metadata
from retrieval.audio import DecodedAudio, LongWave
from retrieval.config import N_TAGS, Windowing
from retrieval.durable import (
    fsync_path,
    fsync_tree,
    locked,
    remove_dead_writer_folders,
    sha256_file,
    this_hosts_writer,
    write_json_atomically,
    writer_tag,
)
from retrieval.errors import AudioDecodeError, ModelNotFound, RetrievalError
from retrieval.extract import AudioLimits, Extraction, decode, extract_many
from retrieval.model_spec import PASST_FIELDS, ModelSpec
from retrieval.text_files import open_text
from retrieval.waveform import peaks
from retrieval.windows import WindowLogits

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
WORK_PREFIX = f".{MANIFEST}."  # a run's work folder: WORK_PREFIX + "<host>-<pid>.work"
MANIFEST_LOCK = ".manifest.lock"  # held while a run moves its shards in and lists them (runs share folders)
RECORD_COLUMNS = ("path", "name", "sha256", "duration", "sample_rate", "error")
WINDOW_COLUMNS = ("window_starts", "window_ends", "window_logits", "peaks")
METADATA_COLUMN = "metadata"  # JSON text of Metadata.to_dict(), "" for none
AUDIO_COLUMN = "audio_sha256"  # the fingerprint of the clip's samples (retrieval.audio), "" where it failed
SHARD_COLUMNS = (*RECORD_COLUMNS, "logits", *WINDOW_COLUMNS, METADATA_COLUMN, AUDIO_COLUMN)


def read_file_list(path: Path) -> list[Path]:
    """One audio path a line; blank lines and lines starting with '#' are skipped."""
    with open_text(path) as f:
        lines = [line.strip() for line in f.read().splitlines()]
    return [Path(line) for line in lines if line and not line.startswith("#")]


@dataclass(frozen=True)
class TaggerConfig:
    """What each PaSST actor builds: weights (`random`, `official` or a path every worker sees), its spec."""

    weights: str
    spec: ModelSpec
    batch_windows: int = 1
    precision: str = "fp32"
    moment_windowing: Windowing | None = None  # a finer second pass for moments (None: the PaSST windows)


def decode_row(row: dict, *, limits: AudioLimits) -> dict:
    """{"path"} -> the file's facts (sha256 read in chunks), its decoded audio (32 kHz samples, source rate,
    channels, container) and waveform peaks, the metadata inside it, or its decode error (never raises for
    audio). A file longer than `limits.whole_up_to_s` is not read: its row is `long`, with no samples and no
    peaks (the actor reads and tags it window by window)."""
    path = Path(row["path"])
    out = {"path": str(path), "name": path.name, "sha256": "", "duration": 0.0, "sample_rate": 0,
           "channels": 0, "format": "", "wave": np.zeros(0, np.float32), "peaks": np.zeros(0, np.uint8),
           "long": False, "error": "", METADATA_COLUMN: ""}
    try:
        out["sha256"] = sha256_file(path)
        audio = decode(path, limits=limits, name=path.name)
    except (OSError, AudioDecodeError) as e:
        out["error"] = f"{type(e).__name__}: {e}"
        return out
    out.update(duration=float(audio.duration_s), sample_rate=int(audio.source_rate), channels=audio.channels,
               format=audio.format)
    if isinstance(audio.wave, LongWave):
        out["long"] = True
    else:
        out.update(wave=audio.wave, peaks=peaks(audio.wave))
    meta = file_metadata(path, path.name)
    out[METADATA_COLUMN] = "" if meta.empty else meta.to_json()
    return out


class PasstLogits:
    """The Ray actor: one PaSST on its device, the logits, moment windows and peaks of a batch of decoded
    clips (:func:`retrieval.extract.extract_many`). A `long` row's file is decoded again here with `limits`
    (those of the decode stage) and tagged on its own, window by window as it is read; bad samples found then
    make that row's error."""

    def __init__(self, config: TaggerConfig, *, device: str, limits: AudioLimits):
        from retrieval.tagger import PasstTagger

        self.tagger = PasstTagger.load(config.weights, spec=config.spec, device=device,
                                       batch_windows=config.batch_windows, precision=config.precision)
        self.moment_windowing = config.moment_windowing
        self.limits = limits

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:  # a pyarrow Table (imported in the workers)
        import pyarrow as pa

        n = len(batch["path"])
        logits = np.zeros((n, N_TAGS), np.float32)  # (B, 527)
        empty = WindowLogits(np.zeros((0, N_TAGS), np.float32), np.zeros(0), np.zeros(0))
        moments = [empty] * n  # the windows each clip's moments are made of
        errors = [str(e) for e in batch["error"]]
        peak_rows = [np.asarray(p, np.uint8) for p in batch["peaks"]]
        held = [i for i in range(n) if not errors[i] and not batch["long"][i]]
        clips = [DecodedAudio(np.asarray(batch["wave"][i], dtype=np.float32), int(batch["sample_rate"][i]),
                              int(batch["channels"][i]), str(batch["format"][i])) for i in held]
        done: dict[int, Extraction] = dict(
            zip(held, extract_many(clips, self.tagger, moment_windowing=self.moment_windowing), strict=True))
        for i in [i for i in range(n) if not errors[i] and batch["long"][i]]:
            try:
                audio = decode(Path(str(batch["path"][i])), limits=self.limits, name=str(batch["name"][i]))
                done[i] = extract_many([audio], self.tagger, moment_windowing=self.moment_windowing)[0]
            except (OSError, AudioDecodeError) as e:  # read again here: bad samples are found now
                errors[i] = f"{type(e).__name__}: {e}"
                continue
            peak_rows[i] = peaks(done[i].audio.wave)  # a LongWave's: those kept by the pass that tagged it
        fingerprints = [""] * n
        for i, ex in done.items():
            logits[i], moments[i] = ex.logits, ex.moment_windows
            fingerprints[i] = ex.audio.fingerprint  # a LongWave's: kept by the pass that tagged it
        columns = {k: pa.array(errors, type=pa.string()) if k == "error" else pa.array(batch[k])
                   for k in RECORD_COLUMNS}
        # plain (fixed-size) list columns, so the shards read back without Ray's tensor extension type
        columns["logits"] = pa.FixedSizeListArray.from_arrays(pa.array(logits.ravel()), N_TAGS)
        columns["window_starts"] = pa.array([w.starts for w in moments], type=pa.list_(pa.float64()))
        columns["window_ends"] = pa.array([w.ends for w in moments], type=pa.list_(pa.float64()))
        columns["window_logits"] = pa.array([w.logits.ravel() for w in moments], type=pa.list_(pa.float32()))
        columns["peaks"] = pa.array(peak_rows, type=pa.list_(pa.uint8()))
        columns[METADATA_COLUMN] = pa.array([str(m) for m in batch[METADATA_COLUMN]], type=pa.string())
        columns[AUDIO_COLUMN] = pa.array(fingerprints, type=pa.string())
        return pa.table(columns)  # SHARD_COLUMNS: the stage's wave, channels, format and long are dropped


def _actor_pool(cpu_actors: int) -> dict:
    """One actor per GPU when the cluster has GPUs, else `cpu_actors` CPU actors."""
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus:
        return {"concurrency": gpus, "num_gpus": 1, "device": "cuda"}
    return {"concurrency": cpu_actors, "num_cpus": 1, "device": "cpu"}


def _check_weights(weights: str) -> None:
    from retrieval.tagger import OFFICIAL_WEIGHTS, RANDOM_WEIGHTS

    if weights not in (RANDOM_WEIGHTS, OFFICIAL_WEIGHTS) and not Path(weights).is_file():
        raise ModelNotFound(f"PaSST weights not found at {weights}; every Ray worker must see this path")


def extract_shards(paths: list[Path], out_dir: Path, *, tagger: TaggerConfig, batch_size: int = 16,
                   cpu_actors: int = 1, limits: AudioLimits = AudioLimits()) -> dict:
    """Run the pipeline on an already initialised Ray; write shards + manifest into out_dir.

    Returns the manifest (the tagger's model spec, weights, shard file names) and `written`, this run's
    shards.
    """
    import ray

    _check_weights(tagger.weights)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = tagger.spec.encoders()
    with locked(out_dir / MANIFEST_LOCK):
        _remove_stopped_runs(out_dir)  # the work folders of this machine's runs that were stopped
        _require_same_tagger(out_dir, spec)  # before PaSST, not after it
    work = out_dir / f"{WORK_PREFIX}{writer_tag()}.work"  # its shards until whole
    shutil.rmtree(work, ignore_errors=True)
    pool = _actor_pool(cpu_actors)
    log.info("extracting %d files with %d PaSST actor(s) on %s",
             len(paths), pool["concurrency"], pool["device"])
    ds: Any = ray.data.from_items([{"path": str(Path(p).resolve())} for p in paths])
    ds = ds.map(decode_row, fn_kwargs={"limits": limits})
    ds = ds.map_batches(PasstLogits, batch_size=batch_size, batch_format="numpy",
                        concurrency=pool["concurrency"], num_gpus=pool.get("num_gpus"),
                        num_cpus=pool.get("num_cpus"),
                        fn_constructor_args=(tagger,),
                        fn_constructor_kwargs={"device": pool["device"], "limits": limits})
    ds.write_parquet(str(work))
    shards = sorted(p.name for p in work.glob("*.parquet"))  # Ray names them uniquely for this dataset
    fsync_tree(work)
    with locked(out_dir / MANIFEST_LOCK):  # runs into one folder list their own shards, each whole
        for name in shards:
            os.replace(work / name, out_dir / name)
        fsync_path(out_dir)
        manifest = _write_manifest(out_dir, shards=shards, weights=tagger.weights, spec=spec)
    shutil.rmtree(work, ignore_errors=True)
    log.info("wrote %d shard(s) to %s", len(shards), out_dir)
    return {**manifest, "written": shards}


def _remove_stopped_runs(out_dir: Path) -> None:
    """The work folders (with their shards) of runs of this machine whose process is gone. A run of another
    machine sharing the folder is left alone: its process cannot be seen from here."""
    remove_dead_writer_folders(out_dir, rf"{re.escape(WORK_PREFIX)}{this_hosts_writer()}\.work",
                               left_by="an extract-ray run")


def _require_same_tagger(out_dir: Path, spec: ModelSpec) -> dict:
    """The folder's manifest ({"shards": []} when there is none yet), whose shards were made by this tagger
    (CheckpointMismatch when not)."""
    path = out_dir / MANIFEST
    if not path.is_file():
        return {"shards": []}
    manifest = json.loads(path.read_text())
    manifest_spec(manifest).require_match(spec, only=PASST_FIELDS, what=f"the shards in {out_dir}")
    return manifest


@contextlib.contextmanager
def reading_shard(path: Path) -> Iterator[None]:
    """A shard that is not a whole Parquet file (cut short by a full disk or a kill) said in one line naming
    it, not as pyarrow's error that names no file."""
    import pyarrow as pa

    try:
        yield
    except pa.ArrowException as e:
        raise RetrievalError(f"{path} is not a whole Parquet shard ({e}): extract its files again, or take "
                             f"it out of {MANIFEST}") from None


def shard_failures(out_dir: Path, shards: list[str]) -> list[tuple[str, str]]:
    """(path, why) of every file of these shards that could not be extracted (their `error` column)."""
    import pyarrow.parquet as pq

    failed = []
    for name in shards:
        with reading_shard(Path(out_dir) / name):
            table = pq.read_table(Path(out_dir) / name, columns=["path", "error"]).to_pydict()
        failed += [(p, e) for p, e in zip(table["path"], table["error"], strict=True) if e]
    return failed


def manifest_spec(manifest: dict) -> ModelSpec:
    """The tagger's spec a shard folder's manifest records (``tagger``: folders of the previous format)."""
    return ModelSpec.from_dict(manifest.get("model_spec") or manifest["tagger"])


def _write_manifest(out_dir: Path, *, shards: list[str], weights: str, spec: ModelSpec) -> dict:
    """Merge this run into the folder's manifest (a folder may hold shards of several runs, one tagger)."""
    path = out_dir / MANIFEST
    old = _require_same_tagger(out_dir, spec)
    manifest = {"model_spec": spec.to_dict(), "passt_weights": Path(weights).name,
                "shards": sorted(set(old["shards"]) | set(shards))}
    write_json_atomically(path, manifest, indent=2)
    return manifest
