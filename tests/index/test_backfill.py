"""`backfill-windows` on a store of clips without windows: uploads and indexed files still on disk get their
windows (as an add would have stored them), gone or changed files are reported, and a stopped run resumes."""

import numpy as np
import pytest

from app.compose import open_collection
from index.ingest.backfill import backfill_windows
from index.store.records import FileNow, NewClip
from retrieval.durable import sha256_bytes, sha256_file
from retrieval.extract import decode, extract
from retrieval.waveform import peaks
from retrieval.windows import window_spans
from tests.audio_fixtures import need, run, write
from tests.tone_tagger import sections

DOG = ((880.0, 4.0), (440.0, 16.0), (880.0, 4.0))  # the 440 Hz section is [4, 20]


def store_without_windows(collection, path=None, data=None):
    """What an `index add` (a path) or an upload (bytes) stored before windows were kept."""
    if data is not None:
        sha = sha256_bytes(data)
        location = f"audio/{sha}.wav"
        (collection.data_dir / location).write_bytes(data)
    else:
        sha, location = sha256_file(path), str(path)
    ex = extract(collection.data_dir / location if data is not None else path, collection.retriever.tagger)
    clip = NewClip(name="clip.wav", location=location, sha256=sha, duration=ex.audio.duration_s,
                   sample_rate=32_000, tags=(), stored_copy=data is not None)
    return collection.store.add(clip, collection.retriever.project(ex.logits[None])[0], ex.logits)


@pytest.fixture
def old(settings, tone_retriever, tmp_path):
    files = [write(tmp_path / f"{i}.wav", sections(*DOG, (220.0 * (i + 1), 1.0))) for i in range(4)]
    with open_collection(settings, tone_retriever) as c:
        upload = files[0].read_bytes()
        records = [store_without_windows(c, data=upload)] + [store_without_windows(c, f) for f in files[1:]]
        files[2].unlink()  # gone
        write(files[3], sections((440.0, 3.0)))  # changed since it was indexed
        yield c, records, files


def test_backfill_stores_the_windows_it_can_reach_and_reports_the_rest(old):
    c, records, files = old
    assert c.search_text("a dog barking", 1)[0].segment is None  # before: no segment
    report = backfill_windows(c, progress=False)
    assert report.done == 2
    assert [(i, why.split(" ")[0]) for i, _, why in report.unreachable] == [(records[2].id, "its"),
                                                                          (records[3].id, str(files[3]))]
    assert "gone" in report.unreachable[0][2] and "changed" in report.unreachable[1][2]
    assert c.store.without_windows().tolist() == [records[2].id, records[3].id]
    for i, r in enumerate(records[:2]):
        wave = sections(*DOG, (220.0 * (i + 1), 1.0))
        stored = c.store.windows([r.id])[r.id]
        starts, ends = window_spans(len(wave), c.retriever.spec.windowing)
        np.testing.assert_array_equal(stored.starts, starts)
        np.testing.assert_array_equal(stored.ends, ends)
        want = c.retriever.project(c.retriever.tagger.window_logits(wave).logits)
        np.testing.assert_allclose(stored.vectors.astype(np.float32), want, atol=2e-3)
        np.testing.assert_array_equal(c.store.peaks(r.id), peaks(wave))
    hits = {h.record.id: h.segment for h in c.search_text("a dog barking", 4)}
    assert 4.0 <= hits[records[1].id].start < hits[records[1].id].end <= 20.0
    assert hits[records[2].id] is None  # not reached: still no segment


def test_a_stopped_backfill_goes_on_where_it_stopped(old, monkeypatch):
    c, records, _ = old
    tagger = c.retriever.tagger
    real, calls = tagger.window_logits_many, []

    def stop_at_second_clip(waves, **kw):
        calls.append(len(waves))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(waves, **kw)

    monkeypatch.setattr(tagger, "window_logits_many", stop_at_second_clip)
    with pytest.raises(KeyboardInterrupt):
        backfill_windows(c, progress=False)
    assert c.store.without_windows().tolist() == [r.id for r in records[1:]]  # the first one is kept
    monkeypatch.setattr(tagger, "window_logits_many", real)
    before = tagger.calls
    report = backfill_windows(c, progress=False)
    assert report.done == 1 and len(report.unreachable) == 2
    assert tagger.calls - before == c.retriever.spec.windowing.n_windows(25 * 32_000)  # only the clip left
    again = backfill_windows(c, progress=False)
    assert (again.done, len(again.unreachable)) == (0, 2)


def test_copies_of_one_sound_are_tagged_once_and_one_whose_file_is_gone_takes_its_twins(settings,
                                                                                     tone_retriever,
                                                                                     tmp_path, monkeypatch):
    """Clips without windows that share their audio (as a restore of a library with copies leaves them):
    PaSST runs for the first it can read; the others take its windows and peaks, even one whose own file is
    gone or changed, and one met before it in the run."""
    from retrieval.audio import audio_sha256
    from tests.index.ingesting import passt_runs

    wave = sections(*DOG)
    paths = [write(tmp_path / f"copy.{ext}", wave) for ext in ("wav", "aiff")]
    paths.append(tmp_path / "retagged.wav")  # other bytes, the same samples
    run(need("ffmpeg"), "-loglevel", "error", "-i", paths[0], "-c", "copy", "-metadata", "title=Dog",
        paths[2])
    with open_collection(settings, tone_retriever) as c:
        fingerprint = audio_sha256(decode(paths[0]).wave)
        assert {audio_sha256(decode(p).wave) for p in paths} == {fingerprint}  # the same samples
        records = []
        for p in paths:
            r = store_without_windows(c, p)
            records.append(c.store.set_metadata(r.id, r.meta, file=FileNow(audio_sha256=fingerprint)) or r)
        paths[2].unlink()
        write(paths[0], sections((440.0, 3.0)))  # changed: first in order, its twins tagged after it
        calls = passt_runs(monkeypatch)
        report = backfill_windows(c, progress=False)
        assert report.done == 3 and report.unreachable == [] and [n for n in calls if n] == [1]
        got = c.store.timelines([r.id for r in records], logits=True)
        first = got[records[0].id]
        for r in records[1:]:
            assert (got[r.id].windows.vectors == first.windows.vectors).all()
            assert (got[r.id].windows.logits == first.windows.logits).all()
            assert (got[r.id].peaks == first.peaks).all()
            assert (got[r.id].windows.starts == first.windows.starts).all()
        starts, _ = window_spans(len(wave), c.retriever.spec.windowing)
        assert len(first.windows.vectors) == len(starts) and (first.peaks == peaks(wave)).all()


def test_the_progress_bar_counts_windows_as_they_are_tagged(old, capsys, monkeypatch):
    """The bar's work is PaSST windows (a long recording moves it window by window), every clip's counted
    by its stored duration; those not reached are counted as done, not left short."""
    c, records, _ = old
    windowing = c.retriever.spec.windowing
    per_clip = windowing.n_windows(25 * 32_000)
    seen = []
    real = c.extract

    def extract(clips, *, on_batch=None):
        def told(clip_of):
            seen.append(len(clip_of))
            on_batch(clip_of)
        return real(clips, on_batch=told)

    monkeypatch.setattr(c, "extract", extract)
    backfill_windows(c, progress=True)
    last = capsys.readouterr().err.strip().split("\r")[-1]
    assert f"{4 * per_clip}/{4 * per_clip} [" in last and "window/s" in last and "unreachable=2" in last
    assert sum(seen) == 2 * per_clip  # the two clips reached were tagged window by window
