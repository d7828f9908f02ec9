"""The feature file: PaSST logits and text embeddings of one dataset split, computed once.

A feature file ``NAME.safetensors`` holds four tensors:

    logits        (N, 527) float32   PaSST logits of the N clips (mean over windows for long clips)
    text          (M, D)   float32   unit sentence embeddings of the M cleaned captions
    caption_clip  (M,)     int64     the clip index (row of ``logits``) each caption describes
    tag_text      (527, D) float32   embeddings of the AudioSet names from the same text model, as is

and its sidecar ``NAME.json`` says what they are: ``format``, ``dataset``, ``split``, ``clips`` (N file
names), ``captions`` (M raw captions) and ``model_spec`` (:class:`retrieval.model_spec.ModelSpec` of the
PaSST and text models; sidecars written before it hold ``text_model``, ``text_model_revision``, ``dim``,
``passt_arch`` and ``windowing`` instead, and still open). Training and evaluation need nothing else, so
users can also write such files themselves.

A file extracted with ``windows=True`` (``retrieval features --windows``), for moment retrieval, also holds
every clip's PaSST windows (:class:`retrieval.windows.WindowLogits`), clip after clip in time order:

    window_logits (W, 527) float32   the logits of each window (``logits`` is their mean per clip)
    window_start  (W,)     float64   where each window starts and ends in its clip, in seconds
    window_end    (W,)     float64
    window_count  (N,)     int64     how many of the W windows each clip has (at least one)

Files without them open as before (``windows`` is None); code that does not use them ignores them.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from retrieval.config import N_TAGS
from retrieval.contracts import SentenceEncoder, Tagger
from retrieval.durable import atomic_path, make_parent, write_json_atomically
from retrieval.errors import RetrievalError
from retrieval.extract import AudioLimits, extract
from retrieval.model_spec import ENCODER_FIELDS, PASST_FIELDS, ModelSpec
from retrieval.windows import WindowLogits

log = logging.getLogger(__name__)

FORMAT = "retrieval-features/1"
TENSORS = ("logits", "text", "caption_clip", "tag_text")
WINDOW_TENSORS = ("window_logits", "window_start", "window_end", "window_count")
LEGACY_MODEL_KEYS = ("text_model", "text_model_revision", "dim", "passt_arch", "windowing")


class FeatureFileError(RetrievalError):
    """A feature file or its sidecar is missing or inconsistent."""


@dataclass
class FeatureSet:
    logits: np.ndarray  # (N, 527) float32
    text: np.ndarray  # (M, D) float32
    caption_clip: np.ndarray  # (M,) int64
    tag_text: np.ndarray  # (527, D) float32
    meta: dict
    windows: list[WindowLogits] | None = None  # one per clip, for moment retrieval

    @property
    def clips(self) -> list[str]:
        return self.meta["clips"]

    @property
    def captions(self) -> list[str]:
        return self.meta["captions"]

    @property
    def spec(self) -> ModelSpec:
        """The models that produced these features; two files must agree on them to be used together."""
        return ModelSpec.from_dict(self.meta.get("model_spec") or self.meta).encoders()

    def check(self) -> None:
        """Raise :class:`FeatureFileError` unless shapes, dtypes and sidecar agree."""
        legacy = "model_spec" not in self.meta
        missing = [k for k in LEGACY_MODEL_KEYS if k not in self.meta] if legacy else []
        if missing or self.meta.get("format") != FORMAT:
            raise FeatureFileError(f"the sidecar must be {FORMAT} with its model_spec; lacks {missing}")
        n, m = len(self.meta.get("clips", [])), len(self.meta.get("captions", []))
        d = self.spec.dim
        want = {"logits": ((n, N_TAGS), np.float32), "text": ((m, d), np.float32),
                "caption_clip": ((m,), np.int64), "tag_text": ((N_TAGS, d), np.float32)}
        for name, (shape, dtype) in want.items():
            arr = getattr(self, name)
            if arr.shape != shape or arr.dtype != dtype:
                raise FeatureFileError(f"{name} must be {shape} {np.dtype(dtype).name} for {n} clips and "
                                       f"{m} captions of dim {d}, got {arr.shape} {arr.dtype}")
        if m and (self.caption_clip.min() < 0 or self.caption_clip.max() >= n):
            raise FeatureFileError(f"caption_clip must index the {n} clips")
        if self.windows is not None:
            if len(self.windows) != n:
                raise FeatureFileError(f"windows are needed for each of the {n} clips, "
                                       f"got {len(self.windows)}")
            bad = [self.clips[i] for i, w in enumerate(self.windows)
                   if not len(w) or w.logits.shape[1] != N_TAGS or w.logits.dtype != np.float32]
            if bad:
                raise FeatureFileError(f"every clip needs (W >= 1, {N_TAGS}) float32 window logits; "
                                       f"not so for {bad[:3]}")


def pack_windows(windows: list[WindowLogits]) -> dict[str, np.ndarray]:
    """Clips' windows -> the WINDOW_TENSORS, clip after clip."""
    return {"window_logits": np.concatenate([w.logits for w in windows]).astype(np.float32),
            "window_start": np.concatenate([w.starts for w in windows]).astype(np.float64),
            "window_end": np.concatenate([w.ends for w in windows]).astype(np.float64),
            "window_count": np.array([len(w) for w in windows], dtype=np.int64)}


