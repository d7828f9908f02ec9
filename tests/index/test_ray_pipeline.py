"""Ray end to end on this machine, no network: generated clips -> Ray Data shards -> bulk load into each
store backend -> search. Oracles: the in-process random PaSST (same seed) and Retriever.encode_audio; for a
file longer than the whole-read limit, tagged window by window in the actor, the same file extracted whole."""

import hashlib
import json
import shutil
import socket
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray")

from app.compose import build_retriever, ledger_path, load_settings, store_config  # noqa: E402
from app.settings import Settings  # noqa: E402
from index.collection import Collection  # noqa: E402
from index.ingest.bulk_load import load_shards  # noqa: E402
from index.ingest.ray_shards import (  # noqa: E402
    MANIFEST,
    SHARD_COLUMNS,
    TaggerConfig,
    decode_row,
    extract_shards,
    manifest_spec,
    read_file_list,
    shard_failures,
)
from index.stores import open_store  # noqa: E402
from retrieval.audio import audio_sha256, decode_audio  # noqa: E402
from retrieval.errors import CheckpointMismatch  # noqa: E402
from retrieval.extract import AudioLimits, decode, extract_many  # noqa: E402
from retrieval.model_spec import ModelSpec  # noqa: E402
from retrieval.waveform import peaks  # noqa: E402
from retrieval.windows import window_spans  # noqa: E402
from tests.audio_fixtures import clicks, noise, sine, write  # noqa: E402


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Four 1 s clips (one at 44.1 kHz), a byte-identical copy of the first, and a file that is not audio."""
    d = tmp_path_factory.mktemp("clips")
    good = [write(d / "sine.wav", sine(440.0)), write(d / "clicks.flac", clicks()),
            write(d / "noise.wav", noise()), write(d / "low.wav", sine(150.0, rate=44_100), 44_100)]
    copy = d / "sine-copy.wav"
    shutil.copyfile(good[0], copy)
    bad = d / "broken.wav"
    bad.write_bytes(b"RIFF not really")
    listing = d / "files.txt"
    listing.write_text("# generated\n" + "\n".join(str(p) for p in [*good, copy, bad]) + "\n\n")
    return good, copy, bad, listing


def run_ray(paths, out, **kwargs) -> dict:
    """extract_shards on a Ray started here for the call, with the random PaSST."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")  # Ray would report usage over the network
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 2**20)
        try:
            tagger = TaggerConfig(weights="random", spec=ModelSpec(passt_weights="random"))
            return extract_shards(paths, out, tagger=tagger, **kwargs)
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def shards(clips, tmp_path_factory):
    """The clips' shards, written into a folder where a run that was killed left its work folder."""
    *_, listing = clips
    out = tmp_path_factory.mktemp("shards")
    dead = out / f".{MANIFEST}.{socket.gethostname()}-{dead_pid()}.work"
    elsewhere = out / f".{MANIFEST}.another-machine-{dead_pid()}.work"  # a run there may be alive
    for work in (dead, elsewhere):
        work.mkdir()
        (work / "half-written.parquet").write_bytes(b"PAR1 cut short")
    return out, run_ray(read_file_list(listing), out, batch_size=2)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


LONG_LIMITS = AudioLimits(whole_up_to_s=5.0)  # files over 5 s are read window by window


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory):
    """A 12 s stereo recording at 44.1 kHz (5 PaSST windows), a 1 s clip, and a 12 s float WAV whose header
    reads well but which holds a NaN sample at 1 s (found only when its samples are read)."""
    d = tmp_path_factory.mktemp("long")
    rng = np.random.default_rng(7)
    long = write(d / "long.wav", (0.3 * rng.standard_normal((12 * 44_100, 2))).astype(np.float32), 44_100)
    short = write(d / "short.wav", sine(330.0))
    nan = noise(seconds=12.0, seed=8)
    nan[32_000] = np.nan
    bad = write(d / "nan-inside.wav", nan, subtype="FLOAT")
    return long, short, bad


