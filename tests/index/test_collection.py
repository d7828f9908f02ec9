"""The collection with the real pipeline (random-weight PaSST, MiniLM): uploads, dedup, search, reproject."""

import io
import os
import time

import numpy as np
import pytest
import soundfile as sf

from app.compose import build_retriever, open_collection
from retrieval.checkpoint import Checkpoint, save_checkpoint
from retrieval.errors import AudioDecodeError, CheckpointMismatch
from retrieval.head import RetrievalHead
from retrieval.pipeline import Retriever, text_spec
from tests.audio_fixtures import clicks, noise, sine, write
from tests.index.ingesting import add, file, upload


def wav_bytes(data: np.ndarray, rate: int = 32_000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, data, rate, format="WAV")
    return buf.getvalue()


def add_uploads(collection, waves) -> list:
    """The waves uploaded together as WAV files 0.wav, 1.wav...: their records."""
    return [r for r, _ in add(collection, *(upload(wav_bytes(w), f"{i}.wav") for i, w in enumerate(waves)))]


class TaggerThatMustNotRun:
    """Describes itself like the real tagger; running it fails the test."""

    def __init__(self, real):
        self.spec, self.windowing = real.spec, real.windowing

    def window_logits(self, wave):
        raise AssertionError("PaSST was run")

    def window_logits_many(self, waves, *, on_batch=None, windowing=None):
        raise AssertionError("PaSST was run")


@pytest.fixture
def collection(settings, retriever):
    with open_collection(settings, retriever) as c:
        yield c


@pytest.fixture
def trained_checkpoint(tmp_path, tag_embeddings, random_tagger, text_encoder):
    """A head with lam = 0.8 and its (untrained, seeded) projection: a model other than zero-shot."""
    import torch

    torch.manual_seed(3)
    spec = text_spec(random_tagger.spec, text_encoder)
    path = tmp_path / "head.safetensors"
    save_checkpoint(path, Checkpoint(RetrievalHead(tag_embeddings, lam=0.8), spec))
    return path


def test_upload_is_kept_deduplicated_and_removed_with_its_copy(collection):
    data = wav_bytes(sine(330, seconds=0.5))
    [(record, created)] = add(collection, upload(data, "tone.wav"))
    assert created and record.name == "tone.wav" and record.stored_copy
    path = collection.audio_path(record)
    assert path.read_bytes() == data and path.parent == collection.audio_dir
    assert path.name == f"{record.sha256}.wav"
    [(again, created)] = add(collection, upload(data, "copy.wav"))
    assert not created and again == record and collection.count() == 1
    assert len(record.tags) == 10
    assert [t.probability for t in record.tags] == sorted((t.probability for t in record.tags), reverse=True)
    assert collection.remove([record.id, 999]) == 1
    assert not path.exists() and collection.get(record.id) is None


def test_one_id_or_one_path_where_a_list_is_meant_is_refused_and_changes_nothing(collection, tmp_path):
    """`remove("10")` took the string's characters as ids: it removed clip 1 and answered 1; `index_paths`
    given one folder as a string walked `/` (its first character) and indexed the file system."""
    from index.ingest.builder import index_paths

    first = [add(collection, upload(wav_bytes(sine(f, seconds=0.3)), f"{f}.wav"))[0][0] for f in (220, 330)]
    for one in (str(first[1].id), first[1].id, b"1"):
        with pytest.raises(TypeError, match="clip ids are a list"):
            collection.remove(one)
    with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
        collection.remove([first[0].id, "not an id"])  # nothing removed: the first id neither
    assert collection.count() == 2
    for one in (str(tmp_path), tmp_path):
        with pytest.raises(TypeError, match="the paths to index are a list, not one"):
            index_paths(collection, one, progress=False)
    assert collection.count() == 2


def test_a_part_of_a_search_or_an_edit_of_the_wrong_type_is_a_type_error_saying_what_it_takes(collection):
    """A dict for a filter, True for moments, a text where a CompositeQuery goes, an edit returning a dict:
    each failed deep inside (AttributeError: 'dict' object has no attribute 'empty')."""
    from index.store.records import MomentQuery, SearchFilter
    from retrieval.composite import CompositeQuery

    [(record, _)] = add(collection, upload(wav_bytes(sine(220, seconds=0.3)), "a.wav"))
    keyword = CompositeQuery(text="rain")
    wrong = {"a SearchFilter or None, not dict": lambda: collection.search_text("rain", 3, {"tags_any": []}),
             "a MomentQuery or None, not bool": lambda: collection.search_text("rain", 3, moments=True),
             "a CompositeQuery, not str": lambda: collection.search("rain", 3),
             "a SearchFilter or None, not list": lambda: collection.search(keyword, 3, ["x"], mode="keyword"),
             "returns a Metadata": lambda: collection.edit_metadata(record.id, lambda m: {"description": ""})}
    for said, call in wrong.items():
        with pytest.raises(TypeError, match=said):
            call()
    assert collection.get(record.id) == record  # the edit changed nothing
    assert collection.search_text("rain", 3, SearchFilter(), moments=MomentQuery(per_clip=1)) is not None


