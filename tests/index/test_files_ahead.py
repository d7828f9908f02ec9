"""Files decoded ahead by processes of their own (index/ingest/ahead.py): the same collection and the same
report as decoding each file where it is tagged (the oracle), whatever the files are; nothing decoded ahead
that is stored already; a pool that breaks leaves the files to the tagging process."""

import os
import shutil

import numpy as np
import pytest

import index.ingest.builder as builder
import index.ingest.worker as worker
from app.compose import open_collection
from index.ingest.ahead import FilesAhead, ready_file
from index.ingest.builder import index_paths
from retrieval.extract import AudioLimits, decode
from tests.audio_fixtures import noise, sine, write
from tests.index.test_embedded_metadata import tagged_flac

LIMITS = AudioLimits(whole_up_to_s=5.0)  # the 12 s file is streamed where it is tagged


def library(folder):
    """Files of every kind the pool meets: rates, channels, formats and tags, a copy of the same bytes and one
    of the same audio in other bytes, a file that fails only when decoded, one refused from its header, and
    a long one."""
    folder.mkdir()
    tone = sine(440.0, seconds=3.0)
    write(folder / "a.wav", tone, subtype="PCM_16")
    write(folder / "a_same_audio.wav", tone, subtype="PCM_24")  # other bytes, the same samples
    shutil.copy(folder / "a.wav", folder / "a_copy.wav")  # the same bytes
    write(folder / "b.wav", np.stack([sine(880.0, seconds=2.0, rate=44_100),
                                      noise(seconds=2.0, rate=44_100)], axis=1), 44_100)
    tagged_flac(folder / "c.flac", 1760, "--set-tag=DESCRIPTION=a bell in a hall", "--set-tag=GENRE=Bells")
    bad = noise(seconds=2.0)
    bad[1000] = np.nan
    write(folder / "nan.wav", bad, subtype="FLOAT")
    (folder / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEnot really")
    write(folder / "long.wav", np.concatenate([sine(440.0, seconds=6.0), sine(880.0, seconds=6.0)]))


def indexed(settings, retriever, folder, decoders: int, batch_clips: int = 2):
    with open_collection(settings, retriever) as c:
        report = index_paths(c, [folder], progress=False, batch_clips=batch_clips, limits=LIMITS,
                             decoders=decoders)
        records = {r.name: r for r in c.list(0, 100)}
        timelines = c.store.timelines([r.id for r in records.values()], logits=True)
        vectors = {name: c.store.vectors([r.id])[0] for name, r in records.items()}
        return report, records, timelines, vectors


def test_a_library_decoded_ahead_is_the_library_decoded_where_it_is_tagged(tmp_path, settings, tone_retriever,
                                                                           monkeypatch):
    library(tmp_path / "lib")
    report, records, timelines, vectors = indexed(settings, tone_retriever, tmp_path / "lib", decoders=0)
    here = []  # the files the tagging process decoded itself
    monkeypatch.setattr(worker, "decode", lambda src, **kw: here.append(src.name) or decode(src, **kw))
    other = settings.model_copy(update={"data_dir": tmp_path / "ahead"})
    report2, records2, timelines2, vectors2 = indexed(other, tone_retriever, tmp_path / "lib", decoders=2)
    assert here == ["long.wav"]  # streamed; every other file came decoded
    assert (report2.added, report2.skipped, report2.failed) == (report.added, report.skipped, report.failed)
    assert (report.added, report.skipped) == (5, 1)  # a_copy.wav: a.wav's bytes
    assert [(os.path.basename(path), reason) for path, reason in report.failed] == [
        ("broken.wav", "broken.wav: truncated WAV: no audio data chunk"),
        ("nan.wav", "nan.wav: the audio holds NaN or infinite samples")]  # decoded ahead: the same words
    assert sorted(records) == sorted(records2) == ["a.wav", "a_same_audio.wav", "b.wav", "c.flac", "long.wav"]
    for name, r in records.items():
        r2 = records2[name]
        assert (r2.sha256, r2.audio_sha256, r2.duration, r2.meta, r2.tags) == \
            (r.sha256, r.audio_sha256, r.duration, r.meta, r.tags), name
        np.testing.assert_array_equal(vectors2[name], vectors[name])
        w, w2 = timelines[r.id].windows, timelines2[r2.id].windows
        np.testing.assert_array_equal(w2.starts, w.starts)
        np.testing.assert_array_equal(w2.logits, w.logits)
    assert records["c.flac"].meta.description == "a bell in a hall"


def test_nothing_stored_already_is_decoded_ahead_and_long_files_are_left_to_the_tagging_process(
        tmp_path, settings, tone_retriever, monkeypatch):
    library(tmp_path / "lib")
    handed = []
    submit = FilesAhead.submit

    def recorded(self, files):
        files = list(files)
        handed.extend(os.path.basename(path) for _, path, _ in files)
        return submit(self, files)

    monkeypatch.setattr(builder.FilesAhead, "submit", recorded)
    indexed(settings, tone_retriever, tmp_path / "lib", decoders=1)
    assert sorted(handed) == ["a.wav", "a_copy.wav", "a_same_audio.wav", "b.wav", "c.flac", "nan.wav"]
    handed.clear()
    report, *_ = indexed(settings, tone_retriever, tmp_path / "lib", decoders=1)  # a rerun: all stored
    assert (report.added, handed) == (0, ["nan.wav"])  # what failed is tried again


def test_a_file_decoded_ahead_is_what_decoding_it_here_gives(tmp_path):
    path = write(tmp_path / "b.wav", noise(seconds=2.0, rate=48_000), 48_000)
    ready = ready_file(path, "b.wav", LIMITS)
    here = decode(path, limits=LIMITS, name="b.wav")
    np.testing.assert_array_equal(ready.decoded().wave, here.wave)
    assert ready.decoded().fingerprint == here.fingerprint and ready.error is None


def test_a_broken_pool_leaves_every_file_to_the_tagging_process(tmp_path):
    path = write(tmp_path / "b.wav", noise(seconds=1.0), 32_000)
    with FilesAhead(1, LIMITS) as ahead:
        assert FilesAhead.collect(ahead.submit([("b", path, "b.wav")])).keys() == {"b"}
        for process in list(ahead._pool._processes.values()):
            process.kill()
            process.join()
        with pytest.raises(Exception):  # noqa: B017, PT011 - the pool knows it is broken once it looks
            ahead._pool.submit(print).result(timeout=30)
        assert FilesAhead.collect(ahead.submit([("b", path, "b.wav")])) == {}
