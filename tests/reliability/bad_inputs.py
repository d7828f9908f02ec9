"""Everything a user might upload that is not audio the service should index, made on the spot.

Each BadInput carries the status the service must answer and words its message must contain, so a test can
tell a clear refusal from an accidental one. `odd_but_valid()` are uploads that look odd but are real audio
(surround files, path-like and unicode names): they must be accepted, with the name reduced to a bare one.
"""

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from tests.audio_fixtures import noise, sine

UNREADABLE = "not a readable audio file"
TRUNCATED = "truncated wav"
NON_FINITE = "nan or infinite"


@dataclass(frozen=True)
class BadInput:
    id: str  # the test id
    filename: str  # the multipart file name
    data: bytes
    status: int  # what the service must answer
    message: tuple[str, ...]  # the detail must contain one of these (lower case)


def audio_bytes(wave: np.ndarray, rate: int = 32_000, *, fmt: str = "WAV",
                subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def wav_chunks(data: bytes) -> dict[bytes, int]:
    """RIFF chunk id -> offset of its 8-byte header."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", "not a RIFF/WAVE file"
    chunks, pos = {}, 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        chunks[cid] = pos
        pos += 8 + size + (size & 1)
    return chunks


def with_rate(wav: bytes, rate: int) -> bytes:
    """The WAV with its fmt chunk's sample rate (and byte rate) replaced."""
    out = bytearray(wav)
    fmt = wav_chunks(wav)[b"fmt "] + 8  # body: format, channels, rate, byte rate, block align, bits
    block_align = struct.unpack("<H", out[fmt + 12:fmt + 14])[0]
    struct.pack_into("<II", out, fmt + 4, rate, (rate * block_align) & 0xFFFFFFFF)
    return bytes(out)


def with_data_size(wav: bytes, size: int) -> bytes:
    """The WAV with its data chunk claiming `size` bytes (the samples themselves are left as they are)."""
    out = bytearray(wav)
    struct.pack_into("<I", out, wav_chunks(wav)[b"data"] + 4, size)
    return bytes(out)


def png_bytes(width: int = 4, height: int = 4) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))  # filter byte + RGB pixels
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def pdf_bytes() -> bytes:
    return (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
            b"trailer << /Root 1 0 R >>\n%%EOF\n")


