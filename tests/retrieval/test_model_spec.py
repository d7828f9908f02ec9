"""ModelSpec: one description of the model, readable from every shape earlier files hold."""

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from retrieval.config import PASST_ARCH, Windowing
from retrieval.errors import CheckpointMismatch
from retrieval.model_spec import (
    ALL_FIELDS,
    ENCODER_FIELDS,
    PASST_FIELDS,
    TEXT_FIELDS,
    ZERO_SHOT,
    ModelSpec,
)

SHA_P = "a" * 64
SHA_H = "b" * 64
TEXT = {"text_model": "all-MiniLM-L6-v2", "text_model_revision": None, "dim": 384}
FULL = ModelSpec(passt_weights=SHA_P, text_model="all-MiniLM-L6-v2", text_model_revision="r1", dim=384,
                 head=SHA_H, lam=0.8)


def test_field_groups_partition_the_fields():
    assert ENCODER_FIELDS == PASST_FIELDS + TEXT_FIELDS
    assert set(ALL_FIELDS) == set(ModelSpec.__dataclass_fields__)
    assert set(ALL_FIELDS) - set(ENCODER_FIELDS) == {"head", "lam"}


def test_defaults_are_the_method():
    s = ModelSpec()
    assert s.passt_arch == PASST_ARCH and s.windowing == Windowing()
    assert (s.window_s, s.hop_s, s.sample_rate) == (10.0, 2.5, 32_000)
    assert s.passt_weights is None and s.head is None and s.lam is None and not s.zero_shot


@pytest.mark.parametrize("spec", [ModelSpec(), FULL, FULL.with_head(ZERO_SHOT, 0.0),
                                  ModelSpec(window_s=1.0, hop_s=0.25, passt_weights="random")])
def test_to_dict_from_dict_round_trip_through_json(spec):
    d = spec.to_dict()
    assert d["format"] == "model-spec/1"
    back = ModelSpec.from_dict(json.loads(json.dumps(d)))
    assert back == spec and back.id == spec.id


def test_id_is_16_hex_stable_and_tells_specs_apart():
    assert re.fullmatch(r"[0-9a-f]{16}", FULL.id)
    again = ModelSpec(**{k: v for k, v in FULL.to_dict().items() if k != "format"})
    assert again.id == FULL.id  # equal specs, equal ids (a hash of the content, not of the object)
    assert ModelSpec(window_s=10, hop_s=2.5).id == ModelSpec().id  # 10 s written as an int is the same spec
    others = [FULL.with_head(SHA_H, 0.5), FULL.with_head("c" * 64, 0.8), FULL.encoders(),
              ModelSpec(**{**_fields(FULL), "dim": 768}),
              ModelSpec(**{**_fields(FULL), "passt_weights": None})]
    assert len({FULL.id} | {o.id for o in others}) == 1 + len(others)


