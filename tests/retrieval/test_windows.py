"""Where each PaSST window lies in the clip: hand-computed, and against hear21passt's own cutting."""

import numpy as np
import pytest
import torch
from hear21passt.wrapper import PasstBasicWrapper

from retrieval.config import Windowing
from retrieval.windows import WindowLogits, window_spans

RATE = 32_000


def test_30_s_clip_at_10_s_hop_2_5_s_is_13_windows_by_hand():
    starts, ends = window_spans(30 * RATE, Windowing())
    # window i covers [2.5 i - 5, 2.5 i + 5) of the clip, clamped to [0, 30]
    assert starts.tolist() == [0.0, 0.0, 0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0, 22.5, 25.0]
    assert ends.tolist() == [5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0, 22.5, 25.0, 27.5, 30.0, 30.0, 30.0]


def test_scaled_down_windowing_by_hand():
    small = Windowing(window_s=1.0, hop_s=0.25)
    starts, ends = window_spans(3 * RATE, small)  # 13 windows of 1 s every 0.25 s, padded 0.5 s
    assert len(starts) == len(ends) == 13
    np.testing.assert_allclose(starts, [0, 0, 0, .25, .5, .75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5])
    np.testing.assert_allclose(ends, [.5, .75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75, 3, 3, 3])


@pytest.mark.parametrize("seconds", [0.2, 1.0, 10.0])
def test_a_clip_of_up_to_one_window_is_one_window_over_the_whole_clip(seconds):
    starts, ends = window_spans(int(seconds * RATE), Windowing())
    assert starts.tolist() == [0.0] and ends.tolist() == [pytest.approx(seconds)]


class _Mel(torch.nn.Module):
    sr = RATE


class Recorder(PasstBasicWrapper):
    """hear21passt's wrapper that records what its scene-embedding loop feeds the model."""

    def __init__(self, windowing: Windowing):
        super().__init__(mel=_Mel(), net=torch.nn.Identity(), mode="logits",
                         max_model_window=int(windowing.window_s * 1000),
                         scene_hop=int(windowing.hop_s * 1000))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.clone())
        return torch.zeros(x.shape[0], 527)


@pytest.mark.parametrize(("windowing", "seconds"), [(Windowing(), 30.0), (Windowing(), 23.7),
                                                    (Windowing(window_s=1.0, hop_s=0.25), 3.0),
                                                    (Windowing(window_s=1.0, hop_s=0.25), 1.6)])
def test_spans_are_where_hear21passt_cuts(windowing, seconds):
    """Window i of hear21passt holds the clip's samples [start_i, end_i) (the rest is reflect padding), and
    hear21passt's timestamp (the window's centre) is the middle of the unclamped span."""
    n = int(seconds * RATE)
    wave = torch.arange(1, n + 1, dtype=torch.float64) / n  # every sample different
    rec = Recorder(windowing)
    _, stamps_ms = rec.get_timestamp_embeddings(wave[None], window_size=rec.max_model_window,
                                                hop=rec.scene_hop)
    starts, ends = window_spans(n, windowing)
    assert len(rec.seen) == len(starts) == windowing.n_windows(n)
    for i, (segment, s, e) in enumerate(zip(rec.seen, starts, ends, strict=True)):
        segment = segment[0]
        first = i * windowing.hop - windowing.pad  # the clip sample at the segment's position 0
        a, b = round(s * RATE), round(e * RATE)
        torch.testing.assert_close(segment[a - first:b - first], wave[a:b], rtol=0, atol=0)
        inside = {round(float(v) * n) - 1 for v in segment[a - first:b - first]}
        assert min(inside) == a and max(inside) == b - 1
        assert stamps_ms[0, i] / 1000 == pytest.approx(first / RATE + windowing.window_s / 2)


def test_window_logits_shapes_are_checked_and_mean_is_float64_accumulated():
    logits = np.array([[1e8, 1.0], [1.0, 3.0], [-1e8, 2.0]], dtype=np.float32)
    w = WindowLogits(logits=logits, starts=np.zeros(3), ends=np.ones(3))
    assert len(w) == 3
    np.testing.assert_array_equal(w.mean(), np.array([1 / 3, 2.0], np.float32))
    assert w.mean().dtype == np.float32
    with pytest.raises(ValueError, match="starts and ends"):
        WindowLogits(logits=logits, starts=np.zeros(2), ends=np.ones(3))
    with pytest.raises(ValueError):
        WindowLogits(logits=logits[0], starts=np.zeros(1), ends=np.ones(1))