def zip_of(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return buf.getvalue()


def broken_mp3(seed: int = 0) -> bytes:
    """A real MP3's first frame header, then random bytes where its frames should be."""
    mp3 = audio_bytes(sine(440.0, seconds=1.0), fmt="MP3")
    rng = np.random.default_rng(seed)
    return mp3[:8] + rng.integers(0, 256, len(mp3) - 8, dtype=np.uint8).tobytes()


def non_finite_wav(value: float, *, fraction: float = 1.0) -> bytes:
    """A float WAV whose first `fraction` of samples are `value` (NaN or +-Inf), the rest a sine."""
    x = sine(440.0, seconds=0.5)
    x[: int(fraction * len(x))] = value
    return audio_bytes(x, subtype="FLOAT")


def bad_inputs(*, max_bytes: int, max_duration_s: float) -> list[BadInput]:
    """The bad uploads, for a server with these limits."""
    good = audio_bytes(sine(440.0, seconds=0.5))  # 16-bit PCM, 32 kHz, mono
    rf64 = audio_bytes(sine(440.0, seconds=0.5), fmt="RF64")  # its data chunk's size in ds64
    random_bytes = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    too_long = audio_bytes(noise(seconds=max_duration_s + 1.0, rate=8_000), 8_000)  # 16 kB/s: under the limit
    too_large = audio_bytes(noise(seconds=max_bytes / 64_000 + 0.5))  # 64 kB/s: over it
    assert len(too_long) < max_bytes < len(too_large)
    return [
        BadInput("empty", "empty.wav", b"", 415, ("empty",)),
        BadInput("one-byte", "one.wav", b"R", 415, (UNREADABLE,)),
        BadInput("wav-truncated-header", "cut.wav", good[:20], 415, (TRUNCATED,)),
        BadInput("wav-cut-short", "short.wav", good[: len(good) // 2], 415, (TRUNCATED,)),
        BadInput("wav-data-size-lies", "lies.wav", with_data_size(good, 40 * len(good)), 415, (TRUNCATED,)),
        BadInput("wav-data-size-max", "lies2.wav", with_data_size(good, 0xFFFFFFF0), 415, (TRUNCATED,)),
        BadInput("rf64-cut-short", "short64.wav", rf64[: len(rf64) // 2], 415, (TRUNCATED,)),
        BadInput("bw64-cut-short", "short_bw.wav", b"BW64" + rf64[4: len(rf64) // 2], 415, (TRUNCATED,)),
        BadInput("png", "image.png", png_bytes(), 415, (UNREADABLE,)),
        BadInput("png-named-wav", "image.wav", png_bytes(), 415, (UNREADABLE,)),
        BadInput("pdf", "paper.pdf", pdf_bytes(), 415, (UNREADABLE,)),
        BadInput("text", "notes.txt", b"rain on a tin roof\n" * 20, 415, (UNREADABLE,)),
        BadInput("zip-of-wav", "clips.zip", zip_of("a.wav", good), 415, (UNREADABLE,)),
        BadInput("random-bytes-wav", "random.wav", random_bytes, 415, (UNREADABLE,)),
        BadInput("riff-then-random", "riff.wav", good[:12] + random_bytes, 415, (UNREADABLE, TRUNCATED)),
        BadInput("float-all-nan", "nan.wav", non_finite_wav(np.nan), 415, (NON_FINITE,)),
        BadInput("float-one-inf", "inf.wav", non_finite_wav(np.inf, fraction=0.01), 415, (NON_FINITE,)),
        BadInput("float-neg-inf", "ninf.wav", non_finite_wav(-np.inf), 415, (NON_FINITE,)),
        BadInput("rate-0-hz", "r0.wav", with_rate(good, 0), 415, ("sample rate", UNREADABLE)),
        BadInput("rate-1-hz", "r1.wav", with_rate(good, 1), 415, ("sample rate",)),
        BadInput("rate-4-ghz", "r4g.wav", with_rate(good, 4_000_000_000), 415, ("sample rate", UNREADABLE)),
        BadInput("eight-channels", "array.wav", audio_bytes(sine(523.0, seconds=0.5, channels=8)), 415,
                 ("8 channels",)),
        BadInput("too-long", "long.wav", too_long, 413, ("longer than",)),
        BadInput("too-large", "large.wav", too_large, 413, ("larger than",)),
        BadInput("mp3-broken-frames", "broken.mp3", broken_mp3(), 415, (UNREADABLE,)),
        BadInput("mp3-header-only", "header.mp3", broken_mp3()[:8], 415, (UNREADABLE,)),
        BadInput("traversal-name-garbage", "../../../../tmp/evil.wav", b"not audio", 415, (UNREADABLE,)),
    ]


@dataclass(frozen=True)
class OddUpload:
    id: str
    filename: str
    data: bytes
    stored_name: str  # the bare name the record must carry
    channels: int = 1
    name_field: str | None = None  # the form's optional `name`, which overrides the file's own


def odd_but_valid() -> list[OddUpload]:
    """Real audio under odd names or layouts: each is accepted (201) and its name reduced to a bare one.
    Every clip differs (frequency), so none is taken for a duplicate of another."""
    def clip(freq: float, channels: int = 1) -> bytes:
        return audio_bytes(sine(freq, seconds=0.5, channels=channels))

    return [
        OddUpload("stereo", "stereo.wav", clip(523.0, channels=2), "stereo.wav", channels=2),
        OddUpload("dotdot-name", "../../../../tmp/evil.wav", clip(587.0), "evil.wav"),
        OddUpload("windows-dotdot-name", "..\\..\\windows\\evil2.wav", clip(659.0), "evil2.wav"),
        OddUpload("unicode-name", "雨音 café 🎵.wav", clip(698.0), "雨音 café 🎵.wav"),
        OddUpload("dotdot-name-field", "plain.wav", clip(784.0), "field.wav", name_field="../../x/field.wav"),
        OddUpload("blank-name-field", "own.wav", clip(1233.0), "own.wav", name_field="   "),  # its file's
        OddUpload("dot-name-field", "own2.wav", clip(1318.5), "own2.wav", name_field=".."),
        OddUpload("no-name-at-all", "../", clip(1396.9), "upload"),
        # a tab or a newline is a space (it was dropped: "big\tone" became "bigone"), as in a file's tags
        OddUpload("tab-and-newline", "tabbed.wav", clip(1480.0), "Door slam, big one again.wav",
                  name_field="Door slam, big\tone\nagain.wav"),
        OddUpload("right-to-left-override", "\u202egnp.wav", clip(1568.0), "gnp.wav"),  # not shown as vaw.png
        OddUpload("decomposed", "cafe\u0301.wav", clip(1661.2), "caf\u00e9.wav"),  # macOS's NFD: one name

    ]
