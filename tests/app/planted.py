"""Clips planted straight into the service's store (known names, metadata and vectors; no PaSST)."""

import numpy as np

from index.store.contract import VectorStore
from index.store.metadata import Metadata
from index.store.records import NewClip, Tag

# name, description, user tags, fields
LIBRARY = [
    ("Kick_808_Hard.wav", "a deep kick with a long tail", ("kick", "808"), {"pack": "Drums Vol 1"}),
    ("kick_soft.wav", "", ("kick",), {"pack": "Drums Vol 2"}),
    ("SnareRoll.wav", "snare roll, then a kick", ("snare",), {"pack": "Drums Vol 1"}),
    ("rain_on_roof.flac", "rain on a tin roof", ("field recording",), {}),
    ("HiHat_open.wav", "", ("hihat",), {"pack": "Drums Vol 1", "bpm": "120"}),
    ("thunder.ogg", "distant thunder", ("field recording", "weather"), {}),
]


def plant(store: VectorStore, seed: int = 0) -> tuple[list[int], np.ndarray]:
    """LIBRARY in the service's store with random unit vectors; (ids, vectors (N, D))."""
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((len(LIBRARY), store.dim)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    ids = []
    for i, (name, description, tags, fields) in enumerate(LIBRARY):
        clip = NewClip(name=name, location=f"/nowhere/{name}", sha256=f"{i + 1:064x}", duration=1.0 + i,
                       sample_rate=44_100, tags=(Tag("Music", 0.05),),
                       meta=Metadata.of(description=description, tags=tags, fields=fields))
        ids.append(store.add(clip, xb[i], np.zeros(527, np.float32)).id)
    return ids, xb
