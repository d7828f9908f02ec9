"""Moment retrieval on planted per-window logits: hand-made windows, hand-computed IoUs and APs; the
benchmarks' submission file written from them."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from retrieval.checkpoint import Checkpoint, save_checkpoint
from retrieval.config import N_TAGS, SAMPLE_RATE, Windowing
from retrieval.contracts import SentenceEncoder
from retrieval.errors import CheckpointMismatch
from retrieval.head import RetrievalHead
from retrieval.labels import audioset_labels
from retrieval.model_spec import ModelSpec
from retrieval.pipeline import tag_text_embeddings, text_spec
from retrieval.text import read_identity
from retrieval.windows import WindowLogits, window_spans
from training.datasets import DatasetError, MomentQuery
from training.evaluate_moments import (
    evaluate_moments,
    moment_retriever,
    predict_moments,
    predict_queries,
    read_predictions,
    score_predictions,
    write_predictions,
)
from training.features import FORMAT, FeatureFileError, FeatureSet, save_features

pytestmark = pytest.mark.usefixtures("one_thread")

DOG, SPEECH = (list(audioset_labels()).index(name) for name in ("Dog", "Speech"))


def clip_windows(seconds: float) -> WindowLogits:
    """hear21passt's windows of a clip, every tag silent (logit -10)."""
    starts, ends = window_spans(int(seconds * SAMPLE_RATE), Windowing())
    return WindowLogits(np.full((len(starts), N_TAGS), -10.0, np.float32), starts, ends)


# A 30 s clip's 13 windows: 0 [0, 5], 1 [0, 7.5], 2 [0, 10], 3 [2.5, 12.5], 4 [5, 15], 5 [7.5, 17.5],
# 6 [10, 20], 7 [12.5, 22.5], 8 [15, 25], 9 [17.5, 27.5], 10 [20, 30], 11 [22.5, 30], 12 [25, 30]
# A 61.5 s clip's last two: 23 [52.5, 61.5], 24 [55, 61.5]
A, B = clip_windows(30.0), clip_windows(61.5)
A.logits[[4, 5], DOG] = 10.0  # a dog in [5, 17.5] ...
A.logits[12, DOG] = 8.0  # ... and, a little less sure, in [25, 30]
B.logits[[23, 24], SPEECH] = 10.0  # speech in [52.5, 61.5], past the annotated 60 s


# Queries on them, as annotation lines (qid, vid, query, relevant windows, duration), and their metrics:
HAND_MADE = [
    # moments [5, 17.5] then [25, 30]: IoU 10/12.5 = 0.8 with [5, 15], and 1 with [25, 30]
    # -> AP 1 up to 0.8; above, only the second hits: precision 1/2 at recall 1/2 -> AP 1/4
    ("q1", "a", "a dog barks", [(5, 15), (25, 30)], 30.0),
    # the moment [52.5, 61.5] is not cut at the annotated 60 s: IoU 7/9 = 0.78 with [54, 61]
    # -> AP 1 up to 0.75 (cut at 60 s, the IoU would be 6/8.5 = 0.71)
    ("q2", "b", "someone is speaking", [(54, 61)], 60.0),
    # the same moments as q1, nowhere near [0, 2]: AP 0
    ("q3", "a", "a dog barks", [(0, 2)], 30.0),
]
AP = {"q1": [1] * 7 + [1 / 4] * 3, "q2": [1] * 6 + [0] * 4, "q3": [0] * 10}
HAND_METRICS = {"R1@0.5": 2 / 3, "R1@0.7": 2 / 3, "mAP": (0.775 + 0.6 + 0) / 3, "mAP@0.5": 2 / 3,
                "mAP@0.75": 2 / 3}


def moment_features(text: SentenceEncoder) -> FeatureSet:
    """Clips "a" and "b" with their windows; the zero-shot model's tag names from ``text``."""
    spec = text_spec(ModelSpec(passt_weights="planted"), text)
    meta = {"format": FORMAT, "dataset": "moments", "split": "test", "clips": ["a", "b"], "captions": [],
            "model_spec": spec.to_dict()}
    fs = FeatureSet(logits=np.stack([A.mean(), B.mean()]), text=np.zeros((0, spec.dim), np.float32),
                    caption_clip=np.zeros(0, np.int64), tag_text=tag_text_embeddings(text).numpy(),
                    meta=meta, windows=[A, B])
    fs.check()
    return fs


