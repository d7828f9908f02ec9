"""Composite queries over HTTP: the ranking numpy computes from the stored vectors and the encoded texts,
the judged clips left out, and a 4xx for every malformed composite (planted vectors: no PaSST)."""

import numpy as np
import pytest

from tests.app.conftest import CLIPS, composite_ranking, vector_of


def ids(planted, *names: int) -> list[int]:
    return [planted[f"planted{n}.wav"][0] for n in names]


@pytest.mark.parametrize("parts", [
    {"query": "a steady tone"},
    {"query": "a steady tone", "like": [0]},
    {"like": [1, 2]},
    {"like": [3], "unlike": [4, 5]},
    {"query": "birds singing", "not": "a steady tone"},
    {"query": "a steady tone", "like": [0, 6], "unlike": [7], "not": "thunder"},
    {"query": "a steady tone", "like": [2], "unlike": [7], "not": "thunder",
     "weights": {"query": 0.2, "like": 2.0, "unlike": 0.0, "not": 1.5}},
])
def test_composite_ranking_equals_numpy(make_client, planted, retriever, parts):
    client = make_client()
    body = {**parts, "like": ids(planted, *parts.get("like", ())),
            "unlike": ids(planted, *parts.get("unlike", ())), "k": 100}
    r = client.post("/search", json=body)
    assert r.status_code == 200, r.text
    order, scores = composite_ranking(retriever, planted, body)
    results = r.json()["results"]
    assert [h["name"] for h in results] == order  # every clip but the judged ones
    np.testing.assert_allclose([h["score"] for h in results], [scores[n] for n in order], atol=1e-5)


def test_k_and_filters_apply_after_leaving_the_judged_out(make_client, planted, retriever):
    client = make_client()
    body = {"query": "a steady tone", "like": ids(planted, 5), "min_duration": 3.0, "k": 3}
    results = client.post("/search", json=body).json()["results"]
    order, _ = composite_ranking(retriever, planted, body)
    long_enough = [n for n in order if int(n[7]) + 1 >= 3.0]  # planted i lasts i + 1 s
    assert [h["name"] for h in results] == long_enough[:3]


def test_the_answer_describes_the_composite(make_client, planted):
    client = make_client()
    like, unlike = ids(planted, 1, 2), ids(planted, 3)
    body = {"query": "rain", "like": like, "unlike": unlike, "not": "thunder"}
    echo = client.post("/search", json=body).json()["query"]
    assert echo == f'"rain" + like #{like[0]}, #{like[1]} - unlike #{unlike[0]} - not "thunder"'
    assert client.post("/search", json={"query": "rain"}).json()["query"] == "rain"


def test_unknown_clips_are_404_naming_them(make_client, planted):
    client = make_client()
    r = client.post("/search", json={"query": "rain", "like": [*ids(planted, 0), 9001], "unlike": [9000]})
    assert r.status_code == 404 and r.json() == {"detail": "no clips with ids 9000, 9001"}


def test_parts_that_cancel_out_are_a_clear_422(make_client, planted):
    client = make_client()
    r = client.post("/search", json={"query": "rain", "not": "rain", "weights": {"not": 1.0}})
    assert r.status_code == 422
    [issue] = r.json()["detail"]
    assert issue["loc"] == ["body"] and issue["type"] == "zero_query" and "cancel out" in issue["msg"]


@pytest.mark.parametrize(("body", "says"), [
    ({}, "nothing to search towards"),
    ({"k": 5}, "nothing to search towards"),
    ({"unlike": [1]}, "nothing to search towards"),
    ({"not": "thunder"}, "nothing to search towards"),
    ({"unlike": [1], "not": "thunder"}, "nothing to search towards"),
    ({"query": "rain", "weights": {"query": 0}}, "nothing to search towards"),
    ({"like": [1], "weights": {"like": 0}}, "nothing to search towards"),
    ({"query": None, "like": []}, "nothing to search towards"),
    ({"like": list(range(1, 22))}, "at most 20"),
    ({"query": "rain", "unlike": list(range(1, 22))}, "at most 20"),
    ({"like": [1, 2, 1]}, "repeats clips [1]"),
    ({"like": [1, 2], "unlike": [2]}, "in both `like` and `unlike`"),
    ({"like": [0]}, "greater than or equal to 1"),
    ({"like": [2**63]}, "less than or equal to"),
    ({"like": ["3"]}, "valid integer"),
    ({"like": [3.0]}, "valid integer"),
    ({"like": [True]}, "valid integer"),
    ({"like": 3}, "valid list"),
    ({"like": "3"}, "valid list"),
    ({"query": "rain", "weights": {"like": 2.5}}, "less than or equal to 2"),
    ({"query": "rain", "weights": {"not": -0.1}}, "greater than or equal to 0"),
    ({"query": "rain", "weights": {"unlike": "1"}}, "valid number"),
    ({"query": "rain", "weights": {"query": True}}, "valid number"),
    ({"query": "rain", "weights": {"rain": 1}}, "Extra inputs"),
    ({"query": "rain", "weights": None}, "valid dictionary"),
    ({"query": "rain", "weights": [1, 1, 0.5, 0.5]}, "valid dictionary"),
    ({"query": "rain", "not": ""}, "at least 1 character"),
    ({"query": "rain", "not": "   "}, "blank"),
    ({"query": "rain", "not": "x" * 501}, "at most 500"),
    ({"query": "rain", "not": "a\x00b"}, "NUL"),
    ({"query": "rain", "not": 5}, "valid string"),
    ({"query": "rain", "not_": "thunder"}, "Extra inputs"),
])
def test_malformed_composites_are_422(client, body, says):
    r = client.post("/search", json=body)
    assert r.status_code == 422, r.text
    assert any(says in issue["msg"] for issue in r.json()["detail"]), r.json()


def test_a_nan_weight_is_422(client):
    r = client.post("/search", content=b'{"query": "rain", "weights": {"like": NaN}}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "weights", "like"]


def test_example_with_text_combines_both(make_client, planted, retriever):
    client = make_client()
    data = CLIPS["noise.wav"]
    r = client.post("/search/audio", files={"file": ("mine.wav", data)},
                    data={"query": "with rain", "k": "100"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] == 'mine.wav + "with rain"'
    x = retriever.encode_text(["with rain"])[0] + vector_of(retriever, data)  # weights 1 and 1
    x /= np.linalg.norm(x)
    scores = {name: float(v @ x) for name, (_, v) in planted.items()}
    assert [h["name"] for h in body["results"]] == sorted(scores, key=scores.get, reverse=True)
    np.testing.assert_allclose([h["score"] for h in body["results"]],
                               [scores[h["name"]] for h in body["results"]], atol=1e-5)


@pytest.mark.parametrize("query", ["", "   ", "x" * 501])
def test_example_with_a_bad_text_is_422(client, query):
    r = client.post("/search/audio", files={"file": ("mine.wav", CLIPS["noise.wav"])}, data={"query": query})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "query"]]


def test_openapi_has_an_example_for_each_composite_field(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    request = schemas["SearchRequest"]["properties"]
    for field in ("query", "like", "unlike", "not", "weights"):
        assert request[field].get("examples"), field
    assert all(p.get("examples") for p in schemas["QueryWeights"]["properties"].values())
    assert any({"like", "unlike", "not"} <= set(e) for e in schemas["SearchRequest"]["examples"])
    form = spec["paths"]["/search/audio"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["query"]["examples"]
    assert "404" in spec["paths"]["/search"]["post"]["responses"]
