"""POST /search and POST /search/audio against the library's own vectors."""

import pytest

from app.main import create_app
from app.schemas.clips import UploadForm
from app.schemas.search import AudioQuery
from app.settings import Settings
from tests.app.conftest import CLIPS, vector_of, wav_bytes
from tests.audio_fixtures import sine


def test_empty_index_answers_an_empty_list(client):
    r = client.post("/search", json={"query": "rain on a tin roof", "k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "rain on a tin roof" and body["results"] == [] and body["took_ms"] >= 0


def test_text_search_ranks_by_the_models_cosine(filled, retriever):
    client, records = filled
    query = "a pure tone at 440 hertz"
    r = client.post("/search", json={"query": query, "k": 10})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    # oracle: the text vector against each clip's vector, computed by the library directly
    q = retriever.encode_text([query])[0]  # (D,)
    expected = {name: float(q @ vector_of(retriever, data)) for name, data in CLIPS.items()}
    assert [h["name"] for h in results] == sorted(expected, key=expected.get, reverse=True)
    for hit in results:
        assert hit["score"] == pytest.approx(expected[hit["name"]], abs=1e-5)
        rec = records[hit["name"]]
        assert hit["id"] == rec["id"] and hit["audio_url"] == f"/audio/{rec['id']}/file"
        assert hit["duration"] == pytest.approx(rec["duration"]) and hit["tags"] == rec["tags"]


def test_k_limits_the_results_to_the_best(filled):
    client, _ = filled
    everything = client.post("/search", json={"query": "clicks", "k": 3}).json()["results"]
    best = client.post("/search", json={"query": "clicks", "k": 1}).json()["results"]
    assert [h["id"] for h in best] == [everything[0]["id"]]


def test_duration_filter(filled):
    client, records = filled
    r = client.post("/search", json={"query": "sound", "k": 10, "max_duration": 1.2})
    names = {h["name"] for h in r.json()["results"]}
    assert names == {n for n, rec in records.items() if rec["duration"] <= 1.2} == {"sine.wav", "noise.wav"}


@pytest.mark.parametrize("body", [
    {"query": "", "k": 5},
    {"query": "   ", "k": 5},
    {"query": "\u200b \u200e\u2060", "k": 5},  # invisible: zero-width space, direction mark, word joiner
    {"query": "x" * 501, "k": 5},
    {"query": "rain", "k": 0},
    {"query": "rain", "k": 101},
    {"query": "rain", "k": 5, "colour": "blue"},
    {"query": "rain", "min_duration": 5, "max_duration": 1},
    {"k": 5},
    # a JSON body's values are of their JSON types: none of these is read as 1, 5, true or 30
    {"query": "rain", "k": True},
    {"query": "rain", "k": "5"},
    {"query": "rain", "k": 5.5},
    {"query": "rain", "moments": 1},
    {"query": "rain", "moments": "true"},
    {"query": "rain", "max_duration": "30"},
    {"query": "rain", "mode": 1},
])
def test_invalid_search_requests_answer_422(client, body):
    r = client.post("/search", json=body)
    assert r.status_code == 422
    assert r.json()["detail"]


def test_validation_errors_do_not_echo_the_input(client):
    """A NaN cannot be written back as JSON, and a long query need not be: the 422 names the field only."""
    r = client.post("/search", content=b'{"query": "rain", "max_duration": NaN}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "max_duration"]]
    r = client.post("/search", json={"query": "rain " * 2000})
    assert r.status_code == 422 and "rain" not in r.text


def test_longest_allowed_query_is_accepted(client):
    r = client.post("/search", json={"query": "x" * 500, "k": 100})
    assert r.status_code == 200, r.text
    assert r.json()["query"] == "x" * 500 and r.json()["results"] == []


@pytest.mark.parametrize(("path", "form"), [("/audio", UploadForm), ("/search/audio", AudioQuery)])
def test_each_field_of_the_form_model_is_in_the_multipart_schema(path, form):
    """The docs' multipart fields are those of the model that validates the form (with its descriptions and
    defaults), and the binary `file`."""
    body = create_app(Settings()).openapi()["paths"][path]["post"]["requestBody"]
    schema = body["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["file"] and schema["properties"]["file"]["format"] == "binary"
    assert set(schema["properties"]) == {"file", *form.model_fields}
    for name, field in form.model_fields.items():
        prop = schema["properties"][name]
        assert prop["description"] == field.description and "anyOf" not in prop, name
        assert prop.get("default") == field.default, name


def test_query_by_example_finds_the_same_clip_first(filled, retriever):
    client, records = filled
    data = CLIPS["clicks.wav"]
    r = client.post("/search/audio", files={"file": ("mine.wav", data)}, data={"k": "2"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] == "mine.wav" and len(body["results"]) == 2
    top = body["results"][0]
    assert top["id"] == records["clicks.wav"]["id"] and top["score"] == pytest.approx(1.0, abs=1e-5)
    v = vector_of(retriever, data)
    second = next(n for n, rec in records.items() if rec["id"] == body["results"][1]["id"])
    expected = float(v @ vector_of(retriever, CLIPS[second]))
    assert body["results"][1]["score"] == pytest.approx(expected, abs=1e-5)


def test_query_by_example_is_not_added(filled):
    client, _ = filled
    client.post("/search/audio", files={"file": ("q.wav", CLIPS["sine.wav"][:-2] + b"\0\0")})
    assert client.get("/audio").json()["total"] == len(CLIPS)


def test_query_by_example_errors(client):
    assert client.post("/search/audio", files={"file": ("x.wav", b"not audio at all")}).status_code == 415
    assert client.post("/search/audio", data={"k": "3"}).status_code == 422
    wav = CLIPS["sine.wav"]
    assert client.post("/search/audio", files={"file": ("x.wav", wav)}, data={"k": "0"}).status_code == 422
    assert client.post("/search/audio", files={"file": ("x.wav", wav)}, data={"k": "many"}).status_code == 422
    for field in ("mode", "like"):  # what /search takes and this form does not: refused, not ignored
        r = client.post("/search/audio", files={"file": ("x.wav", wav)}, data={field: "keyword"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field], r.text


def test_query_by_example_over_its_own_duration_limit_is_413(make_client):
    """An example is held to RETRIEVAL_MAX_EXAMPLE_DURATION_S, not to an upload's limit: PaSST runs on it in
    the request (a silent 600 s FLAC of 114 KB cost minutes of CPU to anyone who sent it)."""
    client = make_client(max_example_duration_s=1.0, max_duration_s=600.0)
    r = client.post("/search/audio", files={"file": ("long.wav", wav_bytes(sine(seconds=2.0)))})
    assert r.status_code == 413 and "longer than the maximum of 1 s" in r.json()["detail"]
    assert "RETRIEVAL_MAX_EXAMPLE_DURATION_S" in r.json()["detail"]
    defaults = {k: f.default for k, f in Settings.model_fields.items()}
    assert defaults["max_example_duration_s"] == 60.0 < defaults["max_duration_s"]
