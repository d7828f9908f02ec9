"""The whole model: audio files, decoded audio or text in, unit vectors of one shared space out.

A :class:`Retriever` is a text encoder, a head checkpoint and, when audio must be encoded, a PaSST tagger;
text search works without the tagger (it is never built for it). Its :class:`ModelSpec` names all three:
stores record it and refuse vectors of another one.
"""

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from retrieval.audio import DecodedAudio
from retrieval.checkpoint import Checkpoint
from retrieval.config import SAMPLE_RATE, Windowing
from retrieval.contracts import SentenceEncoder, Tagger
from retrieval.durable import atomic_path
from retrieval.errors import ModelNotFound, refuse_one_for_many
from retrieval.extract import AudioLimits, Extraction, decode, extract_many
from retrieval.labels import audioset_labels, top_tags
from retrieval.model_spec import ENCODER_FIELDS, PASST_FIELDS, ZERO_SHOT, ModelSpec

log = logging.getLogger(__name__)


def text_spec(passt: ModelSpec, text: SentenceEncoder) -> ModelSpec:
    """The encoders' spec: the PaSST part of `passt` with the text model of `text`."""
    return replace(passt.encoders(), text_model=text.model_id, text_model_revision=text.revision,
                   dim=text.dim)


def tag_text_embeddings(text: SentenceEncoder) -> torch.Tensor:
    """(527, D) embeddings of the AudioSet names, as is (no caption cleaning)."""
    return torch.from_numpy(text.encode(list(audioset_labels()), clean=False))


def cached_tag_text_embeddings(text: SentenceEncoder, *, cache_dir: Path | None, stamp: dict,
                               full_precision: Callable[[], SentenceEncoder] | None = None) -> torch.Tensor:
    """The tag-name embeddings, kept in `cache_dir` (None: computed, not kept): encoding 527 names costs
    seconds on a CPU at every start otherwise. The key is the text model's identity plus `stamp` (its weights
    file's size and time). They are always the fp32 model's: a lower-precision `text` gets them from
    `full_precision()`, so the zero-shot model (and the index's vectors) do not depend on the query
    precision."""
    identity = {"text_model": text.model_id, "text_model_revision": text.revision, "dim": text.dim, **stamp}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    path = None if cache_dir is None else Path(cache_dir) / f"tag-text-{key}.safetensors"
    if path is not None and path.is_file():
        try:
            E = load_file(str(path))["tag_text"]
            if E.shape == (len(audioset_labels()), text.dim):
                return E
        except Exception as e:  # a damaged cache file is only a cache: recompute it
            log.warning("recomputing the tag-name embeddings: %s is unreadable (%s)", path, e)
    if text.precision != "fp32":
        if full_precision is None:
            raise ValueError(f"a {text.precision} text encoder needs its fp32 model for the tag names")
        log.info("encoding the tag names with the fp32 model (the query encoder is %s)", text.precision)
        text = full_precision()
    E = tag_text_embeddings(text)
    if path is not None:
        try:
            with atomic_path(path) as tmp:
                save_file({"tag_text": E.contiguous()}, str(tmp))
        # a read-only data directory, a full disk (safetensors says so as its own error): only the next
        # start pays the encoding again; atomic_path has removed the part written
        except (OSError, SafetensorError) as e:
            log.warning("the tag-name embeddings are not kept in %s: %s", cache_dir, e)
    return E


def mono_samples(wave: np.ndarray) -> np.ndarray:
    """`wave` as (n,) float32 samples, or why it cannot be audio: TypeError for samples that are not floats,
    ValueError for more than one channel, no samples, or NaN or infinite ones."""
    if not isinstance(wave, np.ndarray):
        raise TypeError(f"samples are a numpy array of floats, not {type(wave).__name__}")
    if not np.issubdtype(wave.dtype, np.floating):
        raise TypeError(f"samples are floats in [-1, 1], not {wave.dtype} (int16 PCM: divide by 32768)")
    if wave.ndim != 1:
        raise ValueError(f"samples are one channel, (n,), not {wave.shape}: mix a (n, channels) array down "
                         "(its mean over axis 1) first")
    if wave.size == 0:
        raise ValueError("no samples")
    if not np.isfinite(wave).all():
        raise ValueError("the samples hold NaN or infinite values")
    return wave.astype(np.float32, copy=False)


def check_texts(queries: Sequence[str]) -> None:
    """TypeError for one string where a list of them is meant, or an item that is not a string; ValueError
    for one holding a lone surrogate (bytes a file name or argv could not decode)."""
    refuse_one_for_many(queries, str, "queries")
    for q in queries:
        if not isinstance(q, str):
            raise TypeError(f"a query is a string, not {type(q).__name__}")
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in q):
            raise ValueError(f"the query {q!r} holds a lone surrogate, which is not text")