@pytest.fixture(scope="module")
def features(text_encoder) -> FeatureSet:
    return moment_features(text_encoder)


def query(qid, vid, text, *windows, duration=30.0) -> MomentQuery:
    return MomentQuery(qid, text, vid, duration, np.array(windows, dtype=np.float64))


def test_windows_reaching_the_relative_threshold_merge_into_moments_best_first():
    scores = np.zeros(len(A))
    scores[[4, 5]], scores[12] = 1.0, 0.9
    assert predict_moments(A, scores).tolist() == [[5.0, 17.5, 1.0], [25.0, 30.0, 0.9]]  # threshold 0.8
    assert predict_moments(A, scores, relative_threshold=1.0).tolist() == [[5.0, 17.5, 1.0]]
    assert predict_moments(A, scores, relative_threshold=0.0).tolist() == [[0.0, 30.0, 1.0]]  # all windows
    # 0.31 + 1.0 * (0.93 - 0.31) rounds above 0.93: the best window still passes
    scores[[4, 5]], scores[12] = 0.93, 0.31
    scores[scores == 0] = 0.31
    assert predict_moments(A, scores, relative_threshold=1.0).tolist() == [[5.0, 17.5, 0.93]]
    with pytest.raises(ValueError, match="relative_threshold"):
        predict_moments(A, scores, relative_threshold=1.5)


def test_moment_metrics_of_planted_windows_by_hand(features, text_encoder):
    queries = [query(qid, vid, text, *windows, duration=d) for qid, vid, text, windows, d in HAND_MADE]
    retriever = moment_retriever(features, text_encoder, None)
    scores = retriever.project(A.logits) @ retriever.encode_text(["a dog barks"])[0]
    assert predict_moments(A, scores)[:, :2].tolist() == [[5.0, 17.5], [25.0, 30.0]]
    scores = retriever.project(B.logits) @ retriever.encode_text(["someone is speaking"])[0]
    assert predict_moments(B, scores)[:, :2].tolist() == [[52.5, 61.5]]

    assert evaluate_moments(queries, features, retriever) == pytest.approx(HAND_METRICS)
    assert HAND_METRICS["mAP"] == pytest.approx(np.mean([np.mean(v) for v in AP.values()]))


def test_a_missing_clip_missing_windows_and_other_models_are_refused(features, text_encoder):
    retriever = moment_retriever(features, text_encoder, None)
    with pytest.raises(FeatureFileError, match=r"1 clips .* not in the feature file, e.g. \['gone'\]"):
        evaluate_moments([query(1, "a", "a dog", (0, 2)), query(2, "gone", "a dog", (0, 2))], features,
                         retriever)
    no_windows = FeatureSet(**{**features.__dict__, "windows": None})
    with pytest.raises(FeatureFileError, match="retrieval features --windows"):
        evaluate_moments([query(1, "a", "a dog", (0, 2))], no_windows, retriever)
    other = FeatureSet(**{**features.__dict__,
                          "meta": {**features.meta, "model_spec": {**features.meta["model_spec"],
                                                                   "text_model": "another-model"}}})
    with pytest.raises(CheckpointMismatch, match="another-model"):
        moment_retriever(other, text_encoder, None)  # its tag names are another model's


def test_a_trained_checkpoint_scores_the_windows_through_its_projection(features, text_encoder, tmp_path):
    torch.manual_seed(0)
    head = RetrievalHead(torch.from_numpy(features.tag_text), lam=0.5).eval()
    path = tmp_path / "head.safetensors"
    sha = save_checkpoint(path, Checkpoint(head, features.spec))
    retriever = moment_retriever(features, text_encoder, path)
    assert retriever.spec.head == sha and retriever.spec.lam == 0.5
    with torch.inference_mode():
        want = head.encode_audio(torch.from_numpy(A.logits)).numpy()  # (13, D)
    np.testing.assert_allclose(retriever.project(A.logits), want, atol=1e-6)
    zero = moment_retriever(features, text_encoder, None)
    assert zero.spec.zero_shot and not np.allclose(zero.project(A.logits), want, atol=1e-3)


