"""Segments and moments through the service, with known content: the tone stand-in for PaSST (440 Hz ->
"Dog", 880 Hz -> "Rain", 1760 Hz -> "Music") and the real MiniLM; oracles from the stand-in and the head."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.compose import build_retriever
from app.main import create_app
from app.settings import Settings
from index.store.contract import MOMENT_MARGIN
from index.store.records import MomentQuery, NewClip
from retrieval.moments import best_window, iou, merge_windows
from retrieval.waveform import peaks
from tests.app.conftest import upload, wav_bytes
from tests.tone_tagger import ToneTagger, sections

DOG = (20.0, 40.0)
LONG = sections((880.0, 20.0), (440.0, 20.0), (1760.0, 20.0))  # rain, dog, music: 60 s
RAIN = sections((880.0, 10.0))


@pytest.fixture(scope="module")
def tone_retriever(minilm_path, text_encoder):
    cfg = Settings(text_model=str(minilm_path), passt_weights="random", device="cpu")
    return build_retriever(cfg, tagger=ToneTagger(), text=text_encoder)


@pytest.fixture
def client(app_settings, tone_retriever):
    with TestClient(create_app(app_settings, retriever=tone_retriever)) as c:
        ids = {}
        for name, wave in (("long.wav", LONG), ("rain.wav", RAIN)):
            r = upload(c, name, wav_bytes(wave))
            assert r.status_code == 201, r.text
            ids[name] = r.json()["id"]
        c.ids = ids  # type: ignore[attr-defined]
        yield c


def oracle(retriever, wave, query):
    """(starts, ends, scores) of the clip's windows: the stand-in -> the head -> the query vector."""
    w = ToneTagger().window_logits(wave)
    return w.starts, w.ends, retriever.project(w.logits) @ retriever.encode_text([query])[0]


def test_every_hit_says_where(client, tone_retriever):
    results = client.post("/search", json={"query": "a dog barking", "k": 2}).json()["results"]
    assert [h["name"] for h in results] == ["long.wav", "rain.wav"]
    seg = results[0]["segment"]
    want = best_window(*oracle(tone_retriever, LONG, "a dog barking"))
    assert (seg["start"], seg["end"]) == (want.start, want.end)
    assert DOG[0] <= seg["start"] < seg["end"] <= DOG[1]
    assert seg["score"] == pytest.approx(want.score, abs=1e-3)
    assert results[1]["segment"]["start"] == 0.0 and results[1]["segment"]["end"] == pytest.approx(10.0)


def test_moments_instead_of_clips(client, tone_retriever):
    body = {"query": "a dog barking", "k": 3, "moments": True, "per_clip": 2}
    results = client.post("/search", json=body).json()["results"]
    starts, ends, scores = oracle(tone_retriever, LONG, "a dog barking")
    want = merge_windows(starts, ends, scores, threshold=scores.max() - MOMENT_MARGIN, per_clip=2)
    long = [(h["segment"]["start"], h["segment"]["end"]) for h in results if h["name"] == "long.wav"]
    assert long == [(m.start, m.end) for m in want]
    assert results[0]["name"] == "long.wav" and iou(long[0], DOG) >= 0.7
    assert all(h["score"] == h["segment"]["score"] for h in results)
    assert [h["score"] for h in results] == sorted((h["score"] for h in results), reverse=True)
    # filters apply to moments: only the 10 s clip is at most 15 s long
    short = client.post("/search", json={**body, "max_duration": 15}).json()["results"]
    assert [h["name"] for h in short] == ["rain.wav"]
    none = client.post("/search", json={**body, "threshold": 1.0}).json()["results"]
    assert none == []


def test_query_by_example_returns_moments_too(client):
    dog = wav_bytes(sections((440.0, 5.0)))
    r = client.post("/search/audio", files={"file": ("dog.wav", dog)}, data={"k": "2", "moments": "true"})
    assert r.status_code == 200, r.text
    top = r.json()["results"][0]
    assert top["name"] == "long.wav" and iou((top["segment"]["start"], top["segment"]["end"]), DOG) >= 0.7
    clips = client.post("/search/audio", files={"file": ("dog.wav", dog)}, data={"k": "2"}).json()["results"]
    assert [h["name"] for h in clips] == ["long.wav", "rain.wav"] and clips[0]["segment"] is not None


@pytest.mark.parametrize("extra", [{"per_clip": 0}, {"per_clip": 11}, {"threshold": 1.5},
                                   {"moments": "maybe"}])
def test_bad_moment_requests_answer_422(client, extra):
    assert client.post("/search", json={"query": "dog", "moments": True, **extra}).status_code == 422
    form = {"k": "2", "moments": "true", **{k: str(v) for k, v in extra.items()}}
    assert client.post("/search/audio", files={"file": ("x.wav", wav_bytes(RAIN[:32000]))},
                       data=form).status_code == 422


def schema_defaults(client, path: str, media: str) -> dict:
    """Every property of a route's body that declares a default in the OpenAPI schema, at that default."""
    spec = client.get("/openapi.json").json()
    schema = spec["paths"][path]["post"]["requestBody"]["content"][media]["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    props = schema["properties"]
    return {name: p["default"] for name, p in props.items() if "default" in p and p["default"] is not None}


def test_a_body_of_the_schemas_defaults_is_taken(client):
    """A client that fills in the defaults the schema declares (Swagger UI's form does) is not refused."""
    body = schema_defaults(client, "/search", "application/json")
    assert {"k", "mode", "moments"} <= set(body)
    assert client.post("/search", json={**body, "query": "dog"}).status_code == 200
    form = schema_defaults(client, "/search/audio", "multipart/form-data")
    assert {"k", "moments"} <= set(form)
    data = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in form.items()}
    r = client.post("/search/audio", files={"file": ("x.wav", wav_bytes(RAIN[:32000]))}, data=data)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("extra", "words"), [({"threshold": 0.3}, "threshold shapes moments"),
                                               ({"per_clip": 2}, "per_clip shapes moments"),
                                               ({"per_clip": 2, "threshold": 0.3}, "per_clip and threshold")])
