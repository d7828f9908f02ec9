import json

import numpy as np
import pytest

from retrieval.checkpoint import load_checkpoint
from retrieval.errors import CheckpointMismatch, ModelNotFound
from tests.training.synthetic import (
    PlantedTagger,
    PlantedText,
    planted_features,
    planted_models,
    planted_world,
)
from training.evaluate import metrics_of, similarity
from training.features import save_features
from training.reproduce import PAPER, ZERO_SHOT_ROW, Recipe, format_table, reproduce
from training.trainer import RUN_LOG, TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def test_recipe_on_planted_features_with_audiocaps(tmp_path):
    world = planted_world(dim=16)
    sizes = {"clotho_development": 120, "clotho_validation": 60, "clotho_evaluation": 60,
             "audiocaps_train": 150}
    feats = {}
    for i, (name, n) in enumerate(sizes.items()):
        per_clip = 1 if name.startswith("audiocaps") else 5
        feats[name] = planted_features(world, n_clips=n, seed=10 + i, captions_per_clip=per_clip,
                                       split=name.split("_")[1])
        save_features(tmp_path / "features" / f"{name}.safetensors", feats[name])

    recipe = Recipe(seeds=(3, 4), clotho_epochs=2, audiocaps_epochs=2, base=TrainConfig(batch_size=32))
    rows = reproduce(clotho=tmp_path / "no-clotho-audio", audiocaps=tmp_path / "no-audiocaps-audio",
                     out=tmp_path, models=planted_models(16), recipe=recipe)

    by_name = {r.system: r for r in rows}
    assert list(by_name) == [ZERO_SHOT_ROW, "PaSST-MPnet", "PaSST-MPnet-tags", "AudioCaps only",
                             "PaSST-MPnet-tags-AC", "ensemble of 2"]
    evaluation = feats["clotho_evaluation"]
    ensemble = by_name["ensemble of 2"].checkpoints
    heads = [load_checkpoint(p).head for p in ensemble]
    assert [p.split("/")[-2] for p in ensemble] == ["tags_ac_seed3", "tags_ac_seed4"]
    S = (similarity(heads[0], evaluation) + similarity(heads[1], evaluation)) / 2
    assert by_name["ensemble of 2"].ours == pytest.approx(metrics_of(S, evaluation))
    assert by_name["PaSST-MPnet"].ours == pytest.approx(metrics_of(similarity(
        load_checkpoint(by_name["PaSST-MPnet"].checkpoints[0]).head, evaluation), evaluation))
    assert load_checkpoint(by_name["PaSST-MPnet"].checkpoints[0]).spec.lam == 1.0
    assert by_name["ensemble of 2"].paper == PAPER["ensemble of 2"]

    # fine-tuning starts from the AudioCaps model of its seed, selected on Clotho validation
    log = [json.loads(x) for x in (tmp_path / "runs" / "tags_ac_seed4" / RUN_LOG).read_text().splitlines()]
    assert log[0]["config"]["init"].endswith("audiocaps_seed4/head.safetensors")
    assert log[0]["config"]["init_optimizer"] is True and log[0]["val"] == "validation"
    assert load_checkpoint(tmp_path / "runs" / "audiocaps_seed3" / "head.safetensors").metrics["split"] == \
        "validation"

    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["rows"]) == 6 and results["model_spec"] == evaluation.spec.to_dict()
    lines = (tmp_path / "submission_evaluation.csv").read_text().splitlines()
    assert len(lines) == 1 + len(evaluation.captions)
    table = format_table(rows)
    assert "(0.2426)" in table and "challenge baseline (CRNN + Word2Vec) (paper only)" in table
    assert f"{by_name['ensemble of 2'].ours['mAP@10']:.4f} (0.2426)" in table


