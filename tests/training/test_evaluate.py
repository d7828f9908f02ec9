import csv
from dataclasses import replace

import numpy as np
import pytest
import torch

from retrieval.checkpoint import Checkpoint, save_checkpoint
from retrieval.errors import CheckpointMismatch
from retrieval.head import RetrievalHead
from retrieval.metrics import ranks_from_scores, retrieval_metrics
from tests.training.clotho_files import write_captions_csv
from tests.training.synthetic import l2, planted_features, planted_world
from training.datasets import DatasetError
from training.evaluate import (
    ensemble_similarity,
    load_heads,
    metrics_of,
    score_submission,
    similarity,
    write_submission,
    zero_shot_head,
)


def test_ranks_by_hand_rank_1_10_11_and_ties():
    S = np.zeros((4, 12))
    S[0] = np.arange(12)[::-1]  # clip 0 scores highest -> rank 1
    S[1, :9], S[1, 11] = 1.0, 0.5  # nine clips above clip 11 -> rank 10
    S[2, :10], S[2, 11] = 1.0, 0.5  # ten clips above clip 11 -> rank 11
    S[3] = 0.5  # all tied: clip 4 comes after clips 0-3 -> rank 5
    ranks = ranks_from_scores(S, np.array([0, 11, 11, 4]))
    assert ranks.tolist() == [1, 10, 11, 5]
    m = retrieval_metrics(ranks)
    assert m == pytest.approx({"R@1": 1 / 4, "R@5": 2 / 4, "R@10": 3 / 4,
                               "mAP@10": (1 + 1 / 10 + 0 + 1 / 5) / 4})


def heads_for(fs, n, seed=0):
    torch.manual_seed(seed)
    return [RetrievalHead(torch.from_numpy(fs.tag_text), lam=0.8) for _ in range(n)]


def test_ensemble_is_the_mean_of_the_heads_scores():
    fs = planted_features(planted_world(dim=16), n_clips=12, seed=0)
    heads = heads_for(fs, 2)
    S = ensemble_similarity(heads, fs)
    np.testing.assert_allclose(S, (similarity(heads[0], fs) + similarity(heads[1], fs)) / 2, atol=1e-6)
    assert S.shape == (60, 12)


def test_zero_shot_scores_through_tag_names_alone():
    fs = planted_features(planted_world(dim=16), n_clips=12, seed=0)
    p = 1 / (1 + np.exp(-fs.logits.astype(np.float64)))
    a = l2(p @ fs.tag_text)  # (N, D)
    t = fs.text - fs.text.mean(1, keepdims=True)
    q = l2(t / np.sqrt(t.var(1, keepdims=True) + 1e-5))  # (M, D)
    np.testing.assert_allclose(similarity(zero_shot_head(fs), fs), q @ a.T, atol=1e-5)


def test_submission_round_trip_matches_the_metrics(tmp_path):
    fs = planted_features(planted_world(dim=16), n_clips=15, seed=1)
    fs.meta["clips"] = [f"clip, {i}.wav" for i in range(15)]
    fs.meta["captions"] = [f'caption "{m}", of a clip' for m in range(75)]
    fs.meta["captions"][7] = fs.meta["captions"][61] = "the same words twice"  # clips 1 and 12
    S = similarity(heads_for(fs, 1)[0], fs)
    write_submission(tmp_path / "sub.csv", S=S, fs=fs)
    rows = [(fs.clips[n], fs.captions[5 * n: 5 * n + 5]) for n in range(15)]
    captions_csv = write_captions_csv(tmp_path / "clotho_captions_evaluation.csv", rows)
    want = metrics_of(S, fs)
    assert 0 < want["R@10"] < 1  # some captions rank their clip past 10
    assert score_submission(tmp_path / "sub.csv", captions_csv) == pytest.approx(want)

    lines = (tmp_path / "sub.csv").read_text().splitlines()
    assert lines[0] == "caption," + ",".join(f"file_name_{i}" for i in range(1, 11)) and len(lines) == 76
    (tmp_path / "short.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DatasetError, match="no row for the caption"):
        score_submission(tmp_path / "short.csv", captions_csv)


@pytest.mark.parametrize(("cells", "message"), [
    (lambda names: names[:9], r"line 5: 9 distinct clips for .*; a set of 15 clips needs 10"),
    (lambda names: names[:9] + names[:1], r"line 5: 9 distinct clips"),
    (lambda names: names[:9] + ["other.wav"], r"line 5: 'other\.wav' is no clip of"),
])
@pytest.mark.parametrize("broken_caption", [False, True], ids=["one-line", "caption-over-two-lines"])
def test_a_row_of_fewer_repeated_or_other_clips_is_refused(tmp_path, cells, message, broken_caption):
    """A row naming fewer than 10 clips of a set of 15 (or one twice, or a file of another set) would score
    as if the missing ranks were misses: it is a broken submission, and says where: the file's line, one
    further down when a caption above holds a line break (its row takes two lines)."""
    fs = planted_features(planted_world(dim=16), n_clips=15, seed=1)
    if broken_caption:
        fs.meta["captions"][0] = "a caption\nover two lines"
        message = message.replace("line 5", "line 6")
    S = similarity(heads_for(fs, 1)[0], fs)
    write_submission(tmp_path / "sub.csv", S=S, fs=fs)
    captions_csv = write_captions_csv(tmp_path / "captions.csv",
                                      [(fs.clips[n], fs.captions[5 * n: 5 * n + 5]) for n in range(15)])
    assert score_submission(tmp_path / "sub.csv", captions_csv)["R@10"] > 0
    with open(tmp_path / "sub.csv", newline="") as f:
        rows = list(csv.reader(f))
    rows[4] = [rows[4][0], *cells(rows[4][1:])]
    with open(tmp_path / "sub.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(DatasetError, match=message):
        score_submission(tmp_path / "sub.csv", captions_csv)


def test_checkpoints_of_other_models_are_refused(tmp_path):
    fs = planted_features(planted_world(dim=16), n_clips=4, seed=0)
    head = heads_for(fs, 1)[0]
    spec = fs.spec
    save_checkpoint(tmp_path / "ok.safetensors", Checkpoint(head, spec))
    assert len(load_heads([tmp_path / "ok.safetensors"], fs)) == 1
    other = replace(spec, text_model="another-model")
    save_checkpoint(tmp_path / "other.safetensors", Checkpoint(head, other))
    with pytest.raises(CheckpointMismatch, match="another-model"):
        load_heads([tmp_path / "ok.safetensors", tmp_path / "other.safetensors"], fs)
