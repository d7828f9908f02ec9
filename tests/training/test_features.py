import json

import numpy as np
import pytest

from retrieval.audio import decode_audio
from retrieval.labels import audioset_labels
from retrieval.text import clean_caption
from tests.training.clotho_files import write_clotho_split
from tests.training.synthetic import planted_features, planted_world
from training.datasets import read_clotho
from training.features import (
    FeatureFileError,
    extract_features,
    load_features,
    partial_path,
    save_features,
    sidecar_path,
)

pytestmark = pytest.mark.usefixtures("one_thread")


class CountingTagger:
    """The real tagger, counting calls and optionally interrupted after some clips."""

    def __init__(self, tagger, *, stop_after: int | None = None):
        self.tagger, self.stop_after, self.calls = tagger, stop_after, 0

    @property
    def spec(self):
        return self.tagger.spec

    def window_logits(self, wave):
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt
        self.calls += 1
        return self.tagger.window_logits(wave)

    def window_logits_many(self, waves, *, on_batch=None, windowing=None):
        out = []
        for i, w in enumerate(waves):
            out.append(self.window_logits(w))
            if on_batch is not None:
                on_batch([i] * len(out[-1]))  # the clip of each window of the pass
        return out


def test_save_load_round_trip_and_sidecar(tmp_path):
    fs = planted_features(planted_world(dim=8), n_clips=4, seed=0)
    save_features(tmp_path / "f.safetensors", fs)
    back = load_features(tmp_path / "f.safetensors")
    for k in ("logits", "text", "caption_clip", "tag_text"):
        np.testing.assert_array_equal(getattr(back, k), getattr(fs, k))
    assert back.meta == fs.meta == json.loads(sidecar_path(tmp_path / "f.safetensors").read_text())
    assert back.spec.dim == 8 and back.spec.text_model == "planted"
    assert back.spec.head is None and back.spec.lam is None  # features know no head


def test_inconsistent_sets_are_refused_and_write_nothing(tmp_path):
    fs = planted_features(planted_world(dim=8), n_clips=4, seed=0)
    fs.caption_clip = fs.caption_clip.astype(np.int32)
    with pytest.raises(FeatureFileError, match="caption_clip"):
        save_features(tmp_path / "f.safetensors", fs)
    assert list(tmp_path.iterdir()) == []
    fs.caption_clip = fs.caption_clip.astype(np.int64) + 1  # points past the last clip
    with pytest.raises(FeatureFileError, match="index"):
        save_features(tmp_path / "f.safetensors", fs)
    with pytest.raises(FeatureFileError, match="sidecar"):
        load_features(tmp_path / "f.safetensors")


def test_extraction_resumes_after_an_interrupt(tmp_path, random_tagger, text_encoder):
    write_clotho_split(tmp_path, "development", 4, seconds=0.3)
    clips = read_clotho(tmp_path, "development")
    out = tmp_path / "dev.safetensors"
    interrupted = CountingTagger(random_tagger, stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        extract_features(clips, tagger=interrupted, text=text_encoder, out=out, dataset="clotho",
                         split="development", checkpoint_every=100)
    assert partial_path(out).is_file() and not out.exists()

    resumed = CountingTagger(random_tagger)
    fs = extract_features(clips, tagger=resumed, text=text_encoder, out=out, dataset="clotho",
                          split="development")
    assert resumed.calls == 2  # only the clips the interrupted run had not done
    assert not partial_path(out).exists()
    want = np.stack([random_tagger.logits(decode_audio(c.path).wave) for c in clips])
    np.testing.assert_allclose(fs.logits, want, atol=1e-5)

    captions = [cap for c in clips for cap in c.captions]
    assert fs.captions == captions and fs.clips == [c.file_name for c in clips]
    assert fs.caption_clip.tolist() == [i for i in range(4) for _ in range(5)]
    cleaned = [clean_caption(c) for c in captions]
    np.testing.assert_allclose(fs.text, text_encoder.encode(cleaned, clean=False), atol=1e-5)
    np.testing.assert_allclose(fs.tag_text[:3], text_encoder.encode(list(audioset_labels()[:3]), clean=False),
                               atol=1e-5)
    assert fs.spec == load_features(out).spec
    assert fs.spec.text_model == "all-MiniLM-L6-v2" and fs.spec.dim == 384
    assert fs.spec.windowing.as_dict() == {"window_s": 10.0, "hop_s": 2.5, "sample_rate": 32000}
    assert fs.spec.passt_arch == random_tagger.spec.passt_arch and fs.spec.passt_weights == "random"
