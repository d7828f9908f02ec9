"""Language-based audio retrieval: PaSST tag logits, a sentence-transformer text space and a small head.

:func:`load_model` builds the whole model from explicit arguments (a text model folder, PaSST weights, a head
checkpoint or none, a device); its :class:`Retriever` puts audio files (:meth:`Retriever.encode_files`) and
text (:meth:`Retriever.encode_text`) into one space of unit vectors. The parts they are built from (decoding,
tagger, text encoder, head, checkpoint) are importable on their own.

``load_model`` and ``Retriever`` are imported on first use: ``import retrieval.errors`` (or any other part)
does not load torch.
"""

from typing import TYPE_CHECKING, Any

from retrieval.errors import (
    AudioDecodeError,
    CheckpointMismatch,
    ModelNotFound,
    RetrievalError,
)

if TYPE_CHECKING:
    from retrieval.load import load_model
    from retrieval.pipeline import Retriever

__all__ = ["AudioDecodeError", "CheckpointMismatch", "ModelNotFound", "RetrievalError", "Retriever",
           "load_model"]

_LAZY = {"load_model": "retrieval.load", "Retriever": "retrieval.pipeline"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'retrieval' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names with the lazy ones (tab completion, `dir(retrieval)`)."""
    return sorted({*globals(), *_LAZY})
