"""Values the store cannot hold are refused at the HTTP edge: a documented 4xx (422 with FastAPI's error
list for validation), or a correct empty / 404 answer; never a 500.

Every parameter that reaches SQLite, FAISS or Qdrant is tried at and past its edges: clip ids beyond the
signed 64-bit range SQLite binds (and below the unsigned range Qdrant's point ids take), `offset`/`limit`
of the listing, `k`, the search filters (non-finite or huge floats, reversed ranges, long strings, NUL,
lone surrogates), the multipart `name`. Each case runs in process (a TestClient that answers a server
error with its status instead of raising it) over both backends, on one collection with one clip.
"""

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.compose import build_retriever
from app.main import create_app
from app.settings import Settings
from tests.audio_fixtures import sine
from tests.reliability.bad_inputs import audio_bytes

API_KEY = "edge-key-3d9f"
WRITE = {"X-API-Key": API_KEY}
INT64_MAX = 2**63 - 1
CLIP = audio_bytes(sine(466.0, seconds=0.5))
WAIT = {"wait": 60}  # an upload answers its record (201) once indexed, not only its job (202)


@pytest.fixture(scope="module")
def retriever(minilm_path, random_tagger, text_encoder):
    settings = Settings(text_model=str(minilm_path), passt_weights="random", device="cpu")
    return build_retriever(settings, tagger=random_tagger, text=text_encoder)


@pytest.fixture(scope="module", params=["faiss", "qdrant"])
def edge(request, tmp_path_factory, minilm_path, retriever) -> Iterator[tuple[TestClient, int]]:
    """(client, id of its one clip) over the FAISS + SQLite store, then over an in-memory Qdrant."""
    workdir = tmp_path_factory.mktemp(f"edge-{request.param}")
    backend = {"store_backend": "qdrant", "qdrant_url": ":memory:"} if request.param == "qdrant" else {}
    settings = Settings(data_dir=workdir / "data", models_dir=workdir / "models", text_model=str(minilm_path),
                        passt_weights="random", device="cpu", api_key=API_KEY, **backend)
    with TestClient(create_app(settings, retriever=retriever), raise_server_exceptions=False) as client:
        r = client.post("/audio", files={"file": ("edge.wav", CLIP, "audio/wav")}, params=WAIT,
                        headers=WRITE)
        assert r.status_code == 201, r.text
        yield client, r.json()["id"]


def assert_validation_error(r, *loc) -> None:
    """422 in the app's shape: a list of {loc, msg, type}, one of them at `loc`."""
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    assert all(set(d) == {"loc", "msg", "type"} for d in detail), detail
    assert list(loc) in [d["loc"][:len(loc)] for d in detail], detail


def clips(client: TestClient) -> list[int]:
    return [c["id"] for c in client.get("/audio", params={"limit": 500}).json()["items"]]


# -- clip ids ------------------------------------------------------------------------------------------------
ID_ROUTES = [("GET", "/audio/{}"), ("GET", "/audio/{}/file"), ("DELETE", "/audio/{}")]
ID_ROUTE_IDS = ["get", "file", "delete"]
BAD_IDS = {"2^63": str(2**63), "2^64": str(2**64), "20-digits": "99999999999999999999",
           "5000-digits": "9" * 5000, "below-int64": str(-2**63 - 1), "int64-min": str(-2**63),
           "minus-1": "-1", "zero": "0", "float": "1.5", "exponent": "1e3", "hex": "0x10", "blank": "%20",
           "nul": "1%00"}
MISSING_IDS = {"int64-max": str(INT64_MAX), "large": "123456789012"}


