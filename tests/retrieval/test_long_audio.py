"""Long recordings read block by block: the same samples, windows, logits, spans and peaks as the whole wave
(today's whole-file path, kept here as the oracle)."""

import io

import numpy as np
import pytest
import soundfile as sf
import soxr

from retrieval.audio import LongWave, decode_audio
from retrieval.config import SAMPLE_RATE, Windowing
from retrieval.extract import AudioLimits, WindowCutter, decode, extract_many
from retrieval.waveform import PeakTracker, peaks
from tests.tone_tagger import ToneTagger, sections


def wav_bytes(data: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, data, rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def whole_file_oracle(data: bytes) -> np.ndarray:
    """The decoding of before: the whole file read, mixed to mono, resampled at once, clipped."""
    x, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    mono = x.mean(axis=1, dtype=np.float64).astype(np.float32)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="VHQ").astype(np.float32)
    return np.clip(mono, -1.0, 1.0)


@pytest.mark.parametrize("rate,channels", [(32_000, 1), (44_100, 2), (48_000, 6), (22_050, 1)])
def test_streamed_decoding_is_the_whole_file_decoding(rate, channels):
    rng = np.random.default_rng(rate)
    data = wav_bytes((0.5 * rng.standard_normal((int(rate * 7.3), channels))).astype(np.float32), rate)
    oracle = whole_file_oracle(data)
    whole = decode_audio(data).wave
    long = decode_audio(data, whole_up_to_s=1.0).wave
    assert isinstance(long, LongWave) and len(long) == len(oracle)  # the announced length is soxr's
    np.testing.assert_array_equal(whole, oracle)
    np.testing.assert_array_equal(long.read(), oracle)
    assert (long.peaks() == peaks(oracle)).all() and (long.peaks(37) == peaks(oracle, 37)).all()


def test_peaks_in_blocks_are_the_peaks_of_the_whole_wave():
    rng = np.random.default_rng(1)
    for n in (1, 399, 400, 401, 12_345, 960_017):
        x = (0.4 * rng.standard_normal(n)).astype(np.float32)
        tracker, at = PeakTracker(n), 0
        while at < n:
            step = int(rng.integers(1, 5000))
            tracker.add(x[at:at + step])
            at += step
        assert tracker.exact and (tracker.result() == peaks(x)).all()


def test_the_window_cutter_cuts_what_the_tagger_cuts(random_tagger):
    rng = np.random.default_rng(2)
    for n in (320_001, 400_000, 987_654):
        wave = rng.standard_normal(n).astype(np.float32)
        oracle = random_tagger.windows(wave).numpy()  # hear21passt's reflect padding and unfold
        for block in (1000, 70_000, 160_001, 500_000):
            cutter = WindowCutter(random_tagger.windowing)
            cut = [w for at in range(0, n, block) for w in cutter.push(wave[at:at + block])] + cutter.finish()
            assert len(cut) == len(oracle) and all((a == b).all() for a, b in zip(cut, oracle, strict=True))


def test_a_long_clip_tags_as_the_whole_wave_with_moments_peaks_and_progress():
    wave = sections((440.0, 13), (0.0, 4), (880.0, 9.3), (1760.0, 20))
    data = wav_bytes(np.stack([wave, 0.5 * wave], axis=1), 44_100)
    tagger, finer = ToneTagger(), Windowing(window_s=2.0, hop_s=1.0)
    whole = decode(data, limits=AudioLimits(whole_up_to_s=None))
    long = decode(data, limits=AudioLimits(whole_up_to_s=5.0))
    assert isinstance(long.wave, LongWave)
    told: list[list[int]] = []
    oracle = extract_many([whole], tagger, moment_windowing=finer)[0]
    streamed, again = extract_many([long, whole], tagger, moment_windowing=finer, on_batch=told.append)
    for ex in (streamed, again):
        for mine, theirs in ((ex.windows, oracle.windows), (ex.moment_windows, oracle.moment_windows)):
            assert len(mine) == len(theirs)
            np.testing.assert_array_equal(mine.starts, theirs.starts)
            np.testing.assert_array_equal(mine.ends, theirs.ends)
            np.testing.assert_allclose(mine.logits, theirs.logits, atol=1e-5)
        np.testing.assert_allclose(ex.logits, oracle.logits, atol=1e-5)
        assert (peaks(ex.audio.wave) == peaks(oracle.audio.wave)).all()
        assert ex.audio.duration_s == oracle.audio.duration_s
    assert sum(c.count(0) for c in told) == len(oracle.windows) == sum(c.count(1) for c in told)


