"""POST /search in its three modes and with the user-metadata filters, over clips planted in the store:
vector against brute force, keyword against the store's BM25 (tests/index/test_keyword.py holds that to the
formula), hybrid against reciprocal-rank fusion summed by hand."""

import numpy as np
import pytest

from tests.app.planted import LIBRARY, plant


@pytest.fixture
def planted(client):
    ids, xb = plant(client.app.state.collection.store)
    return client, ids, xb


def search(client, **body):
    r = client.post("/search", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_keyword_mode_finds_file_name_words_and_scores_by_bm25(planted):
    client, ids, _ = planted
    store = client.app.state.collection.store
    body = search(client, query="808", mode="keyword")
    assert body["mode"] == "keyword" and [h["name"] for h in body["results"]] == ["Kick_808_Hard.wav"]
    body = search(client, query="kick", mode="keyword", k=10)
    assert {h["name"] for h in body["results"]} == {"Kick_808_Hard.wav", "kick_soft.wav", "SnareRoll.wav"}
    oracle = store.search_keywords("kick", 10)
    assert [h["id"] for h in body["results"]] == [h.record.id for h in oracle]
    assert [h["score"] for h in body["results"]] == pytest.approx([h.score for h in oracle])
    first = body["results"][0]
    record = next(r for r in LIBRARY if r[0] == first["name"])
    shown = (first["description"], first["user_tags"], first["fields"])
    assert shown == (record[1], list(record[2]), record[3])
    assert search(client, query="roll", mode="keyword")["results"][0]["name"] == "SnareRoll.wav"  # camel case
    assert search(client, query="weather", mode="keyword")["results"][0]["name"] == "thunder.ogg"  # user tag


def test_hybrid_mode_fuses_the_vector_and_keyword_rankings(planted, retriever):
    client, ids, xb = planted
    query = "kick drum"
    q = retriever.encode_text([query])[0]  # (D,)
    vector = [ids[i] for i in np.argsort(-(xb @ q), kind="stable")]  # every clip, best first
    words = [h.record.id for h in client.app.state.collection.store.search_keywords(query, 100)]
    assert words and len(words) < len(ids)
    fused = {i: 1 / (60 + vector.index(i) + 1) + (1 / (60 + words.index(i) + 1) if i in words else 0.0)
             for i in ids}
    expected = sorted(fused, key=lambda i: (-fused[i], i))[:4]
    body = search(client, query=query, mode="hybrid", k=4)
    assert body["mode"] == "hybrid" and [h["id"] for h in body["results"]] == expected
    assert [h["score"] for h in body["results"]] == pytest.approx([fused[i] for i in expected])
    vec = search(client, query=query, k=6)  # the default mode
    assert vec["mode"] == "vector" and [h["id"] for h in vec["results"]] == vector
    assert [h["score"] for h in vec["results"]] == pytest.approx(sorted(xb @ q, reverse=True), abs=1e-5)


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
@pytest.mark.parametrize("flt", [
    {"tags_any": ["Kick", "hihat"]},
    {"tags_all": ["kick", "808"]},
    {"fields": {"pack": "Drums Vol 1"}},
    {"fields": {"pack": "Drums Vol 1", "bpm": "120"}, "max_duration": 5.0},
    {"tags_any": ["field recording"], "min_duration": 5.0},
    {"fields": {"pack": "drums vol 1"}},  # values match exactly
], ids=["any", "all", "field", "fields+max", "any+min", "case"])
def test_filters_apply_inside_every_mode(planted, mode, flt):
    client, ids, _ = planted
    keep = set()
    for i, (_, _, tags, fields) in enumerate(LIBRARY):
        duration = 1.0 + i
        if ((not flt.get("tags_any") or {t.lower() for t in flt["tags_any"]} & set(tags))
                and set(flt.get("tags_all", ())) <= set(tags)
                and all(fields.get(k) == v for k, v in flt.get("fields", {}).items())
                and duration >= flt.get("min_duration", 0) and duration <= flt.get("max_duration", 99)):
            keep.add(ids[i])
    query = "kick snare hihat rain thunder"  # every clip has one of these words
    everything = [h["id"] for h in search(client, query=query, mode=mode, k=10)["results"]]
    got = [h["id"] for h in search(client, query=query, mode=mode, k=10, **flt)["results"]]
    assert set(got) == keep
    if mode != "hybrid":  # the filter chooses among the clips; it does not reorder them
        assert got == [i for i in everything if i in keep]


@pytest.mark.parametrize("body", [
    {"query": "kick", "mode": "fuzzy"},
    {"query": "kick", "mode": None},
    {"query": "!!! ...", "mode": "keyword"},  # no word to match
    {"query": "kick", "tags_any": "kick"},
    {"query": "kick", "tags_any": ["kick; snare"]},
    {"query": "kick", "tags_all": [""]},
    {"query": "kick", "tags_all": ["x" * 65]},
    {"query": "kick", "tags_any": [f"t{i}" for i in range(33)]},
    {"query": "kick", "fields": {"a.b": "x"}},
    {"query": "kick", "fields": {"1pack": "x"}},
    {"query": "kick", "fields": {"pack": 1}},
    {"query": "kick", "fields": {"pack": "x" * 201}},
    {"query": "kick", "fields": {f"k{i}": "v" for i in range(33)}},
    {"query": "kick", "fields": ["pack"]},
])
def test_malformed_modes_and_filters_answer_422(planted, body):
    client, _, _ = planted
    r = client.post("/search", json=body)
    assert r.status_code == 422, body
    assert r.json()["detail"][0]["loc"][0] == "body"


def test_a_hybrid_query_without_words_is_its_vector_ranking(planted):
    client, _, _ = planted
    vector = search(client, query="!!!", k=3)["results"]
    hybrid = search(client, query="!!!", mode="hybrid", k=3)["results"]
    assert [h["id"] for h in hybrid] == [h["id"] for h in vector]
