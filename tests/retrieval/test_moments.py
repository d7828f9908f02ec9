"""Moment merging and IoU on hand-made cases."""

import numpy as np
import pytest

from retrieval.moments import Moment, best_window, iou, merge_windows

# hear21passt's windows of a 30 s clip: 10 s every 2.5 s, clamped to the clip
STARTS = np.array([0.0, 0.0, 0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0, 22.5, 25.0])
ENDS = np.minimum(STARTS + 10.0, 30.0)
ENDS[:3] = [5.0, 7.5, 10.0]


def scores(**at):
    s = np.zeros(len(STARTS))
    for i, x in at.items():
        s[int(i[1:])] = x
    return s


def test_overlapping_windows_above_the_threshold_merge_into_one_scored_by_the_best():
    s = scores(w4=0.6, w5=0.9, w6=0.7, w12=0.8)
    got = merge_windows(STARTS, ENDS, s, threshold=0.5)
    # windows 4-6 cover [5, 20); window 12 covers [25, 30): separate, 20 < 25
    assert got == [Moment(5.0, 20.0, 0.9, 5), Moment(25.0, 30.0, 0.8, 12)]


def test_adjacent_windows_merge_and_a_gap_keeps_them_apart():
    starts, ends = np.array([0.0, 10.0, 21.0]), np.array([10.0, 20.0, 31.0])
    got = merge_windows(starts, ends, np.array([0.6, 0.7, 0.9]), threshold=0.5)
    assert got == [Moment(21.0, 31.0, 0.9, 2), Moment(0.0, 20.0, 0.7, 1)]
    bridged = merge_windows(starts, ends, np.array([0.6, 0.7, 0.9]), threshold=0.5, gap=1.0)
    assert bridged == [Moment(0.0, 31.0, 0.9, 2)]


def test_per_clip_keeps_the_best_and_nothing_reaches_an_unmet_threshold():
    starts, ends = np.arange(5) * 20.0, np.arange(5) * 20.0 + 10.0
    s = np.array([0.1, 0.5, 0.3, 0.9, 0.7])
    assert [m.window for m in merge_windows(starts, ends, s, threshold=0.0, per_clip=3)] == [3, 4, 1]
    assert merge_windows(starts, ends, s, threshold=0.95) == []
    assert best_window(starts, ends, s) == Moment(60.0, 70.0, 0.9, 3)


def test_bad_shapes_and_per_clip_are_refused():
    with pytest.raises(ValueError):
        merge_windows(STARTS, ENDS[:-1], scores(), threshold=0.0)
    with pytest.raises(ValueError):
        merge_windows(STARTS, ENDS, scores(), threshold=0.0, per_clip=0)


@pytest.mark.parametrize("a, b, expected", [
    ((0, 10), (5, 15), 5 / 15),
    ((0, 10), (0, 10), 1.0),
    ((0, 10), (10, 20), 0.0),
    ((0, 10), (2, 4), 0.2),
    ((3, 3), (3, 3), 0.0),
])
def test_iou_by_hand(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)
