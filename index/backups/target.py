"""What a restore checks before it writes: the backup's model is the configured one, and the target holds
nothing a restore would merge into or overwrite."""

from __future__ import annotations

from pathlib import Path

from index.backups.archive import BackupError
from index.backups.reader import Backup
from index.faiss.schema import stored_clips
from index.ingest.queue import JobQueue
from index.layout import AUDIO_DIR, CLIP_DB, QDRANT_DIR, QDRANT_STAGED, QDRANT_WINDOWS, QUEUE_FILE
from index.stores import StoreConfig
from retrieval.model_spec import PASST_FIELDS, ModelSpec


class RestoreRefused(BackupError):
    """The target cannot take this backup (it holds clips, or another model is configured); nothing was
    changed."""


def require_model(b: Backup, configured: ModelSpec) -> None:
    """CheckpointMismatch, saying what to configure, unless the backup's vectors belong to `configured`."""
    if b.spec.diff(configured, only=PASST_FIELDS):
        fix = ("its logits come from another PaSST tagger: configure the tagger it was made with "
               "(RETRIEVAL_PASST_WEIGHTS) to restore it")
    else:
        fix = ("configure the text model and head it was made with (RETRIEVAL_TEXT_MODEL, "
               "RETRIEVAL_CHECKPOINT) to restore it; afterwards `retrieval index reproject --checkpoint "
               "CKPT` moves it to another head")
    b.spec.require_match(configured, what=f"the backup {b.path}", fix=fix)


def target_holds(config: StoreConfig, *, jobs_file: str = QUEUE_FILE) -> list[str]:
    """What the target holds that a restore would have to merge or overwrite (nothing: [])."""
    data_dir = Path(config.data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        return [f"{data_dir} is a file, not a folder"]
    holds = []
    if config.backend == "faiss":
        n = stored_clips(data_dir / CLIP_DB)
        if n:
            holds.append(f"{n} clips")
    else:
        holds += _qdrant_holds(config)
    audio = data_dir / AUDIO_DIR
    if audio.is_dir():
        files = [p for p in audio.iterdir() if not p.name.startswith(".")]
        if files:
            holds.append(f"{len(files)} files in {AUDIO_DIR}/")
    queue_path = data_dir / jobs_file
    if queue_path.is_file():
        queue = JobQueue(queue_path)
        try:
            if depth := queue.depth():
                holds.append(f"{depth} uploads waiting in the ingest queue")
        finally:
            queue.close()
    return holds


def _qdrant_holds(config: StoreConfig) -> list[str]:
    from index.qdrant.open import connect

    if not config.qdrant_url and not (Path(config.data_dir) / QDRANT_DIR).is_dir():
        return []
    try:
        client = connect(config.qdrant_url, data_dir=Path(config.data_dir), api_key=config.qdrant_api_key)
    except RuntimeError as e:  # the embedded engine's folder lock
        raise RestoreRefused(f"the embedded Qdrant store in {config.data_dir} is open in another process "
                             f"(stop the service first): {e}") from None
    try:
        names = [c.name for c in client.get_collections().collections]
        alias = config.qdrant_collection
        aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
        ours = {aliases[a] for a in (alias, alias + QDRANT_WINDOWS) if a in aliases}  # clips, windows
        holds = []
        if alias in names:
            holds.append(f"a Qdrant collection named {alias!r} that is not an alias of this store")
        if alias in aliases and (n := client.count(aliases[alias], exact=True).count):
            holds.append(f"{n} clips")
        others = [n for n in names if n not in ours and not n.startswith(alias + QDRANT_STAGED)]
        if not config.qdrant_url and others:  # the folder moves as a whole: other collections would go
            holds.append(f"other Qdrant collections in {QDRANT_DIR}/ ({', '.join(sorted(others))})")
        return holds
    finally:
        client.close()
