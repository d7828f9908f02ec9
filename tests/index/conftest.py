"""The zero-shot model over the session's random PaSST and MiniLM, built once for the index tests."""

import pytest

from retrieval.checkpoint import HeadConfig, zero_shot
from retrieval.pipeline import Retriever, tag_text_embeddings


@pytest.fixture(scope="session")
def tag_embeddings(text_encoder):
    return tag_text_embeddings(text_encoder)  # (527, D)


@pytest.fixture(scope="session")
def retriever(tag_embeddings, random_tagger, text_encoder) -> Retriever:
    """What build_retriever makes without a checkpoint."""
    cfg = HeadConfig(text_model=text_encoder.model_id, text_model_revision=text_encoder.revision,
                     dim=text_encoder.dim, passt_arch=random_tagger.arch,
                     windowing=random_tagger.windowing.as_dict())
    return Retriever(random_tagger, text_encoder, zero_shot(tag_embeddings, cfg))