def test_moment_settings_without_moments_answer_422(client, extra, words):
    """Said to shape moments of a search that asks for clips: not silently ignored."""
    r = client.post("/search", json={"query": "dog", **extra})
    assert r.status_code == 422 and words in r.json()["detail"][0]["msg"], r.text
    form = {"k": "2", **{k: str(v) for k, v in extra.items()}}
    assert client.post("/search/audio", files={"file": ("x.wav", wav_bytes(RAIN[:32000]))},
                       data=form).status_code == 422
    assert client.post("/search", json={"query": "dog", "moments": False}).status_code == 200


def test_peaks_of_a_clip(client):
    body = client.get(f"/audio/{client.ids['long.wav']}/peaks").json()
    assert body["id"] == client.ids["long.wav"] and body["duration"] == pytest.approx(60.0)
    decoded = np.asarray(LONG).astype(np.float32)
    want = peaks(np.round(decoded * 32767) / 32768)  # the WAV upload holds 16-bit samples
    assert np.abs(np.array(body["peaks"]) - want).max() <= 1
    assert client.get("/audio/999/peaks").status_code == 404


def test_a_clip_indexed_before_windows_has_no_segment(client):
    store = client.app.state.collection.store
    old = store.add(NewClip(name="old.wav", location="/gone/old.wav", sha256="e" * 64, duration=3.0,
                            sample_rate=32000, tags=()), store.vectors([client.ids["long.wav"]])[0],
                    np.zeros(527, np.float32))
    results = client.post("/search", json={"query": "a dog barking", "k": 3}).json()["results"]
    assert {h["name"]: h["segment"] is None for h in results} == {"long.wav": False, "old.wav": True,
                                                                  "rain.wav": False}
    assert client.get(f"/audio/{old.id}/peaks").json()["peaks"] is None


@pytest.mark.parametrize("moments", [False, True])
def test_each_segment_carries_its_excerpt_as_the_service_serves_it(client, moments):
    import io

    import soundfile as sf

    body = {"query": "a dog barking", "k": 2, "moments": moments}
    results = client.post("/search", json=body).json()["results"]
    assert results and all(h["segment"] is not None for h in results)
    for h in results:
        seg = h["segment"]
        stem = h["name"].rsplit(".", 1)[0]
        assert seg["excerpt_name"] == f"{stem}_{seg['start']:g}-{seg['end']:g}.wav"
        got = client.get(seg["excerpt_url"])
        assert got.status_code == 200
        assert f'filename="{seg["excerpt_name"]}"' in got.headers["content-disposition"]
        wave, rate = sf.read(io.BytesIO(got.content))
        assert len(wave) == round(seg["end"] * rate) - round(seg["start"] * rate)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "audacity", "reaper"])
def test_an_answer_exports_as_the_command_line_writes_its_hits(client, fmt):
    from index.exports import MEDIA_TYPES, export, file_name

    query = {"query": "a dog barking", "k": 3, "moments": True, "per_clip": 2}
    answer = client.post("/search", json=query).json()
    collection = client.app.state.collection  # the command line's path: hits, not JSON
    hits = collection.search_text("a dog barking", 3, moments=MomentQuery(per_clip=2))
    got = client.post(f"/exports/{fmt}", json={"results": answer["results"], "moments": True})
    assert got.status_code == 200, got.text
    assert got.text == export(fmt, hits) and got.text
    assert got.headers["content-type"] == MEDIA_TYPES[fmt]
    assert got.headers["content-disposition"] == f'attachment; filename="{file_name(fmt, moments=True)}"'


def test_an_export_refuses_what_is_not_an_answer(client):
    hit = {"id": 1, "name": "a.wav", "score": 0.5, "duration": 3.0, "segment": None}
    assert client.post("/exports/csv", json={"results": [hit]}).status_code == 200
    assert client.post("/exports/xlsx", json={"results": [hit]}).status_code == 422
    assert client.post("/exports/reaper", json={"results": [hit | {"segment": {"start": 1.0, "end": 3.0005}}]}
                       ).status_code == 200  # the end of a clip measured at 32 kHz
    for bad in ({"score": "high"}, {"duration": -1.0}, {"segment": {"start": -2.0, "end": 1.0}},
                {"name": "a\x00b"}, {"id": -1}, {"segment": {"start": 2.0, "end": 1.0}},
                {"segment": {"start": 1.0, "end": 1.0}}, {"segment": {"start": 1.0, "end": 3.5}},
                {"id": "1"}, {"id": True}, {"score": "0.5"}, {"segment": {"start": "1", "end": 2.0}}):
        r = client.post("/exports/reaper", json={"results": [hit | bad]})
        assert r.status_code == 422, bad
    assert client.post("/exports/csv", json={"results": [hit] * 101}).status_code == 422
    assert client.post("/exports/csv", json={"results": [hit], "moments": 1}).status_code == 422
    unknown = client.post("/exports/csv", json={"results": [hit], "moment": True})  # a misspelt key
    assert unknown.status_code == 422 and "moment" in unknown.text
    assert client.post("/exports/csv", content=b"not json",
                       headers={"Content-Type": "application/json"}).status_code in (400, 422)
