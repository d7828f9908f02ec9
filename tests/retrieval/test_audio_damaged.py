"""Files damaged in ways libsndfile reads without a word: a chained Ogg, a FLAC whose STREAMINFO counts
fewer samples than its frames hold, an AIFF or AU cut short, a WAV whose header was never finished or whose
audio follows many small chunks. Each is refused saying what is wrong and what to do (the command it names is
run here, and what it writes decodes to what ffmpeg hears of the damaged file), or read whole; the oracle is
ffmpeg's decoding of the same bytes (or libsndfile's own reading of a file written by soundfile)."""

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from retrieval import riff
from retrieval.audio import decode_audio, probe_audio
from retrieval.errors import AudioDecodeError
from retrieval.flac_frames import flac_frames
from retrieval.ogg_pages import chained_streams
from tests.audio_fixtures import need, run, sine, write


def ffmpeg_seconds(path: Path) -> float:
    """How long ffmpeg's decoding of `path` is (mono float32 at 32 kHz, counted)."""
    out = subprocess.run([need("ffmpeg"), "-v", "error", "-i", str(path), "-ac", "1", "-ar", "32000", "-f",
                          "f32le", "-"], check=True, capture_output=True).stdout
    return len(out) / 4 / 32_000


def mend(folder: Path, message: str) -> Path:
    """Run the command between backticks in a refusal's message in `folder`: the file it writes."""
    command = message.split("`")[1]
    assert command.startswith("ffmpeg -i ")
    subprocess.run([need("ffmpeg"), "-v", "error", "-y", *command.split()[1:]], cwd=folder, check=True)
    return folder / command.split()[-1]


def refusal(source, **kw) -> str:
    """The message of decode_audio's refusal of `source`, which probe_audio refuses alike."""
    with pytest.raises(AudioDecodeError) as probed:
        probe_audio(source, **kw)
    with pytest.raises(AudioDecodeError) as decoded:
        decode_audio(source, **kw)
    assert str(probed.value) == str(decoded.value)
    return str(decoded.value)


@pytest.mark.parametrize("ext, subtype, rate", [("ogg", "VORBIS", 44_100), ("opus", "OPUS", 48_000)])
def test_a_chained_ogg_is_refused_not_indexed_as_its_first_stream(tmp_path, ext, subtype, rate):
    """Two Ogg files joined end to end (2 s and 3 s): libsndfile read the first stream and stopped, so the
    clip was 2 s of a 5 s file. Each file alone, and the one ffmpeg writes of the chain, decode as before."""
    first = write(tmp_path / f"a.{ext}", sine(400.0, seconds=2.0, rate=rate), rate, format="OGG",
                  subtype=subtype)
    second = write(tmp_path / f"b.{ext}", sine(800.0, seconds=3.0, rate=rate), rate, format="OGG",
                   subtype=subtype)
    chained = tmp_path / f"chained.{ext}"
    chained.write_bytes(first.read_bytes() + second.read_bytes())
    assert sf.info(str(chained)).duration == pytest.approx(2.0, abs=0.01)  # what libsndfile alone reads
    heard = ffmpeg_seconds(chained)
    assert heard == pytest.approx(5.0, abs=0.05)
    assert chained_streams(chained) == [0, len(first.read_bytes())] == chained_streams(chained.read_bytes())

    for source in (chained, chained.read_bytes()):
        message = refusal(source, name=chained.name)
        assert message.startswith(f"{chained.name}: a chained Ogg file")
        assert "the decoder reads only the first (2.0 s)" in message
    fixed = mend(tmp_path, message)
    assert decode_audio(fixed).duration_s == pytest.approx(heard, abs=0.05)
    assert decode_audio(first).duration_s == pytest.approx(2.0, abs=0.01) and chained_streams(first) == [0]


def test_streams_side_by_side_are_not_a_chain(tmp_path):
    """An Ogg file of two streams multiplexed (their first pages together at the start) is one link."""
    path = tmp_path / "two.ogg"
    run(need("ffmpeg"), "-v", "error", "-f", "lavfi", "-i", "sine=f=400:d=1", "-f", "lavfi", "-i",
        "sine=f=600:d=1", "-map", "0", "-map", "1", "-c:a", "libvorbis", path)
    assert chained_streams(path) == [0]
    assert decode_audio(path).duration_s == pytest.approx(1.0, abs=0.01)


