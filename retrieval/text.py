"""The frozen sentence-transformer text encoder and the caption cleaning of the author's recipe."""

import contextlib
import json
import logging
import re
import string
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from retrieval.device import resolve_device
from retrieval.errors import ModelNotFound

log = logging.getLogger(__name__)

_CONTRACTIONS = {
    "won't": "will not", "can't": "cannot", "shan't": "shall not", "ain't": "am not",
    "let's": "let us", "y'all": "you all",
}
_SUFFIXES = (
    ("n't", " not"), ("'re", " are"), ("'ve", " have"), ("'ll", " will"), ("'d", " would"), ("'m", " am"),
)
_PRONOUN_IS = {"it", "he", "she", "that", "there", "here", "what", "who", "where", "how", "this"}
_PUNCT = str.maketrans("", "", string.punctuation)


def _expand(token: str) -> str:
    t = token.replace("\u2019", "'")
    low = t.lower()
    if low in _CONTRACTIONS:
        out = _CONTRACTIONS[low]
        return out[0].upper() + out[1:] if t[:1].isupper() else out
    for suffix, full in _SUFFIXES:
        if low.endswith(suffix) and len(t) > len(suffix):
            return t[: -len(suffix)] + full
    if low.endswith("'s") and low[:-2] in _PRONOUN_IS:
        return t[:-2] + " is"
    return t


def is_blank(text: str) -> bool:
    """Whether the text shows nothing: only whitespace and invisible characters (zero-width spaces,
    direction marks and other format characters, which `str.strip` keeps)."""
    return not any(ch.isprintable() and not ch.isspace() for ch in text)


def clean_caption(text: str) -> str:
    """Collapse whitespace, expand contractions, dashes to spaces, strip ASCII punctuation, keep case.

    A possessive "'s" after a noun is not a contraction: its apostrophe is stripped with the punctuation
    ("the dog's bark" -> "the dogs bark"), as in the author's pipeline.
    """
    text = re.sub(r"\s+", " ", text).strip()
    text = " ".join(_expand(t) for t in text.split(" "))
    text = re.sub(r"-+", " ", text)
    text = text.translate(_PUNCT)
    return re.sub(r"\s+", " ", text).strip()


MANIFEST = "retrieval-model.json"  # written by `retrieval models fetch` into the model's folder


def read_identity(folder: Path, default_id: str) -> tuple[str, str | None]:
    """(model id, revision) of an installed model folder, from its manifest; without one the model is
    named `default_id` and its revision is unknown."""
    manifest = Path(folder) / MANIFEST
    meta = json.loads(manifest.read_text()) if manifest.is_file() else {}
    return meta.get("model_id", default_id), meta.get("revision")


@contextlib.contextmanager
def quiet_loading(local: bool = True) -> Iterator[None]:
    """transformers' "Loading weights" bar left out while a local folder loads (it tells nothing, on every
    command and at every start); a download keeps its bars."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    if local:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if local and shown:
            hf_logging.enable_progress_bar()


class TextEncoder:
    """A sentence-transformers model giving L2-normalised sentence embeddings (mean pooling)."""

    def __init__(self, model, *, model_id: str, revision: str | None):
        self.model = model
        self.model_id = model_id
        self.revision = revision
        self.dim = int(model.get_embedding_dimension())
        self.precision = "fp32"

    @classmethod
    def load(cls, path_or_id: str | Path, *, model_id: str | None = None, revision: str | None = None,
             device: str = "auto", allow_download: bool = False) -> "TextEncoder":
        """Load from a local folder, or (``allow_download``) from the model hub by id at ``revision``."""
        local = Path(path_or_id).expanduser()
        if not local.is_dir() and not allow_download:
            raise ModelNotFound(
                f"text model not found at {local}; run `retrieval models fetch` (or set RETRIEVAL_TEXT_MODEL "
                "to a local sentence-transformers folder)"
            )
        if local.is_dir() and not any((local / name).is_file() for name in ("modules.json", "config.json")):
            raise ModelNotFound(f"{local} holds no sentence-transformers model (no modules.json or "
                                "config.json); run `retrieval models fetch`, or name the model's own folder")
        from sentence_transformers import SentenceTransformer  # slow import: after the cheap check

        source = str(local) if local.is_dir() else str(path_or_id)
        with quiet_loading(local.is_dir()):
            model = SentenceTransformer(source, revision=None if local.is_dir() else revision,
                                        device=str(resolve_device(device)),
                                        local_files_only=not allow_download)
        return cls(model, model_id=model_id or str(path_or_id), revision=revision)

    def encode(self, sentences: list[str], *, batch_size: int = 64, clean: bool = True,
               progress: bool = False) -> np.ndarray:
        """(M,) sentences -> (M, D) float32 unit vectors."""
        if clean:
            sentences = [clean_caption(s) for s in sentences]
        out = self.model.encode(sentences, batch_size=batch_size, convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=progress)
        return np.asarray(out, dtype=np.float32).reshape(len(sentences), self.dim)