def unpack_windows(tensors: dict[str, np.ndarray], *, where: str) -> list[WindowLogits]:
    """The WINDOW_TENSORS -> one WindowLogits per clip."""
    counts, w = tensors["window_count"], len(tensors["window_logits"])
    if counts.ndim != 1 or (counts < 0).any() or counts.sum() != w:
        raise FeatureFileError(f"{where}: window_count must split the {w} windows")
    cuts = np.cumsum(counts)[:-1]
    parts = [np.split(tensors[k], cuts) for k in ("window_logits", "window_start", "window_end")]
    try:
        return [WindowLogits(x, s, e) for x, s, e in zip(*parts, strict=True)]
    except ValueError as e:
        raise FeatureFileError(f"{where}: {e}") from e


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def check_feature_path(path: str | Path) -> None:
    """Refuse a feature file name whose sidecar would be the file itself (``X.json``)."""
    if sidecar_path(path) == Path(path):
        raise FeatureFileError(f"{path}: a feature file named .json would be overwritten by its own .json "
                               "sidecar: name it NAME.safetensors")


def save_features(path: str | Path, fs: FeatureSet) -> None:
    """Write the tensors and the sidecar, each durably (checked first: a bad set writes nothing)."""
    check_feature_path(path)
    fs.check()
    tensors = {k: getattr(fs, k) for k in TENSORS}
    if fs.windows is not None:
        tensors |= pack_windows(fs.windows)
    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
    write_json_atomically(sidecar_path(path), fs.meta)


def load_features(path: str | Path) -> FeatureSet:
    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file() or not side.is_file():
        raise FeatureFileError(f"feature file {path} and its sidecar {side.name} are both needed")
    try:
        tensors = load_file(str(path))
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (SafetensorError, OSError, ValueError) as e:
        raise FeatureFileError(f"{path} is not a readable feature file: {e}") from e
    windowed = [k for k in WINDOW_TENSORS if k in tensors]
    missing = [k for k in TENSORS + (WINDOW_TENSORS if windowed else ()) if k not in tensors]
    if missing:
        raise FeatureFileError(f"{path} lacks the tensors {missing}")
    windows = unpack_windows(tensors, where=str(path)) if windowed else None
    fs = FeatureSet(meta=meta, windows=windows, **{k: tensors[k] for k in TENSORS})
    fs.check()
    return fs


def check_same_models(a: FeatureSet, b: FeatureSet) -> None:
    a.spec.require_match(b.spec, only=ENCODER_FIELDS, what="one of the feature files",
                         fix="make both with the same PaSST and text model")


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial.npz")


def clip_stamp(path: Path) -> str:
    """What changes with a clip's audio file: where it is (the dataset's root and split), its size and its
    modification time. Logits of a partial file are reused only for the same stamp."""
    st = Path(path).stat()
    return f"{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}"


@dataclass
class Partial:
    """What an interrupted run computed: file name -> (527,) logits, the windows of those it kept, and the
    :func:`clip_stamp` of the audio each was computed from (none in files of earlier versions)."""

    logits: dict[str, np.ndarray]
    windows: dict[str, WindowLogits]
    stamps: dict[str, str]


def load_partial(path: Path, *, spec: ModelSpec) -> Partial:
    """Logits already computed by an interrupted run with the same tagger (files of runs before windows
    could be kept hold no window tensors)."""
    if not path.is_file():
        return Partial({}, {}, {})
    with np.load(path, allow_pickle=False) as z:
        ModelSpec.from_dict(json.loads(str(z["tagger"]))).require_match(
            spec, only=PASST_FIELDS, what=str(path), fix="delete it to start again")
        names = z["names"].tolist()
        logits = dict(zip(names, z["logits"], strict=True))
        stamps = dict(zip(names, z["stamps"].tolist(), strict=True)) if "stamps" in z else {}
        if "window_names" not in z:
            return Partial(logits, {}, stamps)
        windows = unpack_windows({k: z[k] for k in WINDOW_TENSORS}, where=str(path))
        return Partial(logits, dict(zip(z["window_names"].tolist(), windows, strict=True)), stamps)


