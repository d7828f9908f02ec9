"""The composite query vector against numpy on hand-made vectors; how a composite query describes itself."""

import numpy as np
import pytest

from retrieval.composite import CompositeQuery, Weights, combine
from retrieval.errors import ZeroQuery

D = 6
E = np.eye(D, dtype=np.float32)  # orthonormal: each part's contribution can be read off its own axis
NONE = np.empty((0, D), dtype=np.float32)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def test_the_default_weights_are_the_documented_ones():
    assert Weights() == Weights(query=1.0, like=1.0, unlike=0.5, not_=0.5)


def test_every_part_on_its_own_axis():
    got = combine(query=E[0], like=E[[1, 2]], unlike=E[[3]], not_=E[4], weights=Weights())
    # 1 * e0 + 1 * (e1 + e2) / 2 - 0.5 * e3 - 0.5 * e4, then L2
    np.testing.assert_allclose(got, unit(np.array([1, 0.5, 0.5, -0.5, -0.5, 0])), atol=1e-7)
    assert got.dtype == np.float32


def test_against_the_formula_on_random_vectors():
    rng = np.random.default_rng(0)
    q, qn = (unit(rng.standard_normal(D)) for _ in range(2))
    like, unlike = rng.standard_normal((3, D)), rng.standard_normal((2, D))
    w = Weights(query=0.3, like=1.7, unlike=2.0, not_=0.1)
    want = unit(0.3 * q + 1.7 * like.mean(0) - 2.0 * unlike.mean(0) - 0.1 * qn)
    got = combine(query=q, like=like, unlike=unlike, not_=qn, weights=w)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_like_alone_is_the_direction_of_the_mean():
    like = np.stack([unit(np.array([1.0, 1, 0, 0, 0, 0])), E[0]])
    got = combine(query=None, like=like, unlike=NONE, not_=None, weights=Weights(like=2.0))
    np.testing.assert_allclose(got, unit(like.mean(0)), atol=1e-7)


def test_one_example_alone_is_its_own_vector():
    v = unit(np.arange(1.0, D + 1))
    got = combine(query=None, like=v[None], unlike=NONE, not_=None, weights=Weights())
    np.testing.assert_allclose(got, v, atol=1e-7)


def test_a_weight_of_zero_drops_its_part():
    got = combine(query=E[0], like=E[[1]], unlike=E[[2]], not_=E[3], weights=Weights(like=0.0, not_=0.0))
    np.testing.assert_allclose(got, unit(E[0] - 0.5 * E[2]), atol=1e-7)


@pytest.mark.parametrize("parts", [
    {"query": E[0], "like": NONE, "unlike": NONE, "not_": E[0], "weights": Weights(not_=1.0)},
    {"query": None, "like": E[[1]], "unlike": E[[1]], "not_": None, "weights": Weights(unlike=1.0)},
    {"query": E[0], "like": NONE, "unlike": NONE, "not_": None, "weights": Weights(query=0.0)},
    {"query": 0.5 * E[0], "like": E[[0, 0]] * 0.5, "unlike": E[[0]], "not_": E[0],
     "weights": Weights(query=1.0, like=1.0, unlike=0.5, not_=0.5)},
])
def test_parts_that_cancel_out_are_refused(parts):
    with pytest.raises(ZeroQuery, match="cancel out"):
        combine(**parts)


@pytest.mark.parametrize(("query", "example", "echo"), [
    (CompositeQuery(text="rain on a roof"), None, "rain on a roof"),
    (CompositeQuery(), "mine.wav", "mine.wav"),
    (CompositeQuery(text="with rain"), "mine.wav", 'mine.wav + "with rain"'),
    (CompositeQuery(like=(3, 7)), None, "like #3, #7"),
    (CompositeQuery(text="rain", like=(3,), unlike=(2,), not_='"thunder"'), None,
     '"rain" + like #3 - unlike #2 - not "\\"thunder\\""'),
    (CompositeQuery(text="rain", not_="thunder"), None, '"rain" - not "thunder"'),
    (CompositeQuery(like=(1,), unlike=(4, 5)), None, "like #1 - unlike #4, #5"),
])
def test_a_composite_query_describes_its_parts(query, example, echo):
    assert query.describe(example=example) == echo


def test_judged_clips_are_the_liked_and_the_unliked():
    assert CompositeQuery(text="x", like=(1, 2), unlike=(5,)).judged == {1, 2, 5}
