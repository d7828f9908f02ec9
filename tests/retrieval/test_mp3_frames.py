"""An MP3's length counted by its frames (ffmpeg's lame writes them): it agrees with what libsndfile decodes
where libsndfile knows the length, and a file it would cut short (bit rates joined, no Xing header) is refused
rather than indexed in part."""

import subprocess

import pytest
import soundfile as sf

from retrieval.audio import decode_audio, probe_audio
from retrieval.errors import AudioDecodeError, AudioTooLong
from retrieval.mp3_frames import mp3_file_frames, mp3_frames
from tests.audio_fixtures import encode, joined_mp3, need, run


def decoded_seconds(path) -> float:
    data, rate = sf.read(str(path))
    return len(data) / rate


def ffmpeg_seconds(path) -> float:
    """How long ffmpeg's decoding of `path` is (mono float32 at 32 kHz, counted)."""
    out = subprocess.run([need("ffmpeg"), "-v", "error", "-i", str(path), "-ac", "1", "-ar", "32000", "-f",
                          "f32le", "-"], check=True, capture_output=True).stdout
    return len(out) / 4 / 32_000


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
    assert mp3_file_frames(path).seconds == pytest.approx(decoded_seconds(path), abs=0.3)
    assert decode_audio(path).duration_s == pytest.approx(7.0, abs=0.15)


def test_a_file_libsndfile_would_cut_short_is_refused(tmp_path):
    """Two encodings joined end to end, neither with a Xing header: libsndfile takes the length from the
    first frame's 320 kbit/s and reads 3 s of the 21 s."""
    joined = joined_mp3(tmp_path)
    assert decoded_seconds(joined) < 5  # what libsndfile alone would index
    whole = decoded_seconds(tmp_path / "first.mp3") + decoded_seconds(tmp_path / "second.mp3")
    assert mp3_file_frames(joined).seconds == pytest.approx(whole, abs=0.15)
    assert mp3_frames(joined.read_bytes()).seconds == mp3_file_frames(joined).seconds

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
    assert mp3_frames(junk + frame * 10 + b"TAG" + bytes(125)).seconds == pytest.approx(10 * 1152 / 44_100)
    assert mp3_frames(b"").seconds == 0.0 and mp3_frames(junk).seconds == 0.0


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


def test_an_mp3_padded_with_junk_is_counted_at_once_and_refused_for_what_it_is(tmp_path, monkeypatch):
    """3 s of CBR frames, then 2 MiB of 0xFF (a preallocated file never trimmed): the scan visited every 0xFF
    byte in Python (a second a MiB, in the upload's request), and the refusal blamed a Xing header the file
    does not have. Now the frame headers are looked for in C, and the message names the bytes after the last
    frame and where to cut: what that cut leaves is what ffmpeg decodes of the padded file, to a frame."""
    from retrieval import mp3_frames

    frames = encode(tmp_path / "take.mp3", "-c:a", "libmp3lame", "-b:a", "128k", "-write_xing", "0",
                    seconds=3)
    padded = tmp_path / "padded.mp3"
    padded.write_bytes(frames.read_bytes() + b"\xff" * (2 << 20))
    looked_at = []
    real_frame_at = mp3_frames.frame_at
    monkeypatch.setattr(mp3_frames, "frame_at", lambda data, i: looked_at.append(i) or real_frame_at(data, i))
    found = mp3_file_frames(padded).seconds
    assert len(looked_at) < 1_000  # about two a frame, not one a byte of the padding
    monkeypatch.undo()
    assert found == pytest.approx(decoded_seconds(frames), abs=0.1)

    heard = ffmpeg_seconds(padded)  # ffmpeg passes the padding over
    assert heard == pytest.approx(3.0, abs=0.1) and sf.info(str(padded)).duration > 100  # libsndfile: by size
    for source in (padded, padded.read_bytes()):
        with pytest.raises(AudioDecodeError) as e:
            probe_audio(source, name="padded.mp3")
        message = str(e.value)
        assert "Xing" not in message.split("(")[0] and "the 2097" in message
        assert "bytes after its last frame are not MP3 frames" in message and "3.0 s of audio" in message
    subprocess.run(["sh", "-c", message.split("`")[1]], cwd=tmp_path, check=True)  # what it says to do
    assert decode_audio(tmp_path / "fixed.mp3").duration_s == pytest.approx(heard, abs=0.03)  # but a frame


