"""Fill a collection from files and folders: hash, skip what is stored, decode, tag, project, add.

Every add commits on its own, so an interrupted run keeps what it did and the next run skips it (by content
hash) and goes on where it stopped. A file that fails is reported with its reason and the run goes on.
"""

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from index.collection import Collection
from retrieval.errors import CheckpointMismatch, ModelNotFound, RetrievalError

log = logging.getLogger(__name__)

# what a folder walk picks up; files named on the command line are tried whatever their name
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
                            ".aifc", ".au", ".w64", ".caf"})
# per-file failures; anything else (the database, a missing model) stops the run
FILE_ERRORS = (RetrievalError, OSError, ValueError, RuntimeError)
FATAL_ERRORS = (ModelNotFound, CheckpointMismatch)
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"


@dataclass
class BuildReport:
    added: int = 0
    skipped: int = 0  # already indexed (same content)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    seconds: float = 0.0

    @property
    def seen(self) -> int:
        return self.added + self.skipped + len(self.failed)


def find_audio(paths: Iterable[Path], *, recursive: bool = False) -> tuple[list[Path], list[Path]]:
    """(files to index in a stable order without repeats, paths that do not exist). Folders give their
    audio files (by suffix), with sub-folders when recursive."""
    found: dict[Path, None] = {}
    missing = []
    for path in map(Path, paths):
        if path.is_file():
            found[path.resolve()] = None
        elif path.is_dir():
            walk = path.rglob("*") if recursive else path.iterdir()
            for f in sorted(walk):
                if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file():
                    found[f.resolve()] = None
        else:
            missing.append(path)
    return list(found), missing


def index_paths(collection: Collection, paths: Iterable[Path], *, recursive: bool = False,
                progress: bool = True) -> BuildReport:
    """Add every audio file under `paths` to the collection; see the module docstring."""
    files, missing = find_audio(paths, recursive=recursive)
    report = BuildReport(failed=[(str(p), "no such file or folder") for p in missing])
    start = time.perf_counter()
    with logging_redirect_tqdm(), tqdm(total=len(files), unit="clip", desc="index", bar_format=BAR_FORMAT,
                                       disable=not progress) as bar:
        for path in files:
            _add_one(collection, path, report)
            bar.update()
            bar.set_postfix(added=report.added, skipped=report.skipped, failed=len(report.failed),
                            refresh=False)
    report.seconds = time.perf_counter() - start
    log.info("indexed %d new clips, skipped %d already indexed, %d failed, in %.1f s",
             report.added, report.skipped, len(report.failed), report.seconds)
    return report


def _add_one(collection: Collection, path: Path, report: BuildReport) -> None:
    try:
        _, created = collection.add_path(path)
    except FILE_ERRORS as e:
        if isinstance(e, FATAL_ERRORS):
            raise
        reason = str(e) if isinstance(e, RetrievalError) else f"{type(e).__name__}: {e}"
        log.warning("skipping %s: %s", path, reason)
        report.failed.append((str(path), reason))
        return
    if created:
        report.added += 1
    else:
        report.skipped += 1