def flac_counting(path: Path, samples: int) -> bytes:
    """The FLAC at `path` with its STREAMINFO's total samples set to `samples`."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO's body starts at 8
    data[21] = (data[21] & 0xF0) | (samples >> 32)
    data[22:26] = struct.pack(">I", samples & 0xFFFFFFFF)
    return bytes(data)


def test_a_flac_whose_header_counts_fewer_samples_than_its_frames_is_refused(tmp_path):
    """STREAMINFO says 1 s, the frames hold 3 s (ffmpeg decodes them all): it was indexed as 1 s. A header
    that counts more than the frames hold stays a truncated FLAC; 0 (unknown) is refused as before."""
    whole = write(tmp_path / "take.flac", sine(350.0, seconds=3.0, rate=44_100), 44_100)
    short = tmp_path / "short.flac"
    short.write_bytes(flac_counting(whole, 44_100))
    assert sf.info(str(short)).duration == pytest.approx(1.0)  # what libsndfile reads
    heard = ffmpeg_seconds(short)
    assert heard == pytest.approx(3.0, abs=0.01)
    for source in (short, short.read_bytes()):
        message = refusal(source, name=short.name)
        assert message.startswith("short.flac: its frames hold 3.0 s of audio but its header (STREAMINFO) "
                                  "counts 1.0 s")
    fixed = mend(tmp_path, message)
    assert decode_audio(fixed).duration_s == pytest.approx(heard, abs=0.01)

    long = tmp_path / "long.flac"
    long.write_bytes(flac_counting(whole, 6 * 44_100))
    assert "truncated FLAC: its header declares 6.0 s" in refusal(long)
    unknown = tmp_path / "unknown.flac"
    unknown.write_bytes(flac_counting(whole, 0))
    assert "does not say how long" in refusal(unknown)


def test_flacs_joined_without_being_encoded_again_are_refused(tmp_path):
    """ffmpeg's concat with `-c copy` keeps the first file's STREAMINFO and each file's frame numbers, so the
    last frame ends at the header's count: libsndfile read 2 s of a 4 s file without a word. The frames'
    numbers start again partway; the fix the message gives decodes all of it."""
    write(tmp_path / "one.flac", sine(350.0, seconds=2.0, rate=44_100), 44_100)
    (tmp_path / "list.txt").write_text("file 'one.flac'\nfile 'one.flac'\n")
    run(need("ffmpeg"), "-v", "error", "-f", "concat", "-i", tmp_path / "list.txt", "-c", "copy",
        tmp_path / "joined.flac")
    joined = tmp_path / "joined.flac"
    assert sf.info(str(joined)).duration == pytest.approx(2.0) and flac_frames(joined).end == 2 * 44_100
    assert ffmpeg_seconds(joined) == pytest.approx(4.0, abs=0.01)
    message = refusal(joined)
    assert "its frames are numbered from the start again partway" in message
    assert decode_audio(mend(tmp_path, message)).duration_s == pytest.approx(4.0, abs=0.01)


def test_a_header_a_few_samples_short_is_said_in_samples_and_the_fix_names_the_file_for_the_shell(tmp_path):
    whole = write(tmp_path / "take.flac", sine(350.0, seconds=3.0, rate=44_100), 44_100)
    short = tmp_path / "short take.flac"
    short.write_bytes(flac_counting(whole, 3 * 44_100 - 10))
    message = refusal(short)
    assert "its frames hold 132300 samples but its header (STREAMINFO) counts 132290" in message
    assert "`ffmpeg -i 'short take.flac' -c:a flac fixed.flac`" in message


@pytest.mark.parametrize("writer, rate, channels, bits", [
    ("soundfile", 8_000, 1, "PCM_16"), ("soundfile", 48_000, 2, "PCM_24"), ("soundfile", 96_000, 6, "PCM_16"),
    ("flac", 44_100, 2, "PCM_16"), ("flac", 22_050, 1, "PCM_24"), ("ffmpeg", 32_000, 2, "PCM_16"),
    ("ffmpeg", 11_025, 1, "PCM_16"), ("ffmpeg", 192_000, 2, "PCM_24"),
])
def test_the_last_frame_of_real_flacs_ends_where_their_header_says(tmp_path, writer, rate, channels, bits):
    """The frame scan agrees with each encoder's STREAMINFO (libsndfile's count) to the sample, so that no
    whole file is refused: block sizes, sample rates, channel layouts and bit depths as they write them."""
    wave = sine(440.0, seconds=2.3, rate=rate, channels=channels)
    wav = write(tmp_path / "take.wav", wave, rate, subtype=bits)
    path = tmp_path / "take.flac"
    if writer == "soundfile":
        write(path, wave, rate, subtype=bits)
    elif writer == "flac":
        run(need("flac"), "-s", "-f", "-o", path, wav)
    else:
        run(need("ffmpeg"), "-v", "error", "-y", "-i", wav, "-c:a", "flac", path)
    frames = sf.info(str(path)).frames
    assert frames == len(wave) and flac_frames(path).end == frames == flac_frames(path.read_bytes()).end
    starts = flac_frames(path).starts
    assert starts and starts == sorted(starts) and starts[-1] < frames  # the frames' numbers run on
    assert decode_audio(path).duration_s == pytest.approx(2.3, abs=1e-3)


@pytest.mark.parametrize("fmt, subtype, kind, head", [
    ("AIFF", "PCM_16", "AIFF", b"FORM"), ("AIFF", "FLOAT", "AIFF", b"FORM"), ("AU", "PCM_16", "AU", b".snd"),
])
def test_an_aiff_or_au_cut_short_is_refused_like_a_wav(tmp_path, fmt, subtype, kind, head):
    """A 4 s file cut in half (a copy stopped part-way): libsndfile read the 2 s there without a word, where
    a WAV or FLAC cut so is refused as truncated."""
    whole = write(tmp_path / f"whole.{fmt.lower()}", sine(440.0, seconds=4.0, rate=16_000), 16_000,
                  format=fmt, subtype=subtype)
    data = whole.read_bytes()
    assert data[:4] == head
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(data[:len(data) // 2])
    assert sf.info(str(cut)).frames < 40_000  # what libsndfile alone would index
    audio = 16_000 * 4 * (2 if subtype == "PCM_16" else 4)
    present = len(data) // 2 - (len(data) - audio)  # the header's bytes (and any chunk after the audio) go
    for source in (cut, cut.read_bytes()):
        assert refusal(source, name=cut.name) == (f"{cut.name}: truncated {kind}: the header declares "
                                                  f"{audio} bytes of audio but only {present} are present "
                                                  "(a copy stopped part-way: copy it again)")
    assert decode_audio(whole).duration_s == pytest.approx(4.0)


def test_an_au_of_unknown_length_is_read_to_its_end(tmp_path):
    """An AU written to a pipe says its data size is all ones (unknown): it is no cut file."""
    data = bytearray(write(tmp_path / "x.au", sine(seconds=1.0, rate=8_000), 8_000, format="AU").read_bytes())
    data[8:12] = b"\xff" * 4
    assert decode_audio(bytes(data)).duration_s == pytest.approx(1.0)


def wav_header(data_size: int, riff_size: int, extra: bytes = b"") -> bytes:
    """A 16-bit mono 16 kHz WAV's bytes up to its audio: RIFF header, fmt chunk, `extra` chunks, data's."""
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16_000, 32_000, 2, 16)
    data = b"data" + struct.pack("<I", data_size)
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + fmt + extra + data


def test_a_wav_whose_header_was_never_finished_says_so_and_how_to_mend_it(tmp_path):
    """A recorder stopped before it wrote the sizes (RIFF and data 0, 2 s of audio after them): refused as
    holding no audio samples, which it does (ffmpeg decodes 2 s). A WAV whose data chunk is empty still is."""
    pcm = (sine(440.0, seconds=2.0, rate=16_000) * 32_767).astype("<i2").tobytes()
    path = tmp_path / "take.wav"
    path.write_bytes(wav_header(0, 0) + pcm)
    heard = ffmpeg_seconds(path)
    assert heard == pytest.approx(2.0)
    for source in (path, path.read_bytes()):
        message = refusal(source, name=path.name)
        assert message.startswith(f"take.wav: its header was never finished: its sizes say 0 bytes of audio, "
                                  f"but {len(pcm)} bytes follow (a recorder")
    assert decode_audio(mend(tmp_path, message)).duration_s == pytest.approx(heard)

    empty = wav_header(0, 36)
    assert "the file holds no audio samples" in refusal(empty)
    with_list = wav_header(0, 4 + 24 + 8 + 12) + b"LIST" + struct.pack("<I", 4) + b"INFO"
    assert "the file holds no audio samples" in refusal(with_list)  # its RIFF size covers what follows


def test_a_wav_with_many_small_chunks_before_its_audio_is_read(tmp_path, monkeypatch):
    """1,100 small chunks before the data chunk (libsndfile and ffmpeg read it) were past the walk's 1,024
    and refused as "truncated WAV: no audio data chunk". More than MAX_CHUNKS are refused saying so."""
    pcm = (sine(440.0, seconds=2.0, rate=16_000) * 32_767).astype("<i2").tobytes()
    junk = (b"junk" + struct.pack("<I", 2) + b"xx") * 1_100
    data = wav_header(len(pcm), 4 + 24 + len(junk) + 8 + len(pcm), junk) + pcm
    path = tmp_path / "chunky.wav"
    path.write_bytes(data)
    assert sf.info(str(path)).frames == 32_000
    np.testing.assert_allclose(decode_audio(path).wave, decode_audio(data).wave)
    assert decode_audio(path).duration_s == pytest.approx(2.0)

    monkeypatch.setattr(riff, "MAX_CHUNKS", 1_000)
    assert refusal(path) == (f"{path}: more than 1,000 chunks before its audio data, more than is read: "
                             "write it again, for example `ffmpeg -i chunky.wav -c copy fixed.wav`")