def test_id_is_the_same_in_another_process():
    code = ("from retrieval.model_spec import ModelSpec; "
            f"print(ModelSpec.from_dict({FULL.to_dict()!r}).id)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}, cwd=Path(__file__).parents[2])
    assert out.stdout.strip() == FULL.id


def test_encoders_and_with_head():
    enc = FULL.encoders()
    assert enc.head is None and enc.lam is None
    assert enc.diff(FULL, only=ENCODER_FIELDS) == {}
    zs = enc.with_head(ZERO_SHOT, 0)
    assert zs.zero_shot and zs.lam == 0.0 and isinstance(zs.lam, float)


# -- every shape of the previous formats ---------------------------------------------------------------------
def test_store_fingerprint_of_a_trained_head():
    old = {"head": SHA_H, **TEXT, "passt_arch": PASST_ARCH, "window_s": 10.0, "hop_s": 2.5,
           "sample_rate": 32000}
    s = ModelSpec.from_dict(old)
    assert s == ModelSpec(text_model="all-MiniLM-L6-v2", dim=384, head=SHA_H)
    assert s.passt_weights is None and s.lam is None  # not recorded: matches any


def test_store_fingerprint_of_the_zero_shot_model_has_lam_0():
    old = {"head": "zero-shot", **TEXT, "passt_arch": PASST_ARCH, **Windowing().as_dict()}
    s = ModelSpec.from_dict(old)
    assert s.zero_shot and s.lam == 0.0 and s.dim == 384


def test_head_config_dict():
    old = {**TEXT, "lam": 0.6, "n_tags": 527, "passt_arch": PASST_ARCH,
           "windowing": {"window_s": 10.0, "hop_s": 2.5, "sample_rate": 32000}}
    s = ModelSpec.from_dict(old)
    assert s == ModelSpec(text_model="all-MiniLM-L6-v2", dim=384, lam=0.6)


def test_feature_sidecar_meta():
    old = {"format": "retrieval-features/1", "dataset": "clotho", "split": "development", "clips": ["a.wav"],
           "captions": ["a dog"], **TEXT, "passt_arch": PASST_ARCH,
           "windowing": {"window_s": 1.0, "hop_s": 0.25, "sample_rate": 32000}}
    s = ModelSpec.from_dict(old)
    assert s == ModelSpec(window_s=1.0, hop_s=0.25, text_model="all-MiniLM-L6-v2", dim=384)


def test_shard_manifest_tagger():
    s = ModelSpec.from_dict({"passt_arch": PASST_ARCH, **Windowing().as_dict()})
    assert s == ModelSpec() and s.text_model is None and s.head is None


# -- diff and require_match ----------------------------------------------------------------------------------
def test_diff_names_each_differing_field_with_both_values():
    other = ModelSpec(**{**_fields(FULL), "dim": 768, "hop_s": 5.0})
    assert FULL.diff(other) == {"dim": (384, 768), "hop_s": (2.5, 5.0)}
    assert FULL.diff(other, only=TEXT_FIELDS) == {"dim": (384, 768)}
    assert FULL.diff(other, only=("head", "lam")) == {}


def test_ints_and_floats_of_one_value_match():
    assert ModelSpec(window_s=10, lam=0).diff(ModelSpec(window_s=10.0, lam=0.0)) == {}


def test_a_text_model_folder_is_one_model_however_it_was_named():
    """A folder without a manifest (no revision) is named by its folder's name (retrieval.text.read_identity);
    files made before named it by the service's setting (`x`) or by a path (the library's `models/x`, an
    absolute path, `./models//x/`), and all of these are the model `x`: what they recorded still opens.
    `models/y` is another; a hub id with a revision (a manifest's) is compared whole."""
    spec = ModelSpec(text_model="x", dim=384)
    for spelling in ("models/x", "models/x/", "./models//x", "models/./x", "/srv/models/x", "x"):
        other = ModelSpec(text_model=spelling, dim=384)
        assert spec.diff(other) == {} and other.diff(spec) == {} and other.id == spec.id
        spec.require_match(other, what="the index")
    for other in ("models/y", "y", "models/x/y"):
        assert spec.diff(ModelSpec(text_model=other, dim=384)) == {"text_model": ("x", other)}
    hub = ModelSpec(text_model="sentence-transformers/x", text_model_revision="r1", dim=384)
    assert hub.diff(replace(hub, text_model="other-org/x")) == {"text_model": ("sentence-transformers/x",
                                                                               "other-org/x")}
    assert hub.diff(replace(hub, text_model="sentence-transformers//x/")) == {}
    assert set(hub.diff(spec)) == {"text_model", "text_model_revision"}


@pytest.mark.parametrize("field", ["passt_weights", "lam"])
def test_none_in_passt_weights_or_lam_matches_any_value(field):
    recorded = FULL
    unrecorded = ModelSpec(**{**_fields(FULL), field: None})
    assert recorded.diff(unrecorded) == {} and unrecorded.diff(recorded) == {}
    recorded.require_match(unrecorded, what="x")
    unrecorded.require_match(recorded, what="x")


@pytest.mark.parametrize("field", ["text_model_revision", "head", "text_model", "dim"])
def test_none_elsewhere_is_a_value_like_any_other(field):
    unrecorded = ModelSpec(**{**_fields(FULL), field: None})
    assert field in FULL.diff(unrecorded)
    with pytest.raises(CheckpointMismatch, match=field):
        FULL.require_match(unrecorded, what="x")


def test_two_recorded_weights_must_agree():
    other = ModelSpec(**{**_fields(FULL), "passt_weights": "random", "lam": 0.5})
    assert FULL.diff(other) == {"passt_weights": (SHA_P, "random"), "lam": (0.8, 0.5)}


def test_require_match_names_what_every_field_and_the_fix():
    wanted = ModelSpec(**{**_fields(FULL), "dim": 768, "text_model": "other"})
    with pytest.raises(CheckpointMismatch) as e:
        FULL.require_match(wanted, what="the index", fix="index again")
    msg = str(e.value)
    assert msg.startswith("the index was made with another model")
    assert "dim: the index has 384, configured 768" in msg
    assert "text_model: the index has 'all-MiniLM-L6-v2', configured 'other'" in msg
    assert msg.endswith("; index again")
    FULL.require_match(wanted, only=PASST_FIELDS, what="the index")  # only those fields are compared
    with pytest.raises(CheckpointMismatch, match=r"\)$"):
        FULL.require_match(wanted, what="the index")  # no fix, no trailing "; "


def _fields(spec: ModelSpec) -> dict:
    return {k: v for k, v in spec.to_dict().items() if k != "format"}
