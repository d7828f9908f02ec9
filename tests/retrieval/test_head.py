import numpy as np
import pytest
import torch

from retrieval.head import RetrievalHead, count_trainable


def test_paper_parameter_count_at_768():
    assert count_trainable(RetrievalHead(torch.randn(527, 768))) == 406_558


def test_dimensions_follow_the_text_model():
    head = RetrievalHead(torch.randn(527, 384))
    assert count_trainable(head) == 2 * 527 + 527 * 384 + 384
    assert head.encode_audio(torch.randn(3, 527)).shape == (3, 384)


def l2(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def numpy_head(head: RetrievalHead, logits: np.ndarray, lam: float) -> np.ndarray:
    g, b = head.audio_norm.weight.detach().numpy(), head.audio_norm.bias.detach().numpy()
    W, c = head.audio_proj.weight.detach().numpy(), head.audio_proj.bias.detach().numpy()
    E = head.tag_embeddings.numpy()
    mu, var = logits.mean(-1, keepdims=True), logits.var(-1, keepdims=True)
    audio = l2(((logits - mu) / np.sqrt(var + 1e-5) * g + b) @ W.T + c)
    p = 1 / (1 + np.exp(-logits))
    tag = l2((p @ E) / p.sum(-1, keepdims=True))
    return l2(lam * audio + (1 - lam) * tag)


@pytest.mark.parametrize("lam", [0.0, 0.8, 1.0])
def test_fusion_matches_numpy(lam):
    torch.manual_seed(1)
    head = RetrievalHead(torch.nn.functional.normalize(torch.randn(527, 64), dim=-1), lam=lam)
    with torch.no_grad():
        head.audio_norm.weight.uniform_(0.5, 1.5)
        head.audio_norm.bias.uniform_(-0.1, 0.1)
    logits = np.random.default_rng(0).normal(-3, 2, size=(4, 527)).astype(np.float32)
    got = head.encode_audio(torch.from_numpy(logits)).detach().numpy()
    np.testing.assert_allclose(got, numpy_head(head, logits.astype(np.float64), lam), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_text_side_is_layernorm_without_parameters_then_l2():
    head = RetrievalHead(torch.randn(527, 16))
    text = np.random.default_rng(2).normal(size=(3, 16))
    want = l2((text - text.mean(-1, keepdims=True)) / np.sqrt(text.var(-1, keepdims=True) + 1e-5))
    got = head.encode_text(torch.from_numpy(text).float()).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_bad_shapes_and_lambda_are_refused():
    with pytest.raises(ValueError):
        RetrievalHead(torch.randn(100, 768))
    with pytest.raises(ValueError):
        RetrievalHead(torch.randn(527, 768), lam=1.5)
