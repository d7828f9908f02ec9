"""The frozen sentence-transformer text encoder and the caption cleaning of the author's recipe."""

import contextlib
import json
import logging
import os
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
MODEL_FILES = ("modules.json", "config.json")  # a sentence-transformers pipeline and its transformer
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # either one; `models fetch` installs the first
HOW_TO_GET = ("run `retrieval models fetch --only text` (it installs the text model in the models directory; "
              "`--from DIR` takes one carried in by hand), or name a sentence-transformers model's folder")


def model_folder_problem(folder: Path, *, weights: tuple[str, ...] = WEIGHT_FILES) -> str | None:
    """Why `folder` holds no sentence-transformers model (no such folder, or the files it lacks of the
    pipeline, the transformer's config and one of `weights`), or None when it holds one."""
    if not folder.is_dir():
        return "no such folder"
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in weights):
        missing.append(" or ".join(weights))
    return f"missing {', '.join(missing)}" if missing else None


def require_model_folder(folder: str | Path) -> Path:
    """`folder` when it holds a sentence-transformers model, else ModelNotFound saying what is missing and
    how to get it: the one check of a text model folder, whichever runtime loads it (torch, ONNX Runtime)."""
    folder = Path(folder).expanduser()
    problem = model_folder_problem(folder)
    if problem:
        raise ModelNotFound(f"no sentence-transformers model at {folder} ({problem}); {HOW_TO_GET}")
    return folder


def read_identity(folder: str | Path) -> tuple[str, str | None]:
    """(model id, revision) of a model folder, the one rule of the service, the library and both runtimes:
    its manifest's id and revision; without a manifest (a folder copied by hand) the folder's name and no
    revision, whichever path reaches it (`x` in the models directory, `models/x` and `/srv/models/x` are the
    model `x`, as the service's setting named it; files that recorded a path match it too:
    `retrieval.model_spec`)."""
    folder = Path(folder).expanduser()
    manifest = folder / MANIFEST
    meta = json.loads(manifest.read_text()) if manifest.is_file() else {}
    return meta.get("model_id", Path(os.path.abspath(folder)).name), meta.get("revision")


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
        """Load from a local folder, or (``allow_download``) from the model hub by id at ``revision``.

        A folder's model is named by :func:`read_identity` unless ``model_id`` names it."""
        local = Path(path_or_id).expanduser()
        if not allow_download or local.is_dir():
            require_model_folder(local)
        if model_id is None:
            model_id, revision = read_identity(local) if local.is_dir() else (str(path_or_id), revision)
        from sentence_transformers import SentenceTransformer  # slow import: after the cheap check

        source = str(local) if local.is_dir() else str(path_or_id)
        with quiet_loading(local.is_dir()):
            model = SentenceTransformer(source, revision=None if local.is_dir() else revision,
                                        device=str(resolve_device(device)),
                                        local_files_only=not allow_download)
        return cls(model, model_id=model_id, revision=revision)

    def encode(self, sentences: list[str], *, batch_size: int = 64, clean: bool = True,
               progress: bool = False) -> np.ndarray:
        """(M,) sentences -> (M, D) float32 unit vectors."""
        if clean:
            sentences = [clean_caption(s) for s in sentences]
        out = self.model.encode(sentences, batch_size=batch_size, convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=progress)
        return np.asarray(out, dtype=np.float32).reshape(len(sentences), self.dim)
