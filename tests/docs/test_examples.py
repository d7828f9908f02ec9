"""Every Python block of README.md and docs/ runs (pytest-examples), in a folder holding what the examples
name: a sentence-transformers model at models/all-mpnet-base-v2 (the small MiniLM stands in), two WAV
files and a folder of them."""

import pytest
import soundfile as sf
from pytest_examples import CodeExample, EvalExample, find_examples

from tests.audio_fixtures import clicks, noise, sine
from tests.docs.markdown import pages

EXAMPLES = [e for page in pages() for e in find_examples(page)]


@pytest.fixture
def example_folder(tmp_path, minilm_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "all-mpnet-base-v2").symlink_to(minilm_path, target_is_directory=True)
    sf.write(tmp_path / "rain.wav", noise(seconds=1.0), 32_000)
    sf.write(tmp_path / "dog.wav", clicks(seconds=1.0), 32_000)
    (tmp_path / "sounds").mkdir()
    for name, wave in {"tone.wav": sine(440.0, seconds=1.0), "hiss.wav": noise(seconds=1.0)}.items():
        sf.write(tmp_path / "sounds" / name, wave, 32_000)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_and_the_docs_hold_python_examples():
    assert {e.path.name for e in EXAMPLES} >= {"README.md", "library.md"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e.path.name}:{e.start_line}")
def test_each_python_example_runs(example: CodeExample, eval_example: EvalExample, example_folder):
    eval_example.run(example)