@pytest.fixture(scope="module")
def long_shards(long_clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("long-shards")
    return out, run_ray(list(long_clips), out, batch_size=4, limits=LONG_LIMITS)  # one batch: all three


@pytest.fixture(scope="module")
def oracle_logits(clips, random_tagger) -> dict:
    """path -> (527,) logits of the in-process random PaSST, for the four good clips."""
    good, *_ = clips
    return {path: random_tagger.logits(decode_audio(path).wave) for path in good}


@pytest.fixture(scope="module")
def retriever(minilm_path, random_tagger, text_encoder):
    """The zero-shot model (no checkpoint) on the random PaSST, built once: its 527 tag names take a while."""
    plain = Settings(text_model=str(minilm_path), passt_weights="random", device="cpu")
    return build_retriever(plain, tagger=random_tagger, text=text_encoder)


def shard_rows(out) -> dict:
    rows = {}
    for name in json.loads((out / MANIFEST).read_text())["shards"]:
        for row in pq.read_table(out / name).to_pylist():
            rows[row["path"]] = row
    return rows


def test_shards_hold_the_logits_of_the_in_process_tagger(clips, shards, random_tagger, oracle_logits):
    good, copy, bad, _ = clips
    out, manifest = shards
    assert manifest_spec(manifest) == random_tagger.spec
    assert manifest["model_spec"] == random_tagger.spec.to_dict()
    rows = shard_rows(out)
    assert set(rows) == {str(p.resolve()) for p in [*good, copy, bad]}
    for path in [*good, copy]:
        row = rows[str(path.resolve())]
        audio = decode_audio(path)
        assert row["error"] == "" and row["name"] == path.name
        assert (row["duration"], row["sample_rate"]) == pytest.approx((audio.duration_s, audio.source_rate))
        np.testing.assert_allclose(row["logits"], oracle_logits[good[0] if path == copy else path], atol=1e-4)
        starts, ends = window_spans(len(audio.wave), random_tagger.windowing)  # the clip's PaSST windows
        assert (row["window_starts"], row["window_ends"]) == (starts.tolist(), ends.tolist())
        window_logits = np.asarray(row["window_logits"]).reshape(len(starts), 527)
        np.testing.assert_allclose(window_logits.mean(0), row["logits"], atol=1e-5)  # they are its windows
        assert row["peaks"] == peaks(audio.wave).tolist()
    assert rows[str(copy.resolve())]["sha256"] == rows[str(good[0].resolve())]["sha256"]
    assert "AudioDecodeError" in rows[str(bad.resolve())]["error"]
    assert sorted(manifest["written"]) == sorted(manifest["shards"])  # this run's shards
    [(path, why)] = shard_failures(out, manifest["written"])  # what `extract-ray` lists, exiting 1
    assert path == str(bad.resolve()) and "AudioDecodeError" in why


@pytest.mark.parametrize("backend", ["faiss", "qdrant"])
def test_bulk_load_then_search_finds_each_clip_first(clips, shards, settings, retriever, oracle_logits,
                                                     backend):
    good, copy, bad, _ = clips
    out, manifest = shards
    settings = settings.model_copy(update={"store_backend": backend})
    ledger = ledger_path(settings)
    with open_store(store_config(settings), retriever.spec) as store:
        collection = Collection(store, retriever, data_dir=settings.data_dir)
        report = load_shards(collection, out, ledger=ledger, progress=False)
        assert (report.shards_loaded, report.added, report.skipped) == (len(manifest["shards"]), 4, 1)
        assert report.failed == [(str(bad.resolve()), report.failed[0][1])]
        assert store.count() == 4
        for path in good:
            logits = oracle_logits[path]  # what Retriever.encode_audio projects: (527,) -> (D,)
            top = store.search(retriever.project(logits[None]), 1)[0][0]
            assert top.record.location == str(path.resolve())
            assert top.score == pytest.approx(1.0, abs=1e-4)
            assert top.record.tags[0].label == retriever.top_tags(logits, 1)[0][0]
            np.testing.assert_allclose(store.logits([top.record.id])[0], logits, atol=1e-4)
            windows = store.windows([top.record.id])[top.record.id]  # one window of a 1 s clip: all of it
            assert (windows.starts.tolist(), windows.ends.tolist()) == ([0.0], [top.record.duration])
            np.testing.assert_allclose(windows.vectors[0], retriever.project(logits[None])[0], atol=2e-3)
            np.testing.assert_array_equal(store.peaks(top.record.id), peaks(decode_audio(path).wave))
            assert top.record.audio_sha256 == audio_sha256(decode_audio(path).wave)  # as in process
        assert store.without_windows().size == 0

        again = load_shards(collection, out, ledger=ledger, progress=False)  # the ledger says done
        assert (again.shards_loaded, again.shards_skipped, again.added) == (0, len(manifest["shards"]), 0)
        assert again.failed == report.failed  # listed again: a resumed load exits 1 as the first did
        ledger.unlink()  # lost ledger: every clip is found stored by content
        redo = load_shards(collection, out, ledger=ledger, progress=False)
        assert (redo.added, redo.skipped) == (0, 5) and store.count() == 4
        store.remove(store.ids().tolist())  # the store made anew, its ledger kept (a deleted qdrant/ folder)
        anew = load_shards(collection, out, ledger=ledger, progress=False)
        assert (anew.shards_skipped, anew.added) == (0, 4) and store.count() == 4  # not 0 added


def test_a_run_lists_only_its_own_whole_shards_and_clears_a_stopped_runs(shards):
    """Shards are written in a work folder of the run and moved in at its end: a killed run's (its shards,
    one cut short) are removed by the next run of the same machine into the folder, and nothing of a run is
    left but them."""
    out, manifest = shards
    assert manifest["written"] and manifest["shards"] == manifest["written"]
    assert sorted(p.name for p in out.glob("*.parquet")) == manifest["written"]
    left = [p.name for p in out.glob(".*.work")]  # another machine's run is left alone: it may be alive
    assert len(left) == 1 and left[0].startswith(f".{MANIFEST}.another-machine-")
    assert len(list(out.rglob("half-written.parquet"))) == 1
    for name in manifest["written"]:
        assert pq.ParquetFile(out / name).metadata.num_rows > 0


def test_a_run_into_a_folder_of_another_taggers_shards_is_refused_before_it_starts(shards, tmp_path):
    out, manifest = shards
    other = tmp_path / "other"
    other.mkdir()
    (other / MANIFEST).write_text(json.dumps({**manifest, "model_spec": {**manifest["model_spec"],
                                                                         "hop_s": 5.0}}))
    tagger = TaggerConfig(weights="random", spec=ModelSpec(passt_weights="random"))
    with pytest.raises(CheckpointMismatch, match="hop_s"):
        extract_shards([], other, tagger=tagger)  # no Ray started: refused before any
    assert sorted(p.name for p in other.iterdir()) == [".manifest.lock", MANIFEST]


def test_shards_of_another_tagger_are_refused(shards, settings, retriever, tmp_path):
    out, manifest = shards
    other = tmp_path / "other"
    shutil.copytree(out, other)
    spec = {**manifest["model_spec"], "hop_s": 5.0}
    (other / MANIFEST).write_text(json.dumps({**manifest, "model_spec": spec}))
    with open_store(store_config(settings), retriever.spec) as store:
        with pytest.raises(CheckpointMismatch, match="tagger") as refused:
            collection = Collection(store, retriever, data_dir=settings.data_dir)
            load_shards(collection, other, ledger=ledger_path(settings), progress=False)
        assert "hop_s" in str(refused.value)  # the message names what differs
        assert store.count() == 0


def test_load_shards_command_fills_a_qdrant_store(clips, shards, minilm_path, retriever, tmp_path,
                                                  monkeypatch):
    from typer.testing import CliRunner

    from cli.main import app

    _, _, bad, _ = clips
    out, _ = shards
    for key, value in {"DATA_DIR": tmp_path / "data", "TEXT_MODEL": minilm_path, "PASST_WEIGHTS": "random",
                       "DEVICE": "cpu", "STORE_BACKEND": "qdrant"}.items():
        monkeypatch.setenv(f"RETRIEVAL_{key}", str(value))
    loaded = CliRunner().invoke(app, ["index", "load-shards", str(out), "--no-progress"])
    settings = load_settings()
    assert loaded.exit_code == 1, loaded.output  # the broken file is reported
    assert "added 4, skipped 1 already stored, failed 1" in loaded.output
    assert f"failed: {bad.resolve()}: AudioDecodeError" in loaded.output
    with open_store(store_config(settings), retriever.spec, check=False) as store:  # MiniLM named by its path
        info = store.stats()
        assert (info["backend"], info["clips"]) == ("qdrant", 4)
        assert info["audio_hours"] == pytest.approx(4 / 3600, abs=1e-3)


def test_the_decode_stage_passes_no_samples_of_a_long_file(long_clips):
    long, short, bad = long_clips
    row = decode_row({"path": str(long)}, limits=LONG_LIMITS)
    assert row["long"] and row["error"] == ""
    assert row["wave"].size == 0 and row["peaks"].size == 0  # the actor reads it, window by window
    assert row["sha256"] == hashlib.sha256(long.read_bytes()).hexdigest()
    assert (row["duration"], row["sample_rate"], row["channels"]) == (pytest.approx(12.0), 44_100, 2)
    held = decode_row({"path": str(short)}, limits=LONG_LIMITS)
    assert not held["long"] and held["wave"].size == 32_000
    assert held["peaks"].tolist() == peaks(decode_audio(short).wave).tolist()
    late = decode_row({"path": str(bad)}, limits=LONG_LIMITS)  # its bad samples are not read here
    assert late["long"] and late["error"] == "" and late["wave"].size == 0
    whole = decode_row({"path": str(bad)}, limits=AudioLimits(whole_up_to_s=None))  # read here, refused here
    assert "AudioDecodeError" in whole["error"]


def test_a_long_file_is_tagged_window_by_window_in_the_actor_as_the_whole_file(long_clips, long_shards,
                                                                               random_tagger):
    long, short, bad = long_clips
    out, manifest = long_shards
    assert all(pq.read_schema(out / name).names == list(SHARD_COLUMNS) for name in manifest["shards"])
    rows = shard_rows(out)
    for path in (long, short):
        row = rows[str(path.resolve())]
        oracle = extract_many([decode(path, limits=AudioLimits(whole_up_to_s=None))], random_tagger)[0]
        assert row["error"] == "" and row["duration"] == pytest.approx(oracle.audio.duration_s)
        assert (row["window_starts"], row["window_ends"]) == (oracle.windows.starts.tolist(),
                                                              oracle.windows.ends.tolist())
        window_logits = np.asarray(row["window_logits"]).reshape(-1, 527)
        np.testing.assert_allclose(window_logits, oracle.windows.logits, atol=1e-4)
        np.testing.assert_allclose(row["logits"], oracle.logits, atol=1e-4)
        assert row["peaks"] == peaks(oracle.audio.wave).tolist()
    assert len(rows[str(long.resolve())]["window_starts"]) == 5
    failed = rows[str(bad.resolve())]  # its NaN found as the actor read it: its row's error, not the batch's
    assert "AudioDecodeError" in failed["error"] and "NaN" in failed["error"]
    assert failed["window_starts"] == [] and failed["peaks"] == []


def test_bulk_load_stores_a_long_files_windows_and_peaks(long_clips, long_shards, settings, retriever):
    long, _, bad = long_clips
    out, _ = long_shards
    rows = shard_rows(out)
    with open_store(store_config(settings), retriever.spec) as store:
        collection = Collection(store, retriever, data_dir=settings.data_dir)
        report = load_shards(collection, out, ledger=ledger_path(settings), progress=False)
        assert (report.added, [path for path, _ in report.failed]) == (2, [str(bad.resolve())])
        clip = store.get_by_sha256(rows[str(long.resolve())]["sha256"])
        assert clip is not None and len(store.windows([clip.id])[clip.id].starts) == 5
        assert store.peaks(clip.id).tolist() == rows[str(long.resolve())]["peaks"]
