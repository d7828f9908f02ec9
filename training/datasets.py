"""Readers for Clotho v2.1 and AudioCaps: a list of clips, each with its audio path and its captions.

Clotho v2.1 (https://zenodo.org/records/4783391), unpacked under one root::

    ROOT/clotho_captions_development.csv   file_name,caption_1,...,caption_5
    ROOT/clotho_captions_validation.csv
    ROOT/clotho_captions_evaluation.csv
    ROOT/development/*.wav                 (the three 7z archives unpacked into one folder per split)
    ROOT/validation/*.wav
    ROOT/evaluation/*.wav

AudioCaps v1 (https://github.com/cdjkim/audiocaps; the audio has to be cut from YouTube by the user)::

    ROOT/train.csv, ROOT/val.csv, ROOT/test.csv   audiocap_id,youtube_id,start_time,caption
    ROOT/train/<youtube_id>_<start_time>.<ext>    or ROOT/train/<youtube_id>.<ext>

Rows of AudioCaps that share ``youtube_id`` and ``start_time`` are one clip with several captions. Many
YouTube videos have gone since AudioCaps was made, so absent AudioCaps clips can be skipped on request.
"""

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from retrieval.errors import RetrievalError

log = logging.getLogger(__name__)

CLOTHO_SPLITS = ("development", "validation", "evaluation")
AUDIOCAPS_SPLITS = ("train", "val", "test")
CLOTHO_HEADER = ["file_name"] + [f"caption_{i}" for i in range(1, 6)]
AUDIOCAPS_HEADER = ["audiocap_id", "youtube_id", "start_time", "caption"]
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


class DatasetError(RetrievalError):
    """A dataset folder or captions file is missing, malformed, or lists clips that are not there."""


@dataclass(frozen=True)
class Clip:
    file_name: str  # the name the challenge's CSVs use for this clip
    path: Path
    captions: tuple[str, ...]


def read_csv_rows(path: Path, *, header: list[str]) -> list[dict[str, str]]:
    """Rows of a CSV whose first line must hold at least the ``header`` columns."""
    if not path.is_file():
        raise DatasetError(f"captions file not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in header if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path}: header {reader.fieldnames} lacks the columns {missing}")
        return list(reader)


def read_clotho_captions(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """``clotho_captions_<split>.csv`` -> [(file_name, (caption_1, ..., caption_5))] in file order."""
    out = []
    for n, row in enumerate(read_csv_rows(Path(path), header=CLOTHO_HEADER), start=2):
        captions = tuple((row[c] or "").strip() for c in CLOTHO_HEADER[1:])
        if not row["file_name"] or not all(captions):
            raise DatasetError(f"{path}, line {n}: a file name and five non-empty captions are needed")
        out.append((row["file_name"], captions))
    names = [name for name, _ in out]
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: some file names are listed twice")
    return out


def read_clotho(root: Path, split: str) -> list[Clip]:
    """The clips of one Clotho split, checking that every listed clip is on disk."""
    if split not in CLOTHO_SPLITS:
        raise DatasetError(f"Clotho split must be one of {CLOTHO_SPLITS}, not {split!r}")
    root = Path(root)
    rows = read_clotho_captions(root / f"clotho_captions_{split}.csv")
    audio_dir = root / split
    clips = [Clip(name, audio_dir / name, captions) for name, captions in rows]
    absent = [c.file_name for c in clips if not c.path.is_file()]
    if absent:
        raise DatasetError(f"{len(absent)} clips listed in clotho_captions_{split}.csv are not in "
                           f"{audio_dir}, e.g. {absent[:3]}")
    return clips


def find_audiocaps_audio(audio_dir: Path, youtube_id: str, start_time: str) -> Path | None:
    for stem in (f"{youtube_id}_{start_time}", youtube_id):
        for ext in AUDIO_EXTENSIONS:
            if (path := audio_dir / f"{stem}{ext}").is_file():
                return path
    return None


def read_audiocaps(root: Path, split: str, *, skip_missing: bool = False) -> list[Clip]:
    """The clips of one AudioCaps split; absent clips raise, or are skipped with a warning."""
    if split not in AUDIOCAPS_SPLITS:
        raise DatasetError(f"AudioCaps split must be one of {AUDIOCAPS_SPLITS}, not {split!r}")
    root = Path(root)
    grouped: dict[tuple[str, str], list[str]] = {}
    for n, row in enumerate(read_csv_rows(root / f"{split}.csv", header=AUDIOCAPS_HEADER), start=2):
        if not row["youtube_id"] or not (row["caption"] or "").strip():
            raise DatasetError(f"{root / f'{split}.csv'}, line {n}: youtube_id and caption are needed")
        grouped.setdefault((row["youtube_id"], row["start_time"]), []).append(row["caption"].strip())
    clips, absent = [], []
    for (youtube_id, start), captions in grouped.items():
        path = find_audiocaps_audio(root / split, youtube_id, start)
        if path is None:
            absent.append(f"{youtube_id}_{start}")
            continue
        clips.append(Clip(path.name, path, tuple(captions)))
    if absent and not skip_missing:
        raise DatasetError(f"{len(absent)} AudioCaps {split} clips are not in {root / split}, "
                           f"e.g. {absent[:3]} (pass --skip-missing to leave them out)")
    if absent:
        log.warning("left out %d of %d AudioCaps %s clips that are not on disk",
                    len(absent), len(grouped), split)
    return clips


def read_dataset(dataset: str, root: Path, split: str, *, skip_missing: bool = False) -> list[Clip]:
    if dataset == "clotho":
        return read_clotho(root, split)
    if dataset == "audiocaps":
        return read_audiocaps(root, split, skip_missing=skip_missing)
    raise DatasetError(f"dataset must be clotho or audiocaps, not {dataset!r}")
