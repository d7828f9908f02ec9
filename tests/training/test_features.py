import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from retrieval.audio import decode_audio
from retrieval.config import Windowing
from retrieval.labels import audioset_labels
from retrieval.text import clean_caption
from retrieval.windows import WindowLogits, window_spans
from tests.audio_fixtures import sine, write
from tests.legacy_files import write_old_partial
from tests.training.clotho_files import write_clotho_split
from tests.training.synthetic import PlantedTagger, planted_features, planted_windows, planted_world
from training.datasets import read_clotho, read_dataset
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


def test_windows_round_trip_and_files_without_them_still_open(tmp_path):
    fs = planted_features(planted_world(dim=8), n_clips=3, seed=0)
    save_features(tmp_path / "clips.safetensors", fs)
    assert load_features(tmp_path / "clips.safetensors").windows is None
    fs.windows = planted_windows([0.5, 12.5, 20.0])
    save_features(tmp_path / "f.safetensors", fs)
    assert load_file(str(tmp_path / "f.safetensors"))["window_count"].tolist() == [1, 6, 9]
    back = load_features(tmp_path / "f.safetensors")
    assert back.windows is not None and len(back.windows) == 3
    for got, want in zip(back.windows, fs.windows, strict=True):
        np.testing.assert_array_equal(got.logits, want.logits)
        assert got.starts.tolist() == want.starts.tolist() and got.ends.tolist() == want.ends.tolist()
    assert back.windows[1].starts.tolist() == [0.0, 0.0, 0.0, 2.5, 5.0, 7.5]
    assert back.windows[1].ends.tolist() == [5.0, 7.5, 10.0, 12.5, 12.5, 12.5]
    np.testing.assert_array_equal(back.logits, fs.logits)  # the clip logits are still their own tensor


def test_inconsistent_windows_are_refused(tmp_path):
    fs = planted_features(planted_world(dim=8), n_clips=3, seed=0)
    fs.windows = planted_windows([0.5, 12.5])
    with pytest.raises(FeatureFileError, match="each of the 3 clips, got 2"):
        save_features(tmp_path / "f.safetensors", fs)
    empty = WindowLogits(np.zeros((0, 527), np.float32), np.zeros(0), np.zeros(0))
    fs.windows = [*planted_windows([0.5]), empty, *planted_windows([1.0])]
    with pytest.raises(FeatureFileError, match=r"not so for \['clip_0001.wav'\]"):
        save_features(tmp_path / "f.safetensors", fs)
    assert list(tmp_path.iterdir()) == []

    fs.windows = planted_windows([0.5, 12.5, 20.0])
    save_features(tmp_path / "f.safetensors", fs)
    tensors = load_file(str(tmp_path / "f.safetensors"))
    save_file({k: v for k, v in tensors.items() if k != "window_end"}, str(tmp_path / "f.safetensors"))
    with pytest.raises(FeatureFileError, match=r"lacks the tensors \['window_end'\]"):
        load_features(tmp_path / "f.safetensors")
    save_file({**tensors, "window_count": np.array([1, 6, 8])}, str(tmp_path / "f.safetensors"))
    with pytest.raises(FeatureFileError, match="window_count must split the 16 windows"):
        load_features(tmp_path / "f.safetensors")


@pytest.fixture
def moment_clips(tmp_path):
    """Three clips of a moment set, 0.5, 12.5 and 20 s long (no PaSST runs on them: PlantedTagger)."""
    audio = tmp_path / "audio"
    audio.mkdir()
    lines = []
    for i, seconds in enumerate((0.5, 12.5, 20.0)):
        write(audio / f"v{i}.wav", sine(seconds=seconds, rate=8000), 8000)
        lines.append(json.dumps({"qid": i, "query": f"sound {i}", "duration": seconds, "vid": f"v{i}",
                                 "relevant_windows": [[0, seconds]]}))
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    return read_dataset("moments", audio, "test", annotations=tmp_path / "a.jsonl")


