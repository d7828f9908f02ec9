"""Audio with known contents, written on the spot: sine waves, silence, clicks; and the Debian tools that
write tagged files (ffmpeg, vorbiscomment, metaflac), which CI installs."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def sine(freq: float = 440.0, *, seconds: float = 1.0, rate: int = 32_000, channels: int = 1,
         amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def clicks(*, seconds: float = 1.0, rate: int = 32_000, every_s: float = 0.1) -> np.ndarray:
    x = np.zeros(int(seconds * rate), dtype=np.float32)
    x[:: int(every_s * rate)] = 0.9
    return x


def noise(*, seconds: float = 1.0, rate: int = 32_000, seed: int = 0, amplitude: float = 0.3) -> np.ndarray:
    return (amplitude * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def write(path: Path, data: np.ndarray, rate: int = 32_000, **kwargs) -> Path:
    sf.write(str(path), data, rate, **kwargs)
    return path



def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is needed to write the tagged test files (CI is set)")
        pytest.skip(f"{tool} is not installed: it writes this case's tagged file")
    return path


def run(*args) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True)


def encode(path: Path, *args, seconds: float, rate: int = 44_100, freq: int = 440) -> Path:
    """A sine of `seconds` encoded by ffmpeg with `args` (its codec and options) into `path`."""
    source = f"sine=f={freq}:d={seconds}:sample_rate={rate}"
    run(need("ffmpeg"), "-v", "error", "-y", "-f", "lavfi", "-i", source, *args, path)
    return path


def joined_mp3(folder: Path, *, seconds: float = 20) -> Path:
    """1 s at 320 kbit/s and then `seconds` at 32 kbit/s, end to end, neither with a Xing header: libsndfile
    takes the length from the first frame's bit rate and decodes a seventh of the rest."""
    first = encode(folder / "first.mp3", "-c:a", "libmp3lame", "-b:a", "320k", "-write_xing", "0", seconds=1)
    second = encode(folder / "second.mp3", "-c:a", "libmp3lame", "-b:a", "32k", "-write_xing", "0",
                    seconds=seconds, freq=660)
    joined = folder / "joined.mp3"
    joined.write_bytes(first.read_bytes() + second.read_bytes())  # the second's ID3 tag in the middle
    return joined
