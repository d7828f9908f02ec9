"""A full disk: what cannot be written is said as a full disk (one OSError naming the file), what was there
is left as it was, and a cache that cannot be kept is only not kept."""

import errno
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors import SafetensorError

from index.faiss import vector_index
from retrieval import pipeline
from retrieval.durable import tmp_name

FULL = Path("/dev/full")  # every write to it fails with ENOSPC
needs_full = pytest.mark.skipif(not FULL.exists(), reason="no /dev/full on this system")


def small_index(n: int, seed: int = 0) -> vector_index.VectorIndex:
    vi = vector_index.VectorIndex(8, "flat")
    vi.add(np.arange(n, dtype=np.int64), np.random.default_rng(seed).random((n, 8), dtype=np.float32))
    return vi


@needs_full
def test_an_index_file_not_written_whole_never_takes_its_name(tmp_path):
    """FAISS's own writer only prints its error on closing a file of a full disk; the file, cut short,
    took the name and the older files were pruned."""
    old = tmp_path / vector_index.file_name(kind="flat", epoch=0, generation=1)
    vector_index.write_atomically(small_index(5), old)
    before = old.read_bytes()
    new = tmp_path / vector_index.file_name(kind="flat", epoch=0, generation=2)
    tmp_name(new).symlink_to(FULL)  # where this process writes `new` first: a disk with no room
    with pytest.raises(OSError) as raised:
        vector_index.write_atomically(small_index(50, seed=1), new)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(new)
    assert os.listdir(tmp_path) == [old.name] and old.read_bytes() == before  # no new file, no temporary
    assert vector_index.load(old, dim=8, kind="flat").ntotal == 5


def test_a_tag_name_cache_that_cannot_be_written_is_only_not_kept(tmp_path, monkeypatch, caplog):
    """safetensors says a full disk as its own error, not an OSError: every command that loads the model
    failed on it, though the embeddings were computed."""
    embeddings = torch.ones(527, 4)
    monkeypatch.setattr(pipeline, "tag_text_embeddings", lambda text: embeddings)

    def full(tensors, path):
        Path(path).write_bytes(b"\0" * 1000)  # part of it written, then no room
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(pipeline, "save_file", full)
    text = SimpleNamespace(model_id="m", revision=None, dim=4, precision="fp32")
    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger="retrieval.pipeline"):
        got = pipeline.cached_tag_text_embeddings(text, cache_dir=cache, stamp={"size": 1})
    assert got is embeddings
    assert "No space left on device" in caplog.text
    assert list(cache.iterdir()) == []  # neither the cache file nor its temporary