def test_extraction_keeps_every_window_when_asked_and_resumes_with_them(tmp_path, moment_clips, text_encoder):
    out = tmp_path / "moments.safetensors"
    with pytest.raises(KeyboardInterrupt):
        extract_features(moment_clips, tagger=PlantedTagger(stop_after=2), text=text_encoder, out=out,
                         dataset="moments", split="test", windows=True)
    resumed = PlantedTagger()
    fs = extract_features(moment_clips, tagger=resumed, text=text_encoder, out=out, dataset="moments",
                          split="test", windows=True)
    assert resumed.calls == 1  # the interrupted run's two clips kept their windows in the partial file
    back = load_features(out)
    assert back.clips == ["v0", "v1", "v2"] and back.captions == ["sound 0", "sound 1", "sound 2"]
    assert back.windows is not None and [len(w) for w in back.windows] == [1, 6, 9]
    for seconds, w in zip((0.5, 12.5, 20.0), back.windows, strict=True):
        starts, ends = window_spans(int(seconds * 32000), Windowing())
        assert w.starts.tolist() == starts.tolist() and w.ends.tolist() == ends.tolist()
        assert w.logits[:, 0].tolist() == [seconds * 32] * len(w)  # (n samples / 1000) of this clip
        assert w.logits[:, 1].tolist() == list(range(len(w)))
    np.testing.assert_allclose(back.logits[:, 1], [0.0, 2.5, 4.0])  # the mean of windows 0..W-1
    np.testing.assert_array_equal(back.logits, fs.logits)


def test_a_partial_file_without_windows_gives_only_clip_logits(tmp_path, moment_clips, text_encoder):
    out = tmp_path / "moments.safetensors"
    write_old_partial(partial_path(out), {"v0": np.full(527, 0.25, np.float32)})
    with_windows = PlantedTagger()
    fs = extract_features(moment_clips, tagger=with_windows, text=text_encoder, out=out, dataset="moments",
                          split="test", windows=True)
    assert with_windows.calls == 3 and fs.logits[0, 1] == 0.0  # v0 again, for its windows
    write_old_partial(partial_path(out), {"v0": np.full(527, 0.25, np.float32)})
    without = PlantedTagger()
    fs = extract_features(moment_clips, tagger=without, text=text_encoder, out=out, dataset="moments",
                          split="test")
    assert without.calls == 2 and fs.logits[0, 1] == 0.25 and fs.windows is None


def test_a_resumed_extraction_computes_again_what_changed_since(tmp_path, moment_clips, text_encoder):
    """The partial file was keyed by file name alone: a clip whose audio changed, or the same names under
    another folder written to the same --out, kept the stale logits."""
    out = tmp_path / "moments.safetensors"
    with pytest.raises(KeyboardInterrupt):
        extract_features(moment_clips, tagger=PlantedTagger(stop_after=2), text=text_encoder, out=out,
                         dataset="moments", split="test")
    write(moment_clips[0].path, sine(seconds=3.0, rate=8000), 8000)  # v0 is now 3 s long, not 0.5 s
    resumed = PlantedTagger()
    fs = extract_features(moment_clips, tagger=resumed, text=text_encoder, out=out, dataset="moments",
                          split="test")
    assert resumed.calls == 2  # v0, changed, and v2, never done; v1 reused
    np.testing.assert_allclose(fs.logits[:, 0], [3.0 * 32, 12.5 * 32, 20.0 * 32])  # n samples / 1000

    elsewhere = tmp_path / "elsewhere"  # the same file names and audio in another folder, the same --out
    elsewhere.mkdir()
    for c in moment_clips:
        (elsewhere / c.path.name).write_bytes(c.path.read_bytes())
    moved = read_dataset("moments", elsewhere, "test", annotations=tmp_path / "a.jsonl")
    with pytest.raises(KeyboardInterrupt):
        extract_features(moved, tagger=PlantedTagger(stop_after=1), text=text_encoder, out=out,
                         dataset="moments", split="test")
    again = PlantedTagger()
    extract_features(moment_clips, tagger=again, text=text_encoder, out=out, dataset="moments", split="test")
    assert again.calls == 3  # the partial file held `elsewhere`'s v0 alone: not this v0


def test_an_out_whose_sidecar_would_be_itself_is_refused(tmp_path, moment_clips, text_encoder):
    """`features --out X.json` wrote its sidecar over the tensors and reported success."""
    tagger = PlantedTagger()
    with pytest.raises(FeatureFileError, match="X.json: a feature file named .json would be overwritten"):
        extract_features(moment_clips, tagger=tagger, text=text_encoder, out=tmp_path / "X.json",
                         dataset="moments", split="test")
    assert tagger.calls == 0 and not (tmp_path / "X.json").exists()
    with pytest.raises(FeatureFileError, match="NAME.safetensors"):
        save_features(tmp_path / "X.json", planted_features(planted_world(dim=8), n_clips=2, seed=0))
    assert not (tmp_path / "X.json").exists()
