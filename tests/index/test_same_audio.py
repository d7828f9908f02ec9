"""The same audio in other bytes (a copy of a sound in another pack, tagged otherwise; an upload retagged)
is a clip of its own that takes the stored analysis of the clip it sounds like: no PaSST, and what PaSST
would have given (the oracle: the same file indexed into a collection of its own)."""

import shutil

import numpy as np

from app.compose import open_collection
from tests.audio_fixtures import need, run
from tests.index.ingesting import add, file, passt_runs, upload


def vorbis_sine(path, comment: str, seconds: int = 1, frequency: int = 440) -> None:
    run(need("ffmpeg"), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
        f"sine=frequency={frequency}:duration={seconds}", "-c:a", "libvorbis", path)
    run(need("vorbiscomment"), "-w", "-t", comment, path)


def retagged_copy(src, dest, comment: str) -> None:
    shutil.copy(src, dest)
    run(need("vorbiscomment"), "-w", "-t", comment, dest)


def test_a_copy_of_a_stored_clips_audio_tagged_otherwise_takes_its_analysis_and_what_passt_would_give(
        tmp_path, settings, tone_retriever, monkeypatch):
    (tmp_path / "pack1").mkdir()
    (tmp_path / "pack2").mkdir()
    first = tmp_path / "pack1" / "dog.ogg"
    vorbis_sine(first, "DESCRIPTION=Dog bark")
    second = tmp_path / "pack2" / "hound.ogg"
    retagged_copy(first, second, "DESCRIPTION=Hound bay")
    with open_collection(settings, tone_retriever) as c:
        [(original, _)] = add(c, file(first))
    calls = passt_runs(monkeypatch)
    with open_collection(settings, tone_retriever) as c:
        [(copy, created)] = add(c, file(second))
        assert created and copy.id != original.id and [n for n in calls if n] == []  # no PaSST
        assert (copy.name, copy.meta.description, copy.audio_sha256) == ("hound.ogg", "Hound bay",
                                                                         original.audio_sha256)
        assert [t.label for t in copy.tags] == [t.label for t in original.tags]
        vectors, logits = c.store.rows([original.id, copy.id])
        got = c.store.timelines([original.id, copy.id], logits=True)
        assert (vectors[0] == vectors[1]).all() and (logits[0] == logits[1]).all()
        assert (got[copy.id].windows.vectors == got[original.id].windows.vectors).all()
        assert (got[copy.id].windows.logits == got[original.id].windows.logits).all()
        assert (got[copy.id].peaks == got[original.id].peaks).all()
        assert c.search_keywords("hound", 5)[0].record.id == copy.id
        # an upload of the same audio, tagged otherwise: the same, its bytes kept under audio/
        third = tmp_path / "cat.ogg"
        retagged_copy(first, third, "DESCRIPTION=Cat hiss")
        [(uploaded, created)] = add(c, upload(third.read_bytes(), "cat.ogg"))
        assert created and uploaded.stored_copy and (c.data_dir / uploaded.location).is_file()
        assert [n for n in calls if n] == [] and (c.store.vectors([uploaded.id])[0] == vectors[0]).all()
    fresh = settings.model_copy(update={"data_dir": tmp_path / "fresh"})
    with open_collection(fresh, tone_retriever) as c:  # the oracle: PaSST on the copy itself
        [(alone, _)] = add(c, file(second))
        want_vectors, want_logits = c.store.rows([alone.id])
        want = c.store.timelines([alone.id], logits=True)[alone.id]
    assert [n for n in calls if n] == [1]
    np.testing.assert_allclose(vectors[1], want_vectors[0], atol=1e-6)
    np.testing.assert_allclose(logits[1], want_logits[0], atol=1e-5)
    np.testing.assert_allclose(got[copy.id].windows.vectors, want.windows.vectors, atol=1e-3)
    assert (got[copy.id].peaks == want.peaks).all() and [t.label for t in alone.tags] == [
        t.label for t in copy.tags]