@pytest.mark.parametrize("method, template", ID_ROUTES, ids=ID_ROUTE_IDS)
@pytest.mark.parametrize("clip_id", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_a_clip_id_the_store_cannot_hold_is_refused_with_422(edge, method, template, clip_id):
    client, kept = edge
    r = client.request(method, template.format(clip_id), headers=WRITE)
    assert_validation_error(r, "path", "clip_id")
    assert clips(client) == [kept]


@pytest.mark.parametrize("method, template", ID_ROUTES, ids=ID_ROUTE_IDS)
@pytest.mark.parametrize("clip_id", MISSING_IDS.values(), ids=MISSING_IDS.keys())
def test_a_valid_id_of_no_clip_answers_404(edge, method, template, clip_id):
    client, kept = edge
    r = client.request(method, template.format(clip_id), headers=WRITE)
    assert r.status_code == 404, r.text
    assert r.json()["detail"] == f"no clip with id {clip_id}"
    assert clips(client) == [kept]


def test_the_clip_itself_is_still_served(edge):
    client, kept = edge
    assert client.get(f"/audio/{kept}").json()["id"] == kept
    assert client.get(f"/audio/{kept}/file").content == CLIP


WHOLE_CLIP = f"bytes 0-{len(CLIP) - 1}/{len(CLIP)}"
UNSATISFIABLE = f"bytes */{len(CLIP)}"


@pytest.mark.parametrize("value, status, content_range", [
    ("bytes=0-99999999999999999999999999", 206, WHOLE_CLIP),  # an end past the file: cut to it
    ("bytes=-99999999999999999999", 206, WHOLE_CLIP),  # a suffix longer than the file: all of it
    ("bytes=99999999999999999999-", 416, UNSATISFIABLE),  # a start past the file
    ("bytes=9223372036854775808-1", 200, None),  # its last byte before its first: no range, ignored (RFC)
    ("bytes=" + "2" * 5000 + "-" + "1" * 5000, 200, None),
    ("bytes=" + "1" * 5000 + "-", 416, UNSATISFIABLE),  # more digits than Python reads: still past the end
])
def test_a_huge_byte_range_is_not_a_server_error(edge, value, status, content_range):
    client, kept = edge
    r = client.get(f"/audio/{kept}/file", headers={"Range": value})
    assert r.status_code == status, r.text
    assert r.headers.get("content-range") == content_range
    if status in (200, 206):
        assert r.content == CLIP


# -- the listing ---------------------------------------------------------------------------------------------
BAD_PAGES = {"offset-2^63": ({"offset": str(2**63)}, "offset"),
             "offset-20-digits": ({"offset": "99999999999999999999"}, "offset"),
             "offset-negative": ({"offset": "-1"}, "offset"),
             "offset-float": ({"offset": "1.5"}, "offset"),
             "limit-0": ({"limit": "0"}, "limit"),
             "limit-501": ({"limit": "501"}, "limit"),
             "limit-2^63": ({"limit": str(2**63)}, "limit"),
             "limit-negative": ({"limit": "-9223372036854775809"}, "limit")}


@pytest.mark.parametrize("params, field", BAD_PAGES.values(), ids=BAD_PAGES.keys())
def test_a_page_the_store_cannot_hold_is_refused_with_422(edge, params, field):
    client, _ = edge
    assert_validation_error(client.get("/audio", params=params), "query", field)


@pytest.mark.parametrize("offset", [1, 10**6, 10**18, INT64_MAX])
def test_an_offset_past_the_end_answers_an_empty_page(edge, offset):
    client, _ = edge
    r = client.get("/audio", params={"offset": offset, "limit": 500})
    assert r.status_code == 200, r.text
    assert r.json() == {"total": 1, "offset": offset, "limit": 500, "items": []}


# -- text search ---------------------------------------------------------------------------------------------
def raw_json(text: str) -> dict:
    """TestClient kwargs for a body sent as written (json.dumps would refuse NaN or escape differently)."""
    return {"content": text.encode(), "headers": {"Content-Type": "application/json"}}


BAD_SEARCHES = {
    "k-2^63": ('{"query": "rain", "k": 9223372036854775808}', "k"),
    "k-400-digits": ('{"query": "rain", "k": 1' + "0" * 400 + "}", "k"),
    "k-infinity": ('{"query": "rain", "k": Infinity}', "k"),
    "k-nan": ('{"query": "rain", "k": NaN}', "k"),
    "min-infinity": ('{"query": "rain", "min_duration": Infinity}', "min_duration"),
    "min-minus-infinity": ('{"query": "rain", "min_duration": -Infinity}', "min_duration"),
    "min-nan": ('{"query": "rain", "min_duration": NaN}', "min_duration"),
    "min-1e400": ('{"query": "rain", "min_duration": 1e400}', "min_duration"),
    "min-400-digits": ('{"query": "rain", "min_duration": 1' + "0" * 400 + "}", "min_duration"),
    "min-negative": ('{"query": "rain", "min_duration": -1}', "min_duration"),
    "max-infinity": ('{"query": "rain", "max_duration": Infinity}', "max_duration"),
    "max-nan": ('{"query": "rain", "max_duration": NaN}', "max_duration"),
    "max-1e400": ('{"query": "rain", "max_duration": 1e400}', "max_duration"),
    "max-minus-1e400": ('{"query": "rain", "max_duration": -1e400}', "max_duration"),
    "max-zero": ('{"query": "rain", "max_duration": 0}', "max_duration"),
    "max-string": ('{"query": "rain", "max_duration": "long"}', "max_duration"),
    "min-over-max": ('{"query": "rain", "min_duration": 5, "max_duration": 1}', None),
    "tag-empty": ('{"query": "rain", "tag": ""}', "tag"),
    "tag-201-chars": (json.dumps({"query": "rain", "tag": "a" * 201}), "tag"),
    "tag-100k-chars": (json.dumps({"query": "rain", "tag": "a" * 100_000}), "tag"),
    "tag-nul": ('{"query": "rain", "tag": "\\u0000"}', "tag"),
    "tag-nul-inside": ('{"query": "rain", "tag": "Ra\\u0000in"}', "tag"),
    "tag-lone-surrogate": ('{"query": "rain", "tag": "\\ud800"}', "tag"),
    "tag-low-surrogate": ('{"query": "rain", "tag": "Rain\\udfff"}', "tag"),
    "tag-number": ('{"query": "rain", "tag": 7}', "tag"),
    "query-lone-surrogate": ('{"query": "\\ud83d rain"}', "query"),
    "query-nul": ('{"query": "rain\\u0000"}', "query"),
    "query-501-chars": (json.dumps({"query": "r" * 501}), "query"),
}


@pytest.mark.parametrize("body, field", BAD_SEARCHES.values(), ids=BAD_SEARCHES.keys())
def test_a_search_the_store_cannot_answer_is_refused_with_422(edge, body, field):
    client, _ = edge
    r = client.post("/search", **raw_json(body))
    if field is None:  # a rule across fields: reported on the body itself
        assert_validation_error(r, "body")
    else:
        assert_validation_error(r, "body", field)
    assert "Infinity" not in r.text and "NaN" not in r.text and "\\ud8" not in r.text  # never echoed


GOOD_SEARCHES = {
    "k-max": ('{"query": "rain", "k": 100}', 1),
    "min-1e308": ('{"query": "rain", "min_duration": 1e308}', 0),
    "max-1e308": ('{"query": "rain", "max_duration": 1e308}', 1),
    "min-equals-max": ('{"query": "rain", "min_duration": 0.5, "max_duration": 0.5}', 1),
    "max-tiny": ('{"query": "rain", "max_duration": 5e-324}', 0),
    "min-zero": ('{"query": "rain", "min_duration": 0}', 1),
    "tag-200-chars": (json.dumps({"query": "rain", "tag": "a" * 200}), 0),
    "tag-unicode": (json.dumps({"query": "rain", "tag": "雨 🎵"}), 0),
    "tag-pair": ('{"query": "rain", "tag": "\\ud83c\\udfb5"}', 0),  # a well-formed surrogate pair: one emoji
    "tag-percent": ('{"query": "rain", "tag": "%_\'\\"; DROP TABLE clips; --"}', 0),
    "query-emoji-pair": ('{"query": "\\ud83c\\udf27 rain"}', 1),
    "query-newlines": ('{"query": "rain\\non a\\troof"}', 1),
}


@pytest.mark.parametrize("body, hits", GOOD_SEARCHES.values(), ids=GOOD_SEARCHES.keys())
def test_a_search_at_the_edge_answers_correctly(edge, body, hits):
    client, kept = edge
    r = client.post("/search", **raw_json(body))
    assert r.status_code == 200, r.text
    assert [h["id"] for h in r.json()["results"]] == [kept] * hits


# -- query by example and uploads ----------------------------------------------------------------------------
@pytest.mark.parametrize("k", [str(2**63), str(2**64), "1" + "0" * 5000, "inf", "nan", "1e3", "-0", "\x00",
                               "10\x00"])
def test_an_audio_query_k_the_store_cannot_take_is_refused_with_422(edge, k):
    client, _ = edge
    r = client.post("/search/audio", files={"file": ("q.wav", CLIP, "audio/wav")}, data={"k": k})
    assert_validation_error(r, "body", "k")  # a form field, at ["body", field] as on POST /audio


@pytest.mark.parametrize("name, stored", [("n" * 100_000 + ".wav", "n" * 255), ("\x00\x00", "f.wav"),
                                          ("a\x00b.wav", "a b.wav"), ("  ", "f.wav")],  # nothing: the file's
                         ids=["100k-chars", "only-nul", "nul-inside", "blank"])
def test_an_upload_name_is_reduced_to_one_the_store_holds(edge, name, stored):
    client, kept = edge
    data = audio_bytes(sine(300.0 + len(name) % 97, seconds=0.4))
    r = client.post("/audio", files={"file": ("f.wav", data, "audio/wav")}, data={"name": name},
                    params=WAIT, headers=WRITE)
    assert r.status_code == 201, r.text
    record = r.json()
    assert record["name"] == stored
    assert client.get(f"/audio/{record['id']}").json()["name"] == stored
    assert client.delete(f"/audio/{record['id']}", headers=WRITE).status_code == 204
    assert clips(client) == [kept]


# -- the published schema ------------------------------------------------------------------------------------
def test_the_schema_publishes_the_bounds():
    schema = create_app(Settings()).openapi()
    for path, method in (("/audio/{clip_id}", "get"), ("/audio/{clip_id}", "delete"),
                         ("/audio/{clip_id}/file", "get")):
        (param,) = [p for p in schema["paths"][path][method]["parameters"] if p["name"] == "clip_id"]
        assert (param["schema"]["minimum"], param["schema"]["maximum"]) == (1, INT64_MAX), param
    listing = {p["name"]: p["schema"] for p in schema["paths"]["/audio"]["get"]["parameters"]}
    assert (listing["offset"]["minimum"], listing["offset"]["maximum"]) == (0, INT64_MAX)
    assert (listing["limit"]["minimum"], listing["limit"]["maximum"]) == (1, 500)
    search = schema["components"]["schemas"]["SearchRequest"]["properties"]
    assert (search["k"]["minimum"], search["k"]["maximum"]) == (1, 100)
    assert {"type": "string", "minLength": 1, "maxLength": 500} in search["query"]["anyOf"]  # optional now
    assert {"type": "string", "minLength": 1, "maxLength": 500} in search["not"]["anyOf"]
    assert {"type": "string", "minLength": 1, "maxLength": 200} in search["tag"]["anyOf"]
