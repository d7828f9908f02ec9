"""Vectors and clips with known contents for store tests (no models needed)."""

import numpy as np

from index.store.records import NewClip, Tag
from retrieval.model_spec import ModelSpec

DIM = 32
SPEC = ModelSpec(head="zero-shot", lam=0.0, text_model="tiny", text_model_revision=None, dim=DIM,
                 sample_rate=32000, passt_arch="passt_s_swa_p16_128_ap476", window_s=10.0, hop_s=2.5,
                 passt_weights="random")
LABELS = ("Music", "Speech", "Rain", "Dog")


def unit_vectors(n: int, dim: int = DIM, *, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)  # (n, dim)


def clip(i: int) -> NewClip:
    """Clip i: duration i % 7 s, top tag LABELS[i % 4]."""
    return NewClip(name=f"clip{i}.wav", location=f"/audio/clip{i}.wav", sha256=f"{i:064x}",
                   duration=float(i % 7), sample_rate=44_100,
                   tags=(Tag(LABELS[i % 4], 0.9), Tag(LABELS[(i + 1) % 4], 0.2)))


def logits(i: int) -> np.ndarray:
    return np.random.default_rng(1000 + i).standard_normal(527).astype(np.float32)


def fill(store, xb: np.ndarray, start: int = 0) -> dict[int, int]:
    """Add clips start.. with vectors xb; return {store id: row of xb}."""
    return {store.add(clip(start + r), xb[r], logits(start + r)).id: r for r in range(len(xb))}


def brute_force(xq: np.ndarray, xb: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The oracle: (Q, k) scores and ids of the k largest inner products, ties broken by id."""
    scores = xq @ xb.T  # (Q, N)
    order = np.lexsort((np.broadcast_to(ids, scores.shape), -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), ids[order]


class SharedClient:
    """One in-memory Qdrant standing in for a server: every connect gets it, close leaves it open."""

    def __init__(self):
        from qdrant_client import QdrantClient

        self.client = QdrantClient(location=":memory:")

    def __getattr__(self, name):
        return getattr(self.client, name)

    def close(self):
        pass