def test_copies_of_one_sound_in_one_batch_are_tagged_once(tmp_path, settings, tone_retriever, monkeypatch):
    """Decoded together, before either is stored: the first goes through PaSST, the others take its
    analysis once it is stored; other audio in the batch is tagged as ever."""
    paths = [tmp_path / f"{name}.ogg" for name in ("a", "b", "c")]
    vorbis_sine(paths[0], "DESCRIPTION=Take one")
    retagged_copy(paths[0], paths[1], "DESCRIPTION=Take two")
    retagged_copy(paths[0], paths[2], "DESCRIPTION=Take three")
    other = tmp_path / "other.ogg"
    vorbis_sine(other, "DESCRIPTION=Another", seconds=2, frequency=1320)
    calls = passt_runs(monkeypatch)
    with open_collection(settings, tone_retriever) as c:
        added = add(c, *(file(p) for p in [*paths, other]))
        assert all(created for _, created in added) and c.count() == 4
        assert [n for n in calls if n] == [2]  # a.ogg and other.ogg, in one pass
        ids = [r.id for r, _ in added]
        vectors = c.store.vectors(ids)
        assert (vectors[1] == vectors[0]).all() and (vectors[2] == vectors[0]).all()
        assert not np.allclose(vectors[3], vectors[0])
        assert [c.get(i).meta.description for i in ids[:3]] == ["Take one", "Take two", "Take three"]


def test_a_copy_runs_passt_when_the_stored_clips_windows_are_cut_otherwise_than_the_collection_cuts_now(
        tmp_path, settings, tone_retriever, monkeypatch):
    """The collection's moment windowing changed since the clip with this audio was stored: its windows are
    not what a clip stored now gets, so the copy is tagged, with the windows of now."""
    from app.compose import moment_windowing
    from retrieval.windows import window_spans

    first, second = tmp_path / "one.ogg", tmp_path / "two.ogg"
    vorbis_sine(first, "DESCRIPTION=One", seconds=3)
    retagged_copy(first, second, "DESCRIPTION=Two")
    with open_collection(settings, tone_retriever) as c:
        [(original, _)] = add(c, file(first))  # moments of the PaSST windows (one window: 3 s)
    finer = settings.model_copy(update={"moment_window_s": 1.0, "moment_hop_s": 0.5})
    calls = passt_runs(monkeypatch)
    with open_collection(finer, tone_retriever) as c:
        [(copy, created)] = add(c, file(second))
        assert created and [n for n in calls if n], "tagged: the stored windows are cut otherwise"
        cut = c.store.timelines([copy.id])[copy.id].windows
        starts, ends = window_spans(round(copy.duration * 32_000), moment_windowing(finer))
        assert len(cut.starts) == len(starts) > 1 and np.allclose(cut.starts, starts, atol=1e-3)
        assert len(c.store.timelines([original.id])[original.id].windows.starts) == 1
        third = tmp_path / "three.ogg"  # and a copy after it takes its analysis, with no PaSST
        retagged_copy(first, third, "DESCRIPTION=Three")
        before = len([n for n in calls if n])
        [(later, _)] = add(c, file(third))
        assert len([n for n in calls if n]) == before
        assert np.allclose(c.store.timelines([later.id])[later.id].windows.starts, starts, atol=1e-3)


def test_a_new_clips_fingerprint_is_taken_once(tmp_path, settings, tone_retriever, monkeypatch):
    """Looked for among the stored clips, then stored with the clip: the samples are hashed once."""
    import retrieval.audio

    path = tmp_path / "once.ogg"
    vorbis_sine(path, "DESCRIPTION=Once", seconds=2)
    hashed = []
    fingerprint = retrieval.audio.audio_sha256
    monkeypatch.setattr(retrieval.audio, "audio_sha256", lambda wave: hashed.append(len(wave)) or
                        fingerprint(wave))
    with open_collection(settings, tone_retriever) as c:
        [(clip, created)] = add(c, file(path))
        assert created and clip.audio_sha256 == fingerprint(retrieval.audio.decode_audio(path).wave)
    assert hashed == [64_000]
