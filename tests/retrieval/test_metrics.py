import numpy as np
import pytest

from retrieval.metrics import (
    MOMENT_IOUS,
    MOMENT_METRIC_NAMES,
    moment_average_precision,
    moment_ious,
    moment_metrics,
    ranks_from_scores,
    retrieval_metrics,
)


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


# Moment retrieval: hand-computed IoUs and APs. Predictions are [start, end, score] rows, best first.
TEN = len(MOMENT_IOUS)


def test_ap_matches_each_prediction_to_a_free_window_and_interpolates_the_precision():
    relevant = np.array([[0.0, 10.0], [20.0, 30.0]])
    pred = np.array([[0.0, 10.0, 0.9],    # IoU 1 with [0, 10]: a hit at every threshold
                     [0.0, 8.0, 0.8],     # IoU 0.8 with [0, 10], already taken: a miss
                     [21.0, 30.0, 0.7]])  # IoU 9/10 with [20, 30]: a hit up to 0.9
    np.testing.assert_allclose(moment_ious(pred, relevant), [[1.0, 0.0], [0.8, 0.0], [0.0, 0.9]])
    # up to 0.9: hits 1 0 1 -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> envelope 1, 2/3 -> AP 5/6
    # at 0.95: hits 1 0 0 -> recall reaches 1/2 at precision 1 -> AP 1/2
    np.testing.assert_allclose(moment_average_precision(pred, relevant), [5 / 6] * 9 + [0.5])


def test_ap_sorts_by_score_and_counts_only_the_first_ten_predictions():
    relevant = np.array([[5.0, 15.0]])
    # given out of score order: the IoU-0.9 moment [5, 14] scores higher, so it comes first -> AP 1
    pred = np.array([[0.0, 10.0, 0.5], [5.0, 14.0, 0.6]])
    np.testing.assert_allclose(moment_average_precision(pred, relevant), [1.0] * 9 + [0.0])
    # an exact hit in 11th place does not count; in 10th it does, at precision 1/10
    misses = np.array([[40.0 + i, 41.0 + i, 1.0 - i / 100] for i in range(10)])
    hit = np.array([[5.0, 15.0, 0.0]])
    assert moment_average_precision(np.vstack([misses, hit]), relevant).tolist() == [0.0] * TEN
    np.testing.assert_allclose(moment_average_precision(np.vstack([misses[:9], hit]), relevant), [0.1] * TEN)


def test_one_prediction_takes_one_window():
    # one wide moment over two short relevant windows: IoU 2/10 with each, so no hit even at 0.5,
    # and two exact moments find both -> AP 1
    relevant = np.array([[0.0, 2.0], [8.0, 10.0]])
    assert moment_average_precision(np.array([[0.0, 10.0, 1.0]]), relevant).tolist() == [0.0] * TEN
    exact = np.array([[8.0, 10.0, 0.9], [0.0, 2.0, 0.8]])
    assert moment_average_precision(exact, relevant).tolist() == [1.0] * TEN


