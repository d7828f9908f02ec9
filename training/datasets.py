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

Rows of AudioCaps that share ``youtube_id`` and ``start_time`` are one clip with several captions; a file
named by the video alone is taken only for a video the split cuts once (which cut it holds is unknown). Many
YouTube videos have gone since AudioCaps was made, so absent AudioCaps clips can be skipped on request.

Moment retrieval sets (CASTELLA, https://github.com/line/lighthouse ``data/castella/``; Clotho-Moment,
``data/clotho_moment/``) are JSON lines, one query a line, with the audio named by ``vid``::

    {"qid": "--0w1YA1Hm4_2", "query": "A phone beeps as a call is made", "duration": 299,
     "vid": "--0w1YA1Hm4", "relevant_windows": [[72, 76]]}
    AUDIO_DIR/<vid>.<ext>

Their clips are the distinct ``vid`` in file order, each captioned by its queries.
"""

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval import text_files
from retrieval.errors import RetrievalError
from retrieval.file_types import AUDIO_TYPES
from retrieval.text_files import CsvRow, open_text

log = logging.getLogger(__name__)

CLOTHO_SPLITS = ("development", "validation", "evaluation")
AUDIOCAPS_SPLITS = ("train", "val", "test")
CLOTHO_HEADER = ["file_name"] + [f"caption_{i}" for i in range(1, 6)]
AUDIOCAPS_HEADER = ["audiocap_id", "youtube_id", "start_time", "caption"]


class DatasetError(RetrievalError):
    """A dataset folder or captions file is missing, malformed, or lists clips that are not there."""


@dataclass(frozen=True)
class Clip:
    file_name: str  # the name the challenge's CSVs use for this clip
    path: Path
    captions: tuple[str, ...]


def read_csv_rows(path: Path, *, header: list[str], what: str = "captions file") -> list[CsvRow]:
    """Rows of a CSV whose first line must hold at least the ``header`` columns (`what`: the file's name in
    the error when it is missing), each with the file's line it starts on (`row.line`): the users' CSV reader
    (retrieval/text_files.py `read_csv_rows`), its errors DatasetError. A row of more fields than the header
    is refused, not cut short; one of fewer reads its missing fields as empty."""
    return text_files.read_csv_rows(path, columns=header, what=what, error=DatasetError)


def read_clotho_captions(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """``clotho_captions_<split>.csv`` -> [(file_name, (caption_1, ..., caption_5))] in file order."""
    out = []
    for row in read_csv_rows(Path(path), header=CLOTHO_HEADER):
        captions = tuple(row[c].strip() for c in CLOTHO_HEADER[1:])
        if not row["file_name"] or not all(captions):
            raise DatasetError(f"{path}, line {row.line}: a file name and five non-empty captions are needed")
        out.append((row["file_name"], captions))
    twice = sorted(name for name, n in Counter(name for name, _ in out).items() if n > 1)
    if twice:
        raise DatasetError(f"{path}: {len(twice)} file names are listed twice or more, e.g. {twice[:3]}")
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


def find_audio(audio_dir: Path, *stems: str) -> Path | None:
    """The first ``audio_dir/<stem><ext>`` on disk, stems in the order given."""
    for stem in stems:
        for ext in AUDIO_TYPES:
            if (path := audio_dir / f"{stem}{ext}").is_file():
                return path
    return None


def read_audiocaps(root: Path, split: str, *, skip_missing: bool = False) -> list[Clip]:
    """The clips of one AudioCaps split; absent clips raise, or are skipped with a warning."""
    if split not in AUDIOCAPS_SPLITS:
        raise DatasetError(f"AudioCaps split must be one of {AUDIOCAPS_SPLITS}, not {split!r}")
    root = Path(root)
    grouped: dict[tuple[str, str], list[str]] = {}
    for row in read_csv_rows(root / f"{split}.csv", header=AUDIOCAPS_HEADER):
        if not row["youtube_id"] or not row["caption"].strip():
            raise DatasetError(f"{root / f'{split}.csv'}, line {row.line}: youtube_id and caption are needed")
        grouped.setdefault((row["youtube_id"], row["start_time"]), []).append(row["caption"].strip())
    starts: dict[str, int] = {}
    for youtube_id, _ in grouped:
        starts[youtube_id] = starts.get(youtube_id, 0) + 1
    clips, absent, ambiguous = [], [], []
    for (youtube_id, start), captions in grouped.items():
        # a file named by its video alone is a clip only when the split cuts that video once
        alone = (youtube_id,) if starts[youtube_id] == 1 else ()
        path = find_audio(root / split, f"{youtube_id}_{start}", *alone)
        if path is None:
            absent.append(f"{youtube_id}_{start}")
            if not alone and find_audio(root / split, youtube_id) is not None:
                ambiguous.append(youtube_id)
            continue
        clips.append(Clip(path.name, path, tuple(captions)))
    if ambiguous:
        note = (f"; {len(set(ambiguous))} of them, e.g. {sorted(set(ambiguous))[:3]}, are files named by the "
                f"video alone while {split}.csv cuts that video at several start times: name each cut "
                "<youtube_id>_<start_time>")
    else:
        note = ""
    if absent and not skip_missing:
        raise DatasetError(f"{len(absent)} AudioCaps {split} clips are not in {root / split}, "
                           f"e.g. {absent[:3]} (pass --skip-missing to leave them out){note}")
    if absent:
        log.warning("left out %d of %d AudioCaps %s clips that are not on disk",
                    len(absent), len(grouped), split)
    return clips


MOMENT_KEYS = ("qid", "query", "duration", "vid", "relevant_windows")


@dataclass(frozen=True)
class MomentQuery:
    qid: str | int
    query: str
    vid: str
    duration: float  # seconds, as annotated (CASTELLA's relevant windows may end up to a second past it)
    relevant: np.ndarray  # (G, 2) [start, end] seconds


def is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def parse_moment_query(line: str, where: str) -> MomentQuery:
    """One JSON line -> a query, or a DatasetError that says what is wrong ``where``."""
    try:
        d = json.loads(line)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{where}: not JSON ({e.msg})") from None
    if not isinstance(d, dict):
        raise DatasetError(f"{where}: a JSON object with {list(MOMENT_KEYS)} expected")
    missing = [k for k in MOMENT_KEYS if k not in d]
    if missing:
        raise DatasetError(f"{where}: lacks {missing}")
    if not (isinstance(d["qid"], str | int) and not isinstance(d["qid"], bool)):
        raise DatasetError(f"{where}: qid must be a string or an integer")
    for key in ("query", "vid"):
        if not isinstance(d[key], str) or not d[key].strip():
            raise DatasetError(f"{where}: {key} must be a non-empty string")
    if not is_number(d["duration"]) or d["duration"] <= 0:
        raise DatasetError(f"{where}: duration must be a positive number of seconds")
    windows = d["relevant_windows"]
    if (not isinstance(windows, list) or not windows
            or not all(isinstance(w, list) and len(w) == 2 and all(map(is_number, w)) for w in windows)):
        raise DatasetError(f"{where}: relevant_windows must be a non-empty list of [start, end] numbers")
    relevant = np.array(windows, dtype=np.float64)  # (G, 2)
    if (relevant[:, 0] < 0).any() or (relevant[:, 1] <= relevant[:, 0]).any():
        raise DatasetError(f"{where}: every relevant window needs 0 <= start < end, got {windows}")
    return MomentQuery(d["qid"], d["query"], d["vid"], float(d["duration"]), relevant)


def read_moment_queries(path: Path) -> list[MomentQuery]:
    """The queries of a JSON-lines annotation file, in file order (blank lines are skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"annotations file not found: {path}")
    queries: list[MomentQuery] = []
    seen: dict[str | int, int] = {}
    with open_text(path) as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            q = parse_moment_query(line, f"{path}, line {n}")
            if q.qid in seen:
                raise DatasetError(f"{path}, line {n}: qid {q.qid!r} is also on line {seen[q.qid]}")
            seen[q.qid] = n
            queries.append(q)
    if not queries:
        raise DatasetError(f"{path} holds no queries")
    return queries