# The benchmarks' submission file (jayleicn/moment_detr standalone_eval/README.md, "Format"; eval.py reads
# qid, and pred_relevant_windows as [start, end, score] with the first one taken for R1)
SUBMISSION_KEYS = ["qid", "query", "vid", "pred_relevant_windows"]


def hand_made_queries() -> list[MomentQuery]:
    return [query(qid, vid, text, *windows, duration=d) for qid, vid, text, windows, d in HAND_MADE]


def submission_lines(path) -> list[dict]:
    """The file parsed line by line, as their load_jsonl does; every line is ASCII."""
    raw = path.read_bytes().decode("ascii")
    assert raw.endswith("\n") and "\r" not in raw
    return [json.loads(line) for line in raw.splitlines()]


def assert_submission_line(d: dict) -> None:
    assert list(d) == SUBMISSION_KEYS
    assert isinstance(d["qid"], str | int) and not isinstance(d["qid"], bool)
    assert isinstance(d["vid"], str) and isinstance(d["query"], str)
    windows = d["pred_relevant_windows"]
    assert isinstance(windows, list) and windows
    for w in windows:
        assert isinstance(w, list) and len(w) == 3 and all(type(x) is float for x in w)
        assert 0 <= w[0] < w[1]
    scores = [w[2] for w in windows]
    assert scores == sorted(scores, reverse=True)  # best first


def test_the_submission_file_holds_each_querys_moments_best_first(features, text_encoder, tmp_path):
    queries = hand_made_queries()
    retriever = moment_retriever(features, text_encoder, None)
    predictions = predict_queries(queries, features, retriever)
    path = tmp_path / "preds" / "castella_test_submission.jsonl"
    write_predictions(path, queries, predictions)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left

    lines = submission_lines(path)
    assert [d["qid"] for d in lines] == ["q1", "q2", "q3"]  # every annotated query, in annotation order
    for d in lines:
        assert_submission_line(d)
    assert [(d["vid"], d["query"]) for d in lines] == [("a", "a dog barks"), ("b", "someone is speaking"),
                                                       ("a", "a dog barks")]
    # the planted moments: the dog in [5, 17.5] (surer) and [25, 30], the speech in [52.5, 61.5]
    assert [[w[:2] for w in d["pred_relevant_windows"]] for d in lines] == [
        [[5.0, 17.5], [25.0, 30.0]], [[52.5, 61.5]], [[5.0, 17.5], [25.0, 30.0]]]
    for d, p in zip(lines, predictions, strict=True):
        assert d["pred_relevant_windows"] == p.tolist()  # the scores exactly as predicted

    # what their compute_mr_r1 reads: each query's first window, against its best-overlapping relevant one
    first = {d["qid"]: d["pred_relevant_windows"][0][:2] for d in lines}
    assert first == {"q1": [5.0, 17.5], "q2": [52.5, 61.5], "q3": [5.0, 17.5]}
    # IoUs 10/12.5 = 0.8 with [5, 15], 7/9 = 0.78 with [54, 61], 0 with [0, 2]: R1@0.5 = R1@0.7 = 2/3

    # scored from the file, the numbers are those the evaluation computed, and the hand-computed ones
    assert score_predictions(path, queries) == evaluate_moments(queries, features, retriever)
    assert score_predictions(path, queries) == pytest.approx(HAND_METRICS)
    assert {qid: p.tolist() for qid, p in read_predictions(path).items()} == {
        q.qid: p.tolist() for q, p in zip(queries, predictions, strict=True)}


def test_an_integer_qid_stays_an_integer_and_text_is_escaped(tmp_path):
    q = query(7803, "a", "un café qui siffle", (5, 15))
    path = tmp_path / "s.jsonl"
    # unsorted on purpose: the file lists the moments best first
    write_predictions(path, [q], [np.array([[25.0, 30.0, 0.25], [5.0, 17.5, 0.75]])])
    assert path.read_text().startswith('{"qid": 7803, "query": "un caf\\u00e9 qui siffle", "vid": "a", ')
    [d] = submission_lines(path)
    assert_submission_line(d)
    assert d == {"qid": 7803, "query": "un café qui siffle", "vid": "a",
                 "pred_relevant_windows": [[5.0, 17.5, 0.75], [25.0, 30.0, 0.25]]}
    # IoU 0.8 at the first window: R1 1 at 0.5 and 0.7; AP 1 up to 0.8, then 0
    assert score_predictions(path, [q]) == pytest.approx(
        {"R1@0.5": 1.0, "R1@0.7": 1.0, "mAP": 0.7, "mAP@0.5": 1.0, "mAP@0.75": 1.0})
    with pytest.raises(ValueError, match="1 queries but 2 predictions"):
        write_predictions(path, [q], [np.zeros((0, 3)), np.zeros((0, 3))])


