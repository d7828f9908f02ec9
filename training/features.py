"""The feature file: PaSST logits and text embeddings of one dataset split, computed once.

A feature file ``NAME.safetensors`` holds four tensors:

    logits        (N, 527) float32   PaSST logits of the N clips (mean over windows for long clips)
    text          (M, D)   float32   unit sentence embeddings of the M cleaned captions
    caption_clip  (M,)     int64     the clip index (row of ``logits``) each caption describes
    tag_text      (527, D) float32   embeddings of the AudioSet names from the same text model, as is

and its sidecar ``NAME.json`` says what they are: ``format``, ``dataset``, ``split``, ``clips`` (N file
names), ``captions`` (M raw captions), ``text_model``, ``text_model_revision``, ``dim``, ``passt_arch`` and
``windowing``. Training and evaluation need nothing else, so users can also write such files themselves.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from retrieval.checkpoint import HeadConfig
from retrieval.config import DEFAULT_LAMBDA, N_TAGS
from retrieval.errors import CheckpointMismatch, RetrievalError

log = logging.getLogger(__name__)

FORMAT = "retrieval-features/1"
TENSORS = ("logits", "text", "caption_clip", "tag_text")
MODEL_KEYS = ("text_model", "text_model_revision", "dim", "passt_arch", "windowing")


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

    def models(self) -> dict:
        """The models that produced these features; two files must agree on them to be used together."""
        return {k: self.meta[k] for k in MODEL_KEYS}

    def head_config(self, lam: float = DEFAULT_LAMBDA) -> HeadConfig:
        return HeadConfig(lam=lam, n_tags=N_TAGS, **self.models())

    def check(self) -> None:
        """Raise :class:`FeatureFileError` unless shapes, dtypes and sidecar agree."""
        n, m = len(self.meta.get("clips", [])), len(self.meta.get("captions", []))
        d = self.meta.get("dim")
        want = {"logits": ((n, N_TAGS), np.float32), "text": ((m, d), np.float32),
                "caption_clip": ((m,), np.int64), "tag_text": ((N_TAGS, d), np.float32)}
        for name, (shape, dtype) in want.items():
            arr = getattr(self, name)
            if arr.shape != shape or arr.dtype != dtype:
                raise FeatureFileError(f"{name} must be {shape} {np.dtype(dtype).name} for {n} clips and "
                                       f"{m} captions of dim {d}, got {arr.shape} {arr.dtype}")
        if m and (self.caption_clip.min() < 0 or self.caption_clip.max() >= n):
            raise FeatureFileError(f"caption_clip must index the {n} clips")
        missing = [k for k in ("format", *MODEL_KEYS) if k not in self.meta]
        if missing or self.meta["format"] != FORMAT:
            raise FeatureFileError(f"the sidecar must be {FORMAT} with {MODEL_KEYS}; lacks {missing}")


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_features(path: str | Path, fs: FeatureSet) -> None:
    """Write the tensors and the sidecar, each atomically (checked first: a bad set writes nothing)."""
    fs.check()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: np.ascontiguousarray(getattr(fs, k)) for k in TENSORS}, str(tmp))
    tmp.replace(path)
    side, side_tmp = sidecar_path(path), sidecar_path(path).with_suffix(".json.tmp")
    side_tmp.write_text(json.dumps(fs.meta, ensure_ascii=False, indent=1))
    side_tmp.replace(side)


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
    if a.models() != b.models():
        raise CheckpointMismatch(f"feature files made with different models: {a.models()} vs {b.models()}")


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial.npz")


def load_partial(path: Path, *, tagger_desc: dict) -> dict[str, np.ndarray]:
    """Logits already computed by an interrupted run with the same tagger: file name -> (527,)."""
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        if json.loads(str(z["tagger"])) != tagger_desc:
            raise CheckpointMismatch(f"{path} was made with another tagger; delete it to start again")
        return dict(zip(z["names"].tolist(), z["logits"], strict=True))


def save_partial(path: Path, done: dict[str, np.ndarray], *, tagger_desc: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    logits = np.stack(list(done.values())) if done else np.zeros((0, N_TAGS), np.float32)
    with open(tmp, "wb") as f:
        np.savez(f, names=np.array(list(done), dtype=str), logits=logits, tagger=json.dumps(tagger_desc))
    tmp.replace(path)


def clip_logits(clips, *, tagger, out: Path, checkpoint_every: int = 50,
                max_duration_s: float | None = None) -> np.ndarray:
    """(N, 527) logits of the clips, resuming from and saving to ``out``'s partial file."""
    from retrieval.audio import decode_audio

    partial, desc = partial_path(out), tagger.describe()
    done = load_partial(partial, tagger_desc=desc)
    todo = [c for c in clips if c.file_name not in done]
    if done:
        log.info("resuming: %d of %d clips already have logits in %s",
                 len(clips) - len(todo), len(clips), partial)
    try:
        for i, clip in enumerate(tqdm(todo, desc="PaSST logits", unit="clip", dynamic_ncols=True), start=1):
            wave = decode_audio(clip.path, max_duration_s=max_duration_s, name=clip.file_name).wave
            done[clip.file_name] = tagger.logits(wave)  # (527,)
            if i % checkpoint_every == 0:
                save_partial(partial, done, tagger_desc=desc)
    finally:  # an interrupt or a bad file keeps what was computed
        if todo:
            save_partial(partial, done, tagger_desc=desc)
    return np.stack([done[c.file_name] for c in clips]).astype(np.float32)  # (N, 527)


def extract_features(clips, *, tagger, text, out: str | Path, dataset: str, split: str,
                     checkpoint_every: int = 50, max_duration_s: float | None = None) -> FeatureSet:
    """PaSST logits of every clip, embeddings of every cleaned caption and of the tag names, to ``out``."""
    from retrieval.pipeline import tag_text_embeddings

    out = Path(out)
    if not clips:
        raise FeatureFileError("no clips to extract features from")
    out.parent.mkdir(parents=True, exist_ok=True)
    logits = clip_logits(clips, tagger=tagger, out=out, checkpoint_every=checkpoint_every,
                         max_duration_s=max_duration_s)
    captions = [cap for c in clips for cap in c.captions]
    caption_clip = np.repeat(np.arange(len(clips)), [len(c.captions) for c in clips]).astype(np.int64)  # (M,)
    log.info("encoding %d captions and %d tag names", len(captions), N_TAGS)
    meta = {"format": FORMAT, "dataset": dataset, "split": split, "clips": [c.file_name for c in clips],
            "captions": captions, **text.describe(), **tagger_models(tagger)}
    fs = FeatureSet(logits=logits, text=text.encode(captions, clean=True, progress=len(captions) > 1000),
                    caption_clip=caption_clip, tag_text=tag_text_embeddings(text).numpy(), meta=meta)
    save_features(out, fs)
    partial_path(out).unlink(missing_ok=True)
    log.info("wrote %s: %d clips, %d captions", out, len(clips), len(captions))
    return fs


def tagger_models(tagger) -> dict:
    desc = dict(tagger.describe())
    return {"passt_arch": desc.pop("passt_arch"), "windowing": desc}
