"""A long file decoded by a child process: the same blocks and errors as decoding it in process (the oracle,
retrieval.audio.file_blocks), and no child left behind however the reading ends."""

import multiprocessing
import os
import signal
import subprocess

import numpy as np
import pytest

import retrieval.audio
import retrieval.decoder_process as decoder_process
from retrieval.audio import LongWave, decode_audio, file_blocks
from retrieval.decoder_process import blocks_in_process
from retrieval.errors import AudioDecodeError
from tests.audio_fixtures import noise, write


@pytest.fixture
def children(monkeypatch):
    """The child processes started, as they are started."""
    started: list[subprocess.Popen] = []
    popen = subprocess.Popen

    def recorded(*args, **kwargs):
        started.append(popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(decoder_process.subprocess, "Popen", recorded)
    return started


@pytest.mark.parametrize("rate,channels,subtype", [(44_100, 2, "PCM_16"), (32_000, 1, "FLOAT"),
                                                    (48_000, 3, "PCM_24")])
def test_the_childs_samples_are_the_in_process_samples(tmp_path, rate, channels, subtype, children):
    data = np.stack([noise(seconds=19.0, rate=rate, seed=c) for c in range(channels)], axis=1)
    path = write(tmp_path / "take.wav", data, rate, subtype=subtype)
    oracle = np.concatenate(list(file_blocks(path, label="take.wav")))
    got = list(blocks_in_process(path, label="take.wav"))
    assert all(b.dtype == np.float32 and b.flags.writeable for b in got)
    assert np.array_equal(np.concatenate(got), oracle)
    assert len(got) == 3 and all(len(b) >= decoder_process.CHUNK_SAMPLES for b in got[:-1])  # in chunks
    assert [c.returncode for c in children] == [0]


def test_a_long_wave_from_a_path_is_decoded_by_a_child_and_from_bytes_in_process(tmp_path, children):
    path = write(tmp_path / "long.wav", noise(seconds=6.0, rate=44_100), 44_100)
    from_path = decode_audio(path, whole_up_to_s=1.0).wave
    from_bytes = decode_audio(path.read_bytes(), whole_up_to_s=1.0).wave
    assert isinstance(from_path, LongWave) and isinstance(from_bytes, LongWave)
    assert np.array_equal(from_path.read(), from_bytes.read()) and len(children) == 1
    assert retrieval.audio.audio_sha256(from_path) == retrieval.audio.audio_sha256(from_bytes)
    assert np.array_equal(from_path.read(), decode_audio(path).wave)  # the whole file's decoding


def test_a_file_the_child_cannot_decode_raises_what_decoding_it_in_process_raises(tmp_path, children):
    bad = noise(seconds=30.0)
    bad[600_000] = np.nan  # in the tenth block, the third chunk
    path = write(tmp_path / "nan.wav", bad, 32_000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError) as in_process:
        list(file_blocks(path, label="nan.wav"))
    got = []
    with pytest.raises(AudioDecodeError) as in_child:
        for block in blocks_in_process(path, label="nan.wav"):
            got.append(block)
    assert str(in_child.value) == str(in_process.value) == "nan.wav: the audio holds NaN or infinite samples"
    assert len(got) <= 2  # the chunks before the bad one, or fewer: the error is raised once the child ends
    gone = tmp_path / "gone.wav"
    with pytest.raises(AudioDecodeError, match="^gone.wav: no such file$"):
        list(blocks_in_process(gone, label="gone.wav"))
    assert [c.returncode for c in children] == [decoder_process.DECODE_ERROR] * 2


def test_a_failure_is_raised_at_the_next_read_not_after_the_chunks_queued_before_it(tmp_path, children):
    bad = noise(seconds=40.0)
    bad[1_000_000] = np.nan  # in the fourth chunk: three decoded before it
    path = write(tmp_path / "nan.wav", bad, 32_000, subtype="FLOAT")
    blocks = blocks_in_process(path, label="nan.wav")
    assert next(blocks).size == decoder_process.CHUNK_SAMPLES
    assert children[0].wait() == decoder_process.DECODE_ERROR  # two good chunks are still queued or piped
    with pytest.raises(AudioDecodeError, match="^nan.wav: the audio holds NaN or infinite samples$"):
        next(blocks)


def test_a_reader_that_stops_early_leaves_no_child(tmp_path, children):
    path = write(tmp_path / "long.wav", noise(seconds=30.0, rate=48_000), 48_000)
    blocks = blocks_in_process(path, label="long.wav")
    assert next(blocks).size > 0
    blocks.close()
    [child] = children
    assert child.poll() is not None  # killed and reaped


def test_a_child_killed_midway_is_an_error_naming_its_exit_status(tmp_path, children):
    path = write(tmp_path / "long.wav", noise(seconds=30.0, rate=48_000), 48_000)
    blocks = blocks_in_process(path, label="long.wav")
    next(blocks)
    os.kill(children[0].pid, signal.SIGKILL)
    with pytest.raises(AudioDecodeError, match="long.wav: the decoding process ended with exit status -9"):
        for _ in blocks:
            pass


def _count_in_daemon(path, out) -> None:
    out.put(sum(len(b) for b in blocks_in_process(path, label="d.wav")))


def test_a_daemonic_process_such_as_the_ingest_worker_can_use_it(tmp_path):
    path = write(tmp_path / "d.wav", noise(seconds=4.0, rate=44_100), 44_100)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    worker = ctx.Process(target=_count_in_daemon, args=(str(path), out), daemon=True)
    worker.start()
    got = out.get(timeout=120)
    worker.join(timeout=60)
    assert got == sum(len(b) for b in file_blocks(path, label="d.wav")) and worker.exitcode == 0


def test_the_child_leaves_a_ctrl_c_to_its_caller(tmp_path, children):
    """A terminal's SIGINT reaches both processes; the child goes on, and the caller ends it if it stops."""
    path = write(tmp_path / "long.wav", noise(seconds=30.0, rate=48_000), 48_000)
    blocks = blocks_in_process(path, label="long.wav")
    got = [next(blocks)]
    os.kill(children[0].pid, signal.SIGINT)
    got.extend(blocks)
    assert np.array_equal(np.concatenate(got), np.concatenate(list(file_blocks(path, label="long.wav"))))
    assert children[0].returncode == 0


def test_the_child_imports_the_callers_package_not_the_working_directorys(tmp_path, monkeypatch, children):
    """A `retrieval` (or any module) in the directory the caller runs from is not what the child runs."""
    (tmp_path / "retrieval.py").write_text("raise SystemExit('the working directory was imported')\n")
    path = write(tmp_path / "long.wav", noise(seconds=3.0, rate=44_100), 44_100)
    monkeypatch.chdir(tmp_path)
    assert np.array_equal(np.concatenate(list(blocks_in_process(path, label="long.wav"))),
                          np.concatenate(list(file_blocks(path, label="long.wav"))))


def test_a_file_name_with_a_line_break_is_whole_in_the_childs_error(tmp_path, children):
    bad = noise(seconds=2.0)
    bad[1000] = np.inf
    path = write(tmp_path / "nan.wav", bad, 32_000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError) as in_child:
        list(blocks_in_process(path, label="two\nlines.wav"))
    assert str(in_child.value) == "two\nlines.wav: the audio holds NaN or infinite samples"