def test_headers_that_no_frame_confirms_are_passed_over_a_bounded_number_of_times(monkeypatch):
    """Frame headers packed four bytes apart, none confirmed by a frame where its size says the next one
    starts: each is one turn of the Python loop, so the scan stops after MAX_FALSE_SYNCS of them."""
    from retrieval import mp3_frames

    frame = bytes([0xFF, 0xFB, 0x90, 0x64]) + bytes(413)
    monkeypatch.setattr(mp3_frames, "MAX_FALSE_SYNCS", 100)
    found = mp3_frames.mp3_frames(frame * 10 + bytes([0xFF, 0xFB, 0x90, 0x64]) * 100_000 + frame * 10)
    assert found.seconds == pytest.approx(10 * 1152 / 44_100)  # the frames after the run are not reached
    assert found.end == 10 * 417 and found.after == found.size - found.end


def test_a_xing_header_counting_fewer_frames_than_the_file_holds_is_named(tmp_path):
    """A Xing header that says 20 frames of a 3 s file: the refusal said the file had no Xing header."""
    import struct

    path = encode(tmp_path / "x.mp3", "-c:a", "libmp3lame", "-b:a", "128k", seconds=3)
    data = bytearray(path.read_bytes())
    at = max(data.find(b"Xing"), data.find(b"Info"))
    data[at + 8:at + 12] = struct.pack(">I", 20)
    short = tmp_path / "short.mp3"
    short.write_bytes(bytes(data))
    assert sf.info(str(short)).duration < 1  # libsndfile goes by the 20 frames
    with pytest.raises(AudioDecodeError, match=r"hold 3\.\d s of audio but its header says 0\.\d s \(a Xing "
                                               r"header that counts fewer frames than the file holds\)") as e:
        decode_audio(short)
    assert "without a Xing header" not in str(e.value)
    fixed = tmp_path / "fixed.mp3"  # what the message says to do
    run(need("ffmpeg"), "-v", "error", "-y", "-i", short, "-c:a", "copy", fixed)
    assert decode_audio(fixed).duration_s == pytest.approx(ffmpeg_seconds(short), abs=0.05)


def test_bytes_between_frames_are_named_as_such(tmp_path):
    """2 s of frames, a MiB of zeros, 2 s more (a file patched together): libsndfile reckons its length from
    the size and cannot decode past the zeros; the message says where the bytes that are not frames lie, and
    the encoding it names holds what ffmpeg hears of the file."""
    first = encode(tmp_path / "a.mp3", "-c:a", "libmp3lame", "-b:a", "128k", "-write_xing", "0",
                   "-id3v2_version", "0", seconds=2)
    second = encode(tmp_path / "b.mp3", "-c:a", "libmp3lame", "-b:a", "128k", "-write_xing", "0",
                    "-id3v2_version", "0", seconds=2, freq=660)
    patched = tmp_path / "patched.mp3"
    patched.write_bytes(first.read_bytes() + bytes(1 << 20) + second.read_bytes())
    with pytest.raises(AudioDecodeError, match=r"patched\.mp3: 10\d{5} bytes between its frames are not MP3 "
                                               r"frames \(its frames hold 4\.\d s of audio") as e:
        decode_audio(patched)
    command = str(e.value).split("`")[1].split()
    assert command == ["ffmpeg", "-i", "patched.mp3", "fixed.mp3"]
    run(need("ffmpeg"), "-v", "error", "-y", "-i", patched, tmp_path / "fixed.mp3")
    assert decode_audio(tmp_path / "fixed.mp3").duration_s == pytest.approx(ffmpeg_seconds(patched), abs=0.05)
