"""The query-embedding cache: a text encoder that remembers the vectors of the last sentences it encoded.

People search the same few things again (the page re-runs a query at each "more like this"), and the text
encoder is most of a query's time on a CPU. Any :class:`SentenceEncoder` (torch or ONNX) can be wrapped; the
composition root does it for the service, sized by RETRIEVAL_QUERY_CACHE_SIZE.
"""

import threading
from collections import OrderedDict

import numpy as np

from retrieval.contracts import SentenceEncoder
from retrieval.text import clean_caption


class QueryCache:
    """A SentenceEncoder over `encoder` keeping the vectors of the `size` most recently used sentences.

    The key is the sentence the model sees (cleaned unless `clean=False`), so "Rain!" and "rain" share one
    entry; a cached row is the very vector computed before, so the cache changes speed only. Safe to call
    from several threads: the table and the counters change under one lock, the encoder runs outside it.
    """

    def __init__(self, encoder: SentenceEncoder, *, size: int):
        if size < 1:
            raise ValueError(f"a query cache holds at least one entry, not {size}")
        self.encoder = encoder
        self.model_id, self.revision, self.dim = encoder.model_id, encoder.revision, encoder.dim
        self.precision = encoder.precision
        self.size = size
        self.hits = self.misses = 0  # sentences looked up and found, or encoded
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, sentences: list[str], *, batch_size: int = 64, clean: bool = True,
               progress: bool = False) -> np.ndarray:
        """(M,) sentences -> (M, D) float32 unit vectors, the known ones from the cache."""
        if clean:
            sentences = [clean_caption(s) for s in sentences]
        with self._lock:
            found = {s: self._vectors[s] for s in sentences if s in self._vectors}
            for s in found:
                self._vectors.move_to_end(s)
            hits = sum(s in found for s in sentences)
            self.hits += hits
            self.misses += len(sentences) - hits
        missing = list(dict.fromkeys(s for s in sentences if s not in found))  # each new sentence once
        if missing:
            fresh = self.encoder.encode(missing, batch_size=batch_size, clean=False, progress=progress)
            found.update(self._remember(missing, fresh))
        out = np.empty((len(sentences), self.dim), dtype=np.float32)  # (M, D)
        for i, s in enumerate(sentences):
            out[i] = found[s]
        return out

    def _remember(self, sentences: list[str], vectors: np.ndarray) -> dict[str, np.ndarray]:
        rows = {s: v.copy() for s, v in zip(sentences, vectors, strict=True)}
        with self._lock:
            for s, v in rows.items():
                self._vectors[s] = v
                self._vectors.move_to_end(s)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return rows

    def stats(self) -> tuple[int, int, int]:
        """(hits, misses, entries), read together."""
        with self._lock:
            return self.hits, self.misses, len(self._vectors)
