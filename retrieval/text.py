"""The frozen sentence-transformer text encoder and the caption cleaning of the author's recipe."""

import contextlib
import hashlib
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
from retrieval.model_spec import WEIGHTS_REVISION

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
# a sentence-transformers pipeline, or a transformer alone (sentence-transformers adds mean pooling): one of
MODEL_FILES = ("modules.json", "config.json")
# one of these, in the folder or in the transformer's module folder modules.json names (`0_Transformer/`, as
# older sentence-transformers wrote it); sharded weights by their index; `models fetch` installs the first
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
_TRANSFORMER = "sentence_transformers.models.Transformer"
HOW_TO_GET = ("run `retrieval models fetch --only text` (it installs the text model in the models directory; "
              "`--from DIR` takes one carried in by hand), or name a sentence-transformers model's folder")


def transformer_folder(folder: Path) -> Path:
    """Where the folder's transformer (its config, tokenizer and weights) is: the module folder its
    modules.json names for the Transformer (`0_Transformer/` in older layouts), else the folder itself."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
    except (OSError, ValueError):
        return folder
    for module in modules if isinstance(modules, list) else ():
        if isinstance(module, dict) and module.get("type") == _TRANSFORMER and module.get("path"):
            return folder / str(module["path"])
    return folder


def weights_files(folder: Path) -> list[Path]:
    """The transformer's weights files (the first of WEIGHT_FILES there: a sharded one's index and its
    shards), or [] when it has none."""
    where = transformer_folder(folder)
    for name in WEIGHT_FILES:
        if (where / name).is_file():
            if not name.endswith(".index.json"):
                return [where / name]
            try:
                shards = json.loads((where / name).read_text()).get("weight_map", {}).values()
            except (OSError, ValueError, AttributeError):
                shards = []
            return [where / name, *(where / shard for shard in sorted(set(map(str, shards))))]
    return []


def model_folder_problem(folder: Path, *, pinned: str | None = None) -> str | None:
    """Why `folder` holds no sentence-transformers model, or None when it holds one: no such folder, or the
    files it lacks: modules.json or config.json, and one of WEIGHT_FILES where the transformer is
    (:func:`transformer_folder`). `pinned` holds it to the layout `models fetch` installs: modules.json,
    config.json and that weights file, all in the folder."""
    if not folder.is_dir():
        return "no such folder"
    if pinned is not None:
        missing = [name for name in (*MODEL_FILES, pinned) if not (folder / name).is_file()]
    else:
        missing = [] if any((folder / name).is_file() for name in MODEL_FILES) else [" or ".join(MODEL_FILES)]
        where = transformer_folder(folder)
        if not any((where / name).is_file() for name in WEIGHT_FILES):
            missing.append(" or ".join(WEIGHT_FILES) + (f" in {where.relative_to(folder)}/" if where != folder
                                                         else ""))
    return f"missing {', '.join(missing)}" if missing else None


def require_model_folder(folder: str | Path) -> Path:
    """`folder` when it holds a sentence-transformers model, else ModelNotFound saying what is missing and
    how to get it: the one check of a text model folder, whichever runtime loads it (torch, ONNX Runtime)."""
    folder = Path(folder).expanduser()
    problem = model_folder_problem(folder)
    if problem:
        raise ModelNotFound(f"no sentence-transformers model at {folder} ({problem}); {HOW_TO_GET}")
    return folder


FINGERPRINT_BYTES = 1 << 20  # of each weights file, its first and its last this many bytes are hashed


def weights_fingerprint(folder: Path) -> str | None:
    """A cheap fingerprint of the folder's weights (:func:`weights_files`): sha256 of each file's size and
    its first and last FINGERPRINT_BYTES, 16 hex digits; None when it has none. Hashing a 420 MB file
    whole at every load takes a second or more; fine-tunes of one model differ in every layer, so in these
    bytes too (a safetensors header, at the start, names each tensor's offsets)."""
    files = weights_files(folder)
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            digest.update(f"{path.name}:{size}:".encode())
            digest.update(f.read(FINGERPRINT_BYTES))
            if size > FINGERPRINT_BYTES:
                f.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
                digest.update(f.read(FINGERPRINT_BYTES))
    return digest.hexdigest()[:16]


def read_identity(folder: str | Path) -> tuple[str, str | None]:
    """(model id, revision) of a model folder, the one rule of the service, the library and both runtimes:
    its manifest's id and revision; without a manifest (a folder copied by hand) the folder's name, whichever
    path reaches it (`x` in the models directory, `models/x` and `/srv/models/x` are the model `x`, as the
    service's setting named it; files that recorded a path match it too: `retrieval.model_spec`), and as
    revision `weights-` and a fingerprint of its weights (:func:`weights_fingerprint`), so that two folders
    of one name (two fine-tunes, each in a folder `model`) are two models; files made before recorded no
    revision, which matches any fingerprint."""
    folder = Path(folder).expanduser()
    manifest = folder / MANIFEST
    if manifest.is_file():
        meta = json.loads(manifest.read_text())
        return meta.get("model_id", Path(os.path.abspath(folder)).name), meta.get("revision")
    fingerprint = weights_fingerprint(folder)
    return (Path(os.path.abspath(folder)).name,
            None if fingerprint is None else WEIGHTS_REVISION + fingerprint)


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
