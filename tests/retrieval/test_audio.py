import io
import os
import struct

import numpy as np
import pytest
import soundfile as sf

from retrieval.audio import _mono, decode_audio, probe_audio
from retrieval.config import SAMPLE_RATE
from retrieval.errors import AudioDecodeError, AudioTooLong
from tests.audio_fixtures import sine, write

FORMATS = [("wav", {}), ("flac", {}), ("ogg", {"format": "OGG", "subtype": "VORBIS"}), ("mp3", {})]


def dominant_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * SAMPLE_RATE / len(x))


@pytest.mark.parametrize("rate", [8_000, 16_000, 44_100, 48_000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("ext,kw", FORMATS, ids=[f[0] for f in FORMATS])
def test_decodes_formats_rates_and_channels(tmp_path, ext, kw, rate, channels):
    path = write(tmp_path / f"tone.{ext}", sine(440.0, seconds=1.0, rate=rate, channels=channels), rate, **kw)
    audio = decode_audio(path)
    assert audio.source_rate == rate and audio.channels == channels
    assert audio.wave.dtype == np.float32 and audio.wave.ndim == 1
    assert abs(audio.duration_s - 1.0) < 0.08  # mp3/ogg encoders add a few ms of priming
    assert np.abs(audio.wave).max() <= 1.0
    assert abs(dominant_hz(audio.wave) - 440.0) < 5.0
    assert 0.3 < np.abs(audio.wave).max() < 0.7


def test_opus_and_bytes_equal_path(tmp_path):
    path = write(tmp_path / "tone.opus", sine(1000.0, seconds=1.0, rate=48_000), 48_000,
                 format="OGG", subtype="OPUS")
    from_path = decode_audio(path)
    from_bytes = decode_audio(path.read_bytes())
    assert from_path.format == "OGG"
    np.testing.assert_array_equal(from_path.wave, from_bytes.wave)
    assert abs(dominant_hz(from_path.wave) - 1000.0) < 5.0


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = sine(440.0, seconds=0.5), np.zeros(16_000, dtype=np.float32)
    path = write(tmp_path / "lr.wav", np.stack([left, right], axis=1))
    np.testing.assert_allclose(decode_audio(path).wave, left / 2, atol=1e-4)  # 16-bit PCM


@pytest.mark.parametrize("channels", [1, 2, 3, 6, 8, 9, 16, 64])
def test_the_mix_is_the_channels_float64_mean_to_the_bit(channels):
    # the fingerprints of stored clips (audio_sha256) hash these samples: the mix may not move by one bit
    data = np.random.default_rng(channels).standard_normal((5_000, channels)).astype(np.float32)
    data[::7] *= np.float32(1e-7)  # magnitudes far apart, where the order of the sum shows
    assert np.array_equal(_mono(data), data.mean(axis=1, dtype=np.float64).astype(np.float32))


def test_resampling_keeps_length_and_pitch(tmp_path):
    path = write(tmp_path / "t.wav", sine(3000.0, seconds=2.0, rate=44_100), 44_100)
    wave = decode_audio(path).wave
    assert abs(len(wave) - 2 * SAMPLE_RATE) <= 1
    assert abs(dominant_hz(wave) - 3000.0) < 2.0


def wav_bytes(data, rate=16_000, subtype="PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, data, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def bad_inputs() -> dict[str, bytes]:
    good = wav_bytes(sine(seconds=0.5, rate=16_000), 16_000)
    lying = bytearray(good)
    lying[40:44] = struct.pack("<I", 10_000_000)  # data chunk claims far more than is there
    nan = wav_bytes(np.full(1600, np.nan, dtype=np.float32), 16_000, subtype="FLOAT")
    return {
        "empty": b"",
        "one byte": b"R",
        "truncated header": good[:20],
        "text": b"rain on a tin roof\n" * 20,
        "png": b"\x89PNG\r\n\x1a\n" + bytes(200),
        "zero samples": wav_bytes(np.zeros(0, dtype=np.float32)),
        "nan samples": nan,
        "random": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "data size lies": bytes(lying),
        "truncated body": good[:1000],
    }


@pytest.mark.parametrize("name", list(bad_inputs()))
def test_bad_input_raises_one_named_error(name):
    with pytest.raises(AudioDecodeError) as err:
        decode_audio(bad_inputs()[name], name="clip.wav")
    assert "clip.wav" in str(err.value)


def test_missing_and_empty_paths(tmp_path):
    with pytest.raises(AudioDecodeError, match="no such file"):
        decode_audio(tmp_path / "absent.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty"):
        decode_audio(tmp_path / "empty.wav")


def test_too_long_is_refused_from_the_header(tmp_path):
    path = write(tmp_path / "long.wav", sine(seconds=3.0, rate=8_000), 8_000)
    with pytest.raises(AudioTooLong, match="longer than the maximum of 2 s"):
        decode_audio(path, max_duration_s=2.0)
    assert decode_audio(path, max_duration_s=3.5).duration_s == pytest.approx(3.0, abs=1e-3)


def test_loud_float_samples_are_clipped():
    wave = decode_audio(wav_bytes(np.full(3200, 4.0, dtype=np.float32), 32_000, subtype="FLOAT")).wave
    assert wave.max() == 1.0


def test_channel_limit(tmp_path):
    path = write(tmp_path / "quad.wav", sine(seconds=0.2, channels=4))
    assert decode_audio(path, max_channels=4).channels == 4
    with pytest.raises(AudioDecodeError, match="4 channels is more than the 2 accepted$"):
        decode_audio(path, max_channels=2)
    widened = r"more than the 2 accepted \(RETRIEVAL_MAX_CHANNELS, up to 64\)"  # the setting that widens it
    with pytest.raises(AudioDecodeError, match=widened):
        probe_audio(path, max_channels=2, channels_name="RETRIEVAL_MAX_CHANNELS")


def test_a_file_whose_name_is_not_utf8_decodes_and_a_folder_is_named_as_one(tmp_path):
    """A Latin-1 name as Linux hands it over (its byte held as a surrogate) is opened by its bytes."""
    path = write(tmp_path / "x.wav", sine(seconds=0.2))
    latin1 = os.fsdecode(str(tmp_path).encode() + b"/caf\xe9.wav")
    os.rename(path, latin1)
    assert decode_audio(latin1).duration_s == pytest.approx(0.2)
    with pytest.raises(AudioDecodeError, match="a folder, not an audio file"):
        decode_audio(tmp_path)


def test_a_flac_whose_header_leaves_its_length_out_is_refused_saying_how_to_mend_it(tmp_path):
    """ffmpeg writing FLAC to a pipe leaves STREAMINFO's total samples 0 (unknown), and libsndfile then
    reports the largest count there is: it was refused as 576,460,752,303,423 s too long, and a read of it
    would have asked for an array of that size."""
    import subprocess

    from tests.audio_fixtures import need

    tone = "sine=frequency=700:duration=1"
    args = [need("ffmpeg"), "-v", "error", "-f", "lavfi", "-i", tone, "-ar", "16000", "-f", "flac", "-"]
    data = subprocess.run(args, check=True, capture_output=True).stdout
    path = tmp_path / "streamed.flac"
    path.write_bytes(data)
    for source in (path, data):
        for read in (probe_audio, decode_audio):
            with pytest.raises(AudioDecodeError, match=r"does not say how long .* `ffmpeg -i IN OUT\.flac`"):
                read(source, max_duration_s=600)


def test_a_flac_cut_short_is_refused_before_its_samples_are_read(tmp_path):
    """A FLAC copy stopped part-way (written by the `flac` tool, then cut at 40 %) was read until decoding
    reached the cut ("lost sync"), after PaSST had tagged everything before it; it is refused at once,
    whole files of the same tool and a stream without a length as before."""
    import subprocess

    from tests.audio_fixtures import need

    wav = write(tmp_path / "take.wav", sine(440.0, seconds=20.0, rate=16_000), rate=16_000, subtype="PCM_16")
    whole = tmp_path / "take.flac"
    subprocess.run([need("flac"), "-s", "-f", str(wav), "-o", str(whole)], check=True)
    data = whole.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[:int(len(data) * 0.4)])
    assert probe_audio(whole).duration_s == pytest.approx(20.0)
    assert decode_audio(whole).duration_s == pytest.approx(20.0)
    for source in (cut, cut.read_bytes()):
        for read in (probe_audio, decode_audio):
            with pytest.raises(AudioDecodeError, match=r"truncated FLAC: its header declares 20\.0 s"):
                read(source, max_duration_s=600)


def vbr_mp3(folder):
    """20 s of a sweeping tone, VBR at 48 kHz with a Xing header: a file whose MP3 seeks are not exact."""
    from tests.audio_fixtures import need, run

    path = folder / "sweep.mp3"
    run(need("ffmpeg"), "-v", "error", "-y", "-f", "lavfi", "-i",
        "aevalsrc='0.3*sin(2*PI*(200+20*t)*t)':s=48000:d=20", "-ac", "1", "-c:a", "libmp3lame", "-q:a", "4",
        path)
    return path


def test_a_vbr_mp3_read_block_by_block_is_its_whole_read(tmp_path):
    """soundfile's `read` seeks after each block, and a VBR MP3's seek is libmpg123's inexact one: blocks
    of 65,536 frames came back with runs of silence (~3,400 frames each). The oracle is libsndfile's read of
    the whole file in one call (itself ffmpeg's decoding to 2e-6), and the decoder's answer is the same as
    for a float WAV of those samples."""
    from retrieval.audio import BLOCK_FRAMES, read_frames

    path = vbr_mp3(tmp_path)
    whole, rate = sf.read(str(path), dtype="float32", always_2d=True)
    def blockwise(read) -> np.ndarray:
        with sf.SoundFile(str(path)) as f:
            blocks = []
            while len(block := read(f)):
                blocks.append(block)
        return np.concatenate(blocks)

    chunked = blockwise(lambda f: f.read(BLOCK_FRAMES, dtype="float32", always_2d=True))
    assert np.abs(chunked - whole).max() > 0.1  # the fixture does what the files that broke did
    np.testing.assert_array_equal(blockwise(lambda f: read_frames(f, BLOCK_FRAMES)), whole)
    as_wav = write(tmp_path / "same.wav", whole, rate, subtype="FLOAT")
    np.testing.assert_array_equal(decode_audio(path).wave, decode_audio(as_wav).wave)


def test_a_file_just_over_the_limit_is_said_to_be_over_it(tmp_path):
    """12.01 s against 12 s was "12.0 s is longer than the maximum of 12 s"."""
    path = write(tmp_path / "over.wav", sine(seconds=12.01, rate=8_000), 8_000)
    with pytest.raises(AudioTooLong, match=r": 12\.010 s is longer than the maximum of 12 s"):
        probe_audio(path, max_duration_s=12)
    with pytest.raises(AudioTooLong, match=r": 20\.0 s is longer than the maximum of 12 s"):
        probe_audio(write(tmp_path / "long.wav", sine(seconds=20, rate=8_000), 8_000), max_duration_s=12)
