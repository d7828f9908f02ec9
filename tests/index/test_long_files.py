"""`index add` of long recordings: read window by window, stored whole or not at all, their own limit."""

from dataclasses import replace

import numpy as np
import pytest

from app.compose import audio_limits, index_limits, open_collection
from index.ingest.builder import index_paths
from index.ingest.worker import ingest
from retrieval.audio import LongWave
from retrieval.durable import sha256_file
from retrieval.extract import decode
from tests.audio_fixtures import write
from tests.index.ingesting import file
from tests.tone_tagger import sections


class Stop(Exception):
    pass


def long_limits(settings):
    """`index add`'s limits, with clips over 5 s read window by window (so a 40 s file is "long")."""
    return replace(index_limits(settings), whole_up_to_s=5.0)


def test_an_interrupted_long_file_leaves_nothing_and_a_rerun_indexes_it(tmp_path, settings, tone_retriever):
    path = write(tmp_path / "long.wav", sections((440.0, 20), (880.0, 20)))
    told: list[tuple[int, int]] = []

    def interrupt(item, done, total):
        told.append((done, total))
        if done >= 3:
            raise Stop("interrupted")

    with open_collection(settings, tone_retriever) as c:
        with pytest.raises(Stop):
            ingest(c, [file(path)], on_windows=interrupt, limits=long_limits(settings))
        assert c.count() == 0 and c.store.get_by_sha256(sha256_file(path)) is None
        assert told and told[-1][0] >= 3 and told[-1][1] == 17  # (40 s + 10 s - 10 s) / 2.5 s + 1
        report = index_paths(c, [path], progress=False, limits=long_limits(settings))
        assert report.added == 1 and c.count() == 1
        record = c.store.get_by_sha256(sha256_file(path))
        timeline = c.store.timelines([record.id])[record.id]
        assert len(timeline.windows.starts) == 17 and record.duration == pytest.approx(40.0)
        assert timeline.peaks.shape == (400,)


def test_index_add_has_its_own_duration_limit(tmp_path, settings, tone_retriever):
    settings = settings.model_copy(update={"max_duration_s": 10.0, "max_index_duration_s": 30.0})
    short, long = (write(tmp_path / f"{s}.wav", sections((440.0, s))) for s in (20, 40))
    with open_collection(settings, tone_retriever) as c:
        assert c.limits == audio_limits(settings)  # uploads and search by example
        report = index_paths(c, [short, long], progress=False, limits=index_limits(settings))
    assert report.added == 1
    [(name, reason)] = report.failed
    assert name == str(long) and "maximum of 30 s (RETRIEVAL_MAX_INDEX_DURATION_S)" in reason
    with open_collection(settings, tone_retriever) as c:  # the limit lowered below a file indexed before
        report = index_paths(c, [short, long], progress=False,
                             limits=replace(index_limits(settings), max_duration_s=15.0))
    assert (report.added, report.skipped) == (0, 1)  # the 20 s file: already indexed, not failed
    [(name, reason)] = report.failed
    assert name == str(long) and "maximum of 15 s" in reason
    stereo = write(tmp_path / "stereo.wav", np.stack([sections((440.0, 2)), sections((550.0, 2))], axis=1))
    with open_collection(settings, tone_retriever) as c:
        assert index_paths(c, [stereo], progress=False, limits=index_limits(settings)).added == 1
        report = index_paths(c, [stereo], progress=False,  # the channel limit lowered below it
                             limits=replace(index_limits(settings), max_channels=1))
    assert (report.added, report.skipped, report.failed) == (0, 1, [])


def test_the_progress_bar_moves_through_a_long_files_windows(tmp_path, settings, tone_retriever, capsys):
    path = write(tmp_path / "long.wav", sections((440.0, 40)))
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, [path], progress=True, limits=long_limits(settings))
    assert "17/17 windows" in capsys.readouterr().err
    other = write(tmp_path / "other.wav", sections((550.0, 40)))
    with open_collection(settings, tone_retriever) as c:  # the first file indexed already: no work to count
        report = index_paths(c, [path, other], progress=True, limits=long_limits(settings))
    assert (report.added, report.windows) == (1, 17)  # the summary's windows/s: the added file's alone
    last = capsys.readouterr().err.strip().split("\r")[-1]
    assert "17/17 windows" in last and "skipped=1" in last  # it was 34/34, the skipped file's counted as done


def test_a_long_example_searches_as_the_whole_wave_would(tmp_path, settings, tone_retriever):
    """Search by example (bytes, not a path) with a clip read window by window: the same hits and
    segments as the same clip decoded whole."""
    stored = [write(tmp_path / f"{hz}.wav", sections((hz, 12))) for hz in (440.0, 880.0, 1320.0)]
    example = write(tmp_path / "example.wav", sections((880.0, 20), (440.0, 20))).read_bytes()
    with open_collection(settings, tone_retriever) as c:
        index_paths(c, stored, progress=False, limits=index_limits(settings))
        whole = c.search_audio(example, 3)
        c.limits = replace(c.limits, whole_up_to_s=5.0)
        assert isinstance(decode(example, limits=c.limits).wave, LongWave)  # read window by window
        streamed = c.search_audio(example, 3)
    assert [h.record.id for h in streamed] == [h.record.id for h in whole]
    assert [h.score for h in streamed] == pytest.approx([h.score for h in whole], abs=1e-5)
    assert [h.segment for h in streamed] == [h.segment for h in whole]