def test_a_malformed_or_incomplete_submission_is_refused(tmp_path):
    queries = [query("q1", "a", "a dog", (5, 15)), query(2, "a", "a cat", (0, 2))]
    path = tmp_path / "s.jsonl"
    write_predictions(path, queries, [np.array([[5.0, 15.0, 1.0]]), np.array([[0.0, 2.0, 1.0]])])
    assert score_predictions(path, queries) == pytest.approx(
        {"R1@0.5": 1.0, "R1@0.7": 1.0, "mAP": 1.0, "mAP@0.5": 1.0, "mAP@0.75": 1.0})
    good = path.read_text()
    with pytest.raises(DatasetError, match=r"1 missing \(e\.g\. \['q3'\]\), 1 not annotated \(e\.g\. \['2'"):
        score_predictions(path, [queries[0], query("q3", "a", "a cat", (0, 2))])
    windows = r"pred_relevant_windows must be a list of \[start, end, score\]"
    for bad, message in [('{"qid": "q1"}', "a JSON object with qid and pred_relevant_windows"),
                         ('{"qid": true, "pred_relevant_windows": []}', "qid must be"),
                         ('{"qid": "q9", "pred_relevant_windows": [[0, 1]]}', windows),
                         ('{"qid": "q9", "pred_relevant_windows": [[0, 1, NaN]]}', windows),
                         ('{"qid": "q1", "pred_relevant_windows": []}', "qid 'q1' is predicted twice"),
                         ("[1, 2", "not JSON")]:
        (tmp_path / "bad.jsonl").write_text(good + bad + "\n")
        with pytest.raises(DatasetError, match=rf"bad\.jsonl, line 3: {message}"):
            read_predictions(tmp_path / "bad.jsonl")
    with pytest.raises(DatasetError, match="not found"):
        read_predictions(tmp_path / "none.jsonl")


def test_evaluate_moments_writes_the_submission_it_scored(features, tmp_path, monkeypatch, minilm_path):
    monkeypatch.setenv("RETRIEVAL_PASST_WEIGHTS", "random")
    monkeypatch.setenv("RETRIEVAL_TEXT_MODEL", str(minilm_path))
    monkeypatch.setenv("RETRIEVAL_DEVICE", "cpu")
    monkeypatch.setenv("RETRIEVAL_MODELS_DIR", str(tmp_path / "models"))
    model_id, revision = read_identity(minilm_path)  # the model as the settings and the library name it
    fs = FeatureSet(**{**features.__dict__, "meta": {**features.meta, "model_spec": {
        **features.meta["model_spec"], "text_model": model_id, "text_model_revision": revision}}})
    save_features(tmp_path / "m.safetensors", fs)
    annotations = tmp_path / "test.jsonl"
    annotations.write_text("".join(json.dumps({"qid": qid, "query": text, "duration": d, "vid": vid,
                                               "relevant_windows": [list(w) for w in windows]}) + "\n"
                                   for qid, vid, text, windows, d in HAND_MADE))
    submission = tmp_path / "out" / "submission.jsonl"
    result = CliRunner().invoke(app, ["evaluate-moments", "--features", str(tmp_path / "m.safetensors"),
                                      "--annotations", str(annotations), "--zero-shot",
                                      "--predictions", str(submission)])
    assert result.exit_code == 0, (result.output, result.exception)
    printed = result.stdout.strip()
    assert printed == "R1@0.5 0.6667  R1@0.7 0.6667  mAP 0.4583  mAP@0.5 0.6667  mAP@0.75 0.6667"

    lines = submission_lines(submission)
    assert [d["qid"] for d in lines] == ["q1", "q2", "q3"]
    for d in lines:
        assert_submission_line(d)
    scored = score_predictions(submission, hand_made_queries())
    assert "  ".join(f"{k} {scored[k]:.4f}" for k in scored) == printed  # the numbers it printed
    assert scored == pytest.approx(HAND_METRICS)
