"""The two encoders' contracts, as the rest of the code uses them (a PaSST tagger, a sentence encoder)."""

from collections.abc import Callable
from typing import Protocol

import numpy as np

from retrieval.config import Windowing
from retrieval.model_spec import ModelSpec
from retrieval.windows import WindowLogits


class Tagger(Protocol):
    """Audio at 32 kHz -> PaSST logits per window. `spec` names the PaSST part of the model."""

    spec: ModelSpec

    def window_logits(self, wave: np.ndarray) -> WindowLogits: ...

    def window_logits_many(self, waves: list[np.ndarray], *,
                           on_batch: Callable[[list[int]], None] | None = None,
                           windowing: Windowing | None = None) -> list[WindowLogits]:
        """Each clip's windows (the tagger's windowing, or `windowing`) with their logits and times."""


class SentenceEncoder(Protocol):
    """Sentences -> (M, dim) float32 unit vectors: sentence-transformers on torch, or its ONNX export."""

    model_id: str
    revision: str | None
    dim: int
    precision: str  # "fp32", or a lower precision of the same model

    def encode(self, sentences: list[str], *, batch_size: int = 64, clean: bool = True,
               progress: bool = False) -> np.ndarray: ...
