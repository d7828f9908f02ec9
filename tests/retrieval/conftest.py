"""The hear21passt oracle: a PaSST built on its own, so its attention is hear21passt's own.

The tagger switches its model's attention to ``scaled_dot_product_attention`` on that instance
(:func:`retrieval.passt_runtime.use_sdpa_attention`), so comparing against the tagger's own ``model`` would
compare the new code with itself. ``build_passt("random")`` gives the same deterministic weights.
"""

import pytest
import torch

from retrieval.tagger import build_passt


def uses_sdpa(model: torch.nn.Module) -> bool:
    """Whether any attention module of `model` had its forward replaced on the instance."""
    return any("forward" in vars(m) for m in model.modules())


@pytest.fixture(scope="session")
def passt_oracle():
    oracle = build_passt("random")
    assert not uses_sdpa(oracle)
    return oracle
