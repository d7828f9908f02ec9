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
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from retrieval.config import N_TAGS
from retrieval.contracts import SentenceEncoder, Tagger
from retrieval.durable import atomic_path, write_json_atomically
from retrieval.errors import RetrievalError
from retrieval.extract import AudioLimits, extract
from retrieval.model_spec import ENCODER_FIELDS, PASST_FIELDS, ModelSpec

log = logging.getLogger(__name__)

FORMAT = "retrieval-features/1"
TENSORS = ("logits", "text", "caption_clip", "tag_text")
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


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_features(path: str | Path, fs: FeatureSet) -> None:
    """Write the tensors and the sidecar, each durably (checked first: a bad set writes nothing)."""
    fs.check()
    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(getattr(fs, k)) for k in TENSORS}, str(tmp))
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
    missing = [k for k in TENSORS if k not in tensors]
    if missing:
        raise FeatureFileError(f"{path} lacks the tensors {missing}")
    fs = FeatureSet(meta=meta, **{k: tensors[k] for k in TENSORS})
    fs.check()
    return fs


def check_same_models(a: FeatureSet, b: FeatureSet) -> None:
    a.spec.require_match(b.spec, only=ENCODER_FIELDS, what="one of the feature files",
                         fix="make both with the same PaSST and text model")


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial.npz")


def load_partial(path: Path, *, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Logits already computed by an interrupted run with the same tagger: file name -> (527,)."""
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        ModelSpec.from_dict(json.loads(str(z["tagger"]))).require_match(
            spec, only=PASST_FIELDS, what=str(path), fix="delete it to start again")
        return dict(zip(z["names"].tolist(), z["logits"], strict=True))


def save_partial(path: Path, done: dict[str, np.ndarray], *, spec: ModelSpec) -> None:
    logits = np.stack(list(done.values())) if done else np.zeros((0, N_TAGS), np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, names=np.array(list(done), dtype=str), logits=logits, tagger=json.dumps(spec.to_dict()))


def clip_logits(clips, *, tagger: Tagger, out: Path, checkpoint_every: int = 50,
                limits: AudioLimits = AudioLimits()) -> np.ndarray:
    """(N, 527) logits of the clips, resuming from and saving to ``out``'s partial file."""
    partial, spec = partial_path(out), tagger.spec
    done = load_partial(partial, spec=spec)
    todo = [c for c in clips if c.file_name not in done]
    if done:
        log.info("resuming: %d of %d clips already have logits in %s",
                 len(clips) - len(todo), len(clips), partial)
    try:
        for i, clip in enumerate(tqdm(todo, desc="PaSST logits", unit="clip", dynamic_ncols=True), start=1):
            done[clip.file_name] = extract(clip.path, tagger, limits=limits, name=clip.file_name).logits
            if i % checkpoint_every == 0:
                save_partial(partial, done, spec=spec)
    finally:  # an interrupt or a bad file keeps what was computed
        if todo:
            save_partial(partial, done, spec=spec)
    return np.stack([done[c.file_name] for c in clips]).astype(np.float32)  # (N, 527)


def extract_features(clips, *, tagger: Tagger, text: SentenceEncoder, out: str | Path, dataset: str,
                     split: str, checkpoint_every: int = 50,
                     limits: AudioLimits = AudioLimits()) -> FeatureSet:
    """PaSST logits of every clip, embeddings of every cleaned caption and of the tag names, to ``out``."""
    from retrieval.pipeline import tag_text_embeddings, text_spec

    out = Path(out)
    if not clips:
        raise FeatureFileError("no clips to extract features from")
    out.parent.mkdir(parents=True, exist_ok=True)
    logits = clip_logits(clips, tagger=tagger, out=out, checkpoint_every=checkpoint_every, limits=limits)
    captions = [cap for c in clips for cap in c.captions]
    caption_clip = np.repeat(np.arange(len(clips)), [len(c.captions) for c in clips]).astype(np.int64)  # (M,)
    log.info("encoding %d captions and %d tag names", len(captions), N_TAGS)
    meta = {"format": FORMAT, "dataset": dataset, "split": split, "clips": [c.file_name for c in clips],
            "captions": captions, "model_spec": text_spec(tagger.spec, text).to_dict()}
    fs = FeatureSet(logits=logits, text=text.encode(captions, clean=True, progress=len(captions) > 1000),
                    caption_clip=caption_clip, tag_text=tag_text_embeddings(text).numpy(), meta=meta)
    save_features(out, fs)
    partial_path(out).unlink(missing_ok=True)
    log.info("wrote %s: %d clips, %d captions", out, len(clips), len(captions))
    return fs
