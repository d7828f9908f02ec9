"""The query-embedding cache: the wrapped encoder's vectors, fewer encoder calls, LRU order, counters."""

import threading

import numpy as np
import pytest

from retrieval.query_cache import QueryCache
from retrieval.text import clean_caption

DIM = 8


class CountingEncoder:
    """A SentenceEncoder whose vector of a sentence is a function of its text; records what it encodes."""

    model_id, revision, dim, precision = "counting", "r1", DIM, "fp32"

    def __init__(self):
        self.seen: list[str] = []
        self.lock = threading.Lock()

    def encode(self, sentences, *, batch_size=64, clean=True, progress=False):
        if clean:
            sentences = [clean_caption(s) for s in sentences]
        with self.lock:
            self.seen.extend(sentences)
        out = np.array([np.random.default_rng(list(s.encode())).standard_normal(DIM) for s in sentences])
        out = out.reshape(len(sentences), DIM)
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def test_equals_the_wrapped_encoder_and_encodes_each_sentence_once():
    inner = CountingEncoder()
    cache = QueryCache(inner, size=10)
    sentences = ["a dog barks", "Rain!", "a dog barks", "Rain"]
    np.testing.assert_array_equal(cache.encode(sentences), CountingEncoder().encode(sentences))
    assert inner.seen == ["a dog barks", "Rain"]  # the cleaned text is the key; repeats are encoded once
    assert cache.stats() == (0, 4, 2)
    again = ["Rain", "rain"]  # cleaning keeps the case: "rain" is another sentence
    np.testing.assert_array_equal(cache.encode(again), CountingEncoder().encode(again))
    assert inner.seen == ["a dog barks", "Rain", "rain"] and cache.stats() == (1, 4 + 1, 3)


def test_clean_false_keys_the_raw_sentence():
    inner = CountingEncoder()
    cache = QueryCache(inner, size=10)
    cache.encode(["Rain!"], clean=False)
    cache.encode(["Rain"])  # what "Rain!" cleans to: another sentence for the model
    assert inner.seen == ["Rain!", "Rain"]


def test_the_least_recently_used_goes_first():
    inner = CountingEncoder()
    cache = QueryCache(inner, size=2)
    cache.encode(["one"])
    cache.encode(["two"])
    cache.encode(["one"])  # now "two" is the least recent
    cache.encode(["three"])  # evicts "two"
    inner.seen.clear()
    cache.encode(["one", "three", "two"])
    assert inner.seen == ["two"] and cache.stats()[2] == 2


def test_callers_cannot_change_what_is_cached():
    cache = QueryCache(CountingEncoder(), size=4)
    first = cache.encode(["rain"])
    first[:] = 0
    np.testing.assert_array_equal(cache.encode(["rain"]), CountingEncoder().encode(["rain"]))


def test_empty_input_and_identity():
    cache = QueryCache(CountingEncoder(), size=4)
    assert cache.encode([]).shape == (0, DIM)
    assert (cache.model_id, cache.revision, cache.dim, cache.precision) == ("counting", "r1", DIM, "fp32")
    with pytest.raises(ValueError):
        QueryCache(CountingEncoder(), size=0)


def test_threads_share_it_safely():
    inner = CountingEncoder()
    cache = QueryCache(inner, size=16)
    words = [f"query {i}" for i in range(24)]  # more than it holds: lookups, inserts and evictions interleave
    want = CountingEncoder().encode(words)
    errors = []

    def work(seed: int):
        rng = np.random.default_rng(seed)
        for _ in range(200):
            idx = rng.integers(0, len(words), size=3)
            if not np.array_equal(cache.encode([words[i] for i in idx]), want[idx]):
                errors.append(seed)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    hits, misses, entries = cache.stats()
    assert errors == [] and hits + misses == 4 * 200 * 3 and entries <= 16
    assert set(inner.seen) == set(words) and misses >= len(inner.seen) and hits > 0