def test_a_long_clip_through_passt_gives_the_whole_waves_logits(random_tagger):
    """Real (random-weight) PaSST, 11 s: 5 windows each way."""
    rng = np.random.default_rng(3)
    data = wav_bytes((0.3 * rng.standard_normal((11 * 48_000, 2))).astype(np.float32), 48_000)
    oracle = extract_many([decode(data, limits=AudioLimits(whole_up_to_s=None))], random_tagger)[0]
    streamed = extract_many([decode(data, limits=AudioLimits(whole_up_to_s=5.0))], random_tagger)[0]
    assert isinstance(streamed.audio.wave, LongWave) and len(streamed.windows) == len(oracle.windows) == 5
    np.testing.assert_array_equal(streamed.windows.starts, oracle.windows.starts)
    np.testing.assert_array_equal(streamed.windows.ends, oracle.windows.ends)
    np.testing.assert_allclose(streamed.windows.logits, oracle.windows.logits, atol=1e-4)
    np.testing.assert_allclose(streamed.logits, oracle.logits, atol=1e-4)


def test_a_long_clip_of_one_window_is_tagged_whole():
    data = wav_bytes(sections((440.0, 6)), SAMPLE_RATE)
    ex = extract_many([decode(data, limits=AudioLimits(whole_up_to_s=1.0))], ToneTagger())[0]
    assert isinstance(ex.audio.wave, np.ndarray) and len(ex.windows) == 1


def test_too_long_names_the_setting():
    data = wav_bytes(sections((440.0, 3)), SAMPLE_RATE)
    with pytest.raises(Exception, match=r"maximum of 2 s \(RETRIEVAL_MAX_INDEX_DURATION_S\)"):
        decode(data, limits=AudioLimits(max_duration_s=2.0, setting="RETRIEVAL_MAX_INDEX_DURATION_S"))


def test_the_audio_fingerprint_is_the_samples_sha256_however_the_file_is_read_or_wrapped(tmp_path):
    """audio_sha256: the sha256 of the model-rate samples (the oracle: hashlib over the whole-file decoding's
    float32 bytes), the same whole or streamed (the streamed pass that tags a long file leaves it, no second
    pass), the same for a retagged or re-wrapped file (other bytes, same 16-bit samples), another for changed
    audio."""
    import hashlib

    from retrieval.audio import audio_sha256

    rng = np.random.default_rng(7)
    x = (9000 * rng.standard_normal(int(44_100 * 6.1))).clip(-32768, 32767).astype(np.int16)
    plain = tmp_path / "take.wav"
    sf.write(plain, x, 44_100, subtype="PCM_16")
    oracle = hashlib.sha256(whole_file_oracle(plain.read_bytes()).astype("<f4").tobytes()).hexdigest()
    assert audio_sha256(decode_audio(plain).wave) == oracle

    audio = decode_audio(plain, whole_up_to_s=1.0)
    long = audio.wave
    assert isinstance(long, LongWave) and long.sha256 is None
    passes = []
    blocks = long.blocks

    def counted():
        passes.append(1)
        yield from blocks()

    long.blocks = counted  # type: ignore[method-assign]
    extract_many([audio], ToneTagger())  # tagged as it is read: one pass
    assert passes == [1] and long.sha256 == oracle
    assert audio_sha256(long) == oracle and passes == [1]  # kept: no second pass

    tagged = tmp_path / "tagged.wav"  # the same samples with a title and a comment: other bytes
    with sf.SoundFile(tagged, "w", 44_100, 1, "PCM_16") as f:
        f.title, f.comment = "Rain on a tin roof", "retagged in a librarian's tool"
        f.write(x)
    flac = tmp_path / "take.flac"  # the same 16-bit samples in another container
    sf.write(flac, x, 44_100, subtype="PCM_16")
    assert tagged.read_bytes() != plain.read_bytes()
    assert audio_sha256(decode_audio(tagged).wave) == audio_sha256(decode_audio(flac).wave) == oracle

    edited = x.copy()
    edited[1000] += 100  # one sample changed
    sf.write(tmp_path / "edited.wav", edited, 44_100, subtype="PCM_16")
    assert audio_sha256(decode_audio(tmp_path / "edited.wav").wave) != oracle
