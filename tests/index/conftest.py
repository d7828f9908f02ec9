"""The zero-shot model over the session's random PaSST and MiniLM, built once for the index tests."""

import pytest

from retrieval.checkpoint import zero_shot
from retrieval.pipeline import Retriever, tag_text_embeddings, text_spec
from tests.tone_tagger import ToneTagger


@pytest.fixture(scope="session")
def tag_embeddings(text_encoder):
    return tag_text_embeddings(text_encoder)  # (527, D)


@pytest.fixture(scope="session")
def retriever(tag_embeddings, random_tagger, text_encoder) -> Retriever:
    """What build_retriever makes without a checkpoint."""
    ckpt = zero_shot(tag_embeddings, text_spec(random_tagger.spec, text_encoder))
    return Retriever(text_encoder, ckpt, passt=random_tagger.spec, tagger=random_tagger)


@pytest.fixture(scope="session")
def tone_retriever(tag_embeddings, text_encoder) -> Retriever:
    """The zero-shot model over the tone stand-in for PaSST (tests/tone_tagger.py) and MiniLM."""
    tagger = ToneTagger()
    return Retriever(text_encoder, zero_shot(tag_embeddings, text_spec(tagger.spec, text_encoder)),
                     passt=tagger.spec, tagger=tagger)