class Retriever:
    """Text encoder + head (+ PaSST tagger for audio); checks at construction that they belong together."""

    def __init__(self, text: SentenceEncoder, ckpt: Checkpoint, *, passt: ModelSpec,
                 tagger: Tagger | None = None):
        self.spec = text_spec(passt, text).with_head(ckpt.spec.head or ZERO_SHOT, ckpt.head.lam)
        ckpt.spec.require_match(self.spec, only=ENCODER_FIELDS, what="the head checkpoint",
                                fix="use the text model and PaSST the head was trained with")
        if tagger is not None:
            tagger.spec.require_match(self.spec, only=PASST_FIELDS, what="the PaSST tagger")
        self.tagger = tagger
        self.text = text
        self.ckpt = ckpt
        self.head = ckpt.head.to("cpu").eval()

    def with_checkpoint(self, ckpt: Checkpoint) -> "Retriever":
        """The same encoders with another head (re-projection)."""
        return Retriever(self.text, ckpt, passt=self.spec, tagger=self.tagger)

    def _tagger(self) -> Tagger:
        if self.tagger is None:
            raise ModelNotFound("this model was built without its PaSST tagger (text search only)")
        return self.tagger

    def extract_many(self, clips: Sequence[DecodedAudio], *, moment_windowing: Windowing | None = None,
                     on_batch: Callable[[list[int]], None] | None = None) -> list[Extraction]:
        """Decoded clips through this model's PaSST together (:func:`retrieval.extract.extract_many`)."""
        return extract_many(clips, self._tagger(), moment_windowing=moment_windowing, on_batch=on_batch)

    def logits(self, wave: np.ndarray) -> np.ndarray:
        """(n,) float samples in [-1, 1], mono, at 32 kHz -> (527,) PaSST logits (the mean over windows).
        TypeError for samples that are not floats (int16 PCM: divide by 32768 first), ValueError for an
        array that is not one channel of finite samples, or holds none."""
        clip = DecodedAudio(mono_samples(wave), SAMPLE_RATE, channels=1, format="")  # no container
        return self.extract_many([clip])[0].logits

    @torch.inference_mode()
    def project(self, logits: np.ndarray) -> np.ndarray:
        """(N, 527) logits -> (N, D) unit vectors through the head and the tag fusion."""
        x = torch.as_tensor(np.asarray(logits, dtype=np.float32)).reshape(-1, self.head.n_tags)
        return self.head.encode_audio(x).numpy()

    def encode_files(self, paths: Sequence[str | Path], *, limits: AudioLimits = AudioLimits(),
                     batch_files: int = 16) -> np.ndarray:
        """(N,) audio files (WAV, FLAC, OGG, MP3) -> (N, D) unit vectors, in their order: each clip's mean
        PaSST logits through the head. `batch_files` clips are decoded and tagged together (their windows
        share forward passes); AudioDecodeError names a file that is not readable audio."""
        refuse_one_for_many(paths, (str, Path), "encode_files' paths")
        self._tagger()  # a text-only model says so before any file is decoded
        step = max(1, batch_files)
        vectors = [np.empty((0, self.head.dim), dtype=np.float32)]
        for start in range(0, len(paths), step):
            clips = [decode(p, limits=limits) for p in paths[start:start + step]]
            logits = np.stack([x.logits for x in self.extract_many(clips)])  # (b, 527)
            vectors.append(self.project(logits))
        return np.concatenate(vectors)

    def encode_audio(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n,) float samples in [-1, 1], mono, at 32 kHz -> ((D,) vector, (527,) logits); the errors of
        :meth:`logits`."""
        logits = self.logits(wave)
        return self.project(logits[None])[0], logits

    @torch.inference_mode()
    def encode_text(self, queries: Sequence[str]) -> np.ndarray:
        """(M,) queries -> (M, D) unit vectors in the audio space. TypeError for one string (not a list of
        them) or an item that is not a string, ValueError for one holding a lone surrogate (no text)."""
        check_texts(queries)
        emb = torch.from_numpy(self.text.encode(list(queries)))
        return self.head.encode_text(emb).numpy()

    def top_tags(self, logits: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """The k AudioSet tags of highest probability (sigmoid of the logits), as (label, probability),
        most probable first; ValueError for a negative k."""
        if k < 0:
            raise ValueError(f"k must be >= 0, not {k}")
        return top_tags(logits, k)
