"""The multipart forms of POST /audio and POST /search/audio: a field sent twice, the file too, is a 422
naming it; a file name comes back as the client's file was named, whatever the form's escapes."""

import pytest

from tests.app.conftest import WRITE, wav_bytes
from tests.audio_fixtures import sine

CLIP = wav_bytes(sine(440.0, seconds=0.5))


@pytest.mark.parametrize("path", ["/audio", "/search/audio"])
def test_a_file_sent_twice_is_a_422_naming_it(client, path):
    """Two `file` parts were refused by the form parser with a 400 "Too many files", unlike any other field
    sent twice (422 naming it). Nothing is stored."""
    two = [("file", ("a.wav", CLIP, "audio/wav")), ("file", ("b.wav", wav_bytes(sine(880.0)), "audio/wav"))]
    r = client.post(path, files=two, headers=WRITE)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [{"loc": ["body", "file"], "type": "repeated",
                                   "msg": "the field 'file' is sent more than once"}]
    other = client.post(path, files=[two[0]], data={"k": ["1", "2"]}, headers=WRITE)  # as any other field
    assert other.status_code == 422 and other.json()["detail"][0]["loc"] == ["body", "k"]
    assert client.get("/jobs").json()["total"] == 0 and client.get("/audio").json()["total"] == 0


def test_a_file_under_another_name_is_a_422_naming_it(client):
    """Only `file` takes a file: one sent as `name` or `extra` would be dropped unread (it was a 400 "Too
    many files" while a form could hold one file)."""
    files = [("file", ("a.wav", CLIP, "audio/wav")), ("name", ("b.wav", CLIP, "audio/wav"))]
    r = client.post("/audio", files=files, headers=WRITE)
    assert r.status_code == 422, r.text
    [issue] = r.json()["detail"]
    assert issue["loc"] == ["body", "name"] and issue["type"] == "unexpected_file"
    assert client.get("/jobs").json()["total"] == 0


@pytest.mark.parametrize(("filename", "stored"), [
    ('say "hi", café.wav', 'say "hi", café.wav'),
    ("two\nlines.wav", "two lines.wav"),
    ("carriage\rreturn.wav", "carriage return.wav"),
    ('both "\r\n" kinds.wav', 'both "  " kinds.wav'),
    ("100%41 literal %2F.wav", "100%41 literal %2F.wav"),  # no other %XX is an escape
    ("lower %0a stays.wav", "lower %0a stays.wav"),  # the escapes are written upper-case
    ("tab\there.wav", "tab here.wav"),  # httpx's %09, a space as a typed tab is
    ("bell\x07 and\x1f unit.wav", "bell and unit.wav"),  # httpx's %07 and %1F, control characters dropped
])
def test_a_file_name_is_stored_as_the_clients_file_was_named(client, filename, stored):
    """A browser writes a file name's `"`, LF and CR as %22, %0A and %0D in the part's header (WHATWG HTML),
    and httpx every control character as %00-%1F: `say "hi".wav` was stored as `say %22hi%22.wav`. Read
    back, then a line break is a space like any other; what the client sent is the oracle."""
    r = client.post("/audio", files={"file": (filename, CLIP, "audio/wav")}, headers=WRITE)
    assert r.status_code == 202, r.text
    assert r.json()["name"] == stored


def test_the_name_field_is_taken_as_it_is_sent(client):
    """The form's `name` is a field's value, which no client escapes: a `%22` in it is the name's own."""
    r = client.post("/audio", files={"file": ("a.wav", CLIP, "audio/wav")},
                    data={"name": 'fifty %22 "off".wav'}, headers=WRITE)
    assert r.status_code == 202 and r.json()["name"] == 'fifty %22 "off".wav', r.text
