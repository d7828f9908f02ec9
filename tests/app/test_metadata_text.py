"""A user's metadata text through the service, by the rule a file's follows (index/store/names.py): a
character a file's text loses (a direction control, a control character) is refused with 422 naming the
field; a line break of any kind (CRLF, NEL, U+2028) is stored as LF; a description, a tag and a field value
are stored composed, so a tag or a field typed decomposed (as macOS gives text) is found by a filter typed
composed, and the other way round; a length counts what is stored."""

import pytest

from tests.app.conftest import CLIPS, WRITE, upload
from tests.app.planted import LIBRARY, plant

NFD, NFC = "cafe\u0301", "caf\u00e9"


@pytest.fixture
def planted(client):
    ids, _ = plant(client.app.state.collection.store)
    return client, ids


def patch(client, clip_id, body):
    return client.patch(f"/audio/{clip_id}", json=body, headers=WRITE)


def found(client, **filters) -> set[int]:
    body = {"query": "a sound", "k": len(LIBRARY) + 5, **filters}
    r = client.post("/search", json=body)
    assert r.status_code == 200, r.text
    return {h["id"] for h in r.json()["results"]}


@pytest.mark.parametrize(("body", "loc", "words"), [
    ({"description": "Door slam \u202egnp.wav"}, ["description"], "U+202E, a control of text's direction"),
    ({"description": "Door \u2066slam"}, ["description"], "U+2066"),
    ({"description": "csi \x9b31m red"}, ["description"], "the control character U+009B"),
    ({"description": "escape \x1b[31m red"}, ["description"], "the control character U+001B"),
    ({"user_tags": ["ok", "kick\u202e"]}, ["user_tags", 1], "U+202E"),
    ({"fields": {"pack": "Drums \u202dVol 1"}}, ["fields", "pack"], "U+202D"),
])
def test_what_a_files_text_would_lose_a_patch_is_refused_naming_the_field(planted, body, loc, words):
    client, ids = planted
    before = client.get(f"/audio/{ids[0]}").json()
    r = patch(client, ids[0], body)
    assert r.status_code == 422, r.text
    [issue] = r.json()["detail"]
    assert issue["loc"] == ["body", *loc] and words in issue["msg"], issue
    assert client.get(f"/audio/{ids[0]}").json() == before


@pytest.mark.parametrize("line_break", ["\x85", "\u2028", "\u2029", "\r\n", "\r"])
def test_a_line_break_of_any_kind_in_a_description_is_stored_as_lf(planted, line_break):
    client, ids = planted
    r = patch(client, ids[1], {"description": f"First line{line_break}second line",
                               "fields": {"notes": f"a{line_break}b"}})
    assert r.status_code == 200, r.text
    assert (r.json()["description"], r.json()["fields"]) == ("First line\nsecond line", {"notes": "a\nb"})
    assert client.get(f"/audio/{ids[1]}").json()["description"] == "First line\nsecond line"


def test_a_tag_typed_decomposed_is_the_tag_typed_composed_and_either_filter_finds_it(planted):
    client, ids = planted
    r = patch(client, ids[0], {"user_tags": [NFD, NFC, "Kick"], "description": f"{NFD} au lait"})
    assert r.status_code == 200, r.text
    assert r.json()["user_tags"] == [NFC, "kick"] and r.json()["description"] == f"{NFC} au lait"
    assert patch(client, ids[1], {"user_tags": [NFC]}).json()["user_tags"] == [NFC]
    for form in (NFC, NFD, NFD.upper()):
        assert found(client, tags_any=[form]) == {ids[0], ids[1]}, form
        assert found(client, tags_all=[form, "kick"]) == {ids[0]}, form
        assert ids[0] not in found(client, tags_none=[form])
    words = client.post("/search", json={"query": NFD, "mode": "keyword"}).json()["results"]
    assert {h["id"] for h in words} == {ids[0], ids[1]}


def test_a_field_typed_decomposed_is_found_by_the_value_typed_composed(planted):
    client, ids = planted
    r = patch(client, ids[2], {"fields": {"place": f"{NFD} de Flore"}})
    assert r.status_code == 200 and r.json()["fields"] == {"place": f"{NFC} de Flore"}, r.text
    for form in (NFC, NFD):
        assert found(client, fields={"place": f"{form} de Flore"}) == {ids[2]}, form


def test_a_length_counts_what_is_stored(planted):
    """A tag of 60 letters with spaces around it (65 characters sent) is the 60 stored, and inner spaces count
    once; 65 letters are too many. A description's spaces at its ends are not counted either."""
    client, ids = planted
    tag = "a" * 60
    r = patch(client, ids[3], {"user_tags": [f"  {tag}   "], "description": f"  {'d' * 2000}  "})
    assert r.status_code == 200, r.text
    assert r.json()["user_tags"] == [tag] and r.json()["description"] == "d" * 2000
    r = patch(client, ids[3], {"user_tags": [f"{'B' * 31}    {'c' * 32}"]})  # 67 sent, 64 stored
    assert r.status_code == 200 and r.json()["user_tags"] == [f"{'b' * 31} {'c' * 32}"], r.text
    for too_long in ({"user_tags": ["a" * 65]}, {"description": "d" * 2001}, {"fields": {"k": "v" * 201}}):
        r = patch(client, ids[3], too_long)
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "string_too_long", r.text


def test_an_uploads_form_is_held_to_the_same_rule(client):
    """A browser's form sends a textarea's line breaks as CRLF: a description of 1,999 characters stored
    (2,018 sent) is taken; a tag of 60 letters with spaces around it too; a direction control is refused."""
    description = "\r\n".join(["d" * 99] * 20)
    assert len(description) == 2018
    r = upload(client, "take.wav", CLIPS["noise.wav"], description=description,
               user_tags=f"  {'t' * 60}   ; {NFD}")
    assert r.status_code == 201, r.text
    assert r.json()["description"] == "\n".join(["d" * 99] * 20) and r.json()["user_tags"] == ["t" * 60, NFC]
    refused = upload(client, "other.wav", CLIPS["sine.wav"], description="\u202egnp.wav")
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "description"]


def test_a_tag_stored_decomposed_before_reads_composed_and_is_matched_once_the_clip_is_written_again(planted):
    """Stored before tags were composed (written here into the clip database as it was then): the clip
    shows it composed at once; a filter, which the store compares with what it holds, matches it once the
    clip's metadata is written again: any PATCH (here of its description alone) writes its tags as stored now
    (docs/search-api.md)."""
    client, ids = planted
    con = client.app.state.collection.store.db.connection()
    con.execute("UPDATE clips SET user_tags = ? WHERE id = ?", (f'["{NFD}"]', ids[4]))
    con.commit()
    assert client.get(f"/audio/{ids[4]}").json()["user_tags"] == [NFC]
    assert found(client, tags_any=[NFC]) == set()  # the store holds the decomposed form
    assert patch(client, ids[4], {"description": "open hat"}).json()["user_tags"] == [NFC]
    assert found(client, tags_any=[NFD]) == found(client, tags_any=[NFC]) == {ids[4]}
