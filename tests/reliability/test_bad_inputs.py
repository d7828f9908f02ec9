"""Bad uploads and bad queries over real HTTP: a 4xx with a clear message, nothing changed, still serving."""

import pytest

from tests.audio_fixtures import clicks, sine
from tests.reliability.bad_inputs import audio_bytes, bad_inputs, odd_but_valid
from tests.reliability.conftest import MAX_DURATION_S, MAX_UPLOAD_BYTES
from tests.reliability.http_checks import (
    assert_clip_present,
    assert_serving,
    detail_text,
    raw_multipart,
    snapshot,
    upload,
)

BAD = bad_inputs(max_bytes=MAX_UPLOAD_BYTES, max_duration_s=MAX_DURATION_S)
UPLOAD_PATHS = ("/audio", "/search/audio")


@pytest.fixture(scope="module")
def seeded(server):
    """The server with two good clips in it, so 'unchanged' and 'still serving' mean something."""
    with server.client(headers=server.write_headers) as client:
        for name, wave in (("seed-sine.wav", sine(330.0, seconds=0.5)), ("seed-clicks.wav", clicks())):
            r = upload(client, "/audio", filename=name, data=audio_bytes(wave[:16_000]))
            assert r.status_code in (200, 201), r.text
    return server


@pytest.mark.parametrize("path", UPLOAD_PATHS)
@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_bad_upload_is_refused_and_changes_nothing(seeded, bad, path):
    with seeded.client(headers=seeded.write_headers) as client:
        before = snapshot(seeded, client)
        r = upload(client, path, filename=bad.filename, data=bad.data)
        assert r.status_code == bad.status, r.text
        message = detail_text(r).lower()
        assert any(words in message for words in bad.message), message
        assert "traceback" not in message
        after = snapshot(seeded, client)
        assert after == before
        assert_serving(client, clips=after.count)