def save_partial(path: Path, done: Partial, *, spec: ModelSpec) -> None:
    arrays: dict[str, Any] = {
        "names": np.array(list(done.logits), dtype=str), "tagger": json.dumps(spec.to_dict()),
        "stamps": np.array([done.stamps.get(name, "") for name in done.logits], dtype=str),
        "logits": np.stack(list(done.logits.values())) if done.logits else np.zeros((0, N_TAGS), np.float32)}
    if done.windows:
        arrays |= {"window_names": np.array(list(done.windows), dtype=str),
                   **pack_windows(list(done.windows.values()))}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def forget_changed(done: Partial, clips) -> None:
    """Drop what was computed from audio that has changed since, or from another file of the same name
    (another --root or --split written to the same --out): it is computed again. Logits of an earlier
    version's partial file, which recorded no stamps, are taken as they are."""
    changed = [c.file_name for c in clips
               if done.stamps.get(c.file_name) and done.stamps[c.file_name] != clip_stamp(c.path)]
    for name in changed:
        del done.logits[name], done.stamps[name]
        done.windows.pop(name, None)
    if changed:
        log.info("%d clips changed since their logits were saved (e.g. %s): computing them again",
                 len(changed), changed[0])


def clip_logits(clips, *, tagger: Tagger, out: Path, checkpoint_every: int = 50,
                limits: AudioLimits = AudioLimits(), windows: bool = False, progress: bool = True) -> Partial:
    """The clips' logits (and windows when asked), resuming from and saving to ``out``'s partial file; a bar
    of the clips done with ``progress`` (none in a log or a pipe: the CLI's --no-progress)."""
    partial, spec = partial_path(out), tagger.spec
    done = load_partial(partial, spec=spec)
    forget_changed(done, clips)
    have = done.windows if windows else done.logits
    todo = [c for c in clips if c.file_name not in have]
    if have:
        log.info("resuming: %d of %d clips already have logits in %s",
                 len(clips) - len(todo), len(clips), partial)
    try:
        bar = tqdm(todo, desc="PaSST logits", unit="clip", dynamic_ncols=True, disable=not progress)
        for i, clip in enumerate(bar, start=1):
            stamp = clip_stamp(clip.path)  # before it is read: a file changed meanwhile is computed again
            ex = extract(clip.path, tagger, limits=limits, name=clip.file_name)
            done.logits[clip.file_name], done.stamps[clip.file_name] = ex.logits, stamp
            if windows:
                done.windows[clip.file_name] = ex.windows
            if i % checkpoint_every == 0:
                save_partial(partial, done, spec=spec)
    finally:  # an interrupt or a bad file keeps what was computed
        if todo:
            save_partial(partial, done, spec=spec)
    return done


def extract_features(clips, *, tagger: Tagger, text: SentenceEncoder, out: str | Path, dataset: str,
                     split: str, checkpoint_every: int = 50, limits: AudioLimits = AudioLimits(),
                     windows: bool = False, progress: bool = True) -> FeatureSet:
    """PaSST logits of every clip (and its windows, with ``windows``), embeddings of every cleaned caption
    and of the tag names, to ``out``; with ``progress``, bars of the clips (and of over 1,000 captions)."""
    from retrieval.pipeline import tag_text_embeddings, text_spec

    out = Path(out)
    check_feature_path(out)
    if not clips:
        raise FeatureFileError("no clips to extract features from")
    make_parent(out)  # before hours of PaSST: a path that cannot be written is said at once
    done = clip_logits(clips, tagger=tagger, out=out, checkpoint_every=checkpoint_every, limits=limits,
                       windows=windows, progress=progress)
    logits = np.stack([done.logits[c.file_name] for c in clips]).astype(np.float32)  # (N, 527)
    captions = [cap for c in clips for cap in c.captions]
    caption_clip = np.repeat(np.arange(len(clips)), [len(c.captions) for c in clips]).astype(np.int64)  # (M,)
    log.info("encoding %d captions and %d tag names", len(captions), N_TAGS)
    meta = {"format": FORMAT, "dataset": dataset, "split": split, "clips": [c.file_name for c in clips],
            "captions": captions, "model_spec": text_spec(tagger.spec, text).to_dict()}
    encoded = text.encode(captions, clean=True, progress=progress and len(captions) > 1000)
    fs = FeatureSet(logits=logits, text=encoded,
                    caption_clip=caption_clip, tag_text=tag_text_embeddings(text).numpy(), meta=meta,
                    windows=[done.windows[c.file_name] for c in clips] if windows else None)
    save_features(out, fs)
    partial_path(out).unlink(missing_ok=True)
    log.info("wrote %s: %d clips, %d captions", out, len(clips), len(captions))
    return fs
