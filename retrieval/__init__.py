"""Language-based audio retrieval: PaSST tag logits, a sentence-transformer text space and a small head.

The public verbs are :meth:`Retriever.encode_audio` and :meth:`Retriever.encode_text`; the parts they are
built from (decoding, tagger, text encoder, head, checkpoint) are importable on their own.
"""

from retrieval.errors import (
    AudioDecodeError,
    CheckpointMismatch,
    ModelNotFound,
    RetrievalError,
)

__all__ = ["AudioDecodeError", "CheckpointMismatch", "ModelNotFound", "RetrievalError"]
