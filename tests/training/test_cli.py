"""From generated audio and Clotho-format captions through `features`, `train` and `evaluate`, offline."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from retrieval.checkpoint import load_checkpoint
from retrieval.text import read_identity
from tests.audio_fixtures import sine, write
from tests.training.clotho_files import write_clotho_split
from tests.training.synthetic import PlantedTagger
from tests.training.test_evaluate_moments import HAND_MADE, HAND_METRICS, moment_features
from training.evaluate import ensemble_similarity, metrics_of, zero_shot_head
from training.features import load_features, save_features
from training.trainer import RUN_LOG

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def env(monkeypatch, tmp_path, minilm_path):
    monkeypatch.setenv("RETRIEVAL_PASST_WEIGHTS", "random")
    monkeypatch.setenv("RETRIEVAL_TEXT_MODEL", str(minilm_path))
    monkeypatch.setenv("RETRIEVAL_DEVICE", "cpu")
    monkeypatch.setenv("RETRIEVAL_MODELS_DIR", str(tmp_path / "models"))


def invoke(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_features_train_evaluate_score(env, tmp_path):
    root = tmp_path / "clotho"
    write_clotho_split(root, "development", 3, seconds=0.5)
    write_clotho_split(root, "validation", 3, seconds=0.5, offset=3)
    feats = tmp_path / "features"
    for split in ("development", "validation"):
        out = invoke("features", "--dataset", "clotho", "--split", split, "--root", root,
                     "--out", feats / f"{split}.safetensors")
        assert "3 clips, 15 captions" in out
    dev_file, val_file = feats / "development.safetensors", feats / "validation.safetensors"
    val = load_features(val_file)
    assert val.spec.text_model.endswith("model") and val.text.shape == (15, 384)

    out = invoke("train", "--train", dev_file, "--val", val_file, "--out", tmp_path / "run",
                 "--epochs", 2, "--batch-size", 8, "--seed", 1)
    assert out.startswith("best epoch ")
    ckpt = tmp_path / "run" / "head.safetensors"
    records = (tmp_path / "run" / RUN_LOG).read_text().splitlines()
    assert [json.loads(r).get("epoch") for r in records] == [None, 0, 1, 2]
    again = ["train", "--train", str(dev_file), "--val", str(val_file), "--out", str(tmp_path / "run"),
             "--epochs", "1", "--batch-size", "8"]
    refused = CliRunner().invoke(app, again)
    assert refused.exit_code == 2
    assert "holds a run already" in refused.output and "--overwrite" in refused.output
    assert len((tmp_path / "run" / RUN_LOG).read_text().splitlines()) == 4  # the first run, untouched
    invoke(*again, "--overwrite", "--seed", 1)
    assert len((tmp_path / "run" / RUN_LOG).read_text().splitlines()) == 3
    invoke("train", "--train", dev_file, "--val", val_file, "--out", tmp_path / "run", "--epochs", 2,
           "--batch-size", 8, "--seed", 1, "--overwrite")  # the run the rest of the test scores

    sub = tmp_path / "submission.csv"
    got = json.loads(invoke("evaluate", "--features", val_file, "--checkpoint", ckpt,
                            "--json", "--submission", sub))
    want = metrics_of(ensemble_similarity([load_checkpoint(ckpt).head], val), val)
    assert got == pytest.approx(want) and list(got) == ["R@1", "R@5", "R@10", "mAP@10"]

    scored = json.loads(invoke("score", "--predictions", sub, "--captions",
                               root / "clotho_captions_validation.csv", "--json"))
    assert scored == pytest.approx(got)

    two = invoke("evaluate", "--features", val_file, "--checkpoint", ckpt,
                 "--checkpoint", ckpt)  # an ensemble of one model twice scores as the model
    assert two.strip() == "  ".join(f"{k} {v:.4f}" for k, v in got.items())
    zero = json.loads(invoke("evaluate", "--features", val_file, "--zero-shot", "--json"))
    assert zero == pytest.approx(metrics_of(ensemble_similarity([zero_shot_head(val)], val), val))


def test_errors_are_one_line_and_exit_2(env, tmp_path):
    result = CliRunner().invoke(app, ["features", "--dataset", "clotho", "--split", "validation", "--root",
                                      str(tmp_path), "--out", str(tmp_path / "f.safetensors")])
    assert result.exit_code == 2 and "error: captions file not found" in result.output
    missing = str(tmp_path / "f.safetensors")
    result = CliRunner().invoke(app, ["evaluate", "--features", missing, "--json"])
    assert result.exit_code == 2 and "--zero-shot" in result.output
    result = CliRunner().invoke(app, ["evaluate", "--features", missing, "--zero-shot"])
    assert result.exit_code == 2 and "error: feature file" in result.output
    result = CliRunner().invoke(app, ["train", "--train", missing, "--val", missing, "--out", str(tmp_path),
                                      "--plateau-threshold-mode", "relative"])
    assert result.exit_code == 2 and "rel or abs" in result.output
    result = CliRunner().invoke(app, ["train", "--train", missing, "--val", missing, "--out", str(tmp_path)])
    assert result.exit_code == 2 and "error: feature file" in result.output
    for bad in (["--lr", "-1"], ["--lr", "0"], ["--plateau-factor", "2"], ["--margin", "-1"],
                ["--init-optimizer"], ["--lr", "inf"], ["--lr", "nan"], ["--margin", "inf"],
                ["--weight-decay", "inf"], ["--plateau-threshold", "inf"]):
        args = ["train", "--train", missing, "--val", missing, "--out", str(tmp_path), *bad]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and bad[0] in result.output, bad  # refused before anything is read
    result = CliRunner().invoke(app, ["score", "--predictions", str(tmp_path / "nosuch.csv"), "--captions",
                                      missing])
    assert result.exit_code == 2 and "error: predictions file not found" in result.output


def test_a_file_that_is_not_utf8_text_is_one_line_naming_it(tmp_path):
    """Latin-1 captions, or a WAV named by mistake: the reader names the file (a traceback ended in the
    codec's bare UnicodeDecodeError); the file list of `index extract-ray` too."""
    from index.ingest.ray_shards import read_file_list
    from retrieval.text_files import NotText

    latin = tmp_path / "captions.csv"
    latin.write_bytes("file_name,caption_1\nrain.wav,pluie sur le toit d'un caf\xe9\n".encode("latin-1"))
    result = CliRunner().invoke(app, ["score", "--predictions", str(latin), "--captions", str(latin)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (f"error: {latin} is not UTF-8 text (invalid continuation byte): save it "
                                     "as UTF-8, or name the right file")
    with pytest.raises(NotText, match="captions.csv is not UTF-8 text"):
        read_file_list(latin)


def test_author_code_and_no_tags_options():
    from cli.train_cmds import train_config

    cfg = train_config(author_code=True, no_tags=True, lr=2e-3)
    assert (cfg.batch_size, cfg.plateau_factor, cfg.plateau_threshold, cfg.plateau_threshold_mode) == \
        (32, 0.1, 0.01, "abs")
    assert cfg.lam == 1.0 and cfg.lr == 2e-3 and cfg.epochs == 30
    paper = train_config(author_code=False, no_tags=False)
    assert (paper.batch_size, paper.plateau_factor, paper.lam, paper.margin) == (128, 0.5, 0.8, 0.4)


def write_annotations(path, rows) -> str:
    path.write_text("".join(json.dumps({"qid": qid, "query": text, "duration": duration, "vid": vid,
                                        "relevant_windows": [list(w) for w in windows]}) + "\n"
                            for qid, vid, text, windows, duration in rows))
    return str(path)


def test_evaluate_moments_prints_and_writes_the_metrics(env, tmp_path, text_encoder, minilm_path):
    fs = moment_features(text_encoder)
    model_id, revision = read_identity(minilm_path)  # the model as the settings and the library name it
    fs.meta["model_spec"] = {**fs.meta["model_spec"], "text_model": model_id, "text_model_revision": revision}
    save_features(tmp_path / "m.safetensors", fs)
    annotations = write_annotations(tmp_path / "test.jsonl", HAND_MADE)
    out = invoke("evaluate-moments", "--features", tmp_path / "m.safetensors", "--annotations", annotations,
                 "--zero-shot", "--out", tmp_path / "results" / "moments.json")
    assert out.strip() == "R1@0.5 0.6667  R1@0.7 0.6667  mAP 0.4583  mAP@0.5 0.6667  mAP@0.75 0.6667"
    written = json.loads((tmp_path / "results" / "moments.json").read_text())
    assert written == pytest.approx(HAND_METRICS) and list(written) == list(HAND_METRICS)

    def fails(*args) -> str:
        result = CliRunner().invoke(app, ["evaluate-moments", "--features", str(tmp_path / "m.safetensors"),
                                          "--annotations", *map(str, args)])
        assert result.exit_code == 2, result.output
        return result.output

    assert "--zero-shot" in fails(annotations)
    (tmp_path / "bad.jsonl").write_text(Path(annotations).read_text() + '{"qid": "q4", "query": \n')
    assert "bad.jsonl, line 4: not JSON" in fails(tmp_path / "bad.jsonl", "--zero-shot")
    gone = write_annotations(tmp_path / "gone.jsonl", [("q9", "nowhere", "a dog", [(0, 1)], 5.0)])
    assert "['nowhere']" in fails(gone, "--zero-shot")
    fs.windows = None
    save_features(tmp_path / "m.safetensors", fs)
    assert "retrieval features --windows" in fails(annotations, "--zero-shot")


def test_features_of_a_moment_set_keep_their_windows(env, tmp_path, monkeypatch):
    monkeypatch.setattr("app.compose.load_tagger", lambda settings: PlantedTagger())  # no PaSST here
    (tmp_path / "audio").mkdir()
    write(tmp_path / "audio" / "a.wav", sine(seconds=12.5, rate=8000), 8000)
    annotations = write_annotations(tmp_path / "test.jsonl", [("q1", "a", "a tone", [(0, 5)], 12.0),
                                                              ("q2", "a", "a beep", [(5, 9)], 12.0)])
    out = invoke("features", "--dataset", "moments", "--split", "test", "--root", tmp_path / "audio",
                 "--annotations", annotations, "--windows", "--out", tmp_path / "m.safetensors")
    assert "1 clips, 2 captions" in out
    fs = load_features(tmp_path / "m.safetensors")
    assert fs.clips == ["a"] and fs.windows is not None and fs.windows[0].ends.tolist()[-1] == 12.5


def test_an_interrupted_train_says_where_its_head_is(tmp_path, monkeypatch):
    """Ctrl-C ended `train` with rc 130 and no word, the folder looking like a finished run."""
    import training.trainer as trainer
    from tests.training.synthetic import planted_features, planted_world

    world = planted_world(dim=16)
    for name, seed in (("train", 1), ("val", 2)):
        save_features(tmp_path / f"{name}.safetensors", planted_features(world, n_clips=20, seed=seed))
    real_validate, calls = trainer.validate, []

    def interrupted_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(trainer, "validate", interrupted_in_epoch_2)
    result = CliRunner().invoke(app, ["train", "--train", str(tmp_path / "train.safetensors"), "--val",
                                      str(tmp_path / "val.safetensors"), "--out", str(tmp_path / "run"),
                                      "--epochs", "3", "--batch-size", "16", "--device", "cpu"])
    assert result.exit_code == 130, result.output
    head = tmp_path / "run" / "head.safetensors"
    assert f"training interrupted in epoch 2: {head} holds epoch 1, the best before it" in result.output
    assert json.loads((tmp_path / "run" / RUN_LOG).read_text().splitlines()[-1])["stopped"] == "interrupted"
    # its head evaluates, and is said to be the best of a run that did not finish
    monkeypatch.undo()
    scored = CliRunner().invoke(app, ["evaluate", "--features", str(tmp_path / "val.safetensors"),
                                      "--checkpoint", str(head)])
    assert scored.exit_code == 0, scored.output
    assert f"warning: {head} is from a run that was interrupted in epoch 2: it holds epoch 1" in scored.output


def test_a_submission_folder_that_cannot_be_written_is_said_first(tmp_path, monkeypatch):
    from retrieval import durable

    locked = tmp_path / "ro"
    locked.mkdir()
    real_access = durable.os.access
    monkeypatch.setattr(durable.os, "access",
                        lambda p, mode, **kw: Path(p) != locked and real_access(p, mode, **kw))
    result = CliRunner().invoke(app, ["evaluate", "--features", str(tmp_path / "absent.safetensors"),
                                      "--zero-shot", "--submission", str(locked / "sub.csv")])
    assert result.exit_code == 2 and f"cannot write in {locked}" in result.output, result.output


def test_an_evaluate_that_fails_leaves_no_submission_folder_behind(tmp_path):
    """The folder was made first (to refuse one that cannot be written), so a later error left it empty."""
    result = CliRunner().invoke(app, ["evaluate", "--features", str(tmp_path / "absent.safetensors"),
                                      "--zero-shot", "--submission", str(tmp_path / "out" / "sub.csv")])
    assert result.exit_code == 2 and "absent.safetensors" in result.output, result.output
    assert not (tmp_path / "out").exists()
