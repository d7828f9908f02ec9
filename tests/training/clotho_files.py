"""A small Clotho-format split written to disk: audio files and a captions CSV."""

import csv
from pathlib import Path

from tests.audio_fixtures import clicks, noise, sine, write
from training.datasets import CLOTHO_HEADER


def write_captions_csv(path: Path, rows: list[tuple[str, list[str]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CLOTHO_HEADER)
        for name, captions in rows:
            w.writerow([name, *captions])
    return path


def write_clotho_split(root: Path, split: str, n_clips: int, *, seconds: float = 0.5, offset: int = 0):
    """n clips of sines, clicks and noise at 44.1 kHz, each with five captions; returns the rows."""
    (root / split).mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(offset, offset + n_clips):
        kind = ("sine", "clicks", "noise")[i % 3]
        data = {"sine": sine(220.0 * (1 + i), seconds=seconds, rate=44_100),
                "clicks": clicks(seconds=seconds, rate=44_100, every_s=0.05 * (1 + i % 4)),
                "noise": noise(seconds=seconds, rate=44_100, seed=i)}[kind]
        name = f"{kind} {i:02d}.wav"  # Clotho's names hold spaces
        write(root / split / name, data, 44_100)
        rows.append((name, [f"a {kind} sound, number {i}", f"the {kind} goes on", f"{kind} heard {i} times",
                            f"someone's {kind}", f"a short {kind} - {i}"]))
    write_captions_csv(root / f"clotho_captions_{split}.csv", rows)
    return rows
