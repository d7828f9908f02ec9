"""Adding clips in tests the way the service and `index add` do: through index.ingest.worker.ingest."""

from pathlib import Path

from index.collection import Collection
from index.ingest.worker import Item, ingest
from index.store.records import ClipRecord
from retrieval.durable import sha256_bytes, sha256_file


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