@pytest.mark.parametrize("path", UPLOAD_PATHS)
@pytest.mark.parametrize("request_kwargs, status", [
    ({"content": b""}, 422),  # no body at all
    ({"content": b"\x00" * 100, "headers": {"Content-Type": "audio/wav"}}, 422),  # raw bytes, not a form
    ({"data": {"name": "x.wav"}}, 422),  # a form without the file
    ({"files": {"audio": ("a.wav", audio_bytes(sine(seconds=0.2)))}}, 422),  # the file under another field
    ({"content": b"--xyz\r\nnot a multipart body",
      "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}}, (400, 422)),
], ids=["empty-body", "raw-bytes", "no-file", "wrong-field", "broken-multipart"])
def test_malformed_request_is_refused(seeded, path, request_kwargs, status):
    with seeded.client(headers=seeded.write_headers) as client:
        before = snapshot(seeded, client)
        r = client.post(path, **request_kwargs)
        assert r.status_code in (status if isinstance(status, tuple) else (status,)), r.text
        assert detail_text(r)
        assert snapshot(seeded, client) == before
        assert_serving(client, clips=before.count)


@pytest.mark.parametrize("k", ["0", "-1", "101", "1000000000", "99999999999999999999999", "ten", "1.5"])
def test_audio_search_with_bad_k_is_refused(seeded, k):
    with seeded.client() as client:
        r = upload(client, "/search/audio", filename="q.wav", data=audio_bytes(sine(seconds=0.3)), k=k)
        assert r.status_code == 422, r.text
        assert "k" in str(r.json()["detail"])


TEXT_QUERIES = {
    "bad-json": {"content": b'{"query": "rain", "k": ', "headers": {"Content-Type": "application/json"}},
    "not-an-object": {"json": ["rain"]},
    "no-query": {"json": {"k": 5}},
    "empty-query": {"json": {"query": ""}},
    "blank-query": {"json": {"query": " \t\n "}},
    "10000-chars": {"json": {"query": "rain " * 2000}},
    "huge-k": {"json": {"query": "rain", "k": 10**9}},
    "k-beyond-int64": {"json": {"query": "rain", "k": 10**30}},
    "k-zero": {"json": {"query": "rain", "k": 0}},
    "k-negative": {"json": {"query": "rain", "k": -3}},
    "k-string": {"json": {"query": "rain", "k": "many"}},
    "unknown-field": {"json": {"query": "rain", "kk": 3}},
    "durations-reversed": {"json": {"query": "rain", "min_duration": 5, "max_duration": 1}},
    "nan-duration": {"content": b'{"query": "rain", "max_duration": NaN}',
                     "headers": {"Content-Type": "application/json"}},
    "query-not-string": {"json": {"query": {"$ne": ""}}},
    "text-plain": {"content": b"rain on a roof", "headers": {"Content-Type": "text/plain"}},
}


@pytest.mark.parametrize("kwargs", TEXT_QUERIES.values(), ids=TEXT_QUERIES.keys())
def test_bad_text_query_is_refused(seeded, kwargs):
    with seeded.client() as client:
        r = client.post("/search", **kwargs)
        assert 400 <= r.status_code < 500, r.text
        assert detail_text(r)
        assert_serving(client, clips=client.get("/health/ready").json()["clips"])


@pytest.mark.parametrize("odd", odd_but_valid(), ids=[o.id for o in odd_but_valid()])
def test_odd_but_valid_upload_is_accepted_with_a_bare_name(seeded, odd):
    """Real audio under a path-like or unicode name, or with 2 channels: accepted, the name reduced to its
    last component, stored inside the data dir's audio folder only; removing it restores the state."""
    outside = sorted(p.name for p in seeded.workdir.iterdir())
    with seeded.client(headers=seeded.write_headers) as client:
        before = snapshot(seeded, client)
        fields = {"name": odd.name_field} if odd.name_field else {}
        r = upload(client, "/audio", filename=odd.filename, data=odd.data, **fields)
        assert r.status_code == 201, r.text
        record = r.json()
        assert record["name"] == odd.stored_name
        assert record["duration"] == pytest.approx(0.5) and record["sample_rate"] == 32_000
        new_files = set(seeded.stored_files()) - set(before.stored_files)
        assert new_files == {f"{record['sha256']}.wav"}
        assert sorted(p.name for p in seeded.workdir.iterdir()) == outside
        assert_clip_present(client, clip_id=record["id"], data=odd.data)
        if odd.channels > 1:  # identical channels: the mono downmix is the same sound, the same vector
            mono = audio_bytes(sine(523.0, seconds=0.5))
            s = upload(client, "/search/audio", filename="mono.wav", data=mono, k="1").json()["results"]
            assert s[0]["id"] == record["id"] and s[0]["score"] == pytest.approx(1.0, abs=1e-3)
        assert client.delete(f"/audio/{record['id']}").status_code == 204
        assert snapshot(seeded, client) == before


CONTROL_NAMES = {"nul-inside": b"a\x00b.wav", "nul-only": b"\x00", "nul-then-path": b"a\x00/../../b.wav",
                 "escape-and-bell": b"\x1b[31mred\x07.wav", "delete-char": b"del\x7f.wav"}
CONTROL_CASES = [pytest.param(v, id=k) for k, v in CONTROL_NAMES.items()]


@pytest.mark.parametrize("filename", CONTROL_CASES)
def test_control_characters_never_reach_a_stored_name(seeded, filename):
    """A NUL (it cuts names short in C libraries) or another control character in the multipart file name,
    sent byte for byte: refused, or accepted with a name free of them; nothing lands outside audio/."""
    data = audio_bytes(sine(740.0 + 7 * len(filename), seconds=0.5))
    with seeded.client(headers=seeded.write_headers) as client:
        before = snapshot(seeded, client)
        r = client.post("/audio", params={"wait": 60}, **raw_multipart(filename=filename, data=data))
        if r.status_code == 201:
            name = r.json()["name"]
            assert name and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in name), repr(name)
            assert "/" not in name and "\\" not in name
            assert client.delete(f"/audio/{r.json()['id']}").status_code == 204
        else:
            assert 400 <= r.status_code < 500 and detail_text(r)
        assert snapshot(seeded, client) == before