def test_a_file_is_recorded_where_it_lies(collection, tmp_path):
    path = write(tmp_path / "birds.flac", noise(seconds=0.75, rate=44_100), 44_100, format="FLAC")
    [(record, created)] = add(collection, file(path))
    assert created and not record.stored_copy
    assert record.location == str(path.resolve()) and collection.audio_path(record) == path.resolve()
    assert record.sample_rate == 44_100 and record.duration == pytest.approx(0.75, abs=1e-3)
    assert add(collection, file(path)) == [(record, False)]


def test_bad_audio_changes_nothing(collection):
    with pytest.raises(AudioDecodeError):
        add(collection, upload(b"not audio at all", "x.wav"))
    assert collection.count() == 0 and list(collection.audio_dir.iterdir()) == []


def test_search_equals_brute_force_over_the_model_s_vectors(collection, retriever):
    waves = [sine(220, seconds=0.5), sine(1760, seconds=0.5), clicks(seconds=0.5), noise(seconds=0.5)]
    records = add_uploads(collection, waves)
    xb = collection.store.db.blobs([r.id for r in records], "vector", retriever.head.dim)  # (4, D)
    np.testing.assert_allclose(xb[2], retriever.encode_audio(waves[2])[0], atol=1e-5)
    for query in ("a high whistle", "rain on a roof"):
        scores = xb @ retriever.encode_text([query])[0]  # (4,)
        hits = collection.search_text(query, k=3)
        assert [h.record.id for h in hits] == [records[i].id for i in np.argsort(-scores)[:3]]
        np.testing.assert_allclose([h.score for h in hits], np.sort(scores)[::-1][:3], atol=1e-5)
    top = collection.search_audio(wav_bytes(waves[2]), k=1)[0]
    assert top.record.id == records[2].id and top.score == pytest.approx(1.0, abs=1e-5)


def test_orphan_copies_are_removed_on_open(settings, retriever):
    with open_collection(settings, retriever) as c:
        [(kept, _)] = add(c, upload(wav_bytes(sine(seconds=0.3)), "kept.wav"))
    audio = settings.data_dir / "audio"
    orphan, fresh = audio / ("a" * 64 + ".wav"), audio / ("b" * 64 + ".wav")
    orphan.write_bytes(b"left by a crash")
    fresh.write_bytes(b"an upload another process is committing")
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    with open_collection(settings, retriever) as c:
        assert not orphan.exists() and fresh.exists() and c.audio_path(kept).exists()


def test_reproject_changes_vectors_without_running_passt(settings, retriever, trained_checkpoint,
                                                         random_tagger, text_encoder):
    waves = [sine(440, seconds=0.4), clicks(seconds=0.4), noise(seconds=0.4, seed=2)]
    with open_collection(settings, retriever) as c:
        ids = [r.id for r in add_uploads(c, waves)]
        stored_logits = c.store.logits(ids)  # (3, 527)
    blind = Retriever(text_encoder, retriever.ckpt, passt=random_tagger.spec,
                      tagger=TaggerThatMustNotRun(random_tagger))
    with open_collection(settings, blind) as c:
        assert c.reproject(trained_checkpoint) == 3
        new = c.retriever
        assert new.spec.lam == new.ckpt.spec.lam == 0.8 and c.store.spec.head == new.ckpt.spec.head
        assert c.store.spec == new.spec
        expected = new.project(stored_logits)  # (3, D)
        assert not np.allclose(expected, retriever.project(stored_logits), atol=1e-3)
        hits = c.search_vector(expected[1], k=3)
        assert hits[0].record.id == ids[1] and hits[0].score == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose([h.score for h in hits], np.sort(expected @ expected[1])[::-1], atol=1e-5)
    with pytest.raises(CheckpointMismatch, match="reproject"):
        open_collection(settings, retriever)  # still the zero-shot model: refused
    settings.checkpoint = trained_checkpoint
    with open_collection(settings, build_retriever(settings, tagger=random_tagger, text=text_encoder)) as c:
        assert c.count() == 3
    with open_collection(settings, blind, check=False) as c:  # back to the configured zero-shot model
        assert c.reproject() == 3 and c.store.spec == retriever.spec
    with open_collection(settings, retriever) as c:
        vectors = c.store.db.blobs(ids, "vector", retriever.head.dim)  # (3, D)
        np.testing.assert_allclose(vectors, retriever.project(stored_logits), atol=1e-3)  # float16 vectors