def read_moments(annotations: Path, audio_dir: Path, *, skip_missing: bool = False) -> list[Clip]:
    """The clips of a moment retrieval set: each ``vid`` once, found as ``audio_dir/<vid>.<ext>``."""
    captions: dict[str, list[str]] = {}
    for q in read_moment_queries(annotations):
        captions.setdefault(q.vid, []).append(q.query)
    clips, absent = [], []
    for vid, queries in captions.items():
        path = find_audio(Path(audio_dir), vid)
        if path is None:
            absent.append(vid)
            continue
        clips.append(Clip(vid, path, tuple(queries)))
    if absent and not skip_missing:
        raise DatasetError(f"{len(absent)} clips of {annotations} are not in {audio_dir}, e.g. {absent[:3]} "
                           f"(pass --skip-missing to leave them out)")
    if absent:
        log.warning("left out %d of %d clips of %s that are not on disk", len(absent), len(captions),
                    annotations)
    return clips


def read_dataset(dataset: str, root: Path, split: str, *, skip_missing: bool = False,
                 annotations: Path | None = None) -> list[Clip]:
    if (dataset == "moments") != (annotations is not None):
        raise DatasetError("the moments dataset, and only it, reads its queries from --annotations")
    if dataset == "clotho":
        return read_clotho(root, split)
    if dataset == "audiocaps":
        return read_audiocaps(root, split, skip_missing=skip_missing)
    if dataset == "moments" and annotations is not None:
        return read_moments(annotations, root, skip_missing=skip_missing)
    raise DatasetError(f"dataset must be clotho, audiocaps or moments, not {dataset!r}")
