"""An MP3's length counted by its frames (ffmpeg's lame writes them): it agrees with what libsndfile decodes
where libsndfile knows the length, and a file it would cut short (bit rates joined, no Xing header) is refused
rather than indexed in part."""

import pytest
import soundfile as sf

from retrieval.audio import decode_audio, probe_audio
from retrieval.errors import AudioDecodeError, AudioTooLong
from retrieval.mp3_frames import mp3_file_seconds, mp3_seconds
from tests.audio_fixtures import encode, joined_mp3, need, run


def decoded_seconds(path) -> float:
    data, rate = sf.read(str(path))
    return len(data) / rate


@pytest.mark.parametrize("name, args, rate", [
    ("cbr.mp3", ["-c:a", "libmp3lame", "-b:a", "128k"], 44_100),
    ("vbr.mp3", ["-c:a", "libmp3lame", "-q:a", "2"], 48_000),
    ("mpeg2.mp3", ["-c:a", "libmp3lame", "-b:a", "32k"], 22_050),
    ("mpeg25.mp3", ["-c:a", "libmp3lame", "-b:a", "16k"], 8_000),
    ("layer2.mp2", ["-c:a", "mp2", "-b:a", "192k", "-f", "mp2"], 32_000),
])
def test_the_frames_hold_what_libsndfile_decodes(tmp_path, name, args, rate):
    path = encode(tmp_path / name, *args, seconds=7, rate=rate)
    # the frames count the Xing frame and the encoder's delay and padding, which decoders leave out: a few
    # frames (576 samples each at 8 kHz: 72 ms)
    assert mp3_file_seconds(path) == pytest.approx(decoded_seconds(path), abs=0.3)
    assert decode_audio(path).duration_s == pytest.approx(7.0, abs=0.15)


def test_a_file_libsndfile_would_cut_short_is_refused(tmp_path):
    """Two encodings joined end to end, neither with a Xing header: libsndfile takes the length from the
    first frame's 320 kbit/s and reads 3 s of the 21 s."""
    joined = joined_mp3(tmp_path)
    assert decoded_seconds(joined) < 5  # what libsndfile alone would index
    whole = decoded_seconds(tmp_path / "first.mp3") + decoded_seconds(tmp_path / "second.mp3")
    assert mp3_file_seconds(joined) == pytest.approx(whole, abs=0.15)
    assert mp3_seconds(joined.read_bytes()) == mp3_file_seconds(joined)

    for source in (joined, joined.read_bytes()):  # a file on disk, an upload's bytes
        with pytest.raises(AudioDecodeError, match=r"hold 21\.\d s of audio but its header says 3\.\d") as e:
            decode_audio(source, name="joined.mp3")
        assert not isinstance(e.value, AudioTooLong) and "ffmpeg -i joined.mp3 -c:a copy" in str(e.value)
        with pytest.raises(AudioTooLong, match=r"21\.\d s \(counted by its frames\).*_MAX_DURATION_S"):
            probe_audio(source, max_duration_s=10, limit_name="RETRIEVAL_MAX_DURATION_S")

    fixed = tmp_path / "fixed.mp3"  # what the message says to do
    run(need("ffmpeg"), "-v", "error", "-y", "-i", joined, "-c:a", "copy", fixed)
    assert decode_audio(fixed).duration_s == pytest.approx(whole, abs=0.15)


def test_bytes_that_are_not_frames_are_passed_over():
    frame = bytes([0xFF, 0xFB, 0x90, 0x64]) + bytes(413)  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz: 417 bytes
    assert len(frame) == 417
    junk = b"\xff\xfb junk that starts like a frame \xff"
    assert mp3_seconds(junk + frame * 10 + b"TAG" + bytes(125)) == pytest.approx(10 * 1152 / 44_100)
    assert mp3_seconds(b"") == 0.0 and mp3_seconds(junk) == 0.0


def test_a_xing_header_counting_frames_the_file_lacks_is_refused(tmp_path):
    """A Xing header that says five times the frames the file holds: libsndfile reported its 150 s, so the
    clip's duration (and the duration limit) went by audio that is not there; its windows ended at 30 s."""
    import struct

    path = encode(tmp_path / "x.mp3", "-c:a", "libmp3lame", "-q:a", "4", seconds=30)
    data = bytearray(path.read_bytes())
    at = max(data.find(b"Xing"), data.find(b"Info"))
    assert at > 0 and struct.unpack(">I", data[at + 4:at + 8])[0] & 1  # its frame count is there
    frames = struct.unpack(">I", data[at + 8:at + 12])[0]
    data[at + 8:at + 12] = struct.pack(">I", frames * 5)
    (tmp_path / "xing_long.mp3").write_bytes(bytes(data))
    assert sf.info(str(tmp_path / "xing_long.mp3")).duration > 100  # what libsndfile would have recorded
    for source in (tmp_path / "xing_long.mp3", bytes(data)):
        with pytest.raises(AudioDecodeError, match=r"hold 30\.\d s of audio but its header says 150\.\d s "
                                                   r"\(a Xing header that counts frames the file does not"):
            probe_audio(source, name="xing_long.mp3")
        with pytest.raises(AudioTooLong, match=r"longer than the maximum of 20 s") as e:  # by its frames
            probe_audio(source, max_duration_s=20)
        assert "30." in str(e.value)