def test_without_audiocaps_the_ensemble_is_of_the_tags_recipe(tmp_path):
    world = planted_world(dim=16)
    for i, split in enumerate(("development", "validation", "evaluation")):
        save_features(tmp_path / "features" / f"clotho_{split}.safetensors",
                      planted_features(world, n_clips=30, seed=i, split=split))
    rows = reproduce(clotho=tmp_path, audiocaps=None, out=tmp_path, models=planted_models(16),
                     recipe=Recipe(seeds=(0, 1), clotho_epochs=1, base=TrainConfig(batch_size=32)))
    assert [r.system for r in rows] == [ZERO_SHOT_ROW, "PaSST-MPnet", "PaSST-MPnet-tags",
                                        "ensemble of 2, no AudioCaps"]
    assert rows[-1].paper is None  # the paper's ensemble had AudioCaps pre-training
    assert [p.split("/")[-2] for p in rows[-1].checkpoints] == ["tags_seed0", "tags_seed1"]
    assert np.isfinite([rows[-1].ours[k] for k in ("R@1", "mAP@10")]).all()


def test_a_feature_file_is_reused_only_for_the_clips_and_captions_it_holds(tmp_path):
    """OUT/features/clotho_evaluation.safetensors of the dataset at --clotho is reused; the same OUT run on
    another dataset (other clips, or the same clips with other captions) extracts it again."""
    from tests.training.clotho_files import write_captions_csv
    from training.reproduce import feature_file

    root = tmp_path / "clotho"
    (root / "evaluation").mkdir(parents=True)
    fs = planted_features(planted_world(dim=16), n_clips=3, seed=0, split="evaluation")
    for name in fs.clips:
        (root / "evaluation" / name).write_bytes(b"")  # listed clips must be there; never read here
    by_clip = [fs.captions[5 * i:5 * i + 5] for i in range(3)]
    write_captions_csv(root / "clotho_captions_evaluation.csv", list(zip(fs.clips, by_clip, strict=True)))
    path = tmp_path / "out" / "features" / "clotho_evaluation.safetensors"
    path.parent.mkdir(parents=True)
    save_features(path, fs)
    where = {"root": root, "skip_missing": False}
    got = feature_file(tmp_path / "out", "clotho", "evaluation", models=planted_models(16), **where)
    assert got.clips == fs.clips and got.captions == fs.captions  # the same dataset: reused

    class Extracting(Exception):
        pass

    def models():
        raise Extracting

    for rows in ([*zip(fs.clips[:2], by_clip[:2], strict=True)],  # fewer clips
                 [(fs.clips[0], ["other"] * 5), *zip(fs.clips[1:], by_clip[1:], strict=True)]):  # captions
        write_captions_csv(root / "clotho_captions_evaluation.csv", rows)
        with pytest.raises(Extracting):
            feature_file(tmp_path / "out", "clotho", "evaluation", models=models, **where)


def test_a_feature_file_of_other_models_is_not_reused(tmp_path):
    """Reuse compared clips and captions only: with other models configured (or the PaSST weights file gone)
    `reproduce` printed a whole table from the old features."""
    from tests.training.clotho_files import write_clotho_split
    from training.reproduce import feature_file

    rows = write_clotho_split(tmp_path / "clotho", "evaluation", 2, seconds=0.1)
    fs = planted_features(planted_world(dim=16), n_clips=2, seed=0, split="evaluation")
    fs.meta |= {"clips": [name for name, _ in rows], "captions": [c for _, caps in rows for c in caps]}
    path = tmp_path / "out" / "features" / "clotho_evaluation.safetensors"
    save_features(path, fs)
    where = {"root": tmp_path / "clotho", "skip_missing": False}
    assert feature_file(tmp_path / "out", "clotho", "evaluation", models=planted_models(16), **where).clips \
        == fs.clips  # the models that made it: reused

    other_text = PlantedText(16)
    other_text.model_id = "another-model"
    with pytest.raises(KeyboardInterrupt):  # PlantedTagger(stop_after=0): extraction began
        feature_file(tmp_path / "out", "clotho", "evaluation", models=lambda: (PlantedTagger(stop_after=0),
                                                                                other_text), **where)
    with pytest.raises(CheckpointMismatch, match="text_model: .* has 'planted', configured 'another-model'"):
        feature_file(tmp_path / "out", "clotho", "evaluation", models=lambda: (PlantedTagger(), other_text),
                     root=tmp_path / "gone", skip_missing=False)  # no dataset to extract it again from

    def weights_gone():
        raise ModelNotFound("PaSST weights not found: /models/passt.pt")

    with pytest.raises(ModelNotFound):
        feature_file(tmp_path / "out", "clotho", "evaluation", models=weights_gone, **where)
