"""The user's metadata through the service: uploads carry it, PATCH /audio/{id} edits it (with the key),
malformed metadata answers 422 and changes nothing."""

import json

import pytest

from tests.app.conftest import API_KEY, CLIPS, WRITE, upload, wav_bytes
from tests.app.planted import plant
from tests.audio_fixtures import noise


def meta_of(record: dict) -> tuple:
    return record["description"], record["user_tags"], record["fields"]


def test_an_upload_is_stored_with_its_description_tags_and_fields(client):
    r = upload(client, "take.wav", CLIPS["noise.wav"], description="  Hiss of an old tape  ",
               user_tags="Tape; hiss,  noise ;;", fields='{"pack": "Foley", "take": "3"}')
    assert r.status_code == 201, r.text
    record = r.json()
    want = ("Hiss of an old tape", ["tape", "hiss", "noise"], {"pack": "Foley", "take": "3"})
    assert meta_of(record) == want
    assert meta_of(client.get(f"/audio/{record['id']}").json()) == meta_of(record)
    hits = client.post("/search", json={"query": "old tape", "mode": "keyword"}).json()["results"]
    assert [h["id"] for h in hits] == [record["id"]]
    again = upload(client, "again.wav", CLIPS["noise.wav"], description="other")  # the same bytes
    assert again.status_code == 200 and meta_of(again.json()) == meta_of(record)


@pytest.mark.parametrize("fields", [
    {"fields": "not json"},
    {"fields": '["a list"]'},
    {"fields": '{"pack": 3}'},
    {"fields": '{"a-b": "x"}'},
    {"fields": "[" * 3000},  # past the JSON parser's depth: it was a 500
    {"user_tags": "x" * 65},
    {"user_tags": ";".join(f"t{i}" for i in range(33))},
    {"description": "x" * 2001},
    {"description": "a bell\x07"},
    {"tags": "drums"},  # a misspelt field is refused, not dropped
])
def test_malformed_upload_metadata_is_422_and_stores_nothing(client, fields):
    r = upload(client, "bad.wav", CLIPS["sine.wav"], **fields)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["body", next(iter(fields))]
    assert client.get("/jobs").json()["total"] == 0 and client.get("/audio").json()["total"] == 0
    assert not list((client.app.state.settings.data_dir / "incoming").iterdir())


@pytest.fixture
def planted(client):
    ids, _ = plant(client.app.state.collection.store)
    return client, ids


def patch(client, clip_id, body, headers=WRITE):
    return client.patch(f"/audio/{clip_id}", json=body, headers=headers)


def test_patch_replaces_the_parts_given_and_keeps_the_others(planted):
    client, ids = planted
    r = patch(client, ids[0], {"description": "A booming kick", "user_tags": ["Kick", "boom", "kick"]})
    assert r.status_code == 200, r.text
    assert meta_of(r.json()) == ("A booming kick", ["kick", "boom"], {"pack": "Drums Vol 1"})
    assert meta_of(client.get(f"/audio/{ids[0]}").json()) == meta_of(r.json())
    words = client.post("/search", json={"query": "booming", "mode": "keyword"}).json()["results"]
    assert [h["id"] for h in words] == [ids[0]]  # the keyword index follows at once
    assert client.post("/search", json={"query": "tail", "mode": "keyword"}).json()["results"] == []
    r = patch(client, ids[0], {"fields": {"bpm": "90"}})
    assert meta_of(r.json()) == ("A booming kick", ["kick", "boom"], {"bpm": "90"})
    r = patch(client, ids[0], {"description": "", "user_tags": [], "fields": {}})
    assert meta_of(r.json()) == ("", [], {})
    assert r.json()["name"] == "Kick_808_Hard.wav" and r.json()["audio_url"] == f"/audio/{ids[0]}/file"


@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"X-API-Key": "wrong"}, 403)])
def test_patch_needs_the_key(planted, headers, status):
    client, ids = planted
    before = client.get(f"/audio/{ids[1]}").json()
    assert patch(client, ids[1], {"description": "x"}, headers=headers).status_code == status
    assert client.get(f"/audio/{ids[1]}").json() == before
    assert patch(client, ids[1], {"description": "x"}, headers={"Authorization": f"Bearer {API_KEY}"}
                 ).status_code == 200


