"""`retrieval models fetch | verify` on folders (no network); the start-up error without models."""

import hashlib

import pytest
from typer.testing import CliRunner

from app.compose import load_tagger, load_text_encoder
from app.settings import Settings
from cli.main import app
from retrieval.config import MPNET_SAFETENSORS_SIZE, PASST_FILENAME, PASST_SIZE
from retrieval.errors import ModelNotFound
from tests.fetch.fakes import FOLDER, entries, fake_model_folder

CKPT = b"passt" * 1000


@pytest.fixture
def carried(tmp_path):
    """What an operator copies to an air-gapped host: a PaSST file and a text model folder (here a fake)."""
    usb = tmp_path / "usb"
    fake_model_folder(usb / FOLDER, weights=b"not the real all-mpnet-base-v2")
    (usb / PASST_FILENAME).write_bytes(CKPT)
    return usb


def run(*args):
    return CliRunner().invoke(app, ["models", *map(str, args)])


def test_fetch_from_folder_with_matching_pin_installs_passt(tmp_path, carried):
    models = tmp_path / "models"
    pin = hashlib.sha256(CKPT).hexdigest()
    result = run("fetch", "--from", carried, "--only", "passt", "--passt-sha256", pin, "--models-dir", models)
    assert result.exit_code == 0, result.output
    assert f"passt: {models / PASST_FILENAME} (verified)" in result.output
    assert (models / PASST_FILENAME).read_bytes() == CKPT
    result = run("verify", "--only", "passt", "--passt-sha256", pin, "--models-dir", models)
    assert result.exit_code == 0, result.output
    assert f"passt: ok  sha256 {pin}  size {len(CKPT)}" in result.output


def test_a_pin_that_is_no_sha256_is_refused_before_anything_is_read(tmp_path, carried):
    """It was hashed against the whole file first, then said as "expected xyz"."""
    models = tmp_path / "models"
    for command in ("fetch", "verify"):
        result = run(command, "--from", carried, "--only", "passt", "--passt-sha256", "xyz",
                     "--models-dir", models) if command == "fetch" else run(
            command, "--only", "passt", "--passt-sha256", "xyz", "--models-dir", models)
        assert result.exit_code == 2 and "passt_sha256: String should match pattern" in result.output
    assert not models.exists()


def test_fetch_from_folder_with_other_pin_is_refused(tmp_path, carried):
    models = tmp_path / "models"
    result = run("fetch", "--from", carried, "--only", "passt", "--passt-sha256", "0" * 64,
                 "--models-dir", models)
    assert result.exit_code == 2
    assert "refused" in result.output
    assert entries(models) == []


def test_text_model_not_matching_the_mpnet_pin_is_refused(tmp_path, carried):
    models = tmp_path / "models"
    result = run("fetch", "--from", carried, "--only", "text", "--models-dir", models)
    assert result.exit_code == 2
    assert f"expected {MPNET_SAFETENSORS_SIZE}; refused" in result.output
    assert entries(models) == []


def test_one_model_failing_does_not_stop_the_other(tmp_path, carried):
    models = tmp_path / "models"
    pin = hashlib.sha256(CKPT).hexdigest()
    result = run("fetch", "--from", carried, "--passt-sha256", pin, "--models-dir", models)
    assert result.exit_code == 2
    assert "refused" in result.output  # the fake text model
    assert (models / PASST_FILENAME).read_bytes() == CKPT  # PaSST matches its pin: installed all the same


def test_without_a_pin_passt_is_held_to_the_release_asset(tmp_path, carried, monkeypatch):
    monkeypatch.delenv("RETRIEVAL_PASST_SHA256", raising=False)
    models = tmp_path / "models"
    result = run("fetch", "--from", carried, "--only", "passt", "--models-dir", models)
    assert result.exit_code == 2
    assert f"{len(CKPT)} bytes, expected {PASST_SIZE}; refused" in result.output
    assert entries(models) == []


def test_verify_on_an_empty_models_dir_names_the_fetch_command(tmp_path):
    result = run("verify", "--models-dir", tmp_path)
    assert result.exit_code == 2
    assert "text:" in result.output and "passt:" in result.output
    assert "retrieval models fetch" in result.output


def test_service_start_without_models_is_a_clear_error(tmp_path):
    settings = Settings(models_dir=tmp_path / "models", device="cpu")
    with pytest.raises(ModelNotFound, match="retrieval models fetch"):
        load_text_encoder(settings)
    with pytest.raises(ModelNotFound, match="retrieval models fetch"):
        load_tagger(settings)
