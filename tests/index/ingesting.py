"""Adding clips in tests the way the service and `index add` do: through index.ingest.worker.ingest."""

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from index.collection import Collection
from index.ingest.worker import Item, ingest
from index.store.records import ClipRecord
from retrieval.durable import sha256_bytes, sha256_file
from tests.audio_fixtures import sine, write


def upload(data: bytes, name: str) -> Item:
    """An upload's bytes (the stored copy is kept under audio/)."""
    return Item(name, name, data, sha256_bytes(data))


def file(path: Path) -> Item:
    """A file indexed where it lies."""
    path = Path(path).resolve()
    return Item(path, path.name, path, sha256_file(path))


def add(collection: Collection, *items: Item) -> list[tuple[ClipRecord, bool]]:
    """Ingest the items together (one batch of the worker): (record, created) each; an item's error raised."""
    out = []
    for result in ingest(collection, items):
        if result.error is not None:
            raise result.error
        assert result.record is not None
        out.append((result.record, result.created))
    return out


def passt_runs(monkeypatch) -> list[int]:
    """Counts the clips the collection sends through PaSST (Collection.extract), one entry per call."""
    calls: list[int] = []
    extract = Collection.extract

    def counted(self, clips, **kw):
        calls.append(len(clips))
        return extract(self, clips, **kw)

    monkeypatch.setattr(Collection, "extract", counted)
    return calls


# (a file's name on disk, the clip's name as stored)
ODD_FILES = {
    "override": ("\u202egnp.wav", "gnp.wav"),  # not shown as vaw.png
    "decomposed": ("cafe\u0301.wav", "caf\u00e9.wav"),  # as macOS's file systems give it
    "line-break": ("two\nlines.wav", "two lines.wav"),
    "tab-and-spaces": (" tab\there .wav", "tab here .wav"),
    "escape": ("red\x1b[31m.wav", "red [31m.wav"),  # a control between two words parts them
    "isolate": ("a\u2067b\u2069.wav", "ab.wav"),
}


def wav(wave: np.ndarray) -> bytes:
    """A WAV file's bytes of the wave at 32 kHz."""
    buf = io.BytesIO()
    sf.write(buf, wave, 32_000, format="WAV")
    return buf.getvalue()


def odd_files(folder: Path) -> dict[str, Path]:
    """A short WAV for each of ODD_FILES, each its own sound (none a copy of another), by case."""
    folder.mkdir(parents=True, exist_ok=True)
    return {case: write(folder / name, sine(300.0 + 97 * i, seconds=0.2))
            for i, (case, (name, _)) in enumerate(ODD_FILES.items())}