def test_patch_without_a_configured_key_is_refused(make_client):
    client = make_client(api_key=None)
    r = client.patch("/audio/1", json={"description": "x"}, headers={"X-API-Key": "anything"})
    assert r.status_code == 403 and "set RETRIEVAL_API_KEY" in r.json()["detail"]


@pytest.mark.parametrize("body", [
    {},
    {"colour": "red"},
    {"description": None},
    {"description": 5},
    {"description": "x" * 2001},
    {"description": "nul\x00"},
    {"user_tags": "kick"},
    {"user_tags": ["a,b"]},
    {"user_tags": ["  "]},
    {"user_tags": [f"t{i}" for i in range(33)]},
    {"fields": {"bad key": "x"}},
    {"fields": {"pack": ["a"]}},
    {"fields": {"k" * 65: "x"}},
])
def test_malformed_patches_are_422_and_change_nothing(planted, body):
    client, ids = planted
    before = client.get(f"/audio/{ids[2]}").json()
    r = patch(client, ids[2], body)
    assert r.status_code == 422, body
    assert client.get(f"/audio/{ids[2]}").json() == before


@pytest.mark.parametrize(("body", "words"), [
    ({"description": "x" * 2001}, "at most 2000 characters"),
    ({"user_tags": ["x" * 65]}, "at most 64 characters"),
    ({"user_tags": [""]}, "at least 1 character"),
    ({"fields": {"pack": "v" * 201}}, "at most 200 characters"),
])
def test_a_text_too_long_is_counted_in_characters(planted, body, words):
    client, ids = planted
    r = patch(client, ids[2], body)
    assert r.status_code == 422 and words in r.json()["detail"][0]["msg"], r.text
    search = client.post("/search", json={"query": "rain", "tag": "x" * 201})
    assert search.status_code == 422 and "at most 200 characters" in search.json()["detail"][0]["msg"]


def test_patch_of_an_unknown_or_malformed_id(planted):
    client, _ = planted
    assert patch(client, 999, {"description": "x"}).status_code == 404
    assert patch(client, 0, {"description": "x"}).status_code == 422
    assert patch(client, 2**63, {"description": "x"}).status_code == 422


def test_the_longest_metadata_allowed_fits(client):
    """At the bounds (and with 4-byte characters) the upload's metadata still fits its job's fields: the
    indexed clip carries all of it."""
    tags = [f"{i:02d}" + "𝄞" * 62 for i in range(32)]
    fields = {f"k{i:02d}{'x' * 60}": "𝄞" * 200 for i in range(32)}
    r = upload(client, "big.wav", wav_bytes(noise(seconds=0.3, seed=3)), description="𝄞" * 2000,
               user_tags=";".join(tags), fields=json.dumps(fields, ensure_ascii=False))
    assert r.status_code == 201, r.text
    assert meta_of(client.get(f"/audio/{r.json()['id']}").json()) == ("𝄞" * 2000, tags, fields)


def test_a_clip_shows_what_its_file_said_apart_from_its_own_metadata(client, planted):
    """An upload's UCS name is read as its file's (file_metadata), the form's values are the clip's over it;
    a PATCH changes the clip's, not what the file said; a clip stored without it shows null."""
    client, ids = planted
    r = upload(client, "DOORWood_Slam heavy_JD.wav", CLIPS["noise.wav"], user_tags="mine",
               fields='{"ucs_catid": "DOORMetal"}')
    assert r.status_code == 201, r.text
    record = r.json()
    read = record["file_metadata"]
    assert read["fields"]["ucs_catid"] == "DOORWood" and read["fields"]["ucs_fx_name"] == "Slam heavy"
    assert "mine" not in read["user_tags"] and record["user_tags"][0] == "mine"
    assert record["fields"]["ucs_catid"] == "DOORMetal"  # the form's over the name's
    patched = patch(client, record["id"], {"description": "A metal door"}).json()
    assert patched["file_metadata"] == read and patched["description"] == "A metal door"
    assert client.get(f"/audio/{record['id']}").json()["file_metadata"] == read
    assert client.get(f"/audio/{ids[0]}").json()["file_metadata"] is None  # planted: stored without it
