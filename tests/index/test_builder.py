"""Walking files and folders, and which failures stop a run."""

import pytest

from app.compose import open_collection
from index.ingest.builder import find_audio, index_paths
from retrieval.errors import ModelNotFound
from retrieval.pipeline import Retriever
from tests.audio_fixtures import sine, write


def test_find_audio_walks_folders_by_suffix_in_a_stable_order(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    files = [write(tmp_path / "a" / n, sine(seconds=0.1), format="WAV") for n in ("z.wav", "b.WAV", "m.bwf")]
    deep = write(tmp_path / "a" / "deep" / "c.wav", sine(seconds=0.1))
    (tmp_path / "a" / "notes.txt").write_text("not audio")
    odd = tmp_path / "named.bin"
    odd.write_bytes(b"tried because it was named")
    found, missing = find_audio([tmp_path / "a", odd, tmp_path / "nope", files[0]])
    assert found == [files[1], files[2], files[0], odd] and missing == [tmp_path / "nope"]
    found, _ = find_audio([tmp_path / "a"], recursive=True)
    assert found == sorted([*files, deep])


class MissingWeightsTagger:
    def __init__(self, real):
        self.spec, self.windowing = real.spec, real.windowing

    def window_logits(self, wave):
        raise ModelNotFound("PaSST weights not found")

    def window_logits_many(self, waves, *, on_batch=None, windowing=None):
        raise ModelNotFound("PaSST weights not found")


def test_a_missing_model_stops_the_run_instead_of_failing_every_file(tmp_path, settings, retriever):
    broken = Retriever(retriever.text, retriever.ckpt, passt=retriever.tagger.spec,
                       tagger=MissingWeightsTagger(retriever.tagger))
    for i in range(3):
        write(tmp_path / f"{i}.wav", sine(200 + 100 * i, seconds=0.2))
    (tmp_path / "bad.wav").write_bytes(b"RIFF")
    with open_collection(settings, broken) as c:
        with pytest.raises(ModelNotFound):
            index_paths(c, [tmp_path], progress=False)
        assert c.count() == 0
