import numpy as np
import pytest

from retrieval.metrics import ranks_from_scores, retrieval_metrics


def test_ranks_by_hand():
    S = np.array([
        [0.9, 0.1, 0.2],   # target 0 is best -> rank 1
        [0.9, 0.1, 0.2],   # target 1 is worst -> rank 3
        [0.5, 0.7, 0.5],   # target 2 ties with clip 0 (lower index) -> rank 3
        [0.5, 0.7, 0.5],   # target 0 ties with clip 2 (higher index) -> rank 2
    ])
    np.testing.assert_array_equal(ranks_from_scores(S, np.array([0, 1, 2, 0])), [1, 3, 3, 2])


def test_metrics_at_rank_1_10_11():
    m = retrieval_metrics(np.array([1, 10, 11, 5]))
    assert m["R@1"] == 0.25 and m["R@5"] == 0.5 and m["R@10"] == 0.75
    assert m["mAP@10"] == pytest.approx((1 + 1 / 10 + 0 + 1 / 5) / 4)


def test_shapes_are_checked():
    with pytest.raises(ValueError):
        ranks_from_scores(np.zeros((2, 3)), np.array([0]))
    with pytest.raises(ValueError):
        retrieval_metrics(np.array([]))
