"""The PaSST checkpoint: downloaded from a (file://) URL or imported, recorded, and held to a pin."""

import hashlib
import io
import json

import pytest

from retrieval.config import PASST_FILENAME
from retrieval.errors import FetchFailed, ModelNotFound, WeightsMismatch
from retrieval.fetch import Pin, fetch_passt
from retrieval.fetch.passt import record_path, verify_passt
from tests.fetch.fakes import entries

CKPT = bytes(range(256)) * 300


@pytest.fixture
def release(tmp_path):
    path = tmp_path / "release" / PASST_FILENAME
    path.parent.mkdir()
    path.write_bytes(CKPT)
    return path


def test_download_without_pin_is_recorded_with_its_size_and_sha256(tmp_path, release):
    models = tmp_path / "models"
    dest = fetch_passt(models, url=release.as_uri())
    assert dest.read_bytes() == CKPT
    record = json.loads(record_path(models).read_text())
    assert record == {"file": PASST_FILENAME, "sha256": hashlib.sha256(CKPT).hexdigest(), "size": len(CKPT),
                      "source": release.as_uri()}
    assert entries(models) == sorted([PASST_FILENAME, f"{PASST_FILENAME}.json"])


def test_download_matching_the_pin_is_accepted(tmp_path, release):
    pin = Pin(sha256=hashlib.sha256(CKPT).hexdigest())
    assert fetch_passt(tmp_path / "models", pin=pin, url=release.as_uri()).read_bytes() == CKPT


def test_download_not_matching_the_pin_is_refused_and_nothing_installed(tmp_path, release):
    models = tmp_path / "models"
    with pytest.raises(WeightsMismatch, match="expected " + "ab" * 32):
        fetch_passt(models, pin=Pin(sha256="ab" * 32), url=release.as_uri())
    assert entries(models) == []


def test_truncated_download_is_refused(tmp_path):
    class Short(io.BytesIO):
        headers = {"Content-Length": str(len(CKPT))}

    models = tmp_path / "models"
    with pytest.raises(FetchFailed, match=f"after {len(CKPT) // 2} of {len(CKPT)} bytes"):
        fetch_passt(models, url="https://example.invalid/x.pt",
                    opener=lambda url: Short(CKPT[:len(CKPT) // 2]))
    assert entries(models) == []


def test_import_from_folder_is_verified_the_same_way(tmp_path, release):
    models = tmp_path / "models"
    with pytest.raises(WeightsMismatch):
        fetch_passt(models, pin=Pin(sha256="0" * 64), from_dir=release.parent)
    assert entries(models) == []
    fetch_passt(models, pin=Pin(sha256=hashlib.sha256(CKPT).hexdigest()), from_dir=release.parent)
    assert verify_passt(models, pin=Pin())["source"] == f"folder {release.parent}"


def test_installed_checkpoint_changed_later_fails_against_its_record(tmp_path, release):
    models = tmp_path / "models"
    fetch_passt(models, url=release.as_uri())
    (models / PASST_FILENAME).write_bytes(CKPT[::-1])
    with pytest.raises(WeightsMismatch, match="against its record"):
        verify_passt(models, pin=Pin())


def test_verified_checkpoint_is_not_downloaded_again(tmp_path, release):
    models = tmp_path / "models"
    fetch_passt(models, url=release.as_uri())
    release.unlink()  # a second download would fail
    assert fetch_passt(models, url=release.as_uri()).read_bytes() == CKPT


def test_missing_checkpoint_names_the_fetch_command(tmp_path):
    with pytest.raises(ModelNotFound, match="retrieval models fetch"):
        verify_passt(tmp_path, pin=Pin())
