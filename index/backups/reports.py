"""What a backup wrote and what a restore put back: the counts the command line reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BackupReport:
    path: Path
    clips: int = 0
    jobs: int = 0
    uploads: int = 0  # uploaded clips whose bytes are in the backup
    referenced: int = 0  # clips indexed from folders (copied only with_referenced)
    referenced_copied: int = 0
    left_out: int = 0  # clips deleted while the backup ran
    clips_with_windows: int = 0  # clips whose windows and peaks are in the backup
    windows: int = 0  # their windows
    problems: list[dict] = field(default_factory=list)  # uploads found missing, unreadable or changed
    size: int = 0
    seconds: float = 0.0


@dataclass
class RestoreReport:
    target: str
    clips: int = 0
    uploads: int = 0
    jobs: int = 0
    jobs_without_bytes: int = 0
    uploads_without_audio: list[int] = field(default_factory=list)  # uploaded clips backed up without bytes
    referenced_missing: list[int] = field(default_factory=list)  # clip ids whose indexed file is not here
    referenced_written: int = 0
    clips_with_windows: int = 0  # clips whose windows and peaks were restored
    windows: int = 0  # their windows
    # the format of a backup made before backups held windows (1 to 4): its clips restore without them; None
    # for one that holds them
    without_windows: str | None = None
    problems: list[dict] = field(default_factory=list)  # what the backup itself recorded
    # what the target holds after this backup's restore that was stopped while it moved into place was
    # finished (nothing else done); None for a restore
    finished: str | None = None
    seconds: float = 0.0