def test_moment_metrics_by_hand():
    queries = [
        # A: the ranking of the first AP test: AP 5/6 up to 0.9 and 1/2 at 0.95; first prediction IoU 1
        (np.array([[0.0, 10.0, 0.9], [0.0, 8.0, 0.8], [21.0, 30.0, 0.7]]),
         np.array([[0.0, 10.0], [20.0, 30.0]])),
        # B: first prediction IoU 5/15 (a miss), second IoU 9/10 -> precision 1/2 at recall 1 up to 0.9
        (np.array([[0.0, 10.0, 0.6], [5.0, 14.0, 0.5]]), np.array([[5.0, 15.0]])),
        # C: no predictions
        (np.zeros((0, 3)), np.array([[1.0, 2.0]])),
        # D: a moment past the clip's 60 s duration (ends at 62 s, as the relevant window, 61 s, does too:
        # CASTELLA's annotations do): IoU 6/10 with the second relevant window; recall 1/2 up to 0.6
        (np.array([[52.0, 62.0, 0.4]]), np.array([[10.0, 20.0], [55.0, 61.0]])),
    ]
    ap = {"A": [5 / 6] * 9 + [1 / 2], "B": [1 / 2] * 9 + [0], "C": [0] * 10, "D": [1 / 2] * 3 + [0] * 7}
    m = moment_metrics([p for p, _ in queries], [g for _, g in queries])
    assert list(m) == list(MOMENT_METRIC_NAMES)
    assert m["R1@0.5"] == pytest.approx(2 / 4)  # A (IoU 1) and D (0.6)
    assert m["R1@0.7"] == pytest.approx(1 / 4)  # A
    assert m["mAP@0.5"] == pytest.approx((5 / 6 + 1 / 2 + 0 + 1 / 2) / 4)
    assert m["mAP@0.75"] == pytest.approx((5 / 6 + 1 / 2 + 0 + 0) / 4)
    assert m["mAP"] == pytest.approx(np.mean([np.mean(v) for v in ap.values()]))
    assert m["mAP"] == pytest.approx((0.8 + 0.45 + 0 + 0.15) / 4)


def test_moment_metrics_refuse_mismatched_or_empty_input():
    with pytest.raises(ValueError, match="same queries"):
        moment_metrics([np.zeros((0, 3))], [])
    with pytest.raises(ValueError, match="at least one relevant window"):
        moment_metrics([np.array([[0.0, 1.0, 1.0]])], [np.zeros((0, 2))])


def test_a_score_that_is_no_number_is_a_miss():
    """NaN compares false with everything, which would rank it first (a diverged head scored R@1 = 1); ranked
    at N, it was still a hit for R@10 in a set of up to 10 clips (an all-NaN head had R@10 = 1 on 3 clips)."""
    S = np.array([[np.nan, 0.1, 0.2], [np.nan] * 3, [0.3, np.nan, 0.1]])
    ranks = ranks_from_scores(S, np.array([0, 1, 0]))
    assert ranks[2] == 1 and (ranks[:2] > 10).all()
    for n in (3, 10, 12):
        assert retrieval_metrics(ranks_from_scores(np.full((4, n), np.nan), np.arange(4) % n)) == \
            {"R@1": 0.0, "R@5": 0.0, "R@10": 0.0, "mAP@10": 0.0}


def brute_force_metrics(S: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Each query's clips sorted best first by hand (ties by index, no-number scores after every number);
    a query whose own score is no number is a miss at every cutoff."""
    hits = {k: [] for k in (1, 5, 10)}
    reciprocal = []
    for row, t in zip(S, targets, strict=True):
        numbers = [j for j in range(len(row)) if not np.isnan(row[j])]
        order = sorted(numbers, key=lambda j: (-row[j], j)) + [j for j in range(len(row)) if j not in numbers]
        rank = None if np.isnan(row[t]) else order.index(t) + 1
        for k in hits:
            hits[k].append(rank is not None and rank <= k)
        reciprocal.append(1 / rank if rank is not None and rank <= 10 else 0.0)
    return {**{f"R@{k}": float(np.mean(v)) for k, v in hits.items()}, "mAP@10": float(np.mean(reciprocal))}


@pytest.mark.parametrize("n_clips", [3, 8, 10, 11, 25])
def test_metrics_equal_a_brute_force_ranking_with_ties_and_nans(n_clips):
    rng = np.random.default_rng(n_clips)
    S = rng.integers(0, 4, size=(60, n_clips)).astype(np.float64)  # few values: many ties
    S[rng.random(S.shape) < 0.2] = np.nan
    targets = rng.integers(0, n_clips, size=60)
    assert np.isnan(S[np.arange(60), targets]).any()
    assert retrieval_metrics(ranks_from_scores(S, targets)) == pytest.approx(brute_force_metrics(S, targets))
