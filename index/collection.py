"""What the service and the CLI use: a store plus the model, with the verbs a user thinks in.

    Collection.open(settings, retriever) -> Collection
    .add_bytes(data: bytes, name: str) -> tuple[ClipRecord, bool]        # (record, created); dedup by sha256
    .add_path(path: Path) -> tuple[ClipRecord, bool]
    .search_text(query: str, k: int, flt: SearchFilter | None = None) -> list[Hit]
    .search_vector(xq: np.ndarray, k: int, flt=None) -> list[Hit]
    .search_audio(data: bytes, k: int, flt=None, name="query") -> list[Hit]
    .get(id) -> ClipRecord | None      .list(offset, limit) -> list[ClipRecord]     .count() -> int
    .remove(ids) -> int                 (also deletes stored upload copies)
    .audio_path(record) -> Path         (where the audio can be read for streaming)
    .reproject(checkpoint_path) -> int  (new head, stored logits, no PaSST)
    .close()

Errors: retrieval.errors.AudioDecodeError (and AudioTooLong) for bad audio, CheckpointMismatch for a
store made with another model.

Uploads are kept as ``audio/<sha256>.<ext>`` in the data directory (their record's location, relative to it),
written durably before the record is committed: the record is the acknowledgement, and a copy left without
one by a crash is removed at the next open.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from index.base import ClipRecord, Hit, NewClip, SearchFilter, Tag, VectorStore
from index.files import old_enough, remove_stale_tmp, write_bytes_atomically
from index.stores import open_store
from retrieval.audio import DecodedAudio, decode_audio
from retrieval.checkpoint import file_sha256, load_checkpoint
from retrieval.errors import AudioDecodeError
from retrieval.pipeline import Retriever
from retrieval.settings import Settings

log = logging.getLogger(__name__)

TOP_TAGS = 10  # tags stored per clip
AUDIO_DIR = "audio"
REPROJECT_CHUNK = 4096  # clips projected at a time
# libsndfile container names whose usual extension is not the lower-cased name
EXTENSIONS = {"WAVEX": "wav", "RF64": "wav", "OGG": "ogg", "MP3": "mp3"}


class Collection:
    def __init__(self, store: VectorStore, retriever: Retriever, settings: Settings):
        self.store = store
        self.retriever = retriever
        self.settings = settings
        self.audio_dir = Path(settings.data_dir) / AUDIO_DIR
        self._write = threading.Lock()  # the dedup check and the add it guards happen together

    @classmethod
    def open(cls, settings: Settings, retriever: Retriever, *, check_fingerprint: bool = True) -> Collection:
        """Open the collection in settings.data_dir. check_fingerprint=False accepts a store made with
        another model (only to re-project it)."""
        store = open_store(settings, retriever.fingerprint, check=check_fingerprint)
        collection = cls(store, retriever, settings)
        collection.audio_dir.mkdir(parents=True, exist_ok=True)
        collection._remove_orphan_copies()
        return collection

    # -- adding -------------------------------------------------------------------------------------------
    def add_path(self, path: Path) -> tuple[ClipRecord, bool]:
        """Index a file where it lies (its absolute path is its location)."""
        path = Path(path).expanduser().resolve()
        if not path.is_file():
            raise AudioDecodeError(f"{path}: no such file")
        sha = file_sha256(path)
        existing = self.store.get_by_sha256(sha)
        if existing is not None:
            return existing, False
        audio = decode_audio(path, max_duration_s=self.settings.max_duration_s,
                             max_channels=self.settings.max_channels, name=path.name)
        return self._add(self._new_clip(audio, name=path.name, location=str(path), sha256=sha),
                         audio, copy=None)

    def add_bytes(self, data: bytes, name: str) -> tuple[ClipRecord, bool]:
        """Index an upload; its bytes are kept under the data directory."""
        sha = hashlib.sha256(data).hexdigest()
        existing = self.store.get_by_sha256(sha)
        if existing is not None:
            return existing, False
        name = Path(name).name or "upload"
        audio = decode_audio(data, max_duration_s=self.settings.max_duration_s,
                             max_channels=self.settings.max_channels, name=name)
        location = f"{AUDIO_DIR}/{sha}.{_extension(audio.format)}"
        clip = self._new_clip(audio, name=name, location=location, sha256=sha, stored_copy=True)
        return self._add(clip, audio, copy=data)

    def _new_clip(self, audio: DecodedAudio, *, name: str, location: str, sha256: str,
                  stored_copy: bool = False) -> NewClip:
        return NewClip(name=name, location=location, sha256=sha256, duration=audio.duration_s,
                       sample_rate=audio.source_rate, tags=(), stored_copy=stored_copy)

    def _add(self, clip: NewClip, audio: DecodedAudio, *, copy: bytes | None) -> tuple[ClipRecord, bool]:
        vector, logits = self.retriever.encode_audio(audio.wave)  # (D,), (527,)
        tags = tuple(Tag(label, p) for label, p in self.retriever.top_tags(logits, TOP_TAGS))
        clip = replace(clip, tags=tags)
        with self._write:
            existing = self.store.get_by_sha256(clip.sha256)
            if existing is not None:  # the same content was added meanwhile
                return existing, False
            stored = self.audio_path(clip) if copy is not None else None
            if stored is not None:
                write_bytes_atomically(stored, copy)
            try:
                record = self.store.add(clip, vector, logits)
            except BaseException:
                if stored is not None:
                    stored.unlink(missing_ok=True)
                raise
        log.debug("added %s as clip %d", clip.name, record.id)
        return record, True

    # -- searching ----------------------------------------------------------------------------------------
    def search_text(self, query: str, k: int, flt: SearchFilter | None = None) -> list[Hit]:
        return self.search_vector(self.retriever.encode_text([query]), k, flt)  # (1, D)

    def search_vector(self, xq: np.ndarray, k: int, flt: SearchFilter | None = None) -> list[Hit]:
        """xq: (D,) or (1, D) unit vector -> the k best hits, best first."""
        xq = np.asarray(xq, dtype=np.float32)
        if xq.ndim == 1:
            xq = xq[None]
        if xq.shape[0] != 1:
            raise ValueError(f"search_vector takes one query vector, got {xq.shape[0]}")
        return self.store.search(xq, k, flt)[0]

    def search_audio(self, data: bytes, k: int, flt: SearchFilter | None = None,
                     name: str = "query") -> list[Hit]:
        """Query by example: the clips nearest to this audio in the shared space."""
        audio = decode_audio(data, max_duration_s=self.settings.max_duration_s,
                             max_channels=self.settings.max_channels, name=name)
        vector, _ = self.retriever.encode_audio(audio.wave)
        return self.search_vector(vector, k, flt)

    # -- reading and removing -----------------------------------------------------------------------------
    def get(self, id: int) -> ClipRecord | None:
        return self.store.get(id)

    def list(self, offset: int = 0, limit: int = 50) -> list[ClipRecord]:
        return self.store.list(offset=offset, limit=limit)

    def count(self) -> int:
        return self.store.count()

    def audio_path(self, record: NewClip) -> Path:
        """Where the clip's audio can be read: the indexed file, or the stored copy of an upload."""
        if record.stored_copy:
            return Path(self.settings.data_dir) / record.location
        return Path(record.location)

    def remove(self, ids: Sequence[int]) -> int:
        """Remove clips (ids that do not exist are ignored) and the stored copies of uploads among them."""
        with self._write:
            records = [r for r in (self.store.get(int(i)) for i in ids) if r is not None]
            removed = self.store.remove([r.id for r in records])
            for r in records:
                if r.stored_copy:
                    self.audio_path(r).unlink(missing_ok=True)
        return removed

    def _remove_orphan_copies(self) -> None:
        """Copies whose record never committed (a crash between the two). Recent ones are left alone: they
        may belong to an upload another process is committing right now."""
        remove_stale_tmp(self.audio_dir)
        for path in self.audio_dir.iterdir():
            if path.name.startswith(".") or not old_enough(path):
                continue
            record = self.store.get_by_sha256(path.stem)
            if record is None or not record.stored_copy or self.audio_path(record) != path:
                log.info("removing %s: no clip refers to it", path)
                path.unlink(missing_ok=True)

    # -- model --------------------------------------------------------------------------------------------
    def reproject(self, checkpoint_path: Path, *, progress: bool = False) -> int:
        """Re-project the whole collection with another head from its stored logits (PaSST is not run);
        return how many clips were re-projected. The collection then serves with the new model."""
        new = Retriever(self.retriever.tagger, self.retriever.text, load_checkpoint(checkpoint_path))
        with self._write:
            ids = self._all_ids()
            vectors = np.empty((len(ids), new.head.dim), dtype=np.float32)  # (N, D)
            for start in tqdm(range(0, len(ids), REPROJECT_CHUNK), desc="reproject", unit="chunk",
                              disable=not progress):
                chunk = ids[start:start + REPROJECT_CHUNK]
                vectors[start:start + len(chunk)] = new.project(self.store.logits(chunk))
            self.store.replace_vectors(ids, vectors, new.fingerprint)
            self.retriever = new
        log.info("re-projected %d clips with model %s", len(ids), new.fingerprint["head"])
        return len(ids)

    def _all_ids(self, page: int = 10_000) -> list[int]:
        ids: list[int] = []
        while batch := self.store.list(offset=len(ids), limit=page):
            ids.extend(r.id for r in batch)
        return ids

    def stats(self) -> dict:
        describe = getattr(self.store, "describe", None)
        extra = describe() if describe is not None else {"clips": self.count()}
        return {**extra, "model": self.store.fingerprint}

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _extension(container: str) -> str:
    return EXTENSIONS.get(container, container.lower())
